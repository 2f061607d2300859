"""Metadata priors from the image URLs (re-ranking steps; the chain's contract is in
:mod:`fashion_retrieval.rerank.chain`).

Inditex image URLs carry an upload timestamp (``ts=``, milliseconds) and an 11-digit code (8-digit article
+ 3-digit colour); a bundle URL names its lead product's code
(:func:`~fashion_retrieval.data.catalogue.parse_image_url`). In the real data a bundle and its products are
a median ~7 days apart against ~85 for a random product, and colour variants share the 8-digit article.

* :class:`TimestampPrior`: ``score x (floor + (1 - floor) exp(-dt^2 / 2 sigma^2))``, ``dt`` the days
  between the query's bundle photo and the candidate's packshot (the winners' prior: floor 0.7, sigma 30
  days);
* :class:`ArticlePrefixBonus`: ``score x (1 + weight)`` when the candidate shares the query bundle's 8-digit
  article, ``x (1 + code_weight)`` instead when it shares the full 11-digit code.

Rows whose query or candidate lacks the metadata are left untouched; a context without any (old synthetic
data, other datasets) leaves every score as it is, which the step logs once.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from fashion_retrieval.data.catalogue import ARTICLE_PREFIX_DIGITS, CODE_DIGITS
from fashion_retrieval.rerank.chain import RerankContext, check_factor, resort

log = logging.getLogger(__name__)

DAY_MS = 86_400_000.0


def timestamp_factor(dt_days: np.ndarray, floor: float, sigma_days: float) -> np.ndarray:
    """``floor + (1 - floor) exp(-dt^2 / (2 sigma^2))`` of day gaps ``dt_days`` (any shape), float32;
    NaN gaps (a timestamp missing) give 1."""
    dt = np.asarray(dt_days, dtype=np.float64)
    factor = floor + (1.0 - floor) * np.exp(-(dt**2) / (2.0 * sigma_days**2))
    return np.where(np.isnan(dt), 1.0, factor).astype(np.float32)


def _candidate_values(values: np.ndarray, candidates: np.ndarray, missing: float | int) -> np.ndarray:
    """``values[candidates]`` with ``missing`` on padding (``-1``)."""
    candidates = np.asarray(candidates, dtype=np.int64)
    return np.where(candidates >= 0, np.asarray(values)[np.maximum(candidates, 0)], missing)


class TimestampPrior:
    """Score x ``floor + (1 - floor) exp(-dt^2 / 2 sigma^2)``, ``dt = |bundle ts - packshot ts|`` in days.
    Needs ``RerankContext.query_timestamps`` and ``CatalogueMetadata.timestamps``."""

    def __init__(self, floor: float = 0.7, sigma_days: float = 30.0) -> None:
        self.floor, self.sigma_days = float(floor), float(sigma_days)
        if not 0.0 <= self.floor <= 1.0:
            raise ValueError(f"TimestampPrior: floor must be in [0, 1], got {floor}")
        if not (math.isfinite(self.sigma_days) and self.sigma_days > 0):
            raise ValueError(
                f"TimestampPrior: sigma_days must be a positive number of days, got {sigma_days}"
            )
        self._warned = False

    def factors(self, candidates: np.ndarray, context: RerankContext) -> np.ndarray:
        """``(Q, N)`` float32 factor of each candidate (1 where a timestamp is missing)."""
        query, catalogue = context.query_timestamps, context.catalogue.timestamps
        if query is None or catalogue is None or np.isnan(query).all() or np.isnan(catalogue).all():
            if not self._warned:
                log.warning("TimestampPrior: the data has no image timestamps; scores are left unchanged")
                self._warned = True
            return np.ones(np.shape(candidates), dtype=np.float32)
        product = _candidate_values(np.asarray(catalogue, np.float64), candidates, np.nan)
        dt = np.abs(np.asarray(query, np.float64)[:, None] - product) / DAY_MS
        return timestamp_factor(dt, self.floor, self.sigma_days)

    def __call__(
        self, candidates: np.ndarray, scores: np.ndarray, context: RerankContext
    ) -> tuple[np.ndarray, np.ndarray]:
        return resort(candidates, scores * self.factors(candidates, context))

    def __repr__(self) -> str:
        return f"TimestampPrior(floor={self.floor}, sigma_days={self.sigma_days})"


class ArticlePrefixBonus:
    """Score x ``(1 + weight)`` when the candidate's code shares the query bundle's first 8 digits (same
    article, any colour), x ``(1 + code_weight)`` instead when it shares all 11 (``code_weight`` defaults to
    ``weight``). Needs ``RerankContext.query_codes`` and ``CatalogueMetadata.codes``."""

    def __init__(self, weight: float = 0.1, code_weight: float | None = None) -> None:
        self.weight = check_factor("ArticlePrefixBonus", "weight", weight)
        self.code_weight = check_factor(
            "ArticlePrefixBonus", "code_weight", self.weight if code_weight is None else code_weight
        )
        self._warned = False

    def factors(self, candidates: np.ndarray, context: RerankContext) -> np.ndarray:
        """``(Q, N)`` float32 factor of each candidate (1 where a code is missing)."""
        query, catalogue = context.query_codes, context.catalogue.codes
        if (
            query is None
            or catalogue is None
            or (np.asarray(query) < 0).all()
            or (np.asarray(catalogue) < 0).all()
        ):
            if not self._warned:
                log.warning("ArticlePrefixBonus: the data has no article codes; scores are left unchanged")
                self._warned = True
            return np.ones(np.shape(candidates), dtype=np.float32)
        product = _candidate_values(np.asarray(catalogue, np.int64), candidates, -1)
        query = np.asarray(query, np.int64)[:, None]
        known = (query >= 0) & (product >= 0)
        colour = 10 ** (CODE_DIGITS - ARTICLE_PREFIX_DIGITS)
        same_article = known & (query // colour == product // colour)
        same_code = known & (query == product)
        factor = np.where(same_code, 1.0 + self.code_weight, np.where(same_article, 1.0 + self.weight, 1.0))
        return factor.astype(np.float32)

    def __call__(
        self, candidates: np.ndarray, scores: np.ndarray, context: RerankContext
    ) -> tuple[np.ndarray, np.ndarray]:
        return resort(candidates, scores * self.factors(candidates, context))

    def __repr__(self) -> str:
        return f"ArticlePrefixBonus(weight={self.weight}, code_weight={self.code_weight})"
