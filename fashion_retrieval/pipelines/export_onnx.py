"""``export-onnx``: write the trained encoder as ONNX (``export_onnx.path``) with its JSON sidecar, after a
parity check against PyTorch; an export that fails the check is refused and leaves no file.

Parity, measured on this run's data: the cosine of each ONNX embedding with the PyTorch one on the first
``export_onnx.sample`` catalogue packshots and test bundle photos (at least ``export_onnx.min_cosine``),
and the test bundles' top-k through the search ``infer`` runs (detector, sections, re-ranking), the
PyTorch side on the run's catalogue index, the ONNX side on an index of ONNX catalogue embeddings: the
same k products for at least ``export_onnx.min_same_topk`` of them. Figures go to ``metrics.json``
(``onnx/...``) and the sidecar. docs/onnx.md.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import nn

from fashion_retrieval.data.catalogue_data import CatalogueData
from fashion_retrieval.index.faiss_index import EmbeddingIndex
from fashion_retrieval.io import atomic_open, atomic_path
from fashion_retrieval.models.inference import embed_loader
from fashion_retrieval.models.onnx_encoder import (
    OnnxEncoder,
    OnnxExportError,
    embedding_cosines,
    export_encoder_onnx,
    paired_embeddings,
    same_ranking_fraction,
    sidecar_metadata,
    sidecar_path,
)
from fashion_retrieval.pipelines.context import RunContext
from fashion_retrieval.search.loading import load_for_search
from fashion_retrieval.search.retriever import Retriever

log = logging.getLogger(__name__)


def parity_metrics(
    cfg: DictConfig,
    reference: nn.Module,
    candidate: OnnxEncoder,
    datamodule: CatalogueData,
    index: EmbeddingIndex,
) -> dict[str, float]:
    """The ``onnx/...`` parity figures of ``candidate`` against the torch ``reference`` (module docstring)."""
    limit = int(cfg.export_onnx.sample)
    if not datamodule.cat.searchable_test_bundle_ids:
        raise ValueError(f"{datamodule.data_dir}: no test bundle photo to check the export's parity on")
    packshots = paired_embeddings(reference, candidate, datamodule.catalogue_dataloader(), limit)
    photos = paired_embeddings(reference, candidate, datamodule.query_dataloader("test"), limit)
    cosines = np.concatenate([embedding_cosines(*packshots), embedding_cosines(*photos)])
    onnx_catalogue = embed_loader(
        candidate, datamodule.catalogue_dataloader(), description="embedding the catalogue (ONNX)"
    )
    onnx_index = EmbeddingIndex(onnx_catalogue, datamodule.catalogue_ids, spec=instantiate(cfg.index.spec))
    torch_ranked = Retriever(cfg, reference, datamodule, index).search_split("test").ranked
    onnx_ranked = Retriever(cfg, candidate, datamodule, onnx_index).search_split("test").ranked
    k = int(cfg.retrieval.k)
    return {
        "onnx/min_cosine": float(cosines.min()),
        "onnx/mean_cosine": float(cosines.mean()),
        "onnx/num_compared": float(len(cosines)),
        f"onnx/same_top{k}": same_ranking_fraction(torch_ranked, onnx_ranked),
        f"onnx/same_top{k}_order": same_ranking_fraction(torch_ranked, onnx_ranked, ordered=True),
        "onnx/num_bundles": float(len(torch_ranked)),
    }


def parity_failures(cfg: DictConfig, metrics: dict[str, float]) -> list[str]:
    """What falls short of ``export_onnx.min_cosine`` and ``export_onnx.min_same_topk`` (empty: passed)."""
    settings, k = cfg.export_onnx, int(cfg.retrieval.k)
    failures = []
    if metrics["onnx/min_cosine"] < settings.min_cosine:
        failures.append(f"min cosine {metrics['onnx/min_cosine']:.6f} < {settings.min_cosine}")
    if metrics[f"onnx/same_top{k}"] < settings.min_same_topk:
        failures.append(f"same top-{k} for {metrics[f'onnx/same_top{k}']:.4f} < {settings.min_same_topk}")
    return failures


def export_onnx(cfg: DictConfig, context: RunContext) -> dict[str, float]:
    if (cfg.get("encoder") or {}).get("backend", "torch") != "torch":
        raise ValueError(
            "export-onnx exports the PyTorch model and checks it against PyTorch: encoder.backend=torch"
        )
    checkpoint = context.checkpoint(cfg)
    encoder, datamodule, index = load_for_search(cfg, checkpoint)
    path = Path(cfg.export_onnx.path)
    data = cfg.data
    sizes = {"query": data.query_size, "catalogue": data.catalogue_size, "crop": data.get("crop_size")}
    with atomic_path(path) as tmp:
        export_encoder_onnx(encoder, tmp, data.catalogue_size or encoder.native_input_size)
        metadata = sidecar_metadata(encoder, tmp, checkpoint, sizes)
        metrics = parity_metrics(cfg, encoder, OnnxEncoder(tmp, metadata), datamodule, index)
        log.info("export-onnx parity: %s", json.dumps(metrics))
        failures = parity_failures(cfg, metrics)
        if failures:
            raise OnnxExportError(
                f"{path}: not written, the ONNX encoder differs from PyTorch ({'; '.join(failures)}); "
                f"figures: {json.dumps(metrics)}"
            )
        metrics["onnx/size_mb"] = tmp.stat().st_size / 2**20
    with atomic_open(sidecar_path(path), "w") as handle:
        json.dump({**metadata, "parity": metrics}, handle, indent=2)
        handle.write("\n")
    log.info("export-onnx: wrote %s and %s", path, sidecar_path(path))
    return metrics
