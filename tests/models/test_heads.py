import pytest
import torch
import torch.nn.functional as F

from fashion_retrieval.models import encoder
from fashion_retrieval.models.heads import ProjectionHead, ResidualAdapter


def test_zero_init_adapter_is_the_identity_on_unit_vectors():
    torch.manual_seed(0)
    features = F.normalize(torch.randn(7, 24), dim=1)
    adapter = ResidualAdapter(24, dropout=0.1).train()
    assert torch.equal(adapter.mlp[-1].weight, torch.zeros(24, 48))  # hidden 2 x dim
    assert torch.allclose(adapter(features), features, atol=1e-6)
    # Still a trainable residual branch: the last layer gets a gradient at once.
    adapter(features).pow(3).sum().backward()
    assert adapter.mlp[-1].weight.grad.abs().sum() > 0


def test_adapter_structure_and_output_norm():
    adapter = ResidualAdapter(8, hidden_dim=5, dropout=0.0, zero_init=False)
    kinds = [type(layer).__name__ for layer in adapter.mlp]
    assert kinds == ["Linear", "LayerNorm", "GELU", "Dropout", "Linear"]
    out = adapter(torch.randn(3, 8))
    assert out.dtype == torch.float32 and torch.allclose(out.norm(dim=1), torch.ones(3), atol=1e-6)
    assert not torch.allclose(out, F.normalize(torch.zeros(3, 8) + out, dim=1) * 0)
    with pytest.raises(ValueError, match=r"\(B, 8\)"):
        adapter(torch.randn(3, 9))


def test_projection_head_lives_in_heads_and_the_encoder_reuses_it():
    assert encoder.ProjectionHead is ProjectionHead
    assert ProjectionHead(6, 4, hidden_dim=8)(torch.randn(2, 6)).shape == (2, 4)
