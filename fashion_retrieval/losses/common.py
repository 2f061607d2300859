"""Shared pieces of the pair losses: input checks, float32 similarities, the two-direction average and
the temperature parameter."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn


def check_pair_inputs(
    query: torch.Tensor,
    gallery: torch.Tensor,
    positive_mask: torch.Tensor,
    negative_mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Check ``query (B, D)``, ``gallery (P, D)`` and the ``(B, P)`` masks; return ``(positive, negative)``.

    ``negative_mask`` defaults to ``~positive_mask``. An entry marked both positive and negative counts as a
    positive only (a product of the bundle is never its negative). Every row needs one positive: a bundle
    without any of its products in the batch means the batch was built wrong, and silently dropping the row
    would hide that.
    """
    if query.dim() != 2 or gallery.dim() != 2 or query.shape[1] != gallery.shape[1]:
        raise ValueError(
            f"query and gallery must be (B, D) with one D; got {tuple(query.shape)}, {tuple(gallery.shape)}"
        )
    shape = (query.shape[0], gallery.shape[0])
    if positive_mask.shape != shape:
        raise ValueError(f"positive_mask must be {shape}, got {tuple(positive_mask.shape)}")
    positive = positive_mask.to(device=query.device, dtype=torch.bool)
    if negative_mask is None:
        negative = ~positive
    else:
        if negative_mask.shape != shape:
            raise ValueError(f"negative_mask must be {shape}, got {tuple(negative_mask.shape)}")
        negative = negative_mask.to(device=query.device, dtype=torch.bool) & ~positive
    if query.shape[0] == 0:
        raise ValueError("empty batch: query has no rows")
    if not positive.any(dim=1).all():
        rows = (~positive.any(dim=1)).nonzero().flatten().tolist()
        raise ValueError(
            f"every query needs at least one positive in the gallery; rows without one: {rows[:10]}"
        )
    return positive, negative


def similarity_float32(query: torch.Tensor, gallery: torch.Tensor) -> torch.Tensor:
    """Cosine similarities ``(B, P)`` of L2-normalised rows, in float32 (float64 stays float64).

    Autocast is switched off around the product: under bf16/fp16 autocast a float32 matmul would be cast
    back down, and logits divided by a small temperature lose too much precision in half floats.
    """
    dtype = torch.promote_types(torch.promote_types(query.dtype, gallery.dtype), torch.float32)
    with torch.autocast(device_type=query.device.type, enabled=False):
        return query.to(dtype) @ gallery.to(dtype).T


PerAnchorLoss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def anchored_both_ways(
    per_anchor: PerAnchorLoss,
    logits: torch.Tensor,
    positive: torch.Tensor,
    negative: torch.Tensor,
    symmetric: bool,
) -> torch.Tensor:
    """Mean of ``per_anchor(logits (B, P), positive, negative)`` (query-anchored, one value per term), and,
    when ``symmetric``, its average with the same over the transposed batch (gallery-anchored)."""
    query_anchored = per_anchor(logits, positive, negative).mean()
    if not symmetric:
        return query_anchored
    gallery_anchored = per_anchor(logits.T, positive.T, negative.T).mean()
    return 0.5 * (query_anchored + gallery_anchored)


class TemperatureMixin(nn.Module):
    """A fixed or learnable softmax temperature, shared by :class:`InfoNCELoss` and :class:`SupConLoss`.

    Learnable: a log-temperature ``nn.Parameter`` (state key ``log_temperature``) initialised at
    ``log(temperature)`` and clamped in place to ``[min_temperature, max_temperature]`` before every use,
    as OpenCLIP clamps its logit scale at 100 (temperature 0.01): below that, the logits of unit vectors
    overflow the softmax and training diverges. Fixed: a plain float, nothing in the state dict.

    Args:
        temperature: initial (or fixed) softmax temperature.
        learnable_temperature: learn ``log(temperature)``; exclude it from weight decay, which would
            otherwise pull the temperature towards 1.
        symmetric: add the gallery -> query direction.
        min_temperature, max_temperature: clamp range of a learnable temperature.
    """

    def __init__(
        self,
        temperature: float = 0.05,
        learnable_temperature: bool = False,
        symmetric: bool = True,
        min_temperature: float = 0.01,
        max_temperature: float = 1.0,
    ) -> None:
        super().__init__()
        self.symmetric = symmetric
        self._init_temperature(temperature, learnable_temperature, min_temperature, max_temperature)

    def _init_temperature(
        self, temperature: float, learnable: bool, min_temperature: float, max_temperature: float
    ) -> None:
        if not 0 < min_temperature <= max_temperature:
            raise ValueError(
                f"need 0 < min_temperature <= max_temperature, got {min_temperature}, {max_temperature}"
            )
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        if learnable and not min_temperature <= temperature <= max_temperature:
            raise ValueError(f"temperature {temperature} is outside [{min_temperature}, {max_temperature}]")
        self.learnable_temperature = learnable
        self.min_temperature = min_temperature
        self.max_temperature = max_temperature
        self._fixed_temperature = float(temperature)
        if learnable:
            self.log_temperature = nn.Parameter(torch.tensor(math.log(temperature)))

    def temperature_tensor(self) -> torch.Tensor | float:
        """The temperature to divide logits by: a scalar tensor with a gradient when learnable."""
        if not self.learnable_temperature:
            return self._fixed_temperature
        with torch.no_grad():
            self.log_temperature.clamp_(math.log(self.min_temperature), math.log(self.max_temperature))
        return self.log_temperature.float().exp()

    @property
    def current_temperature(self) -> float:
        """The temperature as a float, for logging."""
        if not self.learnable_temperature:
            return self._fixed_temperature
        return float(
            self.log_temperature.detach().exp().clamp(self.min_temperature, self.max_temperature).item()
        )

    def extra_repr(self) -> str:
        return f"temperature={self.current_temperature:.4g}, learnable={self.learnable_temperature}"
