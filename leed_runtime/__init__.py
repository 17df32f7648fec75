"""leed_runtime: the torch-free base of leed (face geometry, manifest, engine backends, video).

Nothing here may import torch, leed_train or leed_export.
"""

__version__ = "0.1.0"
