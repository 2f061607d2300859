"""benchmarks/train_throughput.py: the measuring loop on tiny towers, and the real CPU smoke run (slow)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tiny_models import TINY_TOWER

from fashion_retrieval.models.clip import ClipVisionBackbone
from fashion_retrieval.models.encoder import ImageEncoder

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "train_throughput.py"


@pytest.fixture(scope="module")
def benchmark():
    spec = importlib.util.spec_from_file_location("train_throughput", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def test_symmetric_info_nce_prefers_matching_halves(benchmark):
    torch.manual_seed(0)
    query = torch.nn.functional.normalize(torch.randn(4, 8), dim=1)
    aligned = benchmark.symmetric_info_nce(torch.cat([query, query]))
    shuffled = benchmark.symmetric_info_nce(torch.cat([query, query.roll(1, dims=0)]))
    assert aligned < shuffled


def test_rows_are_printed_and_appended(benchmark, monkeypatch, tmp_path):
    def tiny(channels_last: bool):
        return ImageEncoder(ClipVisionBackbone("random", vision_config=TINY_TOWER), embedding_dim=None)

    monkeypatch.setattr(benchmark, "MODELS", {"tiny_clip": tiny})
    output = tmp_path / "throughput.md"
    argv = ["--models", "tiny_clip", "--device", "cpu", "--batch", "4", "--steps", "2", "--warmup", "1"]
    argv += ["--image-size", "32", "--output", str(output)]
    rows = benchmark.main(argv)
    benchmark.main(argv)
    assert len(rows) == 1 and "| tiny_clip |" in rows[0] and "| fp32 |" in rows[0]
    text = output.read_text()
    assert text.startswith("# Training throughput") and text.count("| tiny_clip |") == 2


def test_odd_batch_is_refused(benchmark):
    with pytest.raises(SystemExit):
        benchmark.parse_args(["--batch", "3"])


@pytest.mark.slow
def test_cpu_smoke_run_of_the_real_towers():
    command = [
        sys.executable,
        str(SCRIPT),
        "--device",
        "cpu",
        "--batch",
        "4",
        "--steps",
        "2",
        "--warmup",
        "1",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "| clip_vit_b32 |" in result.stdout and "| convnext_tiny |" in result.stdout
