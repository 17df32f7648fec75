"""Engine backends behind one interface: base.py (Backend, BackendRow; knows no subclass), one
module per library (onnxruntime.py, tensorrt.py: a class and its table rows), table.py (the
backend table and `open_backend`), select.py (which kind and artifact run an export here)."""
