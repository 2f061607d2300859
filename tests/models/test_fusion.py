"""The fusion head of composed queries: its forward against a NumPy reference, the untrained head is
embedding arithmetic, training keeps the best validated weights (the untrained ones included) and learns
what arithmetic cannot, and the safetensors file round-trips and refuses what is not a head."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from fashion_retrieval.models.fusion import (
    FusionHead,
    composed_embeddings,
    fit_fusion_head,
    fusion_head_path,
    load_fusion_head,
    save_fusion_head,
)


def unit_rows(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    rows = rng.normal(size=(n, d)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def randomise(head: FusionHead, seed: int = 0) -> FusionHead:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in head.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)
    return head.eval()


def reference(head: FusionHead, image: np.ndarray, text: np.ndarray) -> np.ndarray:
    """The gated residual combiner written out in NumPy (float64), from the head's weights."""
    from scipy.special import erf

    def mlp(layers: torch.nn.Sequential, x: np.ndarray) -> np.ndarray:
        first, last = layers[0], layers[-1]
        hidden = x @ first.weight.detach().double().numpy().T + first.bias.detach().double().numpy()
        hidden = 0.5 * hidden * (1.0 + erf(hidden / np.sqrt(2.0)))  # exact GELU
        return hidden @ last.weight.detach().double().numpy().T + last.bias.detach().double().numpy()

    joint = np.concatenate([image, text], axis=1).astype(np.float64)
    gate = 1.0 / (1.0 + np.exp(-mlp(head.gate, joint)))
    fused = gate * image + (1.0 - gate) * text + mlp(head.residual, joint)
    return fused / np.linalg.norm(fused, axis=1, keepdims=True)


def test_forward_matches_the_reference_and_is_l2_normalised() -> None:
    rng = np.random.default_rng(0)
    image, text = unit_rows(rng, 5, 8), unit_rows(rng, 5, 8)
    head = randomise(FusionHead(8, hidden_dim=6))
    out = head.fuse(image, text)
    assert out.shape == (5, 8) and out.dtype == np.float32
    np.testing.assert_allclose(out, reference(head, image, text), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    # The gate and residual read the text: another text moves the output.
    assert not np.allclose(out, head.fuse(image, unit_rows(rng, 5, 8)), atol=1e-3)


def test_the_untrained_head_is_embedding_arithmetic() -> None:
    rng = np.random.default_rng(1)
    image, text = unit_rows(rng, 7, 16), unit_rows(rng, 7, 16)
    out = FusionHead(16, hidden_dim=4).fuse(image, text)
    np.testing.assert_allclose(out, composed_embeddings(image, text, 1.0), atol=1e-6)


def test_mismatched_shapes_are_refused() -> None:
    head = FusionHead(8, hidden_dim=4)
    with pytest.raises(ValueError, match=r"fusion head of width 8"):
        head(torch.zeros(3, 8), torch.zeros(2, 8))
    with pytest.raises(ValueError, match=r"must both be \(N, D\)"):
        head(torch.zeros(3, 6), torch.zeros(3, 6))


def toy_task(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """24 products, 3 "colours": the answer to (product s, colour c) is a fixed random other product, which
    image + text arithmetic cannot find but a head over [image; text] can learn."""
    products = unit_rows(rng, 24, 16)
    colours = unit_rows(rng, 3, 16)
    sources = np.repeat(np.arange(24), 3)
    which = np.tile(np.arange(3), 24)
    targets = (sources + 1 + rng.integers(0, 23, size=len(sources))) % 24
    return products, sources, colours[which], targets


def recall_at_1(head: FusionHead, products: np.ndarray, sources, texts, targets) -> float:
    scores = head.fuse(products[sources], texts) @ products.T
    scores[np.arange(len(sources)), sources] = -np.inf
    return float(np.mean(scores.argmax(axis=1) == targets))


def test_training_learns_what_arithmetic_cannot() -> None:
    products, sources, texts, targets = toy_task(np.random.default_rng(2))
    torch.manual_seed(0)
    head = FusionHead(16, hidden_dim=64)
    untrained = recall_at_1(head, products, sources, texts, targets)

    def validate(h: FusionHead) -> float:
        return recall_at_1(h, products, sources, texts, targets)

    trained, scores = fit_fusion_head(
        head, products, sources, texts, targets, validate, epochs=60, batch_size=24, lr=3e-3, seed=0
    )
    assert len(scores) == 61 and scores[0] == pytest.approx(untrained)
    assert untrained < 0.2 and max(scores) > 0.8
    assert validate(trained) == pytest.approx(max(scores))  # the best epoch's weights are returned


def test_training_keeps_the_untrained_head_when_no_epoch_validates_better() -> None:
    products, sources, texts, targets = toy_task(np.random.default_rng(3))
    calls = iter(range(100, 0, -1))  # every later validation scores lower than the first

    head, scores = fit_fusion_head(
        FusionHead(16, hidden_dim=8), products, sources, texts, targets, lambda _: next(calls), epochs=3
    )
    assert scores == [100, 99, 98, 97]
    image, text = products[sources], texts
    np.testing.assert_allclose(head.fuse(image, text), composed_embeddings(image, text), atol=1e-6)


def test_saved_head_loads_back_and_a_run_without_one_has_none(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    image, text = unit_rows(rng, 4, 8), unit_rows(rng, 4, 8)
    head = randomise(FusionHead(8, hidden_dim=5), seed=3)
    assert load_fusion_head(tmp_path) is None
    path = save_fusion_head(head, tmp_path, {"seed": "1"})
    assert path == fusion_head_path(tmp_path) and path.name.endswith(".safetensors")
    loaded = load_fusion_head(tmp_path)
    assert loaded is not None and loaded.hidden_dim == 5 and not loaded.training
    np.testing.assert_array_equal(loaded.fuse(image, text), head.fuse(image, text))


def test_a_file_that_is_not_a_head_is_named(tmp_path: Path) -> None:
    path = fusion_head_path(tmp_path)
    path.parent.mkdir(parents=True)
    save_file({"weight": torch.zeros(2)}, str(path))
    with pytest.raises(ValueError, match=r"fusion_head.safetensors: not a fusion head"):
        load_fusion_head(tmp_path)
    save_file({"weight": torch.zeros(2)}, str(path), metadata={"fusion_head": '{"dim": 8, "hidden_dim": 4}'})
    with pytest.raises(ValueError, match=r"weights do not fit a fusion head"):
        load_fusion_head(tmp_path)
