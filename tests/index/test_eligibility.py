import numpy as np
import pytest

from fashion_retrieval.index.eligibility import (
    UNKNOWN_SECTION,
    Eligibility,
    keep_allowed,
    search_eligible,
    search_within_sections,
)
from fashion_retrieval.index.faiss_index import PAD_SCORE, EmbeddingIndex


def reference_filter(candidates, query_sections, catalogue_sections, k):
    rows = []
    for row, section in zip(candidates, query_sections):
        kept = [c for c in row if c >= 0 and catalogue_sections[c] in (section, UNKNOWN_SECTION)][:k]
        rows.append(kept + [-1] * (k - len(kept)))
    return np.array(rows, dtype=np.int64)


@pytest.mark.parametrize("seed", range(5))
def test_filter_matches_reference(seed):
    rng = np.random.default_rng(seed)
    catalogue_sections = rng.choice([1, 2, 3, UNKNOWN_SECTION], size=40)
    candidates = np.stack([rng.permutation(40)[:25] for _ in range(12)])
    candidates[rng.random(candidates.shape) < 0.1] = -1
    query_sections = rng.choice([1, 2, 3], size=12)
    expected = reference_filter(candidates, query_sections, catalogue_sections, 10)
    allowed = Eligibility(query_sections, catalogue_sections).allowed(candidates)
    kept, _ = keep_allowed(candidates, np.zeros(candidates.shape, np.float32), allowed, 10)
    np.testing.assert_array_equal(kept, expected)


def test_search_goes_deeper_when_the_first_candidates_are_of_other_sections():
    rng = np.random.default_rng(0)
    gallery = rng.standard_normal((200, 8)).astype(np.float32)
    gallery /= np.linalg.norm(gallery, axis=1, keepdims=True)
    sections = np.where(np.arange(200) < 190, 2, 1)  # only 10 items of section 1
    index = EmbeddingIndex(gallery, [f"I_{i:012x}" for i in range(200)])
    topk = search_within_sections(index, gallery[:3], np.array([1, 1, 2]), sections, k=10, depth=15)
    assert set(topk[0]) == set(topk[1]) == set(range(190, 200))
    assert (sections[topk[2]] == 2).all() and topk[2][0] == 2  # the query itself ranks first


def test_category_mask_keeps_only_the_crop_categories_and_their_scores():
    rng = np.random.default_rng(1)
    gallery = rng.standard_normal((60, 8)).astype(np.float32)
    gallery /= np.linalg.norm(gallery, axis=1, keepdims=True)
    categories = np.arange(60) % 3
    sections = np.full(60, UNKNOWN_SECTION)
    index = EmbeddingIndex(gallery, [f"I_{i:012x}" for i in range(60)])
    query_categories = np.array([[True, False, False], [False, True, True]])
    eligibility = Eligibility(np.array([1, 2]), sections, query_categories, categories)
    topk, scores = search_eligible(index, gallery[[0, 1]], eligibility, k=10, depth=10)
    assert (categories[topk[0]] == 0).all() and (categories[topk[1]] != 0).all()
    assert topk[0][0] == 0 and topk[1][0] == 1
    expected = (gallery[[0, 1]][:, None, :] * gallery[topk]).sum(-1)
    np.testing.assert_allclose(scores, expected, rtol=1e-5)
    assert (np.diff(scores, axis=1) <= 1e-6).all()


def test_eligibility_pads_when_nothing_qualifies():
    gallery = np.eye(4, dtype=np.float32)
    index = EmbeddingIndex(gallery, [f"I_{i:012x}" for i in range(4)])
    eligibility = Eligibility(np.array([1]), np.full(4, 1), np.array([[False, True]]), np.zeros(4, np.int64))
    topk, scores = search_eligible(index, gallery[:1], eligibility, k=2)
    assert topk.tolist() == [[-1, -1]]
    assert (scores == PAD_SCORE).all()
    with pytest.raises(ValueError, match="go together"):
        Eligibility(np.array([1]), np.full(4, 1), np.array([[True]]))


def test_popular_within_section_ranks_by_popularity_in_the_bundle_section() -> None:
    from fashion_retrieval.index.eligibility import popular_within_section

    popularity = np.array([5, 9, 1, 0, 7, 7])
    sections = np.array([1, 2, 1, UNKNOWN_SECTION, 1, 1])
    assert popular_within_section(popularity, sections, 1, 4).tolist() == [
        4,
        5,
        0,
        2,
    ]  # ties: catalogue order
    assert popular_within_section(popularity, sections, 2, 3).tolist() == [1, 3, -1]
