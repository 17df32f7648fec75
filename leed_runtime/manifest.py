"""`manifest.json`: the one description of an export folder. `leed-export` writes it, the
runtime reads only it, and refuses what does not match (hash, library, GPU) with the fix.

Schema (version 1):

    {
      "schema": 1,
      "leed_version": "0.1.0",
      "created": "2026-11-25T02:30:00Z",
      "preset": "tiny",
      "source": {"run_dir": "...", "checkpoint": "checkpoints/leed-00000200", "step": 200},
      "image": {"size": 128, "layout": "NCHW", "color": "RGB", "dtype": "float32",
                "range": [-1.0, 1.0], "template": [[x, y] x 5]},   # crop template (pixels)
      "code": {"channels": 64, "size": 8},
      "artifacts": {
        "edit": {"file": "edit.onnx", "sha256": "...", "bytes": 123, "format": "onnx",
                 "precision": "fp32", "opset": 18,
                 "inputs":  [{"name": "face", "shape": ["batch", 3, 128, 128], "dtype": "float32"}, ...],
                 "outputs": [{"name": "edited", "shape": ["batch", 3, 128, 128], "dtype": "float32"}],
                 "parity": {"max_abs": 1e-6, "median_abs": 1e-7, "tolerance": 1e-3},
                 "engine": null},
        "edit.fp16.rtx": {"file": "engines/tensorrt-rtx/edit.fp16.plan", "format": "plan",
                 "precision": "fp16", ..., "source": "edit.fp16",
                 "engine": {"library": "tensorrt_rtx", "version": "1.7.1", "gpu": null,
                            "compute_capability": null, "profile": {"min": 1, "opt": 8, "max": 32}}}
      }
    }

Artifact names: `neutralizer`, `encoder`, `extractor`, `interpolator`, `decoder` (one
network each), `reference` (reference crop -> dexp) and `edit` (face crop, dexp, alpha ->
edited crop), `pnet`/`rnet`/`onet` (the MTCNN detector); `<name>.fp16` for FP16 graphs;
engines add the library's short name. Dimension names (strings) are dynamic.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from leed_runtime.atomic import atomic_write_text
from leed_runtime.errors import LeedError

SCHEMA = 1
FILENAME = "manifest.json"


@dataclass
class TensorSpec:
    name: str
    shape: list[int | str]
    dtype: str  # numpy name: float32, float16, int64, uint8


@dataclass
class EngineInfo:
    library: str  # "tensorrt" | "tensorrt_rtx"
    version: str
    gpu: str | None = None  # name of the GPU it was built on (None: built without one)
    compute_capability: str | None = None  # "8.6"; None = whatever the library targets by default
    profile: dict[str, int] = field(default_factory=dict)  # batch min/opt/max


@dataclass
class Artifact:
    file: str  # relative to the export folder
    sha256: str
    bytes: int
    format: str  # "onnx" | "plan"
    precision: str  # "fp32" | "fp16"
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    opset: int | None = None
    source: str | None = None  # the artifact an engine or FP16 graph was made from
    parity: dict[str, float] = field(default_factory=dict)
    engine: EngineInfo | None = None


DETECTOR_GRAPHS = ("pnet", "rnet", "onet")  # MTCNN's graphs, beside the face graphs in an export


@dataclass
class Manifest:
    leed_version: str
    created: str
    preset: str
    source: dict[str, Any]
    image: dict[str, Any]
    code: dict[str, int]
    artifacts: dict[str, Artifact] = field(default_factory=dict)
    schema: int = SCHEMA

    def artifact(self, name: str, folder: Path | None = None) -> Artifact:
        if name not in self.artifacts:
            where = f"{folder / FILENAME}: " if folder else ""
            raise LeedError(
                f"{where}no artifact {name!r} (has: {', '.join(sorted(self.artifacts))}); re-run leed-export"
            )
        return self.artifacts[name]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    def save(self, folder: Path) -> Path:
        path = Path(folder) / FILENAME
        atomic_write_text(path, self.to_json())
        return path


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def artifact_for(folder: Path, file: str, **fields: Any) -> Artifact:
    """An Artifact for `folder/file` with its hash and size filled in."""
    path = Path(folder) / file
    return Artifact(file=file, sha256=sha256_file(path), bytes=path.stat().st_size, **fields)


def read_manifest(folder: Path | str) -> Manifest:
    """Parse and validate `folder/manifest.json`; every problem is one LeedError line."""
    folder = Path(folder)
    path = folder / FILENAME
    if not folder.is_dir():
        raise LeedError(f"{folder}: no such export folder; create one with `leed-export RUN_DIR --out {folder}`")
    if not path.is_file():
        raise LeedError(f"{path}: missing; {folder} is not an export folder (run `leed-export RUN_DIR --out {folder}`)")
    try:
        data = json.loads(path.read_text())
        if data.get("schema") != SCHEMA:
            raise LeedError(f"{path}: schema {data.get('schema')!r} is not {SCHEMA}; re-export with this leed version")
        artifacts = {}
        for name, a in data["artifacts"].items():
            a = dict(a)
            a["inputs"] = [TensorSpec(**t) for t in a["inputs"]]
            a["outputs"] = [TensorSpec(**t) for t in a["outputs"]]
            a["engine"] = EngineInfo(**a["engine"]) if a.get("engine") else None
            artifacts[name] = Artifact(**a)
        data["artifacts"] = artifacts
        manifest = Manifest(**data)
        _check_sizes(manifest)
        return manifest
    except LeedError:
        raise
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise LeedError(f"{path}: corrupt manifest ({type(exc).__name__}: {exc}); re-run leed-export") from None


def _check_sizes(manifest: Manifest) -> None:
    """`image.size` and `code.channels`/`code.size` are positive whole numbers (ValueError else),
    in every manifest with a face graph (one holding only the detector's graphs states none)."""
    if all(name.split(".")[0] in DETECTOR_GRAPHS for name in manifest.artifacts):
        return
    for block, key in (("image", "size"), ("code", "channels"), ("code", "size")):
        table = getattr(manifest, block)
        if not isinstance(table, dict) or key not in table:
            raise ValueError(f"{block}.{key} is missing")
        value = table[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{block}.{key} is {value!r}, not a positive whole number")


def parity_problem(parity: dict[str, float]) -> str | None:
    """Why a recorded parity check does not vouch for its artifact (failed, NaN/Inf, over
    tolerance), or None when it passed (or none was recorded, as for engines)."""
    if not isinstance(parity, dict):
        return f"its parity record is not a table ({parity!r})"
    numbers = {k: v for k, v in parity.items() if k != "passed"}
    if parity.get("passed") is False:
        return "its parity check failed"
    if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in numbers.values()):
        return f"its parity record has NaN/Inf or non-numbers ({numbers})"
    if numbers.get("nonfinite", 0) > 0:
        return f"its output had {numbers['nonfinite']:g} NaN/Inf values in the parity check"
    for error, tolerance in (
        ("max_abs", "tolerance_max_abs"),
        ("max_abs", "tolerance"),
        ("median_abs", "tolerance_median_abs"),
    ):
        if error in numbers and tolerance in numbers and numbers[error] > numbers[tolerance]:
            return f"its parity {error} {numbers[error]:.2e} exceeds the tolerance {numbers[tolerance]:.0e}"
    return None


def check_artifact(folder: Path | str, name: str, art: Artifact, full: bool = True) -> Path:
    """The artifact's path; refuses a missing file and (with `full`) one whose sha256 differs
    from the manifest or whose recorded parity gate did not pass."""
    folder = Path(folder)
    path = folder / art.file
    if not path.is_file():
        raise LeedError(f"{path}: missing (artifact {name!r} of {folder / FILENAME}); re-run leed-export")
    if not full:
        return path
    if sha256_file(path) != art.sha256:
        raise LeedError(f"{path}: sha256 differs from {folder / FILENAME} (modified or corrupt); re-run leed-export")
    problem = parity_problem(art.parity)
    if problem is not None:
        raise LeedError(f"{path}: refused, {problem} (per {folder / FILENAME}); re-run leed-export")
    return path


def verify(folder: Path | str, manifest: Manifest | None = None, names: list[str] | None = None) -> Manifest:
    """Check every (or the named) artifact: file present, sha256 as listed, parity passed."""
    folder = Path(folder)
    manifest = manifest or read_manifest(folder)
    for name in names or sorted(manifest.artifacts):
        check_artifact(folder, name, manifest.artifact(name, folder))
    return manifest
