"""Loss and input augmentations of the query-side adapter trained on cached features (``docs/adapters.md``).

* :func:`adapter_info_nce`: query -> candidates InfoNCE with a margin on the positive cosine, label
  smoothing over each term's candidate set, and per-row weights (for mixup).
* :func:`feature_noise`: Gaussian noise on unit features, re-normalised.
* :func:`mix_embeddings`: mixup of query feature pairs; the loss mixes their targets with the same weights
  (:func:`mixup_rows`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fashion_retrieval.losses.common import TemperatureMixin, check_pair_inputs, similarity_float32


def _smoothed_cross_entropy(
    logits: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor, label_smoothing: float
) -> torch.Tensor:
    """Per positive entry ``(i, p)``: label-smoothed cross-entropy over the candidates ``{p} ∪ N(i)``.

    The target puts ``1 - eps + eps / K`` on ``p`` and ``eps / K`` on each negative, ``K = 1 + |N(i)|``
    (``F.cross_entropy(label_smoothing=eps)`` on that row): the row's other positives are neither in the
    denominator nor in the smoothing mass, as in :func:`fashion_retrieval.losses.info_nce`.
    Returns ``(N,)`` losses in row-major order of the positives.
    """
    negative_logits = logits.masked_fill(~negative, float("-inf"))
    negative_lse = torch.logsumexp(negative_logits, dim=1, keepdim=True)
    # A row without negatives: lse -inf, its loss is 0; a finite stand-in keeps the backward free of nan.
    has_negative = negative.any(dim=1, keepdim=True)
    negative_lse = negative_lse.masked_fill(~has_negative, -1e4)
    log_probability = logits - torch.logaddexp(logits, negative_lse.expand_as(logits))  # log p(positive)
    negative_count = negative.sum(dim=1, keepdim=True).to(logits.dtype)
    # sum of log p(n) over the negatives = sum(l_n) - |N| * lse(candidates)
    candidate_lse = logits - log_probability
    negative_log_probability = (logits * negative).sum(dim=1, keepdim=True) - negative_count * candidate_lse
    size = negative_count + 1
    per_entry = -(1 - label_smoothing) * log_probability - label_smoothing / size * (
        log_probability + negative_log_probability
    )
    return per_entry[positive]


def adapter_info_nce(
    query: torch.Tensor,
    candidates: torch.Tensor,
    temperature: float | torch.Tensor,
    positive_mask: torch.Tensor,
    negative_mask: torch.Tensor | None = None,
    margin: float = 0.0,
    label_smoothing: float = 0.0,
    row_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Query-anchored InfoNCE with a cosine margin, label smoothing and per-row weights.

    Args:
        query: ``(B, D)`` L2-normalised adapted queries.
        candidates: ``(C, D)`` L2-normalised catalogue embeddings (the batch's products, then bank entries).
        temperature: softmax temperature (float or scalar tensor, e.g. learnable).
        positive_mask: ``(B, C)`` bool, True where candidate ``j`` is one of query ``i``'s products.
        negative_mask: ``(B, C)`` bool, default ``~positive_mask``; entries neither positive nor negative
            (a bank entry of the query's own product, a mixup partner's product) are ignored.
        margin: subtracted from the positive cosine before the temperature (``(s_ip - m) / T``, the
            AM-softmax form): a positive must beat the negatives by ``m`` in cosine.
        label_smoothing: ``eps`` in ``[0, 1)``, spread uniformly over each term's candidate set.
        row_weights: ``(B,)`` non-negative weights of each row's terms (mixup); default 1.

    Every positive ``(i, p)`` is one term scored against row ``i``'s negatives (multi-positive rows: one
    term per product, never pushed against each other). Every row needs a positive.

    Returns:
        Scalar float32: the weighted mean over terms, ``sum w_i l_ip / sum w_i``.
    """
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
    positive, negative = check_pair_inputs(query, candidates, positive_mask, negative_mask)
    similarity = similarity_float32(query, candidates)
    logits = (similarity - margin * positive.to(similarity.dtype)) / temperature
    losses = _smoothed_cross_entropy(logits, positive, negative, label_smoothing)
    if row_weights is None:
        return losses.mean()
    if row_weights.shape != (query.shape[0],):
        raise ValueError(f"row_weights must be ({query.shape[0]},), got {tuple(row_weights.shape)}")
    weights = row_weights.to(losses).unsqueeze(1).expand_as(positive)[positive]
    total = weights.sum()
    if total <= 0:
        raise ValueError("row_weights sum to zero over the positives")
    return (weights * losses).sum() / total


class AdapterInfoNCELoss(TemperatureMixin):
    """Module form of :func:`adapter_info_nce` (``adapter.module.loss``), with a fixed or learnable
    temperature (:class:`fashion_retrieval.losses.common.TemperatureMixin`).

    The winners' values: ``temperature=0.07`` learnable, ``margin=0.1``, ``label_smoothing=0.15``.
    Query-anchored only (``symmetric`` is not an option): bank columns have no query to anchor.
    """

    def __init__(
        self,
        temperature: float = 0.07,
        learnable_temperature: bool = True,
        margin: float = 0.0,
        label_smoothing: float = 0.0,
        min_temperature: float = 0.01,
        max_temperature: float = 1.0,
    ) -> None:
        super().__init__(temperature, learnable_temperature, False, min_temperature, max_temperature)
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        self.margin = float(margin)
        self.label_smoothing = float(label_smoothing)

    def forward(
        self,
        query: torch.Tensor,
        candidates: torch.Tensor,
        positive_mask: torch.Tensor,
        negative_mask: torch.Tensor | None = None,
        row_weights: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return adapter_info_nce(
            query,
            candidates,
            self.temperature_tensor(),
            positive_mask,
            negative_mask,
            self.margin,
            self.label_smoothing,
            row_weights,
        )

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, margin={self.margin}, label_smoothing={self.label_smoothing}"


def feature_noise(features: torch.Tensor, std: float) -> torch.Tensor:
    """``normalize(x + std * N(0, I))``: ``(B, D)`` unit features stay unit features. ``std=0``: unchanged.

    Draws from the global RNG (seeded by Lightning's ``seed_everything``).
    """
    if std < 0:
        raise ValueError(f"noise std must be >= 0, got {std}")
    if std == 0:
        return features
    return F.normalize(features + std * torch.randn_like(features), dim=-1)


def mix_embeddings(
    features: torch.Tensor, probability: float, alpha: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mixup of query feature pairs ("mixup of embedding pairs" in the winners' recipe).

    Each row is mixed with probability ``probability``: with a partner ``j`` (a random other row of the
    batch) and ``lam ~ Beta(alpha, alpha)``, it becomes ``normalize(lam x_i + (1 - lam) x_j)``; its targets
    are then ``lam`` x row ``i``'s and ``(1 - lam)`` x row ``j``'s (:func:`mixup_rows`). Unmixed rows keep
    ``partner = i``, ``lam = 1``. Draws from the global RNG.

    Args:
        features: ``(B, D)`` unit query features (before the adapter).

    Returns:
        ``mixed (B, D)``, ``partner (B,)`` long, ``lam (B,)`` float32.
    """
    if not 0.0 <= probability <= 1.0:
        raise ValueError(f"mixup probability must be in [0, 1], got {probability}")
    if alpha <= 0:
        raise ValueError(f"mixup alpha must be > 0, got {alpha}")
    size, device = features.shape[0], features.device
    partner = torch.arange(size, device=device)
    lam = torch.ones(size, device=device)
    if probability == 0 or size < 2:
        return features, partner, lam
    chosen = torch.rand(size, device=device) < probability
    # A partner drawn among the other rows: an offset in [1, B) never lands on the row itself.
    offset = torch.randint(1, size, (size,), device=device)
    partner = torch.where(chosen, (partner + offset) % size, partner)
    concentration = torch.tensor(float(alpha), device=device)
    draws = torch.distributions.Beta(concentration, concentration).sample((size,))
    lam = torch.where(chosen, draws, lam)
    weight = lam.to(features.dtype).unsqueeze(1)
    mixed = F.normalize(weight * features + (1 - weight) * features[partner], dim=-1)
    return torch.where(chosen.unsqueeze(1), mixed, features), partner, lam


def mixup_rows(
    positive_mask: torch.Tensor,
    negative_mask: torch.Tensor,
    partner: torch.Tensor,
    lam: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Loss rows of a mixed batch: every row with its own targets (weight ``lam``), then each mixed row
    again with its partner's targets (weight ``1 - lam``).

    A mixed row's negatives are the candidates negative for both rows: neither row's products is pushed
    away from the mix.

    Args:
        positive_mask, negative_mask: ``(B, C)`` bool of the unmixed rows.
        partner: ``(B,)`` long, lam: ``(B,)`` from :func:`mix_embeddings`.

    Returns:
        ``rows (B + M,)`` long (the query row each loss row reads), ``positive (B + M, C)``,
        ``negative (B + M, C)``, ``weights (B + M,)``.
    """
    mixed = (partner != torch.arange(partner.shape[0], device=partner.device)).nonzero().flatten()
    both_negative = negative_mask & negative_mask[partner]
    rows = torch.cat([torch.arange(partner.shape[0], device=partner.device), mixed])
    positive = torch.cat([positive_mask, positive_mask[partner[mixed]]])
    negative = torch.cat([both_negative, both_negative[mixed]])
    weights = torch.cat([lam, 1 - lam[mixed]])
    return rows, positive, negative, weights
