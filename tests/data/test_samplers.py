"""Batch samplers: coverage, category grouping, P x K label batches, determinism in (seed, epoch), DDP
shares, Lightning glue."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
from lightning_fabric.utilities.data import _replace_dunder_methods, _set_sampler_epoch
from pytorch_lightning.trainer.states import RunningStage
from pytorch_lightning.utilities.data import _update_dataloader
from torch.utils.data import BatchSampler, DataLoader, Dataset, DistributedSampler

from fashion_retrieval.data.samplers import (
    CategoryBalancedBatchSampler,
    CyclingQueue,
    LabelBalancedBatchSampler,
    RandomBatchSampler,
    batch_count,
    category_balanced_batches,
    keyed_rng,
    label_balanced_batches,
    random_batches,
    shard_batches,
)

CATEGORIES = [f"C{i}" for i in range(7)]


def random_problem(seed: int, size: int) -> list[set[str]]:
    """Bundles of 1-3 categories with a skewed category frequency, like the catalogue."""
    rng = np.random.default_rng(seed)
    weights = np.array([8, 5, 3, 2, 1, 1, 0.5])
    return [
        set(rng.choice(CATEGORIES, size=rng.integers(1, 4), replace=False, p=weights / weights.sum()))
        for _ in range(size)
    ]


def reference_category_batches(bundle_categories, batch_size, k, rng, drop_last):
    """The same algorithm written the slow, obvious way: counts and queue heads recomputed by scanning."""
    sets = [set(c) or {""} for c in bundle_categories]
    names = sorted(set().union(*sets))
    order = rng.permutation(len(sets)).tolist()
    batched: set[int] = set()

    def draw(count, taken):
        weights = np.array(
            [0.0 if n in taken else sum(1 for b in order if b not in batched and n in sets[b]) for n in names]
        )
        count = min(count, int(np.count_nonzero(weights)))
        if count == 0:
            return []
        return [
            names[i] for i in rng.choice(len(names), size=count, replace=False, p=weights / weights.sum())
        ]

    batches = []
    while len(batched) < len(sets):
        size = min(batch_size, len(sets) - len(batched))
        batch, chosen = [], draw(k, set())
        active = list(chosen)
        while len(batch) < size:
            if not active:
                active = draw(1, set(chosen))
                chosen += active
            for name in list(active):
                if len(batch) == size:
                    break
                free = [b for b in order if b not in batched and name in sets[b]]
                if free:
                    batch.append(free[0])
                    batched.add(free[0])
                else:
                    active.remove(name)
        batches.append((batch, chosen))
    full = [b for b in batches if len(b[0]) == batch_size]
    ordered = [full[i] for i in rng.permutation(len(full))]
    if not drop_last:
        ordered += [b for b in batches if len(b[0]) < batch_size]
    return [b for b, _ in ordered], [c for _, c in ordered]


@pytest.mark.parametrize("seed", range(6))
def test_category_batches_match_the_slow_reference(seed):
    bundles = random_problem(seed, 40 + 7 * seed)
    batch_size, k, drop_last = 3 + seed % 4, 1 + seed % 3, bool(seed % 2)
    fast = category_balanced_batches(bundles, batch_size, k, np.random.default_rng(seed), drop_last)
    slow = reference_category_batches(bundles, batch_size, k, np.random.default_rng(seed), drop_last)
    assert fast == slow


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("drop_last", [False, True])
def test_category_batches_properties(seed, drop_last):
    bundles = random_problem(100 + seed, 23 + 11 * seed)
    batch_size, k = 2 + seed % 5, 1 + seed % 2
    batches, categories = category_balanced_batches(
        bundles, batch_size, k, np.random.default_rng(seed), drop_last
    )
    seen = Counter(i for batch in batches for i in batch)
    assert max(seen.values()) == 1  # never twice
    partial = len(bundles) % batch_size
    assert len(seen) == len(bundles) - (partial if drop_last else 0)  # everything else exactly once
    assert len(batches) == batch_count(len(bundles), batch_size, drop_last)
    assert all(len(b) == batch_size for b in batches[:-1])
    for batch, names in zip(batches, categories):
        assert len(set(names)) == len(names) >= min(k, 1)
        assert all(bundles[i] & set(names) for i in batch), "a bundle outside its batch's categories"
        if len(names) > k:  # extra categories only when the first k had no unbatched bundle left
            assert len(batch) > 0


def test_category_batches_concentrate_categories():
    rng = np.random.default_rng(7)
    names = [f"C{i}" for i in range(12)]
    bundles = [set(rng.choice(names, size=rng.integers(1, 3), replace=False)) for _ in range(600)]
    balanced, _ = category_balanced_batches(bundles, 12, 1, np.random.default_rng(0), drop_last=True)
    shuffled = random_batches(len(bundles), 12, np.random.default_rng(0), drop_last=True)

    def top_share(batches):  # share of a batch's bundles holding its most common category
        shares = [Counter(c for i in b for c in bundles[i]).most_common(1)[0][1] / len(b) for b in batches]
        return float(np.mean(shares))

    assert top_share(shuffled) < 0.4 and top_share(balanced) > 0.9


def test_random_batches_and_sharding():
    batches = random_batches(10, 3, keyed_rng(0, 1), drop_last=False)
    assert sorted(i for b in batches for i in b) == list(range(10)) and [len(b) for b in batches] == [
        3,
        3,
        3,
        1,
    ]
    assert len(random_batches(10, 3, keyed_rng(0, 1), drop_last=True)) == 3
    five = [[i] for i in range(5)]
    assert shard_batches(five, 0, 2, drop_last=True) == [[0], [2]]
    assert shard_batches(five, 1, 2, drop_last=True) == [[1], [3]]
    assert shard_batches(five, 1, 2, drop_last=False) == [[1], [3], [0]]  # padded by repeating the first
    assert shard_batches(five, 0, 1, drop_last=False) == five
    with pytest.raises(ValueError, match="rank"):
        shard_batches(five, 2, 2, drop_last=False)


@pytest.mark.parametrize("factory", ["random", "category"])
def test_samplers_are_functions_of_seed_and_epoch(factory):
    bundles = random_problem(3, 50)

    def make(**kwargs):
        if factory == "random":
            return RandomBatchSampler(bundles, batch_size=4, seed=5, drop_last=True, **kwargs)
        return CategoryBalancedBatchSampler(
            bundles, batch_size=4, categories_per_batch=2, seed=5, drop_last=True, **kwargs
        )

    first, second = make(), make()
    for epoch in (0, 1, 2):  # history on one, none on the other
        first.set_epoch(epoch)
        list(first)
    first.set_epoch(3)
    second.set_epoch(3)
    keys = list(first)
    assert keys == list(second) and len(keys) == len(first) == 12
    assert all(epoch == 3 for batch in keys for _, epoch in batch)
    second.set_epoch(4)
    assert [[i for i, _ in b] for b in second] != [[i for i, _ in b] for b in keys]
    # DDP: disjoint shares, the same number of batches on every rank.
    shares = [list(make(rank=r, world_size=3)) for r in range(3)]
    for rank, share in enumerate(shares):
        sampler = make(rank=rank, world_size=3)
        assert len(share) == len(sampler) == 4
    indices = [i for share in shares for batch in share for i, _ in batch]
    assert len(indices) == len(set(indices)) == 48


class KeyEcho(Dataset):
    """Returns the key it is asked for."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, key):
        return key


def test_lightning_injects_its_distributed_sampler_and_sets_the_epoch():
    """Under DDP Lightning re-creates a custom batch sampler with ``sampler=DistributedSampler(...)``; ours
    keep their own order and take the rank from it, and Lightning's set_epoch reaches them."""
    dataset = KeyEcho(20)
    with _replace_dunder_methods(DataLoader, "dataset"), _replace_dunder_methods(BatchSampler):
        loader = DataLoader(
            dataset,
            batch_sampler=RandomBatchSampler(dataset, batch_size=3, seed=1, drop_last=True),
            collate_fn=lambda items: items,
        )
    distributed = DistributedSampler(dataset, num_replicas=2, rank=1, shuffle=True)
    updated = _update_dataloader(loader, distributed, mode=RunningStage.TRAINING)
    assert isinstance(updated.batch_sampler, RandomBatchSampler)
    assert (updated.batch_sampler.rank, updated.batch_sampler.world_size) == (1, 2)
    _set_sampler_epoch(updated, 7)
    assert updated.batch_sampler.epoch == 7
    alone = RandomBatchSampler(dataset, batch_size=3, seed=1, drop_last=True, rank=1, world_size=2)
    alone.set_epoch(7)
    assert list(updated) == list(alone) and len(updated) == 3


def test_keyed_rng_is_stable():
    assert keyed_rng(3, 1, 2).integers(1 << 30) == keyed_rng(3, 1, 2).integers(1 << 30)
    assert keyed_rng(3, 1, 2).integers(1 << 30) != keyed_rng(3, 2, 1).integers(1 << 30)
    torch.manual_seed(0)  # global state is irrelevant
    np.random.seed(0)
    assert keyed_rng(3, 1, 2).integers(1 << 30) == keyed_rng(3, 1, 2).integers(1 << 30)


# --- label-balanced (P x K) batches ---------------------------------------------------------------------


def test_cycling_queue_never_repeats_within_a_take_and_evens_out():
    queue = CyclingQueue(list("abcde"), np.random.default_rng(0))
    taken = [queue.take(3) for _ in range(50)]
    assert all(len(set(t)) == 3 for t in taken)
    counts = Counter(item for t in taken for item in t)
    assert set(counts) == set("abcde") and max(counts.values()) - min(counts.values()) <= 1
    with pytest.raises(ValueError, match=r"count must be in \[0, 5\]"):
        queue.take(6)


@pytest.mark.parametrize("seed", range(3))
def test_label_balanced_batches_are_p_labels_times_k_items(seed):
    rng = np.random.default_rng(seed)
    labels = rng.choice(6, size=60, p=[0.4, 0.3, 0.15, 0.1, 0.04, 0.01]).tolist()
    sizes = Counter(labels)
    batches = label_balanced_batches(labels, 3, 4, 40, np.random.default_rng(seed))
    assert len(batches) == 40
    drawn = Counter()
    for batch in batches:
        assert len(set(batch)) == len(batch)  # no image twice in a batch
        per_label = Counter(labels[i] for i in batch)
        assert len(per_label) == 3  # P distinct labels ...
        assert all(count == min(4, sizes[label]) for label, count in per_label.items())  # ... K items each
        drawn.update(per_label.keys())
    # Every label comes round as often as the others, small or large.
    assert set(drawn) == set(sizes) and max(drawn.values()) - min(drawn.values()) <= 1
    with pytest.raises(ValueError, match=rf"labels_per_batch must be in \[1, {len(sizes)}\]"):
        label_balanced_batches(labels, len(sizes) + 1, 2, 1, np.random.default_rng(0))


def test_label_balanced_sampler_epochs_shares_and_refusals():
    labels = [i % 10 for i in range(50)]

    def make(**kwargs):
        return LabelBalancedBatchSampler(
            labels, batch_size=8, items_per_label=2, seed=5, drop_last=True, **kwargs
        )

    first, second = make(), make()
    first.set_epoch(2)
    second.set_epoch(2)
    keys = list(first)
    assert keys == list(second) and len(keys) == len(first) == batch_count(50, 8, True) == 6
    assert all(len(batch) == 8 and epoch == 2 for batch in keys for _, epoch in batch)
    second.set_epoch(3)
    assert list(second) != keys
    # DDP: rank r runs global batches r, r + 2, ... of the same epoch.
    shares = []
    for rank in range(2):
        sampler = make(rank=rank, world_size=2)
        sampler.set_epoch(2)
        shares.append(list(sampler))
    assert shares[0] == keys[0::2] and shares[1] == keys[1::2] and len(shares[0]) == 3
    with pytest.raises(ValueError, match="needs one integer label per training item"):
        LabelBalancedBatchSampler([frozenset({"DRESS"})] * 4, batch_size=4)
    with pytest.raises(ValueError, match="multiple of items_per_label 3"):
        LabelBalancedBatchSampler(labels, batch_size=8, items_per_label=3)
