"""The whole pipeline through the real entry point, on the tiny experiment (about a minute on 2 cores);
the run itself is ``tiny_run`` in ``conftest.py``, shared with the notebook tests."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from fashion_retrieval.evaluation.submission import validate_submission


def fashion_retrieval(*args: str, cwd) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "fashion_retrieval.cli", *args]
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, (
        f"{' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    )
    return result


def test_run_writes_every_artefact(tiny_run):
    workdir, run_dir, result = tiny_run
    for name in ("metrics.json", "config_resolved.yaml", "results.md", "submission.csv", "run.log"):
        assert (run_dir / name).is_file(), name
    for name in ("retrieval_grid.png", "recall_curve.png"):  # the report's pictures, next to results.md
        assert (run_dir / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    for name in (
        "checkpoints/best.ckpt",
        "index/index.faiss",
        "index/index_ids.json",
        "index/catalogue_embeddings.npz",
    ):
        assert (run_dir / name).is_file(), name
    assert (workdir / "data/synthetic_tiny/metadata.json").is_file()
    assert (run_dir / "csv/metrics.csv").is_file()
    offline_runs = list((run_dir / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(offline_runs) == 1, "W&B should have logged offline into the run directory"
    assert "| fine-tuned |" in result.stdout and "| colour histogram |" in result.stdout
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for key in (
        "val/recall@15",
        "val/map@15",
        "baseline/random/recall@15",
        "baseline/pretrained/recall@15",
        "baseline/colour_histogram/recall@15",
        "test/recall@15",
    ):
        assert 0.0 <= metrics[key] <= 1.0, key


def test_submission_follows_the_rules(tiny_run):
    workdir, run_dir, _ = tiny_run
    data = workdir / "data/synthetic_tiny"
    test_bundles = pd.read_csv(data / "bundles_product_match_test.csv", dtype=str)["bundle_asset_id"]
    products = pd.read_csv(data / "product_dataset.csv", dtype=str)["product_asset_id"]
    submission = pd.read_csv(run_dir / "submission.csv", dtype=str)
    assert list(submission.columns) == ["bundle_asset_id", "product_asset_id"]
    assert len(submission) == 15 * len(test_bundles)
    validate_submission(submission, test_bundle_ids=set(test_bundles), catalogue_ids=set(products))


def test_stages_run_separately_from_a_checkpoint(tiny_run):
    workdir, run_dir, _ = tiny_run
    ckpt = run_dir / "checkpoints/best.ckpt"
    other = workdir / "infer_only"
    fashion_retrieval("infer", "experiment=tiny", f"ckpt_path={ckpt}", f"hydra.run.dir={other}", cwd=workdir)
    assert (other / "submission.csv").read_text() == (run_dir / "submission.csv").read_text()
    fashion_retrieval(
        "evaluate",
        "experiment=tiny",
        f"evaluate.submission_path={other / 'submission.csv'}",
        f"hydra.run.dir={other}",
        cwd=workdir,
    )
    scores = json.loads((other / "metrics.json").read_text())
    assert scores["test/recall@15"] == json.loads((run_dir / "metrics.json").read_text())["test/recall@15"]


def test_validate_through_each_detector(tiny_run):
    """``validate`` scores the validation bundles per detector; without one it is the training validation."""
    workdir, run_dir, _ = tiny_run
    ckpt = run_dir / "checkpoints/best.ckpt"
    trained = json.loads((run_dir / "metrics.json").read_text())
    scores = {}
    for detector, merge, reranker in (
        ("none", "round_robin", "none"),
        ("zones", "quota", "original"),
        ("truth", "score", "none"),
    ):
        out = workdir / f"validate_{detector}"
        fashion_retrieval(
            "validate",
            "experiment=tiny",
            f"detector={detector}",
            f"retrieval.merge={merge}",
            f"reranker={reranker}",
            f"ckpt_path={ckpt}",
            f"index.dir={run_dir / 'index'}",
            f"hydra.run.dir={out}",
            cwd=workdir,
        )
        scores[detector] = json.loads((out / "metrics.json").read_text())
    assert scores["none"]["val_none/recall@15"] == pytest.approx(trained["val/recall@15"], abs=1e-6)
    by_section = [key for key in scores["none"] if key.startswith("val_none/section/")]
    by_category = [key for key in scores["none"] if key.startswith("val_none/category/")]
    assert by_section and by_category, "validate breaks the metrics down by section and category"
    for detector in ("zones", "truth"):
        assert 0.0 <= scores[detector][f"val_{detector}/recall@15"] <= 1.0
    cache = workdir / "outputs/detection_cache"
    assert len(list(cache.glob("*/*.json"))) > 0, "zone and truth detections are cached"


def test_infer_with_garment_crops_writes_a_valid_submission(tiny_run):
    workdir, run_dir, _ = tiny_run
    out = workdir / "infer_zones"
    fashion_retrieval(
        "infer",
        "experiment=tiny",
        "detector=zones",
        "retrieval.tta=[flip]",
        f"ckpt_path={run_dir / 'checkpoints/best.ckpt'}",
        f"index.dir={run_dir / 'index'}",
        f"hydra.run.dir={out}",
        cwd=workdir,
    )
    data = workdir / "data/synthetic_tiny"
    test_bundles = pd.read_csv(data / "bundles_product_match_test.csv", dtype=str)["bundle_asset_id"]
    products = pd.read_csv(data / "product_dataset.csv", dtype=str)["product_asset_id"]
    submission = pd.read_csv(out / "submission.csv", dtype=str)
    validate_submission(submission, test_bundle_ids=set(test_bundles), catalogue_ids=set(products))
    assert submission.ne(pd.read_csv(run_dir / "submission.csv", dtype=str)).any().any()


def test_evaluate_refuses_a_malformed_submission(tiny_run, tmp_path):
    workdir, run_dir, _ = tiny_run
    broken = tmp_path / "broken.csv"
    lines = (run_dir / "submission.csv").read_text().splitlines()
    broken.write_text("\n".join(lines[:-1]) + "\n")  # one bundle is left with 14 products
    command = [
        sys.executable,
        "-m",
        "fashion_retrieval.cli",
        "evaluate",
        "experiment=tiny",
        f"evaluate.submission_path={broken}",
        f"hydra.run.dir={tmp_path / 'eval'}",
    ]
    result = subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "14" in result.stderr and "15" in result.stderr


def test_unknown_subcommand_and_help():
    result = subprocess.run(
        [sys.executable, "-m", "fashion_retrieval.cli", "nope"], capture_output=True, text=True
    )
    assert result.returncode == 2 and "unknown subcommand" in result.stderr
    result = subprocess.run(
        [sys.executable, "-m", "fashion_retrieval.cli", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0 and "run experiment=quickstart" in result.stdout


def test_train_without_any_logger(tiny_run):
    workdir, _, _ = tiny_run
    run_dir = workdir / "no_logger"
    fashion_retrieval("train", "experiment=tiny", "logger=none", f"hydra.run.dir={run_dir}", cwd=workdir)
    assert (run_dir / "checkpoints/best.ckpt").is_file()
    assert "val/recall@15" in json.loads((run_dir / "metrics.json").read_text())
    assert not (run_dir / "csv").exists() and not (run_dir / "wandb").exists()


def test_multirun_sweep_gives_one_run_directory_per_job(tiny_run):
    workdir, _, _ = tiny_run
    sweep = workdir / "sweep"
    fashion_retrieval(
        "train",
        "-m",
        "experiment=tiny",
        "logger=none",
        "loss.temperature=0.1,0.2",
        f"hydra.sweep.dir={sweep}",
        cwd=workdir,
    )
    for job, temperature in (("0", 0.1), ("1", 0.2)):
        assert "val/recall@15" in json.loads((sweep / job / "metrics.json").read_text())
        assert f"temperature: {temperature}" in (sweep / job / "config_resolved.yaml").read_text()


def test_the_section_rule_can_be_switched_off_to_measure_it(tiny_run):
    """``retrieval.sections=false``: products of another section may fill a bundle's slots (with it on,
    ``test_stages_run_separately_from_a_checkpoint``'s submission never crosses sections)."""
    from fashion_retrieval.data.catalogue import load_catalogue

    workdir, run_dir, _ = tiny_run
    catalogue = load_catalogue(workdir / "data/synthetic_tiny")
    product_section = catalogue.product_sections()
    bundle_section = dict(zip(catalogue.bundles["bundle_asset_id"], catalogue.bundles["bundle_id_section"]))

    def crossings(submission: pd.DataFrame) -> int:
        known = submission[submission["product_asset_id"].isin(product_section)]
        products = known["product_asset_id"].map(product_section)
        return int((products != known["bundle_asset_id"].map(bundle_section)).sum())

    out = workdir / "infer_without_sections"
    fashion_retrieval(
        "infer",
        "experiment=tiny",
        "retrieval.sections=false",
        f"ckpt_path={run_dir / 'checkpoints/best.ckpt'}",
        f"index.dir={run_dir / 'index'}",
        f"hydra.run.dir={out}",
        cwd=workdir,
    )
    assert crossings(pd.read_csv(run_dir / "submission.csv")) == 0
    assert crossings(pd.read_csv(out / "submission.csv")) > 0
