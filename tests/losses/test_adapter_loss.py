import math

import pytest
import torch
import torch.nn.functional as F

from fashion_retrieval.losses.adapter import (
    AdapterInfoNCELoss,
    adapter_info_nce,
    feature_noise,
    mix_embeddings,
    mixup_rows,
)
from fashion_retrieval.losses.bank import CatalogueBank
from fashion_retrieval.losses.infonce import info_nce


def unit(rows, dim, seed):
    return F.normalize(torch.randn(rows, dim, generator=torch.Generator().manual_seed(seed)), dim=-1)


def slow_reference(query, candidates, temperature, positive, negative, margin, smoothing, weights):
    """One F.cross_entropy(label_smoothing) per positive term, over {positive} + the row's negatives."""
    total, weight_sum = 0.0, 0.0
    for i in range(query.shape[0]):
        for p in range(candidates.shape[0]):
            if not positive[i, p]:
                continue
            columns = [p] + [n for n in range(candidates.shape[0]) if negative[i, n] and not positive[i, n]]
            logits = torch.stack([query[i] @ candidates[c] for c in columns]).double()
            logits[0] = logits[0] - margin
            loss = F.cross_entropy((logits / temperature)[None], torch.tensor([0]), label_smoothing=smoothing)
            total += float(weights[i]) * float(loss)
            weight_sum += float(weights[i])
    return total / weight_sum


@pytest.mark.parametrize("margin, smoothing", [(0.0, 0.0), (0.1, 0.0), (0.0, 0.15), (0.1, 0.15), (0.3, 0.5)])
def test_matches_a_slow_loop_with_multi_positive_rows_and_ignored_entries(margin, smoothing):
    query, candidates = unit(5, 8, 0).double(), unit(9, 8, 1).double()
    positive = torch.zeros(5, 9, dtype=torch.bool)
    positive[0, 0] = positive[1, [1, 2]] = positive[2, 3] = positive[3, [4, 5, 6]] = positive[4, 8] = True
    negative = ~positive
    negative[2, 7] = negative[0, 1] = False  # ignored entries (e.g. a bank copy of the row's product)
    negative[4, :] = False  # a row without negatives: its term is 0
    weights = torch.tensor([1.0, 0.5, 2.0, 0.3, 1.0])
    got = adapter_info_nce(query, candidates, 0.07, positive, negative, margin, smoothing, weights)
    expected = slow_reference(query, candidates, 0.07, positive, negative, margin, smoothing, weights)
    assert got.item() == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_reduces_to_the_query_direction_of_info_nce_without_margin_or_smoothing():
    query, candidates = unit(6, 16, 2), unit(10, 16, 3)
    positive = torch.zeros(6, 10, dtype=torch.bool)
    positive[torch.arange(6), torch.arange(6)] = True
    positive[2, 7] = True
    got = adapter_info_nce(query, candidates, 0.05, positive)
    expected = info_nce(query, candidates, 0.05, positive, symmetric=False)
    assert torch.allclose(got, expected, atol=1e-6)


def test_margin_raises_the_loss_and_gradients_are_finite():
    query = unit(4, 8, 4).requires_grad_(True)
    candidates = unit(4, 8, 5)
    positive = torch.eye(4, dtype=torch.bool)
    plain = adapter_info_nce(query, candidates, 0.1, positive)
    with_margin = adapter_info_nce(query, candidates, 0.1, positive, margin=0.1)
    assert with_margin > plain
    only_positive = adapter_info_nce(query, candidates, 0.1, positive, ~positive & False, label_smoothing=0.2)
    assert only_positive.item() == 0.0
    (with_margin + only_positive).backward()
    assert torch.isfinite(query.grad).all()


def test_module_learns_its_temperature_and_checks_arguments():
    loss = AdapterInfoNCELoss(temperature=0.07, learnable_temperature=True, margin=0.1, label_smoothing=0.15)
    assert loss.current_temperature == pytest.approx(0.07)
    assert [name for name, _ in loss.named_parameters()] == ["log_temperature"]
    value = loss(unit(3, 4, 6), unit(3, 4, 7), torch.eye(3, dtype=torch.bool))
    value.backward()
    assert loss.log_temperature.grad is not None
    with pytest.raises(ValueError, match="label_smoothing"):
        AdapterInfoNCELoss(label_smoothing=1.0)
    with pytest.raises(ValueError, match="row_weights"):
        adapter_info_nce(
            unit(2, 4, 0), unit(2, 4, 1), 0.1, torch.eye(2, dtype=torch.bool), row_weights=torch.ones(3)
        )
    with pytest.raises(ValueError, match="at least one positive"):
        adapter_info_nce(unit(2, 4, 0), unit(2, 4, 1), 0.1, torch.zeros(2, 2, dtype=torch.bool))


def test_feature_noise_keeps_unit_norm_and_its_scale():
    torch.manual_seed(0)
    features = unit(2000, 64, 8)
    assert feature_noise(features, 0.0) is features
    noisy = feature_noise(features, 0.02)
    assert torch.allclose(noisy.norm(dim=1), torch.ones(2000), atol=1e-5)
    # |noise| ~ 0.02 sqrt(64) = 0.16 before re-normalising.
    assert (noisy - features).norm(dim=1).mean().item() == pytest.approx(0.16, rel=0.1)
    with pytest.raises(ValueError):
        feature_noise(features, -1.0)


def test_mixup_mixes_about_p_of_the_rows_with_another_row():
    torch.manual_seed(0)
    features = unit(4000, 8, 9)
    mixed, partner, lam = mix_embeddings(features, 0.3, 0.2)
    own = partner == torch.arange(4000)
    assert own.float().mean().item() == pytest.approx(0.7, abs=0.03)
    assert torch.equal(mixed[own], features[own]) and (lam[own] == 1).all()
    assert ((lam[~own] >= 0) & (lam[~own] <= 1)).all()
    # Beta(0.2, 0.2) is U-shaped: most draws lie near 0 or 1.
    assert ((lam[~own] < 0.1) | (lam[~own] > 0.9)).float().mean() > 0.5
    expected = F.normalize(
        lam[~own, None] * features[~own] + (1 - lam[~own, None]) * features[partner[~own]], dim=1
    )
    assert torch.allclose(mixed[~own], expected, atol=1e-6)
    unchanged, same, ones = mix_embeddings(features, 0.0, 0.2)
    assert unchanged is features and torch.equal(same, torch.arange(4000)) and (ones == 1).all()


def test_mixup_rows_mix_targets_with_the_same_weights():
    positive = torch.tensor([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 1]], dtype=torch.bool)
    negative = ~positive
    negative[0, 3] = False  # row 0 ignores column 3
    partner, lam = torch.tensor([2, 1, 2]), torch.tensor([0.75, 1.0, 1.0])
    rows, pos, neg, weights = mixup_rows(positive, negative, partner, lam)
    assert rows.tolist() == [0, 1, 2, 0]
    assert pos.tolist() == [
        positive[0].tolist(),
        positive[1].tolist(),
        positive[2].tolist(),
        positive[2].tolist(),
    ]
    # The mixed row pushes away neither row's products (nor what row 0 ignores).
    assert neg[0].tolist() == [False, True, False, False] and neg[3].tolist() == neg[0].tolist()
    assert neg[1].tolist() == negative[1].tolist()
    assert weights.tolist() == [0.75, 1.0, 1.0, 0.25]
    # Loss of a mixed row = lam * own targets + (1 - lam) * partner's, in the weighted mean.
    query, candidates = unit(3, 6, 10).double(), unit(4, 6, 11).double()
    total = adapter_info_nce(query[rows], candidates, 0.1, pos, neg, row_weights=weights)
    per_term = [
        adapter_info_nce(query[r : r + 1], candidates, 0.1, pos[k : k + 1], neg[k : k + 1]) * pos[k].sum()
        for k, r in enumerate(rows.tolist())
    ]
    term_weights = weights * pos.sum(dim=1)
    assert total.item() == pytest.approx(
        float(sum(w * t for w, t in zip(weights, per_term)) / term_weights.sum())
    )


def test_bank_is_fifo_excludes_the_queries_products_and_drops_stale_entries():
    bank = CatalogueBank(size=4, dim=2, max_age=2)
    for step, labels in enumerate([[0, 1], [2], [3, 4], [5]]):
        bank.enqueue(torch.full((len(labels), 2), float(step)), torch.tensor(labels), step=step)
    _, order = bank.contents()
    assert order.tolist() == [2, 3, 4, 5]  # oldest first, 0 and 1 pushed out
    products = torch.tensor([[3, -1], [7, 5]])  # query 0 owns product 3, query 1 owns 5 and 7
    _, mask = bank.negatives(products)  # no step: every filled slot, in slot order
    assert bank.queue_labels.tolist() == [4, 5, 2, 3]
    assert mask.tolist() == [[True, True, True, False], [True, False, True, True]]
    fresh, fresh_mask = bank.negatives(products, step=4)  # entries of steps 1 (product 2) are > 2 steps old
    assert sorted(fresh[:, 0].tolist()) == [2.0, 2.0, 3.0] and fresh_mask.shape == (2, 3)
    kept = bank.queue_labels[bank.queue_steps >= 2].tolist()
    assert fresh_mask.tolist() == [[lab != 3 for lab in kept], [lab not in (5, 7) for lab in kept]]
    frozen = CatalogueBank(size=4, dim=2)  # max_age None: a frozen catalogue never goes stale
    frozen.enqueue(torch.zeros(1, 2), torch.tensor([9]), step=0)
    assert frozen.negatives(products, step=10**6)[0].shape == (1, 2)
    assert "queue_steps" in bank.state_dict()
    bank.reset()
    assert bank.filled == 0 and (bank.queue_steps == -1).all()
    with pytest.raises(ValueError):
        CatalogueBank(4, 2, max_age=-1)


def test_temperature_bounds_are_those_of_the_mixin():
    with pytest.raises(ValueError):
        AdapterInfoNCELoss(temperature=math.inf)
