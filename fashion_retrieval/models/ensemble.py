"""Several image encoders behind one embedding: weighted concatenation, or one shared head over them all.

With member embeddings ``e_i`` (unit vectors) and weights ``w_i`` summing to 1, the ensemble embedding is
``concat(sqrt(w_i) * e_i)``. Its norm is ``sqrt(sum w_i) = 1``, and the dot product of two such vectors is
``sum_i w_i * <e_i, e'_i>``: the cosine of the concatenation is the weighted sum of the member cosines,
so one FAISS inner-product index over the concatenation ranks exactly by the weighted score.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from fashion_retrieval.models.encoder import ImageEncoder, ProjectionHead, split_parameter_groups


def normalised_weights(weights: Sequence[float] | None, count: int) -> list[float]:
    """``count`` non-negative weights summing to 1 (equal weights when ``None``)."""
    values = [1.0] * count if weights is None else [float(w) for w in weights]
    if len(values) != count or min(values) < 0 or sum(values) <= 0:
        raise ValueError(f"need {count} non-negative weights with a positive sum, got {values}")
    total = sum(values)
    return [w / total for w in values]


def weighted_concat(parts: Sequence[torch.Tensor], weights: Sequence[float]) -> torch.Tensor:
    """``[(B, D_i)]`` unit rows, weights summing to 1 -> ``(B, sum D_i)`` unit rows whose dot products are
    the weighted sums of the parts' dot products (renormalised only to absorb rounding)."""
    scaled = [part.float() * math.sqrt(weight) for part, weight in zip(parts, weights, strict=True)]
    return F.normalize(torch.cat(scaled, dim=-1), dim=-1)


class EnsembleEncoder(nn.Module):
    """Combine :class:`ImageEncoder` members; the same interface as one encoder.

    ``forward(images (B, 3, H, W)) -> (B, embedding_dim)`` float32, L2-normalised. Every member gets the
    same image tensor (``uint8`` or 0..1 float) and normalises it with its own statistics.

    Args:
        members: the encoders, as a list or a ``{name: encoder}`` mapping (names make overrides readable:
            ``model.encoder.members.clip.backbone.pretrained=...``).
        weights: one per member (normalised to sum to 1; ``None``: equal). Without a shared head, the
            ensemble cosine is the weighted sum of the member cosines (see the module docstring).
        shared_head_dim: when set, the members' own heads are bypassed (and frozen): their L2-normalised
            backbone features, scaled by ``sqrt(weight)``, are concatenated and go through one shared
            trainable linear head of this size, trained jointly with the members.
    """

    def __init__(
        self,
        members: Sequence[ImageEncoder] | Mapping[str, ImageEncoder],
        weights: Sequence[float] | None = None,
        shared_head_dim: int | None = None,
    ) -> None:
        super().__init__()
        if isinstance(members, Mapping):
            self.members: nn.ModuleList | nn.ModuleDict = nn.ModuleDict(dict(members))
        else:
            self.members = nn.ModuleList(list(members))
        if len(self.members) == 0:
            raise ValueError("an ensemble needs at least one member")
        self.weights = normalised_weights(weights, len(self.members))
        self.shared_head_dim = shared_head_dim
        if shared_head_dim is None:
            self.shared_head: nn.Module | None = None
            self.embedding_dim = sum(int(member.embedding_dim) for member in self.member_list())
        else:
            self.shared_head = ProjectionHead(self.backbone_dim, shared_head_dim)
            for member in self.member_list():
                # Bypassed: frozen, so that optimisers skip them and DDP finds no unused trainable parameter.
                member.head.requires_grad_(False)
            self.embedding_dim = int(shared_head_dim)

    def member_list(self) -> list[ImageEncoder]:
        """The member encoders, in order (the order of ``weights``)."""
        return list(self.members.values()) if isinstance(self.members, nn.ModuleDict) else list(self.members)

    @property
    def native_input_size(self) -> tuple[int, int]:
        """``(H, W)``: the largest member's native size (every member sees the same image tensor)."""
        return max((member.native_input_size for member in self.member_list()), key=lambda hw: hw[0] * hw[1])

    @property
    def backbone_dim(self) -> int:
        """``sum F_i``: the width of :meth:`backbone_features`."""
        return sum(member.backbone_dim for member in self.member_list())

    def backbone_features(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, sum F_i)`` weighted concatenation of the members' L2-normalised backbone features."""
        parts = [member.backbone_features(images) for member in self.member_list()]
        return weighted_concat(parts, self.weights)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.shared_head is None:
            return weighted_concat([member(images) for member in self.member_list()], self.weights)
        return F.normalize(self.shared_head(self.backbone_features(images)).float(), dim=-1)

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Trainable parameters: members' backbones -> ``backbone``, heads (own or shared) -> ``head``."""
        return split_parameter_groups(self, [member.backbone for member in self.member_list()])
