"""Rebuild a trained encoder from a checkpoint alone (its config travels inside the checkpoint).

At train time :func:`checkpoint_encoder_config` completes the encoder's resolved Hydra config with what
each backbone needs to rebuild its architecture without its pretrained files (a CLIP tower's vision
config and normalisation). :func:`load_encoder` then builds the architecture with random weights
(``random``, asked for explicitly; no pretrained file is read, so none needs to exist on the inference
machine) and loads the trained ones.

A checkpoint is data, never code (docs/security.md): :func:`load_checkpoint` reads tensors and plain
containers only (``torch.load(weights_only=True)``), and :func:`build_encoder` builds only the classes of
:data:`ENCODER_CLASSES` from the stored config, so neither a pickle payload nor a ``_target_`` naming
some other callable (``shutil.copyfile``, ``os.system``) ever runs.
"""

from __future__ import annotations

import copy
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from hydra.utils import get_object
from torch import nn

from fashion_retrieval.models.weights import RANDOM, backbone_class

CHECKPOINT_HINT = "pass the checkpoints/best.ckpt or last.ckpt that `fashion-retrieval train` wrote"

# Every class an encoder config stored in a checkpoint may name (nested ``_target_``s included). Names, not
# classes: checking a timm-only config must not import transformers. A new backbone or head class is added
# here, or checkpoints of it do not load.
ENCODER_CLASSES = frozenset(
    {
        "fashion_retrieval.models.encoder.ImageEncoder",
        "fashion_retrieval.models.ensemble.EnsembleEncoder",
        "fashion_retrieval.models.backbones.TimmBackbone",
        "fashion_retrieval.models.clip.ClipVisionBackbone",
        "fashion_retrieval.models.heads.ProjectionHead",
        "fashion_retrieval.models.heads.ResidualAdapter",
    }
)


class CheckpointError(ValueError):
    """A file given as a checkpoint is not one we can load safely; the message names it and what to do."""


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """The contents of a ``torch.save`` file read as data only (tensors, numbers, strings, lists, dicts:
    ``torch.load(weights_only=True)``), on the CPU, its tensors mapped from the file.

    Raises :class:`FileNotFoundError`, or :class:`CheckpointError` naming the file for an empty,
    truncated or foreign file and for one holding other objects (a pickle that could run code is refused
    before anything in it runs).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path} (train first, or {CHECKPOINT_HINT})")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: empty file (0 bytes), not a checkpoint; {CHECKPOINT_HINT}")
    try:
        # Mapped, not read: only the tensors a caller uses are paged in (a training checkpoint's optimizer
        # state, two thirds of the quickstart's 43 MB, is never read by a search). Private mapping: writing
        # to a tensor never reaches the file, and our atomic writes replace a file rather than change it.
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError as error:
        # torch's message is a page long; keep its one line that says what was refused. A refused global
        # is a pickle that would build objects; anything else is bytes that are no pickle at all.
        lines = [line.strip() for line in str(error).splitlines()]
        refused = [line for line in lines if "GLOBAL" in line or "global" in line]
        if refused:
            raise CheckpointError(
                f"{path}: refused: it holds objects other than tensors and plain data ({refused[0]}). "
                f"Checkpoints are loaded as data only, never unpickled (docs/security.md); {CHECKPOINT_HINT}"
            ) from None
        reason = next((line for line in lines if line.startswith("Unsupported")), type(error).__name__)
        raise CheckpointError(
            f"{path}: not a readable PyTorch checkpoint ({reason}); the file is truncated or of another "
            f"kind. {CHECKPOINT_HINT}"
        ) from None
    except (EOFError, OSError, RuntimeError, KeyError, ValueError, zipfile.BadZipFile) as error:
        raise CheckpointError(
            f"{path}: not a readable PyTorch checkpoint ({type(error).__name__}: {error}); the file is "
            f"truncated or of another kind. {CHECKPOINT_HINT}"
        ) from None
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"{path}: holds a {type(checkpoint).__name__}, not a checkpoint dict")
    return checkpoint


def check_encoder_config(node: Any, where: str = "encoder_config") -> None:
    """Raise :class:`CheckpointError` unless every ``_target_`` in ``node`` (nested ones too) is one of
    :data:`ENCODER_CLASSES` and no other Hydra key (``_partial_``, ``_args_``...) appears; ``where`` is the
    path of ``node`` for the message."""
    if isinstance(node, list):
        for index, value in enumerate(node):
            check_encoder_config(value, f"{where}[{index}]")
        return
    if not isinstance(node, Mapping):
        return
    if "_target_" in node and node["_target_"] not in ENCODER_CLASSES:
        raise CheckpointError(
            f"{where}._target_ = {node['_target_']!r} is not an encoder class of this project; a checkpoint "
            f"may only name {sorted(ENCODER_CLASSES)}"
        )
    for key, value in node.items():
        if not isinstance(key, str) or (key != "_target_" and key.startswith("_") and key.endswith("_")):
            raise CheckpointError(f"{where}: key {key!r} is not allowed in a stored encoder config")
        check_encoder_config(value, f"{where}.{key}")


def build_encoder(config: Mapping[str, Any]) -> nn.Module:
    """The encoder a plain-data config describes, built only from :data:`ENCODER_CLASSES` (checked first,
    nested configs included; no interpolation is resolved). Nested ``_target_`` nodes become their objects
    and are passed as arguments, as Hydra would; lists and other values are passed as they are."""
    check_encoder_config(config)
    if "_target_" not in config:
        raise CheckpointError("encoder_config: no _target_ at its top level")
    return _build(config)


def _build(node: Any) -> Any:
    if isinstance(node, list):
        return [_build(value) for value in node]
    if not isinstance(node, Mapping):
        return node
    arguments = {key: _build(value) for key, value in node.items() if key != "_target_"}
    return get_object(node["_target_"])(**arguments) if "_target_" in node else arguments


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


def pretrained_argument(target: str) -> str | None:
    """The argument that names pretrained weights for a ``_target_``, or ``None`` if it is no backbone."""
    if target not in ENCODER_CLASSES:  # not imported: a stored config names only classes of the list
        return None
    found = backbone_class(target)
    return found[1] if found else None


def without_pretrained(node: Any) -> Any:
    """A copy of a config where no backbone reads pretrained weights: the trained ones are loaded next.

    A timm backbone's ``weights`` becomes ``random``. A CLIP backbone's ``pretrained`` becomes ``random``
    where its architecture is recorded (``vision_config``) or where there was none (trained from random
    initialisation); an older checkpoint without ``vision_config`` keeps ``pretrained``, the only
    description of its architecture.
    """
    if isinstance(node, list):
        return [without_pretrained(value) for value in node]
    if not isinstance(node, dict):
        return node
    result = {key: without_pretrained(value) for key, value in node.items()}
    argument = pretrained_argument(result["_target_"]) if "_target_" in result else None
    if argument == "weights" or (
        argument == "pretrained" and (result.get("vision_config") or not result.get("pretrained"))
    ):
        result[argument] = RANDOM
    return result


def names_pretrained_weights(node: Any) -> bool:
    """Whether some backbone of an encoder config starts from pretrained weights (its weights argument is
    neither null, empty nor ``random``)."""
    if isinstance(node, list):
        return any(names_pretrained_weights(value) for value in node)
    if not isinstance(node, dict):
        return False
    argument = pretrained_argument(node["_target_"]) if "_target_" in node else None
    if argument and node.get(argument) not in (None, "", RANDOM):
        return True
    return any(names_pretrained_weights(value) for value in node.values())


def load_encoder(ckpt_path: str | Path) -> nn.Module:
    """Instantiate the encoder recorded in ``ckpt_path`` and load its trained weights (eval mode).

    Works for any encoder built from the classes of :data:`ENCODER_CLASSES`:
    :class:`~fashion_retrieval.models.encoder.ImageEncoder` (timm or CLIP backbone) and
    :class:`~fashion_retrieval.models.ensemble.EnsembleEncoder`. The file is read as data only
    (:func:`load_checkpoint`).
    """
    path = Path(ckpt_path)
    checkpoint = load_checkpoint(path)
    config = checkpoint.get("encoder_config")
    if not isinstance(config, dict):
        raise CheckpointError(
            f"{path}: no encoder_config in the checkpoint; was it written by fashion-retrieval train?"
        )
    try:
        encoder = build_encoder(without_pretrained(copy.deepcopy(config)))
    except CheckpointError as error:
        raise CheckpointError(f"{path}: {error}") from None
    prefix = "encoder."
    state = {k[len(prefix) :]: v for k, v in checkpoint["state_dict"].items() if k.startswith(prefix)}
    encoder.load_state_dict(state)
    return encoder.eval()
