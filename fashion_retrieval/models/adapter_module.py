"""LightningModule training a head on frozen features: the query-side residual adapter or a symmetric
projection head, from cached features or through a frozen backbone (``docs/adapters.md``)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.callbacks import Callback
from timm.layers import freeze_batch_norm_2d
from torch import nn
from torch.optim import Optimizer

from fashion_retrieval.losses.adapter import AdapterInfoNCELoss, feature_noise, mix_embeddings, mixup_rows
from fashion_retrieval.losses.bank import CatalogueBank
from fashion_retrieval.losses.memory import append_negatives
from fashion_retrieval.miners.catalogue import catalogue_hard_negatives
from fashion_retrieval.miners.masks import label_in
from fashion_retrieval.models.checkpoint import load_checkpoint
from fashion_retrieval.models.distributed import all_gather_uneven
from fashion_retrieval.renamed import upgrade_state_keys


class FrozenFeatureExtractor(nn.Module):
    """``images (B, 3, H, W) -> features (B, D)`` float32 through ``getattr(model, method)``, frozen.

    Works on a copy of ``model`` (the caller's stays as it is): no gradient, always in eval mode
    (``train()`` is a no-op), and batch norms replaced by frozen layers (timm's ``freeze_batch_norm_2d``),
    which compute the same eval-mode function. Dropout and batch-norm statistics must behave as when the
    cache was written, and Lightning's SWA resets the running statistics of every ``_BatchNorm`` after
    training to re-estimate them in train mode, which a frozen backbone never enters: it would be left with
    zero means and unit variances. E.g. ``FrozenFeatureExtractor(image_encoder, "backbone_features")``.
    """

    def __init__(self, model: nn.Module, method: str = "backbone_features") -> None:
        super().__init__()
        if not callable(getattr(model, method, None)):
            raise TypeError(f"{type(model).__name__} has no method {method!r}")
        frozen = freeze_batch_norm_2d(copy.deepcopy(model))
        left = [name for name, m in frozen.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        if left:
            raise ValueError(f"{type(model).__name__}: batch norms {left[:3]} cannot be frozen (not 2-d)")
        self.model = frozen.eval().requires_grad_(False)
        self.method = method

    def train(self, mode: bool = True) -> FrozenFeatureExtractor:
        return super().train(False)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return getattr(self.model, self.method)(images).float()


class FeatureAdapterModule(pl.LightningModule):
    """Trains a query head (and optionally a catalogue head) on frozen features with the winners' recipe.

    Args:
        feature_dim: ``D`` of the features (the cache's, or the extractor's output).
        embedding_dim: ``D'`` of the heads' output (the bank's width); ``None``: ``feature_dim``.
        query_head: applied to query features (e.g. :class:`~fashion_retrieval.models.heads.ResidualAdapter`);
            ``None``: the frozen features themselves.
        catalogue_head: applied to catalogue features; ``None``: catalogue untouched (query-side adapter).
        share_heads: the catalogue goes through ``query_head`` too (a symmetric projection head).
        loss: called as ``loss(query (R, D), candidates (C, D), positive (R, C), negative (R, C),
            row_weights (R,))``; default :class:`~fashion_retrieval.losses.adapter.AdapterInfoNCELoss`.
        optimizer: partial optimiser factory (Hydra ``_partial_: true``) called with parameter groups;
            default AdamW, lr 3e-4.
        scheduler: optional partial ``(optimizer, total_steps=) -> LRScheduler`` stepped every batch
            (``fashion_retrieval.models.schedules.one_cycle``).
        noise_std: Gaussian noise on the query features (``losses.adapter.feature_noise``).
        mixup_probability, mixup_alpha: query mixup (``losses.adapter.mix_embeddings``).
        bank_size: FIFO bank of catalogue embeddings as extra negatives (0: off). Under DDP every process
            enqueues the products of every process's batch, so the banks stay identical.
        bank_max_age: staleness limit of bank entries in steps (``None``: never stale, right for a frozen
            catalogue; set it when the catalogue side trains).
        hard_negatives: ``k`` (0: off): each step, every query's ``k`` most similar catalogue products under
            the current heads (not its own products) are mined from the whole catalogue
            (``datamodule.catalogue_features``) and added as columns that are negatives of that query only
            (one column per product mined by any query). They are re-embedded with gradient; only the
            selection reads a pool that, with a trainable catalogue head, is refreshed at each epoch start.
            A product also in the bank is then counted twice: mining upweights each query's hardest
            negatives even when the bank already holds them all.
        hard_negative_skip: skip each query's ``n`` most similar products before taking ``k`` (the likeliest
            unlabelled matches, e.g. colour variants of its product).
        weight_averaging: a weight-averaging callback (Lightning's ``StochasticWeightAveraging``,
            :class:`~fashion_retrieval.callbacks.EMAWeightAveraging`) added by :meth:`configure_callbacks`.
        feature_extractor: a frozen ``images -> features`` module (:class:`FrozenFeatureExtractor`), used for
            batches that carry ``query_image`` / ``catalogue_image`` instead of features: the same head
            trained end to end through the frozen backbone.

    Training batches (:class:`~fashion_retrieval.features.datamodule.FeatureDataModule`): ``query (B, D)``
    or ``query_image``, ``catalogue (B, D)`` or ``catalogue_image`` (each pair's product),
    ``catalogue_label (B,)`` product rows, ``query_products (B, L)`` every product row of each query, -1
    padded. Validation batches: ``query`` or ``query_image`` and ``index (B,)``; the adapted queries are
    scored by a :class:`~fashion_retrieval.callbacks.FeatureAdapterEvaluator` in the trainer (metrics live in
    callbacks, as for :class:`~fashion_retrieval.models.module.RetrievalModule`).
    """

    def __init__(
        self,
        feature_dim: int,
        embedding_dim: int | None = None,
        query_head: nn.Module | None = None,
        catalogue_head: nn.Module | None = None,
        share_heads: bool = False,
        loss: nn.Module | None = None,
        optimizer: Callable[..., Optimizer] | None = None,
        scheduler: Callable[..., torch.optim.lr_scheduler.LRScheduler] | None = None,
        noise_std: float = 0.0,
        mixup_probability: float = 0.0,
        mixup_alpha: float = 0.2,
        bank_size: int = 0,
        bank_max_age: int | None = None,
        hard_negatives: int = 0,
        hard_negative_skip: int = 0,
        weight_averaging: Callback | None = None,
        feature_extractor: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(
            ignore=[
                "query_head",
                "catalogue_head",
                "loss",
                "optimizer",
                "scheduler",
                "weight_averaging",
                "feature_extractor",
            ],
            logger=False,
        )
        if share_heads and (query_head is None or catalogue_head is not None):
            raise ValueError("share_heads needs a query_head and no catalogue_head")
        self.query_head = query_head
        self.catalogue_head = query_head if share_heads else catalogue_head
        self.loss = loss if loss is not None else AdapterInfoNCELoss()
        self.optimizer_factory = optimizer or partial(torch.optim.AdamW, lr=3e-4)
        self.scheduler_factory = scheduler
        self.noise_std, self.mixup_probability, self.mixup_alpha = noise_std, mixup_probability, mixup_alpha
        self.bank = (
            CatalogueBank(bank_size, embedding_dim or feature_dim, bank_max_age) if bank_size > 0 else None
        )
        if hard_negatives < 0 or hard_negative_skip < 0:
            raise ValueError(
                f"hard_negatives and hard_negative_skip must be >= 0, got {hard_negatives}, "
                f"{hard_negative_skip}"
            )
        self.hard_negatives, self.hard_negative_skip = hard_negatives, hard_negative_skip
        self._mining_pool: torch.Tensor | None = None
        self.weight_averaging = weight_averaging
        self.feature_extractor = feature_extractor

    # -- embeddings ----------------------------------------------------------------------------------
    @staticmethod
    def _embed(head: nn.Module | None, features: torch.Tensor) -> torch.Tensor:
        out = features if head is None else head(features)
        return F.normalize(out.float(), dim=-1)

    def embed_queries(self, features: torch.Tensor) -> torch.Tensor:
        """``(B, D)`` features -> ``(B, D')`` float32 L2-normalised query embeddings."""
        return self._embed(self.query_head, features)

    def embed_catalogue(self, features: torch.Tensor) -> torch.Tensor:
        """``(G, D)`` features -> ``(G, D')`` float32 L2-normalised catalogue embeddings."""
        return self._embed(self.catalogue_head, features)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.embed_queries(features)

    @torch.no_grad()
    def embed_whole_catalogue(self, features: torch.Tensor) -> torch.Tensor:
        """``(G, D)`` features (any device) -> ``(G, D')`` embeddings on this module's device, no gradient."""
        return torch.cat(
            [
                self.embed_catalogue(features[start : start + 8192].to(self.device))
                for start in range(0, len(features), 8192)
            ]
        )

    def _catalogue_features(self) -> torch.Tensor:
        features = getattr(getattr(self.trainer, "datamodule", None), "catalogue_features", None)
        if features is None:
            raise ValueError(
                "hard_negatives needs the whole catalogue: train with a datamodule that has "
                "catalogue_features (FeatureDataModule)"
            )
        return features

    def _features(self, batch: dict[str, torch.Tensor], side: str) -> torch.Tensor:
        if side in batch:
            return batch[side].float()
        if f"{side}_image" not in batch:
            raise KeyError(f"batch has neither {side!r} features nor {side}_image images: {sorted(batch)}")
        if self.feature_extractor is None:
            raise ValueError(f"a batch of {side}_image needs a feature_extractor")
        return self.feature_extractor(batch[f"{side}_image"])

    # -- training ------------------------------------------------------------------------------------
    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self.batch_loss(batch)
        size = int(batch["catalogue_label"].shape[0])
        self.log("train/loss", loss, prog_bar=True, batch_size=size)
        temperature = getattr(self.loss, "current_temperature", None)
        if temperature is not None:
            self.log("train/temperature", float(temperature), batch_size=size)
        return loss

    def batch_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The loss of a batch: noisy, mixed queries against the batch's distinct products and the bank."""
        query = self._features(batch, "query")
        catalogue = self._features(batch, "catalogue")
        labels, products = batch["catalogue_label"].long(), batch["query_products"].long()
        query = feature_noise(query, self.noise_std)
        query, partner, lam = mix_embeddings(query, self.mixup_probability, self.mixup_alpha)
        queries = self.embed_queries(query)
        # One candidate column per distinct product: a product drawn twice is not two negatives.
        candidate_labels, inverse = torch.unique(labels, return_inverse=True)
        first = torch.zeros_like(candidate_labels).scatter_(
            0, inverse, torch.arange(len(labels), device=labels.device)
        )
        candidates = self.embed_catalogue(catalogue[first])
        positive = label_in(candidate_labels, products)
        negative = ~positive
        scored = candidates
        if self.hard_negatives:
            mined, mined_negative = self.mined_negatives(queries.detach(), products, candidate_labels)
            scored, positive, negative = append_negatives(scored, positive, negative, mined, mined_negative)
        if self.bank is not None and self.bank.filled:
            extra, extra_negative = self.bank.negatives(products, step=self.global_step)
            scored, positive, negative = append_negatives(scored, positive, negative, extra, extra_negative)
        rows, positive, negative, weights = mixup_rows(positive, negative, partner, lam)
        loss = self.loss(queries[rows], scored, positive, negative, weights)
        if self.bank is not None:
            # Enqueued after use: this batch's products are already in-batch negatives.
            self.bank.enqueue(
                all_gather_uneven(candidates.detach()),
                all_gather_uneven(candidate_labels),
                step=self.global_step,
            )
        return loss

    def mined_negatives(
        self, queries: torch.Tensor, products: torch.Tensor, candidate_labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch's mined hard negatives (see ``hard_negatives``) that are not already its candidates.

        Args:
            queries: ``(B, D')`` adapted query embeddings; products: ``(B, L)`` each query's products, -1
                padded; candidate_labels: ``(P,)`` the batch's own product columns.

        Returns:
            ``embeddings (M, D')`` of the mined products (through the catalogue head, with gradient) and
            ``negative_mask (B, M)``, True where the product is one of the query's own ``k`` mined ones.
        """
        features = self._catalogue_features()
        if self._mining_pool is None:
            self._mining_pool = self.embed_whole_catalogue(features)
        rows = catalogue_hard_negatives(
            queries, self._mining_pool, products, self.hard_negatives, self.hard_negative_skip
        )
        mined = rows[rows >= 0].unique()
        mined = mined[~torch.isin(mined, candidate_labels.to(mined.device))]
        embeddings = self.embed_catalogue(features[mined.to(features.device)].to(self.device).float())
        return embeddings, label_in(mined, rows)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        # A checkpoint saved before issue 16 has the catalogue head under its old name (renamed.py).
        checkpoint["state_dict"] = upgrade_state_keys(checkpoint["state_dict"])

    def on_fit_start(self) -> None:
        self._mining_pool = None

    def on_train_epoch_start(self) -> None:
        # A frozen catalogue side keeps its pool; a trainable one is re-embedded once per epoch.
        if self.catalogue_head is not None:
            self._mining_pool = None

    # -- validation ----------------------------------------------------------------------------------
    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> dict[str, torch.Tensor]:
        """The adapted queries, ``embeddings (B, D')``, and their ``index (B,)`` for the evaluator."""
        return {"index": batch["index"], "embeddings": self.embed_queries(self._features(batch, "query"))}

    # -- optimisation --------------------------------------------------------------------------------
    def configure_optimizers(self) -> dict:
        loss_ids = {id(p) for p in self.loss.parameters()}
        head = [p for p in self.parameters() if p.requires_grad and id(p) not in loss_ids]
        # A learnable temperature learns without weight decay, which would pull it towards 1.
        rest = [p for p in self.loss.parameters() if p.requires_grad]
        groups: list[dict] = []
        if head:
            groups.append({"params": head, "name": "head"})
        if rest:
            groups.append({"params": rest, "name": "loss", "weight_decay": 0.0})
        if not groups:
            raise ValueError(
                "nothing to train: no head and a fixed temperature (adapter=none only evaluates)"
            )
        optimizer = self.optimizer_factory(groups)
        if self.scheduler_factory is None:
            return {"optimizer": optimizer}
        scheduler = self.scheduler_factory(
            optimizer, total_steps=int(self.trainer.estimated_stepping_batches)
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def configure_callbacks(self) -> list[Callback]:
        return [] if self.weight_averaging is None else [self.weight_averaging]


def load_head(module: FeatureAdapterModule, path: Path) -> None:
    """The heads' (and temperature's) weights of ``path`` (a ``head.pt`` of ``train-adapter``, read as data
    only) into ``module``; the negative bank is training state, so a head trained with another ``bank_size``
    loads too, and so does a head saved before the catalogue head's rename. A file of another architecture
    or feature dimension is refused, naming the file."""
    state = {k: v for k, v in upgrade_state_keys(load_checkpoint(path)).items() if not k.startswith("bank.")}
    expected = module.state_dict()
    wrong_shapes = [
        f"{key} {tuple(value.shape)} (adapter= expects {tuple(expected[key].shape)})"
        for key, value in state.items()
        if key in expected and isinstance(value, torch.Tensor) and value.shape != expected[key].shape
    ]
    if wrong_shapes:
        raise ValueError(
            f"{path} does not fit adapter= with feature dimension {module.hparams.feature_dim}: "
            f"{', '.join(wrong_shapes[:3])}; a head loads only on the backbone features it was trained on"
        )
    missing, unexpected = module.load_state_dict(state, strict=False)
    wrong = [k for k in missing if not k.startswith("bank.")] + list(unexpected)
    if wrong:
        raise ValueError(f"{path} does not fit adapter=: keys {wrong[:5]} differ")


@torch.no_grad()
def apply_head(module: FeatureAdapterModule, features: np.ndarray, side: str) -> np.ndarray:
    """``(N, D)`` features -> ``(N, D')`` float32 L2-normalised, through the query or catalogue head."""
    embed = module.embed_queries if side == "query" else module.embed_catalogue
    tensor = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))
    return torch.cat([embed(tensor[s : s + 8192]) for s in range(0, len(tensor), 8192)]).numpy()
