"""``text-eval``: text -> product and composed (image + "in <colour>") retrieval on the held-out products
of a synthetic dataset with captions, for the methods that need no trained text model and, with
``text_eval.ckpt_path`` (a ``train-text`` run directory or checkpoint), for a trained dual encoder:

- attribute queries: ``keyword`` (BM25 of the query over each product's captions);
- composed queries: ``text_only`` (BM25 of "<colour> <category of the query product>"), ``image_only``
  (the frozen backbone of ``model=``: pooled features at its native input size, nearest products to the
  query image) and ``colour_histogram`` (the same with HSV histograms); the query's own product is never
  retrieved;
- ``dual_encoder`` (with ``ckpt_path``): its text tower's embedding of the query against its image tower's
  embeddings of the products; composed queries add the text to the query product's embedding
  (``text_eval.text_weight``, :func:`~fashion_retrieval.models.fusion.composed_embeddings`);
  with ``text_eval.fusion=head``, a ``fusion_head`` row fuses them by the run's trained head instead
  (``train-fusion``, :mod:`fashion_retrieval.models.fusion`).

Each ``text_eval.seeds`` draws its own queries; keys ``text_eval/<set>/<method>/<metric>`` hold the mean
over seeds and ``.../<metric>_std`` the standard deviation; the table goes to ``text_eval.md`` in the run
directory. docs/text_queries.md.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch.utils.data import DataLoader

from fashion_retrieval.baselines.colour_histogram import histogram_embeddings
from fashion_retrieval.baselines.keyword import bm25_scores
from fashion_retrieval.data.captions import load_query_data
from fashion_retrieval.data.catalogue import CatalogueError, list_examples
from fashion_retrieval.data.datasets import ImageDataset
from fashion_retrieval.data.text_queries import (
    TextQueries,
    attribute_queries,
    composed_queries,
    heldout_mask,
    requested_colour,
)
from fashion_retrieval.data.transforms import eval_transform
from fashion_retrieval.evaluation.text_retrieval import model_scores, score_queries
from fashion_retrieval.io import atomic_open
from fashion_retrieval.models.dual_encoder import load_dual_encoder
from fashion_retrieval.models.fusion import FusionHead, fusion_head_path, load_fusion_head
from fashion_retrieval.models.inference import embed_loader
from fashion_retrieval.pipelines.context import RunContext

log = logging.getLogger(__name__)

Method = Callable[[TextQueries], np.ndarray]  # queries -> (Q, G) scores
FUSIONS = ("arithmetic", "head")


def backbone_embeddings(cfg: DictConfig, paths: list[str]) -> np.ndarray:
    """``(N, D)`` L2-normalised pooled features of ``model=``'s frozen backbone at its native input size."""
    torch.manual_seed(cfg.seed)  # a backbone without pretrained weights: the same draw every run
    encoder = instantiate(cfg.model.encoder).eval()
    dataset = ImageDataset(paths, eval_transform(list(encoder.native_input_size)))
    loader = DataLoader(dataset, batch_size=int(cfg.text_eval.batch_size), shuffle=False)
    features = embed_loader(encoder.backbone_features, loader)
    return features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)


def fusion_head(ckpt_path: str) -> FusionHead:
    """The fusion head of the train-text run ``ckpt_path`` names (its directory, or a checkpoint in its
    ``checkpoints/``); a run without one raises, saying how to train it."""
    path = Path(ckpt_path)
    run_dir = path if path.is_dir() else path.parent.parent
    head = load_fusion_head(run_dir)
    if head is None:
        raise FileNotFoundError(
            f"{fusion_head_path(run_dir)}: no fusion head for this run; train one with "
            f"`fashion-retrieval train-fusion fusion.run_dir={run_dir} paths.data_dir=...`"
        )
    return head


def text_eval(cfg: DictConfig, context: RunContext) -> dict[str, float]:
    settings = cfg.text_eval
    if settings.fusion not in FUSIONS:
        raise ValueError(f"text_eval.fusion must be one of {FUSIONS}, got {settings.fusion!r}")
    if settings.fusion == "head" and not settings.ckpt_path:
        raise ValueError("text_eval.fusion=head needs text_eval.ckpt_path=<a train-text run>")
    head = fusion_head(settings.ckpt_path) if settings.fusion == "head" else None  # before any embedding
    data_dir = Path(cfg.paths.data_dir)
    catalogue, captions, attributes = load_query_data(data_dir)
    product_ids = catalogue.product_ids
    assert catalogue.articles is not None
    heldout = heldout_mask(product_ids, catalogue.articles, settings.heldout_fraction, settings.split_seed)
    gallery = [p for p, held in zip(product_ids, heldout) if held]
    missing = [p for p in gallery if p not in attributes.index or p not in captions]
    if missing:
        raise CatalogueError(
            f"{data_dir}: {len(missing)} held-out product(s) lack attributes or captions: "
            f"{list_examples(missing)}"
        )
    log.info(
        "text-eval: %d of %d products held out (split seed %d)",
        len(gallery),
        len(product_ids),
        settings.split_seed,
    )
    documents = [" ".join(captions[p]) for p in gallery]
    paths = dict(zip(product_ids, catalogue.product_paths))
    catalogue_paths = [paths[p] for p in gallery]
    image = backbone_embeddings(cfg, catalogue_paths)
    histogram = histogram_embeddings(catalogue_paths)
    categories = attributes.loc[gallery, "category"].tolist()

    def text_only(queries: TextQueries) -> np.ndarray:
        assert queries.image_rows is not None
        texts = [
            f"{requested_colour(text)} {categories[row]}"
            for text, row in zip(queries.texts, queries.image_rows)
        ]
        return bm25_scores(texts, documents)

    methods: dict[str, dict[str, Method]] = {
        "attribute": {"keyword": lambda queries: bm25_scores(queries.texts, documents)},
        "composed": {
            "text_only": text_only,
            "image_only": lambda queries: image[queries.image_rows] @ image.T,
            "colour_histogram": lambda queries: histogram[queries.image_rows] @ histogram.T,
        },
    }
    if settings.ckpt_path:
        # The model must not have trained on these products: train-text holds out text_eval's split
        # (text.heldout_* default to text_eval.*), which the caller keeps when scoring it.
        model = load_dual_encoder(settings.ckpt_path)
        products = model.embed_products(catalogue_paths)
        weight = float(settings.text_weight)
        methods["attribute"]["dual_encoder"] = lambda queries: model_scores(model, queries, products)
        methods["composed"]["dual_encoder"] = lambda queries: model_scores(model, queries, products, weight)
        if head is not None:
            methods["composed"]["fusion_head"] = lambda queries: model_scores(
                model, queries, products, fuse=head
            )
    ks = list(settings.ks)
    runs: dict[tuple[str, str], list[dict[str, float]]] = {}
    for seed in settings.seeds:
        query_sets = {
            "attribute": attribute_queries(attributes, gallery, int(settings.num_queries), int(seed)),
            "composed": composed_queries(
                attributes, catalogue.articles, gallery, int(settings.num_composed_queries), int(seed)
            ),
        }
        for set_name, queries in query_sets.items():
            for method, score in methods[set_name].items():
                metrics = score_queries(score(queries), queries, ks)
                log.info(
                    "text-eval seed %d %s/%s: %s",
                    seed,
                    set_name,
                    method,
                    {k: round(v, 4) for k, v in metrics.items()},
                )
                runs.setdefault((set_name, method), []).append(metrics)
    out: dict[str, float] = {}
    for (set_name, method), per_seed in runs.items():
        for name in per_seed[0]:
            values = np.array([metrics[name] for metrics in per_seed])
            out[f"text_eval/{set_name}/{method}/{name}"] = float(values.mean())
            out[f"text_eval/{set_name}/{method}/{name}_std"] = float(values.std())
    write_table(context.output_dir / "text_eval.md", out, runs, ks, len(settings.seeds))
    return out


def write_table(
    path: Path,
    metrics: dict[str, float],
    runs: dict[tuple[str, str], list[dict[str, float]]],
    ks: list[int],
    num_seeds: int,
) -> None:
    """The mean +- std over seeds of each query set and method, as a Markdown table."""
    columns = [*(f"recall@{k}" for k in ks), f"map@{max(ks)}", "map@R"]
    lines = [
        f"| query set | method | queries | gallery | {' | '.join(columns)} |",
        "|" + "---|" * (4 + len(columns)),
    ]
    for set_name, method in runs:
        prefix = f"text_eval/{set_name}/{method}"
        cells = [f"{metrics[f'{prefix}/{c}']:.3f} ± {metrics[f'{prefix}/{c}_std']:.3f}" for c in columns]
        sizes = f"{metrics[f'{prefix}/num_queries']:.0f} | {metrics[f'{prefix}/num_gallery']:.0f}"
        lines.append(f"| {set_name} | {method} | {sizes} | {' | '.join(cells)} |")
    lines.append(f"\nMean ± standard deviation over {num_seeds} query seed(s).\n")
    with atomic_open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines))
