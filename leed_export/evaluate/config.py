"""The options of `leed-eval`'s exact protocol (`EvalConfig`), shared by every module of it."""

from __future__ import annotations

from dataclasses import dataclass

from leed_runtime.errors import LeedError
from leed_runtime.run import LIMITS
from leed_train.config import SEED, bounded, check_fields, check_number
from leed_train.model import DEFAULT_RESIDUAL_GATE, RESIDUAL_GATE

DEFAULT_GATE, GATE = DEFAULT_RESIDUAL_GATE, RESIDUAL_GATE  # --residual-gate, as leed-export takes it


@dataclass
class EvalConfig:
    """Every option of `leed-eval`; saved as `eval_config.json` in the report folder."""

    model_dir: str
    data_dir: str
    out: str
    subjects: int = bounded(6, min=1)  # held-out subjects measured (the first N of a seeded shuffle)
    faces: int = bounded(48, min=1)  # inputs I_A; each is edited toward every other expression that has a ground truth
    baselines: tuple[str, ...] = ()  # runs trained with --no-q / --no-siamese (PyTorch run folders)
    inception: str = ""  # TorchScript/ONNX Inception features (B,3,299,299 in [-1,1] -> B,2048) for real FID
    seed: int = bounded(0, **SEED)
    alpha: float = bounded(
        1.0, **LIMITS["alpha"].bounds
    )  # edit strength of every edit (the paper's tables: 1), as leed-run's
    device: str = "cpu"  # cpu | cuda | auto (PyTorch runs; exports run on onnxruntime's CPU provider)
    batch_size: int = bounded(32, min=1)
    classifier_size: int = bounded(64, min=16)  # classifiers see crops downsampled to this size (speed)
    classifier_width: int = bounded(16, min=1)  # ResNet-18 stem width
    classifier_epochs: int = bounded(6, min=1)
    classifier_images: int = bounded(2000, min=1)  # training images per classifier (seeded subsample)
    tsne_points: int = bounded(400, min=2)
    figure_inputs: int = bounded(4, min=1)
    residual_edit: bool = False  # a training run's edit as `leed-export --residual-edit` builds it
    residual_gate: float = bounded(DEFAULT_GATE, **GATE)  # with residual_edit: as `leed-export --residual-gate`

    def __post_init__(self) -> None:
        check_fields(self)  # types, declared ranges, finite floats; messages name the option
        check_residual(self.residual_edit, self.residual_gate)


def check_residual(residual_edit: bool, residual_gate: float) -> None:
    """`--residual-gate` as leed-export takes it: 0 .. 2, and only with `--residual-edit`."""
    check_number("--residual-gate", residual_gate, **GATE)
    if residual_gate != DEFAULT_GATE and not residual_edit:
        raise LeedError(f"--residual-gate {residual_gate} only applies to --residual-edit; add it or drop the gate")
