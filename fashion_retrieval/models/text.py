"""Text tower of the dual encoder: a tokenizer and a ``transformers`` text model -> projection -> L2 norm.

Two ways to get one, both offline:

- Trained here: :func:`train_tokenizer` fits a lower-case WordPiece vocabulary on the training captions
  (``tokenizers``) and :class:`TextEncoder` builds a small BERT (``tower: bert``) or CLIP text model
  (``tower: clip``) from an ``architecture`` dict, with random weights.
- Pretrained: ``pretrained`` names a local ``save_pretrained`` directory (a full ``CLIPModel`` such as
  Fashion-CLIP, a ``CLIPTextModel(WithProjection)`` or a ``BertModel``) or a hub id already in the local
  Hugging Face cache; its tokenizer comes from the same place (:func:`pretrained_tokenizer`).

Either way the tokenizer is written as one ``tokenizer.json`` beside the checkpoint (:func:`save_tokenizer`)
and its special tokens go into the checkpoint's text config, so a trained text tower reloads from the run
directory alone (:func:`~fashion_retrieval.models.dual_encoder.load_dual_encoder`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from torch import nn
from transformers import (
    AutoConfig,
    AutoTokenizer,
    BertConfig,
    BertModel,
    CLIPConfig,
    CLIPTextConfig,
    CLIPTextModelWithProjection,
    PreTrainedTokenizerFast,
)

from fashion_retrieval.io import atomic_open
from fashion_retrieval.models.clip import check_available, hub_offline, plain, quiet_transformers
from fashion_retrieval.models.heads import ProjectionHead

log = logging.getLogger(__name__)

TOKENIZER_FILE = "tokenizer.json"
# What the errors tell users to set for a pretrained text tower.
PRETRAINED_KEY = "text.encoder.pretrained"
# The special tokens of a tokenizer trained here (BERT's names: the TemplateProcessing below uses them).
SPECIAL_TOKENS = {"pad_token": "[PAD]", "unk_token": "[UNK]", "cls_token": "[CLS]", "sep_token": "[SEP]"}

Tower = Literal["bert", "clip"]


def train_tokenizer(
    texts: Iterable[str], vocab_size: int = 2000, min_frequency: int = 1
) -> PreTrainedTokenizerFast:
    """A lower-case WordPiece tokenizer fitted on ``texts``; encodings are ``[CLS] tokens [SEP]``.

    ``vocab_size`` is an upper bound: a small caption set yields fewer pieces. Deterministic for a given
    list of texts (the trainer counts, it does not sample).
    """
    tokenizer = Tokenizer(models.WordPiece(unk_token=SPECIAL_TOKENS["unk_token"]))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=list(SPECIAL_TOKENS.values())
    )
    tokenizer.train_from_iterator(list(texts), trainer=trainer)
    cls, sep = SPECIAL_TOKENS["cls_token"], SPECIAL_TOKENS["sep_token"]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{cls} $A {sep}",
        special_tokens=[(cls, tokenizer.token_to_id(cls)), (sep, tokenizer.token_to_id(sep))],
    )
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, **SPECIAL_TOKENS)


def special_tokens(tokenizer: PreTrainedTokenizerFast) -> dict[str, str]:
    """The named special tokens of ``tokenizer`` (``pad_token``, ``unk_token``, ...) as plain strings."""
    return {
        name: str(value) for name, value in tokenizer.special_tokens_map.items() if isinstance(value, str)
    }


def save_tokenizer(tokenizer: PreTrainedTokenizerFast, directory: str | Path) -> Path:
    """Write ``tokenizer`` as ``directory/tokenizer.json`` (atomically); returns the file."""
    path = Path(directory) / TOKENIZER_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path) as handle:
        handle.write(tokenizer.backend_tokenizer.to_str())
    return path


def load_tokenizer(path: str | Path, tokens: Mapping[str, str] | None = None) -> PreTrainedTokenizerFast:
    """The tokenizer of a ``tokenizer.json`` file (or of the directory holding one), with ``tokens`` as its
    special tokens (default: those of :func:`train_tokenizer`). Raises ``FileNotFoundError`` or
    ``ValueError`` naming the file."""
    path = Path(path)
    if path.is_dir() or not path.suffix:
        path = path / TOKENIZER_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"tokenizer not found: {path} (train-text writes it beside the checkpoint; copy it with the run)"
        )
    try:
        return PreTrainedTokenizerFast(tokenizer_file=str(path), **dict(tokens or SPECIAL_TOKENS))
    except Exception as error:  # the Rust side reports a bad file as a generic Exception
        raise ValueError(f"{path}: not a readable tokenizer.json ({type(error).__name__}: {error})") from None


def pretrained_tokenizer(pretrained: str) -> PreTrainedTokenizerFast:
    """The fast tokenizer of a local ``save_pretrained`` directory or a cached hub id."""
    local = check_available(pretrained, PRETRAINED_KEY)
    reference = str(local) if local else pretrained
    tokenizer = AutoTokenizer.from_pretrained(reference, local_files_only=local is not None or hub_offline())
    if not isinstance(tokenizer, PreTrainedTokenizerFast):
        raise TypeError(f"{pretrained}: its tokenizer has no fast (tokenizer.json) form")
    return tokenizer


def load_pretrained_text_model(pretrained: str) -> tuple[Tower, nn.Module]:
    """``(tower, model)`` of a local directory or cached hub id: a CLIP text tower with its projection (a
    full ``CLIPModel`` keeps only its text half) or a ``BertModel``; float32, train mode."""
    local = check_available(pretrained, PRETRAINED_KEY)
    reference = str(local) if local else pretrained
    local_files_only = local is not None or hub_offline()
    config = AutoConfig.from_pretrained(reference, local_files_only=local_files_only)
    with quiet_transformers():
        if isinstance(config, CLIPConfig | CLIPTextConfig):
            if isinstance(config, CLIPConfig):
                config.text_config.projection_dim = config.projection_dim
                config = config.text_config
            model: nn.Module = CLIPTextModelWithProjection.from_pretrained(
                reference, config=config, local_files_only=local_files_only, dtype=torch.float32
            )
            tower: Tower = "clip"
        elif isinstance(config, BertConfig):
            model = BertModel.from_pretrained(
                reference, local_files_only=local_files_only, dtype=torch.float32, add_pooling_layer=False
            )
            tower = "bert"
        else:
            raise TypeError(f"{pretrained}: a {type(config).__name__}, not a CLIP or BERT text model")
    log.info("loaded %s text tower from %s", tower, pretrained)
    return tower, model.train()


def build_text_model(
    tower: Tower, architecture: Mapping[str, Any], tokenizer: PreTrainedTokenizerFast
) -> nn.Module:
    """A randomly initialised text model of ``tower`` from ``architecture`` (config fields), its vocabulary
    and special-token ids taken from ``tokenizer``."""
    fields = {
        **plain(dict(architecture)),
        "vocab_size": len(tokenizer),
        "pad_token_id": tokenizer.pad_token_id,
    }
    if tower == "bert":
        return BertModel(BertConfig(**fields), add_pooling_layer=False)
    if tower == "clip":
        # CLIP pools the end-of-text token's state: [SEP] (or the tokenizer's eos) closes every encoding.
        eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id
        bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.cls_token_id
        return CLIPTextModelWithProjection(
            CLIPTextConfig(**{**fields, "eos_token_id": eos, "bos_token_id": bos})
        )
    raise ValueError(f"text tower must be 'bert' or 'clip', got {tower!r}")


def architecture_of(model: nn.Module) -> dict[str, Any]:
    """The config fields of a text model as plain values (no private ``_...`` keys): what a checkpoint
    stores to rebuild it with random weights."""
    fields = model.config.to_dict()
    dropped = {"architectures", "transformers_version", "model_type", "torch_dtype", "dtype"}
    return {k: plain(v) for k, v in fields.items() if not k.startswith("_") and k not in dropped}


class TextEncoder(nn.Module):
    """Texts -> ``(N, embedding_dim)`` float32 L2-normalised embeddings: tokenizer -> text model -> pooled
    state -> :class:`ProjectionHead` (``embedding_dim=None``: none, the pooled state is the embedding) -> L2.

    Pooling: BERT averages its last hidden states over the real tokens (its [CLS] state has no pretraining
    objective when trained here); CLIP uses its own pooled, projected end-of-text state (``text_embeds``),
    so a pretrained CLIP text tower keeps the space its vision tower was trained against.

    Args:
        tokenizer: a fast tokenizer (:func:`train_tokenizer`, :func:`load_tokenizer`,
            :func:`pretrained_tokenizer`).
        embedding_dim: output dimension (the image tower's); ``None``: no projection head.
        tower: ``bert`` | ``clip``, when built from ``architecture`` (ignored with ``pretrained``).
        architecture: config fields (``hidden_size``, ``num_hidden_layers``, ...) for random initialisation;
            the vocabulary size and special-token ids come from ``tokenizer``.
        pretrained: a local ``save_pretrained`` directory or a cached hub id
            (:func:`load_pretrained_text_model`).
        max_length: tokens per text, the special ones included; longer texts are truncated.
        hidden_dim, dropout: of the projection head (an MLP when ``hidden_dim`` is set).
        trainable: ``False`` freezes the text model (the projection head still learns).
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerFast,
        embedding_dim: int | None = 256,
        tower: Tower = "bert",
        architecture: Mapping[str, Any] | None = None,
        pretrained: str | None = None,
        max_length: int = 32,
        hidden_dim: int | None = None,
        dropout: float = 0.0,
        trainable: bool = True,
    ) -> None:
        super().__init__()
        self.tokenizer = tokenizer
        if pretrained:
            self.tower, self.model = load_pretrained_text_model(pretrained)
        else:
            self.tower, self.model = tower, build_text_model(tower, architecture or {}, tokenizer)
        self.pretrained = pretrained
        self.max_length = int(max_length)
        positions = int(self.model.config.max_position_embeddings)
        if self.max_length > positions:
            raise ValueError(f"max_length {max_length} exceeds the text model's {positions} positions")
        self.model.requires_grad_(trainable)
        self.trainable = trainable
        features = self.model.config.projection_dim if self.tower == "clip" else self.model.config.hidden_size
        self.num_features = int(features)
        if embedding_dim is None:
            self.head: nn.Module = nn.Identity()
            self.embedding_dim = self.num_features
        else:
            self.head = ProjectionHead(self.num_features, embedding_dim, hidden_dim, dropout)
            self.embedding_dim = int(embedding_dim)
        self.hidden_dim, self.dropout = hidden_dim, dropout
        self._embedding_dim_argument = embedding_dim

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """``input_ids``, ``attention_mask``: ``(N, L)`` int64, ``L <= max_length``, on the model's device."""
        if isinstance(texts, str):
            raise TypeError("texts must be a list of strings, not one string")
        encoded = self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        device = next(self.model.parameters()).device
        return {key: encoded[key].to(device) for key in ("input_ids", "attention_mask")}

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """``(N, L)`` token ids and mask -> ``(N, embedding_dim)`` float32, L2-normalised."""
        output = self.model(input_ids=input_ids, attention_mask=attention_mask)
        if self.tower == "clip":
            pooled = output.text_embeds
        else:
            mask = attention_mask.unsqueeze(-1).to(output.last_hidden_state.dtype)
            pooled = (output.last_hidden_state * mask).sum(1) / mask.sum(1).clamp_min(1.0)
        return F.normalize(self.head(pooled).float(), dim=-1)

    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        """``texts`` (N strings) -> ``(N, embedding_dim)`` float32, L2-normalised (gradients as the mode
        and ``torch.no_grad`` say)."""
        return self(**self.tokenize(texts))

    def checkpoint_config(self) -> dict[str, Any]:
        """Plain data that rebuilds this tower with random weights (:meth:`from_checkpoint_config`), the
        pretrained reference kept as provenance; the tokenizer itself is saved beside the checkpoint."""
        return {
            "tower": self.tower,
            "architecture": architecture_of(self.model),
            "pretrained": self.pretrained,
            "embedding_dim": self._embedding_dim_argument,
            "max_length": self.max_length,
            "hidden_dim": self.hidden_dim,
            "dropout": self.dropout,
            "trainable": self.trainable,
            "special_tokens": special_tokens(self.tokenizer),
        }

    @classmethod
    def from_checkpoint_config(cls, config: Mapping[str, Any], tokenizer_path: str | Path) -> TextEncoder:
        """The tower :meth:`checkpoint_config` describes, random weights (no pretrained file is read), with
        the tokenizer of ``tokenizer_path``. Only the known fields are read; ``ValueError`` on others."""
        known = {
            "tower",
            "architecture",
            "pretrained",
            "embedding_dim",
            "max_length",
            "hidden_dim",
            "dropout",
        }
        known |= {"trainable", "special_tokens"}
        unknown = sorted(set(config) - known)
        if unknown:
            raise ValueError(f"text_config: unknown field(s) {unknown}")
        tokenizer = load_tokenizer(tokenizer_path, config.get("special_tokens"))
        architecture = dict(config["architecture"])
        vocabulary = architecture.pop("vocab_size", None)
        if vocabulary is not None and vocabulary != len(tokenizer):
            raise ValueError(
                f"{tokenizer_path}: {len(tokenizer)} tokens, but the checkpoint's text model has "
                f"{vocabulary}: "
                "this tokenizer is not the one the model was trained with"
            )
        return cls(
            tokenizer,
            embedding_dim=config.get("embedding_dim"),
            tower=config["tower"],
            architecture=architecture,
            max_length=config.get("max_length", 32),
            hidden_dim=config.get("hidden_dim"),
            dropout=config.get("dropout", 0.0),
            trainable=config.get("trainable", True),
        )
