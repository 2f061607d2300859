import math

import pytest
import torch
import torch.nn.functional as F

from fashion_retrieval.losses import TripletLoss, triplet_margin_loss


def unit(rows, dim, seed):
    generator = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(rows, dim, generator=generator, dtype=torch.float64), dim=1)


def random_masks(rows, cols, seed):
    generator = torch.Generator().manual_seed(seed)
    draw = torch.randint(0, 3, (rows, cols), generator=generator)  # 0 positive, 1 negative, 2 ignored
    draw[torch.arange(rows), torch.randint(0, cols, (rows,), generator=generator)] = 0
    return draw == 0, draw == 1


def reference_triplet(query, gallery, positive, negative, margin, mining):
    """Loops: Euclidean distances of unit vectors, then the miner's rule spelled out."""
    q, g = query.tolist(), gallery.tolist()
    distance = [[math.dist(a, b) for b in g] for a in q]
    losses = []
    for i in range(len(q)):
        negatives = [n for n in range(len(g)) if negative[i][n] and not positive[i][n]]
        for p in range(len(g)):
            if not positive[i][p] or not negatives:
                continue
            d_ap = distance[i][p]
            if mining == "all":
                losses += [
                    d_ap - distance[i][n] + margin for n in negatives if d_ap - distance[i][n] + margin > 0
                ]
                continue
            hardest = min(negatives, key=lambda n: distance[i][n])
            chosen = hardest
            if mining == "semi_hard":
                band = [n for n in negatives if d_ap < distance[i][n] < d_ap + margin]
                chosen = min(band, key=lambda n: distance[i][n]) if band else hardest
            losses.append(max(d_ap - distance[i][chosen] + margin, 0.0))
    return sum(losses) / len(losses) if losses else 0.0


@pytest.mark.parametrize("mining", ["batch_hard", "semi_hard", "all"])
@pytest.mark.parametrize("seed", range(5))
def test_matches_reference(mining, seed):
    query, gallery = unit(6, 4, seed), unit(14, 4, seed + 100)  # low dim: many hard and semi-hard triplets
    positive, negative = random_masks(6, 14, seed)
    expected = reference_triplet(query, gallery, positive.tolist(), negative.tolist(), 0.3, mining)
    actual = triplet_margin_loss(query, gallery, positive, negative, margin=0.3, mining=mining)
    assert actual.item() == pytest.approx(expected, rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("seed", range(3))
def test_batch_hard_and_all_agree_with_torch_on_explicit_triplets(seed):
    query, gallery = unit(5, 4, seed), unit(10, 4, seed + 10)
    positive, negative = random_masks(5, 10, seed)
    negative &= ~positive
    distance = torch.cdist(query, gallery)
    anchors, positives, hardest, all_a, all_p, all_n = [], [], [], [], [], []
    for i, p in positive.nonzero().tolist():
        candidates = negative[i].nonzero().flatten()
        if len(candidates) == 0:
            continue
        anchors.append(i)
        positives.append(p)
        hardest.append(int(candidates[distance[i, candidates].argmin()]))
        for n in candidates.tolist():
            all_a.append(i)
            all_p.append(p)
            all_n.append(n)
    expected = F.triplet_margin_loss(query[anchors], gallery[positives], gallery[hardest], margin=0.3)
    actual = triplet_margin_loss(query, gallery, positive, negative, 0.3, "batch_hard")
    assert actual.item() == pytest.approx(expected.item(), abs=1e-5)
    every = F.triplet_margin_loss(query[all_a], gallery[all_p], gallery[all_n], margin=0.3, reduction="none")
    actual_all = triplet_margin_loss(query, gallery, positive, negative, 0.3, "all")
    assert actual_all.item() == pytest.approx(every[every > 0].mean().item(), abs=1e-5)


def test_no_triplet_gives_zero_with_a_graph_and_ignored_columns_change_nothing():
    query = unit(2, 4, 1).requires_grad_(True)
    gallery = unit(3, 4, 2)
    positive = torch.tensor([[True, False, False], [False, True, False]])
    nothing = torch.zeros(2, 3, dtype=torch.bool)
    for mining in ("batch_hard", "semi_hard", "all"):
        loss = triplet_margin_loss(query, gallery, positive, nothing, mining=mining)
        loss.backward()
        assert loss.item() == 0.0 and torch.all(query.grad == 0)
    negative = torch.tensor([[False, True, False], [True, False, False]])  # column 2 ignored by both rows
    base = triplet_margin_loss(query, gallery, positive, negative)
    moved = gallery.clone()
    moved[2] = query[0].detach()
    assert triplet_margin_loss(query, moved, positive, negative).item() == pytest.approx(
        base.item(), rel=1e-12
    )


def test_module_gradients_half_precision_and_bad_input():
    loss_fn = TripletLoss(margin=0.3, mining="batch_hard")
    query = unit(4, 8, 1).float().requires_grad_(True)
    gallery = unit(4, 8, 1).float().requires_grad_(True)  # identical pairs: d_ap hits the sqrt floor
    loss = loss_fn(query, gallery, torch.eye(4, dtype=torch.bool))
    loss.backward()
    assert torch.isfinite(query.grad).all() and torch.isfinite(gallery.grad).all()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        half = loss_fn(query.bfloat16(), gallery.bfloat16(), torch.eye(4, dtype=torch.bool))
    assert half.dtype == torch.float32
    with pytest.raises(ValueError, match="mining"):
        TripletLoss(mining="hardest")
    with pytest.raises(ValueError, match="mining"):
        triplet_margin_loss(query, gallery, torch.eye(4, dtype=torch.bool), mining="random")
    with pytest.raises(ValueError, match="margin"):
        TripletLoss(margin=-1.0)
