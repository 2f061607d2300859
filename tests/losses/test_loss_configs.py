from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import OmegaConf

LOSS_CONFIGS = sorted((Path(__file__).resolve().parents[2] / "conf" / "loss").glob("*.yaml"))


@pytest.mark.parametrize("path", LOSS_CONFIGS, ids=lambda p: p.stem)
def test_loss_config_builds_a_loss_with_the_common_signature(path):
    loss_fn = instantiate(OmegaConf.load(path))
    generator = torch.Generator().manual_seed(0)
    query = F.normalize(torch.randn(3, 8, generator=generator), dim=1).requires_grad_(True)
    gallery = F.normalize(torch.randn(5, 8, generator=generator), dim=1)
    positive = torch.tensor([[1, 1, 0, 0, 0], [0, 0, 1, 0, 0], [0, 0, 0, 1, 0]], dtype=torch.bool)
    negative = ~positive
    negative[0, 4] = False
    loss = loss_fn(query, gallery, positive, negative)
    loss.backward()
    assert loss.ndim == 0 and torch.isfinite(loss) and torch.isfinite(query.grad).all()


def test_expected_configs_exist():
    assert {p.stem for p in LOSS_CONFIGS} >= {"infonce", "supcon", "triplet"}
