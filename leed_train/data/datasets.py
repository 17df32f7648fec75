"""torch Datasets over cached crops: `FaceCrops` (labelled crops) and `PairDataset` (LEED pairs)."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from leed_runtime.errors import LeedError
from leed_train.data.names import EXPRESSIONS, Sample


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 HxWx3 -> float32 3xHxW in [-1, 1]."""
    return torch.from_numpy(np.asarray(image).astype(np.float32).transpose(2, 0, 1) / 127.5 - 1.0)


def to_uint8(tensor: torch.Tensor) -> np.ndarray:
    """float CxHxW (or NxCxHxW) in [-1, 1] -> uint8 HxWxC (or NxHxWxC)."""
    t = ((tensor.detach().float().cpu().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
    return t.permute(*range(t.dim() - 3), -2, -1, -3).numpy()


def dense_ids(values: list[str]) -> np.ndarray:
    """Map labels to 0..K-1 in sorted order (int64 array)."""
    lookup = {v: k for k, v in enumerate(sorted(set(values)))}
    return np.array([lookup[v] for v in values], dtype=np.int64)


def _image(crop: np.ndarray, flip: bool) -> torch.Tensor:
    return to_tensor(crop[:, ::-1] if flip else crop)


class FaceCrops(Dataset):
    """Crops with labels: image, index, neutral (1/0/-1), expression (class or -1), subject (dense id)."""

    def __init__(self, crops: np.ndarray, samples: list[Sample], flip: bool) -> None:
        if len(crops) != len(samples):
            raise ValueError(f"{len(crops)} crops but {len(samples)} samples")
        self.crops, self.samples, self.flip = crops, samples, flip
        self.subject_ids = dense_ids([s.subject for s in samples])
        self.neutral = np.array([-1.0 if s.neutral is None else float(s.neutral) for s in samples], dtype=np.float32)
        self.expression = np.array(
            [EXPRESSIONS.index(s.expression) if s.expression in EXPRESSIONS else -1 for s in samples], dtype=np.int64
        )

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> dict:
        flip = self.flip and bool(torch.rand(()) < 0.5)
        return {
            "image": _image(self.crops[i], flip),
            "index": int(i),
            "neutral": float(self.neutral[i]),
            "expression": int(self.expression[i]),
            "subject": int(self.subject_ids[i]),
        }


class PairDataset(Dataset):
    """LEED stage-2 pairs: I_A = crop i, R_B = a crop of another subject, each with its neutral.

    `neutrals[i, 0]` is the neutralizer output for crop i, `neutrals[i, 1]` for the
    horizontally flipped crop i. The partner and flips are drawn from (seed, epoch, i).
    """

    def __init__(
        self, crops: np.ndarray, neutrals: np.ndarray, subject_ids: np.ndarray, flip: bool = True, seed: int = 0
    ) -> None:
        subject_ids = np.asarray(subject_ids)
        n = len(crops)
        if neutrals.shape != (n, 2, *crops.shape[1:]) or subject_ids.shape != (n,):
            raise ValueError(
                f"shapes disagree: crops {crops.shape}, neutrals {neutrals.shape} (want {(n, 2, *crops.shape[1:])}), "
                f"subject_ids {subject_ids.shape}"
            )
        if len(np.unique(subject_ids)) < 2:
            raise LeedError("LEED pairs need faces of at least 2 different subjects; the training set has fewer")
        self.crops, self.neutrals, self.subject_ids = crops, neutrals, subject_ids
        self.flip, self.seed, self.epoch = flip, seed, 0
        # Indices grouped by subject: subject s owns order[start[i]:start[i] + count[i]].
        self._order = np.argsort(subject_ids, kind="stable")
        _, first, counts = np.unique(subject_ids[self._order], return_index=True, return_counts=True)
        rank = np.empty(n, dtype=np.int64)
        rank[self._order] = np.arange(n)
        group = np.searchsorted(first, rank, side="right") - 1
        self._start, self._count = first[group], counts[group]

    def set_epoch(self, epoch: int) -> None:
        """Draw new partners and flips for this epoch."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.crops)

    def draw(self, i: int) -> tuple[int, bool, bool]:
        """(index of R_B, flip I_A, flip R_B) for item i in the current epoch."""
        rng = np.random.default_rng((self.seed, self.epoch, int(i)))
        k = int(rng.integers(len(self.crops) - self._count[i]))
        k += self._count[i] if k >= self._start[i] else 0
        flip_a, flip_b = (rng.random(2) < 0.5) & self.flip
        return int(self._order[k]), bool(flip_a), bool(flip_b)

    def __getitem__(self, i: int) -> dict:
        j, flip_a, flip_b = self.draw(i)
        return {
            "ia": _image(self.crops[i], flip_a),
            "ia_n": to_tensor(self.neutrals[i, int(flip_a)]),
            "rb": _image(self.crops[j], flip_b),
            "rb_n": to_tensor(self.neutrals[j, int(flip_b)]),
        }
