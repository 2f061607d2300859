"""What a cached feature depends on, reduced to one digest: weights, output, image content, preprocessing,
crops, items."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from fashion_retrieval.data.datasets import ImageDataset
from fashion_retrieval.data.transforms import EvalTransform
from fashion_retrieval.detection.fingerprint import settings_digest
from fashion_retrieval.io import contents_digest

__all__ = ["describe_dataset", "feature_settings", "module_digest", "weights_module"]


def module_digest(module: nn.Module) -> str:
    """Hex SHA-256 of a module's state (names, dtypes, shapes and values, non-persistent buffers included):
    equal weights give equal digests, whichever checkpoint or weights file they came from."""
    digest = hashlib.sha256()
    state = dict(module.named_parameters())
    state.update(module.named_buffers())
    for name in sorted(state):
        tensor = state[name].detach().cpu().reshape(-1).contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(state[name].shape)}|".encode())
        # Viewed as bytes: bfloat16 has no numpy dtype.
        digest.update(tensor.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def weights_module(encoder: nn.Module, method: str) -> nn.Module:
    """The part of ``encoder`` whose weights ``method`` reads: the backbone alone for
    ``backbone_features`` and ``pooled_features`` (a new head does not invalidate raw backbone features),
    else all of it."""
    backbone = getattr(encoder, "backbone", None)
    if method in ("backbone_features", "pooled_features") and isinstance(backbone, nn.Module):
        return backbone
    return encoder


def describe_dataset(dataset: Dataset) -> dict[str, Any]:
    """The input of an :class:`ImageDataset`: the images' content (one digest over every file's SHA-256,
    :func:`~fashion_retrieval.io.contents_digest`: ids are not content, a regenerated or re-downloaded
    image keeps its id) and its preprocessing: eval transform (:meth:`EvalTransform.describe`: resize size
    and interpolation), fractional crop, per-image boxes (digest) and their padding.

    Other datasets, and image datasets with another transform, raise TypeError: pass their description as
    ``preprocessing=`` instead (it must cover the content of their items too).
    """
    if not isinstance(dataset, ImageDataset) or not isinstance(dataset.transform, EvalTransform):
        raise TypeError(
            f"cannot describe the preprocessing of a {type(dataset).__name__} "
            f"({type(getattr(dataset, 'transform', None)).__name__} transform); pass preprocessing={{...}} "
            "(image size, transform, crops) so the feature cache knows when to recompute"
        )
    boxes = None
    if dataset.boxes is not None:
        # Floats: a box of fresh detections may hold ints where the detection cache returns floats, and
        # 12 and 12.0 digest differently.
        boxes = settings_digest(
            {"boxes": [None if b is None else [float(v) for v in b] for b in dataset.boxes]}
        )
    return {
        "images": contents_digest(dataset.paths),
        "transform": dataset.transform.describe(),
        "crop": None if dataset.crop is None else list(dataset.crop),
        "boxes": boxes,
        "padding": dataset.padding,
    }


def _floats(values: Any) -> list[float]:
    return [float(v) for v in torch.as_tensor(values, dtype=torch.float64).flatten()]


def ids_digest(ids: Sequence[str]) -> str:
    return hashlib.sha256(json.dumps(list(ids)).encode()).hexdigest()


def feature_settings(
    encoder: nn.Module,
    ids: Sequence[str],
    preprocessing: Mapping[str, Any],
    method: str = "forward",
    views: Sequence[str] = (),
    crops: Mapping[str, Any] | None = None,
    precision: str = "32-true",
    weights_digest: str | None = None,
) -> dict[str, Any]:
    """Everything that changes the features of ``ids``, as JSON-able settings; their
    :func:`~fashion_retrieval.detection.fingerprint.settings_digest` names the cache entry.

    ``weights_digest``: a known hash of the weights (e.g. a checkpoint's SHA-256); default
    :func:`module_digest` of the weights ``method`` reads. ``crops``: the detector fingerprint and crop
    settings the items' regions came from (``CropSettings.cache_settings()``), when they are crops.
    ``precision``: the Lightning precision the features are computed at (bf16 features differ from fp32).
    """
    return {
        "encoder": {
            "class": f"{type(encoder).__module__}.{type(encoder).__qualname__}",
            "weights": weights_digest or module_digest(weights_module(encoder, method)),
            "method": method,
            "views": list(views),
            # The model normalises its own input: its statistics are part of the preprocessing.
            "mean": _floats(getattr(encoder, "mean", ())),
            "std": _floats(getattr(encoder, "std", ())),
            "precision": str(precision),
        },
        "preprocessing": dict(preprocessing),
        "crops": None if crops is None else dict(crops),
        "items": {"count": len(ids), "digest": ids_digest(ids)},
    }
