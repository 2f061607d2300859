"""Lightning callbacks: validation metrics, embedding/index export, W&B tables and artifacts, epoch timing,
best checkpoint across resumes (and the atomic checkpoint writer)."""

from fashion_retrieval.callbacks.checkpointing import (
    AtomicCheckpointIO,
    BestCheckpoint,
    use_atomic_checkpoints,
)
from fashion_retrieval.callbacks.ema import EMAWeightAveraging
from fashion_retrieval.callbacks.epoch_timer import EpochTimer
from fashion_retrieval.callbacks.evaluator import RetrievalEvaluator, evaluate_embeddings
from fashion_retrieval.callbacks.exporter import EmbeddingExporter
from fashion_retrieval.callbacks.hard_negative_miner import IndexNegativeMiner
from fashion_retrieval.callbacks.set_evaluator import RetrievalSetEvaluator
from fashion_retrieval.callbacks.wandb_logger import ExperimentWandbLogger
from fashion_retrieval.callbacks.wandb_tables import WandbTables

__all__ = [
    "AtomicCheckpointIO",
    "BestCheckpoint",
    "EMAWeightAveraging",
    "EmbeddingExporter",
    "EpochTimer",
    "ExperimentWandbLogger",
    "IndexNegativeMiner",
    "RetrievalEvaluator",
    "RetrievalSetEvaluator",
    "WandbTables",
    "evaluate_embeddings",
    "use_atomic_checkpoints",
]
