"""WiSE-FT (Wortsman et al., 2022): a weight-space ensemble of the pretrained and the fine-tuned model.

``(1 - alpha) * pretrained + alpha * fine-tuned`` per weight: ``alpha = 1`` is the fine-tuned model,
``alpha = 0`` its pretrained backbone under the trained head. Fine-tuning from a pretrained start stays
in one linear basin, so the blend keeps much of the pretrained robustness and much of the fine-tuned
accuracy at once.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import torch


def backbone_keys(state: Mapping[str, torch.Tensor]) -> set[str]:
    """Keys of an encoder state dict that live in a pretrained backbone (a ``backbone`` module: the
    ImageEncoder's, each ensemble member's); the projection head has no pretrained counterpart."""
    return {key for key in state if "backbone" in key.split(".")[:-1]}


def interpolate_weights(
    pretrained: Mapping[str, torch.Tensor],
    finetuned: Mapping[str, torch.Tensor],
    alpha: float,
    keys: Collection[str],
) -> dict[str, torch.Tensor]:
    """``finetuned`` with every floating tensor of ``keys`` replaced by ``(1 - alpha) * pretrained +
    alpha * finetuned`` (same shape and dtype); other entries (the head, integer counters) stay fine-tuned."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"WiSE-FT alpha must be in [0, 1], got {alpha}")
    missing = sorted(set(keys) - set(pretrained))
    if missing:
        raise KeyError(f"WiSE-FT: the pretrained weights lack {len(missing)} key(s), e.g. {missing[:3]}")
    result: dict[str, torch.Tensor] = {}
    for key, tuned in finetuned.items():
        if key in keys and tuned.is_floating_point():
            start = pretrained[key]
            if start.shape != tuned.shape:
                raise ValueError(
                    f"WiSE-FT: {key} is {tuple(start.shape)} pretrained, {tuple(tuned.shape)} tuned"
                )
            mixed = torch.lerp(start.to(torch.float32), tuned.to(torch.float32), alpha)
            result[key] = mixed.to(tuned.dtype)
        else:
            result[key] = tuned
    return result
