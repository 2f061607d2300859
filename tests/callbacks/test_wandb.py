"""W&B logging, offline: the table builders on their own, then a tiny training run whose offline run files
are read back (wandb 0.31 writes the summary, config, group and tags only into the run's ``.wandb``
transaction log, tables under ``files/media/table/``, artifacts as records with their manifests)."""

from __future__ import annotations

import json
import logging
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import pytorch_lightning as pl
from omegaconf import DictConfig
from test_configs import job_config
from test_training import SMALL_DATA

from fashion_retrieval.callbacks.evaluator import ValidationRanking
from fashion_retrieval.callbacks.wandb_logger import MAX_TAG_LENGTH, Sweep, run_labels
from fashion_retrieval.callbacks.wandb_tables import (
    HIT,
    MISS,
    WandbTables,
    best_summary,
    embedding_table,
    example_columns,
    retrieval_examples,
    spread_indices,
    thumbnail,
)
from fashion_retrieval.data.datamodule import QuerySet
from fashion_retrieval.pipelines.context import RunContext
from fashion_retrieval.pipelines.train import train
from fashion_retrieval.runs.stages import run_stages


# -- pure functions -------------------------------------------------------------------------------------
def test_spread_indices_are_even_deterministic_and_capped():
    assert spread_indices(10, 3).tolist() == [0, 4, 9]  # round(4.5) is 4: banker's rounding
    assert spread_indices(3, 8).tolist() == [0, 1, 2]
    assert spread_indices(0, 5).tolist() == [] and spread_indices(5, 0).tolist() == []
    np.testing.assert_array_equal(spread_indices(1000, 7), spread_indices(1000, 7))


def test_best_summary_takes_one_epoch_not_each_maximum():
    history = [
        {"epoch": 0, "recall@15": 0.2, "map@15": 0.30},
        {"epoch": 1, "recall@15": 0.4, "map@15": 0.10},
        {"epoch": 2, "recall@15": 0.3, "map@15": 0.50},
    ]
    assert best_summary(history, "recall@15") == {
        "best/val/epoch": 1.0,
        "best/val/recall@15": 0.4,
        "best/val/map@15": 0.10,
    }
    assert best_summary([], "recall@15") == {}


def test_retrieval_examples_mark_hits_and_drop_padding():
    queries = QuerySet(
        bundle_ids=["b0", "b1", "b2"],
        image_paths=["q0.jpg", "q1.jpg", "q2.jpg"],
        sections=[1, 1, 2],
        truth=[[0], [1, 2], [3]],
    )
    # Query 0 was not scored (partial validation); rows are queries 1 and 2.
    ranking = ValidationRanking(epoch=3, queries=np.array([1, 2]), topk=np.array([[2, 0, 1], [0, -1, -1]]))
    ids, paths = ["p0", "p1", "p2", "p3"], ["g0.jpg", "g1.jpg", "g2.jpg", "g3.jpg"]
    first, second = retrieval_examples(queries, ranking, ids, paths, count=5, k=3)
    assert first.bundle_id == "b1" and first.query_path == "q1.jpg" and first.query_box is None
    assert first.products == ["p2", "p0", "p1"] and first.product_paths == ["g2.jpg", "g0.jpg", "g1.jpg"]
    assert first.hits == [True, False, True] and first.recall == 1.0 and first.marks == HIT + MISS + HIT
    assert second.products == ["p0"] and second.hits == [False] and second.recall == 0.0
    only_two = retrieval_examples(queries, ranking, ids, paths, count=5, k=2)
    assert only_two[0].products == ["p2", "p0"] and only_two[0].recall == 0.5
    assert example_columns(2) == ["bundle_id", "query", "hits", "recall", "rank_1", "rank_2"]


def test_embedding_table_has_metadata_one_column_per_dimension_and_a_row_cap():
    embeddings = np.arange(12, dtype=np.float32).reshape(6, 2) / 10
    ids = [f"p{i}" for i in range(6)]
    columns, rows = embedding_table(embeddings, ids, {"p0": "shirt", "p5": "shoe"}, {"p5": 2}, max_rows=3)
    assert columns == ["product_id", "category", "section", "d0", "d1"]
    assert [row[0] for row in rows] == ["p0", "p2", "p5"]
    assert rows[0] == ["p0", "shirt", -1, 0.0, 0.1]
    assert rows[2] == ["p5", "shoe", 2, 1.0, 1.1]


def test_thumbnail_caps_the_longer_side_and_crops_a_box(tmp_path):
    import cv2

    path = tmp_path / "photo.png"
    cv2.imwrite(str(path), np.full((200, 100, 3), 255, dtype=np.uint8))
    assert thumbnail(str(path), None, 50).shape == (50, 25, 3)
    assert thumbnail(str(path), (0.0, 0.0, 50.0, 20.0), 500).shape == (20, 50, 3)  # pixel box


def test_run_labels_from_experiment_and_sweep():
    single = run_labels("quickstart", experiment="quickstart")
    assert (single.name, single.group) == ("quickstart", "quickstart")
    assert single.tags == ("quickstart", "experiment:quickstart")
    job = run_labels(
        "tiny", experiment="tiny", sweep=Sweep(name="2026-11-28_10-00-00", job=3), extra_tags=["x"]
    )
    assert job.name == "tiny-3" and job.group == "tiny-sweep-2026-11-28_10-00-00"
    assert job.tags == ("tiny", "experiment:tiny", "sweep:2026-11-28_10-00-00", "x")
    plain = run_labels("default", experiment=None, group="mine", extra_tags=["default", "t" * 100])
    assert plain.group == "mine" and plain.tags == ("default", "t" * MAX_TAG_LENGTH)


def test_callback_does_nothing_without_a_wandb_logger(caplog):
    callback = WandbTables()
    trainer = SimpleNamespace(loggers=[pl.loggers.CSVLogger("/nonexistent")], is_global_zero=True)
    with caplog.at_level(logging.DEBUG, logger="fashion_retrieval.callbacks.wandb_tables"):
        callback.setup(trainer, None, "fit")
    assert "no WandbLogger" in caplog.text
    # Neither hook touches the trainer beyond this, nor imports wandb's run machinery.
    callback.on_validation_epoch_end(trainer, None)
    callback.on_fit_end(trainer, None)


# -- reading an offline run ----------------------------------------------------------------------------
def wandb_records(path: Path) -> Iterator:
    """The records of a ``run-*.wandb`` file: a 7-byte header (``:W&B``, magic 0xBEE1, version), then
    LevelDB-log blocks of 32 KiB whose chunks (7-byte header: crc32c, length, type) hold protobuf
    ``Record`` messages, split across blocks as FIRST/MIDDLE/LAST. Stops at a chunk not yet written out."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    ident, magic, _ = struct.unpack("<4sHB", data[:7])
    assert (ident, magic) == (b":W&B", 0xBEE1), f"{path} is not a W&B transaction log"
    block, position, pending = 32768, 7, b""
    while position + 7 <= len(data):
        if block - position % block < 7:  # a block's tail too short for a header is zero padding
            position += block - position % block
            continue
        _, length, kind = struct.unpack("<IHB", data[position : position + 7])
        if kind == 0 or position + 7 + length > len(data):
            return  # a chunk the service is still writing: offline_run reads the file again
        position += 7
        pending += data[position : position + length]
        position += length
        if kind in (1, 4):  # FULL or LAST
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


@pytest.fixture
def offline_wandb(tmp_path, monkeypatch) -> Path:
    """W&B offline with every directory it writes to under ``tmp_path``: nothing touches the network or
    the home directory."""
    root = tmp_path / "wandb_home"
    monkeypatch.setenv("WANDB_MODE", "offline")
    for variable in (
        "WANDB_DIR",
        "WANDB_DATA_DIR",
        "WANDB_CACHE_DIR",
        "WANDB_CONFIG_DIR",
        "WANDB_ARTIFACT_DIR",
    ):
        monkeypatch.setenv(variable, str(root / variable.lower()))
        (root / variable.lower()).mkdir(parents=True)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    yield root
    import wandb

    if wandb.run is not None:  # a failed assertion must not leave the run open for the next test
        wandb.finish()


def tiny_config(overrides: list[str], data_dir: Path, output_dir: Path) -> DictConfig:
    cfg = job_config(
        ["experiment=tiny", "logger=[csv,wandb]", f"paths.data_dir={data_dir}", *SMALL_DATA, *overrides],
        output_dir=str(output_dir),
    )
    return cfg


def offline_run(output_dir: Path) -> tuple[Path, list]:
    """The run directory and records of the one offline run under ``output_dir/wandb``.

    wandb 0.31's ``finish()`` can return before its service has written the log out (a 7-byte file read
    at once, complete a moment later): wait for the ``exit`` record, which is written last.
    """
    runs = list((output_dir / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(runs) == 1, f"one offline run expected under {output_dir / 'wandb'}, found {runs}"
    for _ in range(600):
        records = list(wandb_records(runs[0]))
        if any(record.WhichOneof("record_type") == "exit" for record in records):
            return runs[0].parent, records
        time.sleep(0.1)
    raise AssertionError(f"{runs[0]} has no exit record: the run was never finished")


def summary_of(records: list) -> dict[str, object]:
    summary: dict[str, object] = {}
    for record in records:
        if record.WhichOneof("record_type") == "summary":
            for item in record.summary.update:
                summary[item.key or ".".join(item.nested_key)] = json.loads(item.value_json)
    return summary


def artifacts_of(records: list) -> dict[str, tuple[str, list[str]]]:
    """Artifact name -> (type, file paths in its manifest)."""
    return {
        r.artifact.name: (r.artifact.type, [c.path for c in r.artifact.manifest.contents])
        for r in records
        if r.WhichOneof("record_type") == "artifact"
    }


# -- the callback on a stubbed trainer (fast: no training) -------------------------------------------------
class StubData:
    """What the callback reads from the data module: 4 products, 3 validation bundles, tiny images."""

    def __init__(self, directory: Path) -> None:
        import cv2
        import pandas as pd

        self.catalogue_ids = ["p0", "p1", "p2", "p3"]
        paths = []
        for name in [*self.catalogue_ids, "b0", "b1", "b2"]:
            paths.append(str(directory / f"{name}.png"))
            cv2.imwrite(paths[-1], np.full((40, 30, 3), 10 * len(paths), dtype=np.uint8))
        self.cat = SimpleNamespace(
            products=pd.DataFrame(
                {
                    "product_asset_id": self.catalogue_ids,
                    "product_description": ["shirt", "shirt", "shoe", "bag"],
                    "image_path": paths[:4],
                }
            )
        )
        self.catalogue_paths = paths[:4]
        self.queries = QuerySet(["b0", "b1", "b2"], paths[4:], [1, 1, 2], [[0], [1, 2], [3]])

    def validation_queries(self) -> QuerySet:
        return self.queries

    def catalogue_sections(self) -> dict[str, int]:
        return {"p0": 1, "p1": 1}


def stub_trainer(directory: Path, callback: WandbTables) -> SimpleNamespace:
    import torch

    from fashion_retrieval.callbacks import EmbeddingExporter, ExperimentWandbLogger, RetrievalEvaluator
    from fashion_retrieval.index.export import export_catalogue

    data = StubData(directory)
    evaluator = RetrievalEvaluator(ks=[1, 3])
    evaluator.history = [
        {"epoch": 0, "recall@3": 0.25, "map@3": 0.1},
        {"epoch": 1, "recall@3": 0.5, "map@3": 0.05},
    ]
    evaluator.last_ranking = ValidationRanking(
        1, np.array([0, 1, 2]), np.array([[0, 1, 2], [2, 1, 0], [3, -1, -1]])
    )
    exporter = EmbeddingExporter(output_dir=str(directory / "index"))
    embeddings = np.eye(4, 8, dtype=np.float32)
    export_catalogue(exporter.output_dir, embeddings, data.catalogue_ids, None)
    exporter.written = exporter.output_dir
    checkpoint = directory / "best.ckpt"
    checkpoint.write_bytes(b"0" * 2048)
    logger = ExperimentWandbLogger(
        name="stub",
        experiment_name="tiny",
        project="fashion-retrieval",
        save_dir=str(directory),
        offline=True,
    )
    return SimpleNamespace(
        loggers=[logger],
        callbacks=[evaluator, exporter, callback],
        sanity_checking=False,
        is_global_zero=True,
        datamodule=data,
        checkpoint_callback=SimpleNamespace(
            best_model_path=str(checkpoint), best_model_score=torch.tensor(0.5), monitor="val/recall@3"
        ),
    )


@pytest.mark.parametrize(
    ("log_index", "max_artifact_mb", "expected"),
    [(True, 100.0, {"model", "index"}), (False, 100.0, {"model"}), (True, 1e-5, set())],
)
def test_callback_writes_tables_summary_and_artifacts_offline(
    offline_wandb, tmp_path, caplog, log_index, max_artifact_mb, expected
):
    import wandb

    callback = WandbTables(
        monitor="recall@3", num_examples=2, k=3, log_index=log_index, max_artifact_mb=max_artifact_mb
    )
    trainer = stub_trainer(tmp_path, callback)
    with caplog.at_level(logging.INFO, logger="fashion_retrieval.callbacks.wandb_tables"):
        callback.setup(trainer, None, "fit")
        callback.on_validation_epoch_end(trainer, None)
        callback.on_fit_end(trainer, None)
    wandb.finish()
    run_dir, records = offline_run(tmp_path)

    run = next(r.run for r in records if r.WhichOneof("record_type") == "run")
    assert (run.display_name, run.run_group, list(run.tags)) == ("stub", "stub", ["stub", "experiment:tiny"])
    summary = summary_of(records)
    assert summary["best/val/recall@3"] == 0.5 and summary["best/val/epoch"] == 1.0
    assert summary["best/val/map@3"] == 0.05  # the best epoch's value, not the best value of map@3

    tables = {path.name.split("_")[0]: path for path in (run_dir / "files/media/table").rglob("*.table.json")}
    examples = json.loads(tables["examples"].read_text())
    assert examples["columns"] == example_columns(3)
    # Spread over 3 scored queries, 2 chosen: the first and the last.
    assert [row[:4] for row in examples["data"]] == [
        ["b0", "Image", HIT + MISS + MISS, 1.0],
        ["b2", "Image", HIT, 1.0],
    ]
    assert examples["data"][1][5:] == [None, None]  # padding shows as empty cells
    embeddings = json.loads(tables["embeddings"].read_text())
    assert embeddings["columns"] == ["product_id", "category", "section", *[f"d{d}" for d in range(8)]]
    assert [row[:3] for row in embeddings["data"]] == [
        ["p0", "shirt", 1],
        ["p1", "shirt", 1],
        ["p2", "shoe", -1],
        ["p3", "bag", -1],
    ]

    artifacts = artifacts_of(records)
    # The examples table's images travel in its run_table artifact: 2 queries and their 4 products.
    images = [
        f
        for kind, files in artifacts.values()
        if kind == "run_table"
        for f in files
        if f.startswith("media/images/")
    ]
    assert len(images) == 2 + 4
    logged = {name.split("-")[0]: files for name, (kind, files) in artifacts.items() if kind != "run_table"}
    assert set(logged) == expected
    if "model" in expected:
        assert artifacts[f"model-{run.run_id}"] == ("model", ["best.ckpt"])
    if "index" in expected:
        assert sorted(logged["index"]) == ["index.faiss", "index_ids.json", "index_meta.json"]
    if max_artifact_mb < 1:
        assert "model artifact skipped" in caplog.text and "index artifact skipped" in caplog.text


def test_a_failed_stage_leaves_no_wandb_run_open(offline_wandb, tmp_path):
    """The W&B run opens before fit (the config is logged), then the data is missing: ``run_stages``
    records the failure and finishes the run, so the next job of a multirun cannot log into it."""
    import wandb

    output_dir = tmp_path / "failed"
    cfg = tiny_config([], tmp_path / "no_data_here", output_dir)
    with pytest.raises(Exception, match="no_data_here"):
        run_stages(cfg, ["train"])
    assert wandb.run is None, "run_stages must finish the W&B run of a failed stage"
    assert json.loads((output_dir / "failure.json").read_text())["stage"] == "train"
    _, records = offline_run(output_dir)  # the run was opened in the run directory, and finished
    exit_record = next(r.exit for r in records if r.WhichOneof("record_type") == "exit")
    assert exit_record.exit_code == 1, "W&B shows the run as failed"


# -- end to end ---------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_tiny_training_writes_an_offline_run(offline_wandb, tiny_data, tmp_path):
    """``logger=[csv,wandb]`` on the tiny experiment: the resolved config, Lightning's curves, the best
    values, both tables and the checkpoint artifact (index off) land in one offline run."""
    import wandb

    cfg = tiny_config(
        [
            "+trainer.limit_train_batches=2",
            "callbacks.wandb_tables.num_examples=3",
            "callbacks.wandb_tables.embedding_rows=10",
            "callbacks.wandb_tables.log_index=false",
        ],
        tiny_data,
        tmp_path / "run",
    )
    metrics = train(cfg, RunContext(output_dir=tmp_path / "run"))
    wandb.finish()
    run_dir, records = offline_run(tmp_path / "run")

    run = next(r.run for r in records if r.WhichOneof("record_type") == "run")
    assert run.run_group == "tiny" and run.display_name == "tiny"
    assert list(run.tags) == ["tiny", "experiment:tiny"]
    config_keys = {item.key for item in run.config.update}
    config_keys |= {
        item.key for r in records if r.WhichOneof("record_type") == "config" for item in r.config.update
    }
    assert {"run_name", "model", "data", "callbacks"} <= config_keys, "the resolved config is logged"

    summary = summary_of(records)
    assert summary["best/val/recall@15"] == pytest.approx(metrics["val/recall@15"])
    assert summary["best/val/epoch"] == metrics["val/best_epoch"]
    assert "val/recall@15" in summary and "train/loss" in summary  # Lightning's curves, same run

    tables = {path.name.split("_")[0]: path for path in (run_dir / "files/media/table").rglob("*.table.json")}
    examples = json.loads(tables["examples"].read_text())
    assert examples["columns"] == example_columns(15) and len(examples["data"]) == 3
    for row in examples["data"]:
        assert set(row[2]) <= {HIT, MISS} and 0.0 <= row[3] <= 1.0
    embeddings = json.loads(tables["embeddings"].read_text())
    assert len(embeddings["columns"]) == 3 + 32 and len(embeddings["data"]) == 10

    artifacts = artifacts_of(records)
    assert artifacts[f"model-{run.run_id}"] == ("model", ["best.ckpt"])
    assert not any(name.startswith("index-") for name in artifacts), "log_index=false"


def test_an_unknown_monitor_names_the_validation_metrics():
    from fashion_retrieval.callbacks import RetrievalEvaluator

    callback = WandbTables(monitor="recall@20")
    callback._logger = SimpleNamespace()  # as if a WandbLogger had been found
    evaluator = RetrievalEvaluator()
    evaluator.history = [{"epoch": 0, "recall@15": 0.1}]
    evaluator.last_ranking = ValidationRanking(0, np.array([0]), np.array([[0]]))
    trainer = SimpleNamespace(sanity_checking=False, is_global_zero=True, callbacks=[evaluator])
    with pytest.raises(KeyError, match=r"monitor='recall@20'.*recall@15"):
        callback.on_validation_epoch_end(trainer, None)
