"""``text-eval`` on the tiny synthetic data: every query set and method scored, the table written, and a
dataset without captions refused with the way out."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from test_configs import compose_config

from fashion_retrieval.data.catalogue import CatalogueError
from fashion_retrieval.pipelines.context import RunContext
from fashion_retrieval.pipelines.text_eval import text_eval

OVERRIDES = ["experiment=tiny", "text_eval.seeds=[0,1]", "text_eval.heldout_fraction=0.5"]


def test_text_eval_scores_every_method(tiny_data: Path, tmp_path: Path) -> None:
    cfg = compose_config([*OVERRIDES, f"paths.data_dir={tiny_data}"], output_dir=str(tmp_path))
    metrics = text_eval(cfg, RunContext(output_dir=tmp_path))
    for name in (
        "attribute/keyword",
        "composed/text_only",
        "composed/image_only",
        "composed/colour_histogram",
    ):
        assert 0.0 <= metrics[f"text_eval/{name}/recall@10"] <= 1.0
        assert f"text_eval/{name}/map@R_std" in metrics
        assert metrics[f"text_eval/{name}/num_queries"] > 0
    # Keyword matching over the captions finds most products its attribute words name.
    assert metrics["text_eval/attribute/keyword/recall@10"] > 0.5
    table = (tmp_path / "text_eval.md").read_text()
    assert "| attribute | keyword |" in table and "over 2 query seed(s)" in table


def test_text_eval_refuses_a_dataset_without_captions(tiny_data: Path, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    shutil.copytree(tiny_data, data_dir)
    (data_dir / "product_captions.csv").unlink()
    cfg = compose_config([*OVERRIDES, f"paths.data_dir={data_dir}"], output_dir=str(tmp_path))
    with pytest.raises(CatalogueError, match=r"queries need product_captions.csv.*captions_only=true"):
        text_eval(cfg, RunContext(output_dir=tmp_path))
