"""Text queries with ground truth from ``product_attributes.csv``: the held-out products, attribute queries
("green striped shirt") and composed queries (this product's image + "in red").

The held-out split is a pure function of (article id, seed) (:func:`heldout_mask`): a text model trains
on the other products' captions only, and whole articles are held out, so no colour variant of a query
product was seen in training. Both query sets search the held-out products only. Definitions and numbers:
docs/text_queries.md.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

HELDOUT_FRACTION = 0.2
QUERY_KEY = ("colour_group", "pattern", "category")  # the attributes an attribute query names


def heldout_mask(
    product_ids: Sequence[str],
    articles: Mapping[str, str] | None,
    fraction: float = HELDOUT_FRACTION,
    seed: int = 0,
) -> np.ndarray:
    """``(P,)`` bool: which products are held out of text training, a hash of ``(seed, article id)`` below
    ``fraction`` (a product without an article is its own), so the split never depends on the order or
    number of products and a text model and the evaluation agree without sharing a file."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"heldout fraction must be in [0, 1], got {fraction}")
    articles = articles or {}
    draws = []
    for product in product_ids:
        digest = hashlib.blake2b(f"{seed}:{articles.get(product, product)}".encode(), digest_size=8).digest()
        draws.append(int.from_bytes(digest, "big") / 2.0**64)
    return np.asarray(draws, dtype=np.float64) < fraction


@dataclass(frozen=True)
class TextQueries:
    """Queries against a gallery of products: ``texts[q]``, and for composed queries the gallery row of
    the query image ``image_rows[q]`` (``None``: text only); ``truth[q]`` lists relevant gallery rows."""

    catalogue_ids: list[str]
    texts: list[str]
    truth: list[list[int]]
    image_rows: list[int] | None = None

    def __len__(self) -> int:
        return len(self.texts)


def attribute_query_text(colour_group: str, pattern: str, category: str) -> str:
    """``"green striped shirt"``; a plain product's query says ``plain``."""
    return f"{colour_group} {pattern} {category}"


def attribute_queries(
    attributes: pd.DataFrame, catalogue_ids: Sequence[str], num_queries: int, seed: int
) -> TextQueries:
    """Up to ``num_queries`` distinct attribute queries (:data:`QUERY_KEY`) drawn with ``seed`` from the
    gallery products' own attributes; the truth of each is every catalogue product with the same colour group,
    pattern and category. ``attributes``: :func:`~fashion_retrieval.data.captions.load_attributes`'s frame
    (it must list every catalogue product)."""
    rows = attributes.loc[list(catalogue_ids), list(QUERY_KEY)]
    keys = list(rows.itertuples(index=False, name=None))
    members: dict[tuple[str, str, str], list[int]] = {}
    for row, key in enumerate(keys):
        members.setdefault(key, []).append(row)
    distinct = sorted(members)
    rng = np.random.default_rng(seed)
    picked = rng.choice(len(distinct), size=min(num_queries, len(distinct)), replace=False)
    chosen = [distinct[int(i)] for i in picked]
    return TextQueries(
        catalogue_ids=list(catalogue_ids),
        texts=[attribute_query_text(*key) for key in chosen],
        truth=[members[key] for key in chosen],
    )


_COMPOSED_PREFIX = "in "


def composed_query_text(colour_group: str) -> str:
    """``"in red"``: the text half of a composed query."""
    return f"{_COMPOSED_PREFIX}{colour_group}"


def requested_colour(text: str) -> str:
    """The colour group a composed query's text asks for (the inverse of :func:`composed_query_text`)."""
    if not text.startswith(_COMPOSED_PREFIX):
        raise ValueError(
            f"not a composed query text: {text!r} (expected {composed_query_text('<colour>')!r})"
        )
    return text.removeprefix(_COMPOSED_PREFIX)


def composed_queries(
    attributes: pd.DataFrame,
    articles: Mapping[str, str],
    catalogue_ids: Sequence[str],
    num_queries: int,
    seed: int,
) -> TextQueries:
    """Up to ``num_queries`` composed queries drawn with ``seed``: the image of a catalogue product and
    ``"in <colour group>"``, whose one relevant product is the same article's variant in that colour.

    Candidates: every ordered pair (source, target) of variants of one article whose colour groups differ,
    the target's colour group naming no other variant of the article (so the answer is unique).
    """
    groups = attributes.loc[list(catalogue_ids), "colour_group"].tolist()
    by_article: dict[str, list[int]] = {}
    for row, product in enumerate(catalogue_ids):
        if product in articles:
            by_article.setdefault(articles[product], []).append(row)
    candidates: list[tuple[int, int]] = []
    for article in sorted(by_article):
        rows = by_article[article]
        counts = pd.Series([groups[r] for r in rows]).value_counts()
        for source in rows:
            for target in rows:
                if groups[target] != groups[source] and counts[groups[target]] == 1:
                    candidates.append((source, target))
    rng = np.random.default_rng(seed)
    picked = rng.choice(len(candidates), size=min(num_queries, len(candidates)), replace=False)
    chosen = [candidates[int(i)] for i in sorted(picked)]
    return TextQueries(
        catalogue_ids=list(catalogue_ids),
        texts=[composed_query_text(groups[target]) for _, target in chosen],
        truth=[[target] for _, target in chosen],
        image_rows=[source for source, _ in chosen],
    )
