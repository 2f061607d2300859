"""LightningDataModule for the datasets the readers read (``data=reader``, ``reader=...``), OML-style:
labelled training images, and the reader's queries against its gallery for validation."""

from __future__ import annotations

from collections.abc import Sequence

import pytorch_lightning as pl
from torch.utils.data import DataLoader

from fashion_retrieval.data.augmentation import QUERY_AUGMENTATION, train_transform
from fashion_retrieval.data.datamodule import SamplerFactory, process_rank
from fashion_retrieval.data.datasets import ImageDataset, LabelledImageDataset
from fashion_retrieval.data.readers import ImageList, RetrievalSet, TrainingSet
from fashion_retrieval.data.samplers import LabelBalancedBatchSampler
from fashion_retrieval.data.transforms import eval_transform

# Where each reader finds its training images, for the error raised when a set has none.
TRAINING_SPLITS = (
    "deepfashion_inshop: the partition's train rows; deepfashion2: reader.train_root=<train split dir>; "
    "generic_csv: rows with split=train; clothing_small: reader.train_splits=[train]"
)


class ReaderDataModule(pl.LightningDataModule):
    """Trains on a reader's labelled training split and validates on its queries against its gallery.

    Args:
        dataset: what ``reader=`` builds: a :class:`RetrievalSet` whose ``train`` is the training split
            (images of one label are positives of each other) and whose queries, gallery and positives are
            the validation.
        image_size: ``(H, W)`` of every image, training and validation (boxes are cut out first).
        batch_size: training images per batch (P labels x K images with ``sampler=label_balanced``).
        eval_batch_size, num_workers: validation batches and loader processes.
        augment_strength: training augmentation (0: none), the bundle photos' kind
            (:data:`fashion_retrieval.data.augmentation.QUERY_AUGMENTATION`): reader images are photos.
        box_padding: each side of a reader box grows by this fraction of its size.
        seed: augmentation and batches are a function of ``(seed, epoch, item)``, as in the challenge module.
        sampler: batch sampler factory (``conf/sampler/``, ``_partial_``), called with the training labels;
            default :class:`LabelBalancedBatchSampler`.

    Validation loaders are ``[queries, gallery]`` (what :class:`RetrievalModule` and
    :class:`fashion_retrieval.callbacks.RetrievalSetEvaluator` expect); the gallery is also what the
    embedding exporter writes, with ids ``<row>:<item id>`` (item ids repeat: several photos per item).
    """

    def __init__(
        self,
        dataset: RetrievalSet | None,
        image_size: Sequence[int] = (224, 224),
        batch_size: int = 32,
        eval_batch_size: int = 64,
        num_workers: int = 0,
        augment_strength: float = 1.0,
        box_padding: float = 0.0,
        seed: int = 0,
        sampler: SamplerFactory | None = None,
    ) -> None:
        super().__init__()
        # The set is data read from disk and the sampler a Hydra partial: neither goes into checkpoints.
        self.save_hyperparameters(ignore=["dataset", "sampler"], logger=False)
        if dataset is None:
            raise ValueError(
                "data=reader trains on a reader's dataset: pass reader=deepfashion_inshop|deepfashion2|"
                "generic_csv|clothing_small (docs/dataset.md 'Other datasets')"
            )
        if dataset.train is None or not len(dataset.train.images):
            raise ValueError(
                f"{dataset.name}: the reader found no training images with a second image of their label "
                f"({TRAINING_SPLITS})"
            )
        self.validation_set: RetrievalSet = dataset
        self.training_set: TrainingSet = dataset.train
        self.sampler_factory = sampler

    @property
    def catalogue_ids(self) -> list[str]:
        return [f"{row}:{item}" for row, item in enumerate(self.validation_set.gallery.item_ids)]

    @property
    def catalogue_paths(self) -> list[str]:
        """The gallery's image files, in :attr:`catalogue_ids` order (a file repeats when it holds several
        boxed items)."""
        return [str(p) for p in self.validation_set.gallery.paths]

    def _eval_loader(self, images: ImageList) -> DataLoader:
        hp = self.hparams
        paths = [str(p) for p in images.paths]
        dataset = ImageDataset(
            paths, eval_transform(hp.image_size), boxes=images.box_list(), padding=hp.box_padding
        )
        return DataLoader(dataset, batch_size=hp.eval_batch_size, shuffle=False, num_workers=hp.num_workers)

    def train_dataloader(self) -> DataLoader:
        """Labelled batches: ``image (B, 3, H, W)`` uint8, ``label (B,)``, ``index (B,)``; items are
        ``(index, epoch)`` keys from the batch sampler (Lightning calls its ``set_epoch``)."""
        hp = self.hparams
        images, labels = self.training_set.images, self.training_set.labels.tolist()
        dataset = LabelledImageDataset(
            [str(p) for p in images.paths],
            labels,
            train_transform(hp.image_size, QUERY_AUGMENTATION, hp.augment_strength),
            images.box_list(),
            hp.box_padding,
            hp.seed,
        )
        rank, world_size = process_rank(self)
        factory = self.sampler_factory or LabelBalancedBatchSampler
        batch_sampler = factory(
            labels,
            batch_size=hp.batch_size,
            seed=hp.seed,
            drop_last=len(dataset) > hp.batch_size,
            rank=rank,
            world_size=world_size,
        )
        return DataLoader(
            dataset,
            batch_sampler=batch_sampler,
            num_workers=hp.num_workers,
            persistent_workers=hp.num_workers > 0,
        )

    def catalogue_dataloader(self) -> DataLoader:
        return self._eval_loader(self.validation_set.gallery)

    def val_dataloader(self) -> list[DataLoader]:
        """Two loaders: the validation queries (index 0) and the gallery (index 1)."""
        return [self._eval_loader(self.validation_set.queries), self.catalogue_dataloader()]
