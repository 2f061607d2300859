"""Issue 7's acceptance check: the same adapter trained from the feature cache and end to end through the
frozen backbone (``train-adapter adapter.features=cache|backbone``), in one run, seed by seed: seconds per
epoch and the stage's validation Recall@15 both ways.

    OMP_NUM_THREADS=2 python experiments/adapter/speed.py --epochs 5 --seeds 0 1 2 --lock /path/cpu.lock \\
        --out outputs/adapter_speed -- paths.data_dir=... detector=yolo detector.weights=... [overrides]

Everything after ``--`` goes to both runs of each seed (the data, detector and head settings); the script
adds ``seed``, ``trainer.max_epochs``, ``adapter.features`` and the run directory. It prints a Markdown table
and writes ``<out>/results.json`` (rewritten after every run, with ``uptime`` before and after each).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from fashion_retrieval.evaluation.run_files import read_metrics
from fashion_retrieval.io import atomic_open

SOURCES = ("cache", "backbone")


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def run_stage(run_dir: Path, overrides: list[str], lock: str | None) -> dict[str, float]:
    """One ``fashion-retrieval train-adapter`` in ``run_dir`` (its log beside it); its metrics."""
    command = [sys.executable, "-m", "fashion_retrieval.cli", "train-adapter", *overrides]
    command += [f"hydra.run.dir={run_dir}"]
    if lock:
        command = ["flock", lock, *command]
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(run_dir.with_suffix(".log"), "w") as log:
        subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=True, env=os.environ.copy())
    return read_metrics(run_dir)


def summary(values: list[float]) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {spread:.3f}"


def table(results: list[dict], metric: str) -> str:
    lines = [
        f"| seed | cache s/epoch | backbone s/epoch | ratio | cache {metric} | backbone {metric} |",
        "|---|---|---|---|---|---|",
    ]
    by_seed: dict[int, dict[str, dict]] = {}
    for row in results:
        by_seed.setdefault(row["seed"], {})[row["features"]] = row
    ratios, recalls = [], {s: [] for s in SOURCES}
    for seed, rows in sorted(by_seed.items()):
        if set(rows) != set(SOURCES):
            continue
        cache, backbone = rows["cache"]["metrics"], rows["backbone"]["metrics"]
        fast, slow = cache["adapter/seconds_per_epoch"], backbone["adapter/seconds_per_epoch"]
        ratio = slow / fast
        ratios.append(ratio)
        for source in SOURCES:
            recalls[source].append(rows[source]["metrics"][metric])
        lines.append(
            f"| {seed} | {fast:.2f} | {slow:.1f} | {ratio:.1f}x "
            f"| {cache[metric]:.4f} | {backbone[metric]:.4f} |"
        )
    if ratios:
        lines.append(
            f"| mean ± sd | | | {summary(ratios)} | {summary(recalls['cache'])} "
            f"| {summary(recalls['backbone'])} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("outputs/adapter_speed"))
    parser.add_argument("--lock", help="a flock(1) file taken around each run (a shared machine)")
    parser.add_argument("--metric", default="val_yolo/recall@15")
    parser.add_argument("overrides", nargs="*", help="train-adapter overrides for every run (after --)")
    args = parser.parse_args()
    results: list[dict] = []
    for seed in args.seeds:
        for source in SOURCES:  # cache first: it also writes any missing feature cache entry
            overrides = [*args.overrides, f"seed={seed}", f"trainer.max_epochs={args.epochs}"]
            before, start = uptime(), time.time()
            metrics = run_stage(
                args.out / f"{source}_seed{seed}", [*overrides, f"adapter.features={source}"], args.lock
            )
            results.append(
                {
                    "seed": seed,
                    "features": source,
                    "uptime_before": before,
                    "uptime_after": uptime(),
                    "wall_seconds": time.time() - start,
                    "metrics": {k: v for k, v in metrics.items() if "/category/" not in k},
                }
            )
            with atomic_open(args.out / "results.json", "w") as handle:
                json.dump(
                    {"epochs": args.epochs, "overrides": args.overrides, "runs": results}, handle, indent=2
                )
            seconds, recall = metrics.get("adapter/seconds_per_epoch"), metrics.get(args.metric)
            print(f"seed {seed} {source}: {seconds} s/epoch, {args.metric} {recall}", flush=True)
    print(table(results, args.metric))


if __name__ == "__main__":
    main()
