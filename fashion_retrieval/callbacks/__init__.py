"""Lightning callbacks: validation metrics and embedding/index export."""

from fashion_retrieval.callbacks.ema import EMAWeightAveraging
from fashion_retrieval.callbacks.evaluator import RetrievalEvaluator, evaluate_embeddings
from fashion_retrieval.callbacks.exporter import EmbeddingExporter
from fashion_retrieval.callbacks.hard_negative_miner import IndexNegativeMiner

__all__ = [
    "EMAWeightAveraging",
    "EmbeddingExporter",
    "IndexNegativeMiner",
    "RetrievalEvaluator",
    "evaluate_embeddings",
]
