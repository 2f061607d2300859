"""Index types at catalogue scale: recall@15 against exact search versus queries per second and build time.

    python benchmarks/index_types.py --items 1000000 --dim 512 --queries 1000 \
        --output benchmarks/results/index_types.md
    python benchmarks/index_types.py --items 20000 --dim 64 --queries 200   # smoke test, seconds

Every index is built by the project's own specs (:mod:`fashion_retrieval.index.factory`, the classes behind
``conf/index/``): IVF types train on their seeded sample (``train_size``) and then add every vector. For
each build the search-time parameter (``nprobe``, ``ef_search``) is swept without rebuilding.
``recall@15 vs flat`` is the share of the exact top 15 (``flat``) that the index also returns in its top 15,
averaged over queries; QPS is queries / search seconds for the whole query batch (FAISS uses every core).

The vectors: ``items`` unit vectors around ``clusters`` random centres (``spread`` 1: cosine about 0.5
within a cluster, a stand-in for embeddings of product families; a larger ``spread`` blurs the clusters;
``clusters`` 0: no structure at all, the worst case) and ``queries`` noisy copies of random items. Real
embeddings cluster too, but how much decides IVF's recall at a given ``nprobe``: re-measure on real
embeddings before trusting a setting.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import importlib.util
import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np

if importlib.util.find_spec("fashion_retrieval") is None:  # run from a checkout that is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fashion_retrieval.index.factory import (
    FlatSpec,
    HNSWSpec,
    IndexSpec,
    IVFFlatSpec,
    IVFPQSpec,
    create_index,
)

K = 15
CHUNK = 100_000


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix


def make_vectors(
    items: int, dim: int, queries: int, clusters: int, spread: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(items, dim)`` and ``(queries, dim)`` float32 unit rows (see the module docstring); ``clusters=0``:
    isotropic Gaussian items, no structure at all (the worst case for IVF and HNSW)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(clusters, 1), dim), dtype=np.float32) / np.float32(spread)
    if clusters == 0:
        centres[:] = 0
    gallery = np.empty((items, dim), dtype=np.float32)
    for start in range(0, items, CHUNK):  # chunks keep the temporary copies small
        stop = min(start + CHUNK, items)
        chunk = centres[rng.integers(0, max(clusters, 1), size=stop - start)]
        chunk += rng.standard_normal(chunk.shape, dtype=np.float32)
        gallery[start:stop] = unit_rows(chunk)
    anchors = gallery[rng.choice(items, size=queries, replace=False)]
    noise = rng.standard_normal(anchors.shape, dtype=np.float32) * np.float32(0.5 / np.sqrt(dim))
    return gallery, unit_rows(anchors + noise)


def build(spec: IndexSpec, gallery: np.ndarray) -> tuple[object, float]:
    """A CPU index of ``spec`` holding ``gallery``, and its build seconds (training included)."""
    start = time.perf_counter()
    index = create_index(spec, gallery.shape[1])
    sample = spec.training_sample(gallery)
    if len(sample):
        index.train(sample)
    for begin in range(0, len(gallery), CHUNK):
        index.add(gallery[begin : begin + CHUNK])
    return index, time.perf_counter() - start


def search(index: object, queries: np.ndarray) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    _, found = index.search(queries, K)
    return found, time.perf_counter() - start


def overlap(found: np.ndarray, exact: np.ndarray) -> float:
    """Mean share of each exact top-``K`` row found in the same row of ``found``."""
    return float(np.mean([np.intersect1d(a, b).size / K for a, b in zip(found, exact, strict=True)]))


# (build spec, search-time values of its search field); specs follow conf/index/ with sizes for 1M items.
def configurations(items: int, nlist: int | None) -> list[tuple[IndexSpec, list[int]]]:
    if nlist is None:
        nlist = 1024 if items >= 200_000 else max(16, int(4 * np.sqrt(items)) // 16 * 16)
    return [
        (IVFFlatSpec(nlist=nlist, nprobe=1, device="cpu"), [1, 2, 4, 8, 16, 32, 64]),
        (IVFPQSpec(nlist=nlist, nprobe=1, m=64, nbits=8, device="cpu"), [8, 16, 64]),
        (HNSWSpec(M=16, ef_construction=64, ef_search=16, device="cpu"), [16, 32, 64, 128]),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--clusters", type=int, default=2000, help="0: no clusters (isotropic Gaussian)")
    parser.add_argument(
        "--spread", type=float, default=1.0, help="noise / centre scale within a cluster (1: cosine ~0.5)"
    )
    parser.add_argument("--nlist", type=int, help="IVF cells (default: 1024 from 200k items)")
    parser.add_argument("--skip", nargs="*", default=[], help="index types not to build, e.g. hnsw")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, help="append the Markdown table to this file")
    args = parser.parse_args()

    gallery, queries = make_vectors(args.items, args.dim, args.queries, args.clusters, args.spread, args.seed)
    load = os.getloadavg()[0]
    flat, flat_build = build(FlatSpec(device="cpu"), gallery)
    exact, flat_seconds = search(flat, queries)
    del flat
    flat_qps = len(queries) / flat_seconds
    rows = [f"| flat | - | {flat_build:.1f} | {flat_qps:,.0f} | 1.00x | 1.0000 |"]
    print(rows[0], flush=True)
    for spec, values in configurations(args.items, args.nlist):
        if spec.index_type in args.skip:
            continue
        index, seconds = build(spec, gallery)
        field = spec.search_fields[0]
        for value in values:
            tuned = dataclasses.replace(spec, **{field: value})
            tuned.configure(index)
            found, search_seconds = search(index, queries)
            qps = len(queries) / search_seconds
            params = ", ".join(f"{k}={v}" for k, v in tuned.params().items() if k not in ("seed",))
            row = (
                f"| {spec.index_type} | {params} | {seconds:.1f} | {qps:,.0f} | {qps / flat_qps:.1f}x | "
                f"{overlap(found, exact):.4f} |"
            )
            rows.append(row)
            print(row, flush=True)
        del index
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    lines = [
        f"### {args.items:,} items x {args.dim}-d, {args.queries:,} queries, {args.clusters:,} clusters "
        f"(spread {args.spread}) "
        f"({dt.date.today().isoformat()})",
        "",
        f"Command: `python benchmarks/index_types.py {' '.join(sys.argv[1:])}`; machine: {platform.node()}, "
        f"{os.cpu_count()} CPUs; load average at start {load:.2f}; peak RSS {peak:.1f} GB.",
        "",
        "| index | parameters | build s | QPS | QPS vs flat | recall@15 vs flat |",
        "|---|---|---:|---:|---:|---:|",
        *rows,
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.output:
        with args.output.open("a", encoding="utf-8") as handle:
            handle.write(text + "\n")


if __name__ == "__main__":
    main()
