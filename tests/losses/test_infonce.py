import math

import pytest
import torch
import torch.nn.functional as F

from fashion_retrieval.losses import InfoNCELoss, info_nce


def reference_info_nce(query, gallery, temperature, positive_mask=None):
    """Slow, obvious per-row computation of symmetric InfoNCE with excluded extra positives."""
    batch = query.shape[0]
    mask = positive_mask if positive_mask is not None else torch.zeros(batch, batch, dtype=torch.bool)

    def one_direction(a, b, m):
        total = 0.0
        for i in range(batch):
            denominator = 0.0
            for j in range(batch):
                if j != i and m[i, j]:
                    continue
                denominator += math.exp(float(a[i] @ b[j]) / temperature)
            total += -(float(a[i] @ b[i]) / temperature - math.log(denominator))
        return total / batch

    return 0.5 * (one_direction(query, gallery, mask) + one_direction(gallery, query, mask.T))


@pytest.mark.parametrize("batch,dim,temperature", [(2, 3, 1.0), (7, 16, 0.05), (16, 8, 0.2)])
def test_matches_reference_without_mask(batch, dim, temperature):
    torch.manual_seed(batch)
    query = F.normalize(torch.randn(batch, dim, dtype=torch.float64), dim=1)
    gallery = F.normalize(torch.randn(batch, dim, dtype=torch.float64), dim=1)
    expected = reference_info_nce(query, gallery, temperature)
    assert info_nce(query, gallery, temperature).item() == pytest.approx(expected, rel=1e-9)


def test_matches_reference_with_false_negative_mask():
    torch.manual_seed(0)
    batch = 9
    query = F.normalize(torch.randn(batch, 12, dtype=torch.float64), dim=1)
    gallery = F.normalize(torch.randn(batch, 12, dtype=torch.float64), dim=1)
    mask = torch.rand(batch, batch) < 0.3
    mask.fill_diagonal_(True)
    expected = reference_info_nce(query, gallery, 0.1, mask)
    assert info_nce(query, gallery, 0.1, mask).item() == pytest.approx(expected, rel=1e-9)


def test_masking_removes_false_negative_pull():
    # Two rows of the same bundle: their gallery items are both positives of both queries.
    query = F.normalize(torch.tensor([[1.0, 0.0], [1.0, 0.0]]), dim=1)
    gallery = F.normalize(torch.tensor([[1.0, 0.1], [1.0, -0.1]]), dim=1)
    mask = torch.ones(2, 2, dtype=torch.bool)
    assert info_nce(query, gallery, 0.05, mask).item() == pytest.approx(0.0, abs=1e-6)
    assert info_nce(query, gallery, 0.05).item() > 0.5


def test_perfect_alignment_gives_low_loss_and_gradients_flow():
    embeddings = torch.eye(4, requires_grad=True)
    loss = InfoNCELoss(temperature=0.05)(embeddings, torch.eye(4))
    loss.backward()
    assert loss.item() < 1e-6
    assert embeddings.grad is not None


def test_rejects_bad_shapes_and_temperature():
    with pytest.raises(ValueError, match="must both be"):
        info_nce(torch.zeros(3, 4), torch.zeros(2, 4), 0.1)
    with pytest.raises(ValueError, match="temperature"):
        InfoNCELoss(temperature=0.0)
