"""DDP on CPU (gloo, two processes): the gathered contrastive loss gives the gradient of one process that
holds the whole batch, with uneven per-process batch sizes; the adapter's bank holds every process's batch."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from fashion_retrieval.losses import InfoNCELoss
from fashion_retrieval.models.adapter_module import FeatureAdapterModule
from fashion_retrieval.models.distributed import all_gather_uneven
from fashion_retrieval.models.encoder import ImageEncoder
from fashion_retrieval.models.module import RetrievalModule

QUERIES_PER_RANK = ((0, 3), (3, 5))  # uneven: 3 bundles on rank 0, 2 on rank 1


class FlatBackbone(nn.Module):
    """No batch-norm: its statistics would legitimately differ between split and whole batches."""

    num_features = 6

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3 * 4 * 4, self.num_features)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.linear(images.float().flatten(1) / 255)


def make_module() -> RetrievalModule:
    torch.manual_seed(0)
    encoder = ImageEncoder(FlatBackbone(), embedding_dim=5)
    return RetrievalModule(encoder, InfoNCELoss(0.1), optimizer=functools.partial(torch.optim.SGD, lr=0.1))


def make_batch(rows: tuple[int, int]) -> dict[str, torch.Tensor]:
    """Bundle b owns products {2b, 2b+1}; bundle 0 and 1 share product 2 (a cross-rank positive)."""
    generator = torch.Generator().manual_seed(1)
    products = [[0, 1, 2], [2, 3], [4, 5], [6, 7], [8, 9]]
    first, last = rows
    labels = [p for b in range(first, last) for p in products[b]]
    width = max(len(products[b]) for b in range(first, last))
    padded = [products[b] + [-1] * (width - len(products[b])) for b in range(first, last)]
    queries = torch.randint(0, 256, (5, 3, 4, 4), generator=generator, dtype=torch.uint8)
    packshots = torch.randint(0, 256, (10, 3, 4, 4), generator=generator, dtype=torch.uint8)
    return {
        "query": queries[first:last],
        "catalogue": packshots[labels],
        "query_products": torch.tensor(padded),
        "query_excluded": torch.tensor(padded),
        "catalogue_label": torch.tensor(labels),
    }


def gradients(module: RetrievalModule, batch: dict[str, torch.Tensor], scale: int) -> dict[str, torch.Tensor]:
    loss, _, _ = module.batch_loss(batch)
    (loss * scale).backward()
    return {name: p.grad.clone() for name, p in module.named_parameters() if p.grad is not None}


def _process(rank: int, world_size: int, folder: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{folder}/init", rank=rank, world_size=world_size)
    try:
        _gradient_step(rank, world_size, folder)
        _bank_step(rank, folder)
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder where two spawned gloo processes left their results (one spawn for every test here:
    starting the processes is most of the cost). Tensors through a multiprocessing queue die with the
    sender, hence files."""
    folder = tmp_path_factory.mktemp("ddp")
    context = mp.get_context("spawn")
    processes = [context.Process(target=_process, args=(rank, 2, str(folder))) for rank in range(2)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=100)
        assert process.exitcode == 0
    return folder


def _gradient_step(rank: int, world_size: int, folder: str) -> None:
    module = make_module()
    grads = gradients(module, make_batch(QUERIES_PER_RANK[rank]), scale=world_size)
    for grad in grads.values():  # what DDP does: average over processes
        dist.all_reduce(grad)
        grad /= world_size
    width_check = all_gather_uneven(torch.full((1, rank + 1), rank))
    torch.save((grads, width_check.tolist()), f"{folder}/rank{rank}.pt")


def _bank_step(rank: int, folder: str) -> None:
    module = FeatureAdapterModule(4, bank_size=16)
    labels = torch.tensor([[0, 1, 1], [5, 6]][rank])  # rank 0 draws product 1 twice: enqueued once
    batch = {
        "query": torch.randn(len(labels), 4),
        "catalogue": torch.randn(len(labels), 4),
        "catalogue_label": labels,
        "query_products": labels.unsqueeze(1),
    }
    module.batch_loss(batch)
    torch.save(module.bank.contents()[1], f"{folder}/bank{rank}.pt")


@pytest.mark.timeout(120)
def test_ddp_gradient_equals_single_process_gradient(two_processes):
    results = {rank: torch.load(two_processes / f"rank{rank}.pt") for rank in range(2)}
    expected = gradients(make_module(), make_batch((0, 5)), scale=1)
    for rank in range(2):
        grads, widths = results[rank]
        assert grads.keys() == expected.keys()
        for name, grad in expected.items():
            torch.testing.assert_close(grads[name], grad, msg=f"rank {rank}: {name}")
        # Narrower id lists are padded with -1 to the widest rank's width.
        assert widths == [[0, -1], [1, 1]]


def test_adapter_bank_enqueues_every_process_batch(two_processes):
    for rank in range(2):
        assert torch.load(two_processes / f"bank{rank}.pt").tolist() == [0, 1, 5, 6]
