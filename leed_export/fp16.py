"""FP16 graphs from FP32 ONNX, with the numerically sensitive parts kept FP32.

Policy (NOTES, "FP16 with onnxconverter-common"): normalisation layers (InstanceNorm's
variance overflows in FP16; BatchNorm if any survives folding) and the output layer (the
last conv and its activation, whose rounding lands directly on the pixels or the code) stay
FP32; inputs and outputs stay float32 (`keep_io_types`) so a host feeds the same buffers.
`op_block_list` REPLACES the converter's default list, so it is extended, never replaced.
"""

from __future__ import annotations

import onnx

from leed_runtime.errors import LeedError

FP32_OPS = ("InstanceNormalization", "BatchNormalization")
# Elementwise ops that follow the output layer's conv and belong to it.
_OUTPUT_ACTIVATIONS = {"Tanh", "Sigmoid", "Relu", "LeakyRelu", "Clip", "Identity"}


def output_layer_nodes(model: onnx.ModelProto) -> list[str]:
    """Names of the nodes that make the graph outputs: each output's producer, and walking back
    through a trailing activation, the layer (conv) it activates."""
    producers = {out: node for node in model.graph.node for out in node.output}
    names: list[str] = []
    for output in model.graph.output:
        node = producers.get(output.name)
        while node is not None:
            names.append(node.name)
            if node.op_type not in _OUTPUT_ACTIVATIONS:
                break
            node = producers.get(node.input[0])
    return names


def convert_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """An FP16 copy of `model` (norms and output layer FP32, float32 I/O); LeedError on failure."""
    try:
        from onnxconverter_common import float16
    except ImportError:
        raise LeedError("--fp16 needs onnxconverter-common: pip install 'leed[train]'") from None
    model = onnx.ModelProto.FromString(model.SerializeToString())
    # Dynamo lists every weight in value_info (the converter then round-trips blocked norm
    # weights through FP16, NOTES) and onnxslim duplicates entries (the converter then skips
    # casts after blocked nodes): drop it all; the converter re-infers the shapes.
    del model.graph.value_info[:]
    for i, node in enumerate(model.graph.node):
        if not node.name:
            node.name = f"{node.op_type}_{i}"  # the node block list needs names
    blocked = output_layer_nodes(model)
    taps = _tap_outputs(model)
    try:
        model = float16.convert_float_to_float16(
            model,
            keep_io_types=True,
            op_block_list=float16.DEFAULT_OP_BLOCK_LIST + list(FP32_OPS),
            node_block_list=blocked,
        )
    except Exception as exc:  # the converter raises bare Exceptions / ValueErrors
        raise LeedError(
            f"--fp16: onnxconverter-common failed ({type(exc).__name__}: {exc}); export without --fp16"
        ) from None
    _untap_outputs(model, taps)
    return model


def _tap_outputs(model: onnx.ModelProto) -> set[str]:
    """Route every graph output through a new Identity node.

    onnxconverter-common 1.16 cannot keep a blocked (FP32) node that writes a graph output
    with `keep_io_types` ("The downstream node of the second cast node should be graph
    output"). With an Identity in between it converts, leaving FP32 -> Cast16 -> Identity ->
    Cast32 -> output, which `_untap_outputs` collapses back to FP32 all the way."""
    names = set()
    for output in model.graph.output:
        inner = f"{output.name}__fp32"
        for node in model.graph.node:
            node.output[:] = [inner if o == output.name else o for o in node.output]
        name = f"{output.name}__tap"
        model.graph.node.append(onnx.helper.make_node("Identity", [inner], [output.name], name=name))
        names.add(name)
    return names


def _untap_outputs(model: onnx.ModelProto, taps: set[str]) -> None:
    """Collapse Cast16 -> Identity(tap) -> Cast32 -> output into Identity(tap) -> output."""
    graph = model.graph
    producers = {out: node for node in graph.node for out in node.output}
    removed: list[onnx.NodeProto] = []
    for output in graph.output:
        cast32 = producers.get(output.name)
        tap = producers.get(cast32.input[0]) if cast32 is not None and cast32.op_type == "Cast" else None
        cast16 = producers.get(tap.input[0]) if tap is not None and tap.name in taps else None
        if cast16 is None or cast16.op_type != "Cast":
            raise LeedError(
                f"--fp16: unexpected converter output around graph output {output.name!r}; "
                "check the onnxconverter-common version (1.16 is tested) or export without --fp16"
            )
        stale = {cast32.input[0], tap.input[0]}
        tap.input[0], tap.output[0] = cast16.input[0], output.name
        removed += [cast16, cast32]
        kept = [vi for vi in graph.value_info if vi.name not in stale]
        del graph.value_info[:]
        graph.value_info.extend(kept)
    kept_nodes = [n for n in graph.node if all(n is not r for r in removed)]
    del graph.node[:]
    graph.node.extend(kept_nodes)
