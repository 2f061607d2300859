import math

import pytest
import torch
import torch.nn.functional as F

from fashion_retrieval.losses import InfoNCELoss, info_nce


def reference_info_nce(query, gallery, temperature, positive_mask):
    """Slow, obvious loops: every positive (i, j) against the negatives of row i, then of column j."""

    def direction(similarity, mask):
        terms = []
        for i in range(len(similarity)):
            negatives = [
                math.exp(similarity[i][k] / temperature) for k in range(len(similarity[i])) if not mask[i][k]
            ]
            for j in range(len(similarity[i])):
                if mask[i][j]:
                    positive = math.exp(similarity[i][j] / temperature)
                    terms.append(-math.log(positive / (positive + sum(negatives))))
        return sum(terms) / len(terms)

    similarity = (query @ gallery.T).tolist()
    mask = positive_mask.tolist()
    similarity_t = [list(row) for row in zip(*similarity)]
    mask_t = [list(row) for row in zip(*mask)]
    return 0.5 * (direction(similarity, mask) + direction(similarity_t, mask_t))


def unit(rows, dim, seed):
    generator = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(rows, dim, generator=generator, dtype=torch.float64), dim=1)


@pytest.mark.parametrize("batch,dim,temperature", [(2, 3, 1.0), (7, 16, 0.05), (16, 8, 0.2)])
def test_aligned_pairs_match_clip_cross_entropy(batch, dim, temperature):
    query, gallery = unit(batch, dim, 1), unit(batch, dim, 2)
    logits = query @ gallery.T / temperature
    targets = torch.arange(batch)
    clip = 0.5 * (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets))
    assert info_nce(query, gallery, temperature).item() == pytest.approx(clip.item(), rel=1e-9)
    eye = torch.eye(batch, dtype=torch.bool)
    assert info_nce(query, gallery, temperature).item() == pytest.approx(
        reference_info_nce(query, gallery, temperature, eye), rel=1e-9
    )


@pytest.mark.parametrize("seed", range(4))
def test_bundles_with_several_products_match_reference(seed):
    # 4 bundles, 9 products: bundle b lists products in its slice; product 8 is shared by bundles 0 and 3.
    query, gallery = unit(4, 12, seed), unit(9, 12, seed + 10)
    mask = torch.zeros(4, 9, dtype=torch.bool)
    for bundle, products in enumerate([(0, 1, 8), (2, 3), (4, 5, 6), (7, 8)]):
        mask[bundle, list(products)] = True
    expected = reference_info_nce(query, gallery, 0.1, mask)
    assert info_nce(query, gallery, 0.1, mask).item() == pytest.approx(expected, rel=1e-9)


def test_other_positives_are_not_negatives():
    # One bundle listing two products it matches equally: perfect retrieval, loss 0 (at low temperature).
    query = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    gallery = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    mask = torch.tensor([[True, True, False], [False, False, True]])
    assert info_nce(query, gallery, 0.01, mask).item() == pytest.approx(0.0, abs=1e-6)


def test_perfect_alignment_gives_low_loss_and_gradients_flow():
    embeddings = torch.eye(4, requires_grad=True)
    loss = InfoNCELoss(temperature=0.05)(embeddings, torch.eye(4))
    loss.backward()
    assert loss.item() < 1e-6
    assert embeddings.grad is not None


def test_rejects_bad_input():
    with pytest.raises(ValueError, match="aligned pairs"):
        info_nce(torch.zeros(3, 4), torch.zeros(2, 4), 0.1)
    with pytest.raises(ValueError, match="positive_mask must be"):
        info_nce(torch.zeros(3, 4), torch.zeros(2, 4), 0.1, torch.ones(2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="at least one positive"):
        info_nce(torch.zeros(2, 4), torch.zeros(2, 4), 0.1, torch.tensor([[True, True], [False, False]]))
    with pytest.raises(ValueError, match="temperature"):
        InfoNCELoss(temperature=0.0)
