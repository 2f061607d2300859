"""Online hard-negative mining against a whole (frozen) catalogue held in memory: each training step, the
catalogue products closest to each query under the current query head, for heads trained on cached
features (:class:`~fashion_retrieval.models.adapter_module.FeatureAdapterModule`)."""

from __future__ import annotations

import torch

from fashion_retrieval.miners.masks import label_in


def catalogue_hard_negatives(
    query: torch.Tensor, catalogue: torch.Tensor, excluded: torch.Tensor, k: int, skip_top: int = 0
) -> torch.Tensor:
    """The ``k`` catalogue rows most similar to each query that are not excluded for it.

    Args:
        query: ``(B, D)`` L2-normalised query embeddings.
        catalogue: ``(G, D)`` L2-normalised catalogue embeddings (row ``j`` is product id ``j``).
        excluded: ``(B, L)`` long, -1 padded: product ids never to return for each query (its own products).
        k: negatives per query.
        skip_top: leave out the ``skip_top`` most similar remaining rows first: the very top "negatives"
            are the likeliest unlabelled matches (:func:`~fashion_retrieval.miners.mine_hard_negatives`).

    Returns:
        ``(B, k)`` long catalogue rows, most similar first, -1 where a query has fewer candidates. Memory is
        one ``(B, G)`` float32 score block.
    """
    if query.dim() != 2 or catalogue.dim() != 2 or query.shape[1] != catalogue.shape[1]:
        raise ValueError(
            f"query and catalogue must be (B, D) and (G, D), got {tuple(query.shape)} and "
            f"{tuple(catalogue.shape)}"
        )
    if excluded.dim() != 2 or excluded.shape[0] != query.shape[0]:
        raise ValueError(f"excluded must be ({query.shape[0]}, L), got {tuple(excluded.shape)}")
    if k < 0 or skip_top < 0:
        raise ValueError(f"k and skip_top must be >= 0, got {k}, {skip_top}")
    scores = query.float() @ catalogue.to(query.device).float().T
    ids = torch.arange(catalogue.shape[0], device=query.device)
    scores = scores.masked_fill(label_in(ids, excluded.to(query.device).long()), float("-inf"))
    depth = min(skip_top + k, catalogue.shape[0])
    values, rows = scores.topk(depth, dim=1)
    values, rows = values[:, skip_top:], rows[:, skip_top:]
    rows = torch.where(torch.isfinite(values), rows, torch.full_like(rows, -1))
    padding = rows.new_full((rows.shape[0], k - rows.shape[1]), -1)
    return torch.cat([rows, padding], dim=1)
