import pytest
import torch

from fashion_retrieval.miners import hardest_negatives, semi_hard_negatives


def reference_hardest(similarity, mask):
    out = []
    for row, allowed in zip(similarity, mask):
        candidates = [j for j in range(len(row)) if allowed[j]]
        # max by value, ties to the lowest index
        out.append(min(candidates, key=lambda j: (-row[j], j)) if candidates else -1)
    return out


def reference_semi_hard(distance, mask, positive_distance, margin):
    out = []
    for row, allowed, d_ap in zip(distance, mask, positive_distance):
        candidates = [j for j in range(len(row)) if allowed[j]]
        band = [j for j in candidates if d_ap < row[j] < d_ap + margin]
        pool = band or candidates
        out.append(min(pool, key=lambda j: (row[j], j)) if pool else -1)
    return out


@pytest.mark.parametrize("seed", range(5))
def test_hardest_negatives_match_loops(seed):
    generator = torch.Generator().manual_seed(seed)
    similarity = torch.randint(-3, 4, (8, 6), generator=generator).float() / 3  # many ties
    mask = torch.rand(8, 6, generator=generator) < 0.5
    mask[0] = False
    assert hardest_negatives(similarity, mask).tolist() == reference_hardest(
        similarity.tolist(), mask.tolist()
    )


@pytest.mark.parametrize("seed", range(5))
def test_semi_hard_negatives_match_loops(seed):
    generator = torch.Generator().manual_seed(seed)
    distance = torch.rand(10, 7, generator=generator) * 2
    mask = torch.rand(10, 7, generator=generator) < 0.6
    mask[0] = False
    positive_distance = torch.rand(10, generator=generator) * 1.5
    expected = reference_semi_hard(distance.tolist(), mask.tolist(), positive_distance.tolist(), 0.3)
    assert semi_hard_negatives(distance, mask, positive_distance, 0.3).tolist() == expected


def test_semi_hard_prefers_the_band_and_falls_back_to_hardest():
    distance = torch.tensor([[0.1, 0.55, 0.7, 1.5], [0.1, 0.9, 1.2, 1.5]])
    mask = torch.ones(2, 4, dtype=torch.bool)
    positive_distance = torch.tensor([0.5, 0.5])
    # Row 0: 0.55 is in (0.5, 0.8). Row 1: nothing in the band, fall back to the closest (index 0).
    assert semi_hard_negatives(distance, mask, positive_distance, 0.3).tolist() == [1, 0]


def test_edge_cases():
    assert hardest_negatives(torch.zeros(3, 0), torch.zeros(3, 0, dtype=torch.bool)).tolist() == [-1, -1, -1]
    with pytest.raises(ValueError, match="same shape"):
        hardest_negatives(torch.zeros(2, 3), torch.zeros(2, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="positive_distance"):
        semi_hard_negatives(torch.zeros(2, 3), torch.ones(2, 3, dtype=torch.bool), torch.zeros(3), 0.3)
