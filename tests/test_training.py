"""Training recipes end to end on tiny models: every experiment under fast_dev_run, resume equivalence,
and Lightning DDP with two CPU processes through the real entry point."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, ListConfig, open_dict
from payloads import write_pickle_payload
from test_configs import EXPERIMENTS, READER_EXPERIMENTS, job_config
from tiny_models import tiny_clip_model

from fashion_retrieval.callbacks import RetrievalEvaluator
from fashion_retrieval.index.embeddings import load_embeddings
from fashion_retrieval.index.export import EMBEDDINGS_FILE
from fashion_retrieval.index.faiss_index import META_FILE
from fashion_retrieval.io import file_digest
from fashion_retrieval.models.checkpoint import CheckpointError
from fashion_retrieval.pipelines.context import RunContext
from fashion_retrieval.pipelines.train import train
from fashion_retrieval.pipelines.train_text import train_text

SMALL_DATA = [
    "data.query_size=[64,48]",
    "data.catalogue_size=[48,32]",
    "data.batch_size=4",
    "data.eval_batch_size=32",
    "data.num_workers=0",
    "data.val_fraction=0.2",
]


@pytest.fixture(scope="module")
def tiny_clip_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("clip") / "tiny_fashion_clip"
    tiny_clip_model().save_pretrained(directory)
    return directory


def shrink_backbones(node: DictConfig | ListConfig, clip_dir: Path) -> None:
    """Swap every backbone of a composed config for a tiny local one, the rest of the recipe unchanged:
    CLIP towers load ``clip_dir`` through the real loading code; timm models become timm's test nets."""
    if isinstance(node, DictConfig):
        target = str(node.get("_target_", ""))
        if target.endswith("ClipVisionBackbone"):
            node.pretrained = str(clip_dir)
            node.trainable_blocks = min(node.trainable_blocks, 1)
        elif target.endswith("TimmBackbone"):
            node.model_name = "test_convnext" if "convnext" in node.model_name else "test_efficientnet"
            node.weights = "random"
            node.frozen_prefixes = []
            node.drop_path_rate = 0.0
        children = [node._get_node(key) for key in node]
    else:
        children = list(node)
    for child in children:
        if isinstance(child, (DictConfig, ListConfig)):
            shrink_backbones(child, clip_dir)


def tiny_config(overrides: list[str], data_dir: Path, output_dir: Path, clip_dir: Path) -> DictConfig:
    cfg = job_config([*overrides, f"paths.data_dir={data_dir}", *SMALL_DATA], output_dir=str(output_dir))
    with open_dict(cfg):
        shrink_backbones(cfg.model, clip_dir)
        for extra in cfg.data.get("extra_training_sets") or []:
            extra.data_dir = str(data_dir)  # the tiny set again, namespaced: the arm's collage is not here
    return cfg


@pytest.mark.parametrize("experiment", [e for e in EXPERIMENTS if e not in READER_EXPERIMENTS])
def test_every_experiment_trains_under_fast_dev_run(experiment, tiny_data, tiny_clip_dir, tmp_path):
    cfg = tiny_config(
        [f"experiment={experiment}", "debug=fdr", f"paths.log_dir={tmp_path / 'logs'}"],
        tiny_data,
        tmp_path,
        tiny_clip_dir,
    )
    assert cfg.trainer.fast_dev_run
    # Each experiment's own training stage: the dual encoders' is train-text.
    stage = train_text if "train_text" in cfg.stages else train
    metrics = stage(cfg, RunContext(output_dir=tmp_path))
    # fast_dev_run validates one batch of each loader: the evaluator scores the seen part of the gallery.
    assert 0.0 <= metrics["val/recall@15"] <= 1.0


class KillAfterEpoch(pl.Callback):
    """Stops training at the end of an epoch, as a killed job would (after its epoch-end checkpoint)."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.current_epoch == self.epoch:
            trainer.should_stop = True


def last_checkpoint_state(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoints/last.ckpt", map_location="cpu", weights_only=True)["state_dict"]


def validation_recall(run_dir: Path) -> list[float]:
    metrics = pd.read_csv(run_dir / "csv/metrics.csv")
    return metrics["val/recall@15"].dropna().round(6).tolist()


def test_resumed_run_reaches_the_uninterrupted_run(tiny_data, tiny_clip_dir, tmp_path):
    """Killed after epoch 1 and resumed from its epoch-end checkpoint (the default ``last.ckpt``, written
    at every validation end), a run ends with the same weights and validation metrics as one that was
    never interrupted (deterministic mode, CPU): optimiser, scheduler, learnable temperature, batch order,
    same-category and index-mined negatives (re-mined on resume with the restored weights) and the
    cross-batch memory all resume."""
    recipe = [
        "experiment=tiny",
        "miner=[same_category,index_mined,memory]",
        "loss.learnable_temperature=true",
        "trainer.deterministic=true",
        "logger=csv",
        "callbacks.embedding_exporter=null",
        "callbacks.early_stopping=null",
    ]

    def fit(name: str, kill_after: int | None = None, ckpt_path: Path | None = None) -> Path:
        run_dir = tmp_path / name
        overrides = [*recipe, "trainer.max_epochs=3"]
        if kill_after is not None:
            overrides.append(f"+callbacks.kill._target_={__name__}.KillAfterEpoch")
            overrides.append(f"+callbacks.kill.epoch={kill_after}")
        if ckpt_path is not None:
            overrides.append(f"ckpt_path={ckpt_path}")
        train(tiny_config(overrides, tiny_data, run_dir, tiny_clip_dir), RunContext(output_dir=run_dir))
        return run_dir

    uninterrupted = fit("uninterrupted")
    killed = fit("killed", kill_after=1)
    resumed = fit("resumed", ckpt_path=killed / "checkpoints/last.ckpt")

    # last.ckpt follows every epoch, improved or not (Lightning 2.6's save_last does not: see the config).
    for run_dir, epoch in ((killed, 1), (uninterrupted, 2), (resumed, 2)):
        assert torch.load(run_dir / "checkpoints/last.ckpt", weights_only=True)["epoch"] == epoch
    expected, actual = last_checkpoint_state(uninterrupted), last_checkpoint_state(resumed)
    assert expected.keys() == actual.keys()
    for name, tensor in expected.items():
        torch.testing.assert_close(actual[name], tensor, rtol=1e-5, atol=1e-6, msg=name)
    assert validation_recall(resumed)[-1] == validation_recall(uninterrupted)[-1]
    assert validation_recall(killed) == validation_recall(uninterrupted)[:2]


def test_resuming_from_a_hostile_checkpoint_runs_nothing(tiny_data, tiny_clip_dir, tmp_path):
    """``train ckpt_path=`` (Lightning's resume) reads the file as data: a pickle payload is refused with
    a message naming the file, and never runs."""
    marker = tmp_path / "marker"
    evil = write_pickle_payload(tmp_path / "last.ckpt", marker, state_dict={}, epoch=0)
    cfg = tiny_config(["experiment=tiny", f"ckpt_path={evil}"], tiny_data, tmp_path / "run", tiny_clip_dir)
    with pytest.raises(CheckpointError, match=r"last\.ckpt: refused"):
        train(cfg, RunContext(output_dir=tmp_path / "run"))
    assert not marker.exists()


@pytest.mark.timeout(600)
def test_ddp_with_two_cpu_processes_through_the_cli(tiny_data, tmp_path):
    """``trainer=ddp`` on CPU (gloo): Lightning re-launches the CLI for rank 1, the batch is gathered for
    the loss, validation gathers embeddings by index, and only rank 0 writes the run's files."""
    run_dir = tmp_path / "ddp"
    command = [
        sys.executable,
        "-m",
        "fashion_retrieval.cli",
        "train",
        "experiment=tiny",
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "trainer.precision=32-true",
        "logger=csv",
        f"paths.data_dir={tiny_data}",
        f"hydra.run.dir={run_dir}",
        *SMALL_DATA,
    ]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=550)
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    log = (run_dir / "train.log").read_text() + result.stderr
    assert "Initializing distributed: GLOBAL_RANK: 0, MEMBER: 1/2" in log
    # Rank 1 is this CLI re-launched by Lightning, logging under its own job name.
    assert (run_dir / "train_ddp_process_1.log").is_file()
    assert (run_dir / "checkpoints/best.ckpt").is_file()
    assert "val/recall@15" in (run_dir / "metrics.json").read_text()
    assert not list(run_dir.glob("config_resolved_*.yaml")), "rank 1 must not write the run's files"


SCRIPTED_RECALL = (0.1, 0.5, 0.2, 0.3)  # by epoch: epoch 1 is the best, later epochs are worse


class ScriptedEvaluator(RetrievalEvaluator):
    """The real validation, with Recall@15 replaced by :data:`SCRIPTED_RECALL`."""

    def validation_metrics(self, trainer: pl.Trainer) -> dict[str, float]:
        return {**super().validation_metrics(trainer), "recall@15": SCRIPTED_RECALL[trainer.current_epoch]}


def test_resume_keeps_the_best_model_in_a_new_and_in_the_same_directory(tiny_data, tiny_clip_dir, tmp_path):
    """Killed after its best epoch (1) and resumed from ``last.ckpt`` for two worse epochs: best.ckpt, the
    metrics and the exported index stay those of epoch 1, whether the resumed run writes a new directory
    (Lightning drops the best score there) or the same one (the metrics once read only this process's
    epochs)."""
    recipe = [
        "experiment=tiny",
        f"callbacks.retrieval_evaluator._target_={__name__}.ScriptedEvaluator",
        "callbacks.early_stopping=null",
        "trainer.max_epochs=4",
    ]

    def fit(run_dir: Path, *overrides: str) -> dict[str, float]:
        cfg = tiny_config([*recipe, *overrides], tiny_data, run_dir, tiny_clip_dir)
        return train(cfg, RunContext(output_dir=run_dir))

    def saved(path: Path) -> dict:
        return torch.load(path, map_location="cpu", weights_only=True)

    killed = tmp_path / "killed"
    fit(killed, f"+callbacks.kill._target_={__name__}.KillAfterEpoch", "+callbacks.kill.epoch=1")
    best = saved(killed / "checkpoints/best.ckpt")
    assert best["epoch"] == 1

    for run_dir in (tmp_path / "resumed", killed):
        metrics = fit(run_dir, f"ckpt_path={killed / 'checkpoints/last.ckpt'}")
        assert saved(run_dir / "checkpoints/last.ckpt")["epoch"] == 3, "the resumed run trained on"
        assert metrics["val/best_epoch"] == 1.0 and metrics["val/recall@15"] == 0.5
        kept = saved(run_dir / "checkpoints/best.ckpt")
        assert kept["epoch"] == 1
        for name, tensor in best["state_dict"].items():
            torch.testing.assert_close(kept["state_dict"][name], tensor, msg=name)
        meta = json.loads((run_dir / "index" / META_FILE).read_text())["metadata"]
        assert meta["checkpoint"] == str(run_dir / "checkpoints/best.ckpt")
        assert meta["checkpoint_sha256"] == file_digest(run_dir / "checkpoints/best.ckpt")
        if run_dir != killed:
            exported, _ = load_embeddings(run_dir / "index" / EMBEDDINGS_FILE)
            expected, _ = load_embeddings(killed / "index" / EMBEDDINGS_FILE)
            np.testing.assert_allclose(exported, expected, atol=1e-5)
