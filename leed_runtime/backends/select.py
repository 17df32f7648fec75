"""Which backend runs an export folder here, and which artifact it runs.

Preference: tensorrt > tensorrt-rtx > onnxruntime-cuda > onnxruntime-cpu. `auto` takes the
first that can work and says in one line why the better ones could not; an explicit request
that cannot work is refused with what is missing and how to get it (never a silent downgrade).

Artifact names: `<graph>` and `<graph>.fp16` are ONNX graphs; engines are
`engine_artifact_name(graph, library, fp16)`, e.g. `edit.trt`, `edit.fp16.rtx`.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from leed_runtime.backends.base import BACKENDS
from leed_runtime.errors import LeedError
from leed_runtime.manifest import Manifest

# backend kind -> (engine.library in the manifest, short name in artifact names)
ENGINES = {"tensorrt": ("tensorrt", "trt"), "tensorrt-rtx": ("tensorrt_rtx", "rtx")}
NO_GPU = "no CUDA GPU here"
PRECISIONS = ("auto", "fp16", "fp32")


def engine_artifact_name(graph: str, library: str, fp16: bool) -> str:
    """Manifest name of an engine: `engine_artifact_name("edit", "tensorrt_rtx", True)` ->
    "edit.fp16.rtx". `library` is the module ("tensorrt", "tensorrt_rtx") or backend kind."""
    kind = library.replace("_", "-")
    if kind not in ENGINES:
        raise LeedError(f"engine library {library!r} is unknown; choose tensorrt or tensorrt_rtx")
    return f"{graph}{'.fp16' if fp16 else ''}.{ENGINES[kind][1]}"


def _candidates(kind: str, graph: str, precision: str) -> list[str]:
    """Artifact names that serve `graph` on `kind`, best first."""
    if precision not in PRECISIONS:
        raise LeedError(f"--precision {precision!r} is unknown; choose one of {', '.join(PRECISIONS)}")
    if kind in ENGINES:
        names = {p: engine_artifact_name(graph, kind, p == "fp16") for p in ("fp16", "fp32")}
    else:
        names = {"fp16": f"{graph}.fp16", "fp32": graph}
    order = {"auto": ("fp32",) if kind == "onnxruntime-cpu" else ("fp16", "fp32"), "fp16": ("fp16",), "fp32": ("fp32",)}
    # on the CPU onnxruntime casts around FP16 ops (no speed-up): auto takes FP32 there
    return [names[p] for p in order[precision]]


def artifact_for_backend(kind: str, manifest: Manifest, graph: str, precision: str = "auto") -> str:
    """The manifest artifact that runs `graph` on backend `kind` (FP16 first on GPUs)."""
    if kind not in BACKENDS:
        raise LeedError(f"--backend {kind!r} is unknown; choose one of auto, {', '.join(BACKENDS)}")
    names = _candidates(kind, graph, precision)
    for name in names:
        if name in manifest.artifacts:
            return name
    fix = f"--engine {kind}" if kind in ENGINES else ""
    raise LeedError(
        f"the export has no {' or '.join(names)} for --backend {kind} (has: {', '.join(sorted(manifest.artifacts))}); "
        f"re-run leed-export {fix}".rstrip()
    )


def _problem(kind: str, folder: Path, manifest: Manifest, graph: str, precision: str) -> str | None:
    """Why `kind` cannot run `graph` here (with the fix), or None when it can."""
    from leed_runtime.cuda import cuda_available, device_info

    try:
        if kind != "onnxruntime-cpu" and not cuda_available():
            return _engine_version_problem(kind, folder, manifest, graph, precision) or NO_GPU
        name = artifact_for_backend(kind, manifest, graph, precision)
        if not (Path(folder) / manifest.artifacts[name].file).is_file():
            return f"{Path(folder) / manifest.artifacts[name].file} missing; re-run leed-export"
        if kind == "onnxruntime-cpu":
            importlib.import_module("onnxruntime")
            return None
        if kind == "onnxruntime-cuda":
            ort = importlib.import_module("onnxruntime")
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                return f"onnxruntime {ort.__version__} has no CUDAExecutionProvider; pip install 'leed[gpu]'"
            return None
        from leed_runtime.backends.tensorrt import engine_problem, import_library, rebuild_command

        library, artifact = ENGINES[kind][0], manifest.artifacts[name]
        rebuild = rebuild_command(folder, artifact, library, manifest.source.get("run_dir"))
        version = str(import_library(library).__version__)
        return engine_problem(artifact, library, version, device_info()[0]["compute_capability"], rebuild)
    except ImportError:
        return "onnxruntime is not installed; pip install 'leed[runtime]'"
    except LeedError as exc:
        return str(exc)


def _engine_version_problem(kind: str, folder: Path, manifest: Manifest, graph: str, precision: str) -> str | None:
    """Without a GPU: an engine the export lists but this library version cannot load (with
    the rebuild command) is the more useful answer than "no GPU"; None otherwise."""
    if kind not in ENGINES:
        return None
    from leed_runtime.backends.tensorrt import engine_problem, import_library, rebuild_command

    try:
        name = artifact_for_backend(kind, manifest, graph, precision)
        library, artifact = ENGINES[kind][0], manifest.artifacts[name]
        version = str(import_library(library).__version__)
    except LeedError:  # no such engine, or no library: "no GPU" stays the answer
        return None
    rebuild = rebuild_command(folder, artifact, library, manifest.source.get("run_dir"))
    return engine_problem(artifact, library, version, None, rebuild)


def available_backends(folder: Path | None = None, manifest: Manifest | None = None, graph: str = "edit") -> list[str]:
    """Backends that can run here, best first; with a manifest, only those whose artifact
    for `graph` is present (and, for engines, matches this library version and GPU)."""
    if manifest is None:
        from leed_runtime.cuda import cuda_available

        out = []
        for kind in BACKENDS:
            if _installed(kind) and (kind == "onnxruntime-cpu" or cuda_available()):
                out.append(kind)
        return out
    return [k for k in BACKENDS if _problem(k, Path(folder or "."), manifest, graph, "auto") is None]


def _installed(kind: str) -> bool:
    try:
        if kind in ENGINES:
            from leed_runtime.backends.tensorrt import import_library

            import_library(ENGINES[kind][0])
            return True
        ort = importlib.import_module("onnxruntime")
        return kind == "onnxruntime-cpu" or "CUDAExecutionProvider" in ort.get_available_providers()
    except (ImportError, LeedError):
        return False


def choose_backend(
    requested: str, folder: Path, manifest: Manifest, artifact_name: str = "edit", precision: str = "auto"
) -> tuple[str, str]:
    """(backend kind, one-line reason) for graph `artifact_name`. `auto` takes the best that
    works; an explicit kind that cannot work raises a LeedError naming what is missing."""
    if requested != "auto" and requested not in BACKENDS:
        raise LeedError(f"--backend {requested!r} is unknown; choose one of auto, {', '.join(BACKENDS)}")
    if requested != "auto":
        problem = _problem(requested, folder, manifest, artifact_name, precision)
        if problem is not None:
            raise LeedError(f"--backend {requested}: {problem}")
        return requested, f"{requested}: requested"
    skipped: dict[str, list[str]] = {}
    for kind in BACKENDS:
        problem = _problem(kind, folder, manifest, artifact_name, precision)
        if problem is None:
            if not skipped:
                return kind, f"{kind}: the fastest backend, available here"
            if list(skipped) == [NO_GPU]:
                return kind, f"{kind}: {NO_GPU}"
            return kind, f"{kind}: " + "; ".join(f"{', '.join(ks)} not used: {p}" for p, ks in skipped.items())
        skipped.setdefault(problem, []).append(kind)
    raise LeedError(
        "no backend can run this export: " + "; ".join(f"{', '.join(ks)}: {p}" for p, ks in skipped.items())
    )
