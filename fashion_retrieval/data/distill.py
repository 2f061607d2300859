"""Training data of the ``distill`` stage: images paired with a teacher's embeddings of them.

A student learns from the training bundle photos and every catalogue packshot (no labels needed), each
seen with the evaluation transform, the view the teacher's embeddings were computed from (they are
cached once per teacher, :mod:`fashion_retrieval.features`); validation is the usual one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from pytorch_lightning.utilities import CombinedLoader
from torch.utils.data import DataLoader, Dataset

from fashion_retrieval.data.datamodule import ChallengeDataModule
from fashion_retrieval.data.datasets import ImageDataset

# The two image sets a student learns from, in the order their embeddings are concatenated in a batch.
DISTILL_SETS = ("bundles", "packshots")


class TargetDataset(Dataset):
    """Items of ``images`` (``image``, ``index``) with ``target``: row ``index`` of ``targets (N, D)``."""

    def __init__(self, images: ImageDataset, targets: np.ndarray) -> None:
        if len(targets) != len(images):
            raise ValueError(f"{len(targets)} teacher embeddings for {len(images)} images")
        self.images = images
        self.targets = np.asarray(targets, dtype=np.float32)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {**self.images[index], "target": torch.from_numpy(self.targets[index])}


class DistillDataModule(ChallengeDataModule):
    """:class:`ChallengeDataModule` whose training batches are ``{"bundles": ..., "packshots": ...}``, each
    ``image (B, 3, H, W)`` uint8, ``index (B,)`` and the teacher's ``target (B, D)``; ``batch_size`` bundle
    photos and ``packshot_batch_size`` packshots a step, an epoch ends with the longer set (the other
    cycles). The teacher's embeddings are handed over by :meth:`set_teacher_targets` before fitting."""

    def __init__(self, *args: Any, packshot_batch_size: int = 48, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.packshot_batch_size = packshot_batch_size
        self.teacher_targets: dict[str, np.ndarray] | None = None

    def distill_images(self) -> dict[str, ImageDataset]:
        """The student's images by set (:data:`DISTILL_SETS`): training bundle photos at the query size (or
        their garments, ``train_queries=garments``) and catalogue packshots at the catalogue size."""
        bundles = self.mining_query_loader().dataset
        packshots = self.catalogue_dataloader().dataset
        assert isinstance(bundles, ImageDataset) and isinstance(packshots, ImageDataset)
        return {"bundles": bundles, "packshots": packshots}

    def distill_ids(self) -> dict[str, list[str]]:
        """An id per item of :meth:`distill_images` (the feature cache's row names; an extra training
        set's bundles namespaced, :mod:`fashion_retrieval.data.training_sets`)."""
        bundle_ids = self.label_space().bundle_ids
        training = self.training_bundles()
        return {
            "bundles": [f"{i}/{bundle_ids[b.bundle_label]}" for i, b in enumerate(training)],
            "packshots": list(self.catalogue_ids),
        }

    def set_teacher_targets(self, targets: Mapping[str, np.ndarray]) -> None:
        """The teacher's ``(N_set, D)`` embeddings of each set of :meth:`distill_images`, in order."""
        missing = [name for name in DISTILL_SETS if name not in targets]
        if missing:
            raise ValueError(f"teacher embeddings missing for {missing}")
        self.teacher_targets = {name: np.asarray(targets[name], dtype=np.float32) for name in DISTILL_SETS}

    def train_dataloader(self) -> CombinedLoader:
        if self.teacher_targets is None:
            raise RuntimeError(
                "DistillDataModule: set_teacher_targets() before fitting (the distill stage does)"
            )
        hp = self.hparams
        images = self.distill_images()
        sizes = {"bundles": hp.batch_size, "packshots": self.packshot_batch_size}
        loaders = {}
        for offset, name in enumerate(DISTILL_SETS):
            dataset = TargetDataset(images[name], self.teacher_targets[name])
            loaders[name] = DataLoader(
                dataset,
                batch_size=sizes[name],
                shuffle=True,
                drop_last=len(dataset) > sizes[name],
                num_workers=self.num_workers,
                # Seeded per set: the order is a function of the seed, whatever else draws random numbers.
                generator=torch.Generator().manual_seed(hp.seed + offset),
            )
        return CombinedLoader(loaders, mode="max_size_cycle")
