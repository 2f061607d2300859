"""Every config composes, and every ``_target_`` names a real class or function."""

from __future__ import annotations

import functools
import inspect
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.utils import get_object
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict

from fashion_retrieval.cli import config_dir
from fashion_retrieval.runs.trainer_config import check_trainer_config

EXPERIMENT_DIR = config_dir() / "experiment"
# Nested files are experiment families: `experiment=hardneg/memory`.
EXPERIMENTS = sorted(
    str(p.relative_to(EXPERIMENT_DIR).with_suffix("")) for p in EXPERIMENT_DIR.rglob("*.yaml")
)
# Experiments that train on a reader's dataset (data=reader); tests/test_reader_training.py runs each on
# files fabricated in its reader's layout, the other experiments run on the tiny synthetic data.
READER_EXPERIMENTS = [
    name for name in EXPERIMENTS if "override /data: reader" in (EXPERIMENT_DIR / f"{name}.yaml").read_text()
]


def compose_config(
    overrides: list[str], output_dir: str = "/tmp/fashion-retrieval-config-test"
) -> DictConfig:
    """Compose like the CLI does, with the Hydra runtime set so every interpolation resolves
    (``paths.output_dir`` becomes ``output_dir``)."""
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides, return_hydra_config=True)
    OmegaConf.set_readonly(cfg.hydra, False)
    cfg.hydra.runtime.output_dir = str(output_dir)
    HydraConfig.instance().set_config(cfg)
    # Fails on any broken interpolation outside Hydra's own node (resolved at run time by Hydra).
    OmegaConf.to_container(OmegaConf.masked_copy(cfg, [key for key in cfg if key != "hydra"]), resolve=True)
    return cfg


def job_config(overrides: list[str], output_dir: str = "/tmp/fashion-retrieval-config-test") -> DictConfig:
    """:func:`compose_config` as a stage receives it: without the ``hydra`` node, whose ``${hydra:...}``
    interpolations read the HydraConfig singleton instead, as in a real job."""
    cfg = compose_config(overrides, output_dir)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


def run_config(data: Path, output: Path, *overrides: str, experiment: str = "tiny") -> DictConfig:
    """:func:`job_config` of ``experiment`` on the data of ``data``, run in ``output`` with the logs (feature
    caches, real-photo collages) beside it in ``output.parent / "logs"``."""
    return job_config(
        [
            f"experiment={experiment}",
            f"paths.data_dir={data}",
            f"paths.log_dir={output.parent / 'logs'}",
            *overrides,
        ],
        output_dir=str(output),
    )


def targets(node, path="") -> list[tuple[str, str]]:
    found = []
    if isinstance(node, DictConfig):
        for key in node:
            if key == "hydra":
                continue
            value = node._get_node(key)
            if key == "_target_":
                found.append((path, node[key]))
            elif isinstance(value, (DictConfig, ListConfig)):
                found += targets(value, f"{path}.{key}")
    elif isinstance(node, ListConfig):
        for i, value in enumerate(node):
            found += targets(value, f"{path}[{i}]")
    return found


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_composes_and_targets_exist(experiment):
    cfg = compose_config([f"experiment={experiment}"])
    assert cfg.run_name == experiment
    check_trainer_config(OmegaConf.to_container(cfg.trainer, resolve=True))  # the early check passes
    for path, target in targets(cfg):
        assert get_object(target) is not None, f"{experiment}: {path}._target_={target}"


def test_every_group_option_composes():
    groups = (
        "model",
        "logger",
        "trainer",
        "callbacks",
        "synthetic",
        "data",
        "loss",
        "miner",
        "sampler",
        "debug",
        "detector",
        "index",
        "reranker",
        "reader",
        "adapter",
        "text",
    )
    for group in groups:
        for option in sorted(p.stem for p in (config_dir() / group).glob("*.yaml")):
            cfg = compose_config([f"{group}={option}"])
            for path, target in targets(cfg):
                assert get_object(target) is not None, f"{group}={option}: {path}._target_={target}"


def test_options_of_one_group_combine():
    cfg = compose_config(["miner=[same_category,index_mined,memory]", "callbacks=[default,ema]"])
    assert cfg.data.same_category_negatives > 0 and cfg.data.mined_negatives > 0
    assert cfg.model.memory_size > 0
    assert {"hard_negative_miner", "ema", "retrieval_evaluator"} <= set(cfg.callbacks)


def test_each_experiment_has_a_ledger_entry():
    """``experiment=NAME`` is recorded in ``experiments/NAME/README.md``; a family ``FAMILY/NAME`` in
    ``experiments/FAMILY/README.md``, which must name it."""
    ledger = Path(__file__).resolve().parents[1] / "experiments"

    def recorded(name: str) -> bool:
        family, _, member = name.partition("/")
        readme = ledger / family / "README.md"
        return readme.is_file() and (not member or f"{name}" in readme.read_text())

    missing = [name for name in EXPERIMENTS if not recorded(name)]
    assert not missing, f"experiments without experiments/<name>/README.md: {missing}"


def test_data_paths_follow_the_synthetic_spec():
    cfg = compose_config(["experiment=tiny"])
    assert "mean" not in cfg.data, "normalisation belongs to the model, not the data pipeline"
    assert cfg.paths.data_dir.endswith("data/synthetic_tiny")


def test_trainer_check_names_every_key_of_the_wrong_type():
    from fashion_retrieval.runs.trainer_config import TrainerConfigError

    check_trainer_config({"max_epochs": 3, "gradient_clip_val": 0.5, "fast_dev_run": True, "devices": "auto"})
    with pytest.raises(TrainerConfigError) as caught:
        check_trainer_config({"max_epochs": True, "limit_val_batches": "half", "enable_progress_bar": 1})
    message = str(caught.value)
    assert "trainer.max_epochs: expected an integer, got True" in message
    assert "trainer.limit_val_batches: expected a number" in message
    assert "trainer.enable_progress_bar: expected true or false, got 1" in message


def test_documented_dict_overrides_compose_and_reach_the_slot_settings():
    # The CLI's override syntax, as docs/reranking.md shows it; {} defaults rejected new keys (struct).
    from fashion_retrieval.search.bundles import slot_settings

    cfg = compose_config(["retrieval.category_caps={DRESS: 3, SHOES: 2}", "retrieval.label_weights={top: 2}"])
    settings = slot_settings(cfg)
    assert dict(settings.category_caps) == {"DRESS": 3, "SHOES": 2}
    assert dict(settings.label_weights) == {"top": 2}
    default = slot_settings(compose_config([]))
    assert dict(default.category_caps) == {} and dict(default.label_weights) == {}


MODELS = sorted(p.stem for p in (config_dir() / "model").glob("*.yaml"))
# Experiments the docs pair with another model= (docs/training.md: quickstart model=convnext_tiny;
# docs/adapters.md: winning_recipe with Lite2 or ensemble_lite; issue 16: tiny model=fashion_clip).
# Experiments that tune one backbone's internals (frozen block names, CLIP's trainable_blocks) are for the
# model they select (docs/configs.md "Experiments and models").
MODEL_AGNOSTIC_EXPERIMENTS = ["quickstart", "tiny", "winning_recipe"]
# Keys of an instantiated node that are Hydra's, not the target's arguments.
HYDRA_KEYS = {"_target_", "_partial_", "_recursive_", "_convert_", "_args_"}


def unexpected_arguments(node, path: str = "model") -> list[str]:
    """``path.key`` of every key some ``_target_`` under ``node`` does not accept (its signature, no
    instantiation: no weights are loaded or downloaded)."""
    found = []
    if isinstance(node, DictConfig):
        if "_target_" in node:
            parameters = inspect.signature(get_object(node._target_)).parameters
            if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
                found += [f"{path}.{key}" for key in node if key not in HYDRA_KEYS and key not in parameters]
        for key in node:
            found += unexpected_arguments(node._get_node(key), f"{path}.{key}")
    elif isinstance(node, ListConfig):
        for i, value in enumerate(node):
            found += unexpected_arguments(value, f"{path}[{i}]")
    return found


def test_the_argument_check_finds_a_backbone_key_of_another_class():
    # Issue 16's failure: timm keys written into a CLIP backbone (unexpected keyword argument 'model_name').
    cfg = compose_config(["model=fashion_clip", "+model.encoder.backbone.model_name=test_efficientnet"])
    assert unexpected_arguments(cfg.model) == ["model.encoder.backbone.model_name"]


@functools.cache
def model_encoder(model: str) -> dict:
    return OmegaConf.to_container(compose_config([f"model={model}"]).model.encoder)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("experiment", MODEL_AGNOSTIC_EXPERIMENTS)
def test_experiment_composes_with_every_model(experiment, model):
    cfg = compose_config([f"experiment={experiment}", f"model={model}"])
    # The experiment leaves the encoder to model=, and every key reaches an argument of its class.
    assert OmegaConf.to_container(cfg.model.encoder) == model_encoder(model)
    assert not unexpected_arguments(cfg.model)
