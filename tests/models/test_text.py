"""The text tower: tokenizer fitted offline and its round trip, BERT and CLIP towers from a config, a
pretrained tower from a local save_pretrained directory, the rebuild from a checkpoint's text config, and
the dual encoder's loss going down on a tiny set."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from tiny_models import TINY_TEXT, tiny_clip_model, uint8_images
from transformers import BertConfig, BertModel

from fashion_retrieval.models.backbones import TimmBackbone
from fashion_retrieval.models.dual_module import DualEncoderModule, same_key_mask
from fashion_retrieval.models.encoder import ImageEncoder
from fashion_retrieval.models.text import (
    TOKENIZER_FILE,
    TextEncoder,
    load_tokenizer,
    save_tokenizer,
    train_tokenizer,
)
from fashion_retrieval.models.weights import WeightsNotFoundError

CAPTIONS = [
    "red striped shirt with long sleeves",
    "blue denim jeans, slim fit",
    "black leather jacket",
    "white cotton t-shirt with short sleeves",
    "green checked skirt",
    "yellow knitted jumper",
]
BERT_TINY = {
    "hidden_size": 16,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "intermediate_size": 32,
    "max_position_embeddings": 32,
}


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(CAPTIONS * 2, vocab_size=120)


def test_tokenizer_is_lower_case_and_round_trips_through_its_file(tokenizer, tmp_path: Path) -> None:
    encoded = tokenizer("Red STRIPED Shirt")["input_ids"]
    assert encoded[0] == tokenizer.cls_token_id and encoded[-1] == tokenizer.sep_token_id
    assert tokenizer.decode(encoded, skip_special_tokens=True) == "red striped shirt"
    assert tokenizer.unk_token_id not in encoded  # every word was in the training captions
    path = save_tokenizer(tokenizer, tmp_path)
    assert path == tmp_path / TOKENIZER_FILE
    reloaded = load_tokenizer(tmp_path)
    assert len(reloaded) == len(tokenizer)
    for caption in [*CAPTIONS, "an unseen purple hat"]:
        assert reloaded(caption)["input_ids"] == tokenizer(caption)["input_ids"]
    assert reloaded.pad_token == "[PAD]"


def test_missing_or_broken_tokenizer_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / TOKENIZER_FILE))):
        load_tokenizer(tmp_path)
    (tmp_path / TOKENIZER_FILE).write_text("{not json")
    with pytest.raises(ValueError, match=re.escape(str(tmp_path / TOKENIZER_FILE))):
        load_tokenizer(tmp_path / TOKENIZER_FILE)


@pytest.mark.parametrize("tower", ["bert", "clip"])
def test_tower_embeds_and_rebuilds_from_its_checkpoint_config(tokenizer, tower: str, tmp_path: Path) -> None:
    architecture = {**BERT_TINY, **({"projection_dim": 12} if tower == "clip" else {})}
    torch.manual_seed(0)
    encoder = TextEncoder(tokenizer, embedding_dim=8, tower=tower, architecture=architecture).eval()
    with torch.no_grad():
        embeddings = encoder.encode_text(CAPTIONS)
    assert embeddings.shape == (len(CAPTIONS), 8) and embeddings.dtype == torch.float32
    torch.testing.assert_close(embeddings.norm(dim=1), torch.ones(len(CAPTIONS)))
    # Padding must not change a text's embedding: the same caption alone and in a batch of longer ones.
    with torch.no_grad():
        alone = encoder.encode_text(CAPTIONS[2:3])
    torch.testing.assert_close(alone[0], embeddings[2], atol=1e-5, rtol=1e-5)

    # The checkpoint's text config is plain data; the tower rebuilt from it and the saved tokenizer, with
    # the trained weights loaded, embeds exactly alike.
    save_tokenizer(tokenizer, tmp_path)
    torch.save({"text_config": encoder.checkpoint_config()}, tmp_path / "config.pt")
    config = torch.load(tmp_path / "config.pt", weights_only=True)["text_config"]
    rebuilt = TextEncoder.from_checkpoint_config(config, tmp_path / TOKENIZER_FILE)
    assert rebuilt.tower == tower
    rebuilt.load_state_dict(encoder.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(rebuilt.eval().encode_text(CAPTIONS), embeddings)


def test_rebuild_refuses_a_tokenizer_of_another_vocabulary(tokenizer, tmp_path: Path) -> None:
    config = TextEncoder(tokenizer, embedding_dim=8, architecture=BERT_TINY).checkpoint_config()
    save_tokenizer(train_tokenizer(["just a few words"], vocab_size=60), tmp_path)
    with pytest.raises(ValueError, match="not the one the model was trained with"):
        TextEncoder.from_checkpoint_config(config, tmp_path / TOKENIZER_FILE)


def test_pretrained_bert_tower_loads_from_a_save_pretrained_directory(tokenizer, tmp_path: Path) -> None:
    torch.manual_seed(1)
    saved = BertModel(BertConfig(**BERT_TINY, vocab_size=len(tokenizer)), add_pooling_layer=False).eval()
    saved.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    encoder = TextEncoder(tokenizer, embedding_dim=None, pretrained=str(tmp_path)).eval()
    assert encoder.tower == "bert" and encoder.embedding_dim == BERT_TINY["hidden_size"]
    for name, value in saved.state_dict().items():
        torch.testing.assert_close(encoder.model.state_dict()[name], value)
    # No head: the embedding is the saved model's masked mean of its last hidden states, normalised.
    tokens = encoder.tokenize(CAPTIONS[:2])
    with torch.no_grad():
        hidden = saved(**tokens).last_hidden_state
        mask = tokens["attention_mask"].unsqueeze(-1).float()
        expected = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
        torch.testing.assert_close(encoder.encode_text(CAPTIONS[:2]), expected)


def test_pretrained_clip_text_half_loads_from_a_full_clip_directory(tmp_path: Path) -> None:
    model = tiny_clip_model()
    model.save_pretrained(tmp_path)
    clip_tokenizer = train_tokenizer(CAPTIONS, vocab_size=TINY_TEXT["vocab_size"])
    encoder = TextEncoder(clip_tokenizer, embedding_dim=None, pretrained=str(tmp_path), max_length=16).eval()
    assert encoder.tower == "clip"
    torch.testing.assert_close(encoder.model.text_projection.weight, model.text_projection.weight)
    with torch.no_grad():
        tokens = encoder.tokenize(CAPTIONS[:2])
        projected = model.text_projection(model.text_model(**tokens).pooler_output)
        expected = torch.nn.functional.normalize(projected, dim=-1)
        torch.testing.assert_close(encoder.encode_text(CAPTIONS[:2]), expected)


def test_missing_pretrained_directory_says_what_to_pass(tokenizer, tmp_path: Path) -> None:
    with pytest.raises(WeightsNotFoundError, match=re.escape("text.encoder.pretrained")):
        TextEncoder(tokenizer, pretrained=str(tmp_path / "absent" / "model"))
    # A hub id: offline (fashion_retrieval/offline.py), only the local cache is read, and it is not there.
    with pytest.raises(WeightsNotFoundError, match="not in the local Hugging Face cache"):
        TextEncoder(tokenizer, pretrained="no-such-org/no-such-text-model")


def test_same_key_mask_matches_its_definition() -> None:
    keys = torch.tensor([3, 1, 3, 2])
    expected = torch.tensor([[keys[i] == keys[j] for j in range(4)] for i in range(4)])
    assert torch.equal(same_key_mask(keys), expected)
    assert same_key_mask(keys)[0, 2] and not same_key_mask(keys)[0, 1]


def test_dual_encoder_loss_decreases_on_a_tiny_set(tokenizer) -> None:
    """A few optimiser steps on one batch of six (packshot, caption) pairs bring the symmetric InfoNCE
    down: both towers and the projection heads receive gradients."""
    from fashion_retrieval.losses import InfoNCELoss

    torch.manual_seed(0)
    image = ImageEncoder(TimmBackbone("test_efficientnet", weights="random"), embedding_dim=8)
    text = TextEncoder(tokenizer, embedding_dim=8, architecture=BERT_TINY)
    module = DualEncoderModule(
        image, text, InfoNCELoss(temperature=0.1), lambda groups: torch.optim.Adam(groups)
    )
    batch = {
        "image": uint8_images(len(CAPTIONS), 32, 24),
        "caption": CAPTIONS,
        "caption_key": torch.arange(len(CAPTIONS)),
    }
    optimizer = torch.optim.Adam(module.parameters(), lr=3e-3)
    losses = []
    for _ in range(15):
        loss, size = module.pair_loss(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss))
    assert size == len(CAPTIONS)
    assert losses[-1] < 0.5 * losses[0], losses
    names = {group["name"] for group in module.parameter_groups()}
    assert names == {"head", "backbone", "text"}


def test_dual_encoder_refuses_towers_of_two_dimensions(tokenizer) -> None:
    from fashion_retrieval.losses import InfoNCELoss

    image = ImageEncoder(TimmBackbone("test_efficientnet", weights="random"), embedding_dim=8)
    text = TextEncoder(tokenizer, embedding_dim=16, architecture=BERT_TINY)
    with pytest.raises(ValueError, match="embedding_dim"):
        DualEncoderModule(image, text, InfoNCELoss(), torch.optim.Adam)
