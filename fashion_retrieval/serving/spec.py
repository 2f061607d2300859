"""What ``serve``'s parent process hands its workers: the :class:`ServiceSpec` (the search config, the
checkpoint, the run directory, the ``serve:`` limits), written as YAML data and named by
``$FASHION_RETRIEVAL_SERVE_SPEC`` (:data:`SPEC_ENV`).

Light on purpose: the parent (the command's process; uvicorn's supervisor with ``serve.workers`` > 1)
composes the config and writes the spec with this module alone, and never imports torch nor the search
stack; each worker loads the run (docs/serving.md "Start-up"; tests/serving/test_serving_start.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from fashion_retrieval.io import read_yaml, write_yaml
from fashion_retrieval.search.run_config import (
    BEST_CHECKPOINT,
    BUILT_SECTIONS,
    check_built_targets,
    load_run_config,
)

# The environment variable naming the service spec a worker process builds its service from.
SPEC_ENV = "FASHION_RETRIEVAL_SERVE_SPEC"
# Command-line keys that configure the service itself, not the run's search.
SERVICE_KEYS = ("run_dir", "serve", "hydra")
# Beside a checkpoint, the tokenizer of a train-text run's text tower (models/text.py TOKENIZER_FILE; named
# here so that a service without text never imports transformers).
TOKENIZER_PATH = Path("checkpoints") / "tokenizer.json"


@dataclass(frozen=True)
class ServiceSpec:
    """Everything a worker process needs to build the same service: the search config, the checkpoint,
    the run directory it came from (``None``: a composed config with ``ckpt_path``), the ``serve:``
    settings (limits) and the ``train-text`` run of its text queries (``None``: none)."""

    config: DictConfig
    checkpoint: Path
    run_dir: Path | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    text_run: Path | None = None

    def save(self, path: Path) -> None:
        """Write as plain YAML (resolved values), read back by :meth:`load`."""
        content = {
            # Hydra's own node describes the job that wrote the spec, not the search.
            "config": OmegaConf.to_container(
                OmegaConf.masked_copy(self.config, [k for k in self.config if k != "hydra"]), resolve=True
            ),
            "checkpoint": str(self.checkpoint),
            "run_dir": None if self.run_dir is None else str(self.run_dir),
            "settings": self.settings,
            "text_run": None if self.text_run is None else str(self.text_run),
        }
        write_yaml(path, content)

    @classmethod
    def load(cls, path: Path) -> ServiceSpec:
        """Read :meth:`save`'s file as data: only classes of this project are built from it."""
        content = read_yaml(path)
        if not isinstance(content, dict) or not isinstance(content.get("config"), dict):
            raise ValueError(f"{path}: not a service spec (a mapping with a 'config' mapping)")  # noqa: TRY004
        config = OmegaConf.create(content["config"])
        for section in BUILT_SECTIONS:
            check_built_targets(OmegaConf.to_container(config.get(section) or {}), f"{path}: {section}")
        run_dir, text_run = content.get("run_dir"), content.get("text_run")
        settings = content.get("settings") or {}
        return cls(
            config,
            Path(content["checkpoint"]),
            None if run_dir is None else Path(run_dir),
            settings,
            None if text_run is None else Path(text_run),
        )


def override_keys(overrides: Sequence[str]) -> list[str]:
    """The config keys named by command-line overrides (``detector=yolo`` -> ``detector``,
    ``+a.b=1`` -> ``a.b``), those of the service itself (``serve.*``, ``run_dir``, ``hydra.*``) left out."""
    keys = []
    for override in overrides:
        key = override.split("=", 1)[0].lstrip("+~")
        if key.split(".", 1)[0] not in SERVICE_KEYS:
            keys.append(key)
    return keys


def service_spec(composed: DictConfig, overrides: Sequence[str]) -> ServiceSpec:
    """What ``serve`` searches with. With ``run_dir``: that run's config (read as data,
    :func:`~fashion_retrieval.search.run_config.load_run_config`) with every key named on the command line
    taken from the composed config (so ``detector=yolo detector.weights=...`` or ``encoder.backend=onnx``
    change the run's search), and its best checkpoint unless ``ckpt_path`` is given. Without: the composed
    config itself, which needs ``ckpt_path`` (and ``index.dir`` for an index built elsewhere). Either
    way ``index.mmap`` follows ``serve.mmap_index`` and the data loaders run in process
    (``data.num_workers=0``)."""
    settings = OmegaConf.to_container(composed.serve, resolve=True) if "serve" in composed else {}
    assert isinstance(settings, dict)
    run_dir = composed.get("run_dir")
    if not run_dir:
        if not composed.get("ckpt_path"):
            raise ValueError("serve needs run_dir=<a run directory>, or ckpt_path=... (and index.dir=...)")
        config, checkpoint = composed, Path(composed.ckpt_path)
    else:
        # Names checked only: this process builds nothing, and each worker checks the spec in full.
        config = load_run_config(run_dir, classes=False)
        for key in override_keys(overrides):
            value = OmegaConf.select(composed, key, throw_on_missing=True)
            if isinstance(value, DictConfig):
                value = OmegaConf.to_container(value, resolve=True)
            OmegaConf.update(config, key, value, merge=False, force_add=True)
        checkpoint = (
            Path(composed.ckpt_path) if composed.get("ckpt_path") else Path(run_dir) / BEST_CHECKPOINT
        )
    OmegaConf.update(config, "index.mmap", bool(settings.get("mmap_index", False)), force_add=True)
    # A dataset bundle's photo is read by the data module's loader: in process, as a DataLoader worker
    # process started per request costs seconds.
    OmegaConf.update(config, "data.num_workers", 0)
    run = None if not run_dir else Path(run_dir)
    return ServiceSpec(config, checkpoint, run, settings, text_run_of(run, settings.get("text_run_dir")))


def text_run_of(run_dir: Path | None, text_run_dir: str | Path | None) -> Path | None:
    """The ``train-text`` run whose towers answer text queries: ``serve.text_run_dir`` when given (it must
    be one), else ``run_dir`` itself when it is one (its checkpoint has a tokenizer beside it), else
    ``None``."""
    if text_run_dir:
        if not (Path(text_run_dir) / TOKENIZER_PATH).is_file():
            raise FileNotFoundError(
                f"serve.text_run_dir={text_run_dir}: no {TOKENIZER_PATH} there; is it a train-text run?"
            )
        return Path(text_run_dir)
    if run_dir is not None and (run_dir / TOKENIZER_PATH).is_file():
        return run_dir
    return None
