"""CLIP vision tower (Hugging Face ``transformers``) as a backbone: ``(B, 3, H, W) -> (B, projection_dim)``.

Pretrained weights come from a local directory written by ``save_pretrained`` (a full ``CLIPModel`` such
as Fashion-CLIP, or a ``CLIPVisionModelWithProjection``), or from a hub id that is already in the local
Hugging Face cache. The project runs offline, so a hub id that is not cached fails at once with a
:class:`~fashion_retrieval.models.weights.WeightsNotFoundError` that says what to pass instead.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import huggingface_hub
import torch
import transformers
from huggingface_hub import constants as hf_constants
from torch import nn
from transformers import AutoConfig, CLIPConfig, CLIPVisionConfig, CLIPVisionModelWithProjection

from fashion_retrieval.models.normalization import InputNormalization
from fashion_retrieval.models.weights import WeightsNotFoundError, wants_pretrained

log = logging.getLogger(__name__)

# Where a single-tower model config keeps its pretrained reference: what the errors tell users to set.
PRETRAINED_KEY = "model.encoder.backbone.pretrained"
EXAMPLE_PRETRAINED = "/path/to/fashion-clip"

# OpenAI CLIP's preprocessing statistics, used when the model directory has no preprocessor_config.json.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

# The CLIPVisionConfig fields that define the architecture: enough to rebuild it without the weights.
ARCHITECTURE_KEYS = (
    "hidden_size",
    "intermediate_size",
    "projection_dim",
    "num_hidden_layers",
    "num_attention_heads",
    "num_channels",
    "image_size",
    "patch_size",
    "hidden_act",
    "layer_norm_eps",
    "attention_dropout",
    "initializer_range",
    "initializer_factor",
)


def plain(value: Any) -> Any:
    """Mappings -> ``dict`` and sequences -> ``list``, recursively (OmegaConf containers from Hydra)."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [plain(v) for v in value]
    return value


def architecture_dict(config: CLIPVisionConfig) -> dict[str, Any]:
    """The architecture fields of ``config`` as plain values (what a checkpoint stores to rebuild it)."""
    return {key: plain(getattr(config, key)) for key in ARCHITECTURE_KEYS if hasattr(config, key)}


def looks_like_path(reference: str) -> bool:
    """A hub id is ``name`` or ``org/name``; ``/abs``, ``./rel``, ``~/x``, ``a/b/c`` are paths."""
    return reference.startswith(("/", ".", "~")) or reference.count("/") > 1 or Path(reference).exists()


def hub_offline() -> bool:
    """Whether Hugging Face downloads are off (``HF_HUB_OFFLINE``, see :mod:`fashion_retrieval.offline`)."""
    # Read at call time: offline.py may set it after huggingface_hub was imported.
    return bool(hf_constants.HF_HUB_OFFLINE)


def missing_model_error(
    pretrained: str, error: BaseException, key: str = PRETRAINED_KEY
) -> WeightsNotFoundError:
    return WeightsNotFoundError(
        f"cannot load CLIP model {pretrained!r} ({type(error).__name__}: {error}). "
        f"This project runs offline: pass a local directory instead, e.g. {key}={EXAMPLE_PRETRAINED}, "
        "made on a machine with network by "
        f"CLIPModel.from_pretrained({pretrained!r}).save_pretrained({EXAMPLE_PRETRAINED!r}) "
        "(or allow downloads with HF_HUB_OFFLINE=0)"
    )


def check_available(pretrained: str, key: str = PRETRAINED_KEY) -> Path | None:
    """The local directory ``pretrained`` names (``None`` for a hub id); raises the error that says what to
    pass when it is a missing directory, or a hub id absent from the local cache while offline. Cheap: no
    model file is read."""
    local = Path(pretrained).expanduser()
    if local.is_dir():
        return local
    if looks_like_path(pretrained):
        raise missing_model_error(pretrained, FileNotFoundError(f"no such directory: {local}"), key)
    cached = huggingface_hub.try_to_load_from_cache(pretrained, "config.json")
    if hub_offline() and not isinstance(cached, str):
        raise missing_model_error(pretrained, FileNotFoundError("not in the local Hugging Face cache"), key)
    return None


def load_vision_config(pretrained: str, local_files_only: bool) -> CLIPVisionConfig:
    """The vision config of a full ``CLIPModel`` or of a vision-only model, with its ``projection_dim``.

    A ``CLIPModel`` keeps ``projection_dim`` at the top level; its ``vision_config`` carries a default
    (512) that need not match, so the top-level value wins.
    """
    config = AutoConfig.from_pretrained(pretrained, local_files_only=local_files_only)
    if isinstance(config, CLIPConfig):
        vision = config.vision_config
        vision.projection_dim = config.projection_dim
        return vision
    if isinstance(config, CLIPVisionConfig):
        return config
    raise ValueError(f"{pretrained}: a {type(config).__name__}, not a CLIP model")


def read_processor_statistics(pretrained: str, local_files_only: bool) -> tuple[tuple, tuple] | None:
    """``(image_mean, image_std)`` from the model's ``preprocessor_config.json``, or ``None`` if absent."""
    if Path(pretrained).expanduser().is_dir():
        path: Path | None = Path(pretrained).expanduser() / "preprocessor_config.json"
    else:
        try:
            path = Path(
                huggingface_hub.hf_hub_download(
                    pretrained, "preprocessor_config.json", local_files_only=local_files_only
                )
            )
        except Exception:  # not cached, or no such file: the CLIP defaults apply
            path = None
    if path is None or not path.is_file():
        return None
    processor = json.loads(path.read_text())
    if "image_mean" not in processor or "image_std" not in processor:
        return None
    return tuple(processor["image_mean"]), tuple(processor["image_std"])


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' loading report while a full CLIPModel's text tower is (expectedly) skipped."""
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()
    try:
        yield
    finally:
        transformers.logging.set_verbosity(verbosity)


def load_pretrained_tower(pretrained: str) -> CLIPVisionModelWithProjection:
    """Vision tower + visual projection from a local directory or a cached hub id, float32.

    Raises :class:`WeightsNotFoundError` at once (no network retries) when the model is not available.
    """
    local = check_available(pretrained)
    reference = str(local) if local else pretrained
    local_files_only = local is not None or hub_offline()
    try:
        config = load_vision_config(reference, local_files_only)
        with quiet_transformers():
            model, info = CLIPVisionModelWithProjection.from_pretrained(
                reference,
                config=config,
                local_files_only=local_files_only,
                dtype=torch.float32,
                output_loading_info=True,
            )
    except OSError as error:  # no config, or a config without its weights file
        raise missing_model_error(pretrained, error) from error
    if info["missing_keys"] or info["mismatched_keys"]:
        # Random tensors in a "pretrained" model would train silently on noise: refuse.
        raise ValueError(
            f"{pretrained}: weights missing from the checkpoint: "
            f"{sorted(info['missing_keys'])[:5]} {list(info['mismatched_keys'])[:5]}"
        )
    skipped = len(info["unexpected_keys"])
    log.info("loaded CLIP vision tower from %s (%d non-vision tensors skipped)", pretrained, skipped)
    return model


def apply_freeze_policy(model: CLIPVisionModelWithProjection, trainable_blocks: int) -> None:
    """``-1``: train everything; ``0``: freeze the tower; ``N``: train the last N layers + post layer norm.

    The visual projection always trains: it is the head of the CLIP recipe (and of a linear probe).
    """
    layers = model.vision_model.encoder.layers
    if not -1 <= trainable_blocks <= len(layers):
        raise ValueError(f"trainable_blocks must be -1..{len(layers)} for this model, got {trainable_blocks}")
    model.requires_grad_(trainable_blocks < 0)
    if trainable_blocks > 0:
        for layer in layers[len(layers) - trainable_blocks :]:
            layer.requires_grad_(True)
        model.vision_model.post_layernorm.requires_grad_(True)
    model.visual_projection.requires_grad_(True)


class ClipVisionBackbone(nn.Module):
    """CLIP's image tower + visual projection: ``(B, 3, H, W)`` uint8 or float -> ``(B, projection_dim)``.

    Args:
        pretrained: a local directory written by ``save_pretrained`` (full ``CLIPModel`` or
            ``CLIPVisionModelWithProjection``) or a hub id (``patrickjohncyh/fashion-clip``), which must be in
            the local cache when offline; ``random``: random initialisation from ``vision_config`` (by name
            only: ``None`` raises, so a config never trains CLIP from noise without asking).
        vision_config: ``CLIPVisionConfig`` fields for random initialisation (tests, checkpoint reloading);
            ignored when ``pretrained`` is set. ``None`` with no ``pretrained``: ViT-B/32 defaults.
        trainable_blocks: ``-1`` train all; ``0`` freeze the tower (only the projection learns); ``N`` train
            the last N encoder layers, the post layer norm and the projection (the Fashion-CLIP recipe: 4).
        mean, std: input normalisation; ``None`` reads ``image_mean``/``image_std`` from the model's
            ``preprocessor_config.json``, else CLIP's defaults.

    Any input size works (position embeddings are interpolated); ``image_size`` is the pretraining size.
    """

    def __init__(
        self,
        pretrained: str | None = None,
        vision_config: Mapping[str, Any] | None = None,
        trainable_blocks: int = -1,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        statistics = None
        if wants_pretrained(pretrained, "the CLIP tower", PRETRAINED_KEY, EXAMPLE_PRETRAINED):
            self.model = load_pretrained_tower(str(pretrained))
            self.model.train()  # from_pretrained returns eval mode; follow nn.Module's default like the rest
            statistics = read_processor_statistics(str(pretrained), local_files_only=hub_offline())
        else:
            self.model = CLIPVisionModelWithProjection(CLIPVisionConfig(**plain(vision_config or {})))
        default_mean, default_std = statistics or (CLIP_MEAN, CLIP_STD)
        self.mean = tuple(float(x) for x in (default_mean if mean is None else mean))
        self.std = tuple(float(x) for x in (default_std if std is None else std))
        self.normalize = InputNormalization(self.mean, self.std)
        self.trainable_blocks = trainable_blocks
        apply_freeze_policy(self.model, trainable_blocks)
        config = self.model.config
        self.num_features: int = int(config.projection_dim)
        self.image_size: int = int(config.image_size)
        self.native_input_size: tuple[int, int] = (self.image_size, self.image_size)

    @staticmethod
    def check_weights(config: Mapping[str, Any], key: str) -> None:
        """Raise now if a tower built from ``config`` (its ``pretrained`` at ``key``) would start from random
        initialisation without asking, or its model is neither a local directory nor in the offline cache."""
        pretrained = config.get("pretrained")
        if wants_pretrained(pretrained, "the CLIP tower", key, EXAMPLE_PRETRAINED):
            check_available(str(pretrained), key)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` uint8 (0..255) or float (0..1) -> ``(B, projection_dim)`` image embeddings."""
        # Interpolation is a no-op at the pretraining size and lets other (even non-square) sizes through.
        output = self.model(pixel_values=self.normalize(images), interpolate_pos_encoding=True)
        return output.image_embeds

    def head_parameters(self) -> list[nn.Parameter]:
        """The visual projection: it learns at the head's rate although it lives in the backbone."""
        return list(self.model.visual_projection.parameters())

    def checkpoint_config(self) -> dict[str, Any]:
        """What a checkpoint needs to rebuild this backbone without the pretrained directory."""
        return {
            "vision_config": architecture_dict(self.model.config),
            "mean": list(self.mean),
            "std": list(self.std),
        }
