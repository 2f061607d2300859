"""Embedding distillation: a small student learns a teacher's embedding space (the ``distill`` stage).

Not :func:`~fashion_retrieval.losses.anchor.feature_distillation`'s job (that one holds a fine-tuned
backbone near its own pretrained features); here the teacher is another, stronger model, and what must
transfer is what retrieval reads: the direction of each embedding and the similarities between images.

* cosine term: ``1 - cos(student_i, teacher_i)`` per image (needs the same dimension D on both sides);
* similarity-matrix term: the student's in-batch cosine matrix ``S S^T`` matches the teacher's ``T T^T``
  (mean squared difference over the off-diagonal pairs), which preserves the ranking structure
  (relational knowledge distillation, Park et al., 2019) and works for any pair of dimensions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fashion_retrieval.losses.anchor import feature_distillation


def similarity_matrix_distillation(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mean squared difference between the ``(N, N)`` cosine matrices of ``student (N, Ds)`` and
    ``teacher (N, Dt)`` over the ``N (N - 1)`` off-diagonal pairs (the diagonal is 1 on both sides).

    Rows need not be normalised; the teacher receives no gradient. ``N >= 2``."""
    if student.shape[0] != teacher.shape[0]:
        raise ValueError(
            f"similarity distillation: {student.shape[0]} student vs {teacher.shape[0]} teacher rows"
        )
    n = student.shape[0]
    if n < 2:
        raise ValueError("similarity distillation needs at least 2 images in a batch")
    s = F.normalize(student.float(), dim=-1)
    t = F.normalize(teacher.detach().float(), dim=-1)
    off_diagonal = ~torch.eye(n, dtype=torch.bool, device=s.device)
    return (s @ s.T - t @ t.T)[off_diagonal].pow(2).mean()


class EmbeddingDistillationLoss(nn.Module):
    """``cosine_weight * (1 - cos) + similarity_weight * similarity-matrix MSE`` of a batch.

    ``forward(student (N, D), teacher (N, D)) -> ()``; the two terms of the last call are kept in
    :attr:`terms` for logging. ``cosine_weight=0`` allows a student of another dimension than the teacher.
    """

    def __init__(self, cosine_weight: float = 1.0, similarity_weight: float = 1.0) -> None:
        super().__init__()
        if cosine_weight < 0 or similarity_weight < 0 or cosine_weight + similarity_weight == 0:
            raise ValueError(
                f"distillation weights must be >= 0 and not both 0, got cosine {cosine_weight}, "
                f"similarity {similarity_weight}"
            )
        self.cosine_weight = cosine_weight
        self.similarity_weight = similarity_weight
        self.terms: dict[str, torch.Tensor] = {}

    def forward(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        self.terms = {}
        if self.cosine_weight > 0:
            self.terms["cosine"] = feature_distillation(student, teacher, "cosine")
        if self.similarity_weight > 0:
            self.terms["similarity"] = similarity_matrix_distillation(student, teacher)
        weights = {"cosine": self.cosine_weight, "similarity": self.similarity_weight}
        return torch.stack([weights[name] * value for name, value in self.terms.items()]).sum()
