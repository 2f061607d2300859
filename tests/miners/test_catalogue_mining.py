import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fashion_retrieval.miners import catalogue_hard_negatives, mine_hard_negatives


def random_case(seed, queries=9, products=30, dim=6):
    generator = torch.Generator().manual_seed(seed)
    query = F.normalize(torch.randn(queries, dim, generator=generator), dim=1)
    catalogue = F.normalize(torch.randn(products, dim, generator=generator), dim=1)
    owned = torch.randint(0, products, (queries, 3), generator=generator)
    owned[::2, 2] = -1  # padding
    return query, catalogue, owned


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize(("k", "skip_top"), [(1, 0), (5, 0), (4, 2), (40, 0)])
def test_matches_the_offline_miner(seed, k, skip_top):
    query, catalogue, owned = random_case(seed)
    mined = catalogue_hard_negatives(query, catalogue, owned, k, skip_top)
    reference = mine_hard_negatives(query.numpy(), catalogue.numpy(), owned.tolist(), k, skip_top=skip_top)
    assert mined.shape == (len(query), k)
    np.testing.assert_array_equal(mined.numpy(), reference)


def test_own_products_are_never_mined_and_short_rows_are_padded():
    catalogue = torch.eye(3)
    query = F.normalize(torch.tensor([[1.0, 0.9, 0.1], [0.0, 0.0, 1.0]]), dim=1)
    mined = catalogue_hard_negatives(query, catalogue, torch.tensor([[0, -1], [2, 1]]), k=3)
    assert mined.tolist() == [[1, 2, -1], [0, -1, -1]]


def test_bad_shapes_are_errors():
    query, catalogue, owned = random_case(0)
    with pytest.raises(ValueError, match="must be"):
        catalogue_hard_negatives(query, catalogue[:, :2], owned, 3)
    with pytest.raises(ValueError, match="excluded must be"):
        catalogue_hard_negatives(query, catalogue, owned[:2], 3)
    with pytest.raises(ValueError, match=">= 0"):
        catalogue_hard_negatives(query, catalogue, owned, -1)
