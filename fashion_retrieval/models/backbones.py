"""Image backbones: a feature extractor ``(B, 3, H, W) -> (B, F)`` plus its input normalisation."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import timm
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from fashion_retrieval.models.normalization import InputNormalization
from fashion_retrieval.models.weights import (
    WEIGHTS_KEY,
    WeightsNotFoundError,
    load_state_dict_flexible,
    read_state_dict,
    resolve_weights_path,
    wants_pretrained,
)

log = logging.getLogger(__name__)

EXAMPLE_WEIGHTS = "/path/to/weights.safetensors, a .pth or pkg:<package>/<file>"


def is_hub(weights: str) -> bool:
    """``hub`` or ``hub:<tag>``: timm's own download (online only)."""
    return weights == "hub" or weights.startswith("hub:")


class TimmBackbone(nn.Module):
    """Any ``timm`` model used as a pooled feature extractor.

    Args:
        model_name: a timm architecture name (``tf_efficientnet_lite0``, ``convnext_tiny``, ...).
        weights: a local file, ``pkg:<package>/<file>``, ``hub`` (see :mod:`fashion_retrieval.models.weights`)
            or ``random`` (random initialisation, by name only: ``None`` raises).
        frozen_prefixes: parameter-name prefixes to freeze (e.g. ``[conv_stem, bn1, blocks.0]``); their
            batch-norm layers stay in eval mode so their statistics are frozen too.
        frozen_batchnorm_statistics: every batch-norm layer, not only those of ``frozen_prefixes``, keeps
            the running statistics of the weights (eval mode) while its affine parameters train:
            fine-tuning on synthetic images otherwise re-estimates them on that domain
            (experiments/recipes/README.md, ``bn_stats`` arm).
        mean, std: the input normalisation the weights expect, applied in ``forward`` (inputs are
            ``uint8`` or 0..1 float RGB).
        global_pool: timm pooling (``avg``, ``max``, ``avgmax``, ``catavgmax``); max pooling keeps a small
            garment's strongest responses from being averaged away by the background of a bundle photo.
    """

    def __init__(
        self,
        model_name: str,
        weights: str | None = None,
        frozen_prefixes: Sequence[str] = (),
        mean: Sequence[float] = (0.485, 0.456, 0.406),
        std: Sequence[float] = (0.229, 0.224, 0.225),
        drop_path_rate: float = 0.0,
        global_pool: str = "avg",
        frozen_batchnorm_statistics: bool = False,
    ) -> None:
        super().__init__()
        self.model_name = model_name
        self.mean = tuple(mean)
        self.std = tuple(std)
        self.normalize = InputNormalization(self.mean, self.std)
        kwargs: dict = {"num_classes": 0, "global_pool": global_pool}
        if drop_path_rate:
            kwargs["drop_path_rate"] = drop_path_rate
        pretrained = wants_pretrained(weights, model_name, WEIGHTS_KEY, EXAMPLE_WEIGHTS)
        if pretrained and is_hub(weights):
            self.model = self._from_hub(model_name, weights, kwargs)
        else:
            self.model = timm.create_model(model_name, pretrained=False, **kwargs)
            if pretrained:
                path = resolve_weights_path(weights)
                load_state_dict_flexible(self.model, read_state_dict(path), source=str(path))
                log.info("loaded %s weights from %s", model_name, path)
        self.num_features: int = self.model.num_features
        # timm's pretrained config gives (C, H, W) of the ImageNet weights: the size they score best at.
        self.native_input_size: tuple[int, int] = tuple(self.model.pretrained_cfg["input_size"][1:])
        self.frozen_prefixes = tuple(frozen_prefixes)
        if self.frozen_prefixes:
            self._freeze()
        self._frozen_norms: list[nn.Module] = [
            module
            for name, module in self.model.named_modules()
            if isinstance(module, _BatchNorm)
            and (frozen_batchnorm_statistics or name.startswith(self.frozen_prefixes))
        ]
        # Now, not only in train(): Lightning never calls train() before fitting (it restores each module's
        # own mode after validation), so a norm left in train mode here would track the training images.
        self.train(self.training)

    @staticmethod
    def check_weights(config: Mapping[str, Any], key: str) -> None:
        """Raise now if a backbone built from ``config`` (its ``weights`` at ``key``) would start from
        random initialisation without asking, or its weights file is missing."""
        weights = config.get("weights")
        if wants_pretrained(weights, str(config.get("model_name")), key, EXAMPLE_WEIGHTS) and not is_hub(
            weights
        ):
            resolve_weights_path(weights, key)

    @staticmethod
    def _from_hub(model_name: str, weights: str, kwargs: dict) -> nn.Module:
        tag = weights.partition(":")[2]
        name = f"{model_name}.{tag}" if tag else model_name
        try:
            return timm.create_model(name, pretrained=True, **kwargs)
        except Exception as error:
            raise WeightsNotFoundError(
                f"cannot download pretrained weights for timm model {name!r} "
                f"({type(error).__name__}: {error}). "
                "This project runs offline: pass a local file instead, e.g. "
                "model.encoder.backbone.weights=/path/to/weights.pth (or .safetensors)"
            ) from error

    def _freeze(self) -> None:
        matched = set()
        for name, parameter in self.model.named_parameters():
            if name.startswith(self.frozen_prefixes):
                parameter.requires_grad_(False)
                matched.add(name)
        if not matched:
            raise ValueError(
                f"frozen_prefixes {self.frozen_prefixes} match no parameter of {self.model_name}"
            )

    def train(self, mode: bool = True) -> TimmBackbone:
        super().train(mode)
        for module in self._frozen_norms:
            module.eval()
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` uint8 or 0..1 RGB images -> ``(B, num_features)`` pooled features."""
        return self.model(self.normalize(images))
