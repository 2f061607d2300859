"""Gathering a contrastive batch across DDP processes, so every process computes the loss over the global
batch (more negatives) while gradients flow back only through its own embeddings."""

from __future__ import annotations

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _pad(tensor: torch.Tensor, shape: tuple[int, ...], value: float) -> torch.Tensor:
    padded = tensor.new_full(shape, value)
    padded[tuple(slice(0, n) for n in tensor.shape)] = tensor
    return padded


def all_gather_uneven(tensor: torch.Tensor, keep_grad: bool = False, pad_value: float = -1) -> torch.Tensor:
    """Concatenate ``tensor (N_r, ...)`` of every rank ``r`` along dim 0, in rank order; ranks may differ in
    ``N_r`` and, for 2-D tensors, in width (narrower ones are padded with ``pad_value``, e.g. -1 for the
    padded product-id lists of a batch).

    ``keep_grad``: this rank's slice is ``tensor`` itself, so gradients reach its own embeddings; the
    other ranks' slices are constants (their gradients are computed on their own ranks). Without a process
    group, returns ``tensor`` unchanged.
    """
    if not is_distributed():
        return tensor
    world = dist.get_world_size()
    shape = torch.tensor(tensor.shape, device=tensor.device, dtype=torch.long)
    shapes = [torch.empty_like(shape) for _ in range(world)]
    dist.all_gather(shapes, shape)
    largest = tuple(int(n) for n in torch.stack(shapes).amax(dim=0))
    padded = _pad(tensor.detach(), largest, pad_value)
    pieces = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(pieces, padded)
    trimmed = [piece[: int(s[0])] for piece, s in zip(pieces, shapes)]
    if keep_grad:
        if tensor.shape[1:] != largest[1:]:
            raise ValueError(f"keep_grad needs one trailing shape on every rank, got {tuple(tensor.shape)}")
        trimmed[dist.get_rank()] = tensor
    return torch.cat(trimmed)
