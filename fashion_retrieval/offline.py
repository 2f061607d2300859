"""Offline by default: nothing in this project may hang waiting for a network.

Imported first by the package. Each variable is only set when the user has not set it, so
``HF_HUB_OFFLINE=0 fashion-retrieval ...`` still allows hub downloads on a connected machine. One more
default of the same kind: ultralytics loads ``.pt`` files with its restricted loader (docs/security.md).
"""

from __future__ import annotations

import os
import sys

OFFLINE_ENVIRONMENT = {
    "HF_HUB_OFFLINE": "1",  # transformers / timm / huggingface_hub: never call the hub
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "YOLO_OFFLINE": "1",  # ultralytics: no asset downloads, no update or connectivity checks
    "ULTRALYTICS_SAFE_LOAD": "1",  # ultralytics: torch.load(weights_only=True) against its class allow-list
    "NO_ALBUMENTATIONS_UPDATE": "1",  # albumentations: no version check on import
    "WANDB_SILENT": "true",
}


def apply_offline_defaults() -> None:
    for name, value in OFFLINE_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    # huggingface_hub reads HF_HUB_OFFLINE once, at import: if timm or transformers came first, tell it now.
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None and os.environ["HF_HUB_OFFLINE"].lower() in ("1", "true", "yes", "on"):
        constants.HF_HUB_OFFLINE = True
