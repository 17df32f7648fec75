"""leed_export: ONNX / FP16 / TensorRT export with parity gates (lands with the export issue)."""

__version__ = "0.1.0"
