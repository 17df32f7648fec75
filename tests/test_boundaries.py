"""Package boundaries: imports go one way, and the runtime never needs torch."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# package -> top-level modules it must never import
FORBIDDEN = {
    "leed_runtime": {"torch", "leed_train", "leed_export", "safetensors", "tensorboard"},
    "leed_train": {"leed_export"},
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_go_one_way(package: str) -> None:
    bad = {
        str(path.relative_to(ROOT)): sorted(_imports(path) & FORBIDDEN[package])
        for path in (ROOT / package).rglob("*.py")
        if _imports(path) & FORBIDDEN[package]
    }
    # the doctor probes torch inside a guarded function: that is reporting, not depending
    bad.pop("leed_runtime/doctor.py", None)
    assert not bad, bad


@pytest.mark.parametrize(
    "code",
    [
        "import leed_runtime.face.align, leed_runtime.atomic, leed_runtime.errors, leed_runtime.cli",
        "from leed_runtime.cli import run_main, doctor_main",
        "import leed_train.cli, leed_train.data.synth, leed_train.data.names",
    ],
)
def test_runtime_and_synth_import_without_torch(code: str, python_without_torch) -> None:  # noqa: ANN001
    proc = python_without_torch(code)
    assert proc.returncode == 0, proc.stderr
