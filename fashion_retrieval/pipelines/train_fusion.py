"""``train-fusion``: a small fusion head for composed queries ("this product, in <colour>") on a
``train-text`` run's frozen towers, saved beside that run (``<run>/fusion/fusion_head.safetensors``,
docs/text.md).

Training data are composed queries drawn exactly as text-eval draws its own
(:func:`~fashion_retrieval.data.text_queries.composed_queries`: a product's packshot and ``"in <colour
group>"``, the answer its article's variant of that colour), but from the **training articles** only:
text-eval's held-out articles (``text_eval.heldout_fraction``, ``text_eval.split_seed``) are never embedded.
A share of the training articles (``fusion.val_fraction``, hashed with ``fusion.val_seed``) is kept apart
to pick the epoch (composed recall@1 among themselves, the untrained head, i.e. embedding arithmetic,
included); the rest are the training queries, each scored by InfoNCE against every training product.

Both towers are frozen: the products' embeddings come from the image tower once (its backbone's pooled
features through the feature cache, keyed by the backbone alone, then its head), the texts' from the text
tower once, so the stage takes seconds after the first embedding of the packshots.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig

from fashion_retrieval.data.captions import load_query_data
from fashion_retrieval.data.datasets import ImageDataset
from fashion_retrieval.data.text_queries import TextQueries, composed_queries, heldout_mask
from fashion_retrieval.data.transforms import eval_transform
from fashion_retrieval.evaluation.text_retrieval import score_queries
from fashion_retrieval.features import feature_cache, image_features
from fashion_retrieval.models.dual_encoder import DualEncoder, load_dual_encoder
from fashion_retrieval.models.encoder import ImageEncoder
from fashion_retrieval.models.fusion import FusionHead, fit_fusion_head, save_fusion_head
from fashion_retrieval.pipelines.context import RunContext

log = logging.getLogger(__name__)

ALL_PAIRS = 1_000_000_000  # composed_queries' num_queries: every candidate pair


def train_fusion(cfg: DictConfig, context: RunContext) -> dict[str, float]:
    settings = cfg.fusion
    run_dir = Path(settings.run_dir) if settings.run_dir else context.output_dir
    dual = load_dual_encoder(run_dir)
    catalogue, _, attributes = load_query_data(cfg.paths.data_dir)
    articles = catalogue.articles
    assert articles is not None
    ids = catalogue.product_ids
    heldout = heldout_mask(
        ids, articles, float(cfg.text_eval.heldout_fraction), int(cfg.text_eval.split_seed)
    )
    training = [p for p, held in zip(ids, heldout) if not held and p in attributes.index]
    apart = heldout_mask(training, articles, float(settings.val_fraction), int(settings.val_seed))
    train_ids = [p for p, held in zip(training, apart) if not held]
    val_ids = [p for p, held in zip(training, apart) if held]
    train = composed_queries(attributes, articles, train_ids, ALL_PAIRS, int(cfg.seed))
    val = composed_queries(attributes, articles, val_ids, ALL_PAIRS, int(cfg.seed))
    if not len(train) or not len(val):
        raise ValueError(
            f"{cfg.paths.data_dir}: {len(train)} training and {len(val)} validation composed queries from "
            f"{len(train_ids)} + {len(val_ids)} training products; the head needs both (articles with "
            "variants of several colour groups; fusion.val_fraction)"
        )
    log.info(
        "train-fusion: %d training products (%d held out for text-eval, never embedded), %d queries to train "
        "on, %d queries among %d other products to pick the epoch",
        len(training),
        int(heldout.sum()),
        len(train),
        len(val),
        len(val_ids),
    )
    paths = dict(zip(ids, catalogue.product_paths))
    products = product_embeddings(cfg, dual, [paths[p] for p in training], training)
    rows = {p: i for i, p in enumerate(training)}
    train_products = products[[rows[p] for p in train_ids]]
    val_products = products[[rows[p] for p in val_ids]]
    val_texts = dual.embed_texts(val.texts)

    def validate(head: FusionHead) -> float:
        assert val.image_rows is not None
        fused = head.fuse(val_products[val.image_rows], val_texts)
        return score_queries(fused @ val_products.T, val, [1])["recall@1"]

    torch.manual_seed(int(cfg.seed))
    head = FusionHead(products.shape[1], int(settings.hidden_dim), float(settings.dropout))
    assert train.image_rows is not None
    head, scores = fit_fusion_head(
        head,
        train_products,
        np.asarray(train.image_rows),
        dual.embed_texts(train.texts),
        targets(train),
        validate,
        epochs=int(settings.epochs),
        batch_size=int(settings.batch_size),
        lr=float(settings.lr),
        weight_decay=float(settings.weight_decay),
        temperature=float(settings.temperature),
        seed=int(cfg.seed),
    )
    best = int(np.argmax(scores))  # first maximum: the epoch fit_fusion_head kept
    log.info("train-fusion: validation recall@1 by epoch (0: untrained) %s", [round(v, 3) for v in scores])
    path = save_fusion_head(head, run_dir, {"best_epoch": str(best), "seed": str(cfg.seed)})
    log.info(
        "train-fusion: validation recall@1 %.3f untrained (embedding arithmetic), best %.3f at epoch %d; "
        "head written to %s",
        scores[0],
        scores[best],
        best,
        path,
    )
    return {
        "fusion/train_queries": float(len(train)),
        "fusion/val_queries": float(len(val)),
        "fusion/val/recall@1_untrained": scores[0],
        "fusion/val/recall@1": scores[best],
        "fusion/best_epoch": float(best),
    }


def targets(queries: TextQueries) -> np.ndarray:
    """``(Q,)`` the one relevant gallery row of each composed query."""
    if any(len(truth) != 1 for truth in queries.truth):
        raise ValueError("composed queries have exactly one relevant product each")
    return np.asarray([truth[0] for truth in queries.truth], np.int64)


def product_embeddings(
    cfg: DictConfig, dual: DualEncoder, paths: Sequence[str], ids: Sequence[str]
) -> np.ndarray:
    """``(N, D)`` image-tower embeddings of the packshots ``paths`` (item ``i`` has id ``ids[i]``) at the
    training's packshot size: an :class:`ImageEncoder`'s pooled backbone features through the feature cache
    (``features.enabled``; keyed by the backbone, so every head on one frozen backbone shares them), then
    its head; otherwise the tower as it is."""
    encoder = dual.image_encoder
    if not (cfg.features.enabled and isinstance(encoder, ImageEncoder)):
        return dual.embed_products(paths)
    dataset = ImageDataset(list(paths), eval_transform(dual.image_size))
    features = image_features(feature_cache(cfg), encoder, dataset, ids, "pooled_features")
    with torch.no_grad():
        return encoder.embed_features(torch.from_numpy(features)).numpy()
