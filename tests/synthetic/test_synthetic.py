"""The synthetic generator writes the challenge's exact on-disk format, deterministically and safely."""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections import Counter, defaultdict
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fashion_retrieval.data.catalogue import resolve_image_path
from fashion_retrieval.pipelines.generate import same_dataset_exists
from fashion_retrieval.synthetic import GenerationReport, SyntheticSpec, generate_dataset
from fashion_retrieval.synthetic import generator as generator_module
from fashion_retrieval.synthetic.catalogue import build_layout
from fashion_retrieval.synthetic.generator import scene_config
from fashion_retrieval.synthetic.palette import luminance
from fashion_retrieval.synthetic.scene import render_packshot
from fashion_retrieval.synthetic.taxonomy import CATEGORIES

REPO = Path(__file__).resolve().parents[2]
TINY = SyntheticSpec(
    seed=7,
    num_products=120,
    num_bundles=80,
    product_image_size=(96, 128),
    bundle_image_size=(128, 192),
)
MICRO = replace(TINY, num_products=30, num_bundles=12)
CSV_FILES = (
    "product_dataset.csv",
    "product_articles.csv",
    "product_attributes.csv",
    "product_captions.csv",
    "bundles_dataset.csv",
    "bundles_product_match_train.csv",
    "bundles_product_match_test.csv",
    "bundles_product_match_test_truth.csv",
    "bundle_garment_boxes.csv",
)
PRODUCT_ID = re.compile(r"^I_[0-9a-f]{12}$")
BUNDLE_ID = re.compile(r"^B_[0-9a-f]{12}$")
# The real data's Inditex asset URLs: hash folders, then <11-digit code>-<view>/<same>.jpg?ts=<ms>&w=...
_ASSET = r"^https://static\.zara\.net/assets/public/[0-9a-f]{4}/[0-9a-f]{4}/[0-9a-f]{12}/[0-9a-f]{12}/"
PRODUCT_URL = re.compile(_ASSET + r"(\d{11})-p/\1-p\.jpg\?ts=\d{13}&w=750$")
BUNDLE_URL = re.compile(_ASSET + r"(\d{11})-e1/\1-e1\.jpg\?ts=\d{13}&w=750$")


def _read(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    return rows[0], rows[1:]


def _tree_digest(root: Path) -> dict[str, str]:
    """sha1 of every file under ``root`` by relative path."""
    return {
        str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, GenerationReport]:
    out = tmp_path_factory.mktemp("tiny")
    return out, generate_dataset(TINY, out, num_workers=1)


def _matches(root: Path) -> dict[str, list[str]]:
    """bundle -> products over the train file and the hidden test truth."""
    result: dict[str, list[str]] = defaultdict(list)
    for name in ("bundles_product_match_train.csv", "bundles_product_match_test_truth.csv"):
        for bundle, product in _read(root / name)[1]:
            result[bundle].append(product)
    return result


def test_same_output_for_any_number_of_workers(tiny: tuple[Path, GenerationReport], tmp_path: Path) -> None:
    root, _ = tiny
    generate_dataset(TINY, tmp_path, num_workers=2)
    assert _tree_digest(tmp_path) == _tree_digest(root)  # CSVs, metadata and every JPEG byte-identical


def test_seed_changes_the_catalogue() -> None:
    a = build_layout(1, 200, TINY.section_weights, TINY.variants_per_article, 0.4)
    b = build_layout(2, 200, TINY.section_weights, TINY.variants_per_article, 0.4)
    assert a.product_ids != b.product_ids
    assert not np.array_equal(a.category, b.category)


def test_exact_headers_ids_and_urls(tiny: tuple[Path, GenerationReport]) -> None:
    root, report = tiny
    header, products = _read(root / "product_dataset.csv")
    assert header == ["product_asset_id", "product_image_url", "product_description"]
    assert len(products) == report.num_products == TINY.num_products
    names = {c.name for c in CATEGORIES}
    for product_id, url, description in products:
        assert PRODUCT_ID.match(product_id)
        assert PRODUCT_URL.match(url), url
        assert description in names
    assert len({row[0] for row in products}) == len(products)
    header, bundles = _read(root / "bundles_dataset.csv")
    assert header == ["bundle_asset_id", "bundle_id_section", "bundle_image_url"]
    assert len(bundles) == TINY.num_bundles
    for bundle_id, section, url in bundles:
        assert BUNDLE_ID.match(bundle_id)
        assert section in {"1", "2", "3"}
        assert BUNDLE_URL.match(url), url
    for name in ("bundles_product_match_train.csv", "bundles_product_match_test.csv"):
        assert _read(root / name)[0] == ["bundle_asset_id", "product_asset_id"]
    assert _read(root / "bundles_product_match_test_truth.csv")[0] == ["bundle_asset_id", "product_asset_id"]
    assert _read(root / "bundle_garment_boxes.csv")[0] == [
        "bundle_asset_id",
        "product_asset_id",
        "product_description",
        "x1",
        "y1",
        "x2",
        "y2",
        "visible_fraction",
    ]


def test_split_test_file_and_truth(tiny: tuple[Path, GenerationReport]) -> None:
    root, report = tiny
    lines = (root / "bundles_product_match_test.csv").read_text().splitlines()
    test_ids = [line.split(",")[0] for line in lines[1:]]
    assert all(re.fullmatch(r"B_[0-9a-f]{12},", line) for line in lines[1:])  # empty product column
    assert len(test_ids) == len(set(test_ids)) == report.num_test_bundles == round(0.2 * TINY.num_bundles)
    truth = {row[0] for row in _read(root / "bundles_product_match_test_truth.csv")[1]}
    train = {row[0] for row in _read(root / "bundles_product_match_train.csv")[1]}
    all_bundles = {row[0] for row in _read(root / "bundles_dataset.csv")[1]}
    assert truth == set(test_ids)
    assert not train & truth
    assert train | truth == all_bundles
    assert report.num_train_bundles + report.num_test_bundles == TINY.num_bundles


def test_sections_never_crossed_and_bundle_sizes(tiny: tuple[Path, GenerationReport]) -> None:
    root, _ = tiny
    section = {row[0]: row[1] for row in _read(root / "bundles_dataset.csv")[1]}
    product_sections: dict[str, set[str]] = defaultdict(set)
    matches = _matches(root)
    for bundle, products in matches.items():
        assert 1 <= len(products) <= 11
        assert len(products) == len(set(products))
        for product in products:
            product_sections[product].add(section[bundle])
    assert all(len(s) == 1 for s in product_sections.values())
    sizes = Counter(len(p) for p in matches.values())
    # The real skew: 2-4 products the bulk (80 bundles are too few to insist on the mode).
    assert sum(sizes[k] for k in (2, 3, 4)) >= 0.5 * len(matches)


def test_boxes_match_pairs_and_lie_in_the_image(tiny: tuple[Path, GenerationReport]) -> None:
    root, _ = tiny
    width, height = TINY.bundle_image_size
    descriptions = {row[0]: row[2] for row in _read(root / "product_dataset.csv")[1]}
    boxes = _read(root / "bundle_garment_boxes.csv")[1]
    pairs = {(b, p) for b, products in _matches(root).items() for p in products}
    assert {(row[0], row[1]) for row in boxes} == pairs
    assert len(boxes) == len(pairs)
    boxes_per_bundle = Counter(row[0] for row in boxes)
    for bundle, product, description, x1, y1, x2, y2, visible in boxes:
        assert description == descriptions[product]
        assert 0 <= int(x1) < int(x2) <= width and 0 <= int(y1) < int(y2) <= height
        # A bundle whose listed products are all hidden keeps its most visible one (never empty).
        low = TINY.min_visible_fraction if boxes_per_bundle[bundle] > 1 else 0.0
        assert low <= float(visible) <= 1.0


def test_distractors_and_metadata(tiny: tuple[Path, GenerationReport]) -> None:
    root, report = tiny
    used = {p for products in _matches(root).values() for p in products}
    all_products = [row[0] for row in _read(root / "product_dataset.csv")[1]]
    distractors = len(all_products) - len(used)
    assert distractors >= TINY.distractor_fraction * len(all_products) * 0.8
    meta = json.loads((root / "metadata.json").read_text())
    assert meta["spec"] == json.loads(json.dumps(asdict(TINY)))  # what the generate pipeline compares
    assert meta["seed"] == TINY.seed and meta["generator_version"]
    counts = meta["counts"]
    assert counts["distractor_products"] == distractors == report.num_distractor_products
    assert counts["products"] == TINY.num_products and counts["bundles"] == TINY.num_bundles
    assert (
        counts["train_pairs"]
        == len(_read(root / "bundles_product_match_train.csv")[1])
        == report.num_train_pairs
    )
    assert sum(meta["category_histogram"].values()) == TINY.num_products


def test_articles_file_groups_the_colour_variants(tiny: tuple[Path, GenerationReport]) -> None:
    root, _ = tiny
    header, rows = _read(root / "product_articles.csv")
    assert header == ["product_asset_id", "article_id"]
    products = [row[0] for row in _read(root / "product_dataset.csv")[1]]
    assert [row[0] for row in rows] == products  # one row per product, catalogue order
    layout = build_layout(
        TINY.seed,
        TINY.num_products,
        TINY.section_weights,
        TINY.variants_per_article,
        TINY.distractor_fraction,
    )
    article_of = dict(rows)
    groups: dict[str, set[str]] = defaultdict(set)
    truth: dict[int, set[str]] = defaultdict(set)
    for index, product in enumerate(products):
        groups[article_of[product]].add(product)
        truth[int(layout.article[index])].add(product)
    # The file's articles are exactly the generator's colour-variant groups.
    assert sorted(map(sorted, groups.values())) == sorted(map(sorted, truth.values()))
    assert len(groups) < len(products)
    assert all(re.fullmatch(r"A_[0-9a-f]{12}", article) for article in groups)
    meta = json.loads((root / "metadata.json").read_text())
    assert meta["files"]["product_articles"] == "product_articles.csv"


def test_a_dataset_of_an_older_generator_is_regenerated(tmp_path: Path) -> None:
    generate_dataset(MICRO, tmp_path)
    current = _tree_digest(tmp_path)
    metadata = json.loads((tmp_path / "metadata.json").read_text())
    metadata["generator_version"] = "1.0.0"
    (tmp_path / "metadata.json").write_text(json.dumps(metadata))
    (tmp_path / "product_articles.csv").unlink()  # what 1.0.0 did not write
    (tmp_path / "notes.txt").write_text("kept")
    assert not same_dataset_exists(MICRO, tmp_path)  # the generate pipeline sees it as stale
    generate_dataset(MICRO, tmp_path)  # same spec: replaced without overwrite=True
    (tmp_path / "notes.txt").unlink()
    assert _tree_digest(tmp_path) == current
    assert same_dataset_exists(MICRO, tmp_path)


def test_category_skew_of_a_large_catalogue() -> None:
    layout = build_layout(0, 20_000, (0.5, 0.3, 0.2), (1, 4), 0.4)
    counts = Counter(CATEGORIES[int(c)].name for c in layout.category)
    assert len(counts) >= 20
    assert {name for name, _ in counts.most_common(3)} == {"TROUSERS", "SHIRT", "T-SHIRT"}
    assert counts.most_common()[-1][1] < counts["TROUSERS"] / 10  # long tail
    sections = {(int(s), CATEGORIES[int(c)].name) for s, c in zip(layout.section, layout.category)}
    assert (2, "DRESS") not in sections and (2, "BRA") not in sections  # the taxonomy's section mix


def test_colour_variants_share_the_silhouette() -> None:
    layout = build_layout(TINY.seed, 400, TINY.section_weights, (2, 4), 0.0)
    cfg = scene_config(TINY)
    by_article: dict[int, list[int]] = defaultdict(list)
    for product, article in enumerate(layout.article):
        by_article[int(article)].append(product)
    checked = 0
    for products in by_article.values():
        if len(products) < 2:
            continue
        a, va = layout.product_article(TINY.seed, products[0])
        b, vb = layout.product_article(TINY.seed, products[1])
        assert a is b and va != vb  # same article: same shape, pattern and texture parameters
        assert a.variants[va].base != b.variants[vb].base
        if max(luminance(a.variants[va].base), luminance(b.variants[vb].base)) > 190:
            continue  # a light garment on the light background: its mask is not measurable by threshold
        img_a = render_packshot(a, va, cfg, products[0]).astype(np.float32)
        img_b = render_packshot(b, vb, cfg, products[1]).astype(np.float32)
        # Foreground = far from the light background; silhouettes of the two colours nearly coincide.
        fg_a = np.abs(img_a - img_a[2, 2]).max(axis=2) > 30
        fg_b = np.abs(img_b - img_b[2, 2]).max(axis=2) > 30
        iou = (fg_a & fg_b).sum() / (fg_a | fg_b).sum()
        assert iou > 0.8, (CATEGORIES[a.category].name, iou)
        checked += 1
        if checked == 8:
            break
    assert checked >= 3


def test_images_exist_open_and_have_the_spec_size(tiny: tuple[Path, GenerationReport]) -> None:
    root, _ = tiny
    for product_id, url, _ in _read(root / "product_dataset.csv")[1]:
        with Image.open(resolve_image_path(root, url, "products", product_id)) as image:
            assert image.format == "JPEG" and image.size == TINY.product_image_size
            image.load()
    for bundle_id, _, url in _read(root / "bundles_dataset.csv")[1]:
        with Image.open(resolve_image_path(root, url, "bundles", bundle_id)) as image:
            assert image.format == "JPEG" and image.size == TINY.bundle_image_size
            image.load()
    assert len(list((root / "images" / "products").iterdir())) == TINY.num_products
    assert len(list((root / "images" / "bundles").iterdir())) == TINY.num_bundles


def test_no_temporary_files_left(tiny: tuple[Path, GenerationReport]) -> None:
    root, _ = tiny
    leftovers = [p for p in root.rglob("*") if p.name.startswith(".")]
    assert leftovers == []
    expected = {*CSV_FILES, "metadata.json", "images"}
    assert {p.name for p in root.iterdir()} == expected


def test_refuses_a_directory_with_other_content(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=re.escape(str(tmp_path))):
        generate_dataset(MICRO, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_refuses_a_different_dataset_unless_overwrite(tmp_path: Path) -> None:
    generate_dataset(MICRO, tmp_path)
    first = _tree_digest(tmp_path)
    generate_dataset(MICRO, tmp_path)  # the same dataset may be rewritten in place
    assert _tree_digest(tmp_path) == first
    other = replace(MICRO, seed=MICRO.seed + 1)
    with pytest.raises(FileExistsError, match="different synthetic dataset"):
        generate_dataset(other, tmp_path)
    assert _tree_digest(tmp_path) == first
    (tmp_path / "notes.txt").write_text("kept")
    generate_dataset(other, tmp_path, overwrite=True)
    assert json.loads((tmp_path / "metadata.json").read_text())["seed"] == other.seed
    assert (tmp_path / "notes.txt").read_text() == "kept"  # overwrite only removes the dataset's own files
    products = {row[0] for row in _read(tmp_path / "product_dataset.csv")[1]}
    on_disk = {p.stem for p in (tmp_path / "images" / "products").iterdir()}
    assert on_disk == products  # no stale images of the previous dataset


def test_an_interrupted_run_leaves_no_partial_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = generator_module.render_bundle

    def failing(plan, layout, cfg):  # same signature as render_bundle
        if plan.index == 5:
            raise KeyboardInterrupt
        return real(plan, layout, cfg)

    monkeypatch.setattr(generator_module, "render_bundle", failing)
    with pytest.raises(KeyboardInterrupt):
        generate_dataset(MICRO, tmp_path)
    assert not any((tmp_path / name).exists() for name in (*CSV_FILES, "metadata.json"))
    assert not [p for p in tmp_path.rglob("*.tmp")]
    for image in tmp_path.rglob("*.jpg"):  # every image that exists is complete
        with Image.open(image) as opened:
            opened.load()
    monkeypatch.setattr(generator_module, "render_bundle", real)
    generate_dataset(MICRO, tmp_path)  # the same spec resumes without overwrite
    assert (tmp_path / "metadata.json").is_file()
    assert not (tmp_path / ".synthetic_in_progress.json").exists()


def test_spec_accepts_lists_and_validates() -> None:
    spec = SyntheticSpec(product_image_size=[64, 96], bundle_size_weights=[1, 2, 3])  # type: ignore[arg-type]
    assert spec.product_image_size == (64, 96) and spec.bundle_size_weights == (1.0, 2.0, 3.0)
    with pytest.raises(ValueError, match="test_fraction"):
        SyntheticSpec(test_fraction=1.5)
    with pytest.raises(ValueError, match="bundle_size_weights"):
        SyntheticSpec(bundle_size_weights=tuple([1.0] * 12))


@pytest.mark.parametrize("name", ["tiny", "quickstart", "large"])
def test_hydra_configs_instantiate(name: str) -> None:
    omegaconf = pytest.importorskip("omegaconf")
    instantiate = pytest.importorskip("hydra.utils").instantiate
    spec = instantiate(omegaconf.OmegaConf.load(REPO / "conf" / "synthetic" / f"{name}.yaml"))
    assert isinstance(spec, SyntheticSpec)
    assert isinstance(spec.product_image_size, tuple) and isinstance(spec.bundle_size_weights, tuple)
    sizes = {"tiny": (120, 80), "quickstart": (2000, 1500), "large": (100_000, 30_000)}[name]
    assert (spec.num_products, spec.num_bundles) == sizes
    assert json.loads(json.dumps(asdict(spec)))["product_image_size"] == list(spec.product_image_size)


def test_the_challenge_reader_accepts_the_output(tiny: tuple[Path, GenerationReport]) -> None:
    catalogue = pytest.importorskip("fashion_retrieval.data.catalogue")
    root, report = tiny
    loaded = catalogue.load_catalogue(root, image_check="decode")
    assert len(loaded.products) == report.num_products
    assert len(loaded.test_bundle_ids) == report.num_test_bundles


def test_difficulty_check_runs(tiny: tuple[Path, GenerationReport]) -> None:
    from fashion_retrieval.synthetic.difficulty import difficulty

    root, report = tiny
    figures = difficulty(root)
    assert figures["test_bundles"] == report.num_test_bundles
    for name in ("random_recall@15", "colour_histogram_recall@15", "gt_crop_top1", "gt_crop_top15"):
        assert 0.0 <= figures[name] <= 1.0


def test_urls_carry_article_codes_and_timestamps(tiny: tuple[Path, GenerationReport]) -> None:
    from fashion_retrieval.data.catalogue import load_catalogue

    root, _ = tiny
    loaded = load_catalogue(root)
    codes, product_ts = loaded.product_codes(), loaded.product_timestamps()
    assert all(code is not None and re.fullmatch(r"\d{11}", code) for code in codes)
    assert len(set(codes)) == len(codes) and not np.isnan(product_ts).any()
    # Colour variants (product_articles.csv) share exactly the first 8 digits.
    article_of = dict(_read(root / "product_articles.csv")[1])
    prefix_of_article: dict[str, set[str]] = defaultdict(set)
    for product, code in zip(loaded.products["product_asset_id"], codes):
        prefix_of_article[article_of[product]].add(code[:8])
    assert all(len(prefixes) == 1 for prefixes in prefix_of_article.values())
    assert len({next(iter(p)) for p in prefix_of_article.values()}) == len(prefix_of_article)
    # Each bundle URL names one of its own visible products' codes, or a code of no product at all.
    code_of = dict(zip(loaded.products["product_asset_id"], codes))
    bundle_codes = dict(zip(loaded.bundles["bundle_asset_id"], loaded.bundle_codes()))
    assert not np.isnan(loaded.bundle_timestamps()).any()
    named = 0
    for bundle, products in _matches(root).items():
        own = bundle_codes[bundle] in {code_of[p] for p in products}
        assert own or bundle_codes[bundle] not in set(codes)
        named += own
    assert 0 < named < len(_matches(root))
    stats = json.loads((root / "metadata.json").read_text())["url_metadata"]
    pairs = sum(len(p) for p in _matches(root).values())
    assert stats["true_pairs_same_code"] == pytest.approx(named / pairs, abs=1e-3)


def _timeline(spec: SyntheticSpec) -> dict[str, object]:
    """URL statistics of ``spec``'s planned pairs, without rendering (every listed product counts)."""
    from fashion_retrieval.synthetic import metadata
    from fashion_retrieval.synthetic.generator import plan_dataset
    from fashion_retrieval.synthetic.scene import GarmentBox

    layout, plans, days, debut = plan_dataset(spec)
    codes = metadata.product_codes(spec.seed, layout)
    pair_bundles, pair_products, bundle_codes = [], [], []
    for plan in plans:
        listed = [item.product for item in plan.items if item.product >= 0]
        boxes = [GarmentBox(p, (0, 0, 1, 1), 1.0) for p in listed]
        bundle_codes.append(metadata.bundle_code(spec.seed, plan, boxes, codes, set(codes)))
        pair_bundles += [plan.index] * len(listed)
        pair_products += listed
    product_ms = metadata.to_ms(metadata.upload_days(spec.seed, debut))
    stats = metadata.url_statistics(
        spec.seed, pair_bundles, pair_products, metadata.to_ms(days), product_ms, bundle_codes, codes
    )
    return {"stats": stats, "codes": codes, "product_ms": product_ms.tolist(), "plans": plans}


def test_url_statistics_follow_the_real_data() -> None:
    # The quickstart size: real data has a ~7-day median gap to true products, ~85 to random ones, and
    # 15.4% of true pairs share the bundle's code. Smaller catalogues have sparser pools, so longer gaps.
    spec = replace(TINY, num_products=2000, num_bundles=1500)
    stats = _timeline(spec)["stats"]
    assert 4.0 <= stats["median_true_pair_gap_days"] <= 10.0
    assert 75.0 <= stats["median_random_pair_gap_days"] <= 95.0
    assert 0.12 <= stats["true_pairs_same_code"] <= 0.19
    assert stats["true_pairs_within_30_days"] >= 0.8


def test_url_metadata_is_deterministic_per_seed() -> None:
    spec = replace(TINY, num_products=300, num_bundles=200)
    first, again = _timeline(spec), _timeline(spec)
    assert first["codes"] == again["codes"] and first["product_ms"] == again["product_ms"]
    assert first["plans"] == again["plans"] and first["stats"] == again["stats"]
    assert _timeline(replace(spec, seed=spec.seed + 1))["codes"] != first["codes"]


def test_an_old_format_dataset_still_loads(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Datasets of generator 1.1.0 and before: local relative image paths, no codes or timestamps."""
    from fashion_retrieval.data.catalogue import load_catalogue

    generate_dataset(MICRO, tmp_path)
    for name, column in (("product_dataset.csv", 1), ("bundles_dataset.csv", 2)):
        header, rows = _read(tmp_path / name)
        folder = "products" if column == 1 else "bundles"
        for row in rows:
            row[column] = f"images/{folder}/{row[0]}.jpg"
        with open(tmp_path / name, "w", newline="", encoding="utf-8") as handle:
            csv.writer(handle, lineterminator="\n").writerows([header, *rows])
    metadata = json.loads((tmp_path / "metadata.json").read_text())
    metadata["generator_version"] = "1.1.0"
    del metadata["url_metadata"]
    (tmp_path / "metadata.json").write_text(json.dumps(metadata))
    with caplog.at_level("INFO", logger="fashion_retrieval.data.catalogue"):
        loaded = load_catalogue(tmp_path, image_check="decode")
    assert len(loaded.products) == MICRO.num_products
    assert np.isnan(loaded.product_timestamps()).all() and np.isnan(loaded.bundle_timestamps()).all()
    assert loaded.product_codes() == [None] * MICRO.num_products
    assert set(loaded.bundle_codes()) == {None}
    assert f"{MICRO.num_products} of {MICRO.num_products} row(s) without a ts= timestamp" in caplog.text


def test_corrupt_metadata_json_is_named_with_the_way_out(tmp_path: Path) -> None:
    from fashion_retrieval.pipelines.generate import same_dataset_exists

    (tmp_path / "metadata.json").write_text('{"spec": {"seed": 0,')
    with pytest.raises(ValueError, match=r"metadata.json: not valid JSON .*generate.overwrite=true"):
        same_dataset_exists(TINY, tmp_path)
    (tmp_path / "metadata.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"metadata.json: expected a JSON object, got list"):
        same_dataset_exists(TINY, tmp_path)


def test_a_dataset_written_under_the_former_module_path_is_still_this_generators(tmp_path: Path) -> None:
    """Before issue 16 the generator lived in ``fashion_retrieval.data.synthetic`` and recorded that name."""
    from fashion_retrieval.synthetic.writer import GENERATOR_NAME, read_metadata

    generate_dataset(MICRO, tmp_path)
    path = tmp_path / "metadata.json"
    assert json.loads(path.read_text())["generator"] == GENERATOR_NAME == "fashion_retrieval.synthetic"
    metadata = json.loads(path.read_text())
    metadata["generator"] = "fashion_retrieval.data.synthetic"
    path.write_text(json.dumps(metadata))
    assert read_metadata(path)["generator"] == GENERATOR_NAME
    assert same_dataset_exists(MICRO, tmp_path)
    metadata["generator"] = "someone_else.generator"
    path.write_text(json.dumps(metadata))
    assert not same_dataset_exists(MICRO, tmp_path)
