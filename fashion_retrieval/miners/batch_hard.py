"""In-batch negative miners: pure functions on similarity / distance matrices."""

from __future__ import annotations

import torch


def _check(scores: torch.Tensor, negative_mask: torch.Tensor) -> None:
    if scores.dim() != 2 or negative_mask.shape != scores.shape:
        raise ValueError(
            f"expected (N, P) scores and a mask of the same shape; got {tuple(scores.shape)}, "
            f"{tuple(negative_mask.shape)}"
        )


def hardest_negatives(similarity: torch.Tensor, negative_mask: torch.Tensor) -> torch.Tensor:
    """The most similar valid negative of each row (batch-hard mining, Hermans et al. 2017).

    Args:
        similarity: ``(N, P)`` similarities (higher = closer).
        negative_mask: ``(N, P)`` bool, True where column ``j`` may be a negative of row ``i``.

    Returns:
        ``(N,)`` long column indices, -1 for a row without any negative. Ties go to the lowest index.
    """
    _check(similarity, negative_mask)
    negative_mask = negative_mask.to(device=similarity.device, dtype=torch.bool)
    masked = similarity.masked_fill(~negative_mask, float("-inf"))
    # argmax returns the first maximum, so ties resolve to the lowest column.
    index = (
        masked.argmax(dim=1)
        if similarity.shape[1]
        else similarity.new_zeros(similarity.shape[0], dtype=torch.long)
    )
    return torch.where(negative_mask.any(dim=1), index, torch.full_like(index, -1))


def semi_hard_negatives(
    distance: torch.Tensor, negative_mask: torch.Tensor, positive_distance: torch.Tensor, margin: float
) -> torch.Tensor:
    """Semi-hard mining (Schroff et al. 2015, FaceNet): per (anchor, positive) row, the closest negative that
    is farther than the positive but within the margin, ``d_ap < d_an < d_ap + margin``.

    Such negatives give a loss below the margin, hence moderate gradients; batch-hard negatives early in
    training are often label noise or collapse the embedding. A row without a semi-hard negative falls back
    to its hardest negative (closest overall).

    Args:
        distance: ``(N, P)`` anchor-to-gallery distances (lower = closer), one row per (anchor, positive).
        negative_mask: ``(N, P)`` bool, valid negatives of each row.
        positive_distance: ``(N,)`` the anchor-positive distance of each row.
        margin: the triplet margin (distance units).

    Returns:
        ``(N,)`` long column indices, -1 for a row without any negative. Ties go to the lowest index.
    """
    _check(distance, negative_mask)
    if positive_distance.shape != distance.shape[:1]:
        raise ValueError(
            f"positive_distance must be {tuple(distance.shape[:1])}, got {tuple(positive_distance.shape)}"
        )
    negative_mask = negative_mask.to(device=distance.device, dtype=torch.bool)
    positive_distance = positive_distance.to(distance).unsqueeze(1)
    band = negative_mask & (distance > positive_distance) & (distance < positive_distance + margin)
    semi_hard = hardest_negatives(-distance, band)
    hardest = hardest_negatives(-distance, negative_mask)
    return torch.where(semi_hard >= 0, semi_hard, hardest)
