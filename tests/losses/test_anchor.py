"""L2-SP and feature distillation against hand-computed values."""

from __future__ import annotations

import pytest
import torch

from fashion_retrieval.losses.anchor import feature_distillation, l2_sp_penalty


def test_l2_sp_is_the_squared_distance_to_the_anchors_not_to_zero():
    weights = [torch.tensor([1.0, 2.0], requires_grad=True), torch.tensor([[3.0]], requires_grad=True)]
    anchors = [torch.tensor([1.0, 0.0]), torch.tensor([[1.0]])]
    penalty = l2_sp_penalty(weights, anchors)
    assert penalty.item() == pytest.approx(0.0 + 4.0 + 4.0)
    penalty.backward()
    torch.testing.assert_close(weights[0].grad, torch.tensor([0.0, 4.0]))  # 2 (w - w0)
    torch.testing.assert_close(weights[1].grad, torch.tensor([[4.0]]))
    assert l2_sp_penalty(anchors, anchors).item() == 0.0


def test_l2_sp_rejects_mismatched_lists():
    with pytest.raises(ValueError, match="2 weights but 1 anchors"):
        l2_sp_penalty([torch.zeros(1), torch.zeros(1)], [torch.zeros(1)])
    with pytest.raises(ValueError, match="no trainable"):
        l2_sp_penalty([], [])


def test_cosine_distillation_reads_directions_only():
    teacher = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    same_direction = torch.tensor([[3.0, 0.0], [0.0, 0.5]])
    assert feature_distillation(same_direction, teacher).item() == pytest.approx(0.0)
    orthogonal_and_opposite = torch.tensor([[0.0, 1.0], [0.0, -1.0]])
    assert feature_distillation(orthogonal_and_opposite, teacher).item() == pytest.approx((1.0 + 2.0) / 2)


def test_mse_distillation_and_no_gradient_into_the_teacher():
    student = torch.tensor([[1.0, 2.0]], requires_grad=True)
    teacher = torch.tensor([[0.0, 0.0]], requires_grad=True)
    loss = feature_distillation(student, teacher, "mse")
    assert loss.item() == pytest.approx((1.0 + 4.0) / 2)
    loss.backward()
    torch.testing.assert_close(student.grad, torch.tensor([[1.0, 2.0]]))  # 2 (s - t) / 2 features
    assert teacher.grad is None
    with pytest.raises(ValueError, match="kind"):
        feature_distillation(student, teacher, "kl")  # type: ignore[arg-type]
