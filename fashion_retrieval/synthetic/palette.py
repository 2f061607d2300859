"""A fashion colour palette and per-category colour families.

Colours are sRGB in 0..255. Families weight the palette the way a real catalogue does: jeans are mostly
denim blues, tailoring is navy/black/grey/camel, shoes and bags are leather tones, kids' clothes are
brighter. Variants of one article draw distinct colours from the same family, so neighbours in colour
(navy vs black, beige vs sand) become natural hard negatives.
"""

from __future__ import annotations

import numpy as np

RGB = tuple[int, int, int]

COLOURS: dict[str, RGB] = {
    "black": (22, 22, 24),
    "white": (243, 243, 240),
    "ecru": (233, 226, 208),
    "light grey": (192, 192, 190),
    "grey marl": (142, 142, 144),
    "charcoal": (62, 64, 68),
    "navy": (30, 38, 66),
    "beige": (214, 196, 168),
    "sand": (198, 178, 142),
    "camel": (182, 138, 90),
    "tan": (160, 110, 70),
    "brown": (102, 70, 46),
    "chocolate": (66, 43, 31),
    "khaki": (150, 140, 96),
    "olive": (93, 98, 58),
    "burgundy": (102, 29, 41),
    "red": (182, 32, 38),
    "rust": (166, 82, 46),
    "mustard": (206, 160, 52),
    "pastel pink": (238, 192, 201),
    "dusty pink": (205, 150, 150),
    "fuchsia": (200, 52, 122),
    "lilac": (190, 170, 215),
    "baby blue": (172, 202, 230),
    "sky blue": (120, 170, 216),
    "cobalt": (42, 72, 170),
    "mint": (176, 220, 196),
    "emerald": (22, 112, 82),
    "bottle green": (30, 70, 52),
    "butter yellow": (245, 226, 150),
    "orange": (230, 122, 42),
    "teal": (30, 110, 120),
    "light denim": (140, 168, 198),
    "mid denim": (78, 106, 150),
    "dark denim": (38, 52, 86),
    "black denim": (44, 46, 52),
    "nude": (222, 186, 160),
}

_ALL = {name: 1.0 for name in COLOURS}

FAMILIES: dict[str, dict[str, float]] = {
    "general": {
        **_ALL,
        "black": 6,
        "white": 5,
        "ecru": 3,
        "navy": 4,
        "beige": 3,
        "grey marl": 2,
        "light denim": 0.2,
        "mid denim": 0.2,
        "dark denim": 0.2,
        "black denim": 0.0,
        "nude": 0.3,
    },
    "shirt": {
        "white": 8,
        "ecru": 3,
        "baby blue": 5,
        "sky blue": 2,
        "light grey": 2,
        "navy": 3,
        "black": 3,
        "pastel pink": 2,
        "beige": 2,
        "khaki": 1,
        "olive": 1,
        "light denim": 2,
        "mint": 1,
        "lilac": 1,
        "butter yellow": 1,
        "burgundy": 0.5,
    },
    "knit": {
        "ecru": 4,
        "grey marl": 4,
        "charcoal": 3,
        "navy": 4,
        "black": 3,
        "camel": 3,
        "beige": 3,
        "burgundy": 2,
        "bottle green": 2,
        "olive": 1.5,
        "mustard": 1.5,
        "rust": 1.5,
        "lilac": 1,
        "pastel pink": 1,
        "baby blue": 1,
        "red": 1,
        "brown": 1.5,
        "white": 1,
    },
    "classic": {
        "black": 6,
        "navy": 5,
        "charcoal": 4,
        "grey marl": 2,
        "camel": 4,
        "beige": 3,
        "sand": 2,
        "khaki": 2,
        "olive": 2,
        "brown": 2,
        "chocolate": 1,
        "ecru": 2,
        "burgundy": 1,
        "bottle green": 1,
        "light denim": 1,
        "mid denim": 1.5,
        "white": 1,
    },
    "denim": {
        "light denim": 6,
        "mid denim": 8,
        "dark denim": 6,
        "black denim": 4,
        "white": 1.5,
        "ecru": 1,
        "grey marl": 1,
    },
    "leather": {
        "black": 8,
        "brown": 4,
        "chocolate": 2,
        "tan": 4,
        "camel": 2,
        "beige": 2,
        "white": 2,
        "ecru": 1,
        "burgundy": 1.5,
        "navy": 1,
        "olive": 0.5,
        "red": 0.5,
        "light grey": 0.5,
    },
    "sneaker": {
        "white": 10,
        "black": 5,
        "ecru": 2,
        "light grey": 2,
        "navy": 2,
        "beige": 1,
        "red": 0.8,
        "cobalt": 0.8,
        "pastel pink": 0.8,
        "mint": 0.6,
        "khaki": 0.6,
    },
    "frames": {
        "black": 8,
        "chocolate": 3,
        "tan": 2,
        "ecru": 1,
        "light grey": 1,
        "burgundy": 1,
        "navy": 1,
        "mustard": 0.5,
        "pastel pink": 0.5,
    },
    "underwear": {
        "black": 6,
        "white": 6,
        "nude": 4,
        "beige": 2,
        "grey marl": 2,
        "navy": 2,
        "pastel pink": 2,
        "dusty pink": 1.5,
        "burgundy": 1,
        "lilac": 1,
        "baby blue": 1,
    },
    "socks": {
        "white": 6,
        "black": 6,
        "grey marl": 3,
        "navy": 2,
        "ecru": 2,
        "burgundy": 1,
        "bottle green": 1,
        "mustard": 1,
        "pastel pink": 1,
        "red": 1,
    },
}

# Kids' clothes lean to brighter colours: these weights multiply a family's weights in section 3.
KIDS_BOOST: dict[str, float] = {
    name: 2.5
    for name in (
        "red",
        "cobalt",
        "mustard",
        "orange",
        "fuchsia",
        "pastel pink",
        "baby blue",
        "mint",
        "butter yellow",
        "lilac",
        "emerald",
        "sky blue",
    )
}

# Small-print and stripe colours: high contrast with most bases.
ACCENTS: tuple[str, ...] = (
    "white",
    "ecru",
    "black",
    "navy",
    "red",
    "mustard",
    "cobalt",
    "emerald",
    "pastel pink",
    "burgundy",
    "camel",
    "sky blue",
    "orange",
    "lilac",
    "grey marl",
)

METALS: dict[str, RGB] = {"gold": (205, 170, 90), "silver": (196, 198, 204), "gunmetal": (86, 88, 94)}
LENS_TINTS: dict[str, RGB] = {
    "smoke": (34, 34, 38),
    "brown": (70, 46, 30),
    "green": (38, 58, 42),
    "blue": (34, 52, 86),
    "rose": (150, 92, 96),
}
SKIN_TONES: tuple[RGB, ...] = (
    (246, 214, 190),
    (234, 192, 160),
    (214, 166, 128),
    (190, 138, 100),
    (160, 108, 74),
    (120, 78, 52),
    (88, 58, 40),
)
HAIR_COLOURS: tuple[RGB, ...] = (
    (20, 16, 14),
    (48, 32, 22),
    (88, 58, 34),
    (140, 100, 60),
    (196, 160, 104),
    (120, 60, 34),
    (160, 160, 160),
)


def luminance(rgb: RGB) -> float:
    """Perceived brightness in 0..255 (Rec. 601 weights)."""
    return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]


def family_weights(family: str, section: int) -> tuple[list[str], np.ndarray]:
    """Colour names and normalised weights of ``family`` as sold in ``section``."""
    weights = FAMILIES[family]
    names = [name for name, w in weights.items() if w > 0]
    values = np.array([weights[n] * (KIDS_BOOST.get(n, 1.0) if section == 3 else 1.0) for n in names])
    return names, values / values.sum()


def pick_variant_colours(family: str, section: int, count: int, rng: np.random.Generator) -> list[str]:
    """``count`` distinct colour names for one article's variants (repeats only if the family is small)."""
    names, p = family_weights(family, section)
    distinct = min(count, len(names))
    picked = list(rng.choice(len(names), size=distinct, replace=False, p=p))
    while len(picked) < count:
        picked.append(int(rng.choice(len(names), p=p)))
    return [names[i] for i in picked]


def pick_accent(base: str, rng: np.random.Generator, min_contrast: float = 70.0) -> str:
    """An accent colour (pattern, print, stripe) clearly distinguishable from ``base``."""
    base_lum = luminance(COLOURS[base])
    options = [a for a in ACCENTS if a != base and abs(luminance(COLOURS[a]) - base_lum) >= min_contrast]
    if not options:
        options = [a for a in ACCENTS if a != base]
    return options[int(rng.integers(len(options)))]


def jitter(rgb: RGB, rng: np.random.Generator, amount: float = 6.0) -> RGB:
    """A slightly shifted shade, so two products of the same named colour are not pixel-identical."""
    shifted = np.clip(np.asarray(rgb, dtype=np.float64) + rng.normal(0.0, amount, 3), 0, 255)
    return (int(shifted[0]), int(shifted[1]), int(shifted[2]))
