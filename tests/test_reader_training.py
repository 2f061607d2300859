"""Training on the datasets the readers read (``data=reader``): every reader experiment under fast_dev_run on
files fabricated in its layout, a complete tiny run (checkpoint by MAP@R, export, retrieval-eval), the CLI
entry, and the stages that refuse a reader's dataset."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, open_dict
from reader_data import write_clothing_photos, write_deepfashion2_splits, write_inshop_training
from test_configs import READER_EXPERIMENTS, job_config
from test_training import shrink_backbones

from fashion_retrieval.data.reader_datamodule import ReaderDataModule
from fashion_retrieval.data.readers import load_clothing_small
from fashion_retrieval.data.samplers import LabelBalancedBatchSampler
from fashion_retrieval.index.embeddings import load_embeddings
from fashion_retrieval.pipelines.context import RunContext
from fashion_retrieval.pipelines.train import train
from fashion_retrieval.runs.stages import READER_DATA_TARGET, run_stages

TINY = ["data.image_size=[32,32]", "data.eval_batch_size=16", "data.num_workers=0", "logger=csv"]


def inshop(root: Path) -> list[str]:
    return [f"reader.root={write_inshop_training(root)}", "data.batch_size=8"]  # 2 items x 4 (3) photos


def df2_c2s(root: Path) -> list[str]:
    train_root, validation_root = write_deepfashion2_splits(root)
    return [f"reader.root={validation_root}", f"reader.train_root={train_root}", "data.batch_size=8"]


def clothing_small(root: Path) -> list[str]:
    root = write_clothing_photos(root, {"train": 4, "test": 3})
    return [f"reader.root={root}", "data.batch_size=6", "sampler.items_per_label=2"]  # 3 classes x 2


# Each reader experiment's data, fabricated in its reader's on-disk layout: overrides that point at it.
FABRICATED: dict[str, Callable[[Path], list[str]]] = {
    "inshop": inshop,
    "df2_c2s": df2_c2s,
    "clothing_small": clothing_small,
}


def reader_config(experiment: str, tmp_path: Path, *overrides: str) -> DictConfig:
    data = FABRICATED[experiment](tmp_path / "data")
    cfg = job_config([f"experiment={experiment}", *data, *TINY, *overrides], output_dir=str(tmp_path))
    with open_dict(cfg):
        shrink_backbones(cfg.model, tmp_path / "no_clip")
    return cfg


def test_every_reader_experiment_has_fabricated_data():
    assert set(READER_EXPERIMENTS) == set(FABRICATED)


@pytest.mark.parametrize("experiment", READER_EXPERIMENTS)
def test_reader_experiment_trains_under_fast_dev_run(experiment: str, tmp_path: Path) -> None:
    cfg = reader_config(experiment, tmp_path, "debug=fdr")
    assert cfg.data._target_ == READER_DATA_TARGET
    metrics = train(cfg, RunContext(output_dir=tmp_path))
    for key in ("val/map@R", "val/precision@1", "val/hit_rate@5"):
        assert 0.0 <= metrics[key] <= 1.0, key
    # One validation batch per loader under fast_dev_run holds the whole (tiny) query set and gallery.
    validation = instantiate(cfg.reader)
    assert metrics["val/num_queries"] == len(validation.queries) > 0
    assert metrics["val/num_gallery"] == len(validation.gallery)


def test_a_complete_run_keeps_the_best_map_at_r_exports_and_scores(tmp_path: Path) -> None:
    cfg = reader_config("clothing_small", tmp_path, "trainer.max_epochs=3", "callbacks.early_stopping=null")
    run_stages(cfg, ["train", "retrieval_eval"])
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    logged = pd.read_csv(tmp_path / "csv" / "metrics.csv")["val/map@R"].dropna().tolist()
    assert len(logged) == 3 and metrics["train/epochs"] == 3
    # train reports the epoch the checkpoint kept: the best by the monitor, val/map@R.
    assert metrics["val/best_epoch"] == int(np.argmax(logged))
    assert metrics["val/map@R"] == pytest.approx(max(logged))
    assert (tmp_path / "checkpoints" / "best.ckpt").is_file()
    assert 0.0 <= metrics["retrieval_eval/clothing_small/map@R"] <= 1.0
    # Validation: 9 test photos, each against the 8 others; the export holds that gallery.
    assert metrics["retrieval_eval/clothing_small/num_gallery"] == 9
    vectors, ids = load_embeddings(tmp_path / "index" / "catalogue_embeddings.npz")
    assert ids[0] == "0:test-dress-0" and vectors.shape[0] == 9
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)


def test_challenge_stages_refuse_a_readers_dataset(tmp_path: Path) -> None:
    cfg = reader_config("clothing_small", tmp_path / "run")
    with pytest.raises(ValueError, match=r"stage\(s\) \['infer', 'evaluate'\] read the challenge format"):
        run_stages(cfg, ["train", "infer", "evaluate"])
    assert not (tmp_path / "run" / "metrics.json").exists()  # refused before anything ran


def test_the_train_command_trains_on_a_reader(tmp_path: Path) -> None:
    """``fashion-retrieval train experiment=inshop reader.root=...``: the CLI entry of every experiment."""
    data = inshop(tmp_path / "data")
    tiny_model = [
        "model.encoder.backbone.model_name=test_efficientnet",
        "model.encoder.backbone.weights=random",
        "model.encoder.backbone.frozen_prefixes=[]",
    ]
    command = [sys.executable, "-m", "fashion_retrieval.cli", "train", "experiment=inshop", "debug=fdr"]
    result = subprocess.run(
        [*command, *data, *TINY, *tiny_model, f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert 0.0 <= metrics["val/map@R"] <= 1.0


def test_partial_validation_scores_the_seen_rows(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """fast_dev_run with validation batches of 4: the evaluator scores the 4 queries seen against the 4
    gallery photos seen (RetrievalSet.subset), says so, and leaves out queries left without a positive."""
    cfg = reader_config("clothing_small", tmp_path, "debug=fdr", "data.eval_batch_size=4")
    with caplog.at_level("WARNING", logger="fashion_retrieval.callbacks.set_evaluator"):
        metrics = train(cfg, RunContext(output_dir=tmp_path))
    assert "partial validation: 4 of 9 queries against 4 of 9 gallery items" in caplog.text
    # The first 4 test photos: 3 dresses and a pair of trousers; the trousers' positives were not seen.
    assert metrics["val/num_queries"] == 3 and metrics["val/num_gallery"] == 4
    assert metrics["val/precision@1"] == pytest.approx(1.0)


def test_the_data_module_needs_a_training_split(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="data=reader trains on a reader's dataset: pass reader="):
        ReaderDataModule(None)
    root = write_clothing_photos(tmp_path, {"train": 2, "test": 2})
    with pytest.raises(
        ValueError, match=r"clothing_small/test: .*no training images.*train_splits=\[train\]"
    ):
        ReaderDataModule(load_clothing_small(root, split="test"))
    data = load_clothing_small(root, split="test", train_splits=["train"])
    sampler = functools.partial(LabelBalancedBatchSampler, items_per_label=2)
    module = ReaderDataModule(data, batch_size=4, sampler=sampler)
    batch = next(iter(module.train_dataloader()))
    assert batch["image"].shape == (4, 3, 224, 224) and batch["image"].dtype == torch.uint8
    assert sorted(batch["label"].tolist()) in ([0, 0, 1, 1], [0, 0, 2, 2], [1, 1, 2, 2])
