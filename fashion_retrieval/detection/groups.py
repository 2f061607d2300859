"""Coarse garment groups: the detector's classes, and which catalogue categories each one covers.

A detector cannot tell a SHIRT from a T-SHIRT at bundle-photo resolution, but it can find the top; the
group of a crop then restricts the catalogue categories it is matched against. The map is configurable
(``garment_groups`` in ``conf/config.yaml``); its inverse (category -> group) turns ground-truth boxes into
YOLO class ids.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

log = logging.getLogger(__name__)

GROUPS: tuple[str, ...] = ("top", "bottom", "dress", "outerwear", "footwear", "bag", "headwear", "accessory")

# Covers the 24 categories of the synthetic taxonomy (synthetic/taxonomy.py), which follow the real
# challenge's product_description values; `garment_groups` in conf/config.yaml spells out the same map.
DEFAULT_GROUP_CATEGORIES: dict[str, list[str]] = {
    "top": ["SHIRT", "T-SHIRT", "SWEATER", "TOPS AND OTHERS", "SWEATSHIRT", "BRA"],
    "bottom": ["TROUSERS", "JEANS", "SKIRT", "SHORTS", "PANTY/UNDERPANT"],
    "dress": ["DRESS"],
    "outerwear": ["JACKET", "BLAZER", "COAT"],
    "footwear": ["SHOES", "SNEAKERS", "BOOTS", "SOCKS"],
    "bag": ["HAND BAG-RUCKSACK"],
    "headwear": ["HAT"],
    "accessory": ["SCARF", "BELT", "SUNGLASSES"],
}


def validate_label_map(
    mapping: Mapping[str, Sequence[str]], *, what: str, allowed: Sequence[str] | None = None
) -> dict[str, list[str]]:
    """Check a label -> categories map and return it as plain lists, in the given label order.

    Raises ``ValueError`` naming the offending entry for a label outside ``allowed`` (when given), an
    empty category list or an empty map; ``TypeError`` for categories that are not a list. ``what``
    names the map in the messages (``"garment_groups"``, ``"detector.categories"``).
    """
    if not mapping:
        raise ValueError(f"{what}: the map is empty; give at least one label with its categories")
    if allowed is not None:
        unknown = [label for label in mapping if label not in allowed]
        if unknown:
            raise ValueError(f"{what}: unknown label(s) {unknown}; choose from {list(allowed)}")
    result: dict[str, list[str]] = {}
    for label, categories in mapping.items():
        if isinstance(categories, str) or not isinstance(categories, Sequence):
            raise TypeError(f"{what}.{label}: expected a list of categories, got {categories!r}")
        if not categories:
            raise ValueError(f"{what}.{label}: no categories; remove the label or list its categories")
        result[str(label)] = [str(category) for category in categories]
    return result


def validate_group_map(mapping: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """:func:`validate_label_map` for garment groups, plus: each category belongs to one group only
    (the inverse map must be a function, or a box's class would be ambiguous)."""
    groups = validate_label_map(mapping, what="garment_groups", allowed=GROUPS)
    owners: dict[str, list[str]] = {}
    for group, categories in groups.items():
        for category in categories:
            owners.setdefault(category, []).append(group)
    shared = {category: owner for category, owner in owners.items() if len(owner) > 1}
    if shared:
        details = "; ".join(f"{category} in {owner}" for category, owner in shared.items())
        raise ValueError(f"garment_groups: a category may belong to one group only: {details}")
    return groups


def category_groups(groups: Mapping[str, Sequence[str]]) -> dict[str, str]:
    """The inverse of a validated group map: category -> group."""
    return {category: group for group, categories in groups.items() for category in categories}


def count_unmapped(categories: Iterable[str], group_of: Mapping[str, str], *, context: str) -> Counter[str]:
    """Count the categories that have no group, and log them: real data may hold categories the map
    does not know, and their boxes or crops must not vanish without a word."""
    unmapped = Counter(category for category in categories if category not in group_of)
    if unmapped:
        log.warning(
            "%s: %d box(es) of %d categor(ies) with no garment group (add them to garment_groups): %s",
            context,
            sum(unmapped.values()),
            len(unmapped),
            dict(unmapped.most_common()),
        )
    return unmapped
