"""Loading what a search needs from a trained run: the encoder of a checkpoint, the catalogue data of the
configured dataset (:class:`~fashion_retrieval.data.catalogue_data.CatalogueData`: no Lightning), and the
catalogue index (reused when it was built from this checkpoint and these images, else built). Shared by
every stage that searches and by :class:`~fashion_retrieval.search.Retriever`.
"""

from __future__ import annotations

import logging
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from fashion_retrieval.data.catalogue_data import CatalogueData
from fashion_retrieval.index.export import export_catalogue
from fashion_retrieval.index.factory import IndexSpec
from fashion_retrieval.index.faiss_index import META_FILE, EmbeddingIndex, IndexMismatchError
from fashion_retrieval.io import content_digest, contents_digest
from fashion_retrieval.models.encoder import ImageEncoder
from fashion_retrieval.models.inference import embed_loader
from fashion_retrieval.models.onnx_encoder import load_search_encoder

log = logging.getLogger(__name__)


def datamodule_for(cfg: DictConfig) -> CatalogueData:
    """The catalogue side of ``cfg.data`` (:meth:`CatalogueData.from_config`: no Lightning data module is
    built for a search), set up."""
    data = OmegaConf.to_container(cfg.data, resolve=True)
    assert isinstance(data, dict)
    datamodule = CatalogueData.from_config(data)
    datamodule.setup()
    return datamodule


def log_index(index: EmbeddingIndex, spec: IndexSpec, index_dir: Path) -> None:
    log.info(
        "index: %d products, dim %d, %s built in %.1f s, written to %s",
        len(index),
        index.dim,
        spec.index_type,
        index.build_seconds,
        index_dir,
    )


def build_index(
    encoder: ImageEncoder, datamodule: CatalogueData, checkpoint: Path, index_dir: Path, spec: IndexSpec
) -> EmbeddingIndex:
    """Embed the catalogue with ``encoder`` (from ``checkpoint``) in memory, save a ``spec`` index in
    ``index_dir``."""
    embeddings = embed_loader(
        encoder, datamodule.catalogue_dataloader(), description="embedding the catalogue"
    )
    index = export_catalogue(
        index_dir, embeddings, datamodule.catalogue_ids, checkpoint, spec, datamodule.catalogue_paths
    )
    log_index(index, spec, index_dir)
    return index


def load_or_build_index(
    cfg: DictConfig, encoder: ImageEncoder, datamodule: CatalogueData, checkpoint: Path
) -> EmbeddingIndex:
    """Reuse ``index.dir`` when it holds the configured index type built from this very checkpoint and the
    catalogue images as they are now (their content digest), else build it. ``index.mmap`` (set by
    ``serve``): map the stored index instead of reading it into memory."""
    index_dir = Path(cfg.index.dir)
    spec = instantiate(cfg.index.spec)
    if (index_dir / META_FILE).is_file():
        try:
            index = EmbeddingIndex.load(
                index_dir,
                expected_checkpoint_sha256=content_digest(checkpoint),  # memoised: ONNX checks it too
                spec=spec,
                expected_catalogue_sha256=contents_digest(datamodule.catalogue_paths),
                mmap=bool(cfg.index.get("mmap", False)),
            )
        except IndexMismatchError as error:
            log.info("search: %s; rebuilding", error)
        else:
            log.info("search: reusing index %s", index_dir)
            return index
    return build_index(encoder, datamodule, checkpoint, index_dir, spec)


def load_for_search(cfg: DictConfig, checkpoint: Path) -> tuple[ImageEncoder, CatalogueData, EmbeddingIndex]:
    """The model of ``checkpoint`` (``encoder.backend``: PyTorch, or its ONNX export, which quacks like an
    :class:`ImageEncoder`), the data module of ``cfg`` and the catalogue index (checked to hold this
    catalogue's products, in catalogue order)."""
    encoder = load_search_encoder(cfg, checkpoint)
    datamodule = datamodule_for(cfg)
    index = load_or_build_index(cfg, encoder, datamodule, checkpoint)
    if list(index.ids) != datamodule.catalogue_ids:
        raise ValueError(
            f"index {cfg.index.dir} does not hold this catalogue's products; delete it to rebuild"
        )
    return encoder, datamodule, index
