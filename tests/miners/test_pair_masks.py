import pytest
import torch

from fashion_retrieval.miners import label_in, label_pair_masks, pair_masks


def padded(rows, width):
    """Lists of ids -> (B, width) long, -1 padded."""
    out = torch.full((len(rows), width), -1, dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.tensor(row, dtype=torch.long)
    return out


def reference_masks(products, excluded, gallery_labels):
    positive = [[label in row for label in gallery_labels] for row in products]
    negative = [
        [not (label in row or label in excluded_row) for label in gallery_labels]
        for row, excluded_row in zip(products, excluded)
    ]
    return positive, negative


@pytest.mark.parametrize("seed", range(5))
def test_label_in_matches_loops(seed):
    generator = torch.Generator().manual_seed(seed)
    sets = torch.randint(-1, 12, (6, 5), generator=generator)  # -1 is padding, anywhere in the row
    labels = torch.randint(0, 15, (20,), generator=generator)
    expected = [[int(label) in [v for v in row.tolist() if v >= 0] for label in labels] for row in sets]
    assert label_in(labels, sets).tolist() == expected


def test_padding_never_matches_and_empty_inputs():
    sets = torch.tensor([[-1, -1], [0, -1]])
    assert label_in(torch.tensor([0, -1]), sets).tolist() == [[False, False], [True, False]]
    assert label_in(torch.tensor([1, 2]), torch.zeros(3, 0, dtype=torch.long)).shape == (3, 2)
    assert label_in(torch.zeros(0, dtype=torch.long), sets).shape == (2, 0)
    with pytest.raises(ValueError, match="integer"):
        label_in(torch.tensor([0.5]), sets)


@pytest.mark.parametrize("seed", range(5))
def test_pair_masks_match_loops(seed):
    generator = torch.Generator().manual_seed(seed)
    products = [
        torch.randint(0, 30, (int(n),), generator=generator).tolist() for n in torch.randint(1, 6, (7,))
    ]
    excluded = [
        torch.randint(0, 30, (int(n),), generator=generator).tolist() for n in torch.randint(0, 4, (7,))
    ]
    gallery_labels = torch.randint(0, 30, (25,), generator=generator)  # repeats on purpose
    positive, negative = pair_masks(padded(products, 6), padded(excluded, 4), gallery_labels)
    expected_positive, expected_negative = reference_masks(products, excluded, gallery_labels.tolist())
    assert positive.tolist() == expected_positive
    assert negative.tolist() == expected_negative
    assert not (positive & negative).any()


def test_semantics_on_a_small_batch():
    # Bundle 0 = products {3, 4}, other colour 5 excluded; bundle 1 = {7}; gallery repeats product 3,
    # and product 9 is an extra negative (nobody's product).
    products = padded([[3, 4], [7]], 3)
    excluded = padded([[5], []], 2)  # the bundle's products need not be repeated here
    gallery = torch.tensor([3, 4, 7, 3, 5, 9])
    positive, negative = pair_masks(products, excluded, gallery)
    assert positive.tolist() == [
        [True, True, False, True, False, False],
        [False, False, True, False, False, False],
    ]
    assert negative.tolist() == [
        [False, False, True, False, False, True],
        [True, True, False, True, True, True],
    ]
    positive_only, negative_only = pair_masks(products, None, gallery)
    assert positive_only.tolist() == positive.tolist()
    assert (negative_only == ~positive_only).all()


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="gallery_labels"):
        pair_masks(padded([[1]], 1), None, torch.tensor([0, -1]))
    with pytest.raises(ValueError, match="disagree on B"):
        pair_masks(padded([[1]], 1), padded([[1], [2]], 1), torch.tensor([0]))


@pytest.mark.parametrize("seed", range(3))
def test_label_pair_masks_match_loops(seed):
    labels = torch.randint(0, 4, (9,), generator=torch.Generator().manual_seed(seed))
    positive, negative = label_pair_masks(labels)
    values = labels.tolist()
    expected_positive = [[i != j and a == b for j, b in enumerate(values)] for i, a in enumerate(values)]
    expected_negative = [[a != b for b in values] for a in values]
    assert positive.tolist() == expected_positive and negative.tolist() == expected_negative
    with pytest.raises(ValueError, match=r"labels must be \(B,\) integers"):
        label_pair_masks(labels.float())
