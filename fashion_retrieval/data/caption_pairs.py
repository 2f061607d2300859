"""(packshot, caption) pairs for the dual encoder, and the text -> product validation set.

The texts are handed over as a mapping product id -> its texts (:meth:`CaptionDataModule.set_texts`), not
read here: the synthetic ``product_captions.csv``, or the real data's ``product_description`` as the one
text of each product (``fashion_retrieval.data.captions.product_texts``). Held-out products (any split
handed to ``set_texts``; ``train-text`` hands text-eval's, ``data/text_queries.py`` ``heldout_mask``) never
give a training pair; their texts are the validation queries.

Randomness is a function of ``(seed, epoch, product)``, as for bundles: each epoch every training product
appears once with one of its texts, drawn by ``keyed_rng(seed, epoch, index, CAPTION_STREAM)``, which also
drives the packshot's augmentation.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from pytorch_lightning.utilities import CombinedLoader
from torch.utils.data import DataLoader, Dataset

from fashion_retrieval.data.augmentation import CATALOGUE_AUGMENTATION, train_transform
from fashion_retrieval.data.catalogue import UNKNOWN_SECTION, QuerySet
from fashion_retrieval.data.datamodule import ChallengeDataModule, DeferredDataLoader, process_rank
from fashion_retrieval.data.datasets import ItemKey, _key, seeded_apply
from fashion_retrieval.data.samplers import RandomBatchSampler, keyed_rng
from fashion_retrieval.data.training_sets import reject_extra_training_sets
from fashion_retrieval.data.transforms import load_rgb

log = logging.getLogger(__name__)

# keyed_rng stream of the caption draw (bundle datasets use other streams of (seed, epoch, index)).
CAPTION_STREAM = 3


def normalise_text(text: str) -> str:
    """The form texts are compared in: lower case, single spaces (``"Red  Shirt "`` -> ``"red shirt"``)."""
    return " ".join(text.lower().split())


class TextKeys:
    """One int64 id per distinct normalised text (:func:`normalise_text`), in order of first sight."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}

    def __call__(self, text: str) -> int:
        return self.ids.setdefault(normalise_text(text), len(self.ids))


class CaptionPairDataset(Dataset):
    """Items ``(index, epoch)`` -> ``caption`` (str), ``caption_key`` (its text's id), ``product`` (catalogue
    row) and either ``image (3, H, W)`` uint8 (the augmented packshot) or ``features (F,)`` float32.

    ``texts[i]``, ``keys[i]``: the texts of item ``i`` and their ids; ``rows[i]``: its catalogue row, which
    indexes ``paths`` (with ``transform``) or ``features (G, F)``.
    """

    def __init__(
        self,
        texts: Sequence[Sequence[str]],
        keys: Sequence[Sequence[int]],
        rows: Sequence[int],
        seed: int,
        paths: Sequence[str] | None = None,
        transform: Any = None,
        features: np.ndarray | None = None,
        max_pixels: int | None = None,
    ) -> None:
        if (paths is None) == (features is None):
            raise ValueError("give the packshots' paths or their features, not both")
        if not len(texts) == len(keys) == len(rows):
            raise ValueError(f"{len(texts)} text lists, {len(keys)} key lists, {len(rows)} rows")
        empty = [i for i, product_texts in enumerate(texts) if not product_texts]
        if empty:
            raise ValueError(f"items without a text: {empty[:5]}")
        self.texts, self.keys, self.rows = texts, keys, list(rows)
        self.seed, self.paths, self.transform = seed, paths, transform
        self.features, self.max_pixels = features, max_pixels

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key: ItemKey | int) -> dict[str, Any]:
        index, epoch = _key(key)
        rng = keyed_rng(self.seed, epoch, index, CAPTION_STREAM)
        choice = int(rng.integers(len(self.texts[index])))
        row = self.rows[index]
        item: dict[str, Any] = {
            "caption": self.texts[index][choice],
            "caption_key": self.keys[index][choice],
            "product": row,
        }
        if self.features is not None:
            item["features"] = torch.from_numpy(self.features[row])
        else:
            assert self.paths is not None
            item["image"] = seeded_apply(self.transform, load_rgb(self.paths[row], self.max_pixels), rng)
        return item


class TextDataset(Dataset):
    """Items ``caption`` (str) and ``index`` (its position)."""

    def __init__(self, texts: Sequence[str]) -> None:
        self.texts = list(texts)

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"caption": self.texts[index], "index": index}


class FeatureDataset(Dataset):
    """Items ``features (F,)`` float32 (row ``index`` of ``(N, F)``) and ``index``."""

    def __init__(self, features: np.ndarray) -> None:
        self.features = features

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"features": torch.from_numpy(self.features[index]), "index": index}


class CaptionDataModule(ChallengeDataModule):
    """:class:`ChallengeDataModule` whose training batches are (packshot, caption) pairs of the products
    that are not held out, ``pair_batch_size`` a step, and whose validation is text -> product: every text
    of a held-out product is a query, the whole catalogue the gallery, and a query's truth every product
    having that text (:func:`normalise_text`) among its own, so identical captions are no false misses.

    ``bundle_batches``: training batches are ``{"pairs": ..., "bundles": ...}``, the parent's bundle
    batches beside the pairs (the joint loss; an epoch ends with the longer set, the other cycles).

    Before fitting: :meth:`set_texts`, and :meth:`set_features` to train the image tower's head on a frozen
    backbone's cached features instead of packshots (no augmentation then).
    """

    def __init__(
        self, *args: Any, pair_batch_size: int = 64, bundle_batches: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        reject_extra_training_sets(self.extra_sets, "train-text")
        self.pair_batch_size = pair_batch_size
        self.bundle_batches = bundle_batches
        self.texts: list[list[str]] | None = None
        self.heldout: set[str] = set()
        self.features: np.ndarray | None = None

    def set_texts(self, texts: Mapping[str, Sequence[str]], heldout: Collection[str] = ()) -> None:
        """Each product's texts (``product id -> texts``) and the ids of the products kept for validation.
        A product without a text stays in the catalogue (the gallery) but gives no pair and no query; their
        count is logged."""
        ids = self.catalogue_ids
        missing = [pid for pid in ids if not texts.get(pid)]
        if missing:
            log.warning(
                "%d of %d product(s) have no text: no pair, no query (e.g. %s)",
                len(missing),
                len(ids),
                missing[:5],
            )
        unknown = sorted(set(heldout) - set(ids))
        if unknown:
            raise ValueError(f"held-out product(s) not in the catalogue: {unknown[:5]}")
        if not heldout or len(set(heldout)) == len(ids):
            raise ValueError(
                f"{len(set(heldout))} of {len(ids)} products held out: validation needs some and training "
                "the others (text.heldout_fraction)"
            )
        self.texts = [list(texts.get(pid, ())) for pid in ids]
        self.heldout = set(heldout)

    def set_features(self, features: np.ndarray) -> None:
        """``(G, F)`` float32 pooled features of the catalogue's packshots, in :attr:`catalogue_ids` order."""
        if len(features) != len(self.catalogue_ids):
            raise ValueError(f"{len(features)} feature rows for {len(self.catalogue_ids)} products")
        self.features = np.ascontiguousarray(features, dtype=np.float32)

    def _texts(self) -> list[list[str]]:
        if self.texts is None:
            raise RuntimeError("CaptionDataModule: set_texts() before fitting (the train-text stage does)")
        return self.texts

    def training_texts(self) -> list[str]:
        """Every text of the training products (what a tokenizer is fitted on)."""
        return [
            t
            for pid, texts in zip(self.catalogue_ids, self._texts())
            if pid not in self.heldout
            for t in texts
        ]

    def pair_dataset(self) -> CaptionPairDataset:
        texts = self._texts()
        keys = TextKeys()
        rows = [row for row, pid in enumerate(self.catalogue_ids) if pid not in self.heldout and texts[row]]
        hp = self.hparams
        source: dict[str, Any] = {"features": self.features}
        if self.features is None:
            transform = train_transform(
                self.catalogue_size, CATALOGUE_AUGMENTATION, hp.augment_strength, hp.domain_randomization
            )
            source = {"paths": self.catalogue_paths, "transform": transform}
        return CaptionPairDataset(
            [texts[r] for r in rows],
            [[keys(t) for t in texts[r]] for r in rows],
            rows,
            hp.seed,
            max_pixels=self.max_image_pixels,
            **source,
        )

    def train_dataloader(self) -> DataLoader | CombinedLoader:
        hp = self.hparams
        dataset = self.pair_dataset()
        rank, world_size = process_rank(self)
        pairs = DeferredDataLoader(
            dataset,
            batch_sampler=RandomBatchSampler(
                dataset.rows,
                batch_size=self.pair_batch_size,
                seed=hp.seed,
                drop_last=len(dataset) > self.pair_batch_size,
                rank=rank,
                world_size=world_size,
            ),
            num_workers=self.num_workers,
        )
        if not self.bundle_batches:
            return pairs
        return CombinedLoader({"pairs": pairs, "bundles": super().train_dataloader()}, mode="max_size_cycle")

    def validation_texts(self) -> tuple[list[str], list[str], list[list[int]]]:
        """The held-out products' texts as queries: ``(query ids "<product>/<n>", texts, truth rows)``."""
        texts = self._texts()
        owners: dict[str, list[int]] = {}
        for row, product_texts in enumerate(texts):
            for text in dict.fromkeys(map(normalise_text, product_texts)):
                owners.setdefault(text, []).append(row)
        ids: list[str] = []
        queries: list[str] = []
        truth: list[list[int]] = []
        for row, pid in enumerate(self.catalogue_ids):
            if pid in self.heldout:
                for n, text in enumerate(texts[row]):
                    ids.append(f"{pid}/{n}")
                    queries.append(text)
                    truth.append(owners[normalise_text(text)])
        return ids, queries, truth

    def validation_queries(self) -> QuerySet:
        """The text queries as a :class:`QuerySet` (no photo, any section) for the evaluator."""
        ids, _, truth = self.validation_texts()
        return QuerySet(ids, [""] * len(ids), [UNKNOWN_SECTION] * len(ids), truth)

    def catalogue_sections(self) -> dict[str, int]:
        """None known: a text query has no section and searches the whole catalogue (an unknown section
        on both sides allows every pair; :class:`~fashion_retrieval.index.eligibility.Eligibility`)."""
        return {}

    def val_dataloader(self) -> list[DataLoader]:
        """Two loaders: the validation texts (index 0) and the catalogue (index 1: features when set)."""
        texts = DataLoader(
            TextDataset(self.validation_texts()[1]), batch_size=self.eval_batch_size, shuffle=False
        )
        if self.features is None:
            return [texts, self.catalogue_dataloader()]
        return [
            texts,
            DataLoader(FeatureDataset(self.features), batch_size=self.eval_batch_size, shuffle=False),
        ]
