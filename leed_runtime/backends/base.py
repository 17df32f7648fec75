"""One interface for every engine (Polygraphy's runner, FasterLivePortrait's wrapper):

    with open_backend("onnxruntime-cpu", folder, manifest, "edit") as engine:   # backends/table.py
        out = engine.infer({"face": x, "dexp": d, "alpha": a})   # name -> array, both ways

A backend is activated once (sessions, engines, buffers allocated at the profile's max
shape), checks feeds by name, dtype and shape against the manifest's specs, and returns
outputs by name (never by position). `latency_ms` is the last call's time.

This module knows no subclass. A backend module defines its class and one `BackendRow` per
kind it serves; `backends/table.py` lists the rows. Libraries are imported by `BackendRow.load`
when a backend is used, so importing a backend module needs none of them.
"""

from __future__ import annotations

import contextlib
import importlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from leed_runtime.errors import LeedError, one_line
from leed_runtime.manifest import Artifact, Manifest, TensorSpec, check_artifact


class Backend:
    """Base class: subclasses implement `_activate`, `_infer`, `_deactivate`, set `row` (and
    `name`, its kind) and may refine the class-level checks `library_problem` and
    `artifact_problem` that backend selection asks before choosing a kind."""

    name = "base"
    row: BackendRow

    def __init__(self, folder: Path, artifact: Artifact, artifact_name: str) -> None:
        self.folder = Path(folder)
        self.artifact = artifact
        self.artifact_name = artifact_name
        self.active = False
        self.latency_ms = float("nan")

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> Backend:
        self.activate()
        return self

    def __exit__(self, *exc: object) -> None:
        self.deactivate()

    def activate(self) -> None:
        if not self.active:
            try:
                self._activate()
            except BaseException:
                # what a failed open made (a stream, buffers, a session) is freed now, not at exit
                with contextlib.suppress(Exception):
                    self._deactivate()
                raise
            self.active = True

    def deactivate(self) -> None:
        if self.active:
            self._deactivate()
            self.active = False

    # -- inference -------------------------------------------------------------------------
    @property
    def inputs(self) -> list[TensorSpec]:
        return self.artifact.inputs

    @property
    def outputs(self) -> list[TensorSpec]:
        return self.artifact.outputs

    def infer(self, feeds: dict[str, Any]) -> dict[str, Any]:
        """Run once: `feeds` by input name; returns outputs by name. Output arrays may be
        reused buffers: copy what you keep across calls."""
        if not self.active:
            raise RuntimeError(f"{self.name} backend for {self.artifact_name!r} used before activate()")
        dims = self.check_feeds(feeds)
        start = time.perf_counter()
        out = self._infer(feeds, dims)
        self.latency_ms = (time.perf_counter() - start) * 1e3
        return out

    def check_feeds(self, feeds: dict[str, Any]) -> dict[str, int]:
        """Names, dtypes and shapes against the manifest (Polygraphy's check_inputs); returns
        the sizes of the symbolic dimensions (e.g. {"batch": 4}), which must agree across inputs."""
        expected = {t.name: t for t in self.inputs}
        missing, unknown = set(expected) - set(feeds), set(feeds) - set(expected)
        if missing or unknown:
            raise LeedError(
                f"{self.artifact.file}: inputs {sorted(expected)} expected, got {sorted(feeds)} "
                f"(missing {sorted(missing)}, unknown {sorted(unknown)})"
            )
        dims: dict[str, int] = {}
        for name, spec in expected.items():
            value = feeds[name]
            dtype = getattr(value, "dtype", None)
            if dtype is None or np.dtype(str(dtype).replace("torch.", "")) != np.dtype(spec.dtype):
                raise LeedError(
                    f"{self.artifact.file}: input {name!r} must be {spec.dtype}, got {dtype or type(value).__name__}"
                )
            shape = tuple(getattr(value, "shape", ()))
            if len(shape) != len(spec.shape) or any(
                isinstance(want, int) and want != got for want, got in zip(spec.shape, shape, strict=False)
            ):
                raise LeedError(f"{self.artifact.file}: input {name!r} must have shape {spec.shape}, got {list(shape)}")
            for want, got in zip(spec.shape, shape, strict=True):
                if isinstance(want, str) and dims.setdefault(want, int(got)) != got:
                    raise LeedError(
                        f"{self.artifact.file}: input {name!r} has {want}={got}, other inputs have {want}={dims[want]}"
                    )
        return dims

    def check_file(self, verify: bool = True) -> Path:
        """The artifact's path; refuses a missing file and (with `verify`) a modified one or
        one whose parity gate failed (`leed_runtime.manifest.check_artifact`)."""
        return check_artifact(self.folder, self.artifact_name, self.artifact, full=verify)

    # -- for subclasses ----------------------------------------------------------------------
    def _activate(self) -> None:
        raise NotImplementedError

    def _infer(self, feeds: dict[str, Any], dims: dict[str, int]) -> dict[str, Any]:
        raise NotImplementedError

    def _deactivate(self) -> None:
        pass

    # -- checks before choosing a kind (no instance yet) -------------------------------------
    @classmethod
    def library_problem(cls, row: BackendRow, module: ModuleType) -> str | None:
        """What the imported library lacks for `row.kind` (with the fix); None: nothing."""
        return None

    @classmethod
    def artifact_problem(
        cls,
        row: BackendRow,
        folder: Path,
        manifest: Manifest,
        artifact_name: str,
        module: ModuleType,
        compute_capability: str | None,
    ) -> str | None:
        """Why this artifact cannot run with this library on a GPU of `compute_capability`
        (None: no GPU here, so only what needs none is checked), with the fix; None if it can."""
        return None


def gate_feeds(specs: list[TensorSpec], batch: int = 2, seed: int = 0) -> dict[str, np.ndarray]:
    """Deterministic inputs for `specs` (the manifest's; parity gates and the backend race):
    3-channel images uniform in [-1, 1], 1-D inputs (alpha) 1.0, other float inputs
    0.1 x N(0, 1); symbolic dimensions `batch`, other symbolic dimensions (P-net's height and
    width) 64."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for spec in specs:
        shape = tuple(int(d) if isinstance(d, int) else (batch if i == 0 else 64) for i, d in enumerate(spec.shape))
        dtype = np.dtype(spec.dtype)
        if len(shape) == 4 and shape[1] == 3:
            value = rng.uniform(-1, 1, shape)
        elif len(shape) == 1:
            value = np.ones(shape)
        else:
            value = 0.1 * rng.standard_normal(shape)
        feeds[spec.name] = np.ascontiguousarray(value, dtype=dtype)
    return feeds


@dataclass(frozen=True)
class BackendRow:
    """One row of the backend table (`backends/table.py`): a backend kind and what it needs."""

    kind: str  # the --backend value (and, for engines, the --engine value)
    title: str  # its name in messages
    backend: type[Backend]  # the class that runs it, constructed with `params` and the user's options
    params: Mapping[str, Any]  # constructor arguments fixed by the kind, e.g. {"device": "cuda"}
    library: str  # leed's name for its library: the manifest's engine.library, the doctor's line
    module: str  # the Python module that library is imported as
    extra: str  # the pip extra that installs it
    suffix: str  # its artifacts' file suffix, ".onnx" or ".plan" (the manifest's format, without the dot)
    uses_cuda: bool  # needs a CUDA GPU; then the pipeline gives all its graphs one CUDA stream
    options: frozenset[str]  # the options `open_backend(**options)` accepts for it
    engine_tag: str | None = None  # engines: the tag of their artifact names (edit.fp16.rtx); None: ONNX graphs
    provider: str | None = None  # the onnxruntime execution provider it needs
    compute_capabilities: tuple[str, ...] = ()  # GPUs it runs on ("8.6"; "12.x": every 12); (): all
    timing_cache: bool = False  # its builder keeps a timing cache (TensorRT; a no-op in TensorRT-RTX)
    detector: bool = True  # runs the MTCNN graphs too; False: the pipeline gives them to the best
    # onnxruntime here, as for engines (openvino: slower on P-net's per-level input sizes, measured)

    @property
    def install(self) -> str:
        return f"pip install '{self.extra}'"

    @property
    def format(self) -> str:
        """The manifest's `format` of the artifacts it runs: "onnx" or "plan"."""
        return self.suffix.lstrip(".")

    def load(self) -> ModuleType:
        """Import the library; missing or broken (PyPI stub wheels raise anything, even
        SystemExit) -> LeedError naming the pip extra."""
        try:
            return importlib.import_module(self.module)
        except (Exception, SystemExit) as exc:
            raise LeedError(f"{self.module} is not importable ({one_line(str(exc))[:160]}); {self.install}") from None

    def version(self, module: ModuleType | None = None) -> str:
        """The library's version, as engines record it and the runtime compares it."""
        return str((module if module is not None else self.load()).__version__)

    def runs_on(self, compute_capability: str) -> bool:
        """Whether it runs on a GPU of this compute capability ("8.6")."""
        if not self.compute_capabilities:
            return True
        major = compute_capability.split(".", 1)[0]
        return compute_capability in self.compute_capabilities or f"{major}.x" in self.compute_capabilities

    def library_problem(self, module: ModuleType) -> str | None:
        return self.backend.library_problem(self, module)

    def artifact_problem(
        self, folder: Path, manifest: Manifest, artifact_name: str, module: ModuleType, compute_capability: str | None
    ) -> str | None:
        return self.backend.artifact_problem(self, folder, manifest, artifact_name, module, compute_capability)
