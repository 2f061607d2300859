"""Product text from the generator's own attributes: ``product_attributes.csv`` and ``product_captions.csv``.

Every word comes from a parameter the packshot shows: the variant's palette colour and its basic colour
name (:func:`colour_group`, the nearest named colour in CIELAB), the pattern kind, the category, and a few
shape details (sleeve and skirt length, leg fit, neckline, a visible fabric texture, bag and hat kinds).
Each product gets ``CAPTIONS_PER_PRODUCT`` phrasings drawn from a fixed set of templates by its own random
stream (``Domain.CAPTION``), so the captions depend only on (seed, product index), like its image.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from fashion_retrieval.data.captions import ATTRIBUTE_COLUMNS, ATTRIBUTES_FILE, CAPTION_COLUMNS, CAPTIONS_FILE
from fashion_retrieval.data.catalogue import (
    ARTICLE_COLUMNS,
    PRODUCT_ARTICLES_FILE,
    PRODUCT_COLUMNS,
    PRODUCTS_FILE,
    read_csv,
)
from fashion_retrieval.synthetic import styles, writer
from fashion_retrieval.synthetic.catalogue import Article, CatalogueLayout, spec_layout
from fashion_retrieval.synthetic.palette import COLOURS, RGB
from fashion_retrieval.synthetic.rng import Domain, item_rng
from fashion_retrieval.synthetic.spec import SyntheticSpec
from fashion_retrieval.synthetic.taxonomy import CATEGORIES

CAPTIONS_PER_PRODUCT = 3

# Basic colour names and sRGB reference points (several where one name spans light and dark shades); a
# palette colour is named after its nearest reference in CIELAB.
COLOUR_GROUPS: dict[str, tuple[RGB, ...]] = {
    "black": ((20, 20, 20),),
    "white": ((245, 245, 245),),
    "grey": ((170, 170, 170), (100, 100, 104)),
    "navy": ((30, 36, 72),),
    "blue": ((50, 90, 190), (140, 180, 225), (80, 105, 150)),
    "red": ((190, 30, 40), (110, 25, 35)),
    "pink": ((240, 170, 190), (210, 60, 130)),
    "purple": ((140, 90, 180), (195, 175, 220)),
    "green": ((40, 130, 70), (30, 75, 50), (100, 105, 60), (170, 220, 190), (30, 110, 115)),
    "yellow": ((240, 210, 70), (245, 230, 160)),
    "orange": ((235, 120, 40), (170, 85, 45)),
    "brown": ((110, 70, 40), (170, 120, 75)),
    "beige": ((215, 195, 160),),
}

PATTERN_WORDS: dict[str, str] = {
    "plain": "plain",
    "stripes": "striped",
    "breton": "breton striped",
    "pinstripe": "pinstriped",
    "checks": "checked",
    "gingham": "gingham",
    "tartan": "tartan",
    "dots": "polka-dot",
    "floral": "floral",
    "geometric": "geometric-print",
    "leopard": "leopard-print",
}
# What a shopper calls each category (``product_description``): the noun of attribute queries.
CATEGORY_NOUNS: dict[str, str] = {
    "TROUSERS": "trousers",
    "SHIRT": "shirt",
    "T-SHIRT": "t-shirt",
    "DRESS": "dress",
    "SWEATER": "sweater",
    "TOPS AND OTHERS": "top",
    "JEANS": "jeans",
    "JACKET": "jacket",
    "SKIRT": "skirt",
    "BLAZER": "blazer",
    "SHORTS": "shorts",
    "COAT": "coat",
    "SWEATSHIRT": "sweatshirt",
    "SHOES": "shoes",
    "SNEAKERS": "sneakers",
    "BOOTS": "boots",
    "HAND BAG-RUCKSACK": "bag",
    "HAT": "hat",
    "SCARF": "scarf",
    "BELT": "belt",
    "SUNGLASSES": "sunglasses",
    "BRA": "bra",
    "PANTY/UNDERPANT": "briefs",
    "SOCKS": "socks",
}
_BAG_NOUNS = {
    styles.TOTE: "tote bag",
    styles.SHOULDER: "shoulder bag",
    styles.CROSSBODY: "crossbody bag",
    styles.CLUTCH: "clutch bag",
    styles.RUCKSACK: "rucksack",
    styles.BUCKET: "bucket bag",
}
_HAT_NOUNS = {
    styles.FEDORA: "fedora hat",
    styles.BUCKET_HAT: "bucket hat",
    styles.CAP: "cap",
    styles.BEANIE: "beanie",
    styles.BERET: "beret",
    styles.STRAW: "straw hat",
}
_NECKLINES = {
    styles.CREW: "crew-neck",
    styles.VNECK: "v-neck",
    styles.BOAT: "boat-neck",
    styles.COLLAR: "collared",
    styles.TURTLE: "turtleneck",
    styles.HOOD: "hooded",
    styles.SQUARE: "square-neck",
    styles.STRAPS: "strappy",
}
_TROUSER_FITS = {0: "straight-leg", 1: "slim-fit", 2: "wide-leg", 3: "jogger"}
# Fabric textures strong enough to see on a packshot (plain cotton's grain is not).
_TEXTURE_WORDS = {"knit": "knit", "leather": "leather", "corduroy": "corduroy", "quilt": "quilted"}


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """``(N, 3)`` sRGB in 0..255 -> ``(N, 3)`` float64 CIELAB (D65 white)."""
    c = np.asarray(rgb, np.float64) / 255.0
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    to_xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
    xyz = linear @ to_xyz.T / np.array([0.95047, 1.0, 1.08883])
    delta = 6.0 / 29.0
    f = np.where(xyz > delta**3, np.cbrt(xyz), xyz / (3 * delta**2) + 4.0 / 29.0)
    return np.stack([116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], axis=1)


_GROUP_NAMES = [name for name, refs in COLOUR_GROUPS.items() for _ in refs]
_GROUP_LAB = srgb_to_lab(np.array([ref for refs in COLOUR_GROUPS.values() for ref in refs]))


def colour_group(rgb: RGB) -> str:
    """The basic colour name (a key of :data:`COLOUR_GROUPS`) nearest to ``rgb`` in CIELAB."""
    distances = np.linalg.norm(_GROUP_LAB - srgb_to_lab(np.array([rgb])), axis=1)
    return _GROUP_NAMES[int(np.argmin(distances))]


@dataclass(frozen=True)
class Attributes:
    """What a product's packshot shows, in words: ``category`` is its ``product_description``, ``noun``
    the specific item ("tote bag"), ``colour`` the palette name ("bottle green"), ``colour_group`` the basic
    name ("green"), ``pattern`` a :data:`PATTERN_WORDS` value, ``details`` shape and fabric adjectives."""

    category: str
    noun: str
    colour: str
    colour_group: str
    pattern: str
    details: tuple[str, ...]

    def row(self) -> tuple[str, ...]:
        """The ``product_attributes.csv`` fields after the product id: the category's noun (what a query
        names), colour, colour group, pattern and the ``;``-separated details."""
        return (
            CATEGORY_NOUNS[self.category],
            self.colour,
            self.colour_group,
            self.pattern,
            ";".join(self.details),
        )


def _length(value: float) -> str:
    return "mini" if value < 0.35 else "midi" if value < 0.7 else "maxi"


def _sleeve(value: float) -> str:
    return (
        "sleeveless"
        if value < 0.05
        else "short-sleeved"
        if value < 0.42
        else "half-sleeved"
        if value < 0.7
        else "long-sleeved"
    )


def article_attributes(item: Article, variant: int) -> Attributes:
    """The words of variant ``variant`` of ``item`` (see the module docstring for what is described)."""
    category = item.category_info
    shape, family, name = item.shape, category.family, category.name
    noun = CATEGORY_NOUNS[name]
    details: list[str] = []
    if family in ("top", "dress"):
        if name != "SHIRT":  # every shirt has a collar: the word would tell shirts nothing
            details.append(_NECKLINES[int(shape["neck"])])
        details.append(_sleeve(shape["sleeve"]))
        if shape.get("hem", 1.0) < 0:
            details.append("cropped")
    if family in ("dress", "skirt"):
        details.append(_length(shape["length"]))
    if family == "trousers":
        details.append(_TROUSER_FITS[int(shape["style"])])
        if name != "SHORTS" and shape["hem_y"] < 0.9:
            details.append("cropped")
    if family == "bag":
        noun = _BAG_NOUNS[int(shape["kind"])]
    elif family == "hat":
        noun = _HAT_NOUNS[int(shape["kind"])]
    elif name == "BOOTS" and shape.get("chelsea"):
        noun = "chelsea boots"
    elif name == "SHOES" and shape["heel"] >= 0.015:
        details.append("heeled")
    texture = _TEXTURE_WORDS.get(item.texture.kind)
    if texture is not None and texture not in noun:
        details.append(texture)
    colour = item.variants[variant].name
    return Attributes(
        category=name,
        noun=noun,
        colour=colour,
        colour_group=colour_group(COLOURS[colour]),
        pattern=PATTERN_WORDS[item.pattern.kind],
        details=tuple(details),
    )


def _templates(a: Attributes) -> list[str]:
    """Every phrasing of ``a``; some name the palette colour, some the basic one, some both."""
    pattern = "" if a.pattern == "plain" else a.pattern
    details = " ".join(a.details)
    listed = ", ".join([*a.details, a.pattern])

    def words(*parts: str) -> str:
        return " ".join(part for part in parts if part)

    return [
        words(a.colour, pattern, a.noun),
        words(a.colour_group, a.pattern, a.noun),
        words(details, a.noun, "in", a.colour) + (f", {pattern}" if pattern else ""),
        words(pattern, details, a.noun) + f", colour {a.colour}",
        words(a.colour_group, a.noun) + f": {listed}",
    ]


def product_captions(attributes: Attributes, rng: np.random.Generator) -> list[str]:
    """``CAPTIONS_PER_PRODUCT`` distinct phrasings of ``attributes``, templates drawn by ``rng``."""
    options = list(dict.fromkeys(_templates(attributes)))  # a plain product can phrase two templates alike
    picks = rng.choice(len(options), size=min(CAPTIONS_PER_PRODUCT, len(options)), replace=False)
    return [options[int(i)] for i in sorted(picks)]


def catalogue_text(seed: int, layout: CatalogueLayout) -> tuple[list[Attributes], list[list[str]]]:
    """``(attributes, captions)`` of every product of ``layout`` (row order)."""
    attributes, captions = [], []
    for index in range(layout.num_products):
        item, variant = layout.product_article(seed, index)
        a = article_attributes(item, variant)
        attributes.append(a)
        captions.append(product_captions(a, item_rng(seed, Domain.CAPTION, index)))
    return attributes, captions


def text_files(
    seed: int, layout: CatalogueLayout
) -> dict[str, tuple[tuple[str, ...], list[tuple[str, ...]]]]:
    """``{file name: (header, rows)}`` of ``product_attributes.csv`` and ``product_captions.csv`` for
    ``layout`` (rows in product order, a product's captions together)."""
    attributes, captions = catalogue_text(seed, layout)
    return {
        ATTRIBUTES_FILE: (
            ATTRIBUTE_COLUMNS,
            [(p, *a.row()) for p, a in zip(layout.product_ids, attributes)],
        ),
        CAPTIONS_FILE: (
            CAPTION_COLUMNS,
            [(p, caption) for p, texts in zip(layout.product_ids, captions) for caption in texts],
        ),
    }


def add_captions(spec: SyntheticSpec, data_dir: Path) -> int:
    """Write the text files of an existing synthetic dataset made from ``spec`` without rendering an image;
    returns the number of captions.

    The dataset's ``metadata.json`` must record ``spec`` and a generator version whose catalogue this one
    reproduces (``writer.SAME_CATALOGUE_VERSIONS``), and its product and article files must equal the
    rebuilt layout's; else ``ValueError`` says what differs. Its metadata.json then records this generator's
    version and the two files (``captions_added_to`` keeps the version it had).
    """
    metadata_path = data_dir / writer.METADATA_FILE
    if not metadata_path.is_file():
        raise ValueError(
            f"{metadata_path}: not found; captions are added to a finished synthetic dataset only"
        )
    metadata = writer.read_metadata(metadata_path)
    version = metadata.get("generator_version")
    if metadata.get("generator") != writer.GENERATOR_NAME or version not in writer.SAME_CATALOGUE_VERSIONS:
        raise ValueError(
            f"{metadata_path}: written by {metadata.get('generator')} {version}; captions can be added only "
            f"to datasets of {writer.GENERATOR_NAME} {', '.join(writer.SAME_CATALOGUE_VERSIONS)}, whose "
            "catalogue this generator reproduces. Regenerate it instead (generate.overwrite=true)"
        )
    expected = json.loads(json.dumps(asdict(spec)))
    if metadata.get("spec") != expected:
        differs = sorted(
            key
            for key in set(expected) | set(metadata.get("spec") or {})
            if (metadata.get("spec") or {}).get(key) != expected.get(key)
        )
        raise ValueError(
            f"{metadata_path}: the dataset's spec differs from the configured one in {differs}; pass the "
            "synthetic config it was made with"
        )
    layout = spec_layout(spec)
    _check_same_catalogue(data_dir, layout)
    files = text_files(spec.seed, layout)
    with contextlib.ExitStack() as stack:
        for name, (header, rows) in files.items():
            writer.csv_writer(stack, data_dir / name, header).writerows(rows)
    if version != writer.GENERATOR_VERSION:
        metadata["captions_added_to"] = version
    metadata["generator_version"] = writer.GENERATOR_VERSION
    metadata["files"] = {
        **metadata.get("files", {}),
        "product_attributes": ATTRIBUTES_FILE,
        "product_captions": CAPTIONS_FILE,
    }
    writer.write_json(metadata_path, metadata)
    return len(files[CAPTIONS_FILE][1])


def _check_same_catalogue(data_dir: Path, layout: CatalogueLayout) -> None:
    """The products (ids, categories) and articles on disk are exactly ``layout``'s, else ``ValueError``."""
    products = read_csv(data_dir / PRODUCTS_FILE, PRODUCT_COLUMNS)
    categories = [CATEGORIES[int(c)].name for c in layout.category]
    if (
        list(products["product_asset_id"]) != layout.product_ids
        or list(products["product_description"]) != categories
    ):
        raise ValueError(
            f"{data_dir / PRODUCTS_FILE}: its products are not the ones this spec lays out (edited, or made "
            "by another generator); regenerate the dataset"
        )
    articles = read_csv(data_dir / PRODUCT_ARTICLES_FILE, ARTICLE_COLUMNS)
    groups: dict[str, list[int]] = {}
    for index, article_id in enumerate(articles["article_id"]):
        groups.setdefault(article_id, []).append(index)
    expected: dict[int, list[int]] = {}
    for index, article_index in enumerate(layout.article.tolist()):
        expected.setdefault(article_index, []).append(index)
    if list(articles["product_asset_id"]) != layout.product_ids or sorted(groups.values()) != sorted(
        expected.values()
    ):
        raise ValueError(
            f"{data_dir / PRODUCT_ARTICLES_FILE}: its articles are not the ones this spec lays out; "
            "regenerate the dataset"
        )
