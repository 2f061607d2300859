"""Regularisers that hold a fine-tuned backbone near its pretrained self, so that what it learns on the
synthetic catalogue does not erase what transfers to real photos.

* L2-SP (Li et al., 2018): ``sum ||w - w0||^2`` over the fine-tuned weights, towards the pretrained
  weights ``w0`` rather than towards zero as weight decay does.
* Feature distillation: the fine-tuned backbone's pooled features of the training images stay close to
  those of a frozen copy of the pretrained backbone (LwF-style, on features rather than logits).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F

DistillKind = Literal["cosine", "mse"]


def l2_sp_penalty(weights: Sequence[torch.Tensor], anchors: Sequence[torch.Tensor]) -> torch.Tensor:
    """``sum_i ||weights_i - anchors_i||^2`` ; ``anchors``: the pretrained tensors, same shapes."""
    if len(weights) != len(anchors):
        raise ValueError(f"L2-SP: {len(weights)} weights but {len(anchors)} anchors")
    if not weights:
        raise ValueError("L2-SP: no trainable weights to anchor")
    return torch.stack([(w - a.detach()).float().pow(2).sum() for w, a in zip(weights, anchors)]).sum()


def feature_distillation(
    student: torch.Tensor, teacher: torch.Tensor, kind: DistillKind = "cosine"
) -> torch.Tensor:
    """Distance of ``student (B, F)`` features from ``teacher (B, F)``'s, averaged over the batch.

    ``cosine``: ``1 - cos(student, teacher)`` (direction only, what cosine retrieval reads);
    ``mse``: mean squared difference per feature. The teacher receives no gradient."""
    if student.shape != teacher.shape:
        raise ValueError(f"distillation: student {tuple(student.shape)} vs teacher {tuple(teacher.shape)}")
    student, teacher = student.float(), teacher.detach().float()
    if kind == "cosine":
        return (1.0 - F.cosine_similarity(student, teacher, dim=-1)).mean()
    if kind == "mse":
        return F.mse_loss(student, teacher)
    raise ValueError(f"distillation kind must be 'cosine' or 'mse', got {kind!r}")
