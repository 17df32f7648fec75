"""The backend table: every kind of backend leed runs, best first (Ultralytics' `export_formats()`).

Each backend module defines its class and the rows of the kinds it serves (`BackendRow`,
backends/base.py); `BACKENDS` orders them. Everything that knows backends reads this table:
the `--backend`/`--engine` choices of leed-run, leed-export and leed-bench, `leed-doctor`,
backend selection (select.py), the engine builder (leed_export/trt_build.py) and
`open_backend`. A new backend is one module and one entry here.
`python -m leed_runtime.backends.table` prints the table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from leed_runtime.backends.base import Backend, BackendRow
from leed_runtime.backends.onnxruntime import ONNXRUNTIME_CPU, ONNXRUNTIME_CUDA
from leed_runtime.backends.openvino import OPENVINO
from leed_runtime.backends.tensorrt import TENSORRT, TENSORRT_RTX
from leed_runtime.errors import LeedError
from leed_runtime.manifest import Manifest

# Preference order of `--backend auto`. A CPU kind after the first that works is taken only
# where it is measurably faster on the graph (timed when auto chooses, select.py).
BACKENDS: tuple[BackendRow, ...] = (TENSORRT, TENSORRT_RTX, ONNXRUNTIME_CUDA, ONNXRUNTIME_CPU, OPENVINO)


def backend_kinds() -> tuple[str, ...]:
    """Every `--backend` value but `auto`, best first."""
    return tuple(row.kind for row in BACKENDS)


def engine_rows() -> tuple[BackendRow, ...]:
    """The kinds that run engines leed-export builds (`--engine`)."""
    return tuple(row for row in BACKENDS if row.engine_tag is not None)


def engine_kinds() -> tuple[str, ...]:
    return tuple(row.kind for row in engine_rows())


def backend_row(kind: str) -> BackendRow:
    """The row of backend `kind`; LeedError listing the choices for an unknown one."""
    for row in BACKENDS:
        if row.kind == kind:
            return row
    raise LeedError(f"--backend {kind!r} is unknown; choose one of auto, {', '.join(backend_kinds())}")


def check_options(row: BackendRow, options: dict[str, Any]) -> None:
    """Refuse options the kind does not take, naming the kinds that do (Ultralytics' validate_args)."""
    unknown = sorted(set(options) - row.options)
    if not unknown:
        return
    takers = [r for r in BACKENDS if set(unknown) <= r.options]
    what = "CUDA options" if takers and not row.uses_cuda and all(r.uses_cuda for r in takers) else "options"
    fix = (
        f"use --backend {' or '.join(r.kind for r in takers)}"
        if takers
        else f"it takes {', '.join(sorted(row.options))}"
    )
    raise LeedError(f"{row.kind} takes no {what} ({', '.join(unknown)}); {fix}")


def open_backend(kind: str, folder: Path, manifest: Manifest, artifact_name: str, **options: Any) -> Backend:
    """Construct (not activate) the backend `kind` for one artifact of an export folder."""
    row = backend_row(kind)
    check_options(row, options)
    artifact = manifest.artifact(artifact_name, Path(folder))
    return row.backend(Path(folder), artifact, artifact_name, **row.params, **options)


def describe() -> str:
    """The table as text, one line per kind."""
    head = ("kind", "class", "library", "module", "extra", "suffix", "CUDA", "GPUs", "options")
    lines = [head] + [
        (
            r.kind,
            r.backend.__name__,
            r.library,
            r.module,
            r.extra,
            r.suffix,
            "yes" if r.uses_cuda else "no",
            ",".join(r.compute_capabilities) or "all",
            ",".join(sorted(r.options)),
        )
        for r in BACKENDS
    ]
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines)


if __name__ == "__main__":
    print(describe())
