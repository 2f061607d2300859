"""The catalogue: which articles exist, their colour variants, and every product's full parameters.

Only a compact layout (a few small integer arrays per product) is kept in memory; an article's shape,
pattern, texture and variant colours are regenerated on demand from (seed, article index), so any
worker can render any product or bundle without shipping parameters around.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from fashion_retrieval.synthetic.garments import Shape, sample_shape
from fashion_retrieval.synthetic.palette import (
    COLOURS,
    LENS_TINTS,
    METALS,
    RGB,
    jitter,
    pick_accent,
    pick_variant_colours,
)
from fashion_retrieval.synthetic.patterns import (
    PATTERN_TILE_PX,
    TEXTURE_TILE_PX,
    PatternSpec,
    TextureSpec,
    pattern_tile,
    texture_tile,
)
from fashion_retrieval.synthetic.raster import Material
from fashion_retrieval.synthetic.rng import Domain, item_rng, unique_ids
from fashion_retrieval.synthetic.taxonomy import CATEGORIES, SECTIONS, Category, category_weights

if TYPE_CHECKING:
    from fashion_retrieval.synthetic.spec import SyntheticSpec

# Pattern frequencies by category (kinds from patterns.PATTERN_KINDS); unlisted categories are plain.
PATTERN_WEIGHTS: dict[str, dict[str, float]] = {
    "SHIRT": {"plain": 55, "stripes": 10, "pinstripe": 10, "checks": 8, "gingham": 8, "floral": 5, "dots": 4},
    "T-SHIRT": {"plain": 70, "breton": 15, "stripes": 5, "dots": 3, "floral": 3, "geometric": 4},
    "TOPS AND OTHERS": {
        "plain": 50,
        "floral": 15,
        "dots": 8,
        "stripes": 7,
        "geometric": 8,
        "leopard": 5,
        "gingham": 7,
    },
    "SWEATER": {"plain": 72, "breton": 12, "stripes": 6, "tartan": 4, "geometric": 6},
    "SWEATSHIRT": {"plain": 80, "stripes": 8, "geometric": 6, "checks": 6},
    "DRESS": {
        "plain": 45,
        "floral": 20,
        "dots": 10,
        "gingham": 6,
        "stripes": 6,
        "leopard": 5,
        "geometric": 8,
    },
    "SKIRT": {"plain": 50, "floral": 14, "dots": 8, "gingham": 6, "tartan": 8, "leopard": 6, "geometric": 8},
    "TROUSERS": {"plain": 80, "pinstripe": 7, "checks": 7, "tartan": 3, "stripes": 3},
    "SHORTS": {"plain": 75, "stripes": 8, "checks": 7, "floral": 5, "geometric": 5},
    "JACKET": {"plain": 82, "checks": 8, "tartan": 6, "gingham": 4},
    "BLAZER": {"plain": 75, "checks": 10, "pinstripe": 8, "tartan": 7},
    "COAT": {"plain": 80, "checks": 10, "tartan": 6, "gingham": 4},
    "SHOES": {"plain": 94, "leopard": 4, "checks": 2},
    "SNEAKERS": {"plain": 95, "checks": 5},
    "BOOTS": {"plain": 97, "leopard": 3},
    "HAND BAG-RUCKSACK": {"plain": 85, "leopard": 5, "checks": 5, "stripes": 5},
    "HAT": {"plain": 80, "checks": 8, "tartan": 6, "stripes": 6},
    "SCARF": {"plain": 30, "tartan": 25, "stripes": 20, "checks": 10, "dots": 5, "floral": 5, "leopard": 5},
    "SUNGLASSES": {"plain": 85, "leopard": 15},
    "BRA": {"plain": 60, "floral": 15, "dots": 15, "stripes": 10},
    "PANTY/UNDERPANT": {"plain": 60, "floral": 12, "dots": 14, "stripes": 14},
    "SOCKS": {"plain": 55, "stripes": 25, "dots": 10, "geometric": 10},
}
# Pattern repeat in body units (the figure is 1 unit tall) and kind-specific parameters.
PERIODS: dict[str, tuple[float, float]] = {
    "stripes": (0.02, 0.06),
    "breton": (0.025, 0.045),
    "pinstripe": (0.018, 0.032),
    "checks": (0.04, 0.09),
    "gingham": (0.014, 0.032),
    "tartan": (0.07, 0.14),
    "dots": (0.015, 0.04),
    "floral": (0.05, 0.1),
    "geometric": (0.04, 0.08),
    "leopard": (0.05, 0.09),
}
TEXTURE_VARIANTS = 4
TEXTURES: dict[str, tuple[str, float, float]] = {  # kind, period (body units), amplitude
    "SWEATER": ("knit", 0.03, 0.14),
    "SCARF": ("knit", 0.03, 0.12),
    "SOCKS": ("knit", 0.02, 0.1),
    "JEANS": ("denim", 0.03, 0.14),
    "SWEATSHIRT": ("cotton", 0.04, 0.07),
    "SHOES": ("leather", 0.05, 0.05),
    "BOOTS": ("leather", 0.05, 0.05),
    "HAND BAG-RUCKSACK": ("leather", 0.06, 0.05),
    "BELT": ("leather", 0.04, 0.05),
    "BRA": ("cotton", 0.03, 0.03),
    "PANTY/UNDERPANT": ("cotton", 0.03, 0.03),
    "SUNGLASSES": ("cotton", 0.05, 0.01),
}


@dataclass(frozen=True)
class VariantColours:
    """One colour variant: garment ``base``, print ``accent``/``accent2``, ``trim`` (buttons, soles),
    ``lens`` tint (sunglasses). ``name``: the base colour's palette name."""

    name: str
    base: RGB
    accent: RGB
    accent2: RGB
    trim: RGB
    lens: RGB


@dataclass(frozen=True)
class Article:
    """A garment design: one shape, pattern and texture sold in ``len(variants)`` colours."""

    category: int
    section: int
    shape: Shape
    pattern: PatternSpec
    texture: TextureSpec
    variants: tuple[VariantColours, ...]
    metal: RGB
    stitch: RGB | None

    @property
    def category_info(self) -> Category:
        return CATEGORIES[self.category]


def _sample_pattern(category: Category, section: int, rng: np.random.Generator) -> PatternSpec:
    weights = dict(PATTERN_WEIGHTS.get(category.name, {"plain": 1.0}))
    if section == 3 and "plain" in weights:  # kids' clothes carry more prints
        weights["plain"] *= 0.7
    kinds = list(weights)
    p = np.array([weights[k] for k in kinds], float)
    kind = kinds[int(rng.choice(len(kinds), p=p / p.sum()))]
    seed = int(rng.integers(0, 2**63 - 1))
    if kind == "plain":
        return PatternSpec("plain", 1.0, 0.0, (), seed)
    lo, hi = PERIODS[kind]
    period = float(rng.uniform(lo, hi))
    if category.name in ("SUNGLASSES", "BELT"):  # small objects: a finer print reads as tortoiseshell
        period *= 0.4
    angle = 0.0
    if kind == "pinstripe" or (
        kind == "stripes" and category.name in ("SHIRT", "TROUSERS") and rng.random() < 0.6
    ):
        angle = np.pi / 2  # vertical stripes
    elif kind in ("stripes", "checks", "tartan") and category.name == "SCARF" and rng.random() < 0.4:
        angle = np.pi / 4
    params: tuple[float, ...]
    if kind in ("stripes", "breton", "pinstripe"):
        frac = {"stripes": (0.2, 0.5), "breton": (0.25, 0.45), "pinstripe": (0.05, 0.1)}[kind]
        second = float(rng.uniform(0.06, 0.15)) if kind == "stripes" and rng.random() < 0.3 else 0.0
        params = (float(rng.uniform(*frac)), second)
    elif kind == "checks":
        params = (float(rng.uniform(0.05, 0.12)),)
    elif kind == "tartan":
        params = (float(rng.uniform(0.2, 0.35)), float(rng.uniform(0.08, 0.16)))
    elif kind == "dots":
        params = (float(rng.uniform(0.07, 0.18)),)
    else:
        params = (float(rng.integers(3, 7) if kind != "leopard" else rng.integers(6, 11)),)
    return PatternSpec(kind, period, angle, params, seed)


def _sample_texture(category: Category, shape: Shape, rng: np.random.Generator) -> TextureSpec:
    kind, period, amplitude = TEXTURES.get(category.name, ("cotton", 0.04, 0.04))
    if category.family == "outer" and shape.get("quilt"):
        kind, period, amplitude = "quilt", 0.12, 0.1
    elif category.name == "JACKET" and rng.random() < 0.2:
        kind, period, amplitude = "leather", 0.05, 0.06
    elif category.name == "TROUSERS" and rng.random() < 0.12:
        kind, period, amplitude = "corduroy", 0.03, 0.12
    elif category.name == "HAT" and shape.get("kind") == 3.0:  # beanie
        kind, period, amplitude = "knit", 0.025, 0.14
    # A few noise realisations per texture kind are plenty (grain is not what tells products apart) and
    # keep the tile cache hot across products and filler garments.
    return TextureSpec(
        kind, period * float(rng.uniform(0.85, 1.15)), amplitude, int(rng.integers(0, TEXTURE_VARIANTS))
    )


def sample_article(rng: np.random.Generator, category_index: int, section: int, n_variants: int) -> Article:
    """Draw a full article; the variant colours come last so ``n_variants`` never changes the shape."""
    category = CATEGORIES[category_index]
    shape = sample_shape(category, section, rng)
    pattern = _sample_pattern(category, section, rng)
    texture = _sample_texture(category, shape, rng)
    metal = METALS[str(rng.choice(list(METALS)))]
    stitch = None
    if category.name == "JEANS":
        stitch = COLOURS[str(rng.choice(["mustard", "ecru", "camel"]))]
    elif category.name == "BELT":
        stitch = COLOURS[str(rng.choice(["ecru", "black", "camel"]))]
    if category.name == "SNEAKERS":
        trim_options = ["white", "white", "ecru", "black", "tan"]
    elif category.family == "shoes":
        trim_options = ["black", "chocolate", "tan"]
    else:
        trim_options = ["ecru", "black", "brown", "white", "light grey"]
    names = pick_variant_colours(category.palette, section, n_variants, rng)
    variants = []
    for name in names:
        base = jitter(COLOURS[name], rng, 4.0)
        accent = COLOURS[pick_accent(name, rng)]
        accent2 = COLOURS[pick_accent(name, rng, min_contrast=40.0)]
        trim = COLOURS[str(rng.choice(trim_options))]
        lens = LENS_TINTS[str(rng.choice(list(LENS_TINTS)))]
        variants.append(VariantColours(name, base, accent, accent2, trim, lens))
    return Article(category_index, section, shape, pattern, texture, tuple(variants), metal, stitch)


@functools.lru_cache(maxsize=4096)
def article(seed: int, article_index: int, category_index: int, section: int, n_variants: int) -> Article:
    """Article ``article_index`` of the catalogue built from ``seed`` (cached: bundles reuse products)."""
    return sample_article(item_rng(seed, Domain.ARTICLE, article_index), category_index, section, n_variants)


def filler_article(
    seed: int, bundle_index: int, slot_index: int, category_index: int, section: int
) -> Article:
    """An unlisted garment worn in a bundle (not in the catalogue): the model is never half-dressed."""
    return sample_article(item_rng(seed, Domain.FILLER, bundle_index, slot_index), category_index, section, 1)


def _rgb(colour: RGB) -> np.ndarray:
    return np.asarray(colour, np.float32) / 255.0


@functools.lru_cache(maxsize=256)
def _texture_tile(kind: str, variant: int) -> np.ndarray:
    return texture_tile(TextureSpec(kind, 1.0, 1.0, variant))


def _texture(spec: TextureSpec) -> np.ndarray:
    """The texture tile of ``spec`` (its unit-amplitude tile rescaled: mean 1, std ``amplitude``)."""
    return 1.0 + (_texture_tile(spec.kind, spec.seed) - 1.0) * np.float32(spec.amplitude)


@functools.lru_cache(maxsize=2048)
def _pattern(spec: PatternSpec, base: RGB, accent: RGB, accent2: RGB) -> np.ndarray | None:
    return pattern_tile(spec, base, accent, accent2)


def material(item: Article, variant: int) -> Material:
    """Colouring of variant ``variant`` of ``item``: its pattern tile, texture and flat trim colours."""
    colours = item.variants[variant]
    base = _rgb(colours.base)
    darker = np.clip(base * 0.55, 0, 1)
    tile = _pattern(item.pattern, colours.base, colours.accent, colours.accent2)
    p = item.pattern
    c, s = np.cos(p.angle), np.sin(p.angle)
    k = PATTERN_TILE_PX / p.period
    pattern_map = np.array([[k * c, k * s, 0.0], [-k * s, k * c, 0.0], [0.0, 0.0, 1.0]])
    t = item.texture
    kt = TEXTURE_TILE_PX / t.period
    texture_map = np.array([[kt, 0.0, 0.0], [0.0, kt, 0.0], [0.0, 0.0, 1.0]])
    flat = {
        "trim": _rgb(colours.trim),
        "accent": _rgb(colours.accent),
        "accent2": _rgb(colours.accent2),
        "metal": _rgb(item.metal),
        "lens": _rgb(colours.lens),
        "stitch": _rgb(item.stitch) if item.stitch is not None else darker,
        "skin": base,
        "skin_dark": darker,
        "hair": darker,
    }
    return Material(base, tile, pattern_map, _texture(t), texture_map, flat)


def skin_material(skin: RGB, hair: RGB) -> Material:
    """The figure: flat skin and hair, a little edge shading, no fabric texture."""
    s = _rgb(skin)
    eye = np.identity(3)
    flat = {"skin": s, "skin_dark": np.clip(s * 0.62, 0, 1), "hair": _rgb(hair)}
    return Material(s, None, eye, None, eye, flat, edge_shading=0.18, fold_strength=0.0)


@dataclass
class CatalogueLayout:
    """Compact per-product arrays (index = row of product_dataset.csv) and per-article arrays.

    ``eligible``: products that may appear in bundles (the rest are designated distractors).
    """

    product_ids: list[str]
    article: np.ndarray
    variant: np.ndarray
    category: np.ndarray
    section: np.ndarray
    eligible: np.ndarray
    article_category: np.ndarray
    article_section: np.ndarray
    article_variants: np.ndarray

    @property
    def num_products(self) -> int:
        return len(self.product_ids)

    def product_article(self, seed: int, product: int) -> tuple[Article, int]:
        """(article, variant index) of product row ``product``."""
        a = int(self.article[product])
        item = article(
            seed,
            a,
            int(self.article_category[a]),
            int(self.article_section[a]),
            int(self.article_variants[a]),
        )
        return item, int(self.variant[product])


def build_layout(
    seed: int,
    num_products: int,
    section_weights: tuple[float, ...],
    variants_per_article: tuple[int, int],
    distractor_fraction: float,
) -> CatalogueLayout:
    """Lay out ``num_products`` products as articles x colour variants, shuffled, with distractors marked."""
    rng = item_rng(seed, Domain.LAYOUT)
    lo, hi = variants_per_article
    counts: list[int] = []
    total = 0
    while total < num_products:  # variants per article, last article truncated to hit the exact count
        batch = rng.integers(lo, hi + 1, size=max(16, (num_products - total) // max(lo, 1) + 1))
        for c in batch.tolist():
            c = min(c, num_products - total)
            counts.append(c)
            total += c
            if total >= num_products:
                break
    n_articles = len(counts)
    p_sections = np.asarray(section_weights, float) / np.sum(section_weights)
    sections = rng.choice(np.array(SECTIONS), size=n_articles, p=p_sections)
    categories = np.zeros(n_articles, np.int16)
    for s in SECTIONS:
        idx = np.flatnonzero(sections == s)
        w = np.asarray(category_weights(s), float)
        categories[idx] = rng.choice(len(CATEGORIES), size=len(idx), p=w / w.sum())
    article_variants = np.asarray(counts, np.int16)
    prod_article = np.repeat(np.arange(n_articles, dtype=np.int32), article_variants)
    prod_variant = np.concatenate([np.arange(c, dtype=np.int16) for c in counts])
    order = rng.permutation(num_products)  # rows in random order: no article block in the CSV
    prod_article, prod_variant = prod_article[order], prod_variant[order]
    eligible = rng.random(num_products) >= distractor_fraction
    return CatalogueLayout(
        product_ids=unique_ids("I_", seed, "product", num_products),
        article=prod_article,
        variant=prod_variant,
        category=categories[prod_article].astype(np.int16),
        section=sections[prod_article].astype(np.int8),
        eligible=eligible,
        article_category=categories,
        article_section=sections.astype(np.int8),
        article_variants=article_variants,
    )


def spec_layout(spec: SyntheticSpec) -> CatalogueLayout:
    """The catalogue layout (products, articles, variants) of ``spec``: what a generation and the text
    added to an existing dataset are built from, and what the difficulty figures read."""
    return build_layout(
        spec.seed,
        spec.num_products,
        spec.section_weights,
        spec.variants_per_article,
        spec.distractor_fraction,
    )
