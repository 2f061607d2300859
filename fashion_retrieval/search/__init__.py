"""Search: from "an encoder, an index and a catalogue" to "ranked products for a photo".

Loading a run's encoder, index, detector and re-ranker once (:mod:`.loading`), per-garment search
(:mod:`.garments`), merging crops' lists into slots with their rules (:mod:`.slots`), the search of a
dataset's bundles shared by the stages (:mod:`.bundles`), self-training on it (:mod:`.self_training`), and
the public face of all of it, :class:`~fashion_retrieval.search.retriever.Retriever` (docs/search.md).
The constraints (sections, categories) sit below, in :mod:`fashion_retrieval.index.eligibility`, because
the re-ranking chain and the training evaluator apply them too.
"""
