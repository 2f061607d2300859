"""``export-onnx`` on tiny data: a checked export, ``infer encoder.backend=onnx`` writing the PyTorch
submission, and a refused export that leaves no file."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict
from test_configs import run_config

from fashion_retrieval.index.export import EMBEDDINGS_FILE
from fashion_retrieval.models.checkpoint import checkpoint_encoder_config
from fashion_retrieval.models.onnx_encoder import OnnxExportError, export_encoder_onnx
from fashion_retrieval.pipelines import export_onnx as export_stage
from fashion_retrieval.pipelines.context import RunContext
from fashion_retrieval.pipelines.export_onnx import export_onnx
from fashion_retrieval.pipelines.index import index
from fashion_retrieval.pipelines.infer import infer


def tiny_cfg(data: Path, output: Path, *overrides: str) -> DictConfig:
    return run_config(data, output, *overrides)


@pytest.fixture
def tiny_checkpoint(tiny_data: Path, tmp_path: Path) -> Path:
    """``experiment=tiny``'s encoder with random weights, saved as ``train`` saves one (no training).

    Its batch-norm statistics are those of the catalogue: with random ones every embedding is nearly the
    same vector (mean cosine 0.9999), so rankings would be ties that any rounding reorders."""
    cfg = tiny_cfg(tiny_data, tmp_path / "run")
    config = OmegaConf.to_container(cfg.model.encoder, resolve=True)
    torch.manual_seed(0)
    encoder = instantiate(config).train()
    datamodule = instantiate(cfg.data)
    datamodule.setup()
    with torch.no_grad():
        for module in encoder.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.reset_running_stats()
                module.momentum = None  # a plain average over the batches
        for batch in datamodule.catalogue_dataloader():
            encoder(batch["image"])
    checkpoint = {
        "state_dict": {f"encoder.{k}": v for k, v in encoder.state_dict().items()},
        "encoder_config": checkpoint_encoder_config(config, encoder),
    }
    path = tmp_path / "best.ckpt"
    torch.save(checkpoint, path)
    return path


def test_export_passes_parity_and_infer_on_onnx_writes_the_pytorch_submission(
    tiny_data: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    cfg = tiny_cfg(tiny_data, run, f"ckpt_path={tiny_checkpoint}")
    metrics = export_onnx(cfg, RunContext(output_dir=run))
    assert metrics["onnx/min_cosine"] >= 0.999 and metrics["onnx/same_top15"] >= 0.99
    assert metrics["onnx/num_bundles"] > 0 and metrics["onnx/num_compared"] > 0
    sidecar = json.loads((run / "encoder.json").read_text())
    assert sidecar["parity"] == metrics and sidecar["image_sizes"]["query"] == [96, 64]
    infer(cfg, RunContext(output_dir=run))
    onnx_cfg = tiny_cfg(
        tiny_data,
        run,
        f"ckpt_path={tiny_checkpoint}",
        "encoder.backend=onnx",
        f"encoder.onnx_path={run / 'encoder.onnx'}",
        f"infer.submission_path={run / 'submission_onnx.csv'}",
    )
    infer(onnx_cfg, RunContext(output_dir=run))
    assert (run / "submission_onnx.csv").read_text() == (run / "submission.csv").read_text()
    # `index` on ONNX: through Lightning predict into the feature cache, as with PyTorch.
    with open_dict(onnx_cfg):
        onnx_cfg.index.dir = str(run / "index_onnx")
    index(onnx_cfg, RunContext(output_dir=run))
    torch_rows = np.load(run / "index" / EMBEDDINGS_FILE)["embeddings"]
    np.testing.assert_allclose(
        np.load(run / "index_onnx" / EMBEDDINGS_FILE)["embeddings"], torch_rows, atol=1e-5
    )


def test_an_export_that_differs_from_pytorch_is_refused_and_leaves_no_file(
    tiny_data: Path, tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def export_another_model(encoder: torch.nn.Module, path: Path, sample_size) -> None:
        other = copy.deepcopy(encoder)
        with torch.no_grad():
            for parameter in other.head.parameters():
                parameter.add_(torch.randn_like(parameter))
        export_encoder_onnx(other, path, sample_size)

    monkeypatch.setattr(export_stage, "export_encoder_onnx", export_another_model)
    run = tmp_path / "run"
    cfg = tiny_cfg(tiny_data, run, f"ckpt_path={tiny_checkpoint}")
    with pytest.raises(OnnxExportError, match=r"encoder\.onnx: not written, .*min cosine -?\d\.\d+ < 0\.999"):
        export_onnx(cfg, RunContext(output_dir=run))
    assert not any(path.name.startswith(("encoder.", ".encoder.")) for path in run.iterdir())
