"""``search-text``: the catalogue products a trained dual encoder (``train-text``) finds for a text query,
printed as a ranked list.

``run_dir`` is the ``train-text`` run directory: its best checkpoint's text tower embeds
``search_text.query``, and the catalogue embeddings its image tower exported at that epoch
(``index/catalogue_embeddings.npz``) are searched by exact cosine (a flat :class:`EmbeddingIndex`).
docs/text.md.
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig

from fashion_retrieval.index.embeddings import load_embeddings
from fashion_retrieval.index.export import EMBEDDINGS_FILE
from fashion_retrieval.index.faiss_index import EmbeddingIndex
from fashion_retrieval.models.dual_encoder import load_dual_encoder
from fashion_retrieval.pipelines.context import RunContext

log = logging.getLogger(__name__)


def search_text(cfg: DictConfig, context: RunContext) -> dict[str, float]:
    settings = cfg.search_text
    if not settings.query or not str(settings.query).strip():
        raise ValueError("search-text needs a query: search_text.query='red striped shirt'")
    if not cfg.run_dir:
        raise ValueError("search-text needs run_dir=<a train-text run directory>")
    run = Path(cfg.run_dir)
    embeddings_file = run / "index" / EMBEDDINGS_FILE  # where train-text's exporter writes them
    catalogue, ids = load_embeddings(embeddings_file)
    model = load_dual_encoder(run)
    query = model.embed_texts([str(settings.query)])[0]
    if query.shape[0] != catalogue.shape[1]:
        raise ValueError(
            f"{embeddings_file}: embeddings of dimension {catalogue.shape[1]}, but the "
            f"run's text tower gives {query.shape[0]}: the file is not this run's export"
        )
    scores, rows = EmbeddingIndex(catalogue, list(ids)).search(query[None], int(settings.k))
    ranked = [(ids[row], float(score)) for score, row in zip(scores[0], rows[0]) if row >= 0]
    print(f"{len(ranked)} products for {str(settings.query)!r} ({run}):")
    for rank, (product, score) in enumerate(ranked, 1):
        print(f"{rank:3d}  {product}  {score:.4f}")
    log.info("search-text: %d products for %r", len(ranked), str(settings.query))
    return {"search_text/num_products": float(len(ranked))}
