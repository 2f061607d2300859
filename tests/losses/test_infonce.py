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


# --- negative masks, extra negatives, temperature ---------------------------------------------------------


def reference_masked_info_nce(query, gallery, temperature, positive, negative, symmetric=True):
    """Loops again, with explicit negatives: ignored entries are in no sum; positive-free columns add no
    gallery -> query term."""
    similarity = (query @ gallery.T).tolist()
    rows, cols = len(similarity), len(similarity[0])

    def term(i, j, negatives_of):
        positive_exp = math.exp(similarity[i][j] / temperature)
        negative_sum = sum(math.exp(similarity[a][b] / temperature) for a, b in negatives_of)
        return -math.log(positive_exp / (positive_exp + negative_sum))

    pairs = [(i, j) for i in range(rows) for j in range(cols) if positive[i][j]]
    forward = [
        term(i, j, [(i, k) for k in range(cols) if negative[i][k] and not positive[i][k]]) for i, j in pairs
    ]
    backward = [
        term(i, j, [(k, j) for k in range(rows) if negative[k][j] and not positive[k][j]]) for i, j in pairs
    ]
    q2g = sum(forward) / len(forward)
    return 0.5 * (q2g + sum(backward) / len(backward)) if symmetric else q2g


def random_masks(rows, cols, seed, extra_columns=0):
    """Random positive / negative / ignored entries; every row has a positive; the last ``extra_columns``
    columns are negatives only."""
    generator = torch.Generator().manual_seed(seed)
    draw = torch.randint(0, 3, (rows, cols), generator=generator)  # 0 positive, 1 negative, 2 ignored
    draw[torch.arange(rows), torch.randint(0, cols - extra_columns, (rows,), generator=generator)] = 0
    if extra_columns:
        draw[:, cols - extra_columns :] = torch.randint(1, 3, (rows, extra_columns), generator=generator)
    return draw == 0, draw == 1


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("symmetric", [True, False])
def test_negative_mask_and_extra_columns_match_reference(seed, symmetric):
    query, gallery = unit(5, 8, seed), unit(11, 8, seed + 100)
    positive, negative = random_masks(5, 11, seed, extra_columns=3)
    expected = reference_masked_info_nce(
        query, gallery, 0.1, positive.tolist(), negative.tolist(), symmetric=symmetric
    )
    actual = info_nce(query, gallery, 0.1, positive, negative, symmetric=symmetric)
    assert actual.item() == pytest.approx(expected, rel=1e-9)


def test_default_negative_mask_is_the_complement():
    query, gallery = unit(4, 6, 3), unit(7, 6, 4)
    positive, _ = random_masks(4, 7, 5)
    assert info_nce(query, gallery, 0.2, positive).item() == pytest.approx(
        info_nce(query, gallery, 0.2, positive, ~positive).item(), rel=1e-12
    )


def test_ignored_column_changes_nothing():
    query, gallery = unit(3, 6, 1), unit(6, 6, 2)
    positive = torch.zeros(3, 6, dtype=torch.bool)
    positive[[0, 1, 2], [0, 1, 2]] = True
    negative = ~positive
    negative[:, 5] = False  # column 5 is ignored by every bundle (e.g. another colour of their articles)
    base = info_nce(query, gallery, 0.1, positive, negative)
    for seed in range(3):
        other = gallery.clone()
        other[5] = unit(1, 6, seed + 50)[0]
        other.requires_grad_(True)
        loss = info_nce(query, other, 0.1, positive, negative)
        loss.backward()
        assert loss.item() == pytest.approx(base.item(), rel=1e-12)
        assert torch.all(other.grad[5] == 0)


def test_close_extra_negative_raises_the_loss():
    query, gallery = unit(4, 8, 7), unit(4, 8, 8)
    eye = torch.eye(4, dtype=torch.bool)
    padded = torch.cat([eye, torch.zeros(4, 1, dtype=torch.bool)], dim=1)
    far = info_nce(query, torch.cat([gallery, -query[:1]]), 0.1, padded)
    close = info_nce(query, torch.cat([gallery, query[:1]]), 0.1, padded)
    assert close.item() > far.item()
    # Columns without positives add no gallery -> query term: only row 0 sees a near-copy of itself.
    without = info_nce(query, gallery, 0.1, eye)
    assert far.item() >= without.item()


def test_rows_without_a_positive_raise_but_columns_may_have_none():
    query, gallery = unit(2, 4, 1), unit(3, 4, 2)
    mask = torch.tensor([[True, False, False], [False, True, False]])
    assert torch.isfinite(info_nce(query, gallery, 0.1, mask))
    with pytest.raises(ValueError, match=r"rows without one: \[1\]"):
        info_nce(query, gallery, 0.1, torch.tensor([[True, False, False], [False, False, False]]))
    with pytest.raises(ValueError, match="negative_mask must be"):
        info_nce(query, gallery, 0.1, mask, torch.ones(2, 2, dtype=torch.bool))


def test_row_without_negatives_gives_zero_and_finite_gradients():
    query = unit(2, 4, 1).float().requires_grad_(True)
    gallery = unit(3, 4, 2).float().requires_grad_(True)
    positive = torch.tensor([[True, True, False], [False, False, True]])
    negative = torch.tensor([[False, False, False], [True, False, False]])  # row 0: nothing to contrast
    loss = info_nce(query, gallery, 0.05, positive, negative, symmetric=False)
    loss.backward()
    assert torch.isfinite(query.grad).all() and torch.isfinite(gallery.grad).all()
    assert torch.all(query.grad[0] == 0)
    expected = reference_masked_info_nce(
        query.detach().double(), gallery.detach().double(), 0.05, positive.tolist(), negative.tolist(), False
    )
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_half_precision_inputs_are_scored_in_float32():
    query, gallery = unit(6, 16, 1).bfloat16(), unit(6, 16, 2).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = info_nce(query, gallery, 0.05)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(info_nce(query.float(), gallery.float(), 0.05).item(), rel=1e-6)


def test_learnable_temperature_gets_a_gradient_and_is_clamped():
    loss_fn = InfoNCELoss(temperature=0.07, learnable_temperature=True)
    assert set(dict(loss_fn.named_parameters())) == {"log_temperature"}
    assert loss_fn.current_temperature == pytest.approx(0.07)
    query, gallery = unit(5, 8, 1).float(), unit(5, 8, 2).float()
    fixed = InfoNCELoss(temperature=0.07)(query, gallery, torch.eye(5, dtype=torch.bool))
    loss = loss_fn(query, gallery, torch.eye(5, dtype=torch.bool))
    assert loss.item() == pytest.approx(fixed.item(), rel=1e-6)
    loss.backward()
    assert loss_fn.log_temperature.grad is not None and loss_fn.log_temperature.grad.abs() > 0
    with torch.no_grad():
        loss_fn.log_temperature.fill_(math.log(1e-5))
    loss_fn(query, gallery, torch.eye(5, dtype=torch.bool))
    assert loss_fn.current_temperature == pytest.approx(0.01)
    assert InfoNCELoss(temperature=0.05).state_dict() == {}
    assert InfoNCELoss(temperature=0.05).current_temperature == 0.05
    with pytest.raises(ValueError, match="outside"):
        InfoNCELoss(temperature=5.0, learnable_temperature=True)


def test_module_symmetric_flag():
    query, gallery = unit(3, 4, 1), unit(5, 4, 2)
    positive, negative = random_masks(3, 5, 9)
    one_way = InfoNCELoss(temperature=0.1, symmetric=False)(query, gallery, positive, negative)
    expected = reference_masked_info_nce(query, gallery, 0.1, positive.tolist(), negative.tolist(), False)
    assert one_way.item() == pytest.approx(expected, rel=1e-9)
