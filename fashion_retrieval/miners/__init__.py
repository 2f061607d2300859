"""Which pairs are positives and negatives (masks from product ids or labels) and negative miners: in-batch
(pure functions on similarity matrices), online against a catalogue held in memory, and offline (chunked
exact search). Below ``losses/``, which take the masks and mined negatives as input."""

from fashion_retrieval.miners.batch_hard import hardest_negatives, semi_hard_negatives
from fashion_retrieval.miners.catalogue import catalogue_hard_negatives
from fashion_retrieval.miners.index import mine_hard_negatives
from fashion_retrieval.miners.masks import label_in, label_pair_masks, pair_masks

__all__ = [
    "catalogue_hard_negatives",
    "hardest_negatives",
    "label_in",
    "label_pair_masks",
    "mine_hard_negatives",
    "pair_masks",
    "semi_hard_negatives",
]
