"""The Retriever answers what ``infer`` writes: same products, same order, for whole photos and garment
crops; photos given as paths, bytes or arrays rank like the dataset's bundles; run directories are data."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import cv2
import pandas as pd
import pytest
import yaml

from fashion_retrieval.data.transforms import ImageReadError
from fashion_retrieval.io import RUN_CONFIG_FILE
from fashion_retrieval.pipelines.context import RunContext
from fashion_retrieval.pipelines.infer import infer
from fashion_retrieval.search.retriever import Retriever, SearchResult
from fashion_retrieval.search.run_config import (
    DETECTED_GARMENTS_TARGET,
    load_run_config,
    upgrade_data_section,
)
from tests.test_configs import compose_config


def submission_lists(path: Path) -> dict[str, list[str]]:
    """bundle id -> its products in file order."""
    pairs = pd.read_csv(path, dtype=str)
    return {
        bundle: list(rows["product_asset_id"])
        for bundle, rows in pairs.groupby("bundle_asset_id", sort=False)
    }


def ranked_lists(results: list[SearchResult]) -> dict[str, list[str]]:
    return {result.query: [product.product_id for product in result.products] for result in results}


@pytest.fixture(scope="module")
def run_retriever(tiny_run) -> Retriever:
    _, run_dir, _ = tiny_run
    return Retriever.from_run_dir(run_dir)


def test_the_run_directory_retriever_gives_the_submission_infer_wrote(tiny_run, run_retriever) -> None:
    _, run_dir, _ = tiny_run
    bundles = run_retriever.catalogue.searchable_test_bundle_ids
    results = run_retriever.search_bundles(bundles)
    written = submission_lists(run_dir / "submission.csv")
    assert set(written) == set(bundles) and all(len(products) == 15 for products in written.values())
    assert ranked_lists(results) == written
    first = results[0]
    assert [c.box for c in first.crops] == [None] and first.products[0].crop == first.crops[0]
    categories = dict(zip(run_retriever.catalogue.products["product_asset_id"], run_retriever.categories))
    assert all(p.category == categories[p.product_id] for p in first.products)
    scores = [p.score for p in first.products]
    assert scores == sorted(scores, reverse=True)
    assert first.timings.embed > 0 and first.timings.search > 0 and first.timings.decode == 0


def test_photos_as_paths_bytes_or_arrays_rank_like_their_bundles(run_retriever) -> None:
    bundles = run_retriever.catalogue.searchable_test_bundle_ids[:4]
    rows = run_retriever.catalogue.bundles.set_index("bundle_asset_id").loc[bundles]
    paths = [str(p) for p in rows["image_path"]]
    sections = [int(s) for s in rows["bundle_id_section"]]
    expected = [ranked_lists([r])[r.query] for r in run_retriever.search_bundles(bundles)]
    arrays = [cv2.cvtColor(cv2.imread(p), cv2.COLOR_BGR2RGB) for p in paths]
    for images in (paths, [Path(p).read_bytes() for p in paths], arrays):
        results = run_retriever.search(images, sections=sections)
        assert [[p.product_id for p in r.products] for r in results] == expected
        assert results[0].timings.decode > 0
    assert [r.query for r in run_retriever.search(paths[:1] + arrays[1:2], sections=sections[:2])] == [
        paths[0],
        "image-1",
    ]


def test_k_and_unknown_sections(run_retriever) -> None:
    path = str(run_retriever.catalogue.bundles["image_path"].iloc[0])
    (result,) = run_retriever.search([path], k=5)
    assert len(result.products) == 5
    with pytest.raises(ValueError, match="k must be a positive"):
        run_retriever.search([path], k=0)
    with pytest.raises(ValueError, match="1 sections for 2 images"):
        run_retriever.search([path, path], sections=[1])


def test_reranking_can_be_switched_off_per_call(run_retriever) -> None:
    cfg = copy.deepcopy(run_retriever.cfg)
    colour = {"_target_": "fashion_retrieval.rerank.steps.ColourBonus", "weight": 1.0, "gated": False}
    cfg.reranker = {"_target_": "fashion_retrieval.rerank.chain.RerankChain", "depth": 30, "steps": [colour]}
    retriever = Retriever(cfg, run_retriever.encoder, run_retriever.datamodule, run_retriever.index)
    bundles = retriever.catalogue.searchable_test_bundle_ids
    plain = ranked_lists(run_retriever.search_bundles(bundles))
    assert ranked_lists(retriever.search_bundles(bundles, rerank=False)) == plain
    reranked = retriever.search_bundles(bundles)
    assert ranked_lists(reranked) != plain and reranked[0].timings.rerank > 0
    path = run_retriever.catalogue.bundles["image_path"].iloc[0]
    with pytest.raises(ValueError, match=r"ColourBonus.* reads query photos from files"):
        retriever.search([Path(path).read_bytes()])
    assert len(retriever.search([Path(path).read_bytes()], rerank=False)[0].products) == 15


def test_bad_photos_and_bundle_ids_are_refused_by_name(run_retriever, tmp_path) -> None:
    path = Path(run_retriever.catalogue.bundles["image_path"].iloc[0])
    with pytest.raises(ImageReadError, match="image-0: truncated"):
        run_retriever.search([path.read_bytes()[:200]])
    with pytest.raises(ImageReadError, match="image-0: the file is empty"):
        run_retriever.search([b""])
    with pytest.raises(ValueError, match=r"image-0: an image array must be \(H, W, 3\) uint8"):
        run_retriever.search([cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)])
    with pytest.raises(KeyError, match="B_nothere"):
        run_retriever.search_bundles(["B_nothere"])


@pytest.mark.slow
def test_garment_crops_rank_like_infer(tiny_run, tmp_path) -> None:
    workdir, run_dir, _ = tiny_run
    output = tmp_path / "out"
    cfg = compose_config(
        [
            "experiment=tiny",
            f"paths.data_dir={workdir / 'data/synthetic_tiny'}",
            f"ckpt_path={run_dir / 'checkpoints/best.ckpt'}",
            f"index.dir={run_dir / 'index'}",
            "detector=zones",
            f"detection_cache={tmp_path / 'detections'}",
        ],
        output_dir=str(output),
    )
    infer(cfg, RunContext(output_dir=output))
    retriever = Retriever.from_config(cfg)
    results = retriever.search_bundles(retriever.catalogue.searchable_test_bundle_ids)
    assert ranked_lists(results) == submission_lists(output / "submission.csv")
    labels = {crop.label for result in results for crop in result.crops}
    assert labels >= {"upper", "lower"} and all(c.box is not None for c in results[0].crops)
    assert all(p.crop in results[0].crops for p in results[0].products if p.crop is not None)
    paths = [
        str(p)
        for p in retriever.catalogue.bundles.set_index("bundle_asset_id").loc[
            [results[0].query], "image_path"
        ]
    ]
    section = int(retriever.catalogue.bundle_sections()[results[0].query])
    (photo,) = retriever.search(paths, sections=[section])
    assert [p.product_id for p in photo.products] == [p.product_id for p in results[0].products]
    assert photo.timings.detect > 0


def copy_run_config(run_dir: Path, target: Path, edit) -> Path:
    target.mkdir()
    content = yaml.safe_load((run_dir / RUN_CONFIG_FILE).read_text())
    edit(content)
    (target / RUN_CONFIG_FILE).write_text(yaml.safe_dump(content))
    return target


def test_a_run_config_builds_only_our_classes(tiny_run, tmp_path) -> None:
    _, run_dir, _ = tiny_run
    cfg = load_run_config(run_dir, ["retrieval.k=7"])
    assert cfg.retrieval.k == 7 and cfg.index.dir == str(run_dir / "index")

    def foreign_step(content: dict) -> None:
        content["reranker"]["steps"] = {"evil": {"_target_": "os.system", "_args_": ["touch pwned"]}}

    bad = copy_run_config(run_dir, tmp_path / "bad", foreign_step)
    with pytest.raises(ValueError, match=r"reranker\.steps\.evil\._target_ = 'os\.system'"):
        load_run_config(bad)
    for target in ("fashion_retrieval.io.atomic_open", "fashion_retrieval.nowhere.Thing"):  # not classes

        def own_function(content: dict, target: str = target) -> None:
            content["detector"]["_target_"] = target

        odd = copy_run_config(run_dir, tmp_path / target, own_function)
        with pytest.raises(ValueError, match=f"detector._target_ = '{target}'"):
            load_run_config(odd)
    with pytest.raises(ValueError, match="names what Hydra would build"):
        load_run_config(run_dir, ["detector._target_=os.system"])
    with pytest.raises(FileNotFoundError, match="a run directory"):
        load_run_config(tmp_path)
    assert not (Path.cwd() / "pwned").exists()


def test_a_moved_run_directory_still_loads(tiny_run, tmp_path) -> None:
    _, run_dir, _ = tiny_run
    moved = tmp_path / "moved"
    shutil.copytree(run_dir, moved, ignore=shutil.ignore_patterns("wandb", "csv"))
    retriever = Retriever.from_run_dir(moved)
    assert retriever.cfg.index.dir == str(moved / "index")
    bundles = retriever.catalogue.searchable_test_bundle_ids
    assert ranked_lists(retriever.search_bundles(bundles)) == submission_lists(run_dir / "submission.csv")


def test_a_data_section_from_before_the_split_reads_as_detected_garments(tmp_path: Path) -> None:
    legacy = {"garment_detector": None, "detected_garment_iou": 0.3, "detection_cache": "c"}
    old = {"data": {"batch_size": 4, **legacy}}
    new = upgrade_data_section(old, tmp_path / RUN_CONFIG_FILE)
    assert new["data"] == {
        "batch_size": 4,
        "detected_garments": {
            "_target_": DETECTED_GARMENTS_TARGET,
            **{"detector": None, "min_iou": 0.3, "cache": "c"},
        },
    }
    assert old["data"]["detected_garment_iou"] == 0.3  # the stored config is not edited in place
    assert upgrade_data_section(new, tmp_path) is new


def test_a_data_section_from_before_the_rename_reads_gallery_size_as_catalogue_size(tmp_path: Path) -> None:
    old = {"data": {"batch_size": 4, "gallery_size": [64, 48]}}
    new = upgrade_data_section(old, tmp_path / RUN_CONFIG_FILE)
    assert new["data"] == {"batch_size": 4, "catalogue_size": [64, 48]}
    assert old["data"]["gallery_size"] == [64, 48]  # the stored config is not edited in place
