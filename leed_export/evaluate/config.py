"""The options of `leed-eval`'s exact protocol (`EvalConfig`), shared by every module of it."""

from __future__ import annotations

from dataclasses import dataclass

from leed_runtime.errors import LeedError

DEFAULT_GATE = 0.1  # leed-export's --residual-gate default


@dataclass
class EvalConfig:
    """Every option of `leed-eval`; saved as `eval_config.json` in the report folder."""

    model_dir: str
    data_dir: str
    out: str
    subjects: int = 6  # held-out subjects measured (the first N of a seeded shuffle)
    faces: int = 48  # inputs I_A; each is edited toward every other expression that has a ground truth
    baselines: tuple[str, ...] = ()  # runs trained with --no-q / --no-siamese (PyTorch run folders)
    inception: str = ""  # TorchScript/ONNX Inception features (B,3,299,299 in [-1,1] -> B,2048) for real FID
    seed: int = 0
    alpha: float = 1.0  # edit strength of every measured edit (the paper's tables: 1)
    device: str = "cpu"  # cpu | cuda | auto (PyTorch runs; exports run on onnxruntime's CPU provider)
    batch_size: int = 32
    classifier_size: int = 64  # classifiers see crops downsampled to this size (speed)
    classifier_width: int = 16  # ResNet-18 stem width
    classifier_epochs: int = 6
    classifier_images: int = 2000  # training images per classifier (seeded subsample)
    tsne_points: int = 400
    figure_inputs: int = 4
    residual_edit: bool = False  # a training run's edit as `leed-export --residual-edit` builds it
    residual_gate: float = DEFAULT_GATE  # with residual_edit: as `leed-export --residual-gate`

    def __post_init__(self) -> None:
        check_residual(self.residual_edit, self.residual_gate)


def check_residual(residual_edit: bool, residual_gate: float) -> None:
    """`--residual-gate` as leed-export takes it: 0 .. 2, and only with `--residual-edit`."""
    if not 0 <= residual_gate <= 2:
        raise LeedError(f"--residual-gate {residual_gate}: choose 0 (off) .. 2, in [-1, 1] image units")
    if residual_gate != DEFAULT_GATE and not residual_edit:
        raise LeedError(f"--residual-gate {residual_gate} only applies to --residual-edit; add it or drop the gate")
