"""The ONNX export of an encoder run by onnxruntime on numpy arrays, without importing torch: what the ONNX
service embeds with (docs/serving.md "Start-up"). The torch face of the same session, for the data
loaders and the stages, is :class:`fashion_retrieval.models.onnx_encoder.OnnxEncoder`.

An ``.onnx`` file is a graph of operators and tensors, read as data (onnxruntime runs no Python and
unpickles nothing; docs/security.md), and its JSON sidecar (:func:`sidecar_path`) is checked to describe
this very file (its SHA-256), so a graph and a sidecar of different exports are refused.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fashion_retrieval.io import content_digest, file_digest
from fashion_retrieval.models.views import check_views

INPUT_NAME = "images"
OUTPUT_NAME = "embeddings"
SIDECAR_FORMAT = 1
BACKENDS = ("torch", "onnx")


class OnnxExportError(ValueError):
    """An ONNX export or its sidecar cannot be used; the message names the file and what to do."""


def sidecar_path(onnx_path: str | Path) -> Path:
    """``encoder.onnx`` -> ``encoder.json``: the description written beside the graph."""
    return Path(onnx_path).with_suffix(".json")


def read_sidecar(onnx_path: str | Path) -> dict[str, Any]:
    """The sidecar of ``onnx_path``, checked to be of this format and to describe this very file."""
    path = sidecar_path(onnx_path)
    if not path.is_file():
        raise OnnxExportError(f"{path}: missing; the sidecar is written by `fashion-retrieval export-onnx`")
    try:
        metadata = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise OnnxExportError(f"{path}: not a JSON sidecar ({error})") from None
    if not isinstance(metadata, dict) or metadata.get("format") != SIDECAR_FORMAT:
        raise OnnxExportError(f"{path}: not a sidecar of format {SIDECAR_FORMAT}; export again")
    if metadata.get("onnx_sha256") != file_digest(onnx_path):
        raise OnnxExportError(
            f"{path} describes another export than {onnx_path} (SHA-256 differs); export both again"
        )
    return metadata


def default_threads() -> int:
    """onnxruntime's intra-op threads: ``$OMP_NUM_THREADS`` when set (the machine's thread rule, which
    torch follows too), else 0 (onnxruntime's default, one per physical core)."""
    value = os.environ.get("OMP_NUM_THREADS", "")
    return int(value) if value.isdigit() else 0


class OnnxSession:
    """An exported encoder: ``images (B, 3, H, W) uint8 RGB -> (B, embedding_dim) float32``, L2-normalised
    (:meth:`embed`).

    Args:
        path: the ``.onnx`` file.
        metadata: its sidecar (default: read from :func:`sidecar_path` and checked against the file).
        threads: onnxruntime's intra-op threads (default :func:`default_threads`).
    """

    def __init__(
        self, path: str | Path, metadata: Mapping[str, Any] | None = None, threads: int | None = None
    ) -> None:
        import onnxruntime  # only the onnx backend pays for it

        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"ONNX encoder not found: {self.path} (write it with export-onnx)")
        self.metadata = dict(metadata) if metadata is not None else read_sidecar(self.path)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = default_threads() if threads is None else threads
        options.inter_op_num_threads = 1
        try:
            self.session = onnxruntime.InferenceSession(
                str(self.path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as error:  # onnxruntime raises its own untyped errors for a bad graph
            raise OnnxExportError(f"{self.path}: onnxruntime cannot load it ({error})") from None
        self.embedding_dim = int(self.metadata["embedding_dim"])
        self.native_input_size: tuple[int, int] = tuple(self.metadata["native_input_size"])

    def embed(self, images: np.ndarray) -> np.ndarray:
        """``(B, D)`` float32 embeddings of ``(B, 3, H, W)`` uint8 images; TypeError for another dtype."""
        if images.dtype != np.uint8:
            raise TypeError(
                f"{self.path}: the ONNX encoder takes uint8 images, got {images.dtype}; float views "
                "(retrieval.tta=[centre_crop]) need encoder.backend=torch"
            )
        (embeddings,) = self.session.run([OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(images)})
        return embeddings

    def embed_views(self, images: np.ndarray, views: Sequence[str] = ()) -> np.ndarray:
        """:meth:`embed`, with test-time ``views`` (``flip`` only: ``centre_crop`` is a float view) the
        L2-normalised mean of the embeddings of the images and of each view, as
        :func:`fashion_retrieval.models.inference.embed_views`."""
        embeddings = self.embed(images)
        for view in check_views(views):
            if view != "flip":
                raise TypeError(
                    f"{self.path}: the ONNX encoder takes uint8 images; the float view {view!r} "
                    f"(retrieval.tta=[{view}]) needs encoder.backend=torch"
                )
            embeddings = embeddings + self.embed(images[..., ::-1])
        if views:
            embeddings /= np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)
        return embeddings


def encoder_backend(cfg: Mapping[str, Any]) -> str:
    """``encoder.backend`` of a config (``torch`` unless set), checked to be one of :data:`BACKENDS`."""
    backend = (cfg.get("encoder") or {}).get("backend", "torch")
    if backend not in BACKENDS:
        raise ValueError(f"encoder.backend={backend!r}: choose from {list(BACKENDS)}")
    return str(backend)


def load_onnx_session(cfg: Mapping[str, Any], checkpoint: str | Path) -> OnnxSession:
    """The session of ``encoder.onnx_path``, which must have been exported from that very ``checkpoint``
    (the index is keyed on the checkpoint's digest)."""
    onnx_path = (cfg.get("encoder") or {}).get("onnx_path")
    if not onnx_path:
        raise ValueError("encoder.backend=onnx needs encoder.onnx_path=/path/to/encoder.onnx (export-onnx)")
    session = OnnxSession(onnx_path)
    if session.metadata.get("checkpoint_sha256") != content_digest(checkpoint):  # memoised: the index's too
        raise OnnxExportError(
            f"{onnx_path} was exported from {session.metadata.get('checkpoint')}, not from "
            f"{checkpoint} (SHA-256 differs); export this checkpoint or pass the one it came from"
        )
    return session
