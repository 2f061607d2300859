"""``pretrain`` on tiny data: DINO's and SimCLR's losses fall, a resume continues the step count, MAE runs on
a tiny ViT and refuses a CNN, the exported backbone feeds train, train-adapter and retrieval-eval, and a
wrong-shaped weights file is refused naming it."""

from __future__ import annotations

import functools
import re
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from hydra.errors import InstantiationException
from omegaconf import DictConfig
from PIL import Image
from real_photo_tree import write_real_tree
from safetensors.torch import load_file, save_file
from test_configs import run_config

from fashion_retrieval.data.pretrain import MultiViewDataset, PretrainDataModule
from fashion_retrieval.models.backbones import TimmBackbone
from fashion_retrieval.models.checkpoint import load_encoder
from fashion_retrieval.models.self_supervised import DINOModule, MAEModule, SimCLRModule
from fashion_retrieval.pipelines.context import RunContext
from fashion_retrieval.pipelines.pretrain import (
    BACKBONE_FILE,
    keeps_batchnorm_statistics,
    pretrain,
    pretrain_module,
)
from fashion_retrieval.pipelines.retrieval_eval import retrieval_encoder
from fashion_retrieval.pipelines.train import train
from fashion_retrieval.pipelines.train_adapter import frozen_encoder

TINY_PRETRAIN = ["pretrain.images=[packshots]"]  # 120 images, 15 steps an epoch
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
    return run_config(data, output, *overrides, experiment=experiment)


def state_equal(
    module: torch.nn.Module, state: dict[str, torch.Tensor], parameters_only: bool = False
) -> bool:
    names = dict(module.named_parameters()) if parameters_only else module.state_dict()
    return set(names) <= set(state) and all(torch.equal(names[k].detach().cpu(), state[k]) for k in names)


class StepLosses(pl.Callback):
    """Every training step's loss, in order."""

    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_batch_end(
        self, trainer: pl.Trainer, module: pl.LightningModule, outputs, batch, index
    ) -> None:
        self.losses.append(float(outputs["loss"]))


# 16 packshots in one batch, 60 steps at a high learning rate: the smallest setting where the trend is well
# above the step-to-step noise (about 0.15 here). DINO's teacher is held fixed (momentum 1): its targets are
# then stationary, so the student's loss must fall; with a moving EMA teacher the loss of a tiny set is not
# monotone (a collapse and its undoing by the centring), which would test nothing.
LOSS_SETUPS = {
    "dino": (
        DINOModule,
        {
            "global_crop_size": 64,
            "local_crop_size": 32,
            "n_local_views": 2,
            "hidden_dim": 64,
            "bottleneck_dim": 32,
            "output_dim": 128,
            "momentum_start": 1.0,
            "freeze_last_layer": 0,
        },
        0.95,
    ),
    "simclr": (SimCLRModule, {"crop_size": 64, "min_scale": 0.5, "hidden_dim": 64}, 0.9),
}


@pytest.mark.parametrize("method", sorted(LOSS_SETUPS))
def test_loss_falls_on_a_tiny_set(method: str, tiny_data: Path) -> None:
    module_class, settings, ratio = LOSS_SETUPS[method]
    pl.seed_everything(0)
    backbone = TimmBackbone("test_efficientnet", weights="random")
    module = module_class(backbone, optimizer=functools.partial(torch.optim.AdamW, lr=1e-2), **settings)
    paths = sorted(str(p) for p in (tiny_data / "images" / "products").iterdir())[:16]
    datamodule = PretrainDataModule(paths, module.view_transform(), batch_size=16, seed=0)
    steps = StepLosses()
    trainer = pl.Trainer(
        max_epochs=60,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[steps],
    )
    trainer.fit(module, datamodule=datamodule)
    first, last = np.mean(steps.losses[:10]), np.mean(steps.losses[-10:])
    assert len(steps.losses) == 60
    assert last < ratio * first, (first, last)


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


def batchnorm_statistics(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {
        k: v.clone() for k, v in module.state_dict().items() if k.endswith(("running_mean", "running_var"))
    }


def tiny_dino(keep: bool, tiny_data: Path) -> tuple[DINOModule, dict[str, torch.Tensor]]:
    """Two DINO steps on 8 tiny packshots (seed 0): the module and its backbone's starting BN statistics."""
    pl.seed_everything(0)
    settings = {**LOSS_SETUPS["dino"][1], "global_crop_size": 32, "local_crop_size": 16}
    backbone = TimmBackbone("test_efficientnet", weights="random")
    module = DINOModule(backbone, torch.optim.AdamW, keep_batchnorm_statistics=keep, **settings)
    before = batchnorm_statistics(backbone)
    paths = sorted(str(p) for p in (tiny_data / "images" / "products").iterdir())[:8]
    trainer = pl.Trainer(
        max_steps=2, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False
    )
    trainer.fit(module, datamodule=PretrainDataModule(paths, module.view_transform(), batch_size=4))
    return module, before


@pytest.mark.parametrize("keep", [True, False])
def test_kept_batchnorm_statistics_leave_the_backbones_own(keep: bool, tiny_data: Path) -> None:
    module, before = tiny_dino(keep, tiny_data)
    for trained in (module.backbone, module.exported_backbone()):
        after = batchnorm_statistics(trained)
        unchanged = all(torch.equal(before[k], after[k]) for k in before)
        # Kept: exactly the backbone's own; not kept (the control): the crops' statistics replaced them.
        assert unchanged == keep


def test_kept_statistics_change_only_the_statistics(tiny_data: Path) -> None:
    # Training normalises each batch by its own statistics either way, so the learned parameters are the
    # same: keeping the statistics exports what putting the starting ones back after training would
    # (experiments/pretrain/: the DINO run with ImageNet's statistics put back).
    kept, before = tiny_dino(True, tiny_data)
    replaced, _ = tiny_dino(False, tiny_data)
    kept_state = kept.exported_backbone().state_dict()
    replaced_state = replaced.exported_backbone().state_dict()
    statistics = [k for k in kept_state if k.endswith(("running_mean", "running_var"))]
    assert statistics and any(not torch.equal(kept_state[k], replaced_state[k]) for k in statistics)
    for name, value in kept_state.items():
        if name in statistics:
            assert torch.equal(value, before[name]), name
        elif value.is_floating_point():
            assert torch.allclose(value, replaced_state[name], atol=1e-6), name


def batchnorm_momenta(module: DINOModule) -> set[float | None]:
    return {
        m.momentum for m in module.backbone.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
    }


@pytest.mark.parametrize(
    ("setting", "pretrained", "kept"),
    [("auto", True, True), ("auto", False, False), (False, True, False), (True, False, True)],
)
def test_auto_keeps_the_statistics_of_pretrained_weights_only(
    setting: bool | str,
    pretrained: bool,
    kept: bool,
    tiny_data: Path,
    tmp_path: Path,
    exported_backbone: Path,
) -> None:
    weights = exported_backbone if pretrained else "random"
    cfg = pretrain_cfg(
        tiny_data,
        tmp_path / "run",
        f"model.encoder.backbone.weights={weights}",
        f"pretrain.method.keep_batchnorm_statistics={str(setting).lower()}",
    )
    assert batchnorm_momenta(pretrain_module(cfg)) == ({0.0} if kept else {0.1})


def test_a_misspelt_statistics_setting_is_refused_naming_it() -> None:
    with pytest.raises(ValueError, match="keep_batchnorm_statistics='yes'"):
        keeps_batchnorm_statistics("yes", "random")
