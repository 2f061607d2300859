"""Throughput of the synthetic dataset generator: products/s, bundles/s, peak memory.

    python benchmarks/generate_throughput.py --products 100000 --bundles 2000 --workers 2

Writes into a temporary directory (removed afterwards) unless --out is given, prints the figures and
appends a row to benchmarks/results/generate_throughput.md with the command, date and machine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import platform
import resource
import shlex
import shutil
import sys
import tempfile
from pathlib import Path

from fashion_retrieval.synthetic import GENERATOR_VERSION, SyntheticSpec, generate_dataset

RESULTS = Path(__file__).resolve().parent / "results" / "generate_throughput.md"
HEADER = (
    "# Synthetic generator throughput\n\n"
    "Measured by `benchmarks/generate_throughput.py` (one row per run, appended). Peak RSS: parent process "
    "and the largest worker (`ru_maxrss` of children). Load: 1-minute load average before and after the run "
    "(the machine may be shared; a load above the core count means the generator did not have the cores to "
    "itself, so its figures are pessimistic).\n\n"
    "| date (UTC) | command | machine | generator | products | bundles | workers | products/s | bundles/s "
    "| total s | peak RSS parent MB | peak RSS worker MB | output MB | load before/after |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _du_mb(path: Path) -> float:
    """Size of the files under ``path`` in MiB."""
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Measure synthetic dataset generation throughput.")
    parser.add_argument("--products", type=int, default=100_000)
    parser.add_argument("--bundles", type=int, default=2_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out", type=Path, default=None, help="output directory (default: a temp dir, removed)"
    )
    parser.add_argument(
        "--results", type=Path, default=RESULTS, help="markdown file the result row is appended to"
    )
    parser.add_argument("--no-record", action="store_true", help="print only, do not append a result row")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    load_before = os.getloadavg()[0]
    out = args.out or Path(tempfile.mkdtemp(prefix="synthetic_bench_"))
    spec = SyntheticSpec(seed=args.seed, num_products=args.products, num_bundles=args.bundles)
    try:
        report = generate_dataset(spec, out, num_workers=args.workers, overwrite=args.out is None)
        output_mb = _du_mb(out)
    finally:
        if args.out is None:
            shutil.rmtree(out, ignore_errors=True)
    # ru_maxrss is in KiB on Linux (bytes on macOS).
    unit = 1 if sys.platform == "darwin" else 1024
    parent_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * unit / 2**20
    worker_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * unit / 2**20
    load_after = os.getloadavg()[0]
    machine = f"{os.cpu_count()} CPU ({_cpu_model()}), {platform.system()} {platform.release()}"
    print(
        f"products: {report.num_products} at {report.products_per_second:.1f}/s | "
        f"bundles: {report.num_bundles} at {report.bundles_per_second:.1f}/s | total {report.seconds:.1f}s | "
        f"peak RSS parent {parent_mb:.0f} MB, worker {worker_mb:.0f} MB | output {output_mb:.0f} MB | "
        f"{machine}"
    )
    if args.no_record:
        return
    command = "python benchmarks/generate_throughput.py " + shlex.join(
        argv if argv is not None else sys.argv[1:]
    )
    now = dt.datetime.now(dt.timezone.utc)
    row = (
        f"| {now:%Y-%m-%d %H:%M} | `{command.strip()}` | {machine} | {GENERATOR_VERSION} "
        f"| {report.num_products} | {report.num_bundles} | {args.workers} "
        f"| {report.products_per_second:.1f} | {report.bundles_per_second:.1f} | {report.seconds:.1f} "
        f"| {parent_mb:.0f} | {worker_mb:.0f} | {output_mb:.0f} | {load_before:.1f} / {load_after:.1f} |\n"
    )
    args.results.parent.mkdir(parents=True, exist_ok=True)
    if not args.results.is_file():
        args.results.write_text(HEADER)
    with open(args.results, "a") as handle:
        handle.write(row)


if __name__ == "__main__":
    main()
