"""A LightningDataModule over cached features: query features, (query, product) training pairs, catalogue
features and validation truth, all in memory (``docs/adapters.md``)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Sampler

from fashion_retrieval.data.catalogue import UNKNOWN_SECTION
from fashion_retrieval.features.shards import load_features


class EpochShuffledBatches(Sampler[list[int]]):
    """Batches of indices in ``[0, n)``, reshuffled every epoch as a pure function of ``(seed, epoch)``.

    Lightning calls :meth:`set_epoch` before each epoch, so a resumed run replays the same order.
    """

    def __init__(self, n: int, batch_size: int, shuffle: bool = True, seed: int = 0, drop_last: bool = False):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.n, self.batch_size, self.shuffle, self.seed, self.drop_last = (
            n,
            batch_size,
            shuffle,
            seed,
            drop_last,
        )
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[list[int]]:
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(self.n)
        else:
            order = np.arange(self.n)
        stop = len(self) * self.batch_size if self.drop_last else self.n
        for start in range(0, stop, self.batch_size):
            yield order[start : start + self.batch_size].tolist()

    def __len__(self) -> int:
        return self.n // self.batch_size if self.drop_last else -(-self.n // self.batch_size)


class _PairBatches:
    """Indexed by a list of pair positions; returns the whole batch at once (no per-item collation)."""

    def __init__(self, module: FeatureDataModule) -> None:
        self.module = module

    def __len__(self) -> int:
        return len(self.module.train_pairs)

    def __getitem__(self, positions: list[int]) -> dict[str, torch.Tensor]:
        m = self.module
        pairs = m.train_pairs[torch.as_tensor(positions, dtype=torch.long)]
        query_rows, product_rows = pairs[:, 0], pairs[:, 1]
        if m.query_images is not None:  # given together with catalogue_images
            inputs = {
                "query_image": m.query_images[query_rows],
                "catalogue_image": m.catalogue_images[product_rows],
            }
        else:
            inputs = {"query": m.query_features[query_rows], "catalogue": m.catalogue_features[product_rows]}
        return {
            **inputs,
            "query_row": query_rows,
            "catalogue_label": product_rows,
            "query_products": m.query_products[query_rows],
        }


class _QueryBatches:
    def __init__(self, features: torch.Tensor, rows: torch.Tensor) -> None:
        self.features, self.rows = features, rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, positions: list[int]) -> dict[str, torch.Tensor]:
        index = torch.as_tensor(positions, dtype=torch.long)
        return {"query": self.features[self.rows[index]], "index": index}


def padded_products(pairs: torch.Tensor, num_queries: int) -> torch.Tensor:
    """``(Q, L)`` long: the product rows of each query in ``pairs (N, 2)``, sorted, unique, -1 padded."""
    unique = torch.unique(pairs, dim=0) if len(pairs) else pairs
    counts = torch.bincount(unique[:, 0], minlength=num_queries) if len(unique) else torch.zeros(num_queries)
    width = max(int(counts.max().item()) if num_queries else 0, 1)
    out = torch.full((num_queries, width), -1, dtype=torch.long)
    if len(unique):
        # torch.unique(dim=0) sorts rows, so each query's products are contiguous: rank = position - start.
        starts = torch.cumsum(counts, 0) - counts
        rank = torch.arange(len(unique)) - starts[unique[:, 0]]
        out[unique[:, 0], rank] = unique[:, 1]
    return out


class FeatureDataModule(pl.LightningDataModule):
    """Batches of cached query features with their positive products, and validation queries.

    Args:
        query_features: ``(Q, D)`` float32 query (crop or bundle) features, L2-normalised.
        train_pairs: ``(N, 2)`` int: ``(query row, product row)`` training pairs; a query with several
            products appears in several pairs (all of them are its positives in every batch).
        catalogue_features: ``(G, D)`` float32 catalogue features, L2-normalised.
        val_queries: ``(V,)`` int query rows used for validation.
        val_truth: ``V`` lists of catalogue rows, the products of each validation query.
        catalogue_sections: ``(G,)`` int section per product (-1 unknown); ``None``: all unknown.
        query_sections: ``(Q,)`` int section per query (a query only retrieves its section, as in
            validation of the image model); ``None``: all 0 (with unknown catalogue sections: no filter).
        catalogue_categories: ``(G,)`` int category per product, kept for breakdowns (optional).
        batch_size: training pairs per batch (the winners: 512).
        eval_batch_size: validation queries per batch.
        seed: shuffling seed (epoch ``e`` uses ``(seed, e)``).
        query_images, catalogue_images: ``(Q, 3, H, W)`` and ``(G, 3, H', W')`` uint8, the preprocessed images
            the features were computed from (row for row); given both, training batches carry
            ``query_image`` / ``catalogue_image`` instead of features, for a module with a
            ``feature_extractor`` (the same head trained end to end through the frozen backbone). Same
            pairs, same batch order; validation batches keep the features.

    Training batches: ``query (B, D)``, ``catalogue (B, D)`` (the positive's catalogue features),
    ``query_row (B,)``, ``catalogue_label (B,)`` (product rows), ``query_products (B, L)`` (all product
    rows of each query, -1 padded). Validation batches: ``query (B, D)``, ``index (B,)`` (position in
    ``val_queries``).
    """

    def __init__(
        self,
        query_features: npt.ArrayLike,
        train_pairs: npt.ArrayLike,
        catalogue_features: npt.ArrayLike,
        val_queries: npt.ArrayLike,
        val_truth: Sequence[Sequence[int]],
        catalogue_sections: npt.ArrayLike | None = None,
        query_sections: npt.ArrayLike | None = None,
        catalogue_categories: npt.ArrayLike | None = None,
        batch_size: int = 512,
        eval_batch_size: int = 4096,
        seed: int = 0,
        drop_last: bool = False,
        query_images: torch.Tensor | None = None,
        catalogue_images: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        self.query_features = _features(query_features, "query_features")
        self.catalogue_features = _features(catalogue_features, "catalogue_features")
        num_queries, dim = self.query_features.shape
        num_products = self.catalogue_features.shape[0]
        if self.catalogue_features.shape[1] != dim:
            raise ValueError(
                f"query_features are {dim}-d but catalogue_features {self.catalogue_features.shape[1]}-d"
            )
        self.train_pairs = _rows(train_pairs, "train_pairs", (num_queries, num_products))
        self.val_queries = _rows(val_queries, "val_queries", (num_queries,))
        if len(val_truth) != len(self.val_queries):
            raise ValueError(f"val_truth has {len(val_truth)} lists for {len(self.val_queries)} val_queries")
        for position, products in enumerate(val_truth):
            bad = [p for p in products if not 0 <= int(p) < num_products]
            if bad:
                raise ValueError(
                    f"val_truth[{position}] names catalogue rows outside [0, {num_products}): {bad}"
                )
        self.val_truth = [[int(p) for p in products] for products in val_truth]
        self.catalogue_sections = _labels(
            catalogue_sections, num_products, UNKNOWN_SECTION, "catalogue_sections"
        )
        self.query_sections = _labels(query_sections, num_queries, 0, "query_sections")
        self.catalogue_categories = (
            None
            if catalogue_categories is None
            else _labels(catalogue_categories, num_products, -1, "catalogue_categories")
        )
        self.query_products = padded_products(self.train_pairs, num_queries)
        if (query_images is None) != (catalogue_images is None):
            raise ValueError(
                "query_images and catalogue_images go together (images of both sides, or neither)"
            )
        self.query_images = _images(query_images, num_queries, "query_images")
        self.catalogue_images = _images(catalogue_images, num_products, "catalogue_images")
        self.feature_dim = int(dim)
        self.batch_size, self.eval_batch_size = int(batch_size), int(eval_batch_size)
        self.seed, self.drop_last = int(seed), drop_last
        self.query_ids: list[str] | None = None  # set by from_cache
        self.product_ids: list[str] | None = None

    @classmethod
    def from_cache(
        cls,
        query_dir: str | Path,
        catalogue_dir: str | Path,
        train_pairs: Sequence[tuple[str, str]],
        val_truth: Mapping[str, Sequence[str]],
        product_sections: Mapping[str, int] | None = None,
        query_sections: Mapping[str, int] | None = None,
        **kwargs: object,
    ) -> FeatureDataModule:
        """Build from two feature caches (:func:`~fashion_retrieval.features.load_features`) and id pairs.

        Args:
            query_dir, catalogue_dir: feature cache directories of the queries and of the catalogue.
            train_pairs: ``(query id, product id)`` training pairs.
            val_truth: ``{query id: [product id, ...]}``, in validation order.
            product_sections, query_sections: section per id (missing ids: unknown / 0).
            kwargs: the other constructor arguments (batch_size, seed...).
        """
        query_features, query_ids = load_features(query_dir)
        catalogue_features, product_ids = load_features(catalogue_dir)
        query_row = {qid: i for i, qid in enumerate(query_ids)}
        product_row = {pid: i for i, pid in enumerate(product_ids)}

        def lookup(table: Mapping[str, int], key: str, what: str, source: Path | str) -> int:
            if key not in table:
                raise KeyError(f"{what} {key!r} is not in the feature cache {source}")
            return table[key]

        pairs = [
            (lookup(query_row, q, "query id", query_dir), lookup(product_row, p, "product id", catalogue_dir))
            for q, p in train_pairs
        ]
        val_rows = [lookup(query_row, q, "validation query id", query_dir) for q in val_truth]
        truth = [
            [lookup(product_row, p, "product id", catalogue_dir) for p in val_truth[q]] for q in val_truth
        ]
        sections = None
        if product_sections is not None:
            sections = [int(product_sections.get(pid, UNKNOWN_SECTION)) for pid in product_ids]
        q_sections = None if query_sections is None else [int(query_sections.get(q, 0)) for q in query_ids]
        module = cls(
            query_features,
            np.asarray(pairs, dtype=np.int64).reshape(-1, 2),
            catalogue_features,
            np.asarray(val_rows, dtype=np.int64),
            truth,
            catalogue_sections=sections,
            query_sections=q_sections,
            **kwargs,  # type: ignore[arg-type]
        )
        module.query_ids, module.product_ids = list(query_ids), list(product_ids)
        return module

    def train_dataloader(self) -> DataLoader:
        sampler = EpochShuffledBatches(
            len(self.train_pairs), self.batch_size, True, self.seed, self.drop_last
        )
        # batch_size=None: the sampler yields whole batches of indices and the dataset slices them at once.
        return DataLoader(_PairBatches(self), sampler=sampler, batch_size=None)

    def val_dataloader(self) -> DataLoader:
        sampler = EpochShuffledBatches(len(self.val_queries), self.eval_batch_size, shuffle=False)
        return DataLoader(
            _QueryBatches(self.query_features, self.val_queries), sampler=sampler, batch_size=None
        )

    def validation_sections(self) -> tuple[np.ndarray, np.ndarray]:
        """``(V,)`` query sections of the validation queries and ``(G,)`` catalogue sections."""
        return self.query_sections[self.val_queries].numpy(), self.catalogue_sections.numpy()


def _features(values: npt.ArrayLike, name: str) -> torch.Tensor:
    tensor = torch.as_tensor(np.asarray(values, dtype=np.float32))
    if tensor.dim() != 2 or tensor.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty (N, D) array, got shape {tuple(tensor.shape)}")
    if not torch.isfinite(tensor).all():
        row = int((~torch.isfinite(tensor)).any(dim=1).nonzero()[0])
        raise ValueError(f"{name} row {row} is not finite")
    return tensor


def _rows(values: npt.ArrayLike, name: str, bounds: tuple[int, ...]) -> torch.Tensor:
    array = np.asarray(values)
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name} must hold integer rows, got dtype {array.dtype}")
    array = array.astype(np.int64).reshape(-1, len(bounds)) if len(bounds) > 1 else array.astype(np.int64)
    if array.ndim != (2 if len(bounds) > 1 else 1):
        raise ValueError(f"{name} has shape {array.shape}")
    for column, bound in enumerate(bounds):
        values_in = array[:, column] if len(bounds) > 1 else array
        bad = np.flatnonzero((values_in < 0) | (values_in >= bound))
        if bad.size:
            raise ValueError(f"{name} row {int(bad[0])} holds {int(values_in[bad[0]])}, outside [0, {bound})")
    return torch.from_numpy(array)


def _images(images: torch.Tensor | None, count: int, name: str) -> torch.Tensor | None:
    if images is None:
        return None
    if images.dim() != 4 or images.shape[0] != count or images.shape[1] != 3:
        raise ValueError(
            f"{name} must have shape ({count}, 3, H, W) (one per feature row), got {tuple(images.shape)}"
        )
    return images


def _labels(values: npt.ArrayLike | None, count: int, default: int, name: str) -> torch.Tensor:
    if values is None:
        return torch.full((count,), default, dtype=torch.long)
    array = np.asarray(values, dtype=np.int64)
    if array.shape != (count,):
        raise ValueError(f"{name} must have shape ({count},), got {array.shape}")
    return torch.from_numpy(array)
