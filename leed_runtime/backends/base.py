"""One interface for every engine (Polygraphy's runner, FasterLivePortrait's wrapper):

    with open_backend("onnxruntime-cpu", folder, manifest, "edit") as engine:
        out = engine.infer({"face": x, "dexp": d, "alpha": a})   # name -> array, both ways

A backend is activated once (sessions, engines, buffers allocated at the profile's max
shape), checks feeds by name, dtype and shape against the manifest's specs, and returns
outputs by name (never by position). `latency_ms` is the last call's time. Backends are
imported lazily so the base needs none of their libraries.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from leed_runtime.errors import LeedError
from leed_runtime.manifest import Artifact, Manifest, TensorSpec, check_artifact

BACKENDS = ("tensorrt", "tensorrt-rtx", "onnxruntime-cuda", "onnxruntime-cpu")


class Backend:
    """Base class: subclasses implement `_activate`, `_infer`, `_deactivate`."""

    name = "base"

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
            self._activate()
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


def open_backend(kind: str, folder: Path, manifest: Manifest, artifact_name: str, **options: Any) -> Backend:
    """Construct (not activate) the backend `kind` for one artifact of an export folder."""
    artifact = manifest.artifact(artifact_name, Path(folder))
    if kind == "onnxruntime-cpu" or kind == "onnxruntime-cuda":
        from leed_runtime.backends.onnxruntime import OnnxRuntimeBackend

        return OnnxRuntimeBackend(
            folder, artifact, artifact_name, device="cuda" if kind.endswith("cuda") else "cpu", **options
        )
    if kind in ("tensorrt", "tensorrt-rtx"):
        from leed_runtime.backends.tensorrt import TensorRTBackend

        return TensorRTBackend(folder, artifact, artifact_name, library=kind.replace("-", "_"), **options)
    raise LeedError(f"--backend {kind!r} is unknown; choose one of auto, {', '.join(BACKENDS)}")
