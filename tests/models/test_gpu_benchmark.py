"""benchmarks/gpu.py (the GPU check's throughput script): its batch layout, and the CPU smoke run (slow)."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import pytest
import torch

from fashion_retrieval.miners.masks import pair_masks

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu.py"


@pytest.fixture(scope="module")
def gpu_benchmark() -> dict:
    """The script's globals (run as a module named ``gpu_benchmark``, not as ``__main__``)."""
    return runpy.run_path(str(SCRIPT), run_name="gpu_benchmark")


def test_bundle_batch_pairs_each_bundle_with_its_own_product(gpu_benchmark):
    batch = gpu_benchmark["bundle_batch"](3, 8, torch.device("cpu"))
    assert batch["query"].shape == batch["catalogue"].shape == (3, 3, 8, 8)
    assert batch["query"].dtype == torch.uint8
    positive, negative = pair_masks(
        batch["query_products"], batch["query_excluded"], batch["catalogue_label"]
    )
    assert torch.equal(positive, torch.eye(3, dtype=torch.bool))
    assert torch.equal(negative, ~positive)


@pytest.mark.slow
def test_small_cpu_run_measures_every_stage(gpu_benchmark, tmp_path):
    output = tmp_path / "gpu.json"
    results = gpu_benchmark["main"](["--device", "cpu", "--small", "--output", str(output)])
    assert results["errors"] == {}
    assert [row["model"] for row in results["module"]] == list(gpu_benchmark["MODEL_CONFIGS"])
    assert results["adapter"]["dim"] == 1280 and len(results["adapter"]["epochs_images_s"]) == 2
    assert json.loads(output.read_text())["adapter"]["pairs"] == results["adapter"]["pairs"]
