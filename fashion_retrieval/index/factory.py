"""Index types as specs (one dataclass per FAISS index type, inner product throughout) and the factory that
turns a spec into an empty ``faiss.Index``; one ``conf/index/*.yaml`` per spec."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

# The one place faiss is imported, so a missing install always gets this message.
try:
    import faiss
except ImportError as error:  # faiss comes from an extra: two builds provide the same module
    raise ImportError(
        "FAISS is not installed: pip install 'fashion-retrieval[cpu]' (faiss-cpu) or "
        "'fashion-retrieval[gpu]' (faiss-gpu)"
    ) from error

__all__ = [
    "DEVICES",
    "FlatSpec",
    "HNSWSpec",
    "IVFFlatSpec",
    "IVFPQSpec",
    "IVFSpec",
    "IndexSpec",
    "create_index",
    "default_nlist",
    "gpu_count",
    "spec_from_metadata",
    "to_device",
]

DEVICES = ("auto", "cpu", "gpu")


def _check_positive(spec: IndexSpec, *names: str) -> None:
    for name in names:
        value = getattr(spec, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{spec.index_type}: {name} must be a positive int, got {value!r}")


@dataclass(frozen=True, kw_only=True)
class IndexSpec:
    """What to build; ``device``: ``auto`` (a GPU when faiss has GPU support and sees one), ``cpu``, ``gpu``.

    ``device`` is where the index lives while in use; it is not recorded with a saved index (saved indexes
    are CPU indexes), every other field is.
    """

    index_type: ClassVar[str]
    gpu_capable: ClassVar[bool] = True
    # Fields that only change searching: a saved index can be loaded with other values.
    search_fields: ClassVar[tuple[str, ...]] = ()
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {DEVICES}, got {self.device!r}")

    def factory_string(self) -> str:
        """The ``faiss.index_factory`` description of this index type."""
        raise NotImplementedError

    def sized(self, num_items: int) -> IndexSpec:
        """This spec with every size-dependent default (``None``) fixed for ``num_items`` items: what is
        built and recorded. Types without such defaults return themselves."""
        return self

    def training_rows(self, num_rows: int) -> np.ndarray:
        """Sorted positions ``(S,) int64`` of the rows of an ``N``-row matrix that train the index (none for
        types without training); a sharded build gathers them shard by shard."""
        return np.zeros(0, dtype=np.int64)

    def training_sample(self, matrix: np.ndarray) -> np.ndarray:
        """The rows of ``matrix`` ``(N, D)`` that train the index: ``(0, D)`` for types without training."""
        return matrix[self.training_rows(matrix.shape[0])]

    def configure(self, index: faiss.Index) -> None:
        """Set the construction and search-time parameters on a CPU ``index`` of this type."""

    def params(self) -> dict[str, Any]:
        """The recorded parameters: every field but ``device``."""
        return {key: value for key, value in dataclasses.asdict(self).items() if key != "device"}

    def build_params(self) -> dict[str, Any]:
        """The parameters that shape the index itself (``params`` without the search-time ones)."""
        return {key: value for key, value in self.params().items() if key not in self.search_fields}


@dataclass(frozen=True, kw_only=True)
class FlatSpec(IndexSpec):
    """Exact search: every query scored against every item."""

    index_type: ClassVar[str] = "flat"

    def factory_string(self) -> str:
        return "Flat"


# FAISS's k-means warns below 39 training points per centroid; the derived nlist keeps to that.
MIN_POINTS_PER_CELL = 39


def default_nlist(num_items: int, train_size: int) -> int:
    """IVF cells for ``num_items`` vectors: ``4 sqrt(N)``, at most one cell per ``MIN_POINTS_PER_CELL``
    training vectors (``min(N, train_size)``), at least 1."""
    by_size = round(4 * math.sqrt(max(num_items, 0)))
    by_training = min(num_items, train_size) // MIN_POINTS_PER_CELL
    return max(1, min(by_size, by_training))


@dataclass(frozen=True, kw_only=True)
class IVFSpec(IndexSpec):
    """Inverted file: k-means into ``nlist`` cells (trained on a seeded sample of at most ``train_size``
    vectors); a query scans its ``nprobe`` nearest cells. ``nlist=None`` derives it from the item count
    (:func:`default_nlist`, applied by :meth:`sized`), and then ``nprobe`` is capped at it."""

    search_fields: ClassVar[tuple[str, ...]] = ("nprobe",)
    nlist: int | None = None
    nprobe: int = 16
    train_size: int = 100_000
    seed: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_positive(self, "nprobe", "train_size")
        if self.nlist is not None:
            _check_positive(self, "nlist")
            if self.nprobe > self.nlist:
                raise ValueError(f"{self.index_type}: nprobe={self.nprobe} exceeds nlist={self.nlist}")

    def sized(self, num_items: int) -> IVFSpec:
        if self.nlist is not None:
            return self
        nlist = default_nlist(num_items, self.train_size)
        return dataclasses.replace(self, nlist=nlist, nprobe=min(self.nprobe, nlist))

    @property
    def cells(self) -> int:
        """``nlist``, which must have been fixed (:meth:`sized`) before building."""
        if self.nlist is None:
            raise ValueError(f"{self.index_type}: nlist is derived from the item count; call sized(N) first")
        return self.nlist

    def min_training_vectors(self) -> int:
        """Vectors the k-means needs: one per centroid."""
        return self.cells

    def training_rows(self, num_rows: int) -> np.ndarray:
        """A seeded random sample of ``min(N, train_size)`` of ``N`` row positions, sorted.

        Raises ValueError when that is fewer than the training needs (e.g. ``nlist`` > N).
        """
        count = min(num_rows, self.train_size)
        needed = self.min_training_vectors()
        if count < needed:
            raise ValueError(
                f"{self.index_type} ({self.factory_string()}) needs at least {needed} training vectors, but "
                f"there are {num_rows} embeddings (train_size={self.train_size}); lower nlist/nbits "
                "or use index=flat"
            )
        rows = np.random.default_rng(self.seed).choice(num_rows, size=count, replace=False)
        return np.sort(rows).astype(np.int64)

    def configure(self, index: faiss.Index) -> None:
        faiss.extract_index_ivf(index).nprobe = self.nprobe


@dataclass(frozen=True, kw_only=True)
class IVFFlatSpec(IVFSpec):
    """IVF with full vectors in the cells: exact scores within the scanned cells."""

    index_type: ClassVar[str] = "ivf_flat"

    def factory_string(self) -> str:
        return f"IVF{self.cells},Flat"


@dataclass(frozen=True, kw_only=True)
class IVFPQSpec(IVFSpec):
    """IVF with product-quantised residuals: ``m`` sub-vectors of ``nbits`` bits each (``m`` divides D)."""

    index_type: ClassVar[str] = "ivf_pq"
    m: int = 64
    nbits: int = 8

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_positive(self, "m", "nbits")

    def factory_string(self) -> str:
        return f"IVF{self.cells},PQ{self.m}x{self.nbits}"

    def min_training_vectors(self) -> int:
        # Each sub-quantiser is a k-means with 2**nbits centroids.
        return max(self.cells, 2**self.nbits)


@dataclass(frozen=True, kw_only=True)
class HNSWSpec(IndexSpec):
    """HNSW graph, ``M`` links per node; ``ef_construction`` / ``ef_search``: candidate list sizes while
    building / searching (FAISS's efConstruction / efSearch). No training; FAISS has no GPU HNSW."""

    index_type: ClassVar[str] = "hnsw"
    gpu_capable: ClassVar[bool] = False
    search_fields: ClassVar[tuple[str, ...]] = ("ef_search",)
    M: int = 32
    ef_construction: int = 200
    ef_search: int = 128

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_positive(self, "M", "ef_construction", "ef_search")

    def factory_string(self) -> str:
        return f"HNSW{self.M},Flat"

    def configure(self, index: faiss.Index) -> None:
        hnsw = faiss.downcast_index(index).hnsw
        hnsw.efConstruction = self.ef_construction
        hnsw.efSearch = self.ef_search


SPECS: dict[str, type[IndexSpec]] = {
    spec.index_type: spec for spec in (FlatSpec, IVFFlatSpec, IVFPQSpec, HNSWSpec)
}


def spec_from_metadata(index_type: str, params: dict[str, Any], device: str = "auto") -> IndexSpec:
    """The spec a saved index records (``index_type``, ``params``), to be used on ``device``."""
    if index_type not in SPECS:
        raise ValueError(f"unknown index type {index_type!r}; known: {sorted(SPECS)}")
    return SPECS[index_type](**params, device=device)


def create_index(spec: IndexSpec, dim: int) -> faiss.Index:
    """An empty (untrained) CPU inner-product index of ``spec``'s type for ``dim``-d vectors."""
    if isinstance(spec, IVFPQSpec) and dim % spec.m:
        raise ValueError(f"ivf_pq: m={spec.m} must divide the embedding dimension {dim}")
    index = faiss.index_factory(dim, spec.factory_string(), faiss.METRIC_INNER_PRODUCT)
    spec.configure(index)
    return index


def gpu_count() -> int:
    """GPUs faiss can use: 0 with a CPU-only faiss build."""
    return faiss.get_num_gpus() if hasattr(faiss, "StandardGpuResources") else 0


def to_device(index: faiss.Index, spec: IndexSpec) -> faiss.Index:
    """``index`` (CPU) on the device ``spec.device`` asks for: all visible GPUs or unchanged.

    ``auto`` stays on the CPU for types FAISS cannot run on a GPU (HNSW); ``gpu`` fails when impossible.
    """
    if spec.device == "cpu" or (spec.device == "auto" and not (spec.gpu_capable and gpu_count())):
        return index
    if not spec.gpu_capable:
        raise ValueError(f"FAISS has no GPU {spec.index_type} index; set index.spec.device=auto|cpu")
    if not gpu_count():
        build = "GPU build" if hasattr(faiss, "StandardGpuResources") else "CPU-only build"
        raise RuntimeError(
            f"index.spec.device=gpu, but faiss {faiss.__version__} ({build}) sees no GPU; install "
            "fashion-retrieval[gpu] on a GPU machine or set index.spec.device=auto|cpu"
        )
    options = faiss.GpuMultipleClonerOptions()
    # Large PQ codes need float16 lookup tables to fit GPU shared memory; other types keep float32.
    options.useFloat16 = isinstance(spec, IVFPQSpec)
    return faiss.index_cpu_to_all_gpus(index, co=options)
