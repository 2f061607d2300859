"""Loading what a search needs from a trained run: the encoder of a checkpoint (or its ONNX export's
session), the catalogue data of the configured dataset
(:class:`~fashion_retrieval.data.catalogue_data.CatalogueData`: no Lightning), and the catalogue index
(reused when it was built from this checkpoint and these images, else built). Shared by every stage that
searches and by :class:`~fashion_retrieval.search.Retriever`.

torch is imported only where it is needed: by the torch backend, and by the data loaders (building an
index, searching dataset bundles); the ONNX service answers uploads without it (docs/serving.md
"Start-up").
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from fashion_retrieval.data.catalogue_data import CatalogueData
from fashion_retrieval.index.export import export_catalogue
from fashion_retrieval.index.factory import IndexSpec
from fashion_retrieval.index.faiss_index import META_FILE, EmbeddingIndex, IndexMismatchError
from fashion_retrieval.io import content_digest, contents_digest
from fashion_retrieval.models.onnx_session import OnnxSession, encoder_backend, load_onnx_session

if TYPE_CHECKING:
    from torch import nn

log = logging.getLogger(__name__)


def load_search_model(cfg: DictConfig, checkpoint: Path) -> nn.Module | OnnxSession:
    """``encoder.backend=torch`` (default): the encoder rebuilt from ``checkpoint``; ``onnx``: the session
    of ``encoder.onnx_path``, exported from that very checkpoint (no torch imported)."""
    if encoder_backend(cfg) == "onnx":
        return load_onnx_session(cfg, checkpoint)
    # Imported here: the torch backend needs torch and the backbone's library, the ONNX service neither.
    from fashion_retrieval.models.checkpoint import load_encoder

    return load_encoder(checkpoint)


def torch_encoder(model: nn.Module | OnnxSession) -> nn.Module:
    """``model`` as a torch module, for the data loaders' tensors: an ONNX session gets its torch face
    (:class:`~fashion_retrieval.models.onnx_encoder.OnnxEncoder`), a module is itself."""
    if not isinstance(model, OnnxSession):
        return model
    # Imported here: only the loaders' path of the ONNX backend needs torch.
    from fashion_retrieval.models.onnx_encoder import OnnxEncoder

    return OnnxEncoder(model)


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
    encoder: nn.Module | OnnxSession,
    datamodule: CatalogueData,
    checkpoint: Path,
    index_dir: Path,
    spec: IndexSpec,
) -> EmbeddingIndex:
    """Embed the catalogue with ``encoder`` (from ``checkpoint``) in memory, save a ``spec`` index in
    ``index_dir``."""
    from fashion_retrieval.models.inference import embed_loader  # torch: see the module docstring

    embeddings = embed_loader(
        torch_encoder(encoder), datamodule.catalogue_dataloader(), description="embedding the catalogue"
    )
    index = export_catalogue(
        index_dir, embeddings, datamodule.catalogue_ids, checkpoint, spec, datamodule.catalogue_paths
    )
    log_index(index, spec, index_dir)
    return index


def load_or_build_index(
    cfg: DictConfig, encoder: nn.Module | OnnxSession, datamodule: CatalogueData, checkpoint: Path
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


def load_for_search(
    cfg: DictConfig, checkpoint: Path
) -> tuple[nn.Module | OnnxSession, CatalogueData, EmbeddingIndex]:
    """The model of ``checkpoint`` (:func:`load_search_model`: the torch module, or the ONNX export's
    session), the data module of ``cfg`` and the catalogue index (checked to hold this catalogue's
    products, in catalogue order)."""
    encoder = load_search_model(cfg, checkpoint)
    datamodule = datamodule_for(cfg)
    index = load_or_build_index(cfg, encoder, datamodule, checkpoint)
    if list(index.ids) != datamodule.catalogue_ids:
        raise ValueError(
            f"index {cfg.index.dir} does not hold this catalogue's products; delete it to rebuild"
        )
    return encoder, datamodule, index
