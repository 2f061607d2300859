"""(packshot, caption) pairs: one text per product per epoch drawn from (seed, epoch, product), and text
queries of the held-out products whose truth is every product with that text."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from fashion_retrieval.data.caption_pairs import (
    CaptionDataModule,
    CaptionPairDataset,
    normalise_text,
)


def test_normalise_text() -> None:
    assert normalise_text("  Red   Striped SHIRT ") == "red striped shirt"


def pair_dataset(seed: int = 0) -> CaptionPairDataset:
    texts = [["a", "b", "c", "d"], ["e"], ["f", "g"]]
    keys = [[0, 1, 2, 3], [4], [5, 6]]
    features = np.arange(12, dtype=np.float32).reshape(4, 3)
    return CaptionPairDataset(texts, keys, rows=[0, 2, 3], seed=seed, features=features)


def test_one_text_per_product_drawn_from_seed_epoch_and_product() -> None:
    dataset = pair_dataset()
    item = dataset[(0, 5)]
    assert item == dataset[(0, 5)] | {"features": item["features"]}  # the same key, the same draw
    assert item["caption_key"] == ["a", "b", "c", "d"].index(item["caption"])
    assert item["product"] == 0
    np.testing.assert_array_equal(dataset[(2, 0)]["features"].numpy(), [9.0, 10.0, 11.0])  # row 3
    # Over epochs the first product's four texts all come up; its only text for the second product.
    assert {dataset[(0, epoch)]["caption"] for epoch in range(40)} == {"a", "b", "c", "d"}
    assert {dataset[(1, epoch)]["caption"] for epoch in range(5)} == {"e"}
    other_seed = pair_dataset(seed=1)
    assert [dataset[(0, e)]["caption"] for e in range(20)] != [
        other_seed[(0, e)]["caption"] for e in range(20)
    ]


def test_pair_dataset_refuses_a_product_without_text() -> None:
    with pytest.raises(ValueError, match="without a text"):
        CaptionPairDataset([["a"], []], [[0], []], [0, 1], 0, features=np.zeros((2, 3), np.float32))


@pytest.fixture()
def caption_data(tiny_data: Path, tmp_path: Path) -> CaptionDataModule:
    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    datamodule = CaptionDataModule(str(data), catalogue_size=(32, 24), pair_batch_size=8)
    datamodule.setup()
    return datamodule


def test_validation_queries_are_heldout_texts_with_every_owner_as_truth(
    caption_data: CaptionDataModule,
) -> None:
    ids = caption_data.catalogue_ids
    # Products 0 and 1 share "Red Shirt" (in two spellings): a query of it finds both.
    texts = {pid: [f"caption {i}"] for i, pid in enumerate(ids)}
    texts[ids[0]] = ["Red Shirt", "first only"]
    texts[ids[1]] = ["red  shirt"]
    del texts[ids[5]]  # no text: stays in the catalogue, gives no pair
    caption_data.set_texts(texts, heldout={ids[0], ids[2]})
    query_ids, queries, truth = caption_data.validation_texts()
    assert query_ids == [f"{ids[0]}/0", f"{ids[0]}/1", f"{ids[2]}/0"]
    assert queries == ["Red Shirt", "first only", "caption 2"]
    assert truth == [[0, 1], [0], [2]]
    assert caption_data.validation_queries().truth == truth
    assert caption_data.catalogue_sections() == {}  # a text query searches every section
    pairs = caption_data.pair_dataset()
    assert 0 not in pairs.rows and 2 not in pairs.rows and 5 not in pairs.rows
    assert len(pairs) == len(ids) - 3
    assert set(caption_data.training_texts()) == {
        t for i, pid in enumerate(ids) if i not in (0, 2, 5) for t in texts[pid]
    }


def test_set_texts_needs_heldout_and_training_products(caption_data: CaptionDataModule) -> None:
    texts = {pid: ["a text"] for pid in caption_data.catalogue_ids}
    with pytest.raises(ValueError, match="held out"):
        caption_data.set_texts(texts, heldout=set())
    with pytest.raises(ValueError, match="held out"):
        caption_data.set_texts(texts, heldout=set(caption_data.catalogue_ids))
    with pytest.raises(ValueError, match="not in the catalogue"):
        caption_data.set_texts(texts, heldout={"no-such-product"})
