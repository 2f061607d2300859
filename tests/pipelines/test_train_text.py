"""``train-text`` on tiny data with fabricated captions: the dual encoder trains, its run directory reloads
offline into the same embeddings (image and text towers), cached frozen features train the head alone,
the joint bundle loss runs, and bad inputs are named."""

from __future__ import annotations

import csv
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from omegaconf import DictConfig, open_dict
from test_configs import compose_config, run_config

from fashion_retrieval.data.catalogue import CatalogueError, load_catalogue
from fashion_retrieval.data.datasets import ImageDataset
from fashion_retrieval.data.transforms import eval_transform
from fashion_retrieval.evaluation.ranking import rank_embeddings, score_ranking
from fashion_retrieval.features import load_features
from fashion_retrieval.index.embeddings import load_embeddings
from fashion_retrieval.index.export import EMBEDDINGS_FILE
from fashion_retrieval.models.checkpoint import load_encoder
from fashion_retrieval.models.dual_encoder import load_dual_encoder
from fashion_retrieval.models.text import TOKENIZER_FILE
from fashion_retrieval.pipelines.context import RunContext
from fashion_retrieval.pipelines.search_text import search_text
from fashion_retrieval.pipelines.text_eval import text_eval
from fashion_retrieval.pipelines.train_text import text_datamodule, train_text

COLOURS = ["red", "blue", "black", "white", "green"]


@pytest.fixture(scope="module")
def caption_data(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny dataset with a ``product_captions.csv``: two phrasings per product naming a colour drawn
    from its id and its category, so that texts tell products apart."""
    data = tmp_path_factory.mktemp("captions") / "data"
    shutil.copytree(tiny_data, data)
    catalogue = load_catalogue(data)
    with (data / "product_captions.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["product_asset_id", "caption"])
        for i, (pid, category) in enumerate(zip(catalogue.product_ids, catalogue.product_categories)):
            colour = COLOURS[i % len(COLOURS)]
            writer.writerow([pid, f"{colour} {category.lower()}"])
            writer.writerow([pid, f"a {category.lower()} in {colour}"])
    return data


def text_cfg(data: Path, output: Path, *overrides: str) -> DictConfig:
    return run_config(data, output, "data.catalogue_size=[32,24]", *overrides, experiment="text_tiny")


def epoch_means(run: Path, column: str) -> list[float]:
    (path,) = run.glob("csv/**/metrics.csv")
    metrics = pd.read_csv(path)
    return metrics.dropna(subset=[column]).groupby("epoch")[column].mean().tolist()


def test_dual_encoder_trains_and_its_run_directory_reloads_into_the_same_embeddings(
    caption_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    cfg = text_cfg(caption_data, run, "trainer.max_epochs=3", "callbacks.early_stopping=null")
    metrics = train_text(cfg, RunContext(output_dir=run))
    assert metrics["text/heldout_products"] > 0 and 0.0 <= metrics["val/recall@10"] <= 1.0
    losses = epoch_means(run, "train/text_loss")
    assert len(losses) == 3 and losses[-1] < losses[0], losses
    assert (run / "checkpoints" / TOKENIZER_FILE).is_file()

    dual = load_dual_encoder(run)  # the run directory alone: rebuilt from plain data, no training objects
    # Image tower: the exported catalogue embeddings (the best epoch's validation) come back.
    exported, ids = load_embeddings(run / "index" / EMBEDDINGS_FILE)
    catalogue = load_catalogue(caption_data)
    assert list(ids) == catalogue.product_ids
    assert dual.image_size == tuple(cfg.data.catalogue_size)
    np.testing.assert_allclose(dual.embed_products(catalogue.product_paths), exported, atol=1e-5)
    packshots = ImageDataset(catalogue.product_paths[:4], eval_transform(cfg.data.catalogue_size))
    images = torch.stack([packshots[i]["image"] for i in range(4)])
    np.testing.assert_allclose(dual.embed_images(images), exported[:4], atol=1e-5)
    # Text tower: the best epoch's validation Recall@10, recomputed from the reloaded towers.
    datamodule = text_datamodule(cfg)
    _, queries, truth = datamodule.validation_texts()
    texts = dual.embed_texts(queries)
    assert texts.shape == (len(queries), exported.shape[1])
    topk = rank_embeddings(texts, exported, ids, np.full(len(queries), -1), np.full(len(ids), -1), 15)
    assert score_ranking(topk, truth, [10])["recall@10"] == pytest.approx(metrics["val/recall@10"], abs=1e-6)
    # Every stage that reads an image model reads the dual encoder's image tower.
    assert load_encoder(run / "checkpoints" / "best.ckpt").embedding_dim == exported.shape[1]
    # text-eval scores it beside the baselines, on the held-out products (the split it did not train on).
    scored = tmp_path / "text_eval"
    with open_dict(cfg):
        cfg.text_eval.update(ckpt_path=str(run), seeds=[0])
    text_metrics = text_eval(cfg, RunContext(output_dir=scored))
    for query_set in ("attribute", "composed"):
        assert text_metrics[f"text_eval/{query_set}/dual_encoder/num_queries"] > 0
        assert 0.0 <= text_metrics[f"text_eval/{query_set}/dual_encoder/recall@10"] <= 1.0
    assert "| attribute | dual_encoder |" in (scored / "text_eval.md").read_text()
    # search-text prints the run's exported catalogue ranked by the reloaded text tower's query embedding.
    with open_dict(cfg):
        cfg.run_dir = str(run)
        cfg.search_text.update(query=queries[0], k=3)
    capsys.readouterr()
    search_text(cfg, RunContext(output_dir=tmp_path / "search_text"))
    printed = [line.split() for line in capsys.readouterr().out.splitlines()[1:]]
    expected = np.argsort(-(exported @ texts[0]), kind="stable")[:3]
    assert [row[1] for row in printed] == [ids[i] for i in expected]
    best_scores = np.sort(exported @ texts[0])[::-1][:3]
    assert [float(row[2]) for row in printed] == pytest.approx(best_scores, abs=1e-4)

    # Without its tokenizer the text tower does not load, and the error names the file.
    moved = tmp_path / "moved" / "checkpoints"
    moved.mkdir(parents=True)
    shutil.copy(run / "checkpoints" / "best.ckpt", moved)
    with pytest.raises(FileNotFoundError, match=re.escape(str(moved / TOKENIZER_FILE))):
        load_dual_encoder(moved / "best.ckpt")


def test_cached_frozen_features_train_the_head_and_text_tower_only(
    caption_data: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    cfg = text_cfg(
        caption_data, run, "text.features=cache", "trainer.max_epochs=3", "callbacks.early_stopping=null"
    )
    train_text(cfg, RunContext(output_dir=run))
    losses = epoch_means(run, "train/text_loss")
    assert len(losses) == 3 and losses[-1] < losses[0], losses
    (entry,) = (tmp_path / "logs" / "feature_cache").iterdir()
    cached, ids = load_features(entry)
    # The checkpoint's backbone still computes the cached features: it stayed frozen, only heads learnt.
    encoder = load_encoder(run / "checkpoints" / "best.ckpt")
    catalogue = load_catalogue(caption_data)
    assert list(ids) == catalogue.product_ids
    packshots = ImageDataset(catalogue.product_paths, eval_transform(cfg.data.catalogue_size))
    images = torch.stack([packshots[i]["image"] for i in range(len(packshots))])
    with torch.no_grad():
        np.testing.assert_allclose(encoder.pooled_features(images).numpy(), cached, atol=1e-4)


def test_joint_bundle_loss_runs_beside_the_pairs(caption_data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    cfg = text_cfg(caption_data, run, "text.bundle_weight=0.5", "debug=fdr")
    metrics = train_text(cfg, RunContext(output_dir=run))
    assert 0.0 <= metrics["val/recall@10"] <= 1.0


def test_bad_captions_file_is_named(caption_data: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(caption_data, data)
    with (data / "product_captions.csv").open("a") as handle:
        handle.write("no-such-product,a ghost caption\n")
    cfg = text_cfg(data, tmp_path / "run")
    with pytest.raises(CatalogueError, match=re.escape("product_captions.csv")):
        train_text(cfg, RunContext(output_dir=tmp_path / "run"))


def test_train_text_needs_a_text_tower(caption_data: Path, tmp_path: Path) -> None:
    cfg = compose_config(["experiment=tiny", f"paths.data_dir={caption_data}"], output_dir=str(tmp_path))
    with pytest.raises(ValueError, match="text=bert_small"):
        train_text(cfg, RunContext(output_dir=tmp_path))


def test_search_text_names_what_it_lacks(caption_data: Path, tmp_path: Path) -> None:
    cfg = compose_config(["experiment=tiny", f"paths.data_dir={caption_data}"], output_dir=str(tmp_path))
    with pytest.raises(ValueError, match=re.escape("search_text.query=")):
        search_text(cfg, RunContext(output_dir=tmp_path))
    with open_dict(cfg):
        cfg.search_text.query = "red shirt"
    with pytest.raises(ValueError, match="run_dir="):
        search_text(cfg, RunContext(output_dir=tmp_path))
    with open_dict(cfg):
        cfg.run_dir = str(tmp_path / "no_run")
    with pytest.raises(FileNotFoundError, match=re.escape("catalogue_embeddings.npz")):
        search_text(cfg, RunContext(output_dir=tmp_path))
