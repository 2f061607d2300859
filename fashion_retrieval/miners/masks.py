"""Positive / negative masks of a (bundle x product) batch from product ids: false-negative masking.

A gallery column ``j`` is, for bundle ``i``:
- a positive when its product is one of the bundle's products;
- a negative when its product is not excluded for the bundle;
- ignored otherwise (e.g. another colour variant of one of the bundle's articles): no loss uses it.

A labelled batch (images with labels, every image both anchor and candidate) has the masks of
:func:`label_pair_masks`: the other images of a label are positives, an image is never its own.
"""

from __future__ import annotations

import torch


def label_in(labels: torch.Tensor, sets: torch.Tensor) -> torch.Tensor:
    """Membership of each label in each row's set.

    Args:
        labels: ``(K,)`` long, product ids (a negative id never matches).
        sets: ``(B, L)`` long, product ids per row, padded with -1 (any negative value is padding).

    Returns:
        ``(B, K)`` bool, True where ``labels[k]`` is one of ``sets[b]``.
    """
    if labels.dim() != 1 or sets.dim() != 2:
        raise ValueError(
            f"labels must be (K,) and sets (B, L); got {tuple(labels.shape)}, {tuple(sets.shape)}"
        )
    if labels.is_floating_point() or sets.is_floating_point():
        raise ValueError("labels and sets must be integer product ids")
    rows, width = sets.shape
    labels = labels.to(sets.device)
    if width == 0 or labels.numel() == 0:
        return torch.zeros(rows, labels.numel(), dtype=torch.bool, device=sets.device)
    # Binary search in each sorted row: O(B * K) memory instead of the (B, L, K) broadcast comparison,
    # which matters for a memory queue of tens of thousands of labels.
    sorted_sets = sets.long().sort(dim=1).values.contiguous()
    queries = labels.long().unsqueeze(0).expand(rows, -1).contiguous()
    position = torch.searchsorted(sorted_sets, queries).clamp_(max=width - 1)
    found = sorted_sets.gather(1, position) == queries
    return found & (queries >= 0)


def pair_masks(
    query_products: torch.Tensor, query_excluded: torch.Tensor | None, gallery_labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Positive and negative masks of a batch.

    Args:
        query_products: ``(B, L)`` long, -1 padded: every product of each bundle (also those not drawn).
        query_excluded: ``(B, L')`` long, -1 padded: products that must never be a negative of the bundle
            (its products, other colours of its articles...). ``None``: only the bundle's products.
        gallery_labels: ``(P,)`` long, the product id of each gallery column (>= 0; repeats allowed).

    Returns:
        ``positive (B, P)`` bool and ``negative (B, P)`` bool, never both True. A bundle's own products are
        never negatives, even when ``query_excluded`` forgets them.
    """
    if query_excluded is not None and query_excluded.shape[0] != query_products.shape[0]:
        raise ValueError(
            f"query_products and query_excluded disagree on B: {query_products.shape[0]} "
            f"vs {query_excluded.shape[0]}"
        )
    if gallery_labels.dim() == 1 and (gallery_labels < 0).any():
        raise ValueError("gallery_labels must be product ids >= 0 (-1 is the padding value)")
    positive = label_in(gallery_labels, query_products)
    if query_excluded is None:
        return positive, ~positive
    excluded = label_in(gallery_labels, query_excluded.to(query_products.device))
    return positive, ~(positive | excluded)


def label_pair_masks(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Masks of a labelled batch scored against itself.

    Args:
        labels: ``(B,)`` long, one label per image.

    Returns:
        ``positive (B, B)`` bool: same label, off the diagonal (an image is not its own positive: its
        similarity is 1 whatever the model); ``negative (B, B)`` bool: another label. The diagonal is
        neither.
    """
    if labels.dim() != 1 or labels.is_floating_point():
        raise ValueError(f"labels must be (B,) integers, got {tuple(labels.shape)} {labels.dtype}")
    same = labels.unsqueeze(0) == labels.unsqueeze(1)
    itself = torch.eye(labels.shape[0], dtype=torch.bool, device=labels.device)
    return same & ~itself, ~same
