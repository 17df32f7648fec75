"""leed_train: datasets, networks, losses and the training loop of LEED.

Importing this package does not import torch; the modules that need it do.
"""

__version__ = "0.1.0"
