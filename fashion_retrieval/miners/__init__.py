"""Negative miners: in-batch (pure functions on similarity matrices), online against a catalogue held in
memory, and offline (chunked exact search)."""

from fashion_retrieval.miners.batch_hard import hardest_negatives, semi_hard_negatives
from fashion_retrieval.miners.catalogue import catalogue_hard_negatives
from fashion_retrieval.miners.index import mine_hard_negatives

__all__ = ["catalogue_hard_negatives", "hardest_negatives", "mine_hard_negatives", "semi_hard_negatives"]
