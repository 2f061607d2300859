"""Symmetric InfoNCE (CLIP-style) with false-negative masking."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def info_nce(
    query: torch.Tensor,
    gallery: torch.Tensor,
    temperature: float | torch.Tensor,
    positive_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Symmetric InfoNCE over a batch of aligned pairs.

    Args:
        query: ``(B, D)`` L2-normalised query embeddings (bundle views).
        gallery: ``(B, D)`` L2-normalised gallery embeddings; row ``i`` is the positive of query ``i``.
        temperature: softmax temperature (scalar).
        positive_mask: optional ``(B, B)`` bool, True where gallery ``j`` is also a true match of query
            ``i``. Those off-diagonal entries are removed from both softmax denominators instead of being
            treated as negatives (a bundle holds several products; a product appears in several bundles).

    Returns:
        Scalar loss: the mean of the query->gallery and gallery->query cross-entropies.
    """
    if query.shape != gallery.shape or query.dim() != 2:
        raise ValueError(
            f"query and gallery must both be (B, D); got {tuple(query.shape)} and {tuple(gallery.shape)}"
        )
    logits = query @ gallery.T / temperature
    batch = logits.shape[0]
    targets = torch.arange(batch, device=logits.device)
    if positive_mask is not None:
        eye = torch.eye(batch, dtype=torch.bool, device=logits.device)
        logits = logits.masked_fill(positive_mask.to(logits.device) & ~eye, float("-inf"))
    return 0.5 * (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets))


class InfoNCELoss(nn.Module):
    """Module form of :func:`info_nce` with a fixed temperature (config group ``loss/infonce``)."""

    def __init__(self, temperature: float = 0.05) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.temperature = temperature

    def forward(
        self, query: torch.Tensor, gallery: torch.Tensor, positive_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        return info_nce(query, gallery, self.temperature, positive_mask)
