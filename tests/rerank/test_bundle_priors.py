"""Bundle priors against slow, obvious references."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hydra.utils import instantiate

from fashion_retrieval.index.eligibility import Eligibility
from fashion_retrieval.index.faiss_index import PAD_SCORE
from fashion_retrieval.rerank.bundle_priors import (
    BundlePriorData,
    BundleStatistics,
    CoOccurrence,
    SectionPopularity,
    SimilarBundles,
    bind_bundle_priors,
    bundle_prior_steps,
    cooccurrence_bonus,
    cooccurrence_counts,
    nearest_bundles,
    normalised_log_counts,
    pseudo_statistics,
    section_counts,
    similar_bundle_bonus,
)
from fashion_retrieval.rerank.chain import RerankChain, RerankContext
from tests.test_configs import compose_config

G = 12


def random_bundles(
    seed: int, count: int = 15, dim: int = 4
) -> tuple[list[list[int]], np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    products = [sorted(rng.choice(G, size=rng.integers(1, 5), replace=False).tolist()) for _ in range(count)]
    sections = rng.integers(1, 3, size=count)
    embeddings = rng.normal(size=(count, dim)).astype(np.float32)
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    return products, sections, embeddings


def statistics(seed: int) -> BundleStatistics:
    products, sections, embeddings = random_bundles(seed)
    return BundleStatistics.from_lists(
        [f"b{i}" for i in range(len(products))], products, sections, G, embeddings
    )


def reference_cooccurrence(products, candidates, strong, own=()) -> list[float]:
    own = set(own)
    counted = [set(listed) for listed in products]
    if own:
        counted.remove(own)  # leave one out: the bundle's own row is not evidence
    result = []
    for g in candidates:
        best = 0.0
        for h in set(strong) - {-1}:
            if g < 0 or h == g:
                continue
            both = sum(g in listed and h in listed for listed in counted)
            n_g = sum(g in listed for listed in counted)
            n_h = sum(h in listed for listed in counted)
            if n_g and n_h:
                best = max(best, both / math.sqrt(n_g * n_h))
        result.append(best)
    return result


@pytest.mark.parametrize("seed", range(6))
def test_cooccurrence_bonus_matches_reference(seed: int) -> None:
    products, _, _ = random_bundles(seed)
    rng = np.random.default_rng(100 + seed)
    counts = cooccurrence_counts(statistics(seed).products)
    candidates = rng.integers(-1, G, size=9)
    strong = rng.integers(-1, G, size=4)
    np.testing.assert_allclose(
        cooccurrence_bonus(counts, candidates, strong),
        reference_cooccurrence(products, candidates, strong),
        atol=1e-6,
    )
    own = products[0]
    np.testing.assert_allclose(
        cooccurrence_bonus(counts, candidates, strong, np.array(own)),
        reference_cooccurrence(products, candidates, strong, own),
        atol=1e-6,
    )


def test_cooccurrence_bonus_of_a_worked_example() -> None:
    # Bundles {0, 1}, {0, 1}, {0, 2}: C[0,1] = 2, C[0,0] = 3, C[1,1] = 2 -> Ochiai(0, 1) = 2 / sqrt(6).
    counts = cooccurrence_counts(
        BundleStatistics.from_lists(["a", "b", "c"], [[0, 1], [0, 1], [0, 2]], [1, 1, 1], 4).products
    )
    bonus = cooccurrence_bonus(counts, np.array([1, 2, 3, 0, -1]), np.array([0]))
    np.testing.assert_allclose(bonus, [2 / math.sqrt(6), 1 / math.sqrt(3), 0.0, 0.0, 0.0], atol=1e-6)


def reference_similar(query, embeddings, products, candidates, top_m, own=-1) -> list[float]:
    sims = [(float(np.dot(query, e)), j) for j, e in enumerate(embeddings) if j != own]
    top = sorted(sims, key=lambda pair: -pair[0])[:top_m]
    weights = [(max(s, 0.0), j) for s, j in top]
    total = sum(w for w, _ in weights)
    return [
        0.0 if g < 0 or total == 0 else sum(w for w, j in weights if g in products[j]) / total
        for g in candidates
    ]


@pytest.mark.parametrize("seed", range(6))
def test_similar_bundle_bonus_matches_reference(seed: int) -> None:
    products, _, embeddings = random_bundles(seed)
    rng = np.random.default_rng(200 + seed)
    queries = rng.normal(size=(3, embeddings.shape[1])).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    matrix = statistics(seed).products
    own = np.array([-1, 2, -1])
    for top_m in (1, 4, 40):
        rows, sims = nearest_bundles(queries, embeddings, top_m, own, chunk=2)
        for q in range(3):
            candidates = rng.integers(-1, G, size=7)
            np.testing.assert_allclose(
                similar_bundle_bonus(rows[q], sims[q], matrix, candidates),
                reference_similar(queries[q], embeddings, products, candidates, top_m, own[q]),
                atol=1e-5,
            )
        assert (rows[1] != 2).all()  # a bundle is never its own neighbour


def test_normalised_log_counts_and_section_counts() -> None:
    np.testing.assert_allclose(normalised_log_counts(np.array([0, 1, 3])), [0, math.log(2) / math.log(4), 1])
    assert normalised_log_counts(np.zeros(3)).tolist() == [0, 0, 0]
    known = BundleStatistics.from_lists(["a", "b", "c"], [[0, 1], [1], [2]], [1, 1, 2], 3)
    pseudo = pseudo_statistics(["t"], {"t": [0]}, [1], 3)
    counts = section_counts(known.extended(pseudo))
    assert counts[1].tolist() == [1, 2, 0] and counts[2].tolist() == [0, 0, 1]  # pseudo pairs do not count


def context_of(sections: list[int], bundles: list[int]) -> RerankContext:
    eligibility = Eligibility(np.array(sections), np.ones(G, dtype=np.int64))
    return RerankContext(eligibility, [""] * len(sections), query_bundles=np.array(bundles))


def test_steps_score_by_their_bonus_and_resort() -> None:
    known = BundleStatistics.from_lists(
        ["a", "b", "c"], [[0, 1], [0, 1], [2]], [1, 1, 1], G, np.eye(3, 4, dtype=np.float32)
    )
    data = BundlePriorData(known, ["q0", "q1"], np.array([[1, 0, 0, 0], [0, 0, 1, 0]], np.float32))
    candidates = np.array([[2, 0, -1], [1, 3, 2], [2, 1, 0]])
    scores = np.array([[0.9, 0.8, PAD_SCORE], [0.7, 0.6, 0.5], [0.6, 0.5, 0.4]], np.float32)
    context = context_of([1, 1, 1], [0, 0, 1])
    for step in (SectionPopularity(0.5), CoOccurrence(0.5, strong=1), SimilarBundles(0.5, top_m=1)):
        step.bind(data)
        bonus = step.bonus(candidates, context)
        assert bonus[0, 2] == 0 and ((bonus >= 0) & (bonus <= 1)).all()
        ranked, rescored = step(candidates, scores, context)
        expected = np.where(candidates >= 0, scores * (1 + 0.5 * bonus), PAD_SCORE)
        for row in range(3):
            order = np.argsort(-expected[row].astype(np.float64), kind="stable")
            assert ranked[row].tolist() == candidates[row][order].tolist()
            np.testing.assert_allclose(rescored[row], expected[row][order])
    # Popularity in section 1: product 0 and 1 in two bundles each, 2 in one.
    popularity = SectionPopularity(1.0)
    popularity.bind(data)
    np.testing.assert_allclose(
        popularity.bonus(np.array([[0, 2, 5]]), context_of([1], [0]))[0], [1, math.log(2) / math.log(3), 0]
    )
    # Similar bundles: query 1 looks like bundle "c" only, which lists product 2.
    similar = SimilarBundles(1.0, top_m=1)
    similar.bind(data)
    assert similar.bonus(np.array([[2, 0]]), context_of([1], [1]))[0].tolist() == [1.0, 0.0]


def test_unbound_or_bundle_free_contexts_are_refused() -> None:
    with pytest.raises(ValueError, match="bind_bundle_priors"):
        CoOccurrence().bonus(np.zeros((1, 2), np.int64), context_of([1], [0]))
    step = CoOccurrence()
    step.bind(BundlePriorData(statistics(0), ["q"]))
    eligibility = Eligibility(np.array([1]), np.ones(G, dtype=np.int64))
    with pytest.raises(ValueError, match="query_bundles"):
        step.bonus(np.zeros((1, 2), np.int64), RerankContext(eligibility, [""]))
    with pytest.raises(ValueError, match="embeddings"):
        SimilarBundles().bind(BundlePriorData(statistics(0), ["q"]))
    with pytest.raises(ValueError, match="weight"):
        SectionPopularity(-1.0)


def test_pseudo_statistics_extend_the_known_bundles() -> None:
    known = statistics(0)
    pseudo = pseudo_statistics(
        ["t0", "t1", "t2"], {"t0": [3, 4], "t2": [5]}, [1, 2, 1], G, np.eye(3, 4, dtype=np.float32)
    )
    assert pseudo.bundle_ids == ("t0", "t2") and pseudo.pseudo.all()
    both = known.extended(pseudo)
    assert both.row_of("t2") == len(known.bundle_ids) + 1 and both.row_of("nope") == -1
    assert both.products[both.row_of("t0")].indices.tolist() == [3, 4]
    with pytest.raises(ValueError, match="twice"):
        both.extended(pseudo)


def test_config_builds_switchable_prior_steps() -> None:
    chain = instantiate(compose_config(["reranker=bundle_priors"]).reranker)
    assert [type(step) for step in bundle_prior_steps(chain)] == [
        SectionPopularity,
        SimilarBundles,
        CoOccurrence,
    ]
    chain = instantiate(compose_config(["reranker=bundle_priors", "reranker.steps.similar=null"]).reranker)
    assert [type(step) for step in bundle_prior_steps(chain)] == [SectionPopularity, CoOccurrence]
    chain = instantiate(compose_config(["reranker=original_bundle_priors"]).reranker)
    assert len(chain.steps) == 6 and len(bundle_prior_steps(chain)) == 3
    bind_bundle_priors(RerankChain(), BundlePriorData(statistics(0), []))  # no prior: nothing to bind
