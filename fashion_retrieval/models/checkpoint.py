"""Rebuild a trained encoder from a checkpoint alone (its config travels inside the checkpoint).

At train time :func:`checkpoint_encoder_config` completes the encoder's resolved Hydra config with what
each backbone needs to rebuild its architecture without its pretrained files (a CLIP tower's vision
config and normalisation). :func:`load_encoder` then builds the architecture with random weights (no
pretrained file is read, so none needs to exist on the inference machine) and loads the trained ones.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
from hydra.utils import get_object, instantiate
from torch import nn


def attach_backbone_configs(node: Any, module: nn.Module | None) -> None:
    """Walk a config and the module it built side by side, in place: a config key (or list index) names
    the submodule it built (``backbone``, ``members.clip``, ``members.0``). Where a module defines
    ``checkpoint_config() -> dict``, merge that into its node."""
    if module is None:
        return
    if isinstance(node, dict):
        hook = getattr(module, "checkpoint_config", None)
        if callable(hook):
            node.update(hook())
        children = list(node.items())
    elif isinstance(node, list):
        children = list(enumerate(node))
    else:
        return
    for key, value in children:
        child = getattr(module, str(key), None)
        attach_backbone_configs(value, child if isinstance(child, nn.Module) else None)


def checkpoint_encoder_config(encoder_cfg: dict, encoder: nn.Module) -> dict:
    """The resolved encoder config (plain dict) completed so that :func:`load_encoder` can rebuild
    ``encoder`` without its pretrained weights; the pretrained references are kept as provenance."""
    config = copy.deepcopy(dict(encoder_cfg))
    attach_backbone_configs(config, encoder)
    return config


# The constructor argument naming pretrained weights, per backbone class (subclasses included). Names,
# not classes: checking a timm-only config must not import transformers.
PRETRAINED_ARGUMENTS = {
    "fashion_retrieval.models.backbones.TimmBackbone": "weights",
    "fashion_retrieval.models.clip.ClipVisionBackbone": "pretrained",
}


def pretrained_argument(target: str) -> str | None:
    """The argument that names pretrained weights for a ``_target_``, or ``None`` if it is no backbone."""
    built = get_object(target)
    for cls in built.__mro__ if isinstance(built, type) else ():
        argument = PRETRAINED_ARGUMENTS.get(f"{cls.__module__}.{cls.__qualname__}")
        if argument:
            return argument
    return None


def without_pretrained(node: Any) -> Any:
    """A copy of a config where no backbone reads pretrained weights.

    A timm backbone's ``weights`` becomes ``None``. A CLIP backbone's ``pretrained`` becomes ``None`` where
    its architecture is recorded (``vision_config``); an older checkpoint without it keeps ``pretrained``,
    the only description of its architecture.
    """
    if isinstance(node, list):
        return [without_pretrained(value) for value in node]
    if not isinstance(node, dict):
        return node
    result = {key: without_pretrained(value) for key, value in node.items()}
    argument = pretrained_argument(result["_target_"]) if "_target_" in result else None
    if argument == "weights" or (argument == "pretrained" and result.get("vision_config")):
        result[argument] = None
    return result


def load_encoder(ckpt_path: str | Path) -> nn.Module:
    """Instantiate the encoder recorded in ``ckpt_path`` and load its trained weights (eval mode).

    Works for any encoder built from a Hydra config: :class:`~fashion_retrieval.models.encoder.ImageEncoder`
    (timm or CLIP backbone) and :class:`~fashion_retrieval.models.ensemble.EnsembleEncoder`.
    """
    path = Path(ckpt_path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path} (train first, or pass ckpt_path=...)")
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    config = checkpoint.get("encoder_config")
    if config is None:
        raise ValueError(
            f"{path}: no encoder_config in the checkpoint; was it written by fashion-retrieval train?"
        )
    encoder: nn.Module = instantiate(without_pretrained(copy.deepcopy(dict(config))))
    prefix = "encoder."
    state = {k[len(prefix) :]: v for k, v in checkpoint["state_dict"].items() if k.startswith(prefix)}
    encoder.load_state_dict(state)
    return encoder.eval()
