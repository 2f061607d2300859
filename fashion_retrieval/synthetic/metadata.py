"""Image URL metadata of the synthetic data: 11-digit article codes and ``ts=`` upload timestamps.

The real challenge's image URLs name an 11-digit code (8-digit article + 3-digit colour, so colour
variants share the first 8 digits) and carry a millisecond upload timestamp. Their statistics, which the
generator reproduces: a bundle and its true products are a median ~7 days apart, against ~85 days for a
random product, and 15.4% of true pairs share the bundle's exact 11-digit code (an independent count on
the real CSVs with the file-name parser; earlier docs said ~30%, which is what naming a listed product in
every bundle gives at our bundle sizes). So a bundle URL names one of its listed products (its lead) in
``LISTED_CODE_PROBABILITY`` of the bundles, and otherwise an unlisted garment's code, in no product's URL.
The timeline: bundles and product debuts are dated uniformly over ``SPAN_DAYS`` (a random
product is then about 0.29 x span away); bundles are composed in date order and a product is in fashion
for about ``LIFETIME_DAYS`` either side of its debut
(:func:`~fashion_retrieval.synthetic.outfits.compose_bundles`); its packshot is uploaded at its debut
plus a small jitter.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from fashion_retrieval.data.catalogue import ARTICLE_PREFIX_DIGITS
from fashion_retrieval.synthetic.catalogue import CatalogueLayout
from fashion_retrieval.synthetic.rng import Domain, item_rng
from fashion_retrieval.synthetic.scene import BundlePlan, GarmentBox

EPOCH_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z, day 0 of the timeline
DAY_MS = 86_400_000
SPAN_DAYS = 290.0
LIFETIME_DAYS = 4.0  # tuned so the quickstart size (2,000 x 1,500) gives a ~7-day median true-pair gap
UPLOAD_JITTER_DAYS = 2.0  # Laplace scale of a packshot's upload date around its first listing
# Half the bundles name a listed product: at the quickstart's ~3.3 listed products per bundle, ~15% of true
# pairs then share the bundle's code, the real 15.4%.
LISTED_CODE_PROBABILITY = 0.5
_RANDOM_PAIRS = 200_000  # (bundle, product) pairs sampled for the random-gap statistic


def bundle_days(seed: int, num_bundles: int) -> np.ndarray:
    """``(B,)`` float64 day of each bundle photo, uniform over the timeline."""
    return item_rng(seed, Domain.TIMESTAMP, 0).uniform(0.0, SPAN_DAYS, num_bundles)


def product_codes(seed: int, layout: CatalogueLayout) -> list[str]:
    """``P`` distinct 11-digit codes: a random 8-digit article code shared by the article's colour
    variants, then a 3-digit colour code distinct within the article."""
    rng = item_rng(seed, Domain.TIMESTAMP, 1)
    articles = rng.choice(10**8, size=len(layout.article_category), replace=False)
    colours = [rng.choice(np.arange(1, 1000), size=int(n), replace=False) for n in layout.article_variants]
    return [
        f"{int(articles[a]):08d}{int(colours[a][v]):03d}"
        for a, v in zip(layout.article.tolist(), layout.variant.tolist())
    ]


def debut_days(seed: int, num_products: int) -> np.ndarray:
    """``(P,)`` float64 day each product enters the catalogue, uniform over the timeline."""
    return item_rng(seed, Domain.TIMESTAMP, 2).uniform(0.0, SPAN_DAYS, num_products)


def upload_days(seed: int, debut: np.ndarray) -> np.ndarray:
    """``(P,)`` float64 upload day of each packshot: its debut plus a Laplace jitter."""
    return debut + item_rng(seed, Domain.TIMESTAMP, 3).laplace(0.0, UPLOAD_JITTER_DAYS, len(debut))


def to_ms(days: np.ndarray) -> np.ndarray:
    """``(N,)`` int64 Unix milliseconds of timeline days."""
    return EPOCH_MS + np.round(np.asarray(days, np.float64) * DAY_MS).astype(np.int64)


def lead_product(seed: int, plan: BundlePlan, boxes: Sequence[GarmentBox]) -> int:
    """The product whose code the bundle URL carries: one of its visible listed products, drawn per bundle
    (the plan's listed products when none is visible)."""
    options = [box.product for box in boxes] or [item.product for item in plan.items if item.product >= 0]
    return int(options[int(item_rng(seed, Domain.TIMESTAMP, 4, plan.index).integers(len(options)))])


def bundle_code(
    seed: int, plan: BundlePlan, boxes: Sequence[GarmentBox], codes: Sequence[str], taken: set[str]
) -> str:
    """The 11-digit code of a bundle's URL: its lead product's (:func:`lead_product`) with probability
    ``LISTED_CODE_PROBABILITY``, else a code outside ``taken`` (every product's code): an unlisted garment."""
    rng = item_rng(seed, Domain.TIMESTAMP, 6, plan.index)
    if rng.random() < LISTED_CODE_PROBABILITY:
        return codes[lead_product(seed, plan, boxes)]
    while True:
        code = f"{int(rng.integers(10**11)):011d}"
        if code not in taken:
            return code


def url_statistics(
    seed: int,
    pair_bundles: np.ndarray,
    pair_products: np.ndarray,
    bundle_ms: np.ndarray,
    product_ms: np.ndarray,
    bundle_codes: Sequence[str],
    codes: Sequence[str],
) -> dict[str, Any]:
    """What metadata.json records about the URLs: median day gaps of the true ``(bundle, product)`` pairs
    (index arrays) and of random pairs (a fixed sample), and the share of true pairs whose product shares
    the bundle's 11-digit code or its 8-digit article."""
    b, p = np.asarray(pair_bundles, np.int64), np.asarray(pair_products, np.int64)
    rng = item_rng(seed, Domain.TIMESTAMP, 5)
    rb = rng.integers(0, len(bundle_ms), _RANDOM_PAIRS)
    rp = rng.integers(0, len(product_ms), _RANDOM_PAIRS)
    true_gap = np.abs(bundle_ms[b] - product_ms[p]) / DAY_MS
    random_gap = np.abs(bundle_ms[rb] - product_ms[rp]) / DAY_MS
    same_code = [bundle_codes[i] == codes[j] for i, j in zip(b.tolist(), p.tolist())]
    same_article = [
        bundle_codes[i][:ARTICLE_PREFIX_DIGITS] == codes[j][:ARTICLE_PREFIX_DIGITS]
        for i, j in zip(b.tolist(), p.tolist())
    ]
    return {
        "median_true_pair_gap_days": round(float(np.median(true_gap)), 3) if len(b) else None,
        "median_random_pair_gap_days": round(float(np.median(random_gap)), 3),
        "true_pairs_within_30_days": round(float(np.mean(true_gap <= 30)), 4) if len(b) else None,
        "true_pairs_same_code": round(float(np.mean(same_code)), 4) if len(b) else None,
        "true_pairs_same_article": round(float(np.mean(same_article)), 4) if len(b) else None,
        "timeline": {
            "epoch_ms": EPOCH_MS,
            "span_days": SPAN_DAYS,
            "lifetime_days": LIFETIME_DAYS,
            "upload_jitter_days": UPLOAD_JITTER_DAYS,
        },
    }
