"""PyTorch module -> one single-file ONNX graph: dynamo export with a dynamic batch axis,
onnxslim simplification, `metadata_props`, `onnx.checker`.

All graphs go through `torch.onnx.export(dynamo=True)` (torch >= 2.9's default): it exports
every leed graph, so there is no legacy path. Weights stay inside the file
(`external_data=False`): OpenCV's C++ importer, TensorRT's `parse(bytes)` and ONNX Runtime
loading from bytes all need that (NOTES).
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path

import onnx
import torch

from leed_export.graphs import GraphSpec
from leed_runtime.errors import LeedError

MIN_OPSET = 18  # the dynamo exporter's lowest


def max_opset() -> int:
    """The newest opset this onnx release knows."""
    return onnx.defs.onnx_opset_version()


def export_graph(
    module: torch.nn.Module, spec: GraphSpec, feeds: dict[str, torch.Tensor], opset: int | None, dynamic: bool = True
) -> onnx.ModelProto:
    """Export `module` with inputs/outputs named as `spec` and axis 0 of every input dynamic
    (or every shape fixed to the feeds' with `dynamic=False`). `feeds` (batch >= 2 when
    dynamic, so the batch is not specialised) are the example inputs."""
    batch = torch.export.Dim("batch", min=1, max=4096)
    names = [name for name, _ in spec.inputs]
    kwargs = {"opset_version": opset} if opset is not None else {}
    try:
        with quiet_exporter():
            program = torch.onnx.export(
                module,
                tuple(feeds[n] for n in names),
                dynamo=True,
                external_data=False,
                input_names=names,
                output_names=[name for name, _ in spec.outputs],
                dynamic_shapes={n: {0: batch} for n in names} if dynamic else None,
                verbose=False,
                **kwargs,
            )
    except Exception as exc:  # the exporter raises many types; the run dir is the thing to fix
        raise LeedError(f"{spec.name}: torch.onnx.export failed ({type(exc).__name__}: {one_line(exc)})") from None
    return program.model_proto


@contextlib.contextmanager
def quiet_exporter() -> Iterator[None]:
    """torch.onnx's exporter prints progress, torchvision-missing warnings and deprecation
    notes; keep each export's output to our one line."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.onnx._internal.exporter._registration")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def simplify(model: onnx.ModelProto) -> tuple[onnx.ModelProto, str]:
    """onnxslim's simplification (constant folding, dead nodes) and a note of what was done.
    Its parity is gated afterwards like any graph's, so an unsafe rewrite fails the export."""
    try:
        import onnxslim
    except ImportError:
        return model, "not simplified: onnxslim is not installed (pip install onnxslim)"
    before = len(model.graph.node)
    with contextlib.redirect_stdout(io.StringIO()):
        slim = onnxslim.slim(model)
    return slim, f"onnxslim {onnxslim.__version__}: {before} -> {len(slim.graph.node)} nodes"


def set_metadata(model: onnx.ModelProto, metadata: dict[str, str]) -> None:
    """Replace the graph's `metadata_props` with `metadata` (string keys and values)."""
    del model.metadata_props[:]
    for key, value in sorted(metadata.items()):
        model.metadata_props.add(key=key, value=value)


def check(model: onnx.ModelProto, file: str) -> None:
    """`onnx.checker` with shape inference; LeedError naming the file."""
    try:
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise LeedError(f"{file}: onnx.checker rejects it ({one_line(exc)})") from None


def save(model: onnx.ModelProto, path: Path) -> None:
    """One self-contained file (weights inside)."""
    onnx.save_model(model, str(path), save_as_external_data=False)


def opset_of(model: onnx.ModelProto) -> int:
    """The default-domain opset of `model`."""
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]
