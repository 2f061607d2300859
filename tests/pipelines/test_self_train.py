"""Self-training: the pass loop against a fake search, and the real stage on the tiny run without the test
truth file."""

from __future__ import annotations

import builtins
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fashion_retrieval.data.catalogue import TEST_TRUTH_FILE
from fashion_retrieval.evaluation.submission import validate_submission
from fashion_retrieval.pipelines.context import RunContext
from fashion_retrieval.pipelines.self_train import self_train
from fashion_retrieval.rerank.bundle_priors import BundlePriorData, BundleStatistics
from fashion_retrieval.search.self_training import confident_pairs, self_training_passes
from tests.test_configs import compose_config


def test_confident_pairs_keep_the_best_slots_above_the_threshold() -> None:
    ranked = np.array([[4, 2, 9, -1], [1, 3, 5, 6]])
    scores = np.array([[0.7, 0.9, 0.8, np.nan], [0.1, np.nan, 0.2, 0.3]])
    assert confident_pairs(ranked, scores, 0.75, 5) == [[2, 9], []]
    assert confident_pairs(ranked, scores, 0.7, 2) == [[2, 9], []]
    assert confident_pairs(ranked, scores, 0.0, 1) == [[2], [6]]


def test_passes_add_pseudo_pairs_that_the_next_search_sees() -> None:
    known = BundleStatistics.from_lists(["train"], [[0, 1]], [1], 10, np.eye(1, 2, dtype=np.float32))
    base = BundlePriorData(known, ["q0", "q1"], np.eye(2, dtype=np.float32))
    seen: list[tuple[str, ...]] = []

    def search(data: BundlePriorData) -> tuple[np.ndarray, np.ndarray]:
        seen.append(data.statistics.bundle_ids)
        number = len(seen)  # each search is more confident about bundle q0 (one more slot passes)
        ranked = np.array([[2, 3, 4], [5, 6, 7]])
        scores = np.array([[0.9, 0.8 if number > 1 else 0.1, 0.1], [0.1, 0.1, 0.1]])
        return ranked, scores

    ranked, _, pseudo, rows = self_training_passes(search, base, [1, 2], 10, 0.5, 3, passes=3)
    assert seen == [("train",), ("train", "q0"), ("train", "q0"), ("train", "q0")]
    assert pseudo == {"q0": [2, 3], "q1": []}
    assert [row["added"] for row in rows] == [1, 1, 0]
    assert [row["pseudo_pairs"] for row in rows] == [1, 2, 2]
    assert ranked.tolist() == [[2, 3, 4], [5, 6, 7]]


def forbid_truth(monkeypatch: pytest.MonkeyPatch) -> None:
    """From now on, any attempt to open a file named like the test truth fails the test."""
    real_open, real_read_csv = builtins.open, pd.read_csv

    def guard(path: object) -> None:
        if TEST_TRUTH_FILE in str(path):
            raise AssertionError(f"self-train read the test truth: {path}")

    def guarded_open(file, *args, **kwargs):
        guard(file)
        return real_open(file, *args, **kwargs)

    def guarded_read_csv(path, *args, **kwargs):
        guard(path)
        return real_read_csv(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded_open)
    monkeypatch.setattr(pd, "read_csv", guarded_read_csv)


@pytest.mark.slow
@pytest.mark.parametrize("detector", ["none", "zones"])
def test_self_train_never_reads_the_test_truth(tiny_run, tmp_path, monkeypatch, detector: str) -> None:
    workdir, run_dir, _ = tiny_run
    data = tmp_path / "data"
    shutil.copytree(workdir / "data/synthetic_tiny", data, ignore=shutil.ignore_patterns(TEST_TRUTH_FILE))
    forbid_truth(monkeypatch)
    output = tmp_path / "out"
    cfg = compose_config(
        [
            "experiment=tiny",
            f"paths.data_dir={data}",
            f"ckpt_path={run_dir / 'checkpoints/best.ckpt'}",
            "reranker=bundle_priors",
            f"detector={detector}",
            f"detection_cache={tmp_path / 'detections'}",
            "self_train.confidence=0.0",  # every slot passes: the most pseudo pairs
            "self_train.passes=2",
        ],
        output_dir=str(output),
    )
    self_train(cfg, RunContext(output_dir=output))
    assert not (data / TEST_TRUTH_FILE).exists()
    test_bundles = pd.read_csv(data / "bundles_product_match_test.csv", dtype=str)["bundle_asset_id"]
    products = pd.read_csv(data / "product_dataset.csv", dtype=str)["product_asset_id"]
    submission = pd.read_csv(output / "submission.csv", dtype=str)
    validate_submission(submission, test_bundle_ids=set(test_bundles), catalogue_ids=set(products))
    log = json.loads(Path(output / "self_train.json").read_text())
    assert [row["pass"] for row in log["passes"]] == [1, 2]
    assert log["passes"][0]["added"] == 3 * len(test_bundles)  # max_per_bundle slots of every bundle
