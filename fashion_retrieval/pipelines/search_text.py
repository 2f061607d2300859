"""``search-text``: the catalogue products a trained dual encoder (``train-text``) finds for a text query, or
for a composed query (a product or a photo, plus the text), printed as a ranked list.

``run_dir`` is the ``train-text`` run directory: its best checkpoint's text tower embeds
``search_text.query``, and the catalogue embeddings its image tower exported at that epoch
(``index/catalogue_embeddings.npz``) are searched by exact cosine
(:class:`~fashion_retrieval.search.text.TextSearch`). With ``search_text.product_id`` (that product's
exported embedding, left out of the results) or ``search_text.image`` (a photo of one product, embedded
by the image tower), the query is composed: "this product, <query>". docs/text.md.
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig

from fashion_retrieval.data.transforms import load_rgb
from fashion_retrieval.pipelines.context import RunContext
from fashion_retrieval.search.text import TextSearch

log = logging.getLogger(__name__)


def search_text(cfg: DictConfig, context: RunContext) -> dict[str, float]:
    settings = cfg.search_text
    if not settings.query or not str(settings.query).strip():
        raise ValueError("search-text needs a query: search_text.query='red striped shirt'")
    if not cfg.run_dir:
        raise ValueError("search-text needs run_dir=<a train-text run directory>")
    product_id, image = settings.get("product_id"), settings.get("image")
    if product_id and image:
        raise ValueError(
            "search-text composes a query with search_text.product_id or search_text.image, not both"
        )
    run = Path(cfg.run_dir)
    searcher = TextSearch.from_run_dir(
        run, text_weight=float(settings.text_weight), fusion=str(settings.fusion)
    )
    image_embedding = None
    what = repr(str(settings.query))
    if product_id:
        product_id = str(product_id)
        if product_id not in searcher.rows:
            raise KeyError(f"search_text.product_id={product_id}: not a product of {searcher.source}")
        image_embedding = searcher.product_embedding(product_id)
        what = f"{product_id} + {what}"
    elif image:
        image_embedding = searcher.embed_image(load_rgb(str(image)))
        what = f"{image} + {what}"
    query = searcher.query(str(settings.query), image_embedding)
    ranked = searcher.search(query, int(settings.k), exclude=product_id or None)
    print(f"{len(ranked)} products for {what} ({run}):")
    for rank, (product, score) in enumerate(ranked, 1):
        print(f"{rank:3d}  {product}  {score:.4f}")
    log.info("search-text: %d products for %s", len(ranked), what)
    return {"search_text/num_products": float(len(ranked))}
