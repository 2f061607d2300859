"""Lightning callbacks: validation metrics, embedding/index export, W&B tables and artifacts, epoch timing,
best checkpoint across resumes (and the atomic checkpoint writer). Only Lightning glue: the search and
metrics they call live in ``evaluation/``."""

from fashion_retrieval.callbacks.adapter_evaluator import FeatureAdapterEvaluator
from fashion_retrieval.callbacks.checkpointing import (
    AtomicCheckpointIO,
    BestCheckpoint,
    use_atomic_checkpoints,
)
from fashion_retrieval.callbacks.ema import EMAWeightAveraging
from fashion_retrieval.callbacks.epoch_timer import EpochTimer
from fashion_retrieval.callbacks.evaluator import RetrievalEvaluator
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
    "FeatureAdapterEvaluator",
    "IndexNegativeMiner",
    "RetrievalEvaluator",
    "RetrievalSetEvaluator",
    "WandbTables",
    "use_atomic_checkpoints",
]
