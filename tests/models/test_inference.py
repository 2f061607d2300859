"""Batched embedding with test-time views."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from fashion_retrieval.models.inference import centre_crop_view, embed_loader, flip_view


class Images(Dataset):
    def __init__(self, images: torch.Tensor) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict:
        return {"image": self.images[index], "index": index}


def column_encoder(images: torch.Tensor) -> torch.Tensor:
    """A deliberately not flip-invariant embedding: the mean of each image column, L2-normalised."""
    columns = images.float().mean(dim=(1, 2))
    return F.normalize(columns, dim=-1)


@pytest.fixture
def loader() -> DataLoader:
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (5, 3, 8, 6), dtype=torch.uint8, generator=generator)
    return DataLoader(Images(images), batch_size=2, shuffle=True, generator=generator)


def test_rows_follow_the_dataset_order(loader: DataLoader) -> None:
    rows = embed_loader(column_encoder, loader)
    expected = column_encoder(loader.dataset.images).numpy()
    np.testing.assert_allclose(rows, expected, rtol=1e-6)


def test_views_are_averaged_with_the_image_and_renormalised(loader: DataLoader) -> None:
    images = loader.dataset.images
    rows = embed_loader(column_encoder, loader, views=["flip", "centre_crop"])
    expected = (
        column_encoder(images) + column_encoder(flip_view(images)) + column_encoder(centre_crop_view(images))
    )
    np.testing.assert_allclose(rows, F.normalize(expected, dim=-1).numpy(), rtol=1e-5, atol=1e-6)
    assert not np.allclose(rows, embed_loader(column_encoder, loader))
    with pytest.raises(ValueError, match="unknown test-time view"):
        embed_loader(column_encoder, loader, views=["rotate"])


def test_centre_crop_keeps_the_size_and_the_centre() -> None:
    image = torch.zeros(1, 3, 20, 20, dtype=torch.uint8)
    image[..., 5:15, 5:15] = 255
    view = centre_crop_view(image, fraction=0.5)
    assert view.shape == (1, 3, 20, 20) and view.dtype == torch.float32
    assert view.min() > 0.99  # the white centre fills the view, scaled to [0, 1]
