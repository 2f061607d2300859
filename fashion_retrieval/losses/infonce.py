"""Symmetric InfoNCE (CLIP-style) over bundle x product batches, with false-negative masking."""

from __future__ import annotations

import torch
from torch import nn


def _per_positive_cross_entropy(logits: torch.Tensor, positive_mask: torch.Tensor) -> torch.Tensor:
    """``-log softmax`` of each positive entry against its row's negatives only.

    Other positives of the same row are left out of the denominator: they are not negatives, and a
    bundle that lists several products must not push its own products apart. Returns ``(P,)`` losses.
    """
    negatives = logits.masked_fill(positive_mask, float("-inf"))
    negative_lse = torch.logsumexp(negatives, dim=1, keepdim=True).expand_as(logits)
    per_entry = torch.logaddexp(logits, negative_lse) - logits
    return per_entry[positive_mask]


def info_nce(
    query: torch.Tensor,
    gallery: torch.Tensor,
    temperature: float | torch.Tensor,
    positive_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Symmetric InfoNCE with any number of positives per query.

    Args:
        query: ``(Bq, D)`` L2-normalised query embeddings (bundle views).
        gallery: ``(Bg, D)`` L2-normalised gallery embeddings (product views).
        temperature: softmax temperature (scalar).
        positive_mask: ``(Bq, Bg)`` bool, True where gallery ``j`` is a true match of query ``i``. Each
            True entry is one positive term, scored against the negatives of its row (query -> gallery)
            and of its column (gallery -> query). ``None`` means aligned pairs: the diagonal of a square
            batch, as in CLIP.

    Returns:
        Scalar: the mean over positives of the two directions' cross-entropies, averaged.
    """
    if query.dim() != 2 or gallery.dim() != 2 or query.shape[1] != gallery.shape[1]:
        raise ValueError(
            f"query and gallery must be (B, D) with one D; got {tuple(query.shape)}, {tuple(gallery.shape)}"
        )
    if positive_mask is None:
        if query.shape[0] != gallery.shape[0]:
            raise ValueError(
                "without positive_mask, query and gallery must be aligned pairs of the same size"
            )
        positive_mask = torch.eye(query.shape[0], dtype=torch.bool, device=query.device)
    if positive_mask.shape != (query.shape[0], gallery.shape[0]):
        raise ValueError(
            f"positive_mask must be {(query.shape[0], gallery.shape[0])}, got {tuple(positive_mask.shape)}"
        )
    positive_mask = positive_mask.to(device=query.device, dtype=torch.bool)
    if not positive_mask.any(dim=1).all() or not positive_mask.any(dim=0).all():
        raise ValueError("every query and every gallery item needs at least one positive in the batch")
    logits = query @ gallery.T / temperature
    query_to_gallery = _per_positive_cross_entropy(logits, positive_mask).mean()
    gallery_to_query = _per_positive_cross_entropy(logits.T, positive_mask.T).mean()
    return 0.5 * (query_to_gallery + gallery_to_query)


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
