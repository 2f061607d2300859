import numpy as np
import pytest

from fashion_retrieval.miners import mine_hard_negatives


def reference_mining(
    query, gallery, positives, num_negatives, query_sections, catalogue_sections, exclude, skip_top
):
    """Loops and a full sort by (-similarity, index)."""
    out = np.full((len(query), num_negatives), -1, dtype=np.int64)
    for i, q in enumerate(query):
        banned = {j for j in positives[i] if j >= 0} | (
            {j for j in exclude[i] if j >= 0} if exclude else set()
        )
        candidates = []
        for j, g in enumerate(gallery):
            if j in banned:
                continue
            if query_sections is not None:
                qs, gs = query_sections[i], catalogue_sections[j]
                if qs != -1 and gs != -1 and qs != gs:
                    continue
            candidates.append((-float(np.dot(q, g)), j))
        chosen = [j for _, j in sorted(candidates)][skip_top : skip_top + num_negatives]
        out[i, : len(chosen)] = chosen
    return out


def random_case(seed, num_queries=13, num_gallery=40, dim=8):
    rng = np.random.default_rng(seed)
    # Coarse values: exact float32 products and plenty of ties, so the tie rule is exercised.
    query = rng.integers(-2, 3, (num_queries, dim)).astype(np.float32) / 2
    gallery = rng.integers(-2, 3, (num_gallery, dim)).astype(np.float32) / 2
    positives = [list(rng.choice(num_gallery, rng.integers(1, 4), replace=False)) for _ in range(num_queries)]
    exclude = [[*rng.choice(num_gallery, rng.integers(0, 5), replace=False), -1] for _ in range(num_queries)]
    query_sections = rng.integers(-1, 3, num_queries)
    catalogue_sections = rng.integers(-1, 3, num_gallery)
    return query, gallery, positives, exclude, query_sections, catalogue_sections


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("sections", [False, True])
@pytest.mark.parametrize("skip_top", [0, 2])
@pytest.mark.parametrize("chunk_size", [1, 4, 1024])
def test_matches_reference(seed, sections, skip_top, chunk_size):
    query, gallery, positives, exclude, query_sections, catalogue_sections = random_case(seed)
    if not sections:
        query_sections = catalogue_sections = None
    expected = reference_mining(
        query, gallery, positives, 6, query_sections, catalogue_sections, exclude, skip_top
    )
    actual = mine_hard_negatives(
        query, gallery, positives, 6, query_sections, catalogue_sections, exclude, skip_top, chunk_size
    )
    assert actual.dtype == np.int64 and actual.shape == (13, 6)
    np.testing.assert_array_equal(actual, expected)


def test_ties_go_to_the_lowest_index_and_few_candidates_pad_with_minus_one():
    query = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    gallery = np.array([[0.5, 0.0], [1.0, 0.0], [0.5, 0.0], [0.5, 0.0], [0.0, 1.0]], dtype=np.float32)
    result = mine_hard_negatives(query, gallery, [[1], [4]], num_negatives=2)
    np.testing.assert_array_equal(result, [[0, 2], [0, 1]])  # row 1: all four tie at 0 -> lowest indices
    # Sections leave query 0 (section 1) with catalogue items 3 (section 1) and 4 (unknown) only.
    result = mine_hard_negatives(
        query, gallery, [[1], [4]], 4, np.array([1, -1]), np.array([0, 0, 0, 1, -1]), skip_top=0
    )
    np.testing.assert_array_equal(result, [[3, 4, -1, -1], [0, 1, 2, 3]])
    result = mine_hard_negatives(query, gallery, [[1], [4]], 3, skip_top=3)
    np.testing.assert_array_equal(result, [[4, -1, -1], [3, -1, -1]])
    assert mine_hard_negatives(query, gallery, [[], []], 0).shape == (2, 0)
    assert (mine_hard_negatives(query, gallery[:0], [[], []], 3) == -1).all()
    assert mine_hard_negatives(query[:0], gallery, [], 3).shape == (0, 3)


def test_bad_inputs_raise():
    query, gallery = np.eye(2, dtype=np.float32), np.eye(2, dtype=np.float32)
    with pytest.raises(ValueError, match="one list per query"):
        mine_hard_negatives(query, gallery, [[0]], 1)
    with pytest.raises(ValueError, match="catalogue index 5"):
        mine_hard_negatives(query, gallery, [[5], [0]], 1)
    with pytest.raises(ValueError, match="or neither"):
        mine_hard_negatives(query, gallery, [[0], [1]], 1, query_sections=np.array([0, 1]))
    with pytest.raises(ValueError, match="one D"):
        mine_hard_negatives(query, np.eye(3, dtype=np.float32), [[0], [1]], 1)
    with pytest.raises(ValueError, match="NaN"):
        mine_hard_negatives(query * np.nan, gallery, [[0], [1]], 1)
    with pytest.raises(ValueError, match="num_negatives"):
        mine_hard_negatives(query, gallery, [[0], [1]], -1)
