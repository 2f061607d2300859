"""FIFO bank of catalogue embeddings used as extra negatives, with an optional staleness limit."""

from __future__ import annotations

import torch

from fashion_retrieval.losses.memory import CrossBatchMemory, ring_slots


class CatalogueBank(CrossBatchMemory):
    """A :class:`CrossBatchMemory` of catalogue embeddings that also remembers the step of each entry.

    Entries are negatives only, and never for a query that owns their product (the query's products are
    in ``query_excluded``). With a frozen catalogue (the query-side adapter) an entry is exactly what the
    catalogue tower would output now, so it never goes stale: keep ``max_age=None``. A trainable catalogue
    tower (a symmetric projection head) drifts away from old entries: ``max_age=N`` drops entries written
    more than ``N`` optimisation steps ago.

    Args:
        size: ``K``, number of slots (the winners used 8,192).
        dim: ``D``, embedding size.
        max_age: staleness limit in steps; ``None``: entries live until overwritten.
    """

    def __init__(self, size: int, dim: int, max_age: int | None = None) -> None:
        super().__init__(size, dim)
        if max_age is not None and max_age < 0:
            raise ValueError(f"max_age must be >= 0 or None, got {max_age}")
        self.max_age = max_age
        self.register_buffer("queue_steps", torch.full((size,), -1, dtype=torch.long))

    @torch.no_grad()
    def enqueue(self, embeddings: torch.Tensor, labels: torch.Tensor, step: int = 0) -> None:
        """Push ``embeddings (N, D)`` with their product ids ``labels (N,)``, written at ``step``."""
        slots, _ = ring_slots(self.queue_pointer, embeddings.shape[0], self.size)
        super().enqueue(embeddings, labels)
        self.queue_steps[slots] = int(step)

    def negatives(
        self, query_excluded: torch.Tensor, step: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Fresh bank entries as extra negatives of a batch.

        Args:
            query_excluded: ``(B, L)`` long, -1 padded: the products of each query (and any other product
                never to use as its negative).
            step: the current step; entries older than ``max_age`` steps are left out. ``None`` or
                ``max_age=None``: all filled slots.

        Returns:
            ``embeddings (K', D)`` (no gradient) and ``negative_mask (B, K')`` bool, False where the entry's
            product is excluded for the query.
        """
        embeddings, mask = super().negatives(query_excluded)
        if self.max_age is None or step is None:
            return embeddings, mask
        fresh = int(step) - self.queue_steps[: embeddings.shape[0]] <= self.max_age
        return embeddings[fresh], mask[:, fresh]

    def reset(self) -> None:
        super().reset()
        self.queue_steps.fill_(-1)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, max_age={self.max_age}"
