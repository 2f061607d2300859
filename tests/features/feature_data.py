"""A tiny deterministic encoder for the feature-cache tests (importable by name, also by spawned DDP
processes)."""

from __future__ import annotations

import torch
from torch import nn

from fashion_retrieval.models.encoder import ImageEncoder


class FlatBackbone(nn.Module):
    """A linear map of the resized pixels: fast, deterministic, no batch-norm."""

    num_features = 6
    mean = (0.5, 0.5, 0.5)
    std = (0.25, 0.25, 0.25)

    def __init__(self, pixels: int = 3 * 16 * 16) -> None:
        super().__init__()
        self.linear = nn.Linear(pixels, self.num_features)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.linear(images.float().flatten(1) / 255)


def flat_encoder(seed: int = 0) -> ImageEncoder:
    torch.manual_seed(seed)
    return ImageEncoder(FlatBackbone(), embedding_dim=5).eval()
