"""The trained encoder as an ONNX graph, run by onnxruntime behind the interface of the torch encoder.

:func:`export_encoder_onnx` writes an encoder (:class:`~fashion_retrieval.models.encoder.ImageEncoder` or
:class:`~fashion_retrieval.models.ensemble.EnsembleEncoder`: backbone, head and L2 norm) as one graph
``images (B, 3, H, W) uint8 RGB -> embeddings (B, D) float32, L2-normalised``, with batch, height and
width dynamic; the input normalisation stays inside, as in the torch model. A JSON sidecar
(:func:`~fashion_retrieval.models.onnx_session.sidecar_path`) says what the graph expects and which
checkpoint it came from.

:class:`OnnxEncoder` is the torch face of the pair, loaded and checked by
:class:`~fashion_retrieval.models.onnx_session.OnnxSession` (numpy, no torch: what the ONNX service
embeds with). :func:`load_search_encoder` picks the backend from ``encoder.backend`` (``torch`` or ``onnx``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig
from torch import nn

from fashion_retrieval.io import file_digest
from fashion_retrieval.models.checkpoint import load_encoder
from fashion_retrieval.models.onnx_session import (
    INPUT_NAME,
    OUTPUT_NAME,
    SIDECAR_FORMAT,
    OnnxExportError,
    OnnxSession,
    encoder_backend,
    load_onnx_session,
    sidecar_path,
)

__all__ = ["OnnxEncoder", "OnnxExportError", "export_encoder_onnx", "load_search_encoder", "sidecar_path"]

OPSET = 17


def input_normalisation(encoder: nn.Module) -> list[dict[str, list[float]]]:
    """The ``mean``/``std`` every backbone of ``encoder`` applies inside the graph, one entry per member (an
    :class:`~fashion_retrieval.models.ensemble.EnsembleEncoder` feeds the same image to each member)."""
    member_list = getattr(encoder, "member_list", None)
    members = member_list() if callable(member_list) else [encoder]
    return [{"mean": list(map(float, m.mean)), "std": list(map(float, m.std))} for m in members]


def export_encoder_onnx(encoder: nn.Module, path: str | Path, sample_size: Sequence[int]) -> None:
    """Write ``encoder`` (eval mode, on the CPU) to ``path`` as ONNX, traced on a ``(2, 3, H, W)`` uint8
    batch of ``sample_size = (H, W)``; batch, height and width stay dynamic in the graph.

    The caller makes the write atomic (:func:`~fashion_retrieval.io.atomic_path`)."""
    height, width = (int(v) for v in sample_size)
    sample = torch.randint(0, 256, (2, 3, height, width), dtype=torch.uint8, generator=torch.Generator())
    encoder = encoder.cpu().eval()
    axes = {0: "batch", 2: "height", 3: "width"}
    with torch.no_grad():
        # The TorchScript-based exporter: the dynamo one needs onnxscript, which the onnx extra lacks.
        torch.onnx.export(
            encoder,
            (sample,),
            str(path),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: axes, OUTPUT_NAME: {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )


def sidecar_metadata(
    encoder: nn.Module, onnx_path: str | Path, checkpoint: str | Path, sizes: Mapping[str, Any]
) -> dict[str, Any]:
    """The sidecar of an export: input layout, normalisation, embedding size, the image ``sizes`` the
    run used (query, catalogue, crop ``(H, W)``), and the SHA-256 of the graph and of its checkpoint."""
    return {
        "format": SIDECAR_FORMAT,
        "input": {"name": INPUT_NAME, "dtype": "uint8", "layout": "NCHW RGB 0..255", "dynamic": "B, H, W"},
        "output": {"name": OUTPUT_NAME, "dtype": "float32", "l2_normalised": True},
        "embedding_dim": int(encoder.embedding_dim),
        "native_input_size": list(encoder.native_input_size),
        "image_sizes": {name: None if size is None else list(size) for name, size in sizes.items()},
        "normalisation": input_normalisation(encoder),
        "opset": OPSET,
        "onnx_sha256": file_digest(onnx_path),
        "checkpoint": str(checkpoint),
        "checkpoint_sha256": file_digest(checkpoint),
        "torch_version": torch.__version__,
    }


class OnnxEncoder(nn.Module):
    """An exported encoder run by onnxruntime (an :class:`OnnxSession`), with the interface of the torch
    encoder.

    ``forward(images (B, 3, H, W) uint8) -> (B, embedding_dim)`` float32, L2-normalised, on the device of
    ``images`` (computed on the CPU). Float images (0..1) are refused: the graph takes ``uint8``, as the
    data loaders emit (test-time ``centre_crop`` views are float: use the torch backend for them).

    Args:
        path: the ``.onnx`` file, or its loaded session.
        metadata: its sidecar (default: read from :func:`sidecar_path` and checked against the file).
        threads: onnxruntime's intra-op threads (default: torch's, so the machine's thread rule holds).
    """

    def __init__(
        self,
        path: str | Path | OnnxSession,
        metadata: Mapping[str, Any] | None = None,
        threads: int | None = None,
    ) -> None:
        super().__init__()
        if isinstance(path, OnnxSession):
            self.session = path
        else:
            self.session = OnnxSession(path, metadata, threads or torch.get_num_threads())
        self.path, self.metadata = self.session.path, self.session.metadata
        self.embedding_dim = self.session.embedding_dim
        self.native_input_size = self.session.native_input_size
        normalisation = self.metadata["normalisation"]
        # One normalisation: the torch encoder's mean/std (the feature cache's fingerprint reads them).
        if len(normalisation) == 1:
            self.mean = tuple(normalisation[0]["mean"])
            self.std = tuple(normalisation[0]["std"])
        # The graph's digest as a buffer: the feature cache keys on a module's state, and this module has
        # no parameters; two exports of different weights must not share cached features.
        digest = bytes.fromhex(str(self.metadata["onnx_sha256"]))
        self.register_buffer("onnx_sha256", torch.tensor(list(digest), dtype=torch.uint8))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dtype != torch.uint8:
            raise TypeError(
                f"{self.path}: the ONNX encoder takes uint8 images, got {images.dtype}; float views "
                "(retrieval.tta=[centre_crop]) need encoder.backend=torch"
            )
        embeddings = self.session.embed(images.detach().cpu().numpy())
        return torch.from_numpy(embeddings).to(images.device)


def load_search_encoder(cfg: DictConfig, checkpoint: str | Path) -> nn.Module:
    """The encoder that embeds images for search: ``encoder.backend=torch`` (default) rebuilds it from
    ``checkpoint``; ``onnx`` loads ``encoder.onnx_path``, which must have been exported from that very
    checkpoint (:func:`~fashion_retrieval.models.onnx_session.load_onnx_session`)."""
    if encoder_backend(cfg) == "torch":
        return load_encoder(checkpoint)
    return OnnxEncoder(load_onnx_session(cfg, checkpoint))


def embedding_cosines(reference: np.ndarray, candidate: np.ndarray) -> np.ndarray:
    """``(N,)`` cosine of each row of ``(N, D)`` ``reference`` with the same row of ``candidate``."""
    if reference.shape != candidate.shape:
        raise ValueError(f"embeddings of shape {reference.shape} and {candidate.shape} cannot be compared")
    norms = np.linalg.norm(reference, axis=1) * np.linalg.norm(candidate, axis=1)
    return (reference * candidate).sum(axis=1) / np.maximum(norms, 1e-12)


def same_ranking_fraction(reference: np.ndarray, candidate: np.ndarray, ordered: bool = False) -> float:
    """The fraction of queries whose ``(Q, k)`` ranked lists agree: the same ``k`` products, or with
    ``ordered`` the same products in the same order."""
    if reference.shape != candidate.shape or reference.ndim != 2:
        raise ValueError(f"rankings of shape {reference.shape} and {candidate.shape} cannot be compared")
    if len(reference) == 0:
        raise ValueError("no ranked lists to compare")
    if ordered:
        same = (reference == candidate).all(axis=1)
    else:
        same = (np.sort(reference, axis=1) == np.sort(candidate, axis=1)).all(axis=1)
    return float(same.mean())


@torch.no_grad()
def paired_embeddings(
    reference: nn.Module, candidate: nn.Module, loader: Any, limit: int
) -> tuple[np.ndarray, np.ndarray]:
    """The ``(N, D)`` float32 embeddings by both encoders of the first ``N = min(limit, len)`` images of a
    loader yielding ``{"image": (B, 3, H, W) uint8}``, the same tensors fed to both."""
    pairs: list[tuple[np.ndarray, np.ndarray]] = []
    count = 0
    for batch in loader:
        images = batch["image"][: limit - count]
        pairs.append((reference(images).float().numpy(), candidate(images).float().numpy()))
        count += len(images)
        if count >= limit:
            break
    if not pairs:
        raise ValueError("the loader yielded no image to compare the encoders on")
    return np.concatenate([p[0] for p in pairs]), np.concatenate([p[1] for p in pairs])
