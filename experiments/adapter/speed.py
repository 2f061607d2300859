"""Per-epoch time of one residual adapter trained from cached features vs end to end through the frozen
backbone (issue 7 acceptance: the cache at least 20x faster per epoch), same pairs, same batches, one run.

    OMP_NUM_THREADS=1 python experiments/adapter/speed.py --batch-size 224

The backbone is EfficientNet-Lite0's architecture with random weights (timing only), on in-memory uint8
images: a real end-to-end run also decodes and augments JPEGs, so this ratio is a lower bound.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from fashion_retrieval.data.feature_datamodule import FeatureDataModule
from fashion_retrieval.models.adapter_module import FeatureAdapterModule, FrozenFeatureExtractor
from fashion_retrieval.models.backbones import TimmBackbone
from fashion_retrieval.models.encoder import ImageEncoder
from fashion_retrieval.models.heads import ResidualAdapter


class EpochTimer(pl.Callback):
    def __init__(self) -> None:
        self.times: list[float] = []

    def on_train_epoch_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.start = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.times.append(time.perf_counter() - self.start)


def image_batches(features: FeatureDataModule, query_images: torch.Tensor, catalogue_images: torch.Tensor):
    """The feature module's training batches with images in place of features."""
    pairs = features.train_dataloader().dataset

    def load(positions: list[int]) -> dict[str, torch.Tensor]:
        batch = pairs[positions]
        return {
            "query_image": query_images[batch["query_row"]],
            "gallery_image": catalogue_images[batch["gallery_label"]],
            "gallery_label": batch["gallery_label"],
            "query_products": batch["query_products"],
        }

    return DataLoader(range(len(features.train_pairs)), batch_size=features.batch_size, collate_fn=load)


def epoch_seconds(train_loader, dim: int, extractor: FrozenFeatureExtractor | None, epochs: int) -> float:
    torch.manual_seed(0)
    module = FeatureAdapterModule(
        dim, query_head=ResidualAdapter(dim), noise_std=0.02, mixup_probability=0.3, bank_size=256,
        feature_extractor=extractor,
    )  # fmt: skip
    timer = EpochTimer()
    trainer = pl.Trainer(
        max_epochs=epochs, accelerator="cpu", logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0, callbacks=[timer],
    )  # fmt: skip
    trainer.fit(module, train_dataloaders=train_loader)
    return min(timer.times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=224)
    parser.add_argument("--products", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--size", type=int, nargs=2, default=(128, 96), metavar=("H", "W"))
    args = parser.parse_args()
    torch.manual_seed(0)
    encoder = ImageEncoder(TimmBackbone("tf_efficientnet_lite0"), embedding_dim=None, channels_last=True)
    extractor = FrozenFeatureExtractor(encoder, "backbone_features")
    query_images = torch.randint(0, 256, (args.queries, 3, *args.size), dtype=torch.uint8)
    catalogue_images = torch.randint(0, 256, (args.products, 3, *args.size), dtype=torch.uint8)
    start = time.perf_counter()
    query_features = torch.cat([extractor(chunk) for chunk in query_images.split(64)])
    catalogue_features = torch.cat([extractor(chunk) for chunk in catalogue_images.split(64)])
    cache_seconds = time.perf_counter() - start
    rng = np.random.default_rng(0)
    pairs = np.stack([np.arange(args.queries), rng.integers(0, args.products, args.queries)], 1)
    features = FeatureDataModule(
        query_features, pairs, catalogue_features, [0], [[int(pairs[0, 1])]], batch_size=args.batch_size
    )
    dim = query_features.shape[1]
    cached = epoch_seconds(features.train_dataloader(), dim, None, args.epochs)
    image_loader = image_batches(features, query_images, catalogue_images)
    images = epoch_seconds(image_loader, dim, extractor, args.epochs)
    print(
        f"pairs={args.queries} D={dim} batch={args.batch_size} threads={torch.get_num_threads()} "
        f"cache build {cache_seconds:.2f}s; best epoch: cache {cached:.3f}s, images {images:.3f}s, "
        f"ratio {images / cached:.1f}x"
    )


if __name__ == "__main__":
    main()
