"""IndexNegativeMiner: when it mines, what it mines (against a brute-force ranking), DDP and resume."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from torch import nn

from fashion_retrieval.callbacks.hard_negative_miner import (
    BEFORE_TRAINING,
    IndexNegativeMiner,
    negatives_by_bundle,
)
from fashion_retrieval.data.datamodule import ChallengeDataModule
from fashion_retrieval.models.inference import embed_loader
from fashion_retrieval.synthetic import SyntheticSpec, generate_dataset

MICRO = SyntheticSpec(
    seed=3, num_products=50, num_bundles=30, product_image_size=(48, 64), bundle_image_size=(64, 96)
)


class RandomProjection(nn.Module):
    """A fixed random encoder: average-pooled pixels through a random matrix, L2-normalised."""

    def __init__(self) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d((4, 4))
        self.proj = nn.Linear(48, 16)
        torch.nn.init.normal_(self.proj.weight, generator=torch.Generator().manual_seed(0))
        self.modes: list[bool] = []

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.modes.append(self.training)
        features = self.pool(images.float() / 255.0).flatten(1)
        return torch.nn.functional.normalize(self.proj(features), dim=-1)


@pytest.fixture(scope="module")
def datamodule(tmp_path_factory: pytest.TempPathFactory) -> ChallengeDataModule:
    out: Path = tmp_path_factory.mktemp("micro_mining")
    generate_dataset(MICRO, out, num_workers=1)
    return ChallengeDataModule(
        str(out), query_size=(48, 32), catalogue_size=(32, 24), batch_size=4, eval_batch_size=16,
        val_fraction=0.2, mined_negatives=2, mask_same_article=True,
    )  # fmt: skip


def fake_run(datamodule, *, epoch=0, max_epochs=10, rank_zero=True, broadcast=None):
    encoder = RandomProjection().train()
    module = SimpleNamespace(encoder=encoder, device=torch.device("cpu"))
    strategy = SimpleNamespace(broadcast=broadcast or (lambda obj, src=0: obj))
    trainer = SimpleNamespace(
        datamodule=datamodule,
        is_global_zero=rank_zero,
        strategy=strategy,
        current_epoch=epoch,
        max_epochs=max_epochs,
        should_stop=False,
    )
    return trainer, module


def reference_negatives(datamodule, encoder, pool_size):
    """Brute force: rank the whole catalogue for each bundle, skip its positives, excluded products and
    products of another (known) section."""
    with torch.no_grad():
        queries = embed_loader(encoder, datamodule.mining_query_loader())
        gallery = embed_loader(encoder, datamodule.catalogue_dataloader())
    targets = datamodule.mining_targets()
    sections = datamodule.catalogue_section_array()
    result = {}
    for row, label in enumerate(targets.bundle_labels):
        scores = gallery @ queries[row]
        order = sorted(range(len(gallery)), key=lambda g: (-scores[g], g))
        allowed = [
            g
            for g in order
            if g not in targets.positives[row]
            and g not in targets.excluded[row]
            and sections[g] in (targets.sections[row], -1)
        ]
        if allowed[:pool_size]:
            result[label] = allowed[:pool_size]
    return result


def test_due_epochs():
    every_two = IndexNegativeMiner(every_n_epochs=2)
    assert [every_two.due_epoch(e) for e in range(6)] == [None, None, 1, 1, 3, 3]
    before = IndexNegativeMiner(every_n_epochs=1, mine_before_training=True)
    assert [before.due_epoch(e) for e in range(3)] == [BEFORE_TRAINING, 0, 1]
    with pytest.raises(ValueError, match="every_n_epochs"):
        IndexNegativeMiner(every_n_epochs=0)


def test_negatives_by_bundle():
    mined = np.array([[4, 2, -1], [-1, -1, -1], [7, -1, -1]])
    assert negatives_by_bundle([10, 11, 12], mined) == {10: [4, 2], 12: [7]}


def test_mines_what_a_brute_force_ranking_finds(datamodule):
    miner = IndexNegativeMiner(every_n_epochs=1, pool_size=5)
    trainer, module = fake_run(datamodule, epoch=0)
    miner.on_train_epoch_end(trainer, module)
    assert module.encoder.training and module.encoder.modes and not any(module.encoder.modes)
    assert datamodule.mined_epoch == 0
    expected = reference_negatives(datamodule, module.encoder.eval(), 5)
    assert datamodule.mined_negatives == expected and len(expected) > 0
    assert miner.history[-1]["bundles"] == len(expected)
    # The loader's dataset has them too, and the variants of a bundle's articles are never among them.
    dataset = datamodule.train_dataset()
    targets = datamodule.mining_targets()
    for label, excluded in zip(targets.bundle_labels, targets.excluded):
        assert not set(dataset.mined.get(label, ())) & set(excluded)


def test_when_it_mines(datamodule):
    miner = IndexNegativeMiner(every_n_epochs=2, pool_size=3)
    datamodule.set_mined_negatives({}, None)
    trainer, module = fake_run(datamodule, epoch=0, max_epochs=4)
    miner.on_train_start(trainer, module)
    miner.on_train_epoch_end(trainer, module)  # epoch 0: not an every-2nd epoch
    assert datamodule.mined_epoch is None and not module.encoder.modes
    trainer.current_epoch = 1
    miner.on_train_epoch_end(trainer, module)
    assert datamodule.mined_epoch == 1
    trainer.current_epoch = 3
    miner.on_train_epoch_end(trainer, module)  # the last epoch: nothing would use them
    assert datamodule.mined_epoch == 1
    # Resumed at epoch 2 from a checkpoint written before the mining of epoch 1: mined again at start.
    datamodule.set_mined_negatives({}, None)
    trainer, module = fake_run(datamodule, epoch=2, max_epochs=4)
    miner.on_train_start(trainer, module)
    assert datamodule.mined_epoch == 1 and datamodule.mined_negatives
    calls = len(module.encoder.modes)
    miner.on_train_start(trainer, module)  # already there: not again
    assert len(module.encoder.modes) == calls
    before = IndexNegativeMiner(mine_before_training=True, pool_size=3)
    trainer, module = fake_run(datamodule, epoch=0)
    before.on_train_start(trainer, module)
    assert datamodule.mined_epoch == BEFORE_TRAINING


def test_other_ranks_take_rank_zero_lists(datamodule):
    lists = {datamodule.mining_targets().bundle_labels[0]: [1, 2, 3]}
    trainer, module = fake_run(datamodule, epoch=0, rank_zero=False, broadcast=lambda obj, src=0: lists)
    IndexNegativeMiner().on_train_epoch_end(trainer, module)
    assert not module.encoder.modes  # rank 1 did not embed
    assert datamodule.mined_negatives == lists


class Recorder(pl.LightningModule):
    """Trains a tiny encoder and records every batch's labels by epoch."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = RandomProjection()
        self.seen: dict[int, list] = {}

    def training_step(self, batch, batch_idx):
        labels = (batch["query_label"].tolist(), batch["catalogue_label"].tolist())
        self.seen.setdefault(self.current_epoch, []).append(labels)
        return (self.encoder(batch["query"]) @ self.encoder(batch["catalogue"]).T).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_a_resumed_fit_replays_batches_and_negatives(datamodule, tmp_path):
    """Epoch-end checkpoint, then resume with other global seeds, 2 workers: same batches, same weights."""

    def fit(epochs, ckpt_path=None, seed=0):
        pl.seed_everything(seed)
        module = Recorder()
        data = ChallengeDataModule(
            str(datamodule.data_dir), query_size=(48, 32), catalogue_size=(32, 24), batch_size=4,
            num_workers=2, val_fraction=0.2, seed=3, same_category_negatives=1, mined_negatives=1,
        )  # fmt: skip
        trainer = pl.Trainer(
            max_epochs=epochs,
            accelerator="cpu",
            deterministic=True,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            limit_val_batches=0,
            callbacks=[IndexNegativeMiner(every_n_epochs=1, pool_size=4)],
        )
        trainer.fit(module, datamodule=data, ckpt_path=ckpt_path)
        return trainer, module

    _, full = fit(3)
    trainer, _ = fit(2)
    trainer.save_checkpoint(tmp_path / "epoch2.ckpt")  # holds the lists mined after epoch 0 only
    _, resumed = fit(3, tmp_path / "epoch2.ckpt", seed=123)
    assert sorted(resumed.seen) == [2] and resumed.seen[2] == full.seen[2]
    assert all(torch.equal(a, b) for a, b in zip(full.parameters(), resumed.parameters()))
