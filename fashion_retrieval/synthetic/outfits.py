"""Bundle composition: plausible outfits whose listed products follow the real data's skew.

Each bundle is a whole outfit (top + bottom or a dress, usually shoes, maybe outerwear, a bag, a hat,
accessories), of which ``k`` garments are catalogue products listed in the match files: 1..11, most often
3. The other garments are unlisted fillers, as in real lookbook photos where not everything worn is sold
on the page. Products are drawn from the bundle's section only, with Zipf popularity (a few products
appear in many bundles) plus a coverage push so most non-distractor products appear at least once.
Given bundle dates and product debut dates, a product is in fashion around its debut (its popularity
fades over ``lifetime_days`` either side) and the coverage push only reaches products debuting nearby, so
a bundle and its products are close in time, as in the real data (whose image URLs carry upload dates).
Composition is one sequential random stream in the parent process: cheap, and independent of workers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fashion_retrieval.synthetic.catalogue import CatalogueLayout
from fashion_retrieval.synthetic.rng import Domain, item_rng
from fashion_retrieval.synthetic.scene import BundlePlan, WornItem
from fashion_retrieval.synthetic.taxonomy import CATEGORIES, SECTIONS, Slot, categories_for_slot

# How likely a worn garment is to be one of the listed products when the outfit has more than k.
LISTING_PRIORITY: dict[Slot, float] = {
    Slot.INNER_TOP: 1.0, Slot.MID_TOP: 1.0, Slot.BOTTOM: 1.0, Slot.DRESS: 1.2, Slot.OUTER: 1.0,
    Slot.SHOES: 0.7, Slot.BAG: 0.6, Slot.HAT: 0.5, Slot.SCARF: 0.5, Slot.BELT: 0.35, Slot.EYEWEAR: 0.4,
    Slot.SOCKS: 0.3, Slot.BRA: 1.0, Slot.PANTY: 1.0,
}  # fmt: skip
# Probability that an outfit includes an optional slot (before topping up to k listed products).
EXTRA_PROBABILITY: dict[Slot, float] = {
    Slot.SHOES: 0.85, Slot.OUTER: 0.3, Slot.BAG: 0.2, Slot.HAT: 0.06, Slot.SCARF: 0.05, Slot.BELT: 0.07,
    Slot.EYEWEAR: 0.05, Slot.SOCKS: 0.2, Slot.INNER_TOP: 0.2, Slot.MID_TOP: 0.15,
}  # fmt: skip
SHORT_BOTTOMS = {"SHORTS", "SKIRT"}
# Zipf-Mandelbrot offset of the popularity ranks: softens the head, so in a pool of a handful of belts the
# favourite is not in every outfit that lists a belt, while big pools keep a long-tailed reuse.
POPULARITY_OFFSET = 3.0
COVERAGE_WINDOW = 2.0  # lifetimes: how far from its debut an unused product may still be pushed in


def _pick(rng: np.random.Generator, weights: list[float]) -> int:
    """Index drawn with probability proportional to ``weights`` (faster than Generator.choice(p=))."""
    cdf = np.cumsum(weights)
    return int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"))


@dataclass
class _Pool:
    """Eligible products of one (section, category): popularity order, its CDF, and a coverage cursor."""

    products: np.ndarray
    weights: np.ndarray
    cdf: np.ndarray
    cover_order: np.ndarray
    cursor: int = 0


class ProductPicker:
    """Draws products per (section, category) with Zipf popularity and a push to cover unused ones.

    With ``debut`` days ``(P,)`` and ``lifetime_days``, a pick made on ``day`` weighs product ``p`` by
    ``exp(-|day - debut[p]| / lifetime_days)`` (popularity is a fashion), and the coverage push takes the
    unused product debuting nearest to ``day``, if within ``COVERAGE_WINDOW`` lifetimes.
    """

    def __init__(
        self,
        layout: CatalogueLayout,
        rng: np.random.Generator,
        exponent: float,
        coverage: float,
        debut: np.ndarray | None = None,
        lifetime_days: float = 1.0,
    ) -> None:
        self.rng = rng
        self.coverage = coverage
        self.debut = debut
        self.lifetime_days = float(lifetime_days)
        self.used = np.zeros(layout.num_products, bool)
        self.pools: dict[tuple[int, int], _Pool] = {}
        eligible = np.flatnonzero(layout.eligible)
        keys = layout.section[eligible].astype(np.int64) * 1000 + layout.category[eligible]
        for key in np.unique(keys):
            members = eligible[keys == key]
            ranked = members[rng.permutation(len(members))]  # popularity rank is random w.r.t. attributes
            weights = 1.0 / (np.arange(len(ranked)) + POPULARITY_OFFSET) ** exponent
            self.pools[(int(key) // 1000, int(key) % 1000)] = _Pool(
                ranked, weights, np.cumsum(weights), members[rng.permutation(len(members))]
            )

    def has(self, section: int, category: int) -> bool:
        return (section, category) in self.pools

    def supply(self, section: int, slot: Slot) -> int:
        """Number of products that could fill ``slot`` in ``section``."""
        return sum(
            len(self.pools[(section, c)].products)
            for c, _ in categories_for_slot(slot, section)
            if (section, c) in self.pools
        )

    def _use(self, product: int) -> int:
        self.used[product] = True
        return product

    def _uncovered(self, pool: _Pool, day: float | None) -> int | None:
        """The coverage push's product: the next unused one (undated), or the unused one debuting nearest
        to ``day`` within the window (dated); ``None`` when there is none."""
        if day is None or self.debut is None:
            while pool.cursor < len(pool.cover_order) and self.used[pool.cover_order[pool.cursor]]:
                pool.cursor += 1
            return int(pool.cover_order[pool.cursor]) if pool.cursor < len(pool.cover_order) else None
        distance = np.where(self.used[pool.products], np.inf, np.abs(self.debut[pool.products] - day))
        nearest = int(np.argmin(distance))
        if distance[nearest] > COVERAGE_WINDOW * self.lifetime_days:
            return None
        return int(pool.products[nearest])

    def _cdf(self, pool: _Pool, day: float | None) -> np.ndarray:
        if day is None or self.debut is None:
            return pool.cdf
        distance = np.abs(day - self.debut[pool.products])
        cdf = np.cumsum(pool.weights * np.exp(-(distance - distance.min()) / self.lifetime_days))
        return cdf

    def pick(self, section: int, category: int, day: float | None = None) -> int:
        pool = self.pools[(section, category)]
        if self.rng.random() < self.coverage:
            product = self._uncovered(pool, day)
            if product is not None:
                return self._use(product)
        cdf = self._cdf(pool, day)
        index = int(np.searchsorted(cdf, self.rng.random() * cdf[-1], side="right"))
        return self._use(int(pool.products[min(index, len(pool.products) - 1)]))


def _category(
    rng: np.random.Generator,
    slot: Slot,
    section: int,
    picker: ProductPicker | None,
    only: set[str] | None = None,
) -> int | None:
    """A category for ``slot`` in ``section``, restricted to ones with products when ``picker`` is given
    and to the names in ``only`` when given."""
    options = categories_for_slot(slot, section)
    if only is not None:
        options = [(c, w) for c, w in options if CATEGORIES[c].name in only]
    if picker is not None:
        options = [(c, w) for c, w in options if picker.has(section, c)]
    if not options:
        return None
    return options[_pick(rng, [w for _, w in options])][0]


def _outfit(rng: np.random.Generator, section: int, k: int, picker: ProductPicker) -> dict[Slot, int]:
    """Slots worn and their categories: a core (separates, dress or underwear) plus optional extras."""
    slots: dict[Slot, int] = {}
    dress_ok = bool(categories_for_slot(Slot.DRESS, section))
    underwear_ok = bool(categories_for_slot(Slot.PANTY, section))
    r = rng.random()
    if underwear_ok and r < 0.04:
        kind = "underwear"
    elif dress_ok and r < (0.3 if section == 1 else 0.15):
        kind = "dress"
    else:
        kind = "separates"
    if kind == "underwear":
        for slot in (Slot.BRA, Slot.PANTY):
            cat = _category(rng, slot, section, None)
            if cat is not None:
                slots[slot] = cat
        extras = [Slot.SOCKS]
    elif kind == "dress":
        slots[Slot.DRESS] = _category(rng, Slot.DRESS, section, None)  # type: ignore[assignment]
        extras = [Slot.SHOES, Slot.OUTER, Slot.BAG, Slot.HAT, Slot.SCARF, Slot.BELT, Slot.EYEWEAR, Slot.SOCKS]
    else:
        tops = categories_for_slot(Slot.INNER_TOP, section) + categories_for_slot(Slot.MID_TOP, section)
        top = tops[_pick(rng, [w for _, w in tops])][0]
        slots[CATEGORIES[top].slot] = top
        slots[Slot.BOTTOM] = _category(rng, Slot.BOTTOM, section, None)  # type: ignore[assignment]
        second = Slot.MID_TOP if CATEGORIES[top].slot == Slot.INNER_TOP else Slot.INNER_TOP
        extras = [
            Slot.SHOES,
            second,
            Slot.OUTER,
            Slot.BAG,
            Slot.HAT,
            Slot.SCARF,
            Slot.BELT,
            Slot.EYEWEAR,
            Slot.SOCKS,
        ]
    bottom = slots.get(Slot.BOTTOM)
    short = bottom is None or CATEGORIES[bottom].name in SHORT_BOTTOMS
    extras = [s for s in extras if s != Slot.SOCKS or short]  # socks only show under short hems
    remaining: list[Slot] = []
    for slot in extras:
        cat = _category(rng, slot, section, None)
        if cat is None:
            continue
        if rng.random() < EXTRA_PROBABILITY[slot]:
            slots[slot] = cat
        else:
            remaining.append(slot)
    # A big bundle needs more garments to list: add optional ones, in proportion to what the catalogue
    # offers (so listed categories follow the catalogue's mix instead of over-using a few accessories).
    supply = [float(picker.supply(section, slot)) for slot in remaining]
    while len(slots) < k and sum(supply) > 0:
        j = _pick(rng, supply)
        supply[j] = 0.0
        slots[remaining[j]] = _category(rng, remaining[j], section, None)  # type: ignore[assignment]
    return slots


def compose_bundles(
    layout: CatalogueLayout,
    seed: int,
    num_bundles: int,
    test_fraction: float,
    section_weights: tuple[float, ...],
    size_weights: tuple[float, ...],
    popularity_exponent: float,
    coverage_probability: float,
    bundle_days: np.ndarray | None = None,
    product_debut: np.ndarray | None = None,
    lifetime_days: float = 1.0,
) -> list[BundlePlan]:
    """Plan every bundle: section, split, worn garments and which of them are listed products.

    ``bundle_days (num_bundles,)`` and ``product_debut (P,)``: dates; bundles are then composed in date
    order and products picked near their debut (see :class:`ProductPicker`). Plans are in bundle order.
    """
    rng = item_rng(seed, Domain.COMPOSE)
    dated = bundle_days is not None and product_debut is not None
    debut = product_debut if dated else None
    picker = ProductPicker(layout, rng, popularity_exponent, coverage_probability, debut, lifetime_days)
    sections_with_products = {s for s, _ in picker.pools}
    if not sections_with_products:
        raise ValueError("no product can appear in a bundle: lower distractor_fraction or raise num_products")
    section_w = [w if s in sections_with_products else 0.0 for s, w in zip(SECTIONS, section_weights)]
    n_test = round(test_fraction * num_bundles)
    if num_bundles >= 2 and 0 < test_fraction < 1:
        n_test = min(max(n_test, 1), num_bundles - 1)
    test = np.zeros(num_bundles, bool)
    test[item_rng(seed, Domain.SPLIT).permutation(num_bundles)[:n_test]] = True
    plans: list[BundlePlan | None] = [None] * num_bundles
    order = np.argsort(bundle_days, kind="stable").tolist() if dated else range(num_bundles)
    for b in order:
        day = float(bundle_days[b]) if dated else None
        section = SECTIONS[_pick(rng, section_w)]
        k = 1 + _pick(rng, list(size_weights))
        slots = _outfit(rng, section, k, picker)
        order = list(slots)
        listed: set[Slot] = set()
        if k >= len(order):
            listed = set(order)
        else:
            # Core garments are likelier to be listed; so are slots with many products on offer (a slot
            # with none stays an unlisted filler).
            weights = [LISTING_PRIORITY[s] * float(np.sqrt(picker.supply(section, s))) for s in order]
            while len(listed) < k and sum(weights) > 0:
                j = _pick(rng, weights)
                weights[j] = 0.0
                listed.add(order[j])
        items: list[WornItem] = []
        for slot in order:
            category = slots[slot]
            product = -1
            if slot in listed:
                if not picker.has(section, category):  # no product of that exact category: try siblings
                    only = SHORT_BOTTOMS if slot == Slot.BOTTOM and Slot.SOCKS in slots else None
                    category = _category(rng, slot, section, picker, only) or category
                if picker.has(section, category):
                    product = picker.pick(section, category, day)
            items.append(WornItem(slot, category, product))
        if all(item.product < 0 for item in items):  # guarantee one listed product
            for i, item in enumerate(items):
                alt = _category(rng, item.slot, section, picker)
                if alt is not None:
                    items[i] = WornItem(item.slot, alt, picker.pick(section, alt, day))
                    break
        if all(item.product < 0 for item in items):  # the outfit's slots have no products: any will do
            cat = next(c for s, c in picker.pools if s == section)
            new = WornItem(CATEGORIES[cat].slot, cat, picker.pick(section, cat, day))
            same = [i for i, item in enumerate(items) if item.slot == new.slot]
            if same:
                items[same[0]] = new
            else:
                items.append(new)
        plans[b] = BundlePlan(b, section, bool(test[b]), tuple(items))
    return [plan for plan in plans if plan is not None]
