"""leed-doctor: findings on this machine, the CLI, and a run with torch blocked."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from click.testing import CliRunner

from leed_runtime.cli import doctor_main
from leed_runtime.cuda import Gpu
from leed_runtime.doctor import _commands, collect, render

LIBRARIES = ("python", "numpy", "opencv", "torch", "onnxruntime", "onnx", "tensorrt", "tensorrt_rtx", "cuda-python")


def test_collect_reports_this_machine() -> None:
    findings = collect()
    libs = findings["libraries"]
    for name in ("numpy", "opencv", "onnxruntime"):
        assert libs[name]["present"], libs[name]
        assert libs[name]["version"], name
    assert "CPUExecutionProvider" in libs["onnxruntime"]["detail"]
    if not findings["gpus"]:  # the CPU machine: detected cleanly, no crash
        assert findings["commands"]["leed-run onnxruntime-cuda"]["ok"] is False
        assert findings["commands"]["leed-run tensorrt"]["ok"] is False
    for entry in libs.values():
        assert set(entry) == {"present", "version", "detail"}
        assert "\n" not in entry["detail"]


def test_cli_prints_every_library_and_json_parses() -> None:
    result = CliRunner().invoke(doctor_main, [])
    assert result.exit_code == 0, result.output
    for name in LIBRARIES:
        assert name in result.output
    assert "commands" in result.output and "leed-train" in result.output
    assert len(result.output.splitlines()) <= 40

    result = CliRunner().invoke(doctor_main, ["--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["libraries"]["numpy"]["present"] is True


def test_render_ascii_markers() -> None:
    text = render(collect(), unicode=False)
    assert text.isascii()


def test_tensorrt_rtx_refuses_unsupported_gpu() -> None:
    libs = {name: {"present": True, "version": "1", "detail": ""} for name in collect()["libraries"]}
    libs["onnxruntime"]["detail"] = "providers: CUDAExecutionProvider, CPUExecutionProvider"
    h100 = [Gpu("NVIDIA H100", "9.0")]
    cmds = _commands(libs, h100, "cuda-python")
    assert cmds["leed-run tensorrt"]["ok"] and cmds["leed-run onnxruntime-cuda"]["ok"]
    assert not cmds["leed-run tensorrt-rtx"]["ok"]
    assert "sm 9.0" in cmds["leed-run tensorrt-rtx"]["detail"]
    assert _commands(libs, [Gpu("RTX 4090", "8.9")], "cuda-python")["leed-run tensorrt-rtx"]["ok"]


BLOCKED = textwrap.dedent(
    """
    import json
    import sys

    class BlockTorch:
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ImportError("torch blocked for this test")
            return None

    sys.meta_path.insert(0, BlockTorch())
    from leed_runtime.doctor import collect, render

    findings = collect()
    render(findings)
    assert "torch" not in sys.modules
    print(json.dumps(findings))
    """
)


def test_works_without_torch() -> None:
    out = subprocess.run([sys.executable, "-c", BLOCKED], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    findings = json.loads(out.stdout)
    assert findings["libraries"]["torch"]["present"] is False
    assert "blocked" in findings["libraries"]["torch"]["detail"]
    assert findings["commands"]["leed-train"]["ok"] is False
    assert "leed[train]" in findings["commands"]["leed-train"]["detail"]
    assert findings["commands"]["leed-run onnxruntime-cpu"]["ok"] is True
