"""Which backend runs an export folder here, and which artifact it runs.

Preference: the order of the backend table (`table.BACKENDS`). `auto` takes the first that
can work and says in one line why the better ones could not; an explicit request
that cannot work is refused with what is missing and how to get it (never a silent downgrade).

Artifact names: `<graph>` and `<graph>.fp16` are ONNX graphs; engines are
`engine_artifact_name(graph, library, fp16)`, e.g. `edit.trt`, `edit.fp16.rtx`.
"""

from __future__ import annotations

from pathlib import Path

from leed_runtime import cuda
from leed_runtime.backends.base import BackendRow
from leed_runtime.backends.table import BACKENDS, backend_row, engine_rows
from leed_runtime.errors import LeedError
from leed_runtime.manifest import Manifest

NO_GPU = "no CUDA GPU here"
PRECISIONS = ("auto", "fp16", "fp32")


def _engine_row(library: str) -> BackendRow:
    """The engine row named by its library ("tensorrt_rtx") or its kind ("tensorrt-rtx")."""
    for row in engine_rows():
        if library in (row.library, row.kind):
            return row
    raise LeedError(
        f"engine library {library!r} is unknown; choose {' or '.join(row.library for row in engine_rows())}"
    )


def engine_artifact_name(graph: str, library: str, fp16: bool) -> str:
    """Manifest name of an engine: `engine_artifact_name("edit", "tensorrt_rtx", True)` ->
    "edit.fp16.rtx". `library` is the library ("tensorrt", "tensorrt_rtx") or backend kind."""
    return f"{graph}{'.fp16' if fp16 else ''}.{_engine_row(library).engine_tag}"


def _candidates(row: BackendRow, graph: str, precision: str) -> list[str]:
    """Artifact names that serve `graph` on `row`'s kind, best first."""
    if precision not in PRECISIONS:
        raise LeedError(f"--precision {precision!r} is unknown; choose one of {', '.join(PRECISIONS)}")
    if row.engine_tag is not None:
        names = {p: engine_artifact_name(graph, row.library, p == "fp16") for p in ("fp16", "fp32")}
    else:
        names = {"fp16": f"{graph}.fp16", "fp32": graph}
    # without CUDA onnxruntime casts around FP16 ops (no speed-up): auto takes FP32 there
    order = {"auto": ("fp16", "fp32") if row.uses_cuda else ("fp32",), "fp16": ("fp16",), "fp32": ("fp32",)}
    return [names[p] for p in order[precision]]


def artifact_for_backend(kind: str, manifest: Manifest, graph: str, precision: str = "auto") -> str:
    """The manifest artifact that runs `graph` on backend `kind` (FP16 first on GPUs)."""
    row = backend_row(kind)
    names = _candidates(row, graph, precision)
    for name in names:
        if name in manifest.artifacts:
            return name
    fix = f"--engine {kind}" if row.engine_tag is not None else ""
    raise LeedError(
        f"the export has no {' or '.join(names)} for --backend {kind} (has: {', '.join(sorted(manifest.artifacts))}); "
        f"re-run leed-export {fix}".rstrip()
    )


def _problem(row: BackendRow, folder: Path, manifest: Manifest, graph: str, precision: str) -> str | None:
    """Why `row`'s kind cannot run `graph` here (with the fix), or None when it can."""
    try:
        if row.uses_cuda and not cuda.cuda_available():
            return _engine_version_problem(row, folder, manifest, graph, precision) or NO_GPU
        name = artifact_for_backend(row.kind, manifest, graph, precision)
        if not (Path(folder) / manifest.artifacts[name].file).is_file():
            return f"{Path(folder) / manifest.artifacts[name].file} missing; re-run leed-export"
        module = row.load()
        compute_capability = cuda.cuda_info().gpus[0].compute_capability if row.uses_cuda else None
        return row.library_problem(module) or row.artifact_problem(folder, manifest, name, module, compute_capability)
    except LeedError as exc:
        return str(exc)


def _engine_version_problem(
    row: BackendRow, folder: Path, manifest: Manifest, graph: str, precision: str
) -> str | None:
    """Without a GPU: an engine the export lists but this library version cannot load (with
    the rebuild command) is the more useful answer than "no GPU"; None otherwise."""
    if row.engine_tag is None:
        return None
    try:
        name = artifact_for_backend(row.kind, manifest, graph, precision)
        module = row.load()
    except LeedError:  # no such engine, or no library: "no GPU" stays the answer
        return None
    return row.artifact_problem(folder, manifest, name, module, None)


def available_backends(folder: Path | None = None, manifest: Manifest | None = None, graph: str = "edit") -> list[str]:
    """Backends that can run here, best first; with a manifest, only those whose artifact
    for `graph` is present (and, for engines, matches this library version and GPU)."""
    if manifest is None:
        return [row.kind for row in BACKENDS if _installed(row) and (not row.uses_cuda or cuda.cuda_available())]
    return [row.kind for row in BACKENDS if _problem(row, Path(folder or "."), manifest, graph, "auto") is None]


def _installed(row: BackendRow) -> bool:
    try:
        return row.library_problem(row.load()) is None
    except LeedError:
        return False


def choose_backend(
    requested: str, folder: Path, manifest: Manifest, artifact_name: str = "edit", precision: str = "auto"
) -> tuple[str, str]:
    """(backend kind, one-line reason) for graph `artifact_name`. `auto` takes the best that
    works; an explicit kind that cannot work raises a LeedError naming what is missing."""
    if requested != "auto":
        problem = _problem(backend_row(requested), folder, manifest, artifact_name, precision)
        if problem is not None:
            raise LeedError(f"--backend {requested}: {problem}")
        return requested, f"{requested}: requested"
    skipped: dict[str, list[str]] = {}
    for row in BACKENDS:
        problem = _problem(row, folder, manifest, artifact_name, precision)
        if problem is None:
            if not skipped:
                return row.kind, f"{row.kind}: the fastest backend, available here"
            if list(skipped) == [NO_GPU]:
                return row.kind, f"{row.kind}: {NO_GPU}"
            return row.kind, f"{row.kind}: " + "; ".join(f"{', '.join(ks)} not used: {p}" for p, ks in skipped.items())
        skipped.setdefault(problem, []).append(row.kind)
    raise LeedError(
        "no backend can run this export: " + "; ".join(f"{', '.join(ks)}: {p}" for p, ks in skipped.items())
    )
