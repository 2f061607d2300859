from functools import partial
from itertools import pairwise

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.callbacks import StochasticWeightAveraging
from tiny_models import TINY_TOWER, uint8_images
from torch.utils.data import DataLoader

from fashion_retrieval.callbacks.adapter_evaluator import FeatureAdapterEvaluator
from fashion_retrieval.callbacks.ema import EMAWeightAveraging
from fashion_retrieval.features.datamodule import FeatureDataModule
from fashion_retrieval.losses.adapter import AdapterInfoNCELoss
from fashion_retrieval.models.adapter_module import FeatureAdapterModule, FrozenFeatureExtractor, load_head
from fashion_retrieval.models.clip import ClipVisionBackbone
from fashion_retrieval.models.encoder import ImageEncoder
from fashion_retrieval.models.heads import ProjectionHead, ResidualAdapter
from fashion_retrieval.models.schedules import one_cycle

DIM = 32


def separable_features(seed=0, products=300, train=1200, val=200, distortion=2.0, noise=0.35, batch_size=128):
    """Queries are a fixed linear distortion of their product plus noise: retrievable after the adapter
    learns to undo the distortion, poorly before. One query in ten has two products (a mix of both)."""
    rng = np.random.default_rng(seed)
    catalogue = rng.normal(size=(products, DIM))
    catalogue /= np.linalg.norm(catalogue, axis=1, keepdims=True)
    mix = rng.normal(size=(DIM, DIM)) / np.sqrt(DIM)
    total = train + val
    owner = rng.integers(0, products, total)
    second = np.where(
        rng.random(total) < 0.1, (owner + 1 + rng.integers(0, products - 1, total)) % products, -1
    )
    target = catalogue[owner] + np.where(second[:, None] >= 0, catalogue[np.maximum(second, 0)], 0)
    queries = target + distortion * target @ mix + noise * rng.normal(size=(total, DIM))
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    pairs = [(q, int(owner[q])) for q in range(train)] + [
        (q, int(second[q])) for q in range(train) if second[q] >= 0
    ]
    truth = [[int(owner[q])] + ([int(second[q])] if second[q] >= 0 else []) for q in range(train, total)]
    return FeatureDataModule(
        queries.astype(np.float32),
        np.asarray(pairs),
        catalogue.astype(np.float32),
        np.arange(train, total),
        truth,
        batch_size=batch_size,
        seed=seed,
    )


def trainer(epochs, callbacks=(), **kwargs):
    """A CPU trainer scoring validation with the adapter's evaluator (``val/recall@15`` etc.)."""
    return pl.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        gradient_clip_val=1.0,
        callbacks=[FeatureAdapterEvaluator(), *callbacks],
        **kwargs,
    )


def winners_module(bank_size=512, **kwargs):
    return FeatureAdapterModule(
        DIM,
        query_head=ResidualAdapter(DIM),
        loss=AdapterInfoNCELoss(0.07, learnable_temperature=True, margin=0.1, label_smoothing=0.15),
        noise_std=0.02,
        mixup_probability=0.3,
        mixup_alpha=0.2,
        bank_size=bank_size,
        optimizer=partial(torch.optim.AdamW, lr=3e-3),
        scheduler=partial(torch.optim.lr_scheduler.OneCycleLR, max_lr=3e-3),
        **kwargs,
    )


def test_identity_at_init_scores_like_the_frozen_features():
    datamodule = separable_features()
    module = winners_module()
    adapted = trainer(1).validate(module, datamodule=datamodule, verbose=False)[0]
    frozen = trainer(1).validate(FeatureAdapterModule(DIM), datamodule=datamodule, verbose=False)[0]
    assert adapted["val/recall@15"] == frozen["val/recall@15"]
    assert adapted["val/map@15"] == pytest.approx(frozen["val/map@15"])


def test_short_fit_on_separable_features_clearly_improves_recall_at_15():
    pl.seed_everything(0)
    datamodule = separable_features()
    module = winners_module()
    fit = trainer(6, check_val_every_n_epoch=6)
    before = fit.validate(module, datamodule=datamodule, verbose=False)[0]["val/recall@15"]
    fit.fit(module, datamodule=datamodule)
    after = float(fit.callback_metrics["val/recall@15"])
    print(f"recall@15 {before:.3f} -> {after:.3f}")
    assert before < 0.7 and after > before + 0.15, (before, after)
    assert module.bank.filled == 512
    assert 0.01 <= module.loss.current_temperature <= 1.0
    assert module.loss.current_temperature != pytest.approx(0.07)  # learnt


def batch_of(datamodule, positions):
    return datamodule.train_dataloader().dataset[positions]


def test_bank_entries_of_the_querys_own_products_are_not_negatives():
    datamodule = separable_features(batch_size=8)
    module = FeatureAdapterModule(DIM, query_head=ResidualAdapter(DIM), bank_size=64)
    first, second = batch_of(datamodule, list(range(8))), batch_of(datamodule, list(range(8, 16)))
    module.batch_loss(first)
    assert module.bank.contents()[1].tolist() == sorted(set(first["catalogue_label"].tolist()))
    seen = {}

    class Spy(torch.nn.Module):
        def forward(self, query, candidates, positive, negative, weights):
            seen.update(candidates=candidates, positive=positive, negative=negative)
            return candidates.sum() * 0

    module.loss = Spy()
    # Second batch, whose first query owns a product already in the bank.
    second["query_products"][0, 0] = first["catalogue_label"][0]
    module.batch_loss(second)
    distinct = len(set(second["catalogue_label"].tolist()))
    bank_labels = module.bank.contents()[1][:8].tolist()  # slot order = the first batch's products
    owned = bank_labels.index(int(first["catalogue_label"][0]))
    assert seen["candidates"].shape[0] == distinct + len(bank_labels)
    assert not seen["positive"][:, distinct:].any()  # bank columns are never positives
    assert not seen["negative"][0, distinct + owned]


def test_projection_head_is_shared_by_both_sides_and_the_bank_can_go_stale():
    datamodule = separable_features(batch_size=64)
    head = ProjectionHead(DIM, 16, hidden_dim=32)
    module = FeatureAdapterModule(DIM, 16, query_head=head, share_heads=True, bank_size=128, bank_max_age=2)
    assert module.catalogue_head is module.query_head
    features = datamodule.catalogue_features[:4]
    assert torch.allclose(module.embed_catalogue(features), F.normalize(head(features), dim=1))
    fit = trainer(1, limit_train_batches=5, limit_val_batches=1)
    fit.fit(module, datamodule=datamodule)
    assert module.bank.filled > 0
    assert module.bank.negatives(datamodule.query_products[:2], step=10**6)[0].shape[0] == 0


def two_heads(seed: int) -> FeatureAdapterModule:
    torch.manual_seed(seed)
    return FeatureAdapterModule(
        DIM, 16, query_head=ProjectionHead(DIM, 16, hidden_dim=32), catalogue_head=ProjectionHead(DIM, 16)
    )


def test_a_head_and_a_checkpoint_saved_before_the_catalogue_heads_rename_still_load(tmp_path):
    saved = two_heads(seed=0).state_dict()
    # What train-adapter wrote before issue 16: the catalogue head under its old attribute name.
    legacy = {k.replace("catalogue_head.", "gallery_head.", 1): v for k, v in saved.items()}
    assert any(k.startswith("gallery_head.") for k in legacy)
    torch.save(legacy, tmp_path / "head.pt")
    module = two_heads(seed=1)
    assert not torch.equal(
        module.state_dict()["catalogue_head.net.1.weight"], saved["catalogue_head.net.1.weight"]
    )
    load_head(module, tmp_path / "head.pt")
    for key, value in saved.items():
        assert torch.equal(module.state_dict()[key], value), key
    # A Lightning checkpoint of the same module goes through the module's checkpoint hook.
    checkpoint = {"state_dict": dict(legacy)}
    resumed = two_heads(seed=2)
    resumed.on_load_checkpoint(checkpoint)
    resumed.load_state_dict(checkpoint["state_dict"])
    assert torch.equal(
        resumed.state_dict()["catalogue_head.net.1.weight"], saved["catalogue_head.net.1.weight"]
    )


@pytest.mark.parametrize("averaging", ["swa", "ema"])
def test_weight_averaging_is_a_config_choice(averaging):
    callback = (
        StochasticWeightAveraging(swa_lrs=1e-4, swa_epoch_start=0.5, annealing_epochs=1)
        if averaging == "swa"
        else EMAWeightAveraging(decay=0.9)
    )
    module = winners_module(bank_size=0, weight_averaging=callback)
    assert module.configure_callbacks() == [callback]
    fit = trainer(2, limit_val_batches=1)
    fit.fit(module, datamodule=separable_features(batch_size=256))
    assert callback in fit.callbacks
    assert "val/recall@15" in fit.callback_metrics


def test_nothing_to_train_is_an_error():
    module = FeatureAdapterModule(DIM, loss=AdapterInfoNCELoss(learnable_temperature=False))
    with pytest.raises(ValueError, match="nothing to train"):
        trainer(1).fit(module, datamodule=separable_features())


class ImagePairs(pl.LightningDataModule):
    """The same pairs as images: each query / product row is a fixed random image."""

    def __init__(self, query_images, catalogue_images, features: FeatureDataModule, batch_size: int = 4):
        super().__init__()
        self.batch_size = batch_size
        self.query_images, self.catalogue_images, self.features = query_images, catalogue_images, features
        self.catalogue_features, self.val_truth = features.catalogue_features, features.val_truth
        self.validation_sections = features.validation_sections

    def train_dataloader(self):
        def load(positions):
            batch = self.features.train_dataloader().dataset[positions]
            return {
                "query_image": self.query_images[batch.pop("query_row")],
                "catalogue_image": self.catalogue_images[batch["catalogue_label"]],
                "catalogue_label": batch["catalogue_label"],
                "query_products": batch["query_products"],
            }

        return DataLoader(range(len(self.features.train_pairs)), batch_size=self.batch_size, collate_fn=load)

    def val_dataloader(self):
        rows = self.features.val_queries

        def load(positions):
            index = torch.as_tensor(positions)
            return {"query_image": self.query_images[rows[index]], "index": index}

        return DataLoader(range(len(rows)), batch_size=self.batch_size, collate_fn=load)


def test_image_path_through_a_frozen_encoder_matches_the_cached_features():
    encoder = ImageEncoder(ClipVisionBackbone("random", vision_config=TINY_TOWER), embedding_dim=None)
    extractor = FrozenFeatureExtractor(encoder, "backbone_features")
    query_images, catalogue_images = uint8_images(10, 32, 32, seed=1), uint8_images(6, 32, 32, seed=2)
    with torch.no_grad():
        query_features, catalogue_features = extractor(query_images), extractor(catalogue_images)
    pairs = [(0, 1), (1, 2), (2, 3), (3, 1), (4, 0), (5, 5), (5, 4), (6, 2)]
    cached = FeatureDataModule(
        query_features, pairs, catalogue_features, [7, 8, 9], [[1], [2, 3], [0]], batch_size=4
    )
    images = ImagePairs(query_images, catalogue_images, cached)
    dim = extractor(query_images[:1]).shape[1]
    torch.manual_seed(0)
    module = FeatureAdapterModule(
        dim, query_head=ResidualAdapter(dim, zero_init=False), feature_extractor=extractor
    )
    module.eval()  # dropout off: the two paths see the same head
    feature_batch = cached.train_dataloader().dataset[[0, 1, 2, 3]]
    image_batch = next(iter(images.train_dataloader()))
    assert torch.allclose(module.batch_loss(feature_batch), module.batch_loss(image_batch), atol=1e-5)
    module.train()
    assert not extractor.training and not any(p.requires_grad for p in extractor.parameters())
    frozen_before = [p.clone() for p in encoder.parameters()]
    fit = trainer(1)
    fit.fit(module, datamodule=images)
    assert all(torch.equal(a, b) for a, b in zip(frozen_before, encoder.parameters()))
    assert "val/recall@15" in fit.callback_metrics
    optimised = {id(p) for group in fit.optimizers[0].param_groups for p in group["params"]}
    assert not optimised & {id(p) for p in encoder.parameters()}


@pytest.mark.parametrize(
    "head, averaging",
    [
        ("residual_adapter", "swa"),
        ("residual_adapter", "ema"),
        ("projection", "swa"),
        ("projection", "ema"),
        ("none", None),
    ],
)
def test_head_configs_build_the_module(head, averaging):
    from hydra.utils import instantiate
    from test_configs import compose_config

    overrides = [f"adapter={head}", "adapter.module.feature_dim=32"]
    if head != "none":
        overrides.append(f"adapter/averaging@adapter.module.weight_averaging={averaging}")
    cfg = compose_config(overrides)
    module = instantiate(cfg.adapter.module)
    assert isinstance(module, FeatureAdapterModule)
    if head == "none":
        assert module.query_head is None and module.configure_callbacks() == []
    else:
        expected = {"swa": StochasticWeightAveraging, "ema": EMAWeightAveraging}[averaging]
        assert isinstance(module.configure_callbacks()[0], expected)
        assert module.embed_queries(torch.randn(3, 32)).shape == (3, 32)
    if head == "residual_adapter":
        assert module.bank.size == 8192 and module.bank.max_age is None and module.catalogue_head is None
        assert module.loss.margin == 0.1 and module.loss.label_smoothing == 0.15
    if head == "projection":
        assert module.catalogue_head is module.query_head and module.bank.max_age == 20
    data = instantiate(cfg.adapter.data)
    assert data.func == FeatureDataModule.from_cache and data.keywords["batch_size"] == 512


def test_tiny_experiment_composes():
    from test_configs import compose_config

    cfg = compose_config(["experiment=adapter/tiny"])
    assert cfg.adapter.module.bank_size == 256 and cfg.trainer.gradient_clip_val == 1.0


class LossSpy(torch.nn.Module):
    """Records the loss inputs; returns a zero that still reaches every input's graph."""

    def forward(self, query, candidates, positive, negative, weights):
        self.seen = {"query": query, "candidates": candidates, "positive": positive, "negative": negative}
        return (query.sum() + candidates.sum()) * 0


class FakeTrainer:
    """What the module reads of its trainer outside a fit: the datamodule and the step."""

    def __init__(self, datamodule) -> None:
        self.datamodule, self.global_step = datamodule, 0


def test_mined_hard_negatives_are_each_querys_closest_other_products_added_once():
    datamodule = separable_features(batch_size=16)
    module = FeatureAdapterModule(DIM, query_head=ResidualAdapter(DIM), loss=LossSpy(), hard_negatives=3)
    module.trainer = FakeTrainer(datamodule)
    batch = batch_of(datamodule, list(range(16)))
    module.batch_loss(batch)
    seen = module.loss.seen
    # Zero-initialised adapter: the adapted queries are the unit features themselves.
    query = F.normalize(batch["query"], dim=1)
    catalogue = F.normalize(datamodule.catalogue_features, dim=1)
    scores = (query @ catalogue.T).masked_fill(
        torch.zeros_like(query @ catalogue.T, dtype=torch.bool).scatter_(
            1, batch["query_products"].clamp(min=0), batch["query_products"] >= 0
        ),
        float("-inf"),
    )
    top = scores.topk(3, dim=1).indices
    expected = sorted(set(top.flatten().tolist()) - set(batch["catalogue_label"].tolist()))
    distinct = len(set(batch["catalogue_label"].tolist()))
    mined = seen["candidates"][distinct:]
    assert mined.shape[0] == len(expected)
    assert torch.allclose(mined, catalogue[expected], atol=1e-6)
    assert not seen["positive"][:, distinct:].any()
    # Each mined column is a negative of the queries that mined it, and only of them.
    own = [[product in row for product in expected] for row in top.tolist()]
    assert seen["negative"][:, distinct:].tolist() == own


def test_mined_negatives_reach_a_trainable_catalogue_head_and_need_the_catalogue():
    datamodule = separable_features(batch_size=16)
    head = ProjectionHead(DIM, 16, hidden_dim=32)
    module = FeatureAdapterModule(DIM, 16, query_head=head, share_heads=True, hard_negatives=4, bank_size=64)
    module.trainer = FakeTrainer(datamodule)
    module.batch_loss(batch_of(datamodule, list(range(16))))  # fills the bank
    module.loss = LossSpy()
    module.batch_loss(batch_of(datamodule, list(range(16, 32)))).backward()
    seen = module.loss.seen
    distinct = len(set(batch_of(datamodule, list(range(16, 32)))["catalogue_label"].tolist()))
    assert seen["candidates"].shape[0] > distinct + module.bank.filled  # batch, mined, then the bank
    assert head.net[1].weight.grad is not None
    batch = batch_of(datamodule, list(range(16)))
    mined, _ = module.mined_negatives(head(batch["query"]), batch["query_products"], batch["catalogue_label"])
    assert mined.shape[0] > 0 and mined.grad_fn is not None  # re-embedded through the trainable head
    module.trainer = FakeTrainer(None)
    with pytest.raises(ValueError, match="catalogue_features"):
        module.on_fit_start()
        module.batch_loss(batch_of(datamodule, list(range(16))))


def test_short_fit_with_hard_negatives_and_the_bank_improves_recall_at_15():
    pl.seed_everything(0)
    datamodule = separable_features()
    module = winners_module(hard_negatives=8)
    fit = trainer(6, check_val_every_n_epoch=6)
    before = fit.validate(module, datamodule=datamodule, verbose=False)[0]["val/recall@15"]
    fit.fit(module, datamodule=datamodule)
    assert float(fit.callback_metrics["val/recall@15"]) > before + 0.15


def test_swa_takes_over_the_step_wise_one_cycle_schedule_at_its_start_epoch():
    """Lightning warns that SWA expects epoch-wise schedulers; with our step-wise one-cycle it still swaps in
    SWALR at epoch ``int(0.8 * (E - 1))``: the rate holds one-cycle's value for the annealing epoch, then
    stays at ``swa_lrs`` (conf/adapter/averaging/swa.yaml)."""
    rates: list[tuple[int, float]] = []

    class RateLog(pl.Callback):
        def on_train_batch_start(self, fit, module, batch, batch_idx):
            rates.append((fit.current_epoch, fit.optimizers[0].param_groups[0]["lr"]))

    swa = StochasticWeightAveraging(swa_lrs=3e-5, swa_epoch_start=0.8, annealing_epochs=1)
    module = winners_module(bank_size=0, weight_averaging=swa)
    module.scheduler_factory = partial(one_cycle, max_lr=3e-4, pct_start=0.1)
    with pytest.warns(UserWarning, match="SWA is currently only supported every epoch"):
        trainer(10, limit_val_batches=0, callbacks=[RateLog()]).fit(
            module, datamodule=separable_features(batch_size=256)
        )
    per_epoch = {epoch: [rate for e, rate in rates if e == epoch] for epoch in range(10)}
    decay = [rate for epoch in range(2, 7) for rate in per_epoch[epoch]]
    assert all(a > b for a, b in pairwise(decay))  # one-cycle's annealing, step by step
    assert len(set(per_epoch[7])) == 1 and per_epoch[7][0] < decay[-1]  # SWA starts: held for one epoch
    assert [rate for epoch in (8, 9) for rate in per_epoch[epoch]] == pytest.approx([3e-5] * 12)
    assert swa.n_averaged is not None and int(swa.n_averaged) == 3  # epochs 7, 8 and 9 averaged


class BatchNormTower(torch.nn.Module):
    """A backbone with batch norm whose running statistics are far from the 0 / 1 of a reset."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, DIM, 3)
        self.norm = torch.nn.BatchNorm2d(DIM)
        self.norm.running_mean.fill_(0.5)
        self.norm.running_var.fill_(4.0)

    def backbone_features(self, images: torch.Tensor) -> torch.Tensor:
        return self.norm(self.conv(images.float() / 255)).mean(dim=(2, 3))


def test_frozen_extractor_keeps_batch_norm_statistics_through_swa_and_leaves_the_model_alone():
    tower = BatchNormTower()
    images = uint8_images(12, 8, 8, seed=3)
    expected = tower.eval().backbone_features(images).detach()
    extractor = FrozenFeatureExtractor(tower)
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in extractor.modules())
    assert all(p.requires_grad for p in tower.parameters())  # the caller's model is not frozen
    features = extractor(torch.cat([images, uint8_images(6, 8, 8, seed=4)]))
    cached = FeatureDataModule(features[:12], [(q, q % 6) for q in range(9)], features[12:], [9, 10, 11],
                               [[3], [4], [5]], batch_size=4)  # fmt: skip
    swa = StochasticWeightAveraging(swa_lrs=1e-4, swa_epoch_start=0.5, annealing_epochs=1)
    module = FeatureAdapterModule(DIM, query_head=ResidualAdapter(DIM), feature_extractor=extractor,
                                  weight_averaging=swa)  # fmt: skip
    trainer(2).fit(module, datamodule=ImagePairs(images, uint8_images(6, 8, 8, seed=4), cached))
    torch.testing.assert_close(extractor(images), expected)  # SWA found no batch norm to reset
