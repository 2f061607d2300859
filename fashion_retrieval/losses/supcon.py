"""Supervised contrastive loss (Khosla et al. 2020, the L_out form) over bundle x product batches."""

from __future__ import annotations

import torch

from fashion_retrieval.losses.common import (
    TemperatureMixin,
    anchored_both_ways,
    check_pair_inputs,
    similarity_float32,
)


def _anchored_supcon(
    logits: torch.Tensor, positive_mask: torch.Tensor, negative_mask: torch.Tensor
) -> torch.Tensor:
    """Per-anchor loss ``(A,)`` over the rows that have positives.

    Row ``i``: ``-1/|P(i)| sum_{p in P(i)} log(exp(l_ip) / sum_{a in P(i) ∪ N(i)} exp(l_ia))``.
    """
    rows = positive_mask.any(dim=1)
    logits, positive_mask, negative_mask = logits[rows], positive_mask[rows], negative_mask[rows]
    # Every remaining row has a positive in its denominator, so the logsumexp is finite.
    lse = torch.logsumexp(logits.masked_fill(~(positive_mask | negative_mask), float("-inf")), dim=1)
    positive_logits = (logits * positive_mask).sum(dim=1)
    count = positive_mask.sum(dim=1)
    return lse - positive_logits / count


def supervised_contrastive(
    query: torch.Tensor,
    gallery: torch.Tensor,
    temperature: float | torch.Tensor,
    positive_mask: torch.Tensor,
    negative_mask: torch.Tensor | None = None,
    symmetric: bool = True,
) -> torch.Tensor:
    """SupCon between bundles (anchors) and products, all positives of a bundle at once.

    Unlike :func:`info_nce`, the other positives of the anchor stay in the denominator (Khosla's L_out):
    a bundle's products compete with each other, which pulls them towards one point.

    Args:
        query: ``(B, D)`` L2-normalised bundle embeddings.
        gallery: ``(P, D)`` L2-normalised product embeddings (plus extra negatives).
        temperature: softmax temperature (float or scalar tensor).
        positive_mask: ``(B, P)`` bool, True where gallery ``j`` is a product of bundle ``i``.
        negative_mask: ``(B, P)`` bool, default ``~positive_mask``; entries neither are ignored.
        symmetric: average with the gallery-anchored term, over the columns that have positives.

    Returns:
        Scalar float32: the mean over anchors (rows, and columns with positives when symmetric).
    """
    positive, negative = check_pair_inputs(query, gallery, positive_mask, negative_mask)
    logits = similarity_float32(query, gallery) / temperature
    return anchored_both_ways(_anchored_supcon, logits, positive, negative, symmetric)


class SupConLoss(TemperatureMixin):
    """Module form of :func:`supervised_contrastive` (config group ``loss/supcon``).

    Same arguments as :class:`fashion_retrieval.losses.InfoNCELoss`.
    """

    def forward(
        self,
        query: torch.Tensor,
        gallery: torch.Tensor,
        positive_mask: torch.Tensor,
        negative_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return supervised_contrastive(
            query, gallery, self.temperature_tensor(), positive_mask, negative_mask, symmetric=self.symmetric
        )
