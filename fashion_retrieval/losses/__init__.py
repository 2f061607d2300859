"""Metric-learning losses: pure functions with a thin ``nn.Module`` for Hydra."""

from fashion_retrieval.losses.infonce import InfoNCELoss, info_nce

__all__ = ["InfoNCELoss", "info_nce"]
