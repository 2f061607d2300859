"""Lightning callbacks: validation metrics and embedding/index export."""

from fashion_retrieval.callbacks.evaluator import RetrievalEvaluator, evaluate_embeddings
from fashion_retrieval.callbacks.exporter import EmbeddingExporter

__all__ = ["EmbeddingExporter", "RetrievalEvaluator", "evaluate_embeddings"]
