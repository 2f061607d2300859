"""Layer-wise learning-rate decay: the deeper a backbone layer, the faster it may move.

Lower layers hold generic filters that transfer (edges, textures), upper ones the features of the task
they were trained on; fine-tuning them at geometrically smaller rates towards the stem keeps more of what
transfers (ULMFiT, BEiT). Depths come from the parameter names of timm-style backbones:
``blocks.N`` (EfficientNet, ViT), ``stages.N`` (ConvNeXt) or ``layers.N`` (Hugging Face towers).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from torch import nn

BLOCK_PATTERN = re.compile(r"(?:^|\.)(?:blocks|stages|layers)\.(\d+)\.")


def parameter_depths(names: Sequence[str]) -> list[int]:
    """Depth of each named parameter, ``names`` in module order: 0 for the stem (anything before the first
    block), ``N + 1`` for block ``N``, and ``last block + 2`` for what follows the blocks (head
    convolution, final norm). Raises if no name holds a block index."""
    indices = [int(match.group(1)) if (match := BLOCK_PATTERN.search(name)) else None for name in names]
    numbered = [index for index in indices if index is not None]
    if not numbered:
        raise ValueError(
            "layer-wise learning-rate decay: no parameter name holds blocks.N, stages.N or layers.N "
            f"(first names: {list(names)[:3]}), so layer depths are unknown"
        )
    top = max(numbered) + 2
    depths: list[int] = []
    after_blocks = False
    for index in indices:
        after_blocks = after_blocks or index is not None
        depths.append(index + 1 if index is not None else (top if after_blocks else 0))
    return depths


def layer_decay_scales(depths: Sequence[int], decay: float) -> list[float]:
    """Learning-rate multiplier ``decay ** (max depth - depth)`` per depth: 1 for the top layer."""
    if not 0.0 < decay <= 1.0:
        raise ValueError(f"layer decay must be in (0, 1], got {decay}")
    top = max(depths)
    return [decay ** (top - depth) for depth in depths]


def layerwise_parameter_groups(
    backbone: nn.Module, trainable: Sequence[nn.Parameter], lr: float, decay: float
) -> list[dict]:
    """One optimiser group per depth of ``backbone`` holding its ``trainable`` parameters, named
    ``backbone_<depth>`` with learning rate ``lr * decay ** (top - depth)``. Depths count every parameter
    of ``backbone``, frozen ones included, so the top layer learns at ``lr`` whatever is frozen."""
    named = list(backbone.named_parameters())
    depths = parameter_depths([name for name, _ in named])
    scales = layer_decay_scales(depths, decay)
    wanted = {id(parameter) for parameter in trainable}
    groups: dict[int, dict] = {}
    for (_, parameter), depth, scale in zip(named, depths, scales):
        if id(parameter) in wanted:
            group = groups.setdefault(depth, {"params": [], "name": f"backbone_{depth}", "lr": lr * scale})
            group["params"].append(parameter)
    missing = len(wanted) - sum(len(group["params"]) for group in groups.values())
    if missing:
        raise ValueError(
            f"layer-wise decay: {missing} trainable backbone parameter(s) are not in the backbone"
        )
    return [groups[depth] for depth in sorted(groups)]
