"""The re-ranking chain: each step against a slow reference, composition, the empty chain's identity, the
colour histograms, and bad configurations."""

from __future__ import annotations

import numpy as np
import pytest
from hydra.utils import instantiate
from PIL import Image

from fashion_retrieval.index.eligibility import UNKNOWN_SECTION, Eligibility, search_eligible
from fashion_retrieval.index.faiss_index import PAD_SCORE, EmbeddingIndex
from fashion_retrieval.rerank.chain import CatalogueMetadata, RerankChain, RerankContext, affinity, resort
from fashion_retrieval.rerank.colour import bhattacharyya, colour_similarity, stripe_histograms
from fashion_retrieval.rerank.steps import CategoryGate, ColourBonus, MetadataPrior, SectionFilter
from tests.test_configs import compose_config

Q, N, G, C = 6, 12, 30, 4


def random_case(seed: int) -> tuple[np.ndarray, np.ndarray, RerankContext]:
    """Sorted candidates with padding, non-negative scores, and a context with labels, some unknown."""
    rng = np.random.default_rng(seed)
    candidates = np.stack([rng.permutation(G)[:N] for _ in range(Q)]).astype(np.int64)
    scores = np.sort(rng.random((Q, N)).astype(np.float32), axis=1)[:, ::-1].copy()
    candidates[:, -2:][rng.random((Q, 2)) < 0.5] = -1
    candidates, scores = resort(candidates, scores)
    eligibility = Eligibility(
        rng.choice([1, 2], Q),
        rng.choice([1, 2, UNKNOWN_SECTION], G),
        rng.random((Q, C)) < 0.5,
        rng.integers(0, C, G),
    )
    catalogue = CatalogueMetadata([f"p{g}.jpg" for g in range(G)], rng.integers(0, 8, G))
    context = RerankContext(
        eligibility, [f"q{q}.jpg" for q in range(Q)], None, rng.random(Q) < 0.7, catalogue
    )
    return candidates, scores, context


def reference_sort(rows: list[list[tuple[int, float]]]) -> tuple[np.ndarray, np.ndarray]:
    """Rows of (candidate, score) pairs, padding dropped, sorted by score (stable), padded back to N."""
    ids = np.full((len(rows), N), -1, np.int64)
    scores = np.full((len(rows), N), PAD_SCORE, np.float32)
    for q, row in enumerate(rows):
        row = sorted(row, key=lambda pair: -pair[1])
        ids[q, : len(row)] = [c for c, _ in row]
        scores[q, : len(row)] = [s for _, s in row]
    return ids, scores


@pytest.mark.parametrize("seed", range(4))
def test_section_filter_matches_reference(seed: int) -> None:
    candidates, scores, context = random_case(seed)
    sections_q, sections_g = context.eligibility.query_sections, context.eligibility.catalogue_sections
    expected = reference_sort(
        [
            [
                (c, s)
                for c, s in zip(row, srow)
                if c >= 0 and sections_g[c] in (sections_q[q], UNKNOWN_SECTION)
            ]
            for q, (row, srow) in enumerate(zip(candidates, scores))
        ]
    )
    got = SectionFilter()(candidates, scores, context)
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])


@pytest.mark.parametrize("seed", range(4))
def test_category_gate_matches_reference(seed: int) -> None:
    candidates, scores, context = random_case(seed)
    e = context.eligibility
    rows = []
    for q, (row, srow) in enumerate(zip(candidates, scores)):
        pairs = []
        for c, s in zip(row, srow):
            if c < 0:
                continue
            if not context.labelled[q]:
                factor = 0.5
            else:
                factor = 1.0 if e.query_categories[q, e.catalogue_categories[c]] else 0.05
            pairs.append((c, np.float32(s) * np.float32(factor)))
        rows.append(pairs)
    expected = reference_sort(rows)
    got = CategoryGate()(candidates, scores, context)
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_allclose(got[1], expected[1], rtol=1e-6)


@pytest.mark.parametrize("seed", range(3))
def test_metadata_prior_matches_reference(seed: int) -> None:
    candidates, scores, context = random_case(seed)
    articles = context.catalogue.articles
    rows = []
    for row, srow in zip(candidates, scores):
        seen: set[int] = set()
        pairs = []
        for c, s in zip(row, srow):
            if c >= 0:
                pairs.append((c, s * (0.5 if articles[c] in seen else 1.0)))
                seen.add(articles[c])
        rows.append(pairs)
    expected = reference_sort(rows)
    got = MetadataPrior(repeat=0.5)(candidates, scores, context)
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_allclose(got[1], expected[1], rtol=1e-6)
    without = RerankContext(
        context.eligibility, context.query_paths, catalogue=CatalogueMetadata(context.catalogue.paths)
    )
    with pytest.raises(ValueError, match=r"product_articles\.csv"):
        MetadataPrior()(candidates, scores, without)


def solid(path, colour, size=(24, 24)) -> str:
    Image.new("RGB", size, colour).save(path)
    return str(path)


def test_stripe_histograms_of_red_and_blue_patches(tmp_path) -> None:
    red = np.asarray(Image.new("RGB", (8, 9), (255, 0, 0)).convert("HSV"))
    blue = np.asarray(Image.new("RGB", (8, 9), (0, 0, 255)).convert("HSV"))
    red_h, blue_h = stripe_histograms(red), stripe_histograms(blue)
    assert red_h.shape == (3, 12 * 8 * 4)
    np.testing.assert_allclose(red_h.sum(axis=1), 1.0)
    # Red: hue 0, full saturation and value -> bin (0, 7, 3); blue: hue 170/256 x 12 -> 7.
    assert red_h[:, (0 * 8 + 7) * 4 + 3].tolist() == [1.0, 1.0, 1.0]
    assert blue_h[:, (7 * 8 + 7) * 4 + 3].tolist() == [1.0, 1.0, 1.0]
    assert colour_similarity(red_h, red_h) == pytest.approx(1.0)
    assert colour_similarity(red_h, blue_h) == pytest.approx(0.0)
    # A photo red on top and blue below matches red on the top stripe only.
    half = np.concatenate([red[:3], blue[:6]])
    assert colour_similarity(stripe_histograms(half), red_h) == pytest.approx(1 / 3)


def test_bhattacharyya_matches_reference() -> None:
    rng = np.random.default_rng(0)
    p, q = rng.random((5, 20)), rng.random((5, 20))
    p, q = p / p.sum(1, keepdims=True), q / q.sum(1, keepdims=True)
    expected = [sum((a * b) ** 0.5 for a, b in zip(pr, qr)) for pr, qr in zip(p, q)]
    np.testing.assert_allclose(bhattacharyya(p, q), expected)


def test_colour_bonus_promotes_the_matching_colour_where_the_gate_passes(tmp_path) -> None:
    packshots = [solid(tmp_path / f"{n}.png", c) for n, c in (("blue", (0, 0, 255)), ("red", (255, 0, 0)))]
    photo = Image.new("RGB", (40, 40), (0, 255, 0))
    photo.paste((255, 0, 0), (10, 10, 30, 30))
    photo.save(tmp_path / "photo.png")
    eligibility = Eligibility(
        np.array([1, 1]), np.array([1, 1]), np.array([[True, True], [True, False]]), np.array([0, 1])
    )
    context = RerankContext(
        eligibility,
        [str(tmp_path / "photo.png")] * 2,
        [(10, 10, 30, 30), (10, 10, 30, 30)],
        np.array([True, True]),
        CatalogueMetadata(packshots),
    )
    candidates = np.array([[0, 1], [0, 1]])
    scores = np.array([[0.8, 0.75], [0.8, 0.75]], np.float32)
    step = ColourBonus()
    np.testing.assert_allclose(step.bonus(candidates, context), [[0.0, 1.0], [0.0, 0.0]], atol=1e-6)
    ids, new_scores = step(candidates, scores, context)
    assert ids.tolist() == [[1, 0], [0, 1]]  # query 2's label rules the red packshot out: no bonus
    assert new_scores[0, 0] == pytest.approx(0.75 * 1.25)
    assert set(step._catalogue) == set(packshots)  # cached by path


def test_chain_composes_its_steps_in_order() -> None:
    candidates, scores, context = random_case(7)
    steps = {"section": SectionFilter(), "gate": CategoryGate(), "prior": MetadataPrior(), "off": None}
    chain = RerankChain(steps, depth=N)
    expected = candidates, affinity(scores)
    for step in (SectionFilter(), CategoryGate(), MetadataPrior()):
        expected = step(*expected, context)
    got = chain(candidates, scores, context)
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])


def test_affinity_is_monotone_and_keeps_padding() -> None:
    scores = np.array([[0.9, -0.2, -1.0, PAD_SCORE]], np.float32)
    np.testing.assert_allclose(affinity(scores), [[0.95, 0.4, 0.0, PAD_SCORE]])


def test_empty_chain_is_the_identity_and_searches_like_today() -> None:
    rng = np.random.default_rng(3)
    catalogue = rng.standard_normal((80, 8)).astype(np.float32)
    catalogue /= np.linalg.norm(catalogue, axis=1, keepdims=True)
    index = EmbeddingIndex(catalogue, [f"I_{i:012x}" for i in range(80)])
    queries = rng.standard_normal((7, 8)).astype(np.float32)
    eligibility = Eligibility(rng.choice([1, 2], 7), rng.choice([1, 2, UNKNOWN_SECTION], 80))
    chain = RerankChain()
    expected = search_eligible(index, queries, eligibility, 15)
    got = chain.search(index, queries, eligibility, 15, None)
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])
    candidates, scores, context = random_case(0)
    assert chain(candidates, scores, context) == (candidates, scores)
    # A chain of a no-op step over deeper candidates keeps the same first k (no ties in random data).
    deep = RerankChain([SectionFilter()], depth=40)
    context = RerankContext(eligibility, [""] * 7)
    np.testing.assert_array_equal(deep.search(index, queries, eligibility, 15, context)[0], expected[0])


def test_configs_build_real_chains() -> None:
    assert not instantiate(compose_config(["reranker=none"]).reranker)
    chain = instantiate(compose_config(["reranker=original"]).reranker)
    assert [type(s) for s in chain.steps] == [SectionFilter, CategoryGate, ColourBonus]
    chain = instantiate(compose_config(["reranker=original_metadata", "reranker.steps.colour=null"]).reranker)
    assert [type(s) for s in chain.steps] == [SectionFilter, CategoryGate, MetadataPrior]


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: RerankChain(depth=0), "reranker.depth must be a positive"),
        (lambda: RerankChain({"gate": 0.05}), "reranker step 'gate' is 0.05, not a step"),
        (lambda: CategoryGate(mismatch=2.0), r"mismatch \(2.0\) above match"),
        (lambda: CategoryGate(unknown=-1), "unknown must be a finite non-negative"),
        (lambda: ColourBonus(bins=[12, 8]), "bins must be three positive counts"),
        (lambda: ColourBonus(stripes=0), "stripes"),
        (lambda: MetadataPrior(repeat=float("nan")), "repeat must be a finite"),
    ],
)
def test_bad_configs_say_what_is_wrong(build, message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        build()


def test_context_checks_its_lengths() -> None:
    with pytest.raises(ValueError, match="1 query_paths for 2 queries"):
        RerankContext(Eligibility(np.array([1, 2]), np.array([1])), ["a.jpg"])
