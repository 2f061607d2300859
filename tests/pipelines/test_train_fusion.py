"""``train-fusion`` and the stages that read what it and ``train-text`` write, on the tiny synthetic data: a
fusion head trained on the training articles only (text-eval's held-out products are never embedded),
saved beside the run and scored by ``text-eval text_eval.fusion=head``; ``retrieval-eval`` on a train-text
checkpoint: its image tower through cached backbone features (``features=head``, the same embedding) and
zero-shot text -> photo per class."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from omegaconf import DictConfig
from real_photo_tree import write_real_tree
from test_train_text import text_cfg

from fashion_retrieval.data.catalogue import load_catalogue
from fashion_retrieval.data.text_queries import heldout_mask
from fashion_retrieval.models.fusion import fusion_head_path, load_fusion_head
from fashion_retrieval.pipelines import train_fusion as train_fusion_stage
from fashion_retrieval.pipelines.context import RunContext
from fashion_retrieval.pipelines.retrieval_eval import retrieval_eval
from fashion_retrieval.pipelines.text_eval import text_eval
from fashion_retrieval.pipelines.train_fusion import train_fusion
from fashion_retrieval.pipelines.train_text import train_text

# Half the articles held out, and half of the rest kept apart to pick the epoch: the tiny catalogue
# (120 products) then has composed queries on every side.
SPLIT = ["text_eval.heldout_fraction=0.5", "fusion.val_fraction=0.5"]


def cfg_for(data: Path, output: Path, *overrides: str) -> DictConfig:
    """train-text's tiny config with :data:`SPLIT`."""
    return text_cfg(data, output, *SPLIT, *overrides)


@pytest.fixture(scope="module")
def text_run(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-epoch train-text run on the tiny data (its generator's captions), text-eval's split above."""
    run = tmp_path_factory.mktemp("text_run") / "run"
    cfg = cfg_for(tiny_data, run, "trainer.max_epochs=1", "callbacks.early_stopping=null")
    train_text(cfg, RunContext(output_dir=run))
    return run


def test_fusion_head_trains_on_training_articles_and_text_eval_scores_it(
    tiny_data: Path, text_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    embedded: list[str] = []
    original = train_fusion_stage.product_embeddings

    def spy(cfg, dual, paths, ids):  # type: ignore[no-untyped-def]
        embedded.extend(ids)
        return original(cfg, dual, paths, ids)

    monkeypatch.setattr(train_fusion_stage, "product_embeddings", spy)
    cfg = cfg_for(tiny_data, tmp_path / "fusion", f"fusion.run_dir={text_run}", "fusion.epochs=3")
    metrics = train_fusion(cfg, RunContext(output_dir=tmp_path / "fusion"))
    assert metrics["fusion/train_queries"] > 0 and metrics["fusion/val_queries"] > 0
    assert 0 <= metrics["fusion/best_epoch"] <= 3
    assert metrics["fusion/val/recall@1"] >= metrics["fusion/val/recall@1_untrained"]
    catalogue = load_catalogue(tiny_data)
    held = heldout_mask(catalogue.product_ids, catalogue.articles, 0.5, int(cfg.text_eval.split_seed))
    heldout = {p for p, h in zip(catalogue.product_ids, held) if h}
    assert embedded and not heldout & set(embedded)  # text-eval's products never reach the head
    assert fusion_head_path(text_run).is_file() and load_fusion_head(text_run) is not None

    scored = tmp_path / "text_eval"
    cfg = cfg_for(
        tiny_data, scored, f"text_eval.ckpt_path={text_run}", "text_eval.fusion=head", "text_eval.seeds=[0]"
    )
    out = text_eval(cfg, RunContext(output_dir=scored))
    for method in ("dual_encoder", "fusion_head"):
        assert out[f"text_eval/composed/{method}/num_queries"] > 0
        assert 0.0 <= out[f"text_eval/composed/{method}/recall@1"] <= 1.0
    assert "| composed | fusion_head |" in (scored / "text_eval.md").read_text()


def test_text_eval_fusion_head_names_the_missing_head(tiny_data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    cfg = cfg_for(tiny_data, tmp_path / "out", "text_eval.fusion=head")
    with pytest.raises(ValueError, match=r"text_eval.fusion=head needs text_eval.ckpt_path"):
        text_eval(cfg, RunContext(output_dir=tmp_path / "out"))
    cfg = cfg_for(tiny_data, tmp_path / "out", "text_eval.fusion=mean")
    with pytest.raises(ValueError, match=r"text_eval.fusion must be one of"):
        text_eval(cfg, RunContext(output_dir=tmp_path / "out"))


def test_text_eval_without_a_trained_head_says_how_to_train_one(
    tiny_data: Path, text_run: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "copy"
    (copy / "checkpoints").mkdir(parents=True)
    for item in (text_run / "checkpoints").iterdir():
        (copy / "checkpoints" / item.name).hardlink_to(item)
    cfg = cfg_for(tiny_data, tmp_path / "out", f"text_eval.ckpt_path={copy}", "text_eval.fusion=head")
    with pytest.raises(
        FileNotFoundError, match=r"no fusion head for this run; train one with .*train-fusion"
    ):
        text_eval(cfg, RunContext(output_dir=tmp_path / "out"))


def test_retrieval_eval_scores_a_text_run_image_tower_and_its_text_queries(
    tiny_data: Path, text_run: Path, tmp_path: Path
) -> None:
    root = write_real_tree(tmp_path / "photos", {"test": 2, "train": 3})
    checkpoint = text_run / "checkpoints" / "best.ckpt"
    common = [
        "reader=clothing_small",
        f"reader.root={root}",
        "reader.gallery_splits=[train]",
        "real_photos.enabled=false",
        f"ckpt_path={checkpoint}",
        f"features.cache_dir={tmp_path / 'cache'}",
        "retrieval_eval.class_texts={pants: trousers}",
    ]
    auto = retrieval_eval(cfg_for(tiny_data, tmp_path / "a", *common), RunContext(output_dir=tmp_path / "a"))
    head = retrieval_eval(
        cfg_for(tiny_data, tmp_path / "h", *common, "retrieval_eval.features=head"),
        RunContext(output_dir=tmp_path / "h"),
    )
    assert any((tmp_path / "cache").iterdir())  # the pooled features went through the cache
    prefix = "retrieval_eval/clothing_small"
    for key in ("precision@1", "map@R", "text/precision@10", "text/map@R"):
        assert head[f"{prefix}/{key}"] == pytest.approx(auto[f"{prefix}/{key}"], abs=1e-6), key
    # Chance: each of the tree's classes has the same share of the test photos.
    classes = sorted({k.split("/")[4] for k in head if k.startswith(f"{prefix}/text/class/")})
    assert len(classes) > 1
    assert head[f"{prefix}/text/chance/precision@10"] == pytest.approx(1 / len(classes))
    table = (tmp_path / "h" / "retrieval_eval_clothing_small_text.md").read_text()
    assert "| pants | trousers |" in table and "| **mean** |" in table
    off = retrieval_eval(
        cfg_for(tiny_data, tmp_path / "o", *common, "retrieval_eval.text_queries=false"),
        RunContext(output_dir=tmp_path / "o"),
    )
    assert not any("/text/" in key for key in off)
    assert np.isfinite(off[f"{prefix}/map@R"])
