import math

import pytest
import torch
import torch.nn.functional as F

from fashion_retrieval.losses import SupConLoss, info_nce, supervised_contrastive


def unit(rows, dim, seed):
    generator = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(rows, dim, generator=generator, dtype=torch.float64), dim=1)


def random_masks(rows, cols, seed, extra_columns=0):
    generator = torch.Generator().manual_seed(seed)
    draw = torch.randint(0, 3, (rows, cols), generator=generator)  # 0 positive, 1 negative, 2 ignored
    draw[torch.arange(rows), torch.randint(0, cols - extra_columns, (rows,), generator=generator)] = 0
    if extra_columns:
        draw[:, cols - extra_columns :] = torch.randint(1, 3, (rows, extra_columns), generator=generator)
    return draw == 0, draw == 1


def reference_supcon(query, gallery, temperature, positive, negative, symmetric=True):
    """Khosla's L_out with loops: per anchor, mean over its positives of -log(exp(s_p) / sum over P ∪ N)."""
    similarity = (query @ gallery.T).tolist()

    def anchored(sim, pos, neg):
        losses = []
        for i in range(len(sim)):
            positives = [j for j in range(len(sim[i])) if pos[i][j]]
            if not positives:
                continue
            denominator = sum(
                math.exp(sim[i][a] / temperature) for a in range(len(sim[i])) if pos[i][a] or neg[i][a]
            )
            losses.append(
                -sum(math.log(math.exp(sim[i][p] / temperature) / denominator) for p in positives)
                / len(positives)
            )
        return sum(losses) / len(losses)

    transpose = lambda m: [list(r) for r in zip(*m)]  # noqa: E731
    rows = anchored(similarity, positive, negative)
    if not symmetric:
        return rows
    return 0.5 * (rows + anchored(transpose(similarity), transpose(positive), transpose(negative)))


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("symmetric", [True, False])
def test_matches_reference(seed, symmetric):
    query, gallery = unit(5, 8, seed), unit(12, 8, seed + 100)
    positive, negative = random_masks(5, 12, seed, extra_columns=3)
    negative &= ~positive
    expected = reference_supcon(query, gallery, 0.1, positive.tolist(), negative.tolist(), symmetric)
    actual = supervised_contrastive(query, gallery, 0.1, positive, negative, symmetric=symmetric)
    assert actual.item() == pytest.approx(expected, rel=1e-9)


def test_single_positive_per_row_and_column_equals_infonce():
    query, gallery = unit(4, 6, 1), unit(6, 6, 2)
    positive = torch.zeros(4, 6, dtype=torch.bool)
    positive[[0, 1, 2, 3], [2, 0, 5, 1]] = True
    assert supervised_contrastive(query, gallery, 0.1, positive).item() == pytest.approx(
        info_nce(query, gallery, 0.1, positive).item(), rel=1e-9
    )


def test_other_positives_stay_in_the_denominator():
    # One bundle, two products it matches equally well: InfoNCE reaches 0, SupCon keeps log 2 per anchor.
    query = torch.tensor([[1.0, 0.0]])
    gallery = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    positive = torch.tensor([[True, True, False]])
    assert info_nce(query, gallery, 0.01, positive, symmetric=False).item() == pytest.approx(0.0, abs=1e-6)
    loss = supervised_contrastive(query, gallery, 0.01, positive, symmetric=False)
    assert loss.item() == pytest.approx(math.log(2), abs=1e-4)  # float32 logits near 100


def test_ignored_column_changes_nothing_and_rows_need_positives():
    query, gallery = unit(3, 6, 1), unit(5, 6, 2)
    positive = torch.zeros(3, 5, dtype=torch.bool)
    positive[[0, 1, 2], [0, 1, 2]] = True
    negative = ~positive
    negative[:, 4] = False
    base = supervised_contrastive(query, gallery, 0.1, positive, negative)
    other = gallery.clone()
    other[4] = -other[4]
    other.requires_grad_(True)
    loss = supervised_contrastive(query, other, 0.1, positive, negative)
    loss.backward()
    assert loss.item() == pytest.approx(base.item(), rel=1e-12)
    assert torch.all(other.grad[4] == 0) and torch.isfinite(other.grad).all()
    with pytest.raises(ValueError, match="at least one positive"):
        supervised_contrastive(query, gallery, 0.1, torch.zeros(3, 5, dtype=torch.bool))


def test_module_learnable_temperature_and_half_precision():
    loss_fn = SupConLoss(temperature=0.1, learnable_temperature=True)
    query, gallery = unit(4, 8, 1).bfloat16(), unit(7, 8, 2).bfloat16()
    positive, negative = random_masks(4, 7, 3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = loss_fn(query, gallery, positive, negative)
    assert loss.dtype == torch.float32
    loss.backward()
    assert loss_fn.log_temperature.grad is not None and torch.isfinite(loss_fn.log_temperature.grad)
    assert loss_fn.current_temperature == pytest.approx(0.1)
    assert SupConLoss(temperature=0.2).state_dict() == {}
