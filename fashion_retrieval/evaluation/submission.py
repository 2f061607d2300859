"""The challenge submission: write, validate and score ``bundle_asset_id,product_asset_id`` CSV files.

A valid submission lists exactly ``k`` (default 15) distinct catalogue products for every test bundle and
nothing else. The score is the challenge's recall@k: ground-truth pairs found in the first ``k`` rows of their
bundle over all ground-truth pairs.
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from fashion_retrieval.data.catalogue import Catalogue
from fashion_retrieval.evaluation.metrics import GroundTruth, hit_matrix, metrics_from_hits
from fashion_retrieval.index.eligibility import popular_within_section
from fashion_retrieval.io import atomic_open

__all__ = [
    "BUNDLE_COLUMN",
    "DEFAULT_K",
    "PRODUCT_COLUMN",
    "SubmissionError",
    "read_pairs",
    "score_submission",
    "validate_submission",
    "write_submission",
    "write_test_submission",
]

BUNDLE_COLUMN = "bundle_asset_id"
PRODUCT_COLUMN = "product_asset_id"
COLUMNS = (BUNDLE_COLUMN, PRODUCT_COLUMN)
DEFAULT_K = 15
MAX_EXAMPLES = 5

log = logging.getLogger(__name__)

PairSource = pd.DataFrame | str | os.PathLike[str]


class SubmissionError(ValueError):
    """A submission (or truth) file breaks the challenge format; the message names the offenders."""


def write_submission(
    path: str | os.PathLike[str],
    bundle_ids: Sequence[str],
    ranked_product_ids: Sequence[Sequence[str]],
    k: int = DEFAULT_K,
) -> None:
    """Write ``len(bundle_ids) * k`` rows atomically; ``ranked_product_ids[i]``: ``k`` unique ids, best first.

    Raises ``SubmissionError`` naming the bundle whose row is malformed; nothing is written then.
    """
    _check_k(k)
    if len(bundle_ids) != len(ranked_product_ids):
        raise SubmissionError(
            f"{len(bundle_ids)} bundle ids but {len(ranked_product_ids)} rows of ranked product ids"
        )
    rows: list[tuple[str, str]] = []
    seen_bundles: set[str] = set()
    for position, (bundle, ranked) in enumerate(zip(bundle_ids, ranked_product_ids, strict=True)):
        if not isinstance(bundle, str) or not bundle:
            raise SubmissionError(f"bundle id at position {position} must be a non-empty str, got {bundle!r}")
        if bundle in seen_bundles:
            raise SubmissionError(f"bundle {bundle} appears more than once (again at position {position})")
        seen_bundles.add(bundle)
        products = list(ranked)
        if len(products) != k:
            raise SubmissionError(f"bundle {bundle} has {len(products)} products, expected exactly {k}")
        for product in products:
            if not isinstance(product, str) or not product:
                raise SubmissionError(
                    f"bundle {bundle} has a product id that is not a non-empty str: {product!r}"
                )
        if len(set(products)) != k:
            repeated = sorted({p for p in products if products.count(p) > 1})
            raise SubmissionError(f"bundle {bundle} lists product(s) more than once: {', '.join(repeated)}")
        rows.extend((bundle, product) for product in products)
    with atomic_open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(COLUMNS)
        writer.writerows(rows)


def write_test_submission(
    path: str | Path,
    catalogue: Catalogue,
    product_ids: Sequence[str],
    bundle_ids: Sequence[str],
    ranked: np.ndarray,
    catalogue_sections: np.ndarray,
    k: int,
) -> int:
    """Write the submission of every test bundle of ``catalogue``, in the test file's order: the searched
    ``bundle_ids`` with their ``(Q, k)`` int indices ``ranked`` into ``product_ids`` (``G`` ids, the index's),
    and each test bundle without a photo with its section's most popular products
    (:func:`~fashion_retrieval.index.eligibility.popular_within_section`; ``catalogue_sections (G,)`` int).
    Returns the number of bundles written."""
    if (ranked < 0).any():
        raise ValueError(f"fewer than {k} products are eligible for some bundle; the catalogue is too small")
    rows = dict(zip(bundle_ids, np.asarray(ranked)))
    popularity = catalogue.product_match_counts()
    sections = catalogue.bundle_sections()
    for bundle in catalogue.test_bundle_ids:
        if bundle not in rows:
            rows[bundle] = popular_within_section(popularity, catalogue_sections, sections[bundle], k)
            if (rows[bundle] < 0).any():
                raise ValueError(f"{bundle}: fewer than {k} products of its section {sections[bundle]}")
    filled = len(catalogue.test_bundle_ids) - len(bundle_ids)
    if filled:
        log.warning(
            "submission: %d test bundle(s) without a photo got their section's %d most popular products",
            filled,
            k,
        )
    ids = np.asarray(product_ids)
    order = list(catalogue.test_bundle_ids)
    write_submission(path, order, [ids[rows[b]].tolist() for b in order], k=k)
    return len(order)


def read_pairs(source: PairSource, what: str = "submission") -> pd.DataFrame:
    """Load a ``bundle_asset_id,product_asset_id`` table as strings (empty cells are ``""``, never NaN).

    ``source``: a path or a DataFrame (copied). ``what`` names the table in error messages.
    """
    if isinstance(source, pd.DataFrame):
        frame = source.copy()
    else:
        try:
            frame = pd.read_csv(source, dtype=str, keep_default_na=False)
        except FileNotFoundError:
            raise FileNotFoundError(f"{what} file {source} does not exist") from None
        except pd.errors.EmptyDataError:
            raise SubmissionError(f"{what} file {source} is empty (no header)") from None
        except pd.errors.ParserError as error:
            raise SubmissionError(f"{what} file {source} is not valid CSV: {error}") from error
    missing = [column for column in COLUMNS if column not in frame.columns]
    if missing:
        raise SubmissionError(
            f"{_describe(source, what)} lacks column(s) {', '.join(missing)} "
            f"(has: {', '.join(map(str, frame.columns)) or 'none'})"
        )
    for column in COLUMNS:
        values = frame[column]
        frame[column] = values.astype(object).where(values.notna(), "").astype(str)
    return frame.reset_index(drop=True)


def validate_submission(
    submission: PairSource,
    test_bundle_ids: Collection[str],
    catalogue_ids: Collection[str],
    k: int = DEFAULT_K,
    product_section: Mapping[str, int] | None = None,
    bundle_section: Mapping[str, int] | None = None,
) -> None:
    """Raise ``SubmissionError`` listing every way ``submission`` breaks the challenge format.

    Checks: exactly the two columns; no empty ids; every test bundle present with exactly ``k`` rows and no
    other bundle; only catalogue products; no repeated (bundle, product) row; and, given both section maps, no
    product of a known section in a bundle of another section (products without a known section are allowed).
    Rows are numbered from 0 in file order (CSV line = row + 2).
    """
    _check_k(k)
    if (product_section is None) != (bundle_section is None):
        raise ValueError("product_section and bundle_section must be given together")
    frame = read_pairs(submission, "submission")
    where = _describe(submission, "submission")
    bundles, products = frame[BUNDLE_COLUMN], frame[PRODUCT_COLUMN]
    test_set = set(test_bundle_ids)
    problems: list[str] = []

    extra = [str(column) for column in frame.columns if column not in COLUMNS]
    if extra:
        problems.append(f"unexpected column(s) {', '.join(extra)} (only {', '.join(COLUMNS)} allowed)")
    for column, values in ((BUNDLE_COLUMN, bundles), (PRODUCT_COLUMN, products)):
        empty = np.flatnonzero((values == "").to_numpy())
        if empty.size:
            problems.append(_problem(f"empty {column}", [_row(i) for i in empty[:MAX_EXAMPLES]], empty.size))

    present = pd.unique(bundles[bundles != ""])
    outside = [bundle for bundle in present if bundle not in test_set]
    if outside:
        problems.append(_problem("bundle(s) not in the test set", outside[:MAX_EXAMPLES], len(outside)))
    present_set = set(present)
    absent = sorted(bundle for bundle in test_set if bundle not in present_set)
    if absent:
        problems.append(_problem("test bundle(s) missing", absent[:MAX_EXAMPLES], len(absent)))

    counts = bundles[bundles != ""].value_counts(sort=False)
    wrong = counts[counts != k]
    if len(wrong):
        examples = [f"{bundle} has {count} rows" for bundle, count in wrong.iloc[:MAX_EXAMPLES].items()]
        problems.append(_problem(f"bundle(s) without exactly {k} rows", examples, len(wrong)))

    unknown = np.flatnonzero((~products.isin(list(set(catalogue_ids))) & (products != "")).to_numpy())
    if unknown.size:
        examples = [f"{_row(i)}: {products.iloc[i]}" for i in unknown[:MAX_EXAMPLES]]
        problems.append(_problem("product(s) not in the catalogue", examples, unknown.size))

    first_row = pd.Series(np.arange(len(frame)), index=frame.index).groupby([bundles, products], sort=False)
    first_row = first_row.transform("min").to_numpy()
    repeats = np.flatnonzero(first_row != np.arange(len(frame)))
    if repeats.size:
        examples = [
            f"{_row(i)} repeats {_row(first_row[i])} ({bundles.iloc[i]}, {products.iloc[i]})"
            for i in repeats[:MAX_EXAMPLES]
        ]
        problems.append(_problem("repeated (bundle, product) row(s)", examples, repeats.size))

    if product_section is not None and bundle_section is not None:
        # A plain lookup keeps section labels as given (Series.map would turn ints into floats around NaN).
        product_sec = pd.Series([product_section.get(p) for p in products], dtype=object)
        bundle_sec = pd.Series([bundle_section.get(b) for b in bundles], dtype=object)
        clash = np.flatnonzero(
            (product_sec.notna() & bundle_sec.notna() & (product_sec != bundle_sec)).to_numpy()
        )
        if clash.size:
            examples = [
                f"{_row(i)}: product {products.iloc[i]} (section {product_sec.iloc[i]}) in bundle "
                f"{bundles.iloc[i]} (section {bundle_sec.iloc[i]})"
                for i in clash[:MAX_EXAMPLES]
            ]
            problems.append(
                _problem("product(s) placed in a bundle of another section", examples, clash.size)
            )

    if problems:
        raise SubmissionError(f"{where} is invalid:\n" + "\n".join(f"- {problem}" for problem in problems))


def score_submission(submission: PairSource, truth: PairSource, k: int = DEFAULT_K) -> dict[str, float]:
    """Challenge score of ``submission`` against ``truth`` (both ``bundle_asset_id,product_asset_id``).

    Only the first ``k`` rows of each bundle, in file order, count. Queries are the truth bundles; a truth
    bundle absent from the submission scores zero, submitted bundles without truth are ignored (counted).
    Returns ``recall@k`` (the challenge metric: hits / truth pairs), ``per_query_recall@k``, ``hit_rate@k``,
    ``precision@k``, ``map@k`` (see ``metrics``), and counts ``num_bundles``, ``num_truth_pairs``,
    ``num_hits``, ``num_bundles_missing``, ``num_bundles_not_in_truth``. Empty cells or repeated pairs in
    ``truth`` raise ``SubmissionError``.
    """
    _check_k(k)
    sub = read_pairs(submission, "submission")
    gold = read_pairs(truth, "truth")
    _check_truth(gold, _describe(truth, "truth"))

    bundles = pd.Index(pd.unique(gold[BUNDLE_COLUMN]))
    products = pd.Index(pd.unique(pd.concat([gold[PRODUCT_COLUMN], sub[PRODUCT_COLUMN]], ignore_index=True)))
    gt = GroundTruth.from_pairs(
        bundles.get_indexer(gold[BUNDLE_COLUMN]), products.get_indexer(gold[PRODUCT_COLUMN]), len(bundles)
    )

    head = sub.groupby(BUNDLE_COLUMN, sort=False).head(k)
    rank = head.groupby(BUNDLE_COLUMN, sort=False).cumcount().to_numpy()
    query = bundles.get_indexer(head[BUNDLE_COLUMN])
    known = query >= 0
    topk = np.full((len(bundles), k), -1, dtype=np.int64)
    topk[query[known], rank[known]] = products.get_indexer(head[PRODUCT_COLUMN])[known]

    hits = hit_matrix(topk, gt)
    metrics = metrics_from_hits(hits, gt.num_relevant, ks=(k,))
    submitted = pd.unique(sub[BUNDLE_COLUMN])
    return {
        f"recall@{k}": metrics[f"recall@{k}"],
        f"per_query_recall@{k}": metrics[f"per_query_recall@{k}"],
        f"hit_rate@{k}": metrics[f"hit_rate@{k}"],
        f"precision@{k}": metrics[f"precision@{k}"],
        f"map@{k}": metrics[f"map@{k}"],
        "num_bundles": float(len(bundles)),
        "num_truth_pairs": float(len(gold)),
        "num_hits": float(hits.sum()),
        "num_bundles_missing": float(len(bundles) - len(set(submitted) & set(bundles))),
        "num_bundles_not_in_truth": float(int((bundles.get_indexer(submitted) < 0).sum())),
    }


def _check_truth(gold: pd.DataFrame, where: str) -> None:
    for column in COLUMNS:
        empty = np.flatnonzero((gold[column] == "").to_numpy())
        if empty.size:
            raise SubmissionError(
                _problem(f"{where}: empty {column}", [_row(i) for i in empty[:MAX_EXAMPLES]], empty.size)
            )
    repeats = np.flatnonzero(gold.duplicated(list(COLUMNS)).to_numpy())
    if repeats.size:
        examples = [
            f"{_row(i)} ({gold[BUNDLE_COLUMN].iloc[i]}, {gold[PRODUCT_COLUMN].iloc[i]})"
            for i in repeats[:MAX_EXAMPLES]
        ]
        raise SubmissionError(_problem(f"{where}: repeated (bundle, product) row(s)", examples, repeats.size))


def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")


def _describe(source: PairSource, what: str) -> str:
    return f"{what} DataFrame" if isinstance(source, pd.DataFrame) else f"{what} file {source}"


def _row(position: int) -> str:
    return f"row {int(position)} (line {int(position) + 2})"


def _problem(description: str, examples: Sequence[str], total: int) -> str:
    shown = "; ".join(str(example) for example in examples)
    more = "; ..." if total > len(examples) else ""
    return f"{int(total)} {description}: {shown}{more}"
