"""Heads on top of backbone features: the projection head of the image towers and the query-side
residual adapter trained on cached features (``docs/adapters.md``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ProjectionHead(nn.Module):
    """``(B, F) -> (B, D)``: a linear map, or an MLP when ``hidden_dim`` is set.

    Used by :class:`fashion_retrieval.models.encoder.ImageEncoder` and, shared by both sides (a symmetric
    head), by :class:`fashion_retrieval.models.adapter_module.FeatureAdapterModule`. Not normalised: the
    caller L2-normalises.
    """

    def __init__(
        self, in_features: int, embedding_dim: int, hidden_dim: int | None = None, dropout: float = 0.0
    ):
        super().__init__()
        if hidden_dim:
            self.net: nn.Module = nn.Sequential(
                nn.Dropout(dropout),
                nn.Linear(in_features, hidden_dim),
                nn.GELU(),
                nn.Linear(hidden_dim, embedding_dim),
            )
        else:
            self.net = nn.Sequential(nn.Dropout(dropout), nn.Linear(in_features, embedding_dim))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)


class ResidualAdapter(nn.Module):
    """``x -> normalize(x + MLP(x))``, ``MLP = Linear(D, H) -> LayerNorm -> GELU -> Dropout -> Linear(H, D)``.

    The winners' query-side adapter (``H = 2 D``): the catalogue side stays the frozen backbone's, so the
    adapter only moves queries (crops) towards their products.

    Args:
        dim: ``D``, the feature size (in and out).
        hidden_dim: ``H``; ``None`` means ``2 * dim``.
        dropout: before the last linear layer.
        zero_init: zero the last layer, so that at initialisation the adapter is the identity on unit
            vectors: epoch 0 scores exactly like the frozen backbone, and training can only start from it.

    ``forward(features (B, D))`` returns ``(B, D)`` float32, L2-normalised.
    """

    def __init__(
        self, dim: int, hidden_dim: int | None = None, dropout: float = 0.1, zero_init: bool = True
    ) -> None:
        super().__init__()
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        hidden = int(hidden_dim) if hidden_dim else 2 * dim
        self.dim = dim
        self.mlp = nn.Sequential(
            nn.Linear(dim, hidden),
            nn.LayerNorm(hidden),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, dim),
        )
        if zero_init:
            last = self.mlp[-1]
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if features.shape[-1] != self.dim:
            raise ValueError(f"features must be (B, {self.dim}), got {tuple(features.shape)}")
        return F.normalize((features + self.mlp(features)).float(), dim=-1)
