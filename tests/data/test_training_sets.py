"""``data.extra_training_sets``: further challenge-format directories mixed into training (a tiny collage
set of fabricated photos, and a set whose ids all collide with the primary's), and the clear error of
every feature that cannot use them."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf, open_dict
from real_photo_tree import write_real_tree
from test_configs import compose_config, job_config
from test_datamodule import make as make_datamodule

from fashion_retrieval.data.caption_pairs import CaptionDataModule
from fashion_retrieval.data.catalogue import load_catalogue
from fashion_retrieval.data.datamodule import ChallengeDataModule
from fashion_retrieval.data.training_sets import parse_extra_training_sets
from fashion_retrieval.pipelines.context import RunContext
from fashion_retrieval.pipelines.detect_train import detect_train
from fashion_retrieval.pipelines.pretrain import challenge_images
from fashion_retrieval.pipelines.train_adapter import adapter_datamodule
from fashion_retrieval.synthetic import SyntheticSpec, generate_dataset
from fashion_retrieval.synthetic.collage import CollageSpec, generate_collage

MICRO = SyntheticSpec(
    seed=5, num_products=40, num_bundles=24, product_image_size=(48, 64), bundle_image_size=(64, 96)
)
OPTION = "data.extra_training_sets"


@pytest.fixture(scope="module")
def sets(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(a micro synthetic set, a tiny collage set of fabricated photos: 8 bundles, 6 for training)."""
    base = tmp_path_factory.mktemp("training_sets")
    generate_dataset(MICRO, base / "synthetic", num_workers=1)
    photos = write_real_tree(base / "photos")
    spec = CollageSpec(
        source=str(photos), seed=0, num_bundles=8, test_fraction=0.25, bundle_image_size=(64, 96)
    )
    generate_collage(spec, base / "collage")
    return base / "synthetic", base / "collage"


def make(data_dir: Path, extra: list[dict], **overrides) -> ChallengeDataModule:
    """test_datamodule's micro data module with ``extra`` as its extra training sets."""
    return make_datamodule(data_dir, **{"seed": 3, "extra_training_sets": extra, **overrides})


def test_the_mixed_set_holds_both_sets_with_their_own_labels(sets, caplog):
    synthetic, collage = sets
    alone = make(synthetic, [])
    with caplog.at_level(logging.INFO):
        mixed = make(synthetic, [{"name": "collage", "data_dir": str(collage)}])
        bundles = mixed.training_bundles()
    primary, catalogue = alone.training_bundles(), load_catalogue(collage)
    extra = bundles[len(primary) :]
    assert bundles[: len(primary)] == primary  # the primary's items are unchanged
    assert len(extra) == len(catalogue.train_bundle_ids) == 6
    assert f"{OPTION}[collage]" in caplog.text and "adds 6 training bundle(s)" in caplog.text
    # Labels: the collage's start after the primary's bundles and products; ids namespaced by label.
    space = mixed.label_space()
    first_product = len(alone.catalogue_ids)
    assert min(b.bundle_label for b in extra) >= len(alone.cat.bundle_ids)
    assert min(p for b in extra for p in b.product_labels) >= first_product
    assert len(space.product_ids) == first_product + len(catalogue.products)
    assert {space.bundle_ids[b.bundle_label] for b in extra} == {
        f"collage/{b}" for b in catalogue.train_bundle_ids
    }
    for b in extra:
        for label, path in zip(b.product_labels, b.product_paths):
            assert space.product_paths[label] == path and Path(path).is_relative_to(collage)
            assert space.product_ids[label].startswith("collage/")
    # Validation and its catalogue stay the primary's.
    assert mixed.catalogue_ids == alone.catalogue_ids
    assert mixed.validation_queries().bundle_ids == alone.validation_queries().bundle_ids
    # A collage item loads, with a same-category negative from the combined product table.
    dataset = mixed.train_dataset()
    item = dataset[(len(primary), 0)]
    assert item["query"].shape == (3, 48, 32) and item["query"].dtype == torch.uint8
    assert item["catalogue"].shape[1:] == (3, 32, 24)
    labels, own = list(item["catalogue_labels"]), set(extra[0].product_labels)
    drawn = min(len(own), 2)
    assert len(labels) == drawn + 1 and set(labels[:drawn]) <= own and labels[drawn] not in own
    negative = labels[drawn]
    assert space.product_categories[negative] in {space.product_categories[p] for p in labels[:drawn]}
    # An epoch draws each item at most once from both sets (the last partial batch is dropped).
    seen = torch.cat([batch["query_label"] for batch in mixed.train_dataloader()]).tolist()
    assert len(seen) == len(set(seen)) == 4 * (len(bundles) // 4)
    assert set(seen) <= {b.bundle_label for b in bundles} and set(seen) & {b.bundle_label for b in extra}


def test_colliding_ids_are_different_products(sets):
    """The primary directory again as an extra set: every id collides, no label does."""
    synthetic, _ = sets
    alone = make(synthetic, [])
    twice = make(synthetic, [{"name": "again", "data_dir": str(synthetic)}])
    primary = alone.training_bundles()
    extra = twice.training_bundles()[len(primary) :]
    catalogue = alone.cat
    # An extra set trains all its training matches: the primary's validation bundles are in its copy.
    assert len(extra) == len(catalogue.train_bundle_ids) > len(primary)
    space = twice.label_space()
    primary_products = {p for b in primary for p in b.product_labels}
    for bundle in extra:
        original = catalogue.bundle_ids[bundle.bundle_label - len(catalogue.bundle_ids)]
        assert space.bundle_ids[bundle.bundle_label] == f"again/{original}"
        own = [catalogue.product_ids[p - len(catalogue.product_ids)] for p in bundle.product_labels]
        assert own == catalogue.products_of([original])[original]
        assert not set(bundle.product_labels) & primary_products
    limited = make(synthetic, [{"name": "again", "data_dir": str(synthetic), "max_bundles": 5}])
    assert len(limited.training_bundles()) == len(primary) + 5


@pytest.mark.parametrize(
    ("entries", "error", "message"),
    [
        ([{"data_dir": "d"}], ValueError, r"\[0\]: missing key\(s\) \['name'\];"),
        ([{"name": "a", "data_dir": "d", "weight": 2}], ValueError, r"\[0\]: unknown key\(s\) \['weight'\];"),
        ([{"name": "../up", "data_dir": "d"}], ValueError, r"\[0\]\.name='../up'"),
        ([{"name": "a", "data_dir": "d"}, {"name": "a", "data_dir": "e"}], ValueError, r"\[1\]\.name='a'"),
        ([{"name": "a", "data_dir": "d", "max_bundles": 0}], ValueError, r"\[0\]\.max_bundles=0:"),
        (["d"], TypeError, r"\[0\]: expected"),
    ],
)
def test_bad_entries_name_the_entry_and_the_field(entries, error, message):
    with pytest.raises(error, match=f"data.extra_training_sets{message}"):
        parse_extra_training_sets(entries)


def test_a_missing_directory_names_the_option(sets, tmp_path):
    synthetic, _ = sets
    module = make(synthetic, [{"name": "collage", "data_dir": str(tmp_path / "absent")}])
    with pytest.raises(FileNotFoundError, match=r"data.extra_training_sets\[0\].data_dir=.*absent.*collage"):
        module.training_bundles()


@pytest.mark.parametrize(
    ("overrides", "what"),
    [
        ({"train_queries": "garments"}, "data.train_queries=garments"),
        ({"mined_negatives": 2}, "data.mined_negatives"),
    ],
)
def test_unsupported_training_options_refuse_extra_sets(sets, overrides, what):
    synthetic, collage = sets
    with pytest.raises(ValueError, match=f"{OPTION} is not supported with {what}"):
        make(synthetic, [{"name": "collage", "data_dir": str(collage)}], **overrides)


def test_the_index_miner_and_train_text_refuse_extra_sets(sets):
    synthetic, collage = sets
    extra = [{"name": "collage", "data_dir": str(collage)}]
    with pytest.raises(ValueError, match=f"{OPTION} is not supported with the index miner"):
        make(synthetic, extra).mining_targets()
    with pytest.raises(ValueError, match=f"{OPTION} is not supported with train-text"):
        CaptionDataModule(str(synthetic), extra_training_sets=extra)


def test_stages_that_train_on_the_primary_only_refuse_extra_sets(sets, tmp_path):
    synthetic, collage = sets
    cfg = job_config(["experiment=tiny", f"paths.data_dir={synthetic}"], output_dir=str(tmp_path))
    with open_dict(cfg):
        cfg.data.extra_training_sets = [{"name": "collage", "data_dir": str(collage)}]
    for call, what in (
        (lambda: challenge_images(cfg, ["bundles"]), r"pretrain.images=\['bundles'\]"),
        (lambda: adapter_datamodule(cfg, None), "train-adapter"),  # adapter.image_size: no encoder read
        (lambda: detect_train(cfg, RunContext(output_dir=tmp_path)), "detect-train"),
    ):
        with pytest.raises(ValueError, match=f"{OPTION} is not supported with {what}"):
            call()


def test_the_in_domain_arm_is_the_baseline_plus_the_collage_set():
    """``recipes/in_domain_collage`` changes one thing from ``recipes/baseline``: the extra training set."""
    arm = OmegaConf.to_container(compose_config(["experiment=recipes/in_domain_collage"]), resolve=False)
    base = OmegaConf.to_container(compose_config(["experiment=recipes/baseline"]), resolve=False)
    for cfg in (arm, base):
        del cfg["hydra"]
    extra = arm["data"].pop("extra_training_sets")
    assert base["data"].pop("extra_training_sets") == []
    assert extra == [{"name": "collage", "data_dir": "${paths.collage_train_dir}", "max_bundles": None}]
    assert arm["paths"].pop("collage_train_dir").endswith("data/clothing_collage_seed0")
    assert arm.pop("run_name") == "recipes/in_domain_collage" and base.pop("run_name") == "recipes/baseline"
    assert arm == base
