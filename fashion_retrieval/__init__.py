"""fashion-retrieval: a Hydra-configured PyTorch Lightning framework for "complete the look" retrieval."""

__version__ = "0.1.0"
