"""`leed-doctor`: which libraries and GPUs are here, and which leed commands therefore work.

Never needs torch: every library is probed inside a try/except, so a missing or broken
install becomes one line of the report instead of a crash. The backends' libraries, extras,
execution providers and GPU targets come from the backend table (backends/table.py), the
GPUs from `cuda.cuda_info()` (torch's view only when cuda-python sees none).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import platform
import sys
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from leed_runtime import cuda
from leed_runtime.backends.base import BackendRow
from leed_runtime.backends.table import BACKENDS, engine_rows
from leed_runtime.cuda import Gpu
from leed_runtime.errors import one_line

BASE = "pip install leed"
TRAIN = "pip install 'leed[train]'"
RUNTIME = "pip install 'leed[runtime]'"
TRAIN_RUNTIME = "pip install 'leed[train,runtime]'"


def _entry(present: bool, version: str | None = None, detail: str = "") -> dict[str, Any]:
    return {"present": present, "version": version, "detail": detail}


def _reason(exc: BaseException) -> str:
    text = one_line(str(exc))
    return f"{type(exc).__name__}: {text}"[:160] if text else type(exc).__name__


def _version(module: Any, dist: str) -> str | None:
    version = getattr(module, "__version__", None)
    if isinstance(version, str):
        return version
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _probe(
    module_name: str,
    dist: str,
    fix: str,
    details: Callable[[Any], str] | None = None,
    version: Callable[[Any], str] | None = None,
) -> dict[str, Any]:
    """Import `module_name`; any failure becomes `present: False` with a one-line reason."""
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            return _entry(False, None, f"not installed ({fix})")
        return _entry(False, None, f"import failed: {_reason(exc)} ({fix})")
    except (Exception, SystemExit) as exc:  # broken installs raise anything, stub wheels even SystemExit
        return _entry(False, None, f"import failed: {_reason(exc)} ({fix})")
    get_version = version or (lambda m: _version(m, dist))
    try:
        return _entry(True, get_version(module), details(module) if details else "")
    except Exception as exc:
        return _entry(True, _version(module, dist), f"probe failed: {_reason(exc)}")


# ---------------------------------------------------------------------------------------------
# Per-library details


def _torch_gpus(torch: Any) -> list[Gpu]:
    """GPUs torch sees (reported for leed-train, which runs on torch)."""
    if not torch.cuda.is_available():
        return []
    return [
        Gpu(torch.cuda.get_device_name(i), "{}.{}".format(*torch.cuda.get_device_capability(i)))
        for i in range(torch.cuda.device_count())
    ]


def _listed(gpus: list[Gpu]) -> str:
    return ", ".join(f"{g.name} (sm {g.compute_capability})" for g in gpus)


def _torch_details(torch: Any) -> str:
    gpus = _torch_gpus(torch)
    return f"CUDA {torch.version.cuda}: {_listed(gpus)}" if gpus else "CUDA: no (CPU only)"


def _library_rows() -> list[BackendRow]:
    """One row per backend library, in table order after those a CPU-only kind needs (whose
    row, and so whose pip extra, then speaks for the library)."""
    rows: dict[str, BackendRow] = {}
    for row in sorted(BACKENDS, key=lambda r: r.uses_cuda):  # stable: table order otherwise
        rows.setdefault(row.library, row)
    return list(rows.values())


def _backend_details(row: BackendRow) -> Callable[[Any], str] | None:
    if row.provider is None:
        return None
    return lambda module: "providers: " + ", ".join(module.get_available_providers())


# ---------------------------------------------------------------------------------------------
# Collect


def _libraries() -> tuple[dict[str, dict[str, Any]], list[Gpu], str]:
    libs: dict[str, dict[str, Any]] = {
        "python": _entry(True, platform.python_version(), f"{sys.executable}"),
        "numpy": _probe("numpy", "numpy", BASE),
        "opencv": _probe("cv2", "opencv-python-headless", BASE),
        "pyav": _probe("av", "av", BASE, lambda m: f"FFmpeg {m.ffmpeg_version_info} inside the wheel"),
        "torch": _probe("torch", "torch", TRAIN, _torch_details),
        "safetensors": _probe("safetensors", "safetensors", TRAIN),
        "tensorboard": _probe("tensorboard", "tensorboard", TRAIN),
        "scikit-image": _probe("skimage", "scikit-image", TRAIN),
        "onnx": _probe("onnx", "onnx", TRAIN),
        "onnxscript": _probe("onnxscript", "onnxscript", TRAIN),
        "onnxconverter-common": _probe(
            "onnxconverter_common", "onnxconverter-common", "pip install onnxconverter-common"
        ),
    }
    for row in _library_rows():
        libs[row.library] = _probe(row.module, row.module, row.install, _backend_details(row), row.version)
    libs["cuda-python"] = _probe("cuda.bindings", "cuda-bindings", RUNTIME)
    gpus: list[Gpu] = []
    source = ""
    if libs["cuda-python"]["present"]:
        info = cuda.cuda_info()
        gpus = list(info.gpus)
        if gpus:
            libs["cuda-python"]["detail"] = f"driver {info.driver}: {_listed(gpus)}"
        else:
            libs["cuda-python"]["detail"] = "no GPU" if info.problem == "no GPU" else f"no CUDA here ({info.problem})"
        source = "cuda-python"
    if not gpus and libs["torch"]["present"]:
        try:
            gpus = _torch_gpus(sys.modules["torch"])
            source = "torch"
        except Exception:
            gpus = []
    return libs, gpus, source if gpus else ""


def _command(ok: bool, detail: str) -> dict[str, Any]:
    return {"ok": ok, "detail": detail}


def _missing(libs: dict[str, dict[str, Any]], names: list[str]) -> list[str]:
    return [n for n in names if not libs[n]["present"]]


def _needs(libs: dict[str, dict[str, Any]], names: list[str], fix: str) -> str:
    return f"needs {', '.join(_missing(libs, names))} ({fix})"


def _commands(libs: dict[str, dict[str, Any]], gpus: list[Gpu], source: str) -> dict[str, dict[str, Any]]:
    has = {name: entry["present"] for name, entry in libs.items()}
    cuda_gpus = gpus if source == "cuda-python" else []
    cmds: dict[str, dict[str, Any]] = {}

    if has["numpy"] and has["opencv"] and has["pyav"]:
        cmds["leed-synth"] = _command(True, "numpy, OpenCV and PyAV present")
    else:
        missing = _missing(libs, ["numpy", "opencv", "pyav"])
        cmds["leed-synth"] = _command(False, f"needs {', '.join(missing)} ({BASE})")

    train_libs = ["torch", "safetensors", "tensorboard"]
    if _missing(libs, train_libs):
        cmds["leed-train"] = _command(False, _needs(libs, train_libs, TRAIN))
    elif gpus:
        cmds["leed-train"] = _command(True, f"on {len(gpus)} GPU(s): {gpus[0].name}")
    else:
        cmds["leed-train"] = _command(True, "CPU only: slow, use --preset tiny")

    export_libs = ["torch", "safetensors", "onnx", "onnxscript", "onnxruntime"]
    if _missing(libs, export_libs):
        cmds["leed-export"] = _command(False, _needs(libs, export_libs, TRAIN_RUNTIME))
    else:
        fp16 = "FP16" if has["onnxconverter-common"] else "no --fp16 (pip install onnxconverter-common)"
        engines = [row.kind for row in engine_rows() if has[row.library]]
        installs = " or ".join(row.install for row in engine_rows())
        engine = "--engine " + "|".join(engines) if engines else f"no engines ({installs})"
        cmds["leed-export"] = _command(True, f"ONNX FP32, {fp16}, {engine}")

    gpu_reason = _no_gpu_reason(has, gpus, source)
    for row in reversed(BACKENDS):  # cheapest first
        cmds[f"leed-run {row.kind}"] = _backend_command(row, libs, cuda_gpus, gpu_reason)

    eval_libs = ["torch", "safetensors", "scikit-image"]
    if _missing(libs, eval_libs):
        cmds["leed-eval"] = _command(False, _needs(libs, eval_libs, TRAIN))
    else:
        cmds["leed-eval"] = _command(True, "checkpoints" + (" and ONNX exports" if has["onnxruntime"] else " only"))
    return cmds


def _backend_command(
    row: BackendRow, libs: dict[str, dict[str, Any]], cuda_gpus: list[Gpu], gpu_reason: str
) -> dict[str, Any]:
    """`leed-run --backend KIND`: refused for its missing library or execution provider, then
    (CUDA kinds) for the missing GPU, then for a GPU it does not target."""
    lib = libs[row.library]
    if not lib["present"]:
        return _command(False, f"needs {row.library} ({row.install})")
    if row.provider is not None and row.provider not in lib["detail"]:
        return _command(False, f"{row.library} has no {row.provider} ({row.install})")
    if not row.uses_cuda:
        return _command(True, f"{row.provider or row.library} (no GPU needed; slow)")
    if gpu_reason:
        return _command(False, gpu_reason)
    ok = [g for g in cuda_gpus if row.runs_on(g.compute_capability)]
    if ok:
        return _command(True, f"on {ok[0].name}")
    cc = cuda_gpus[0].compute_capability
    others = [r.kind for r in BACKENDS if r.uses_cuda and r is not row and r.runs_on(cc)]
    return _command(
        False,
        f"{row.title} runs on sm {'/'.join(row.compute_capabilities)}, this GPU is sm {cc}: "
        f"use --backend {' or '.join(others)}",
    )


def _no_gpu_reason(has: dict[str, bool], gpus: list[Gpu], source: str) -> str:
    """Why the runtime's CUDA backends cannot run here ('' when they can)."""
    if not has["cuda-python"]:
        seen = " (torch sees a GPU)" if gpus else ""
        return f"needs cuda-python{seen} ({RUNTIME})"
    if source != "cuda-python":
        return "no CUDA GPU (cuda-python finds none)"
    return ""


def collect() -> dict[str, Any]:
    """Probe every library leed can use, the GPUs, and which commands will work."""
    libs, gpus, source = _libraries()
    return {
        "platform": f"{platform.system()} {platform.machine()}",
        "libraries": libs,
        "gpus": [asdict(gpu) for gpu in gpus],
        "gpu_source": source,
        "commands": _commands(libs, gpus, source),
    }


# ---------------------------------------------------------------------------------------------
# Render


def _unicode_ok() -> bool:
    encoding = (getattr(sys.stdout, "encoding", None) or "").lower().replace("-", "")
    return encoding in ("utf8", "utf_8")


def render(findings: dict[str, Any], unicode: bool | None = None) -> str:
    """One screen: a line per library, the GPUs, then a line per command."""
    yes, no = ("✓", "✗") if (_unicode_ok() if unicode is None else unicode) else ("+", "-")
    libs = findings["libraries"]
    name_w = max(len(n) for n in libs)
    ver_w = max(len(e["version"] or "") for e in libs.values())
    lines = [f"leed-doctor ({findings['platform']})", "", "libraries"]
    for name, entry in libs.items():
        mark = yes if entry["present"] else no
        lines.append(f"  {mark} {name:<{name_w}}  {entry['version'] or '':<{ver_w}}  {entry['detail']}".rstrip())
    lines += ["", "GPUs"]
    if findings["gpus"]:
        for gpu in findings["gpus"]:
            lines.append(f"  {yes} {gpu['name']}  sm {gpu['compute_capability']}  (seen by {findings['gpu_source']})")
    else:
        lines.append(f"  {no} none: no CUDA GPU or driver here")
    lines += ["", "commands"]
    cmd_w = max(len(n) for n in findings["commands"])
    for name, cmd in findings["commands"].items():
        mark = yes if cmd["ok"] else no
        lines.append(f"  {mark} {name:<{cmd_w}}  {'yes' if cmd['ok'] else 'no '}  {cmd['detail']}")
    return "\n".join(lines)
