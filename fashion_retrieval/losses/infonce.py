"""Symmetric InfoNCE (CLIP-style) over bundle x product batches, with false-negative masking."""

from __future__ import annotations

import torch

from fashion_retrieval.losses.common import (
    TemperatureMixin,
    anchored_both_ways,
    check_pair_inputs,
    similarity_float32,
)


def _per_positive_cross_entropy(
    logits: torch.Tensor, positive_mask: torch.Tensor, negative_mask: torch.Tensor
) -> torch.Tensor:
    """``-log softmax`` of each positive entry against its row's negatives only.

    Other positives of the same row (and ignored entries) are left out of the denominator: they are not
    negatives, and a bundle that lists several products must not push its own products apart.
    Returns ``(N,)`` losses, one per positive entry, in row-major order.
    """
    negatives = logits.masked_fill(~negative_mask, float("-inf"))
    negative_lse = torch.logsumexp(negatives, dim=1, keepdim=True)
    # A row without negatives has an lse of -inf: logaddexp then gives loss 0, but the lse's backward
    # would be 0 * nan; a finite stand-in keeps the gradient clean (exp(-1e4) is exactly 0 in float32).
    negative_lse = negative_lse.masked_fill(~negative_mask.any(dim=1, keepdim=True), -1e4)
    per_entry = torch.logaddexp(logits, negative_lse.expand_as(logits)) - logits
    return per_entry[positive_mask]


def info_nce(
    query: torch.Tensor,
    gallery: torch.Tensor,
    temperature: float | torch.Tensor,
    positive_mask: torch.Tensor | None = None,
    negative_mask: torch.Tensor | None = None,
    symmetric: bool = True,
) -> torch.Tensor:
    """Symmetric InfoNCE with any number of positives per query and masked false negatives.

    Args:
        query: ``(B, D)`` L2-normalised query embeddings (bundle views).
        gallery: ``(P, D)`` L2-normalised gallery embeddings (products, plus extra negatives).
        temperature: softmax temperature (float or scalar tensor, e.g. a learnable one).
        positive_mask: ``(B, P)`` bool, True where gallery ``j`` is a product of bundle ``i``. ``None``
            means aligned pairs: the diagonal of a square batch, as in CLIP.
        negative_mask: ``(B, P)`` bool, True where gallery ``j`` is a negative of bundle ``i``; default
            ``~positive_mask``. Entries neither positive nor negative are ignored.
        symmetric: add the gallery -> query direction.

    Each positive ``(i, j)`` is one term, scored against the negatives of row ``i`` (query -> gallery) and
    of column ``j`` (gallery -> query). Columns without a positive (extra negatives) add no
    gallery -> query term but are negatives of the rows that allow them. Every row needs a positive.

    Returns:
        Scalar float32: the mean over positives of each direction's cross-entropy, the two averaged.
    """
    if positive_mask is None:
        if query.dim() == 2 and gallery.dim() == 2 and query.shape[0] != gallery.shape[0]:
            raise ValueError(
                "without positive_mask, query and gallery must be aligned pairs of the same size"
            )
        positive_mask = torch.eye(query.shape[0], dtype=torch.bool, device=query.device)
    positive, negative = check_pair_inputs(query, gallery, positive_mask, negative_mask)
    logits = similarity_float32(query, gallery) / temperature
    return anchored_both_ways(_per_positive_cross_entropy, logits, positive, negative, symmetric)


class InfoNCELoss(TemperatureMixin):
    """Module form of :func:`info_nce` (config group ``loss/infonce``); arguments: see
    :class:`fashion_retrieval.losses.common.TemperatureMixin`."""

    def forward(
        self,
        query: torch.Tensor,
        gallery: torch.Tensor,
        positive_mask: torch.Tensor | None = None,
        negative_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return info_nce(
            query, gallery, self.temperature_tensor(), positive_mask, negative_mask, symmetric=self.symmetric
        )
