"""Training data of the ``pretrain`` stage: unlabelled images, each in several augmented views.

The views come from a multi-view transform (lightly's DINO, SimCLR or MAE transform, built by the method's
module, :mod:`fashion_retrieval.models.self_supervised`) that reads a PIL image and draws from the global
generators of torch, numpy and random. Each item seeds them from its own stream ``(seed, epoch, index)``
and restores them afterwards (:func:`keyed_global_generators`), so an item's views are a function of that
key alone, as for the training data of ``train`` (:mod:`fashion_retrieval.data.datasets`): the same in any
worker, for any ``num_workers`` and after a resume.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import pytorch_lightning as pl
import torch
from PIL import Image
from torch.utils.data import DataLoader

from fashion_retrieval.data.boxes import Box
from fashion_retrieval.data.datamodule import DeferredDataLoader, process_rank
from fashion_retrieval.data.datasets import ImageRegions, Stream, _key
from fashion_retrieval.data.samplers import ItemKey, RandomBatchSampler, keyed_rng

# A multi-view transform: a PIL image -> its views, each (3, h, w) float in 0..1 (no normalisation: the
# backbone normalises its own input).
ViewTransform = Callable[[Image.Image], Sequence[torch.Tensor]]


@contextmanager
def keyed_global_generators(rng: np.random.Generator) -> Iterator[None]:
    """Seed torch's, numpy's and Python's global generators from ``rng`` for the block, then restore them
    (the transforms of other libraries read only those)."""
    seeds = rng.integers(2**32, size=3)
    numpy_state, python_state = np.random.get_state(), random.getstate()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seeds[0]))
        np.random.seed(int(seeds[1]))
        random.seed(int(seeds[2]))
        try:
            yield
        finally:
            np.random.set_state(numpy_state)
            random.setstate(python_state)


def to_uint8(view: torch.Tensor) -> torch.Tensor:
    """A ``(3, h, w)`` float view in 0..1 as uint8 (the loaders' format: 4x fewer bytes to the device)."""
    return (view.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)


class MultiViewDataset(ImageRegions):
    """Items for a key ``(index, epoch)`` (a bare ``index``: epoch 0): ``views``, a list of ``(3, h, w)``
    uint8 tensors (``transform``'s views of image ``index``: the region ``boxes[index]`` grown by ``padding``
    where a box is given, else the whole image) and ``index``. The default collate stacks view ``v`` of a
    batch into ``views[v] (B, 3, h, w)``."""

    def __init__(
        self,
        paths: Sequence[str],
        transform: ViewTransform,
        boxes: Sequence[Box | None] | None = None,
        padding: float = 0.0,
        seed: int = 0,
    ) -> None:
        super().__init__(paths, boxes, padding)
        self.transform = transform
        self.seed = seed

    def __getitem__(self, key: ItemKey | int) -> dict[str, list[torch.Tensor] | int]:
        index, epoch = _key(key)
        image = Image.fromarray(np.ascontiguousarray(self.load(index)))
        with keyed_global_generators(keyed_rng(self.seed, epoch, index, Stream.VIEWS)):
            views = self.transform(image)
        return {"views": [to_uint8(view) for view in views], "index": index}


class PretrainDataModule(pl.LightningDataModule):
    """Batches of :class:`MultiViewDataset` in a fresh random order each epoch, seeded by ``(seed, epoch)``
    and sharded by DDP rank (:class:`~fashion_retrieval.data.samplers.RandomBatchSampler`); no validation."""

    def __init__(
        self,
        paths: Sequence[str],
        transform: ViewTransform,
        batch_size: int,
        num_workers: int = 0,
        seed: int = 0,
        boxes: Sequence[Box | None] | None = None,
        padding: float = 0.0,
    ) -> None:
        super().__init__()
        if not paths:
            raise ValueError("pretrain: no images to train on")
        self.dataset = MultiViewDataset(paths, transform, boxes, padding, seed)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.seed = seed

    def train_dataloader(self) -> DataLoader:
        rank, world_size = process_rank(self)
        batch_sampler = RandomBatchSampler(
            self.dataset,
            batch_size=self.batch_size,
            seed=self.seed,
            drop_last=len(self.dataset) > self.batch_size,
            rank=rank,
            world_size=world_size,
        )
        # Deferred: an eager iterator draws the first batches before Lightning's set_epoch (datamodule.py).
        return DeferredDataLoader(
            self.dataset,
            batch_sampler=batch_sampler,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )
