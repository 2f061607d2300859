import numpy as np
import pytest
import torch

from fashion_retrieval.features.datamodule import EpochShuffledBatches, FeatureDataModule, padded_products


def small_module(**kwargs):
    rng = np.random.default_rng(0)
    queries = rng.normal(size=(6, 4)).astype(np.float32)
    catalogue = rng.normal(size=(5, 4)).astype(np.float32)
    pairs = [(0, 1), (1, 2), (1, 3), (2, 0), (3, 4), (4, 4), (0, 1)]
    return FeatureDataModule(
        queries,
        pairs,
        catalogue,
        val_queries=[5, 2],
        val_truth=[[0, 4], [0]],
        catalogue_sections=[1, 1, 2, -1, 2],
        **kwargs,
    )


def test_padded_products_lists_each_querys_distinct_products():
    pairs = torch.tensor([[1, 3], [1, 2], [0, 4], [1, 3]])
    assert padded_products(pairs, 3).tolist() == [[4, -1], [2, 3], [-1, -1]]


def test_training_batches_carry_features_and_every_product_of_the_query():
    module = small_module(batch_size=3, seed=1)
    batches = list(module.train_dataloader())
    assert [len(b["catalogue_label"]) for b in batches] == [3, 3, 1]
    seen = torch.cat([torch.stack([b["query_row"], b["catalogue_label"]], 1) for b in batches])
    assert sorted(map(tuple, seen.tolist())) == sorted(map(tuple, module.train_pairs.tolist()))
    for batch in batches:
        assert torch.equal(batch["query"], module.query_features[batch["query_row"]])
        assert torch.equal(batch["catalogue"], module.catalogue_features[batch["catalogue_label"]])
        for row, products in zip(batch["query_row"].tolist(), batch["query_products"].tolist()):
            expected = sorted({p for q, p in module.train_pairs.tolist() if q == row})
            assert [p for p in products if p >= 0] == expected
    assert batches[0]["query"].dtype == torch.float32


def test_with_images_training_batches_carry_the_rows_images_in_the_same_order():
    query_images = torch.randint(0, 256, (6, 3, 4, 3), dtype=torch.uint8)
    catalogue_images = torch.randint(0, 256, (5, 3, 4, 3), dtype=torch.uint8)
    images = small_module(
        batch_size=3, seed=1, query_images=query_images, catalogue_images=catalogue_images
    ).train_dataloader()
    for plain, batch in zip(small_module(batch_size=3, seed=1).train_dataloader(), images, strict=True):
        assert "query" not in batch and "catalogue" not in batch
        assert torch.equal(batch["query_row"], plain["query_row"])
        assert torch.equal(batch["catalogue_label"], plain["catalogue_label"])
        assert torch.equal(batch["query_products"], plain["query_products"])
        assert torch.equal(batch["query_image"], query_images[plain["query_row"]])
        assert torch.equal(batch["catalogue_image"], catalogue_images[plain["catalogue_label"]])


def test_images_go_together_and_match_the_rows():
    with pytest.raises(ValueError, match="go together"):
        small_module(query_images=torch.zeros(6, 3, 2, 2, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"catalogue_images must have shape \(5, 3, H, W\)"):
        small_module(
            query_images=torch.zeros(6, 3, 2, 2, dtype=torch.uint8),
            catalogue_images=torch.zeros(4, 3, 2, 2, dtype=torch.uint8),
        )


def test_order_is_a_function_of_seed_and_epoch():
    sampler = EpochShuffledBatches(10, 4, seed=3)
    first = list(sampler)
    assert list(sampler) == first
    sampler.set_epoch(1)
    assert list(sampler) != first
    sampler.set_epoch(0)
    assert list(sampler) == first
    assert (
        len(EpochShuffledBatches(10, 4, drop_last=True)) == 2
        and len(list(EpochShuffledBatches(10, 4, drop_last=True))) == 2
    )


def test_validation_batches_and_sections():
    module = small_module(eval_batch_size=1)
    batches = list(module.val_dataloader())
    assert [b["index"].tolist() for b in batches] == [[0], [1]]
    assert torch.equal(batches[0]["query"][0], module.query_features[5])
    query_sections, catalogue_sections = module.validation_sections()
    assert query_sections.tolist() == [0, 0] and catalogue_sections.tolist() == [1, 1, 2, -1, 2]
    assert module.val_truth == [[0, 4], [0]] and module.feature_dim == 4


@pytest.mark.parametrize(
    "change, message",
    [
        ({"train_pairs": [(0, 9)]}, "train_pairs row 0 holds 9"),
        ({"train_pairs": [(7, 0)]}, "train_pairs row 0 holds 7"),
        ({"val_truth": [[0], [8]]}, r"val_truth\[1\]"),
        ({"val_truth": [[0]]}, "1 lists for 2"),
        ({"catalogue_features": np.zeros((5, 3))}, "4-d but catalogue_features 3-d"),
        ({"query_features": np.full((6, 4), np.nan)}, "query_features row 0 is not finite"),
        ({"catalogue_sections": [1, 2]}, "catalogue_sections must have shape"),
    ],
)
def test_errors_name_the_field_and_row(change, message):
    arguments = {
        "query_features": np.zeros((6, 4)),
        "train_pairs": [(0, 1)],
        "catalogue_features": np.zeros((5, 4)),
        "val_queries": [5, 2],
        "val_truth": [[0], [1]],
        **change,
    }
    with pytest.raises(ValueError, match=message):
        FeatureDataModule(**arguments)


def test_from_cache_maps_ids_to_rows(monkeypatch, tmp_path):
    from fashion_retrieval.features import datamodule

    caches = {
        str(tmp_path / "queries"): (np.eye(3, 4, dtype=np.float32), ["q0", "q1", "q2"]),
        str(tmp_path / "catalogue"): (np.eye(2, 4, dtype=np.float32), ["p0", "p1"]),
    }
    monkeypatch.setattr(datamodule, "load_features", lambda directory: caches[str(directory)])
    module = FeatureDataModule.from_cache(
        tmp_path / "queries",
        tmp_path / "catalogue",
        train_pairs=[("q0", "p1"), ("q1", "p0")],
        val_truth={"q2": ["p1", "p0"]},
        product_sections={"p1": 2},
        batch_size=8,
    )
    assert module.train_pairs.tolist() == [[0, 1], [1, 0]]
    assert module.val_queries.tolist() == [2] and module.val_truth == [[1, 0]]
    assert module.catalogue_sections.tolist() == [-1, 2] and module.batch_size == 8
    assert module.product_ids == ["p0", "p1"]
    with pytest.raises(KeyError, match="product id 'p9'"):
        FeatureDataModule.from_cache(
            tmp_path / "queries", tmp_path / "catalogue", [("q0", "p9")], {"q2": ["p0"]}
        )
