"""fashion-retrieval: a Hydra-configured PyTorch Lightning framework for "complete the look" retrieval."""

from fashion_retrieval.machine import register_resolvers
from fashion_retrieval.offline import apply_offline_defaults

apply_offline_defaults()
register_resolvers()  # ${auto_workers:...} in the configs, whoever composes them

__version__ = "0.1.0"
