"""Cross-batch memory (XBM, Wang et al. 2020): a FIFO queue of recent gallery embeddings used as negatives."""

from __future__ import annotations

import torch
from torch import nn

from fashion_retrieval.miners.masks import label_in


def ring_slots(pointer: torch.Tensor, count: int, size: int) -> tuple[torch.Tensor, int]:
    """Where a write of ``count`` items lands in a ring of ``size`` slots whose next free slot is ``pointer``.

    Equivalent to writing the items one by one: item ``t`` goes to ``(pointer + t) % size``. When
    ``count > size`` only the last ``size`` items survive, so only they are written.

    Returns:
        ``slots (min(count, size),)`` long, on ``pointer``'s device, for items ``count - len(slots) ...``
        onwards, and the index of the first kept item.
    """
    kept = min(count, size)
    first = count - kept
    offsets = torch.arange(first, count, device=pointer.device)
    return (pointer + offsets) % size, first


class CrossBatchMemory(nn.Module):
    """A queue of the last ``size`` gallery embeddings (detached) and their product ids.

    Entries are used only as negatives, never as positives: their embeddings come from older weights, so
    the same product seen again is not a reliable match; they are ignored for bundles that exclude them.
    The queue is made of persistent buffers, so a checkpoint resumes with the same contents and position.
    Under DDP, enqueue the embeddings gathered from every rank: DDP broadcasts buffers from rank 0.

    Args:
        size: ``K``, number of slots.
        dim: ``D``, embedding size.
    """

    def __init__(self, size: int, dim: int) -> None:
        super().__init__()
        if size < 1 or dim < 1:
            raise ValueError(f"size and dim must be >= 1, got {size}, {dim}")
        self.size, self.dim = size, dim
        self.register_buffer("queue_embeddings", torch.zeros(size, dim))
        self.register_buffer("queue_labels", torch.full((size,), -1, dtype=torch.long))
        self.register_buffer("queue_pointer", torch.zeros((), dtype=torch.long))  # next slot to write
        self.register_buffer("queue_filled", torch.zeros((), dtype=torch.long))

    @property
    def filled(self) -> int:
        """Number of slots holding an entry (``<= size``)."""
        return int(self.queue_filled.item())

    @torch.no_grad()
    def enqueue(self, embeddings: torch.Tensor, labels: torch.Tensor) -> None:
        """Push ``embeddings (N, D)`` with their product ids ``labels (N,)`` (>= 0), oldest out first."""
        if embeddings.dim() != 2 or embeddings.shape[1] != self.dim:
            raise ValueError(f"embeddings must be (N, {self.dim}), got {tuple(embeddings.shape)}")
        if labels.shape != embeddings.shape[:1]:
            raise ValueError(f"labels must be ({embeddings.shape[0]},), got {tuple(labels.shape)}")
        if (labels < 0).any():
            raise ValueError("labels must be product ids >= 0 (-1 marks an empty slot)")
        count = embeddings.shape[0]
        if count == 0:
            return
        slots, first = ring_slots(self.queue_pointer, count, self.size)
        self.queue_embeddings[slots] = embeddings[first:].detach().to(self.queue_embeddings)
        self.queue_labels[slots] = labels[first:].to(self.queue_labels)
        self.queue_pointer.copy_((self.queue_pointer + count) % self.size)
        self.queue_filled.copy_((self.queue_filled + count).clamp(max=self.size))

    def contents(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``embeddings (K', D)`` and ``labels (K',)`` of the filled slots, oldest first."""
        filled = self.filled
        if filled < self.size:  # never wrapped: slots 0..filled-1 in write order
            order = torch.arange(filled, device=self.queue_labels.device)
        else:
            order = (
                self.queue_pointer + torch.arange(self.size, device=self.queue_labels.device)
            ) % self.size
        return self.queue_embeddings[order], self.queue_labels[order]

    def negatives(self, query_excluded: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Memory entries as extra negatives of a batch.

        Args:
            query_excluded: ``(B, L)`` long, -1 padded: products never to use as negatives of each bundle
                (its own products included).

        Returns:
            ``embeddings (K', D)`` of the filled slots (slot order, no gradient) and ``negative_mask
            (B, K')`` bool, False where the entry's product is excluded for the bundle.
        """
        filled = self.filled
        labels = self.queue_labels[:filled]
        return self.queue_embeddings[:filled], ~label_in(labels, query_excluded.to(labels.device))

    def reset(self) -> None:
        """Empty the queue."""
        self.queue_embeddings.zero_()
        self.queue_labels.fill_(-1)
        self.queue_pointer.zero_()
        self.queue_filled.zero_()

    def extra_repr(self) -> str:
        return f"size={self.size}, dim={self.dim}"


def append_negatives(
    gallery: torch.Tensor,
    positive_mask: torch.Tensor,
    negative_mask: torch.Tensor,
    extra: torch.Tensor,
    extra_negative_mask: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Append negative-only columns (e.g. :meth:`CrossBatchMemory.negatives`) to a batch.

    Args:
        gallery: ``(P, D)``; positive_mask, negative_mask: ``(B, P)`` bool.
        extra: ``(K, D)`` embeddings; extra_negative_mask: ``(B, K)`` bool.

    Returns:
        ``gallery (P + K, D)`` (in the wider of the two dtypes), ``positive (B, P + K)`` (the extra columns
        never positive), ``negative (B, P + K)``.
    """
    dtype = torch.promote_types(gallery.dtype, extra.dtype)
    extra = extra.to(device=gallery.device, dtype=dtype)
    extra_negative_mask = extra_negative_mask.to(device=positive_mask.device, dtype=torch.bool)
    no_positive = torch.zeros_like(extra_negative_mask)
    return (
        torch.cat([gallery.to(dtype), extra]),
        torch.cat([positive_mask.bool(), no_positive], dim=1),
        torch.cat([negative_mask.bool(), extra_negative_mask], dim=1),
    )
