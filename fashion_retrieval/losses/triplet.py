"""Triplet margin loss between bundles (anchors) and products, with in-batch negative mining."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from fashion_retrieval.losses.common import check_pair_inputs, similarity_float32
from fashion_retrieval.miners.batch_hard import hardest_negatives, semi_hard_negatives

Mining = Literal["batch_hard", "semi_hard", "all"]
MINING_STRATEGIES = ("batch_hard", "semi_hard", "all")


def cosine_to_euclidean(similarity: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Euclidean distance of unit vectors from their cosine similarity: ``sqrt(max(2 - 2 s, eps))``.

    The floor keeps the gradient of the square root finite for identical vectors (rounding can also make
    ``2 - 2 s`` slightly negative).
    """
    return (2 - 2 * similarity).clamp(min=eps).sqrt()


def triplet_margin_loss(
    query: torch.Tensor,
    gallery: torch.Tensor,
    positive_mask: torch.Tensor,
    negative_mask: torch.Tensor | None = None,
    margin: float = 0.3,
    mining: Mining = "batch_hard",
) -> torch.Tensor:
    """``relu(d(a, p) - d(a, n) + margin)`` with bundles as anchors and their products as positives.

    Every positive entry ``(i, p)`` is one anchor-positive pair; its negative comes from the miner:
    ``batch_hard``: the closest valid negative of row ``i``; ``semi_hard``: the closest negative farther
    than ``p`` but within the margin, else the closest (:func:`semi_hard_negatives`); ``all``: every valid
    negative, averaged over the triplets with a non-zero loss (easy triplets would dilute the mean).

    Args:
        query: ``(B, D)`` L2-normalised anchors (bundles).
        gallery: ``(P, D)`` L2-normalised products (plus extra negatives).
        positive_mask: ``(B, P)`` bool, True where gallery ``j`` is a product of bundle ``i``.
        negative_mask: ``(B, P)`` bool, default ``~positive_mask``; entries neither are ignored.
        margin: in Euclidean distance units (unit vectors: distances lie in ``[0, 2]``).
        mining: ``"batch_hard"``, ``"semi_hard"`` or ``"all"``.

    Returns:
        Scalar float32. Pairs whose row has no negative are skipped; with no triplet left, 0 (with a graph).
    """
    if mining not in MINING_STRATEGIES:
        raise ValueError(f"mining must be one of {MINING_STRATEGIES}, got {mining!r}")
    positive, negative = check_pair_inputs(query, gallery, positive_mask, negative_mask)
    similarity = similarity_float32(query, gallery)
    distance = cosine_to_euclidean(similarity)
    rows, columns = positive.nonzero(as_tuple=True)
    positive_distance = distance[rows, columns]
    if mining == "all":
        losses = (positive_distance.unsqueeze(1) - distance[rows] + margin).relu() * negative[rows]
        active = losses > 0
        if not active.any():
            return distance.sum() * 0
        return losses[active].mean()
    with torch.no_grad():
        if mining == "batch_hard":
            chosen = hardest_negatives(similarity, negative)[rows]
        else:
            chosen = semi_hard_negatives(distance[rows], negative[rows], positive_distance, margin)
    valid = chosen >= 0
    if not valid.any():
        return distance.sum() * 0
    negative_distance = distance[rows[valid], chosen[valid]]
    return (positive_distance[valid] - negative_distance + margin).relu().mean()


class TripletLoss(nn.Module):
    """Module form of :func:`triplet_margin_loss` (config group ``loss/triplet``).

    The original ConvNeXt recipe: margin 0.3 on 256-d unit embeddings, batch-hard negatives.
    """

    def __init__(self, margin: float = 0.3, mining: Mining = "batch_hard") -> None:
        super().__init__()
        if margin < 0:
            raise ValueError(f"margin must be >= 0, got {margin}")
        if mining not in MINING_STRATEGIES:
            raise ValueError(f"mining must be one of {MINING_STRATEGIES}, got {mining!r}")
        self.margin = margin
        self.mining = mining

    def forward(
        self,
        query: torch.Tensor,
        gallery: torch.Tensor,
        positive_mask: torch.Tensor,
        negative_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return triplet_margin_loss(query, gallery, positive_mask, negative_mask, self.margin, self.mining)

    def extra_repr(self) -> str:
        return f"margin={self.margin}, mining={self.mining!r}"
