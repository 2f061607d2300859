"""The exporter writes the best epoch's validation embeddings of the catalogue instead of embedding it again,
only when they come from the very weights it exports."""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from test_configs import job_config
from torch import nn

from fashion_retrieval.callbacks.exporter import EmbeddingExporter, may_become_best
from fashion_retrieval.index.embeddings import load_embeddings
from fashion_retrieval.index.export import EMBEDDINGS_FILE
from fashion_retrieval.models.checkpoint import load_encoder
from fashion_retrieval.models.inference import embed_loader
from fashion_retrieval.pipelines.context import RunContext
from fashion_retrieval.pipelines.train import train


def tiny_fit(data_dir: Path, run_dir: Path) -> DictConfig:
    overrides = ["experiment=tiny", f"paths.data_dir={data_dir}", "logger=none", "trainer.max_epochs=2"]
    cfg = job_config([*overrides, "callbacks.early_stopping=null"], output_dir=str(run_dir))
    train(cfg, RunContext(output_dir=run_dir))
    return cfg


def test_the_exported_validation_embeddings_equal_a_fresh_embedding_of_the_best_checkpoint(
    tiny_data, tmp_path, caplog
):
    with caplog.at_level(logging.INFO, logger="fashion_retrieval.callbacks.exporter"):
        cfg = tiny_fit(tiny_data, tmp_path)
    assert "catalogue embeddings of epoch" in caplog.text  # reused, not embedded again

    exported, ids = load_embeddings(tmp_path / "index" / EMBEDDINGS_FILE)
    datamodule = instantiate(cfg.data, _convert_="all")
    datamodule.setup("fit")
    encoder = load_encoder(tmp_path / "checkpoints" / "best.ckpt")
    fresh = embed_loader(encoder, datamodule.catalogue_dataloader())
    assert list(ids) == list(datamodule.catalogue_ids)
    np.testing.assert_array_equal(exported, fresh)


def small_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten())


def test_kept_embeddings_are_reused_only_for_the_same_weights():
    exporter = EmbeddingExporter("unused")
    model = small_model()
    embeddings = np.random.default_rng(0).random((5, 8), dtype=np.float32)
    exporter.keep(model, embeddings, epoch=3)

    same = copy.deepcopy(model)  # another object, equal weights: the digest is of values, not identity
    kept = exporter.reusable(same)
    assert kept is not None and kept.epoch == 3 and kept.embeddings is embeddings

    changed_weight = copy.deepcopy(model)
    with torch.no_grad():
        changed_weight[0].weight[0, 0, 0, 0] += 1e-6
    assert exporter.reusable(changed_weight) is None

    changed_buffer = copy.deepcopy(model)  # batch-norm statistics change the embedding too
    changed_buffer[1].running_mean[0] += 1e-6
    assert exporter.reusable(changed_buffer) is None

    assert EmbeddingExporter("unused").reusable(model) is None  # nothing kept


def checkpointing_trainer(monitor: str | None, mode: str, best: float | None, score: float | None):
    checkpoint = SimpleNamespace(
        monitor=monitor, mode=mode, best_model_score=None if best is None else torch.tensor(best)
    )
    metrics = {} if score is None else {"val/recall@15": torch.tensor(score)}
    return SimpleNamespace(checkpoint_callback=checkpoint, callback_metrics=metrics)


@pytest.mark.parametrize(
    ("mode", "best", "score", "expected"),
    [
        ("max", None, 0.1, True),  # the first validation
        ("max", 0.2, 0.3, True),
        ("max", 0.2, 0.2, False),  # a tie keeps the earlier checkpoint, as ModelCheckpoint does
        ("max", 0.2, 0.1, False),
        ("min", 0.2, 0.1, True),
        ("min", 0.2, 0.3, False),
        ("max", 0.2, None, False),  # the monitored metric was not logged
    ],
)
def test_only_a_validation_that_can_become_the_best_checkpoint_is_kept(mode, best, score, expected):
    assert may_become_best(checkpointing_trainer("val/recall@15", mode, best, score)) is expected


def test_without_a_monitored_checkpoint_every_validation_is_kept():
    assert may_become_best(checkpointing_trainer(None, "max", 0.5, 0.1))
    assert may_become_best(SimpleNamespace(checkpoint_callback=None, callback_metrics={}))
