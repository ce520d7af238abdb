"""Classification metrics: top-k accuracy and mean average precision (multi-label)."""

from __future__ import annotations

import torch
from torch import Tensor


def topk_correct(logits: Tensor, target: Tensor, ks: tuple[int, ...] = (1, 5)) -> dict[int, int]:
    """Number of samples whose class is among the ``k`` best logits, for each ``k``."""
    maxk = min(max(ks), logits.shape[1])
    best = logits.topk(maxk, dim=1).indices
    hits = best.eq(target.view(-1, 1))
    return {k: int(hits[:, :min(k, maxk)].any(dim=1).sum()) for k in ks}


def average_precision(scores: Tensor, labels: Tensor) -> Tensor:
    """AP per class for ``scores`` [N, C] and multi-hot ``labels`` [N, C] (NaN for classes without positives)."""
    order = scores.argsort(dim=0, descending=True)
    sorted_labels = labels.gather(0, order).float()
    hits = sorted_labels.cumsum(0)
    ranks = torch.arange(1, labels.shape[0] + 1, dtype=torch.float32).unsqueeze(1)
    precision = hits / ranks
    positives = sorted_labels.sum(0)
    ap = (precision * sorted_labels).sum(0) / positives.clamp_min(1)
    return torch.where(positives > 0, ap, torch.full_like(ap, float("nan")))


def mean_average_precision(scores: Tensor, labels: Tensor) -> float:
    """mAP over classes that have at least one positive (the AudioSet metric)."""
    ap = average_precision(scores.float(), labels)
    valid = ~ap.isnan()
    return float(ap[valid].mean()) if valid.any() else float("nan")
