"""Product text of the synthetic data: colour names, attributes and captions, written with the dataset or
added afterwards to an existing one."""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hydra.utils import instantiate
from test_synthetic import MICRO

from fashion_retrieval.data.captions import load_attributes, load_captions
from fashion_retrieval.data.catalogue import load_catalogue
from fashion_retrieval.synthetic import generate_dataset
from fashion_retrieval.synthetic.captions import (
    CAPTIONS_PER_PRODUCT,
    CATEGORY_NOUNS,
    COLOUR_GROUPS,
    Attributes,
    add_captions,
    article_attributes,
    catalogue_text,
    colour_group,
    product_captions,
    srgb_to_lab,
)
from fashion_retrieval.synthetic.catalogue import spec_layout
from fashion_retrieval.synthetic.palette import COLOURS
from fashion_retrieval.synthetic.rng import Domain, item_rng

TEXT_FILES = ("product_attributes.csv", "product_captions.csv")
# sha1 of MICRO's challenge files as generator 1.3.0 wrote them (before the text files existed): adding the
# text must leave every one of them byte-identical.
CSV_SHA1_1_3_0 = {
    "bundle_garment_boxes.csv": "d126fcb3d5d0dddd5e6ea3b16c826ca9fc77097b",
    "bundles_dataset.csv": "870533a3ea429bf5066303110b67b365ebd57331",
    "bundles_product_match_test.csv": "d93b8f9b12b6f038b9f2b5f2e3160851246d2975",
    "bundles_product_match_test_truth.csv": "f2ce9f59d5ad98a0bb892407e1d21b66abc6eea4",
    "bundles_product_match_train.csv": "033102e19002e73a3be6200bdba0128797e43806",
    "product_articles.csv": "0fb765d34d5d0a73611d0a311cd941ecef99c382",
    "product_dataset.csv": "2ee17c86bd04f4a25f521730566fc85403adc3ac",
}


@pytest.fixture(scope="module")
def micro(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("micro")
    generate_dataset(MICRO, out, num_workers=1)
    return out


def _layout(spec=MICRO):
    return spec_layout(spec)


def test_srgb_to_lab_reference_values() -> None:
    lab = srgb_to_lab(np.array([[255, 255, 255], [0, 0, 0], [255, 0, 0], [128, 128, 128]]))
    # CIE reference values (D65): white L=100, red (53.24, 80.09, 67.20), mid grey L=53.59.
    np.testing.assert_allclose(lab[0], [100.0, 0.0, 0.0], atol=0.05)
    np.testing.assert_allclose(lab[1], [0.0, 0.0, 0.0], atol=1e-9)
    np.testing.assert_allclose(lab[2], [53.24, 80.09, 67.20], atol=0.05)
    np.testing.assert_allclose(lab[3], [53.59, 0.0, 0.0], atol=0.05)


def test_colour_groups_name_the_palette_sensibly() -> None:
    for name, references in COLOUR_GROUPS.items():
        assert all(colour_group(rgb) == name for rgb in references)
    expected = {
        "navy": "navy",
        "bottle green": "green",
        "olive": "green",
        "burgundy": "red",
        "fuchsia": "pink",
        "lilac": "purple",
        "light denim": "blue",
        "mid denim": "blue",
        "charcoal": "grey",
        "camel": "brown",
        "sand": "beige",
        "mustard": "yellow",
        "rust": "orange",
    }
    assert {name: colour_group(COLOURS[name]) for name in expected} == expected
    assert set(colour_group(rgb) for rgb in COLOURS.values()) == set(COLOUR_GROUPS)  # every name is used


def test_attributes_describe_the_article() -> None:
    layout = _layout(replace(MICRO, num_products=400))
    attributes, captions = catalogue_text(MICRO.seed, layout)
    for index in range(layout.num_products):
        item, variant = layout.product_article(MICRO.seed, index)
        a = attributes[index]
        assert a.colour == item.variants[variant].name and a.category == item.category_info.name
        assert len(captions[index]) == CAPTIONS_PER_PRODUCT == len(set(captions[index]))
        for caption in captions[index]:
            assert a.noun in caption and (a.colour in caption or a.colour_group in caption)
    # Variants of one article differ in colour only.
    by_article: dict[int, set[tuple]] = {}
    for index, a in enumerate(attributes):
        by_article.setdefault(int(layout.article[index]), set()).add((a.noun, a.pattern, a.details))
    assert all(len(shapes) == 1 for shapes in by_article.values())
    assert len({a.pattern for a in attributes}) > 3 and any("long-sleeved" in a.details for a in attributes)


def test_captions_are_deterministic_and_vary_by_product() -> None:
    a = Attributes("SHIRT", "shirt", "bottle green", "green", "striped", ("long-sleeved",))
    first = product_captions(a, item_rng(0, Domain.CAPTION, 5))
    assert first == product_captions(a, item_rng(0, Domain.CAPTION, 5))
    draws = {tuple(product_captions(a, item_rng(0, Domain.CAPTION, i))) for i in range(30)}
    assert len(draws) > 1  # the template choice differs between products
    item, variant = _layout().product_article(MICRO.seed, 0)
    assert article_attributes(item, variant) == article_attributes(item, variant)


def test_generation_writes_the_text_and_leaves_the_challenge_files_byte_identical(micro: Path) -> None:
    digests = {name: hashlib.sha1((micro / name).read_bytes()).hexdigest() for name in CSV_SHA1_1_3_0}
    assert digests == CSV_SHA1_1_3_0
    catalogue = load_catalogue(micro)
    captions = load_captions(micro, catalogue.product_ids)
    attributes = load_attributes(micro, catalogue.product_ids)
    assert captions is not None and attributes is not None
    assert list(captions) == catalogue.product_ids
    assert sum(map(len, captions.values())) == CAPTIONS_PER_PRODUCT * MICRO.num_products
    assert list(attributes["category"]) == [CATEGORY_NOUNS[c] for c in catalogue.product_categories]
    files = json.loads((micro / "metadata.json").read_text())["files"]
    assert files["product_captions"] == "product_captions.csv"


def _as_1_3_0(src: Path, dst: Path) -> Path:
    """A copy of ``src`` as generator 1.3.0 left it: no text files, its version and file list."""
    shutil.copytree(src, dst)
    for name in TEXT_FILES:
        (dst / name).unlink()
    metadata = json.loads((dst / "metadata.json").read_text())
    metadata["generator_version"] = "1.3.0"
    for key in ("product_attributes", "product_captions"):
        del metadata["files"][key]
    (dst / "metadata.json").write_text(json.dumps(metadata))
    return dst


def test_captions_added_afterwards_equal_a_fresh_generation(micro: Path, tmp_path: Path) -> None:
    old = _as_1_3_0(micro, tmp_path / "old")
    assert add_captions(MICRO, old) == CAPTIONS_PER_PRODUCT * MICRO.num_products
    for name in TEXT_FILES:
        assert (old / name).read_bytes() == (micro / name).read_bytes()
    metadata = json.loads((old / "metadata.json").read_text())
    fresh = json.loads((micro / "metadata.json").read_text())
    assert metadata.pop("captions_added_to") == "1.3.0"
    assert metadata == fresh


def test_adding_captions_refuses_what_it_cannot_reproduce(micro: Path, tmp_path: Path) -> None:
    old = _as_1_3_0(micro, tmp_path / "old")
    with pytest.raises(ValueError, match=r"spec differs from the configured one in \['seed'\]"):
        add_captions(replace(MICRO, seed=MICRO.seed + 1), old)
    metadata = json.loads((old / "metadata.json").read_text())
    (old / "metadata.json").write_text(json.dumps({**metadata, "generator_version": "1.1.0"}))
    with pytest.raises(
        ValueError, match=r"written by fashion_retrieval.synthetic 1.1.0; captions can be added"
    ):
        add_captions(MICRO, old)
    (old / "metadata.json").write_text(json.dumps(metadata))
    products = (old / "product_dataset.csv").read_text().replace(",TROUSERS", ",SHIRT")
    (old / "product_dataset.csv").write_text(products)
    with pytest.raises(ValueError, match=r"product_dataset.csv: its products are not the ones this spec"):
        add_captions(MICRO, old)
    assert not any((old / name).exists() for name in TEXT_FILES)  # nothing written on refusal


@pytest.mark.parametrize("captions_only", [True, False])
def test_the_generate_stage_adds_the_text_to_an_older_dataset(
    tiny_data: Path, tmp_path: Path, captions_only: bool
) -> None:
    """With ``generate.captions_only=true``, or by itself when a 1.3.0 dataset of the spec is there."""
    from test_configs import compose_config

    from fashion_retrieval.pipelines.context import RunContext
    from fashion_retrieval.pipelines.generate import generate, same_dataset_exists

    data_dir = _as_1_3_0(tiny_data, tmp_path / "data")
    images = sorted((data_dir / "images/products").iterdir())
    for image in images:  # no image is rendered: an empty file stays empty
        image.write_bytes(b"")
    overrides = ["experiment=tiny", f"paths.data_dir={data_dir}", f"generate.captions_only={captions_only}"]
    cfg = compose_config(overrides)
    generate(cfg, RunContext(output_dir=tmp_path))
    for name in TEXT_FILES:
        assert (data_dir / name).read_bytes() == (tiny_data / name).read_bytes()
    assert all(image.stat().st_size == 0 for image in images)
    assert same_dataset_exists(instantiate(cfg.synthetic), data_dir)


def test_the_generate_stage_regenerates_an_older_dataset_it_cannot_add_text_to(
    tiny_data: Path, tmp_path: Path
) -> None:
    from test_configs import compose_config

    from fashion_retrieval.pipelines.context import RunContext
    from fashion_retrieval.pipelines.generate import generate

    data_dir = _as_1_3_0(tiny_data, tmp_path / "data")
    products = data_dir / "product_dataset.csv"
    products.write_text(products.read_text().replace(",TROUSERS", ",SHIRT"))  # not this spec's catalogue
    cfg = compose_config(["experiment=tiny", f"paths.data_dir={data_dir}", "generate.num_workers=1"])
    generate(cfg, RunContext(output_dir=tmp_path))
    for name in ("product_dataset.csv", *TEXT_FILES):
        assert (data_dir / name).read_bytes() == (tiny_data / name).read_bytes()
