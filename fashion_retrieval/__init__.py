"""fashion-retrieval: a Hydra-configured PyTorch Lightning framework for "complete the look" retrieval."""

from fashion_retrieval.offline import apply_offline_defaults

apply_offline_defaults()

__version__ = "0.1.0"
