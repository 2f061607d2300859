"""The product taxonomy: categories, their frequency per section, outfit slot and drawing layer.

Names and skew follow the real challenge's ``product_description`` values: a few categories (TROUSERS,
SHIRT, T-SHIRT) dominate the catalogue and a long tail of accessories and underwear follows.
Sections are the challenge's ``bundle_id_section`` values; think 1 = woman, 2 = man, 3 = kids.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

SECTIONS: tuple[int, ...] = (1, 2, 3)


class Slot(str, Enum):
    """Where a garment goes in an outfit; an outfit holds at most one garment per slot."""

    INNER_TOP = "inner_top"
    MID_TOP = "mid_top"
    BOTTOM = "bottom"
    DRESS = "dress"
    OUTER = "outer"
    SHOES = "shoes"
    SOCKS = "socks"
    BAG = "bag"
    HAT = "hat"
    SCARF = "scarf"
    BELT = "belt"
    EYEWEAR = "eyewear"
    BRA = "bra"
    PANTY = "panty"


# Drawing order in a bundle image: a higher layer is painted later and hides lower ones
# (socks under shoes under trousers, tops over bottoms, outerwear over tops, bags over everything).
LAYER: dict[Slot, int] = {
    Slot.SOCKS: 1,
    Slot.SHOES: 2,
    Slot.PANTY: 3,
    Slot.BRA: 4,
    Slot.BOTTOM: 5,
    Slot.INNER_TOP: 6,
    Slot.DRESS: 6,
    Slot.MID_TOP: 7,
    Slot.BELT: 8,
    Slot.OUTER: 9,
    Slot.SCARF: 10,
    Slot.HAT: 10,
    Slot.EYEWEAR: 11,
    Slot.BAG: 12,
}


@dataclass(frozen=True)
class Category:
    """One ``product_description`` value.

    ``weight``: relative catalogue frequency; ``section_factor``: multiplier per section (0 = never sold
    there); ``family``: the silhouette builder in garments.py; ``palette``: colour family in palette.py.
    """

    name: str
    weight: float
    slot: Slot
    family: str
    palette: str
    section_factor: tuple[float, float, float] = (1.0, 1.0, 1.0)


CATEGORIES: tuple[Category, ...] = (
    Category("TROUSERS", 14.0, Slot.BOTTOM, "trousers", "general"),
    Category("SHIRT", 11.0, Slot.INNER_TOP, "top", "shirt", (1.0, 1.4, 0.8)),
    Category("T-SHIRT", 11.0, Slot.INNER_TOP, "top", "general", (1.0, 1.2, 1.4)),
    Category("DRESS", 7.0, Slot.DRESS, "dress", "general", (1.6, 0.0, 1.0)),
    Category("SWEATER", 7.0, Slot.MID_TOP, "top", "knit"),
    Category("TOPS AND OTHERS", 6.0, Slot.INNER_TOP, "top", "general", (1.6, 0.3, 0.8)),
    Category("JEANS", 6.0, Slot.BOTTOM, "trousers", "denim"),
    Category("JACKET", 5.0, Slot.OUTER, "outer", "classic"),
    Category("SKIRT", 3.5, Slot.BOTTOM, "skirt", "general", (1.8, 0.0, 0.8)),
    Category("BLAZER", 3.5, Slot.OUTER, "outer", "classic", (1.0, 1.3, 0.2)),
    Category("SHORTS", 3.5, Slot.BOTTOM, "trousers", "general", (0.8, 1.0, 1.6)),
    Category("COAT", 3.0, Slot.OUTER, "outer", "classic"),
    Category("SWEATSHIRT", 3.0, Slot.MID_TOP, "top", "general", (0.8, 1.2, 1.5)),
    Category("SHOES", 3.0, Slot.SHOES, "shoes", "leather"),
    Category("SNEAKERS", 2.5, Slot.SHOES, "shoes", "sneaker", (0.8, 1.2, 1.5)),
    Category("BOOTS", 2.0, Slot.SHOES, "shoes", "leather"),
    Category("HAND BAG-RUCKSACK", 2.5, Slot.BAG, "bag", "leather", (1.6, 0.5, 0.4)),
    Category("HAT", 1.2, Slot.HAT, "hat", "general"),
    Category("SCARF", 1.0, Slot.SCARF, "scarf", "knit"),
    Category("BELT", 1.0, Slot.BELT, "belt", "leather", (1.0, 1.0, 0.4)),
    Category("SUNGLASSES", 0.8, Slot.EYEWEAR, "sunglasses", "frames", (1.0, 1.0, 0.5)),
    Category("BRA", 1.0, Slot.BRA, "bra", "underwear", (2.0, 0.0, 0.3)),
    Category("PANTY/UNDERPANT", 1.0, Slot.PANTY, "panty", "underwear", (1.0, 1.0, 1.0)),
    Category("SOCKS", 0.7, Slot.SOCKS, "socks", "socks"),
)

CATEGORY_INDEX: dict[str, int] = {category.name: i for i, category in enumerate(CATEGORIES)}


def category_weights(section: int) -> list[float]:
    """Relative catalogue frequency of each category (in CATEGORIES order) within ``section``."""
    return [c.weight * c.section_factor[section - 1] for c in CATEGORIES]


def categories_for_slot(slot: Slot, section: int) -> list[tuple[int, float]]:
    """(category index, weight) of the categories that fill ``slot`` in ``section``; weight > 0."""
    weights = category_weights(section)
    return [(i, weights[i]) for i, c in enumerate(CATEGORIES) if c.slot == slot and weights[i] > 0]
