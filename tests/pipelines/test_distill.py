"""``distill`` on tiny data: a frozen-model teacher and a run-directory teacher, a student whose loss
falls and whose run directory the other stages load, and refused teachers."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from test_configs import job_config, run_config

from fashion_retrieval.index.embeddings import load_embeddings
from fashion_retrieval.index.export import EMBEDDINGS_FILE
from fashion_retrieval.models.checkpoint import checkpoint_encoder_config, load_encoder
from fashion_retrieval.pipelines.context import RunContext
from fashion_retrieval.pipelines.distill import distill, student_module
from fashion_retrieval.pipelines.index import index
from fashion_retrieval.pipelines.infer import infer

# The frozen teacher: timm's tiny test network, like the tiny student, but another random draw and no head.
FROZEN_TEACHER = [
    "+model@distill.teacher_model=efficientnet_lite0",
    "distill.teacher_model.encoder.backbone.model_name=test_efficientnet",
    "distill.teacher_model.encoder.backbone.weights=random",
]


def tiny_cfg(data: Path, output: Path, *overrides: str) -> DictConfig:
    return run_config(data, output, "distill.packshot_batch_size=16", *overrides)


def epoch_losses(run: Path) -> list[float]:
    """Mean ``train/loss`` of each epoch, from the CSV logger."""
    (metrics,) = run.glob("csv/**/metrics.csv")
    by_epoch: dict[int, list[float]] = {}
    with metrics.open() as handle:
        for row in csv.DictReader(handle):
            if row.get("train/loss"):
                by_epoch.setdefault(int(row["epoch"]), []).append(float(row["train/loss"]))
    return [float(np.mean(by_epoch[epoch])) for epoch in sorted(by_epoch)]


def test_student_of_a_frozen_teacher_learns_and_its_run_dir_serves_index_and_infer(
    tiny_data: Path, tmp_path: Path
) -> None:
    run = tmp_path / "student"
    cfg = tiny_cfg(tiny_data, run, *FROZEN_TEACHER, "trainer.max_epochs=4", "model.optimizer.lr=3e-3")
    metrics = distill(cfg, RunContext(output_dir=run))
    losses = epoch_losses(run)
    assert len(losses) == 4 and losses[-1] < 0.8 * losses[0], losses
    teacher_dim = int(metrics["distill/teacher_dim"])
    assert 0.0 <= metrics["distill/teacher/recall@15"] <= 1.0 and "val/recall@15" in metrics
    student = load_encoder(run / "checkpoints" / "best.ckpt")
    assert student.embedding_dim == teacher_dim != 32  # the head takes the teacher's dimension
    # An ordinary run directory: index and infer load the student's checkpoint.
    served = tiny_cfg(tiny_data, tmp_path / "served", f"ckpt_path={run / 'checkpoints' / 'best.ckpt'}")
    index(served, RunContext(output_dir=tmp_path / "served"))
    embeddings, _ = load_embeddings(tmp_path / "served" / "index" / EMBEDDINGS_FILE)
    assert embeddings.shape[1] == teacher_dim
    infer(served, RunContext(output_dir=tmp_path / "served"))
    assert (tmp_path / "served" / "submission.csv").stat().st_size > 0


def write_teacher_run(cfg: DictConfig, run_dir: Path) -> None:
    """A run directory holding only a checkpoint of ``cfg``'s encoder (random weights, as ``train`` saves)."""
    config = OmegaConf.to_container(cfg.model.encoder, resolve=True)
    torch.manual_seed(3)
    encoder = instantiate(config)
    checkpoint = {
        "state_dict": {f"encoder.{k}": v for k, v in encoder.state_dict().items()},
        "encoder_config": checkpoint_encoder_config(config, encoder),
    }
    (run_dir / "checkpoints").mkdir(parents=True)
    torch.save(checkpoint, run_dir / "checkpoints" / "best.ckpt")


def test_a_run_directory_teacher_gives_its_searched_embeddings(tiny_data: Path, tmp_path: Path) -> None:
    teacher_run = tmp_path / "teacher"
    write_teacher_run(tiny_cfg(tiny_data, teacher_run, "model.encoder.embedding_dim=24"), teacher_run)
    run = tmp_path / "student"
    cfg = tiny_cfg(tiny_data, run, f"distill.teacher_dir={teacher_run}", "distill.score_teacher=false")
    context = RunContext(output_dir=run)
    metrics = distill(cfg, context)
    assert metrics["distill/teacher_dim"] == 24.0
    assert context.trained_checkpoint == run / "checkpoints" / "best.ckpt"
    assert load_encoder(context.trained_checkpoint).embedding_dim == 24


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ([], "needs one teacher"),
        (["distill.teacher_dir={missing}"], "no such run directory"),
        (["distill.teacher_dir={empty}"], "no checkpoints/best.ckpt"),
        (["distill.teacher_dir={empty}", *FROZEN_TEACHER], "both are set"),
    ],
)
def test_a_missing_teacher_is_refused_before_anything_runs(
    tiny_data: Path, tmp_path: Path, overrides: list[str], message: str
) -> None:
    (tmp_path / "empty").mkdir()
    paths = {"missing": tmp_path / "missing", "empty": tmp_path / "empty"}
    run = tmp_path / "student"
    cfg = tiny_cfg(tiny_data, run, *(o.format(**paths) for o in overrides))
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        distill(cfg, RunContext(output_dir=run))
    assert not (run / "checkpoints").exists()


def test_the_distill_experiment_runs_its_stage_under_fast_dev_run(tiny_data: Path, tmp_path: Path) -> None:
    """``experiment=distill`` with timm's tiny network standing in for both Lite2 and Lite0."""
    run = tmp_path / "run"
    tiny_network = ["model_name=test_efficientnet", "weights=random", "frozen_prefixes=[]"]
    cfg = job_config(
        [
            "experiment=distill",
            "debug=fdr",
            f"paths.data_dir={tiny_data}",
            f"paths.log_dir={tmp_path / 'logs'}",
            "data.query_size=[96,64]",
            "data.catalogue_size=[64,48]",
            "real_photos.enabled=false",
            *(f"model.encoder.backbone.{o}" for o in tiny_network),
            *(f"distill.teacher_model.encoder.backbone.{o}" for o in tiny_network),
        ],
        output_dir=str(run),
    )
    assert cfg.trainer.fast_dev_run and cfg.distill.teacher_model is not None
    metrics = distill(cfg, RunContext(output_dir=run))
    assert 0.0 <= metrics["val/recall@15"] <= 1.0 and 0.0 <= metrics["distill/teacher/recall@15"] <= 1.0


def test_the_student_head_takes_the_teacher_dimension_only_for_the_cosine_term(
    tiny_data: Path, tmp_path: Path
):
    run = tmp_path / "run"
    assert student_module(tiny_cfg(tiny_data, run), 24).encoder.embedding_dim == 24
    relations_only = tiny_cfg(tiny_data, run, "distill.cosine_weight=0")
    student = student_module(relations_only, 24)
    assert student.encoder.embedding_dim == 32 and student.encoder_config["embedding_dim"] == 32
    with pytest.raises(ValueError, match="memory_size"):
        student_module(tiny_cfg(tiny_data, run, "model.memory_size=16"), 24)
