"""The ``distill`` stage's LightningModule: a student encoder trained to reproduce a teacher's embeddings.

Everything but the training step is :class:`~fashion_retrieval.models.module.RetrievalModule`'s (optimiser
groups, validation embeddings, the encoder config stored in checkpoints), so a student's checkpoint loads
like any trained one (:func:`~fashion_retrieval.models.checkpoint.load_encoder`).
"""

from __future__ import annotations

import torch

from fashion_retrieval.losses.embedding_distill import EmbeddingDistillationLoss
from fashion_retrieval.models.module import RetrievalModule


class DistillationModule(RetrievalModule):
    """Trains ``encoder`` on batches of :class:`~fashion_retrieval.data.distill.DistillDataModule`: every
    image set's student embeddings and teacher targets are concatenated, ``(N, D)`` each, and scored by
    ``loss`` (:class:`EmbeddingDistillationLoss`), so the similarity matrix spans bundle photos and packshots.

    Single-process: under DDP each process would score only its own batch's similarity matrix."""

    def training_step(self, batch: dict[str, dict[str, torch.Tensor]], batch_idx: int) -> torch.Tensor:
        if not isinstance(self.loss, EmbeddingDistillationLoss):
            raise TypeError(f"DistillationModule needs an EmbeddingDistillationLoss, got {type(self.loss)}")
        student = torch.cat([self(part["image"]) for part in batch.values()])
        teacher = torch.cat([part["target"] for part in batch.values()]).to(student.device)
        loss = self.loss(student, teacher)
        size = student.shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=size)
        for name, value in self.loss.terms.items():
            self.log(f"train/distill_{name}", value, batch_size=size)
        for group in self.optimizers().optimizer.param_groups:
            self.log(f"train/lr_{group['name']}", group["lr"], batch_size=size)
        return loss
