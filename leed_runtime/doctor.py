"""`leed-doctor`: which libraries and GPUs are here, and which leed commands therefore work.

Never needs torch: every library is probed inside a try/except, so a missing or broken
install becomes one line of the report instead of a crash.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import platform
import sys
from collections.abc import Callable
from typing import Any

from leed_runtime.errors import one_line

# Compute capabilities TensorRT-RTX builds for (major, minor); 12.x means any 12.
RTX_CAPABILITIES = ((7, 5), (8, 0), (8, 6), (8, 9))

BASE = "pip install leed"
TRAIN = "pip install 'leed[train]'"
RUNTIME = "pip install 'leed[runtime]'"
TRAIN_RUNTIME = "pip install 'leed[train,runtime]'"
GPU = "pip install 'leed[gpu]'"
TENSORRT = "pip install 'leed[tensorrt]'"
TENSORRT_RTX = "pip install 'leed[tensorrt-rtx]'"


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


def _probe(module_name: str, dist: str, fix: str, details: Callable[[Any], str] | None = None) -> dict[str, Any]:
    """Import `module_name`; any failure becomes `present: False` with a one-line reason."""
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            return _entry(False, None, f"not installed ({fix})")
        return _entry(False, None, f"import failed: {_reason(exc)} ({fix})")
    except (Exception, SystemExit) as exc:  # broken installs raise anything, stub wheels even SystemExit
        return _entry(False, None, f"import failed: {_reason(exc)} ({fix})")
    try:
        return _entry(True, _version(module, dist), details(module) if details else "")
    except Exception as exc:
        return _entry(True, _version(module, dist), f"probe failed: {_reason(exc)}")


# ---------------------------------------------------------------------------------------------
# Per-library details


def _torch_details(torch: Any) -> str:
    if not torch.cuda.is_available():
        return "CUDA: no (CPU only)"
    gpus = []
    for i in range(torch.cuda.device_count()):
        major, minor = torch.cuda.get_device_capability(i)
        gpus.append(f"{torch.cuda.get_device_name(i)} (sm {major}.{minor})")
    return f"CUDA {torch.version.cuda}: " + ", ".join(gpus)


def _torch_gpus() -> list[dict[str, Any]]:
    """GPUs torch sees; only called once torch imported cleanly."""
    torch = sys.modules["torch"]
    if not torch.cuda.is_available():
        return []
    return [
        {"name": torch.cuda.get_device_name(i), "capability": list(torch.cuda.get_device_capability(i))}
        for i in range(torch.cuda.device_count())
    ]


def _cuda_gpus() -> tuple[list[dict[str, Any]], str]:
    """GPUs seen through cuda-python's runtime API, and a one-line detail."""
    from cuda.bindings import runtime as cudart

    err, count = cudart.cudaGetDeviceCount()
    if err != cudart.cudaError_t.cudaSuccess:
        return [], f"no CUDA here ({err.name})"
    gpus = []
    for i in range(count):
        err, prop = cudart.cudaGetDeviceProperties(i)
        if err != cudart.cudaError_t.cudaSuccess:
            return gpus, f"no CUDA here (device {i}: {err.name})"
        name = prop.name.split(b"\0", 1)[0].decode(errors="replace") if isinstance(prop.name, bytes) else str(prop.name)
        gpus.append({"name": name, "capability": [prop.major, prop.minor]})
    _, driver = cudart.cudaDriverGetVersion()
    listed = ", ".join(f"{g['name']} (sm {g['capability'][0]}.{g['capability'][1]})" for g in gpus)
    return gpus, f"driver {driver // 1000}.{driver % 1000 // 10}: {listed}" if gpus else "no GPU"


# ---------------------------------------------------------------------------------------------
# Collect


def _libraries() -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]], str]:
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
        "onnxruntime": _probe(
            "onnxruntime", "onnxruntime", RUNTIME, lambda m: "providers: " + ", ".join(m.get_available_providers())
        ),
        "cuda-python": _probe("cuda.bindings", "cuda-bindings", RUNTIME),
        "tensorrt": _probe("tensorrt", "tensorrt", TENSORRT),
        "tensorrt_rtx": _probe("tensorrt_rtx_bindings", "tensorrt-rtx-cu13-bindings", TENSORRT_RTX),
    }
    gpus: list[dict[str, Any]] = []
    source = ""
    if libs["cuda-python"]["present"]:
        try:
            gpus, libs["cuda-python"]["detail"] = _cuda_gpus()
        except Exception as exc:  # no driver at all can raise instead of returning an error
            libs["cuda-python"]["detail"] = f"no CUDA here ({_reason(exc)})"
        source = "cuda-python"
    if not gpus and libs["torch"]["present"]:
        try:
            gpus = _torch_gpus()
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


def _commands(libs: dict[str, dict[str, Any]], gpus: list[dict[str, Any]], source: str) -> dict[str, dict[str, Any]]:
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
        cmds["leed-train"] = _command(True, f"on {len(gpus)} GPU(s): {gpus[0]['name']}")
    else:
        cmds["leed-train"] = _command(True, "CPU only: slow, use --preset tiny")

    export_libs = ["torch", "safetensors", "onnx", "onnxscript", "onnxruntime"]
    if _missing(libs, export_libs):
        cmds["leed-export"] = _command(False, _needs(libs, export_libs, TRAIN_RUNTIME))
    else:
        fp16 = "FP16" if has["onnxconverter-common"] else "no --fp16 (pip install onnxconverter-common)"
        engines = [e for e, lib in (("tensorrt", "tensorrt"), ("tensorrt-rtx", "tensorrt_rtx")) if has[lib]]
        engine = "--engine " + "|".join(engines) if engines else f"no engines ({TENSORRT_RTX})"
        cmds["leed-export"] = _command(True, f"ONNX FP32, {fp16}, {engine}")

    ort = libs["onnxruntime"]
    providers = ort["detail"] if ort["present"] else ""
    if not ort["present"]:
        cmds["leed-run onnxruntime-cpu"] = _command(False, f"needs onnxruntime ({RUNTIME})")
    elif "CPUExecutionProvider" not in providers:
        cmds["leed-run onnxruntime-cpu"] = _command(False, f"onnxruntime lacks the CPU provider ({RUNTIME})")
    else:
        cmds["leed-run onnxruntime-cpu"] = _command(True, "CPUExecutionProvider (no GPU needed; slow)")

    gpu_reason = _no_gpu_reason(has, gpus, source)

    def gpu_backend(missing: str | None) -> dict:
        """A GPU backend: refused for its missing library, then for the missing GPU."""
        if missing:
            return _command(False, missing)
        if gpu_reason:
            return _command(False, gpu_reason)
        return _command(True, f"on {cuda_gpus[0]['name']}")

    cuda_ep = ort["present"] and "CUDAExecutionProvider" in providers
    cmds["leed-run onnxruntime-cuda"] = gpu_backend(
        None if cuda_ep else f"onnxruntime has no CUDAExecutionProvider ({GPU})"
    )
    cmds["leed-run tensorrt"] = gpu_backend(None if has["tensorrt"] else f"needs tensorrt ({TENSORRT})")
    cmds["leed-run tensorrt-rtx"] = gpu_backend(None if has["tensorrt_rtx"] else f"needs tensorrt_rtx ({TENSORRT_RTX})")
    if cmds["leed-run tensorrt-rtx"]["ok"]:
        ok = [g for g in cuda_gpus if tuple(g["capability"]) in RTX_CAPABILITIES or g["capability"][0] == 12]
        if ok:
            cmds["leed-run tensorrt-rtx"] = _command(True, f"on {ok[0]['name']}")
        else:
            cc = ".".join(map(str, cuda_gpus[0]["capability"]))
            cmds["leed-run tensorrt-rtx"] = _command(
                False, f"TensorRT-RTX runs on sm 7.5/8.0/8.6/8.9/12.x, this GPU is sm {cc}: use --backend tensorrt"
            )

    eval_libs = ["torch", "safetensors", "scikit-image"]
    if _missing(libs, eval_libs):
        cmds["leed-eval"] = _command(False, _needs(libs, eval_libs, TRAIN))
    else:
        cmds["leed-eval"] = _command(True, "checkpoints" + (" and ONNX exports" if ort["present"] else " only"))
    return cmds


def _no_gpu_reason(has: dict[str, bool], gpus: list[dict[str, Any]], source: str) -> str:
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
        "gpus": gpus,
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
            major, minor = gpu["capability"]
            lines.append(f"  {yes} {gpu['name']}  sm {major}.{minor}  (seen by {findings['gpu_source']})")
    else:
        lines.append(f"  {no} none: no CUDA GPU or driver here")
    lines += ["", "commands"]
    cmd_w = max(len(n) for n in findings["commands"])
    for name, cmd in findings["commands"].items():
        mark = yes if cmd["ok"] else no
        lines.append(f"  {mark} {name:<{cmd_w}}  {'yes' if cmd['ok'] else 'no '}  {cmd['detail']}")
    return "\n".join(lines)
