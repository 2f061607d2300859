"""The data path on this machine: DataLoader workers x torch threads, for training and catalogue embedding.

    OMP_NUM_THREADS=1 python benchmarks/data_path.py --data-dir data/synthetic_quickstart \
        --output benchmarks/results/data_path.md

(``OMP_NUM_THREADS`` only sets the starting count: every arm sets its own with ``torch.set_num_threads``.)

The quickstart's model and data settings (``experiment=quickstart``: EfficientNet-Lite0, 12 bundles per
batch with their packshots, augmentation on) on an already generated dataset:

- **train**: steps/s of ``--steps`` training steps (the module's contrastive loss, backward, AdamW) read
  from the data module's train loader, after ``--warmup`` steps (which include starting the workers);
- **embed**: catalogue packshots/s of ``embed_loader`` over the first ``--embed-items`` products of the
  gallery loader, what the exporter and ``index`` do.

Every arm (workers in ``--workers``, threads in ``--threads``) is measured ``--repeats`` times, the arms
interleaved (each repeat visits them in a rotated order), so that load from other jobs on a shared
machine hits every arm alike; the table gives medians and the spread (min-max).

With ``--export-checkpoint``, the export at the end of ``fit`` too: embedding the whole catalogue with that
checkpoint's encoder (no workers, the machine rule's threads) against what reusing the best validation's
embeddings costs instead (the weights' digest, :func:`~fashion_retrieval.features.fingerprint.module_digest`).

A last part measures, on one thread and without workers, what the machine rule
(:mod:`fashion_retrieval.machine`) takes as input: the seconds of loading per second of compute of one
batch (``load / compute``), loading timed alone over the loader and compute timed alone on the same batches
held in memory.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import os
import platform
import statistics
import sys
import time
from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import Any

import torch

if importlib.util.find_spec("fashion_retrieval") is None:  # run from a checkout that is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

import fashion_retrieval  # noqa: F401 - offline defaults before timm is imported
from fashion_retrieval.cli import config_dir
from fashion_retrieval.features.fingerprint import module_digest
from fashion_retrieval.io import atomic_open
from fashion_retrieval.machine import data_path_rule, register_resolvers, usable_cores
from fashion_retrieval.models.checkpoint import load_encoder
from fashion_retrieval.models.inference import embed_loader

HEADER = (
    "# Data path: DataLoader workers x torch threads\n\n"
    "Measured by `benchmarks/data_path.py` (one section per run, appended). train: steps/s of the "
    "quickstart's training step (EfficientNet-Lite0, 12 bundles + their packshots, augmentation) fed by "
    "the data module's train loader; embed: catalogue packshots/s through `embed_loader` (what the "
    "exporter and `index` run). Medians of interleaved repeats, (min-max) beside them.\n"
)


def compose_quickstart(data_dir: Path, output_dir: Path) -> DictConfig:
    """The quickstart's config on ``data_dir``, with the Hydra runtime set so every interpolation resolves."""
    register_resolvers()
    overrides = ["experiment=quickstart", f"paths.data_dir={data_dir}", "logger=none"]
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides, return_hydra_config=True)
    OmegaConf.set_readonly(cfg.hydra, False)
    cfg.hydra.runtime.output_dir = str(output_dir)
    HydraConfig.instance().set_config(cfg)
    return cfg


class Bench:
    """The quickstart's data module (one per worker count) and a fresh model per measurement."""

    def __init__(self, cfg: DictConfig) -> None:
        self.cfg = cfg
        self.datamodules: dict[int, Any] = {}

    def datamodule(self, workers: int) -> Any:
        if workers not in self.datamodules:
            module = instantiate(self.cfg.data, num_workers=workers, _convert_="all")
            module.setup("fit")
            self.datamodules[workers] = module
        return self.datamodules[workers]

    def model(self) -> tuple[Any, torch.optim.Optimizer]:
        torch.manual_seed(0)
        cfg = self.cfg
        module = instantiate(cfg.model, loss=instantiate(cfg.loss, _convert_="all"), _convert_="all")
        # Plain AdamW over the trainable weights: the module's own optimiser wants a Trainer for its schedule,
        # and the optimiser step is the same work whichever loader feeds it.
        optimizer = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=1e-4)
        return module, optimizer


def train_steps(module: Any, optimizer: torch.optim.Optimizer, batches: Iterable[dict]) -> int:
    module.train()
    count = 0
    for batch in batches:
        loss, _, _ = module.batch_loss(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        count += 1
    return count


def timed(run: Any) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def measure_train(bench: Bench, workers: int, warmup: int, steps: int) -> float:
    """Steps/s of ``steps`` training steps after ``warmup`` (the loader's workers start in the warm-up)."""
    module, optimizer = bench.model()
    batches: Iterator[dict] = iter(bench.datamodule(workers).train_dataloader())
    train_steps(module, optimizer, islice(batches, warmup))
    seconds = timed(lambda: train_steps(module, optimizer, islice(batches, steps)))
    return steps / seconds  # the iterator, and its workers, end with this call


def embed_subset(bench: Bench, workers: int, items: int) -> torch.utils.data.DataLoader:
    loader = bench.datamodule(workers).catalogue_dataloader()
    subset = torch.utils.data.Subset(loader.dataset, range(min(items, len(loader.dataset))))
    return torch.utils.data.DataLoader(
        _Reindexed(subset), batch_size=loader.batch_size, shuffle=False, num_workers=workers
    )


class _Reindexed(torch.utils.data.Dataset):
    """A prefix of an image dataset, ``index`` fields within it (``embed_loader`` places rows by them)."""

    def __init__(self, subset: torch.utils.data.Subset) -> None:
        self.subset = subset

    def __len__(self) -> int:
        return len(self.subset)

    def __getitem__(self, index: int) -> dict:
        return {**self.subset[index], "index": index}


def measure_embed(bench: Bench, workers: int, items: int) -> float:
    """Packshots/s of ``embed_loader`` over the first ``items`` catalogue images."""
    module, _ = bench.model()
    module.eval()
    loader = embed_subset(bench, workers, items)
    seconds = timed(lambda: embed_loader(module, loader))
    return len(loader.dataset) / seconds


def measure_split(bench: Bench, warmup: int, steps: int, items: int) -> dict[str, float]:
    """On the current thread count, without workers: seconds of loading per second of compute, for a
    training batch (``train``) and an embedding batch (``embed``)."""
    loader = bench.datamodule(0).train_dataloader()
    iterator = iter(loader)
    list(islice(iterator, warmup))
    held: list[dict] = []
    load = timed(lambda: held.extend(islice(iterator, steps)))
    module, optimizer = bench.model()
    train_steps(module, optimizer, held[:1])
    compute = timed(lambda: train_steps(module, optimizer, held))
    ratios = {"train": load / compute}
    gallery = embed_subset(bench, 0, items)
    batches: list[dict] = []
    load = timed(lambda: batches.extend(gallery))
    module.eval()
    with torch.no_grad():
        compute = timed(lambda: [module(batch["image"]) for batch in batches])
    ratios["embed"] = load / compute
    return ratios


def measure_export(bench: Bench, checkpoint: Path, repeats: int) -> dict[str, list[float]]:
    """Seconds to embed the whole catalogue with ``checkpoint``'s encoder, and to digest its weights."""
    encoder = load_encoder(checkpoint)
    loader = bench.datamodule(0).catalogue_dataloader()
    seconds: dict[str, list[float]] = {"embed": [], "digest": []}
    for _ in range(repeats):
        seconds["embed"].append(timed(lambda: embed_loader(encoder, loader)))
        seconds["digest"].append(timed(lambda: module_digest(encoder)))
    return seconds


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.3g} ({min(values):.3g}-{max(values):.3g})"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", type=Path, default=Path("data/synthetic_quickstart"))
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=3, help="training steps before timing")
    parser.add_argument("--steps", type=int, default=12, help="timed training steps")
    parser.add_argument("--embed-items", type=int, default=768, help="catalogue images embedded per arm")
    parser.add_argument(
        "--export-checkpoint", type=Path, help="a best.ckpt of the quickstart: time the export"
    )
    parser.add_argument("--output", type=Path, help="append the results to this Markdown file")
    args = parser.parse_args(argv)

    # The export runs with the threads the machine rule gives (torch's own 2 on the 2-core machine).
    default_threads = data_path_rule(usable_cores(), "cpu", "embed").threads
    bench = Bench(compose_quickstart(args.data_dir.resolve(), Path("/tmp/data_path_bench")))
    arms = [(w, t) for t in args.threads for w in args.workers]
    train: dict[tuple[int, int], list[float]] = {arm: [] for arm in arms}
    embed: dict[tuple[int, int], list[float]] = {arm: [] for arm in arms}
    ratios: dict[str, list[float]] = {"train": [], "embed": []}
    load_before = os.getloadavg()[0]
    started = dt.datetime.now(dt.timezone.utc)
    for repeat in range(args.repeats):
        shift = repeat % len(arms)
        for workers, threads in arms[shift:] + arms[:shift]:
            torch.set_num_threads(threads)
            train[workers, threads].append(measure_train(bench, workers, args.warmup, args.steps))
            embed[workers, threads].append(measure_embed(bench, workers, args.embed_items))
            steps_s, images_s = train[workers, threads][-1], embed[workers, threads][-1]
            arm = f"repeat {repeat} workers {workers} threads {threads}"
            print(f"{arm}: {steps_s:.3f} steps/s, {images_s:.1f} images/s", flush=True)
        torch.set_num_threads(1)
        for kind, ratio in measure_split(bench, args.warmup, args.steps, args.embed_items).items():
            ratios[kind].append(ratio)
        print(f"repeat {repeat} load/compute on 1 thread: {ratios}", flush=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(default_threads)
    export = measure_export(bench, args.export_checkpoint, args.repeats) if args.export_checkpoint else None
    torch.set_num_threads(threads)
    load_after = os.getloadavg()[0]

    best_train = max(statistics.median(v) for v in train.values())
    best_embed = max(statistics.median(v) for v in embed.values())
    command = "python benchmarks/data_path.py " + " ".join(sys.argv[1:] if argv is None else argv)
    lines = [
        f"\n## {started:%Y-%m-%d %H:%M} UTC\n",
        f"`{command}`\n",
        f"Machine: {os.cpu_count()} CPU ({cpu_name()}), {platform.system()} {platform.release()}, torch "
        f"{torch.__version__}; 1-minute load average {load_before:.1f} before, {load_after:.1f} after. "
        f"{args.repeats} repeats; train: {args.warmup} warm-up + {args.steps} timed steps; embed: "
        f"{args.embed_items} packshots.\n",
        "| workers | threads | train steps/s | vs best | embed images/s | vs best |",
        "|---|---|---|---|---|---|",
    ]
    for workers, threads in sorted(arms):
        t, e = train[workers, threads], embed[workers, threads]
        lines.append(
            f"| {workers} | {threads} | {spread(t)} | {statistics.median(t) / best_train:.2f} "
            f"| {spread(e)} | {statistics.median(e) / best_embed:.2f} |"
        )
    lines.append(
        f"\nLoad / compute per batch on 1 thread, no workers (the machine rule's input): train "
        f"{spread(ratios['train'])}, embed {spread(ratios['embed'])}.\n"
    )
    if export is not None:
        size = len(bench.datamodule(0).catalogue_ids)
        lines.append(
            f"Export after fit ({args.export_checkpoint}, {size} catalogue packshots, {default_threads} "
            f"threads, no workers), seconds: embedding the catalogue {spread(export['embed'])}; reusing the "
            f"best validation's embeddings (the weights' digest) {spread(export['digest'])}.\n"
        )
    text = "\n".join(lines)
    print(text)
    if args.output:
        previous = args.output.read_text() if args.output.exists() else HEADER
        with atomic_open(args.output, "w") as handle:
            handle.write(previous + text)


if __name__ == "__main__":
    main()
