"""``pretrain`` on tiny data: DINO's and SimCLR's losses fall, a resume continues the step count, MAE runs on
a tiny ViT and refuses a CNN, the exported backbone feeds train, train-adapter and retrieval-eval, and a
wrong-shaped weights file is refused naming it."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.errors import InstantiationException
from omegaconf import DictConfig, open_dict
from PIL import Image
from real_photo_tree import write_real_tree
from safetensors.torch import load_file, save_file
from test_configs import compose_config
from test_distill import epoch_losses

from fashion_retrieval.data.pretrain import MultiViewDataset
from fashion_retrieval.models.backbones import TimmBackbone
from fashion_retrieval.models.checkpoint import load_encoder
from fashion_retrieval.models.self_supervised import MAEModule
from fashion_retrieval.pipelines.context import RunContext
from fashion_retrieval.pipelines.pretrain import BACKBONE_FILE, pretrain
from fashion_retrieval.pipelines.retrieval_eval import retrieval_encoder
from fashion_retrieval.pipelines.train import train
from fashion_retrieval.pipelines.train_adapter import frozen_encoder

# Packshots only (120 images, 15 steps an epoch): the smallest set that gives the loss a trend.
TINY_PRETRAIN = ["pretrain.images=[packshots]", "pretrain.optimizer.lr=1e-3"]
TINY_VIT = [
    "method=mae",
    "model.encoder.backbone.model_name=test_vit",
    "pretrain.method.decoder_dim=32",
    "pretrain.method.decoder_depth=1",
    "pretrain.method.decoder_num_heads=2",
    "pretrain.batch_size=4",
]


def pretrain_cfg(
    data: Path, output: Path, *overrides: str, experiment: str = "pretrain_dino_tiny"
) -> DictConfig:
    cfg = compose_config(
        [
            f"experiment={experiment}",
            f"paths.data_dir={data}",
            f"paths.log_dir={output.parent / 'logs'}",
            *overrides,
        ],
        output_dir=str(output),
    )
    with open_dict(cfg):
        del cfg["hydra"]  # as in a real job: ${hydra:...} reads the HydraConfig singleton
    return cfg


def state_equal(
    module: torch.nn.Module, state: dict[str, torch.Tensor], parameters_only: bool = False
) -> bool:
    names = dict(module.named_parameters()) if parameters_only else module.state_dict()
    return set(names) <= set(state) and all(torch.equal(names[k].detach().cpu(), state[k]) for k in names)


# experiment=pretrain_dino_tiny sets DINO's crops and head; the other methods start from experiment=tiny.
SIMCLR_TINY = [
    "method=simclr",
    "pretrain.batch_size=8",
    "pretrain.method.crop_size=64",
    "pretrain.method.hidden_dim=64",
]


@pytest.mark.parametrize(("experiment", "method"), [("pretrain_dino_tiny", []), ("tiny", SIMCLR_TINY)])
def test_loss_falls_over_epochs_on_a_tiny_set(
    experiment: str, method: list[str], tiny_data: Path, tmp_path: Path
) -> None:
    overrides = [*method, *TINY_PRETRAIN, "trainer.max_epochs=4"]
    run = tmp_path / "run"
    cfg = pretrain_cfg(tiny_data, run, *overrides, experiment=experiment)
    metrics = pretrain(cfg, RunContext(output_dir=run))
    losses = epoch_losses(run)
    assert metrics["pretrain/epochs"] == 4 and len(losses) == 4
    # Fixed seed: the last epoch's mean loss clearly under the first's (a real trend, not step noise).
    assert losses[-1] < 0.9 * losses[0], losses
    assert (run / BACKBONE_FILE).is_file()


def test_resume_continues_the_step_count(tiny_data: Path, tmp_path: Path) -> None:
    first = tmp_path / "first"
    one = pretrain(pretrain_cfg(tiny_data, first, *TINY_PRETRAIN), RunContext(output_dir=first))
    steps = one["pretrain/steps"]
    assert steps > 0
    last = first / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(last, map_location="cpu", weights_only=True)
    assert (
        checkpoint["global_step"] == steps
        and checkpoint["backbone_config"]["model_name"] == "test_efficientnet"
    )
    second = tmp_path / "second"
    resumed = pretrain(
        pretrain_cfg(tiny_data, second, *TINY_PRETRAIN, "trainer.max_epochs=2", f"ckpt_path={last}"),
        RunContext(output_dir=second),
    )
    assert resumed["pretrain/steps"] == 2 * steps
    assert resumed["pretrain/epochs"] == 2


def test_mae_runs_a_step_on_a_tiny_vit(tiny_data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    cfg = pretrain_cfg(tiny_data, run, *TINY_PRETRAIN, *TINY_VIT, "+trainer.max_steps=1", experiment="tiny")
    metrics = pretrain(cfg, RunContext(output_dir=run))
    assert metrics["pretrain/steps"] == 1
    assert np.isfinite(metrics["pretrain/loss"])
    exported = load_file(str(run / BACKBONE_FILE))
    assert "pos_embed" in exported  # the ViT's own names, as TimmBackbone loads them


def test_mae_refuses_a_cnn() -> None:
    backbone = TimmBackbone("test_efficientnet", weights="random")
    with pytest.raises(TypeError, match=r"method=mae needs a ViT backbone.*method=dino or method=simclr"):
        MAEModule(backbone, optimizer=torch.optim.AdamW)


def test_views_are_a_function_of_the_item_key(tmp_path: Path) -> None:
    path = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 30, 3), dtype=np.uint8)).save(path)

    def transform(image: Image.Image) -> list[torch.Tensor]:
        return [torch.rand(3, 2, 2), torch.rand(3, 2, 2)]

    dataset = MultiViewDataset([str(path)], transform, seed=3)
    first = dataset[(0, 1)]["views"]
    torch.manual_seed(123)  # the global state a worker happens to have does not matter
    again = dataset[(0, 1)]["views"]
    other_epoch = dataset[(0, 2)]["views"]
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not torch.equal(first[0], other_epoch[0])
    assert first[0].dtype == torch.uint8 and not torch.equal(first[0], first[1])


@pytest.fixture(scope="module")
def exported_backbone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A backbone.safetensors as `pretrain` writes it: test_efficientnet's state, another random draw
    than the one `weights=random` would give."""
    torch.manual_seed(7)
    backbone = TimmBackbone("test_efficientnet", weights="random")
    path = tmp_path_factory.mktemp("pretrained") / BACKBONE_FILE
    save_file({k: v.contiguous() for k, v in backbone.model.state_dict().items()}, str(path))
    return path


def downstream_cfg(data: Path, output: Path, weights: Path, *overrides: str) -> DictConfig:
    return pretrain_cfg(
        data, output, f"model.encoder.backbone.weights={weights}", *overrides, experiment="tiny"
    )


def test_train_fine_tunes_from_the_exported_backbone(
    tiny_data: Path, tmp_path: Path, exported_backbone: Path
):
    # No learning: the trained checkpoint's backbone parameters are then the loaded ones exactly.
    cfg = downstream_cfg(
        tiny_data,
        tmp_path,
        exported_backbone,
        "model.optimizer.lr=0",
        "model.backbone_lr=0",
        "model.scheduler=null",
    )
    train(cfg, RunContext(output_dir=tmp_path))
    encoder = load_encoder(tmp_path / "checkpoints" / "best.ckpt")
    assert state_equal(encoder.backbone.model, load_file(str(exported_backbone)), parameters_only=True)


def test_train_adapter_and_retrieval_eval_load_the_exported_backbone(
    tiny_data: Path, tmp_path: Path, exported_backbone: Path
) -> None:
    state = load_file(str(exported_backbone))
    cfg = downstream_cfg(tiny_data, tmp_path, exported_backbone, "reader=clothing_small")
    assert state_equal(frozen_encoder(cfg).backbone.model, state)
    photo_encoder, source = retrieval_encoder(cfg, RunContext(output_dir=tmp_path))
    assert photo_encoder.method == "backbone_features" and "pretrained backbone" in source
    assert state_equal(photo_encoder.encoder.backbone.model, state)
    # The random draw differs: equality above is the file's doing.
    assert not state_equal(TimmBackbone("test_efficientnet", weights="random").model, state)


def test_a_wrong_shaped_weights_file_is_refused_naming_it(
    tiny_data: Path, tmp_path: Path, exported_backbone: Path
):
    state = load_file(str(exported_backbone))
    name = next(k for k, v in state.items() if v.ndim == 4)
    state[name] = torch.zeros(1, *state[name].shape[1:])
    wrong = tmp_path / "wrong.safetensors"
    save_file(state, str(wrong))
    cfg = downstream_cfg(tiny_data, tmp_path, wrong)
    with pytest.raises(
        (ValueError, InstantiationException),
        match=rf"{re.escape(str(wrong))}: shape mismatch for \['{re.escape(name)}'\]",
    ):
        frozen_encoder(cfg)


def test_the_quickstart_experiment_runs_on_a_reader_tree(tmp_path: Path) -> None:
    root = write_real_tree(tmp_path / "clothing")
    run = tmp_path / "run"
    cfg = pretrain_cfg(
        tmp_path / "unused",
        run,
        f"reader.root={root}",
        "model.encoder.backbone.model_name=test_efficientnet",
        "model.encoder.backbone.weights=random",
        "model.encoder.backbone.frozen_prefixes=[]",
        "pretrain.batch_size=4",
        "data.num_workers=0",
        "debug=fdr",
        experiment="pretrain_dino_quickstart",
    )
    metrics = pretrain(cfg, RunContext(output_dir=run))
    assert metrics["pretrain/images"] == 9  # the train split's 3 photos x 3 classes, nothing else
    assert metrics["pretrain/steps"] == 1
