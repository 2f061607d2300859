"""A small trained fusion head for composed queries ("this product, in <colour>"), on a dual encoder's
frozen embeddings (issue 18, docs/text.md "Composed queries").

:class:`FusionHead` is a gated residual combiner in the spirit of TIRG and CLIP4Cir's combiner: from the
query product's image embedding ``i`` and the text embedding ``t`` (both ``(N, D)``, L2-normalised, the
dual encoder's space) it returns ``normalise(g * i + (1 - g) * t + r)`` with a per-dimension gate
``g = sigmoid(MLP_g([i; t]))`` and a residual ``r = MLP_r([i; t])``. At initialisation the gate is 0.5
everywhere and the residual zero (its last layer is zeroed), so the untrained head *is* embedding
arithmetic with ``text_weight`` 1 (:func:`composed_embeddings`)
and training starts from it.

Saved beside the ``train-text`` run it was trained on, ``<run>/fusion/fusion_head.safetensors`` (weights,
and its sizes as safetensors metadata: no pickle, no code), and loaded back with
:func:`load_fusion_head`::

    head = load_fusion_head("outputs/text_quickstart/<run>")   # None: no head trained for this run
    queries = head(image_embeddings, text_embeddings)           # (N, D), (N, D) -> (N, D)
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes
from torch import nn

from fashion_retrieval.io import atomic_open
from fashion_retrieval.losses.infonce import info_nce

FUSION_DIR = "fusion"
FUSION_FILE = "fusion_head.safetensors"
_CONFIG_KEY = "fusion_head"  # the safetensors metadata entry holding the head's sizes


def composed_embeddings(
    image_embeddings: np.ndarray, text_embeddings: np.ndarray, text_weight: float = 1.0
) -> np.ndarray:
    """``(Q, D)`` float32 L2-normalised ``image + text_weight * text`` of ``(Q, D)`` L2-normalised image and
    text embeddings: "this product, but <text>" by embedding arithmetic."""
    fused = np.asarray(image_embeddings, np.float32) + text_weight * np.asarray(text_embeddings, np.float32)
    return fused / np.maximum(np.linalg.norm(fused, axis=1, keepdims=True), 1e-12)


class FusionHead(nn.Module):
    """``(image (N, D), text (N, D)) -> (N, D)`` float32, L2-normalised: the gated residual combiner of the
    module docstring. ``dim``: ``D``; ``hidden_dim``: width of both MLPs (``Linear(2D, H) -> GELU ->
    Linear(H, D)``), ``dropout`` before their last layer."""

    def __init__(self, dim: int, hidden_dim: int = 512, dropout: float = 0.0) -> None:
        super().__init__()
        self.dim = int(dim)
        self.hidden_dim = int(hidden_dim)
        self.gate = _mlp(self.dim, self.hidden_dim, dropout)
        self.residual = _mlp(self.dim, self.hidden_dim, dropout)
        # g = sigmoid(0) = 0.5 and r = 0: the untrained head is image + text, renormalised.
        for layer in (self.gate[-1], self.residual[-1]):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        if image.shape != text.shape or image.ndim != 2 or image.shape[1] != self.dim:
            raise ValueError(
                f"fusion head of width {self.dim}: image {tuple(image.shape)} and text {tuple(text.shape)} "
                "must both be (N, D)"
            )
        image, text = image.float(), text.float()
        joint = torch.cat([image, text], dim=1)
        gate = torch.sigmoid(self.gate(joint))
        fused = gate * image + (1.0 - gate) * text + self.residual(joint)
        return F.normalize(fused, dim=1)

    @torch.no_grad()
    def fuse(self, image: np.ndarray, text: np.ndarray) -> np.ndarray:
        """NumPy form of :meth:`forward` (eval mode): ``(N, D)``, ``(N, D)`` -> ``(N, D)`` float32."""
        self.eval()
        out = self(
            torch.from_numpy(np.asarray(image, np.float32)), torch.from_numpy(np.asarray(text, np.float32))
        )
        return out.numpy()

    def config(self) -> dict[str, int]:
        """What :func:`load_fusion_head` rebuilds the head from (dropout is training-only)."""
        return {"dim": self.dim, "hidden_dim": self.hidden_dim}


def _mlp(dim: int, hidden_dim: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(2 * dim, hidden_dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden_dim, dim)
    )


def fit_fusion_head(
    head: FusionHead,
    catalogue: np.ndarray,
    sources: np.ndarray,
    texts: np.ndarray,
    targets: np.ndarray,
    validate: Callable[[FusionHead], float],
    epochs: int = 40,
    batch_size: int = 128,
    lr: float = 1.0e-3,
    weight_decay: float = 1.0e-4,
    temperature: float = 0.05,
    seed: int = 0,
) -> tuple[FusionHead, list[float]]:
    """Train ``head`` with InfoNCE on composed queries over one set of products: ``catalogue`` ``(P, D)``
    their image embeddings; query ``q`` is product ``sources[q]``'s embedding with ``texts[q]`` (``(Q, D)``),
    its positive product ``targets[q]``, every other product a negative but its own source (never retrieved).

    ``validate(head) -> score`` (higher is better) is called before training and after each epoch; the
    returned head (eval mode) has the best-scoring weights, the untrained one (= embedding arithmetic)
    included, ties to the earlier. Returns it and the scores, ``[untrained, epoch 1, ...]``.
    """
    catalogue_t = torch.from_numpy(np.asarray(catalogue, np.float32))
    sources_t = torch.as_tensor(np.asarray(sources, np.int64))
    texts_t = torch.from_numpy(np.asarray(texts, np.float32))
    targets_t = torch.as_tensor(np.asarray(targets, np.int64))
    if not len(sources_t) == len(texts_t) == len(targets_t):
        raise ValueError(f"{len(sources_t)} sources, {len(texts_t)} texts and {len(targets_t)} targets")
    generator = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=weight_decay)
    scores = [validate(head.eval())]
    best, best_state = scores[0], copy.deepcopy(head.state_dict())
    for _ in range(epochs):
        head.train()
        for batch in torch.randperm(len(targets_t), generator=generator).split(batch_size):
            fused = head(catalogue_t[sources_t[batch]], texts_t[batch])
            positive = F.one_hot(targets_t[batch], len(catalogue_t)).bool()
            negative = ~positive
            negative[torch.arange(len(batch)), sources_t[batch]] = False
            loss = info_nce(fused, catalogue_t, temperature, positive, negative, symmetric=False)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        scores.append(validate(head.eval()))
        if scores[-1] > best:
            best, best_state = scores[-1], copy.deepcopy(head.state_dict())
    head.load_state_dict(best_state)
    return head.eval(), scores


def fusion_head_path(run_dir: str | Path) -> Path:
    """``<run_dir>/fusion/fusion_head.safetensors``: where a train-text run's fusion head lives."""
    return Path(run_dir) / FUSION_DIR / FUSION_FILE


def save_fusion_head(head: FusionHead, run_dir: str | Path, metadata: dict[str, str] | None = None) -> Path:
    """Write ``head`` to :func:`fusion_head_path` atomically; ``metadata``: extra provenance strings."""
    path = fusion_head_path(run_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in head.state_dict().items()}
    info = {**(metadata or {}), _CONFIG_KEY: json.dumps(head.config())}
    with atomic_open(path, "wb") as handle:
        handle.write(safetensors_bytes(state, metadata=info))
    return path


def load_fusion_head(run_dir: str | Path) -> FusionHead | None:
    """The fusion head trained for the train-text run ``run_dir`` (eval mode), or ``None`` when it has none.
    Read as data (safetensors); a file without the head's sizes, or with other weights, raises
    ``ValueError`` naming it."""
    path = fusion_head_path(run_dir)
    if not path.is_file():
        return None
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
    try:
        config = json.loads(metadata[_CONFIG_KEY])
        head = FusionHead(dim=int(config["dim"]), hidden_dim=int(config["hidden_dim"]))
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(
            f"{path}: not a fusion head (metadata {_CONFIG_KEY!r} unreadable: {error})"
        ) from None
    try:
        head.load_state_dict(load_file(str(path)))
    except RuntimeError as error:
        raise ValueError(f"{path}: weights do not fit a fusion head of {config}: {error}") from None
    return head.eval()
