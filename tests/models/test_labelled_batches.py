"""RetrievalModule on labelled batches (reader datasets): every image against every other, positives = same
label; checked against the loss called by hand with masks built in loops."""

from __future__ import annotations

import functools

import pytest
import torch
from tiny_models import uint8_images

from fashion_retrieval.losses import InfoNCELoss, SupConLoss, TripletLoss
from fashion_retrieval.models.backbones import TimmBackbone
from fashion_retrieval.models.encoder import ImageEncoder
from fashion_retrieval.models.module import RetrievalModule


def module(loss: torch.nn.Module, memory_size: int = 0) -> RetrievalModule:
    torch.manual_seed(0)
    encoder = ImageEncoder(TimmBackbone("test_efficientnet", weights="random"), embedding_dim=8)
    return RetrievalModule(
        encoder, loss, optimizer=functools.partial(torch.optim.SGD, lr=0.1), memory_size=memory_size
    ).eval()


@pytest.mark.parametrize("loss", [InfoNCELoss(0.1), SupConLoss(0.1), TripletLoss(0.3)], ids=type)
def test_labelled_batch_loss_matches_a_hand_built_batch(loss):
    model = module(loss)
    images = uint8_images(6, 32, 32)
    labels = [3, 1, 3, 7, 1, 5]  # 7 and 5 have no second image: candidates, never anchors
    with torch.no_grad():
        value, anchors, _ = model.batch_loss({"image": images, "label": torch.tensor(labels)})
        embeddings = model(images)
    rows = [i for i, a in enumerate(labels) if labels.count(a) > 1]
    positive = torch.tensor([[i != j and labels[i] == b for j, b in enumerate(labels)] for i in rows])
    negative = torch.tensor([[labels[i] != b for b in labels] for i in rows])
    expected = loss(embeddings[rows], embeddings, positive, negative)
    assert anchors == 4
    torch.testing.assert_close(value, expected)


def test_labelled_batch_without_positives_is_refused():
    model = module(InfoNCELoss(0.1))
    with pytest.raises(
        ValueError, match=r"no label has two images in this batch of 3.*sampler=label_balanced"
    ):
        model.batch_loss({"image": uint8_images(3, 32, 32), "label": torch.tensor([0, 1, 2])})


def test_memory_keeps_labels_and_never_scores_an_anchor_against_its_own_label():
    model = module(InfoNCELoss(0.1), memory_size=16)
    first = {"image": uint8_images(4, 32, 32, seed=1), "label": torch.tensor([0, 0, 1, 1])}
    with torch.no_grad():
        model.batch_loss(first)
        assert model.memory.filled == 4 and model.memory.contents()[1].tolist() == [0, 0, 1, 1]
        _, negative = model.memory.negatives(torch.tensor([[0], [2]]))
    # Label 0's anchor must not see the remembered label-0 images as negatives; label 2 sees all four.
    assert negative.tolist() == [[False, False, True, True], [True, True, True, True]]
