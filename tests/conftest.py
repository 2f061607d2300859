"""Shared fixtures. Importing the package first puts every library in offline mode."""

from __future__ import annotations

import fashion_retrieval  # noqa: F401 - offline defaults before timm/transformers/wandb are imported
