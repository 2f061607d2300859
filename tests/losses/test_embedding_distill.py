"""Embedding distillation against a slow, obvious reference computation."""

from __future__ import annotations

import pytest
import torch

from fashion_retrieval.losses.embedding_distill import (
    EmbeddingDistillationLoss,
    similarity_matrix_distillation,
)


def reference_similarity_loss(student: torch.Tensor, teacher: torch.Tensor) -> float:
    """Pair by pair, in Python: mean over i != j of (cos(s_i, s_j) - cos(t_i, t_j))^2."""
    n = student.shape[0]
    cos = torch.nn.functional.cosine_similarity
    total = 0.0
    for i in range(n):
        for j in range(n):
            if i != j:
                gap = cos(student[i], student[j], dim=0) - cos(teacher[i], teacher[j], dim=0)
                total += float(gap) ** 2
    return total / (n * (n - 1))


def test_similarity_term_matches_the_pairwise_reference_across_dimensions():
    generator = torch.Generator().manual_seed(0)
    student = torch.randn(5, 3, generator=generator)
    teacher = torch.randn(5, 7, generator=generator)  # another dimension: only relations are compared
    value = similarity_matrix_distillation(student, teacher)
    assert value.item() == pytest.approx(reference_similarity_loss(student, teacher), rel=1e-5)
    assert value.item() > 0.01


def test_similarity_term_is_zero_for_a_rotated_and_rescaled_copy_and_spares_the_teacher():
    generator = torch.Generator().manual_seed(1)
    teacher = torch.randn(6, 4, generator=generator, requires_grad=True)
    rotation, _ = torch.linalg.qr(torch.randn(4, 4, generator=generator))
    student = (teacher.detach() @ rotation * 3.0).requires_grad_(True)
    assert similarity_matrix_distillation(student, teacher).item() == pytest.approx(0.0, abs=1e-10)
    similarity_matrix_distillation(student + 0.1 * torch.randn(6, 4, generator=generator), teacher).backward()
    assert teacher.grad is None and student.grad is not None


def test_loss_weights_its_terms_and_keeps_them_for_logging():
    student = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    teacher = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    loss = EmbeddingDistillationLoss(cosine_weight=2.0, similarity_weight=0.5)
    value = loss(student, teacher)
    cosine = (0.0 + 1.0 + (1 - 2**-0.5)) / 3
    similarity = reference_similarity_loss(student, teacher)
    assert loss.terms["cosine"].item() == pytest.approx(cosine)
    assert loss.terms["similarity"].item() == pytest.approx(similarity)
    assert value.item() == pytest.approx(2.0 * cosine + 0.5 * similarity)
    only_relations = EmbeddingDistillationLoss(cosine_weight=0.0)
    assert only_relations(torch.randn(3, 5), teacher).ndim == 0 and set(only_relations.terms) == {
        "similarity"
    }


def test_bad_weights_and_shapes_are_refused():
    with pytest.raises(ValueError, match="not both 0"):
        EmbeddingDistillationLoss(0.0, 0.0)
    with pytest.raises(ValueError, match=">= 0"):
        EmbeddingDistillationLoss(-1.0, 1.0)
    with pytest.raises(ValueError, match="3 student vs 2 teacher"):
        similarity_matrix_distillation(torch.zeros(3, 2), torch.zeros(2, 2))
    with pytest.raises(ValueError, match="at least 2"):
        similarity_matrix_distillation(torch.ones(1, 2), torch.ones(1, 2))
    with pytest.raises(ValueError, match="student"):
        EmbeddingDistillationLoss()(torch.zeros(3, 2), torch.zeros(3, 4))  # cosine needs one dimension
