"""At the end of fit, export the best checkpoint's catalogue embeddings and FAISS index.

The evaluator embeds the whole catalogue at every validation; the epoch that becomes the best checkpoint
already did the export's work. Its embeddings are kept with the digest of the weights that made them
(:func:`~fashion_retrieval.features.fingerprint.module_digest`) and written instead of a second pass over
the catalogue only when the weights loaded from the best checkpoint have the same digest: any other model
is embedded afresh.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback
from torch import nn

from fashion_retrieval.callbacks.evaluator import RetrievalEvaluator
from fashion_retrieval.features.fingerprint import module_digest
from fashion_retrieval.index.export import export_catalogue
from fashion_retrieval.index.factory import IndexSpec
from fashion_retrieval.models.checkpoint import load_checkpoint
from fashion_retrieval.models.inference import embed_loader

log = logging.getLogger(__name__)

# Validation under autocast embeds in lower precision than the export's float32 pass: not reusable.
FULL_PRECISION = ("32-true", "32", "64-true", "64")


@dataclass(frozen=True)
class ValidatedEmbeddings:
    """The catalogue's ``(G, D)`` float32 embeddings from the validation of ``epoch``, in ``catalogue_ids``
    order, and the :func:`module_digest` of the module that computed them."""

    epoch: int
    weights: str
    embeddings: np.ndarray


def validation_catalogue(trainer: pl.Trainer) -> np.ndarray | None:
    """The whole catalogue's embeddings from this epoch's validation (:class:`RetrievalEvaluator`), or
    ``None`` (no such evaluator, another epoch's ranking, or a partial validation)."""
    for callback in trainer.callbacks:
        if isinstance(callback, RetrievalEvaluator):
            ranking = callback.last_ranking
            if ranking is not None and ranking.epoch == trainer.current_epoch:
                return ranking.catalogue
    return None


def may_become_best(trainer: pl.Trainer) -> bool:
    """Whether this validation can become the best checkpoint: its monitored score beats the best so far
    (strictly, as ``ModelCheckpoint`` decides); without a monitored checkpoint every validation can (the
    export then uses the weights at the end of fit)."""
    checkpoint = trainer.checkpoint_callback
    monitor = getattr(checkpoint, "monitor", None)
    if checkpoint is None or monitor is None:
        return True
    score = trainer.callback_metrics.get(monitor)
    if score is None:
        return False
    best = checkpoint.best_model_score
    if best is None:
        return True
    return float(score) > float(best) if checkpoint.mode == "max" else float(score) < float(best)


class EmbeddingExporter(Callback):
    """Writes ``catalogue_embeddings.npz`` and the FAISS index (``spec``; default flat) with its id map into
    ``output_dir``.

    The module is left holding the best checkpoint's weights, which is what every later stage uses.
    ``reuse_validation``: write the best epoch's validation embeddings of the catalogue when the weights
    are the same (see the module's docstring); false: always embed the catalogue again.
    """

    def __init__(self, output_dir: str, spec: IndexSpec | None = None, reuse_validation: bool = True) -> None:
        self.output_dir = Path(output_dir)
        self.spec = spec
        self.reuse_validation = reuse_validation
        # Set once this fit has exported (not under fast_dev_run): later callbacks (wandb_tables) read it.
        self.written: Path | None = None
        self.validated: ValidatedEmbeddings | None = None

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Before the checkpoint callbacks (Lightning runs them last), so the best score is the previous one.
        if not self.reuse_validation or trainer.sanity_checking or not trainer.is_global_zero:
            return
        if str(trainer.precision) not in FULL_PRECISION:
            return
        catalogue = validation_catalogue(trainer)
        if catalogue is not None and may_become_best(trainer):
            self.keep(pl_module, catalogue, trainer.current_epoch)

    def keep(self, module: nn.Module, embeddings: np.ndarray, epoch: int) -> None:
        """Keep ``(G, D)`` catalogue embeddings computed by ``module`` at ``epoch``'s validation."""
        self.validated = ValidatedEmbeddings(epoch, module_digest(module), embeddings)

    def reusable(self, module: nn.Module) -> ValidatedEmbeddings | None:
        """The kept embeddings when ``module``'s weights are those that computed them, else ``None``."""
        if self.validated is None:
            return None
        if module_digest(module) != self.validated.weights:
            log.info(
                "export: the exported weights are not epoch %d's: embedding afresh", self.validated.epoch
            )
            return None
        return self.validated

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.fast_dev_run:
            log.info("export: skipped under fast_dev_run (no checkpoint was written)")
            return
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        if best:
            state = load_checkpoint(best)["state_dict"]
            pl_module.load_state_dict(state)
            log.info("export: loaded best checkpoint %s", best)
        if not trainer.is_global_zero:
            return
        datamodule = trainer.datamodule
        pl_module.eval()
        start = time.perf_counter()
        validated = self.reusable(pl_module)
        if validated is not None:
            embeddings = validated.embeddings
            log.info(
                "export: the catalogue embeddings of epoch %d's validation (same weights)", validated.epoch
            )
        else:
            embeddings = embed_loader(pl_module, datamodule.catalogue_dataloader(), pl_module.device)
        self.validated = None  # (G, D) floats: not held beyond the export
        ids = datamodule.catalogue_ids
        log.info("export: catalogue embeddings ready in %.1f s", time.perf_counter() - start)
        export_catalogue(
            self.output_dir, embeddings, ids, best or None, self.spec, datamodule.catalogue_paths
        )
        self.written = self.output_dir
        log.info("export: %d catalogue embeddings and their index written to %s", len(ids), self.output_dir)
