"""At the end of fit, export the best checkpoint's catalogue embeddings and FAISS index."""

from __future__ import annotations

import logging
from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback

from fashion_retrieval.index.export import export_catalogue
from fashion_retrieval.index.factory import IndexSpec
from fashion_retrieval.models.checkpoint import load_checkpoint
from fashion_retrieval.models.inference import embed_loader

log = logging.getLogger(__name__)


class EmbeddingExporter(Callback):
    """Writes ``catalogue_embeddings.npz`` and the FAISS index (``spec``; default flat) with its id map into
    ``output_dir``.

    The module is left holding the best checkpoint's weights, which is what every later stage uses.
    """

    def __init__(self, output_dir: str, spec: IndexSpec | None = None) -> None:
        self.output_dir = Path(output_dir)
        self.spec = spec
        # Set once this fit has exported (not under fast_dev_run): later callbacks (wandb_tables) read it.
        self.written: Path | None = None

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
        embeddings = embed_loader(pl_module, datamodule.gallery_dataloader(), pl_module.device)
        ids = datamodule.gallery_ids
        export_catalogue(self.output_dir, embeddings, ids, best or None, self.spec, datamodule.gallery_paths)
        self.written = self.output_dir
        log.info("export: %d catalogue embeddings and their index written to %s", len(ids), self.output_dir)
