"""``reranker=[...,text]`` with a tiny trained dual encoder (``experiment=text_tiny`` on the captioned tiny
data of test_train_text): validate and infer run through it in both modes, a zero weight is the chain
without it, a large one re-orders the lists, and photo bytes are refused in image mode."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from omegaconf import DictConfig, open_dict

from fashion_retrieval.pipelines.context import RunContext
from fashion_retrieval.pipelines.infer import infer
from fashion_retrieval.pipelines.train_text import train_text
from fashion_retrieval.pipelines.validate import validate
from fashion_retrieval.rerank.text import TextBonus
from fashion_retrieval.search.retriever import Retriever
from tests.pipelines.test_train_text import caption_data, text_cfg  # noqa: F401 (caption_data: a fixture)


@pytest.fixture(scope="module")
def text_run(caption_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    """A one-epoch ``train-text`` run on the captioned tiny data: its image tower also serves as the
    retrieval model searched here."""
    run = tmp_path_factory.mktemp("text_rerank") / "run"
    train_text(text_cfg(caption_data, run, "callbacks.early_stopping=null"), RunContext(output_dir=run))
    return run


def search_cfg(data: Path, run: Path, output: Path, *overrides: str) -> DictConfig:
    cfg = text_cfg(
        data,
        output,
        f"ckpt_path={run / 'checkpoints' / 'best.ckpt'}",
        f"index.dir={run / 'index'}",
        "real_photos.enabled=false",
        *overrides,
    )
    with open_dict(cfg):
        cfg.validate.name = "text"
    return cfg


def text_step(run: Path, mode: str, weight: float) -> list[str]:
    return [
        f"reranker.steps.text.run_dir={run}",
        f"reranker.steps.text.mode={mode}",
        f"reranker.steps.text.weight={weight}",
    ]


def test_category_mode_through_validate_and_the_search(
    caption_data: Path,  # noqa: F811
    text_run: Path,
    tmp_path: Path,
) -> None:
    # Truth boxes give each crop a garment-group label; without the hard mask the soft cue has room.
    crops = ["detector=truth", "retrieval.category_mask=false", "reranker=[section,colour,text]"]
    cfg = search_cfg(caption_data, text_run, tmp_path, *crops, *text_step(text_run, "category", 0.1))
    metrics = validate(cfg, RunContext(output_dir=tmp_path))
    assert metrics["val_text/num_queries"] > 0 and 0.0 <= metrics["val_text/recall@15"] <= 1.0

    def ranked(mode: str, weight: float, steps: str = "[section,colour,text]") -> list[list[int]]:
        overrides = [*crops[:2], f"reranker={steps}"]
        overrides += text_step(text_run, mode, weight) if "text" in steps else []
        retriever = Retriever.from_config(search_cfg(caption_data, text_run, tmp_path, *overrides))
        if "text" in steps:
            assert isinstance(retriever.reranker.steps[-1], TextBonus)
        return retriever.search_split("val").ranked.tolist()

    without = ranked("category", 0.1, "[section,colour]")
    assert ranked("category", 0.0) == without
    assert ranked("category", 20.0) != without


def test_image_mode_through_infer_and_photos_from_files_only(
    caption_data: Path,  # noqa: F811
    text_run: Path,
    tmp_path: Path,
) -> None:
    overrides = ["detector=none", "reranker=[text]", *text_step(text_run, "image", 20.0)]
    cfg = search_cfg(caption_data, text_run, tmp_path, *overrides)
    with open_dict(cfg):
        cfg.infer.submission_path = str(tmp_path / "submission.csv")
    infer(cfg, RunContext(output_dir=tmp_path))
    written = pd.read_csv(tmp_path / "submission.csv", dtype=str)
    assert (written.groupby("bundle_asset_id").size() == cfg.retrieval.k).all()

    retriever = Retriever.from_config(cfg)
    bundles = retriever.catalogue.searchable_test_bundle_ids[:3]
    reranked = {r.query: [p.product_id for p in r.products] for r in retriever.search_bundles(bundles)}
    plain = {
        r.query: [p.product_id for p in r.products] for r in retriever.search_bundles(bundles, rerank=False)
    }
    assert reranked != plain  # the weight dominates: the crop's text similarity re-orders the lists
    path = retriever.catalogue.bundles.set_index("bundle_asset_id").loc[bundles[0], "image_path"]
    with pytest.raises(ValueError, match=r"TextBonus.* reads query photos from files"):
        retriever.search([Path(path).read_bytes()])
    assert [p.product_id for p in retriever.search([str(path)])[0].products]
