"""Metric-learning losses: pure functions with a thin ``nn.Module`` for Hydra.

Every loss module is called as ``loss(query (B, D), gallery (P, D), positive_mask (B, P), negative_mask
(B, P) | None)``; :func:`fashion_retrieval.miners.pair_masks` builds the masks from product ids,
:class:`CrossBatchMemory` adds negative-only columns.
"""

from fashion_retrieval.losses.anchor import feature_distillation, l2_sp_penalty
from fashion_retrieval.losses.common import TemperatureMixin, similarity_float32
from fashion_retrieval.losses.infonce import InfoNCELoss, info_nce
from fashion_retrieval.losses.memory import CrossBatchMemory, append_negatives
from fashion_retrieval.losses.supcon import SupConLoss, supervised_contrastive
from fashion_retrieval.losses.triplet import TripletLoss, cosine_to_euclidean, triplet_margin_loss

__all__ = [
    "CrossBatchMemory",
    "InfoNCELoss",
    "SupConLoss",
    "TemperatureMixin",
    "TripletLoss",
    "append_negatives",
    "cosine_to_euclidean",
    "feature_distillation",
    "info_nce",
    "l2_sp_penalty",
    "similarity_float32",
    "supervised_contrastive",
    "triplet_margin_loss",
]
