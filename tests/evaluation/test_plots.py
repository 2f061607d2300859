"""One plotting module for the run directory, the notebooks and W&B: rankings from a submission, examples,
and the PNGs the report stage writes."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from fashion_retrieval.evaluation import plots
from fashion_retrieval.pipelines.report import write_run_pictures
from tests.data.test_catalogue import PRODUCTS, write_dataset


def pairs(rows: list[tuple[str, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["bundle_asset_id", "product_asset_id"])


def test_rankings_of_a_submission_give_hits_curve_and_examples() -> None:
    index = {p: i for i, p in enumerate(PRODUCTS)}
    submission = pairs([("b1", PRODUCTS[2]), ("b1", PRODUCTS[0]), ("b2", PRODUCTS[1]), ("b2", PRODUCTS[3])])
    truth = pairs([("b1", PRODUCTS[0]), ("b1", PRODUCTS[1]), ("b2", PRODUCTS[3])])
    rankings = plots.Rankings.from_pairs(submission, truth, index)
    assert rankings.topk.tolist() == [[2, 0], [1, 3]]
    assert rankings.hits.tolist() == [[False, True], [False, True]]
    # 3 truth pairs: none found at k=1, two at k=2; both bundles have a hit at k=2.
    assert rankings.curve() == {"recall": {1: 0.0, 2: 2 / 3}, "hit_rate": {1: 0.0, 2: 1.0}}
    boxes = {("b1", PRODUCTS[0]): (1.0, 2.0, 3.0, 4.0), ("b1", PRODUCTS[1]): (0.0, 0.0, 2.0, 2.0)}
    paths = [f"{p}.jpg" for p in PRODUCTS]
    (example,) = rankings.examples([0], {"b1": "b1.jpg"}, PRODUCTS, paths, 2, boxes, max_missed=1)
    assert example.products == [PRODUCTS[2], PRODUCTS[0]] and example.marks == plots.MISS + plots.HIT
    assert example.truth_boxes == (((1.0, 2.0, 3.0, 4.0), True), ((0.0, 0.0, 2.0, 2.0), False))
    assert example.missed_paths == (paths[1],) and example.recall == 0.5


def write_truth_and_submission(root: Path, run: Path) -> tuple[Path, Path]:
    truth = root / "bundles_product_match_test_truth.csv"
    truth.write_text("bundle_asset_id,product_asset_id\nB_00000000000c,I_000000000002\n")
    (root / "bundle_garment_boxes.csv").write_text(
        "bundle_asset_id,product_asset_id,product_description,x1,y1,x2,y2,visible_fraction\n"
        "B_00000000000c,I_000000000002,TROUSERS,1,1,5,7,1.0\n"
    )
    run.mkdir(parents=True, exist_ok=True)
    submission = run / "submission.csv"
    submission.write_text(
        "bundle_asset_id,product_asset_id\n" + "".join(f"B_00000000000c,{p}\n" for p in PRODUCTS[1:3])
    )
    return submission, truth


def test_the_report_writes_a_grid_and_a_recall_curve_next_to_results(tmp_path: Path) -> None:
    root = write_dataset(tmp_path / "data")
    submission, truth = write_truth_and_submission(root, tmp_path / "run")
    metrics = {"val/recall@1": 0.1, "val/recall@15": 0.3, "baseline/random/recall@15": 0.01}
    written = write_run_pictures(tmp_path / "run", root, submission, truth, metrics, show_k=2)
    assert [p.name for p in written] == [plots.CURVE_FILE, plots.GRID_FILE]
    for path in written:
        with Image.open(path) as image:
            assert image.format == "PNG" and min(image.size) > 100
    # No truth (the real test set), or no matplotlib: no pictures, no error.
    assert write_run_pictures(tmp_path / "run", root, submission, tmp_path / "none.csv", metrics) == []


def test_no_pictures_without_matplotlib_or_for_another_dataset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    root = write_dataset(tmp_path / "data")
    submission, truth = write_truth_and_submission(root, tmp_path / "run")
    submission.write_text("bundle_asset_id,product_asset_id\nB_00000000000c,I_0000000000ff\n")
    assert write_run_pictures(tmp_path / "run", root, submission, truth, {}) == []
    assert "not in" in caplog.text
    monkeypatch.setattr(plots, "matplotlib_available", lambda: False)
    assert write_run_pictures(tmp_path / "run", root, submission, truth, {}) == []
    assert not list((tmp_path / "run").glob("*.png"))
