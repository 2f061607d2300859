"""Every stage that trains or evaluates a model reports real-photo scores (tiny data, a tiny real tree)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from omegaconf import DictConfig
from real_photo_tree import real_overrides, write_real_tree
from test_configs import run_config

from fashion_retrieval.evaluation import real_photos
from fashion_retrieval.evaluation.real_photo_notes import read_notes
from fashion_retrieval.models.adapter_module import apply_head
from fashion_retrieval.pipelines.baselines import baselines
from fashion_retrieval.pipelines.context import RunContext
from fashion_retrieval.pipelines.report import report
from fashion_retrieval.pipelines.retrieval_eval import retrieval_eval
from fashion_retrieval.pipelines.train import train
from fashion_retrieval.pipelines.train_adapter import train_adapter
from fashion_retrieval.pipelines.validate import validate
from fashion_retrieval.runs.run_dir import update_metrics

REAL_KEYS = ("clothing_small/precision@10", "clothing_small/map@R", "collage/recall@15")
# A second frozen backbone row, as the quickstart's EfficientNet-Lite2, shrunk to timm's test network.
FROZEN_ROW = [
    "+model@baselines.backbones.tiny_b=efficientnet_lite0",
    "baselines.backbones.tiny_b.encoder.backbone.model_name=test_efficientnet",
    "baselines.backbones.tiny_b.encoder.backbone.weights=random",
    "baselines.backbones.tiny_b.encoder.backbone.frozen_prefixes=[]",
]


def tiny_cfg(data: Path, output: Path, *overrides: str) -> DictConfig:
    return run_config(data, output, *overrides)


def assert_real_row(metrics: dict[str, float], row: str) -> None:
    assert metrics[f"real/{row}/available"] == 1.0
    for key in REAL_KEYS:
        assert 0.0 <= metrics[f"real/{row}/{key}"] <= 1.0, (row, key)
    assert metrics[f"real/{row}/clothing_small/num_queries"] == 6
    assert metrics[f"real/{row}/collage/num_bundles"] == 4


def test_train_validate_baselines_retrieval_eval_and_report(tiny_data: Path, tmp_path: Path) -> None:
    real = real_overrides(write_real_tree(tmp_path / "photos"), tmp_path / "cache")
    output = tmp_path / "run"
    cfg = tiny_cfg(tiny_data, output, *real, *FROZEN_ROW, "baselines.names=[random,pretrained]")
    context = RunContext(output_dir=output)
    metrics = update_metrics(output, train(cfg, context))
    assert_real_row(metrics, "val")
    with open(output / "csv" / "metrics.csv", newline="") as handle:
        assert "real/val/collage/recall@15" in next(csv.reader(handle))  # logged like val/ metrics
    context.trained_checkpoint = output / "checkpoints" / "best.ckpt"
    metrics = update_metrics(output, baselines(cfg, context))
    assert_real_row(metrics, "baseline/pretrained")
    assert_real_row(metrics, "baseline/frozen_tiny_b")
    assert "real/baseline/random/available" not in metrics  # no model, no real photos
    assert 0.0 <= metrics["baseline/frozen_tiny_b/recall@15"] <= 1.0
    metrics = update_metrics(output, validate(cfg, context))
    assert_real_row(metrics, "val_none")
    # The same checkpoint, the same photos: validate's real scores are train's.
    assert metrics["real/val_none/clothing_small/map@R"] == metrics["real/val/clothing_small/map@R"]
    eval_cfg = tiny_cfg(
        tiny_data, output, *real, "reader=clothing_small", f"reader.root={tmp_path / 'photos'}"
    )
    metrics = update_metrics(output, retrieval_eval(eval_cfg, context))
    assert_real_row(metrics, "retrieval_eval")
    assert metrics["real/retrieval_eval/clothing_small/map@R"] == metrics["real/val/clothing_small/map@R"]
    report(cfg, context)
    table = (output / "results.md").read_text()
    assert "| real P@10 | real MAP@R | real collage R@15 |" in table
    for label in (
        "pretrained backbone",
        "tiny_b, frozen backbone",
        "fine-tuned",
        "validate / train-adapter (none)",
    ):
        row = next(line for line in table.splitlines() if line.startswith(f"| {label}"))
        assert row.count("|") == 10 and "|  |" not in row.split("|", 7)[-1], row  # real cells filled


def test_auto_without_the_photos_records_why_and_goes_on(tiny_data: Path, tmp_path: Path) -> None:
    output = tmp_path / "run"
    missing = tmp_path / "no_photos"
    cfg = tiny_cfg(tiny_data, output, f"real_photos.root={missing}", "baselines.names=[pretrained]")
    context = RunContext(output_dir=output)
    metrics = update_metrics(output, baselines(cfg, context))
    assert metrics["real/baseline/pretrained/available"] == 0.0
    assert 0.0 <= metrics["baseline/pretrained/recall@15"] <= 1.0  # the synthetic row is still scored
    reason = f"not available: {missing} not found"
    assert read_notes(output) == {"baseline/pretrained": reason}
    report(cfg, context)
    table = (output / "results.md").read_text()
    assert "| n/a | n/a | n/a |" in table and reason in table


def test_train_adapter_embeds_real_queries_through_its_query_head(
    tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = real_overrides(write_real_tree(tmp_path / "photos"), tmp_path / "cache")
    output = tmp_path / "run"
    calls: list[tuple[str, int]] = []

    def spy(module, features, side):
        calls.append((side, len(features)))
        return apply_head(module, features, side)

    monkeypatch.setattr(real_photos, "apply_head", spy)  # PhotoEncoder.with_adapter's heads
    adapter = [
        "adapter=residual_adapter",
        "detector=zones",
        "trainer.max_epochs=1",
        "adapter.data.batch_size=16",
    ]
    metrics = train_adapter(tiny_cfg(tiny_data, output, *real, *adapter), RunContext(output))
    assert_real_row(metrics, "val_zones")
    # The 12 photos as products through the catalogue head, the 6 test photos and 4 collage bundles
    # through the query head.
    assert {("catalogue", 12), ("query", 6), ("query", 4)} <= set(calls)
