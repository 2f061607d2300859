"""URL metadata priors: the timestamp prior and the article-prefix bonus against slow references, rows
without metadata left untouched, the catalogue's metadata reaching the context, and the configs."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pytest
from hydra.utils import instantiate

from fashion_retrieval.data.catalogue import load_catalogue
from fashion_retrieval.index.eligibility import Eligibility
from fashion_retrieval.rerank.chain import CatalogueMetadata, RerankChain, RerankContext, resort
from fashion_retrieval.rerank.priors import DAY_MS, ArticlePrefixBonus, TimestampPrior, timestamp_factor
from tests.test_configs import compose_config

Q, N, G = 5, 8, 20
T0 = 1.7e12


def case(seed: int) -> tuple[np.ndarray, np.ndarray, RerankContext]:
    """Sorted candidates with padding, scores in [0, 1], timestamps and codes with some missing."""
    rng = np.random.default_rng(seed)
    candidates = np.stack([rng.permutation(G)[:N] for _ in range(Q)]).astype(np.int64)
    candidates[:, -1][rng.random(Q) < 0.5] = -1
    candidates, scores = resort(candidates, rng.random((Q, N)).astype(np.float32))
    catalogue_ts = T0 + rng.uniform(0, 200, G) * DAY_MS
    catalogue_ts[rng.random(G) < 0.2] = np.nan
    articles = rng.integers(0, 4, G)  # few articles, so prefixes are shared
    codes = 10_000_000_000 + articles * 1000 + rng.integers(0, 3, G)
    codes[rng.random(G) < 0.2] = -1
    catalogue = CatalogueMetadata([f"p{g}.jpg" for g in range(G)], timestamps=catalogue_ts, codes=codes)
    query_ts = T0 + rng.uniform(0, 200, Q) * DAY_MS
    query_ts[0] = np.nan
    query_codes = codes[rng.integers(0, G, Q)]
    query_codes[1] = -1
    context = RerankContext(
        Eligibility(np.ones(Q, np.int64), np.ones(G, np.int64)),
        [f"q{q}.jpg" for q in range(Q)],
        catalogue=catalogue,
        query_timestamps=query_ts,
        query_codes=query_codes,
    )
    return candidates, scores, context


def reference(
    candidates: np.ndarray, scores: np.ndarray, factor_of: callable
) -> tuple[np.ndarray, np.ndarray]:
    """Each (query, candidate) score times ``factor_of(q, g)`` in plain Python, then re-sorted."""
    factors = np.ones(scores.shape, np.float32)
    for q in range(len(candidates)):
        for j, g in enumerate(candidates[q]):
            if g >= 0:
                factors[q, j] = factor_of(q, int(g))
    return resort(candidates, scores * factors)


def test_timestamp_factor_reference_values() -> None:
    out = timestamp_factor(np.array([0.0, 30.0, 1e6, np.nan]), floor=0.7, sigma_days=30.0)
    np.testing.assert_allclose(out, [1.0, 0.7 + 0.3 * math.exp(-0.5), 0.7, 1.0], rtol=1e-6)


@pytest.mark.parametrize("seed", range(3))
def test_timestamp_prior_matches_reference(seed: int) -> None:
    candidates, scores, context = case(seed)
    step = TimestampPrior(floor=0.6, sigma_days=20.0)
    query_ts, catalogue_ts = context.query_timestamps, context.catalogue.timestamps

    def factor(q: int, g: int) -> float:
        if math.isnan(query_ts[q]) or math.isnan(catalogue_ts[g]):
            return 1.0
        dt = abs(query_ts[q] - catalogue_ts[g]) / DAY_MS
        return 0.6 + 0.4 * math.exp(-(dt**2) / (2 * 20.0**2))

    got = step(candidates, scores, context)
    expected = reference(candidates, scores, factor)
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_allclose(got[1], expected[1], rtol=1e-6)
    # The query without a timestamp keeps its list and scores.
    np.testing.assert_array_equal(got[0][0], candidates[0])
    np.testing.assert_array_equal(got[1][0], scores[0])


@pytest.mark.parametrize("seed", range(3))
def test_article_prefix_bonus_matches_reference(seed: int) -> None:
    candidates, scores, context = case(seed)
    step = ArticlePrefixBonus(weight=0.2, code_weight=0.5)
    query_codes, codes = context.query_codes, context.catalogue.codes

    def factor(q: int, g: int) -> float:
        a, b = str(query_codes[q]), str(codes[g])
        if query_codes[q] < 0 or codes[g] < 0:
            return 1.0
        return 1.5 if a == b else 1.2 if a[:8] == b[:8] else 1.0

    got = step(candidates, scores, context)
    expected = reference(candidates, scores, factor)
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_allclose(got[1], expected[1], rtol=1e-6)
    np.testing.assert_array_equal(got[1][1], scores[1])  # the query without a code is untouched


def test_a_close_candidate_overtakes_a_distant_one() -> None:
    context = RerankContext(
        Eligibility(np.ones(1, np.int64), np.ones(2, np.int64)),
        ["q.jpg"],
        catalogue=CatalogueMetadata(timestamps=np.array([T0 + 200 * DAY_MS, T0 + 2 * DAY_MS])),
        query_timestamps=np.array([T0]),
    )
    ranked, _ = TimestampPrior()(np.array([[0, 1]]), np.array([[0.9, 0.8]], np.float32), context)
    assert ranked.tolist() == [[1, 0]]


def test_without_metadata_scores_are_unchanged_and_it_says_so(caplog: pytest.LogCaptureFixture) -> None:
    candidates, scores, context = case(0)
    bare = RerankContext(
        context.eligibility, context.query_paths, catalogue=CatalogueMetadata(context.catalogue.paths)
    )
    with caplog.at_level(logging.WARNING, logger="fashion_retrieval.rerank.priors"):
        for step in (TimestampPrior(), ArticlePrefixBonus()):
            got = step(candidates, scores, bare)
            np.testing.assert_array_equal(got[0], candidates)
            np.testing.assert_array_equal(got[1], scores)
    assert "no image timestamps" in caplog.text and "no article codes" in caplog.text


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: TimestampPrior(floor=1.5), "floor must be in"),
        (lambda: TimestampPrior(sigma_days=0), "sigma_days must be a positive"),
        (lambda: ArticlePrefixBonus(weight=-1), "weight must be a finite non-negative"),
    ],
)
def test_bad_parameters_say_what_is_wrong(build: callable, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()


def test_context_checks_query_metadata_lengths() -> None:
    with pytest.raises(ValueError, match="1 query_timestamps for 2 queries"):
        RerankContext(Eligibility(np.ones(2), np.ones(3)), ["a", "b"], query_timestamps=np.zeros(1))


def test_catalogue_metadata_reads_the_urls(tmp_path: Path) -> None:
    url = "https://static.zara.net/assets/public/a/b/c/d/{code}-p/{code}-p.jpg?ts={ts}&w=750"
    (tmp_path / "product_dataset.csv").write_text(
        "product_asset_id,product_image_url,product_description\n"
        f"I_1,{url.format(code='12345678001', ts=1700000000000)},TROUSERS\n"
        "I_2,images/products/I_2.jpg,TROUSERS\n"
    )
    (tmp_path / "bundles_dataset.csv").write_text(
        "bundle_asset_id,bundle_id_section,bundle_image_url\n"
        f"B_1,1,{url.format(code='12345678001', ts=1700086400000).replace('-p', '-e1')}\n"
    )
    (tmp_path / "bundles_product_match_train.csv").write_text("bundle_asset_id,product_asset_id\nB_1,I_1\n")
    (tmp_path / "bundles_product_match_test.csv").write_text("bundle_asset_id,product_asset_id\n")
    catalogue = load_catalogue(tmp_path, image_check="none")
    metadata = CatalogueMetadata.from_catalogue(catalogue)
    np.testing.assert_array_equal(metadata.timestamps, [1.7e12, np.nan])
    np.testing.assert_array_equal(metadata.codes, [12345678001, -1])
    np.testing.assert_array_equal(catalogue.bundle_timestamps(["B_1"]), [1700086400000.0])
    assert catalogue.bundle_codes(["B_1"]) == ["12345678001"]


def test_configs_build_the_priors() -> None:
    chain = instantiate(compose_config(["reranker=original_priors"]).reranker)
    assert isinstance(chain, RerankChain)
    assert [type(s).__name__ for s in chain.steps][-2:] == ["TimestampPrior", "ArticlePrefixBonus"]
    alone = instantiate(compose_config(["reranker=timestamp"]).reranker)
    assert [type(s) for s in alone.steps] == [TimestampPrior]
    tuned = instantiate(
        compose_config(
            ["reranker=priors", "reranker.steps.timestamp.sigma_days=10", "reranker.steps.article=null"]
        ).reranker
    )
    assert [repr(s) for s in tuned.steps] == ["TimestampPrior(floor=0.7, sigma_days=10.0)"]
    default = compose_config([])
    assert "priors" not in str(default.reranker)  # off by default


def test_garment_crops_get_their_bundles_metadata() -> None:
    from fashion_retrieval.detection.types import Detection
    from fashion_retrieval.index.faiss_index import EmbeddingIndex
    from fashion_retrieval.search.garments import GarmentQueries, SlotSettings, rank_bundles

    seen: list[RerankContext] = []

    def spy(
        candidates: np.ndarray, scores: np.ndarray, context: RerankContext
    ) -> tuple[np.ndarray, np.ndarray]:
        seen.append(context)
        return candidates, scores

    index = EmbeddingIndex(np.eye(3, dtype=np.float32), [f"I_{i:012x}" for i in range(3)])
    detections = [
        [Detection((0, 0, 4, 4), 0.9, "a"), Detection((0, 4, 4, 8), 0.8, "b")],
        [Detection((0, 0, 4, 4), 0.9, "a")],
    ]
    queries = GarmentQueries.from_detections(["x.jpg", "y.jpg"], detections)
    catalogue = CatalogueMetadata(timestamps=np.array([T0, T0, T0]), codes=np.array([1, 2, 3]))
    rank_bundles(
        np.eye(3, dtype=np.float32),
        queries,
        2,
        np.array([1, 1]),
        index,
        np.ones(3, np.int64),
        ["SHOES"] * 3,
        {},
        SlotSettings(k=2, category_mask=False),
        RerankChain([spy], depth=3),
        catalogue,
        bundle_timestamps=np.array([T0, T0 + DAY_MS]),
        bundle_codes=np.array([12345678001, -1]),
    )
    (context,) = seen
    np.testing.assert_array_equal(context.query_timestamps, [T0, T0, T0 + DAY_MS])
    np.testing.assert_array_equal(context.query_codes, [12345678001, 12345678001, -1])
    assert context.catalogue is catalogue
