"""Batch samplers whose order is a pure function of ``(seed, epoch)``, and the item keys they yield.

Why not ``DataLoader(shuffle=True)``: its order comes from torch's global generator, which Lightning does
not checkpoint, so a run resumed from a checkpoint would see other batches than the uninterrupted run.
Here every epoch's batches are drawn from ``keyed_rng(seed, epoch)``, and every item is yielded as an
:data:`ItemKey` ``(index, epoch)``, so the dataset can seed its own draws (product subsets, negatives,
augmentation) from ``(seed, epoch, index)``: nothing depends on the history of the run, on the worker
that loads the item or on ``num_workers``.

Lightning glue (pytorch_lightning 2.6, ``lightning_fabric.utilities.data._set_sampler_epoch``): at each
epoch start Lightning calls ``set_epoch`` on ``dataloader.sampler`` and on
``dataloader.batch_sampler.sampler``, never on the batch sampler itself; our batch samplers therefore
expose ``sampler`` = themselves.
Under DDP with ``use_distributed_sampler=True`` (the default) Lightning re-creates a custom batch sampler
with ``sampler=DistributedSampler(...)`` (``_dataloader_init_kwargs_resolve_sampler``); ours accept that
argument and take only its ``rank`` and ``num_replicas``, then shard their own batches (see
:func:`shard_batches`). With ``use_distributed_sampler=False``, pass ``rank``/``world_size`` directly
(the data module does, from its trainer).
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Iterator, Sequence, Sized

import numpy as np
from torch.utils.data import BatchSampler, Sampler

ItemKey = tuple[int, int]
"""``(index, epoch)``: what the training dataset receives instead of a bare index."""

_SAMPLER_STREAM = (
    0  # keyed_rng(seed, epoch, _SAMPLER_STREAM): batch order; datasets use (seed, epoch, index, ...)
)


def keyed_rng(seed: int, *key: int) -> np.random.Generator:
    """A generator for the stream ``(seed, *key)``: identical in every process and run, independent of any
    global state. Keys are non-negative integers (epoch, item index, stream id...)."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, *(int(k) for k in key)])


def batch_count(num_items: int, batch_size: int, drop_last: bool) -> int:
    """Number of batches of ``batch_size`` from ``num_items`` items (the last one partial unless dropped)."""
    return num_items // batch_size if drop_last else -(-num_items // batch_size)


def shard_batches(
    batches: Sequence[list[int]], rank: int, world_size: int, drop_last: bool
) -> list[list[int]]:
    """This rank's share of the global batches: ``batches[rank::world_size]`` after making the count a
    multiple of ``world_size``, so every rank runs the same number of steps (DDP would hang otherwise).

    ``drop_last`` drops the last ``len % world_size`` batches; otherwise the first batches are repeated
    (at most ``world_size - 1`` of them), like :class:`torch.utils.data.DistributedSampler` pads.
    """
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
    if world_size == 1:
        return list(batches)
    if drop_last:
        batches = list(batches[: len(batches) // world_size * world_size])
    else:
        padding = -len(batches) % world_size
        batches = list(batches) + [batches[i % len(batches)] for i in range(padding)] if batches else []
    return batches[rank::world_size]


def random_batches(
    num_items: int, batch_size: int, rng: np.random.Generator, drop_last: bool
) -> list[list[int]]:
    """A random permutation of ``range(num_items)`` cut into batches; the partial last one dropped if
    ``drop_last``."""
    order = rng.permutation(num_items).tolist()
    batches = [order[i : i + batch_size] for i in range(0, num_items, batch_size)]
    if drop_last and batches and len(batches[-1]) < batch_size:
        batches.pop()
    return batches


def category_balanced_batches(
    bundle_categories: Sequence[Collection[str]],
    batch_size: int,
    categories_per_batch: int,
    rng: np.random.Generator,
    drop_last: bool,
) -> tuple[list[list[int]], list[list[str]]]:
    """Batches of bundles that share categories, so in-batch negatives are hard (ten pairs of trousers).

    Each batch draws ``categories_per_batch`` categories (without replacement, weighted by how many
    not-yet-batched bundles contain each, so large categories are used up at their rate) and fills up
    round-robin from them with unbatched bundles containing them (in an order shuffled per call). When
    they run dry, one more category is drawn the same way, until the batch is full.

    Guarantees: every bundle is in exactly one batch; every batch is full except the last, which is
    dropped if ``drop_last``; every bundle of a batch contains at least one of the categories drawn for
    that batch (``categories_per_batch`` of them, more only where those ran dry). Full batches come in a
    random order, the partial one last. A bundle with no category counts as category ``""``.

    Args:
        bundle_categories: the categories of each bundle's products, one collection per bundle.
        batch_size: bundles per batch.
        categories_per_batch: categories drawn first for each batch.
        rng: the only source of randomness.
        drop_last: drop the partial last batch.

    Returns:
        the batches (lists of positions in ``bundle_categories``) and, for each, the categories it was
        built around, in the order drawn.
    """
    if batch_size < 1 or categories_per_batch < 1:
        raise ValueError(
            f"batch_size and categories_per_batch must be >= 1, got {batch_size}, {categories_per_batch}"
        )
    sets = [set(categories) or {""} for categories in bundle_categories]
    names = sorted(set().union(*sets)) if sets else []
    code = {name: i for i, name in enumerate(names)}
    members: list[list[int]] = [[] for _ in names]
    for bundle in rng.permutation(len(sets)).tolist():
        for name in sets[bundle]:
            members[code[name]].append(bundle)
    bundle_codes = [[code[name] for name in categories] for categories in sets]
    left = np.array([len(m) for m in members], dtype=np.int64)  # unbatched bundles containing each category
    heads = [0] * len(names)  # queue positions: entries before a head are batched already
    batched = np.zeros(len(sets), dtype=bool)

    def take(category: int) -> int | None:
        queue = members[category]
        while heads[category] < len(queue) and batched[queue[heads[category]]]:
            heads[category] += 1
        if heads[category] == len(queue):
            return None
        bundle = queue[heads[category]]
        batched[bundle] = True
        for c in bundle_codes[bundle]:
            left[c] -= 1
        return bundle

    def draw(count: int, taken: set[int]) -> list[int]:
        weights = left.astype(float)
        weights[list(taken)] = 0.0
        count = min(count, int(np.count_nonzero(weights)))
        if count == 0:
            return []
        return rng.choice(len(names), size=count, replace=False, p=weights / weights.sum()).tolist()

    batches: list[tuple[list[int], list[str]]] = []
    remaining = len(sets)
    while remaining:
        size = min(batch_size, remaining)
        batch: list[int] = []
        chosen = draw(categories_per_batch, set())
        active = list(chosen)
        while len(batch) < size:
            if not active:
                active = draw(1, set(chosen))
                if not active:  # cannot happen: an unbatched bundle has a category with bundles left
                    raise RuntimeError("category_balanced_batches: no category left for unbatched bundles")
                chosen += active
            for category in list(active):
                if len(batch) == size:
                    break
                bundle = take(category)
                if bundle is None:
                    active.remove(category)
                else:
                    batch.append(bundle)
        remaining -= len(batch)
        batches.append((batch, [names[c] for c in chosen]))
    full = [b for b in batches if len(b[0]) == batch_size]
    ordered = [full[i] for i in rng.permutation(len(full)).tolist()]
    if not drop_last:
        ordered += [b for b in batches if len(b[0]) < batch_size]
    return [b for b, _ in ordered], [c for _, c in ordered]


class CyclingQueue:
    """Items handed out in random order, a fresh permutation each time all have been handed out.

    :meth:`take` never returns an item twice in one call: at a permutation boundary, the items already
    taken in that call go to the end of the next permutation. Over many calls every item is handed out
    equally often (to within one).
    """

    def __init__(self, items: Sequence[Hashable], rng: np.random.Generator) -> None:
        if not items:
            raise ValueError("a CyclingQueue needs at least one item")
        self.items = list(items)
        self.rng = rng
        self.queue: list[Hashable] = []

    def take(self, count: int) -> list[Hashable]:
        """``count`` distinct items (``count <= len(items)``)."""
        if not 0 <= count <= len(self.items):
            raise ValueError(f"count must be in [0, {len(self.items)}], got {count}")
        taken = self.queue[:count]
        self.queue = self.queue[count:]
        if len(taken) < count:
            fresh = [self.items[i] for i in self.rng.permutation(len(self.items)).tolist()]
            chosen = set(taken)
            fresh = [item for item in fresh if item not in chosen] + [
                item for item in fresh if item in chosen
            ]
            rest = count - len(taken)
            taken += fresh[:rest]
            self.queue = fresh[rest:]
        return taken


def label_balanced_batches(
    labels: Sequence[Hashable],
    labels_per_batch: int,
    items_per_label: int,
    num_batches: int,
    rng: np.random.Generator,
) -> list[list[int]]:
    """``num_batches`` batches of ``labels_per_batch`` (P) distinct labels, each with ``items_per_label``
    (K) distinct items of that label: the P x K batches of Hermans et al. 2017 and OML's
    ``BalanceSampler``, where every item has positives and hard negatives in its batch.

    Labels are drawn from a :class:`CyclingQueue` (each label as often as the others, whatever its size)
    and the items of a label from its own queue (each item of a label as often as the others). A label
    with fewer than K items brings all of them: no item repeats within a batch, so no trivial positive
    (an image and itself, identically augmented).

    Args:
        labels: one label per item (positions are the item indices).
        labels_per_batch: P, at most the number of distinct labels.
        items_per_label: K >= 1.
        num_batches: batches to draw.
        rng: the only source of randomness.

    Returns:
        ``num_batches`` lists of item indices, label after label.
    """
    groups: dict[Hashable, list[int]] = {}
    for index, label in enumerate(labels):
        groups.setdefault(label, []).append(index)
    if items_per_label < 1:
        raise ValueError(f"items_per_label must be >= 1, got {items_per_label}")
    if not 1 <= labels_per_batch <= len(groups):
        raise ValueError(
            f"labels_per_batch must be in [1, {len(groups)}] (the number of labels), got {labels_per_batch}: "
            "lower data.batch_size or raise sampler.items_per_label"
        )
    label_queue = CyclingQueue(sorted(groups), rng)
    item_queues: dict[Hashable, CyclingQueue] = {}
    batches = []
    for _ in range(num_batches):
        batch: list[int] = []
        for label in label_queue.take(labels_per_batch):
            if label not in item_queues:
                item_queues[label] = CyclingQueue(groups[label], rng)
            batch += item_queues[label].take(min(items_per_label, len(groups[label])))
        batches.append(batch)
    return batches


class _EpochBatchSampler(BatchSampler):
    """Shared machinery: epoch state, DDP sharding, ``(index, epoch)`` keys. Subclasses draw the global
    batches of an epoch in :meth:`global_batches`."""

    def __init__(
        self,
        num_items: int,
        batch_size: int,
        seed: int,
        drop_last: bool,
        sampler: Sampler | None,
        rank: int,
        world_size: int,
    ) -> None:
        # BatchSampler.__init__ is not called: it wants an index sampler, and we draw batches ourselves.
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if sampler is not None and hasattr(sampler, "num_replicas") and hasattr(sampler, "rank"):
            rank, world_size = int(sampler.rank), int(sampler.num_replicas)  # injected by Lightning under DDP
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
        self.num_items = num_items
        self.batch_size = batch_size
        self.seed = seed
        self.drop_last = drop_last
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        # Lightning calls `set_epoch` on `batch_sampler.sampler`, not on the batch sampler (module docstring).
        self.sampler = self

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def global_batches(self, epoch: int) -> list[list[int]]:
        raise NotImplementedError

    def batches(self, epoch: int) -> list[list[int]]:
        """This rank's batches of ``epoch`` as dataset indices."""
        return shard_batches(self.global_batches(epoch), self.rank, self.world_size, self.drop_last)

    def __iter__(self) -> Iterator[list[ItemKey]]:
        epoch = self.epoch
        for batch in self.batches(epoch):
            yield [(index, epoch) for index in batch]

    def __len__(self) -> int:
        batches = batch_count(self.num_items, self.batch_size, self.drop_last)
        return batches // self.world_size if self.drop_last else -(-batches // self.world_size)


class RandomBatchSampler(_EpochBatchSampler):
    """The default shuffle, seeded by ``(seed, epoch)``: each epoch a fresh permutation of every bundle.

    Args:
        bundles: one entry per training bundle (only its length is used; the data module passes the
            bundles' category sets, as to every sampler factory).
        batch_size: bundles per batch (per process under DDP).
        seed: data seed; the order of epoch ``e`` is a function of ``(seed, e)`` only.
        drop_last: drop the partial last batch.
        sampler: set by Lightning under DDP (a ``DistributedSampler``): only its rank and world size are used.
        rank, world_size: the process's share when ``sampler`` is not given.

    Each epoch every bundle is in exactly one global batch (the partial last one dropped if ``drop_last``);
    under DDP rank ``r`` runs global batches ``r, r + world_size, ...`` (see :func:`shard_batches`).
    """

    def __init__(
        self,
        bundles: Sized,
        batch_size: int,
        seed: int = 0,
        drop_last: bool = False,
        sampler: Sampler | None = None,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        super().__init__(len(bundles), batch_size, seed, drop_last, sampler, rank, world_size)

    def global_batches(self, epoch: int) -> list[list[int]]:
        return random_batches(
            self.num_items, self.batch_size, keyed_rng(self.seed, epoch, _SAMPLER_STREAM), self.drop_last
        )


class CategoryBalancedBatchSampler(_EpochBatchSampler):
    """Batches of bundles sharing ``categories_per_batch`` categories: hard in-batch negatives for free.

    See :func:`category_balanced_batches` for the algorithm and its exact guarantee (every bundle once per
    epoch, the partial last batch dropped if ``drop_last``); order is a function of ``(seed, epoch)``;
    DDP: as :class:`RandomBatchSampler`.

    Args:
        bundle_categories: the product categories of each training bundle.
        batch_size, seed, drop_last, sampler, rank, world_size: as :class:`RandomBatchSampler`.
        categories_per_batch: categories each batch is built around (2: about half the batch's products
            share one of two categories).
    """

    def __init__(
        self,
        bundle_categories: Sequence[Collection[str]],
        batch_size: int,
        categories_per_batch: int = 2,
        seed: int = 0,
        drop_last: bool = False,
        sampler: Sampler | None = None,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        super().__init__(len(bundle_categories), batch_size, seed, drop_last, sampler, rank, world_size)
        if categories_per_batch < 1:
            raise ValueError(f"categories_per_batch must be >= 1, got {categories_per_batch}")
        self.bundle_categories = [frozenset(c) for c in bundle_categories]
        self.categories_per_batch = categories_per_batch

    def global_batches(self, epoch: int) -> list[list[int]]:
        batches, _ = category_balanced_batches(
            self.bundle_categories,
            self.batch_size,
            self.categories_per_batch,
            keyed_rng(self.seed, epoch, _SAMPLER_STREAM),
            self.drop_last,
        )
        return batches


class LabelBalancedBatchSampler(_EpochBatchSampler):
    """P labels x K items per batch (:func:`label_balanced_batches`) for labelled training sets
    (``data=reader``): P = ``batch_size // items_per_label``.

    An epoch has as many batches as a plain pass over the items would (``len(labels) / batch_size``), so
    epochs mean the same with any sampler; its batches are a function of ``(seed, epoch)``. DDP: as
    :class:`RandomBatchSampler`.

    Args:
        labels: one integer label per training item (the data module passes them).
        batch_size: P x K, a multiple of ``items_per_label``.
        items_per_label: K.
        seed, drop_last, sampler, rank, world_size: as :class:`RandomBatchSampler`.
    """

    def __init__(
        self,
        labels: Sequence[int],
        batch_size: int,
        items_per_label: int = 4,
        seed: int = 0,
        drop_last: bool = False,
        sampler: Sampler | None = None,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        super().__init__(len(labels), batch_size, seed, drop_last, sampler, rank, world_size)
        values = np.asarray(labels)
        if values.ndim != 1 or values.dtype.kind not in "iu":
            raise ValueError(
                "sampler=label_balanced needs one integer label per training item (data=reader); the "
                "challenge data module passes bundle categories: use sampler=category_balanced there"
            )
        if items_per_label < 1 or batch_size % items_per_label:
            raise ValueError(
                f"batch_size {batch_size} must be a multiple of items_per_label {items_per_label} (P x K)"
            )
        self.labels = values.tolist()
        self.items_per_label = items_per_label

    def global_batches(self, epoch: int) -> list[list[int]]:
        return label_balanced_batches(
            self.labels,
            self.batch_size // self.items_per_label,
            self.items_per_label,
            batch_count(self.num_items, self.batch_size, self.drop_last),
            keyed_rng(self.seed, epoch, _SAMPLER_STREAM),
        )
