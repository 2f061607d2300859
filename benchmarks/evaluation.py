"""Evaluation cost: our metric code against torchmetrics, then ours alone at catalogue scale.

    python benchmarks/evaluation.py compare --queries 2000 --gallery 10000 --dim 128
    python benchmarks/evaluation.py scale --queries 20000 --gallery 200000 --dim 512 \
        --output benchmarks/results/evaluation.md

``compare``: the same random retrieval problem scored two ways, each in its own process (so peak memory is
its own): torchmetrics' retrieval metrics over the full ``Q x G`` score matrix (``preds``/``target``/
``indexes`` flattened, the way its API takes them), and ours (FAISS flat top-k + :mod:`metrics
<fashion_retrieval.evaluation.metrics>` on the ``(Q, k)`` result). Values are cross-checked.

``scale``: a bare FAISS ``IndexFlatIP`` top-15 search against our whole evaluation of the same problem
(:class:`~fashion_retrieval.index.faiss_index.EmbeddingIndex` search, every metric at every cut-off, the
per-category and per-section breakdowns), each in its own process. Goal (issue 5): within 1.5x of the bare
search, peak memory under 4 GB.

The problem: ``G`` unit vectors in ``C`` categories, each query a noisy copy of one to four gallery items
(its relevant items), so hits and misses both occur. Peak memory is the process's maximum resident set
(``ru_maxrss``), which includes the interpreter, the libraries and the data; the table also gives the
resident set once the part's libraries are imported and the data made, before it computes anything.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

KS = (1, 5, 15)
NUM_CATEGORIES = 30
NUM_SECTIONS = 3
QUERY_NOISE = 0.8  # norm of the noise added to a query's anchor item (unit vector)


def make_problem(queries: int, gallery: int, dim: int, seed: int) -> dict[str, np.ndarray]:
    """Random problem: ``gallery (G, D)``, ``queries (Q, D)`` float32 unit rows; CSR truth ``offsets
    (Q + 1,)``/``items (P,)``; ``categories (G,)`` and ``sections (Q,)`` int64 labels."""
    rng = np.random.default_rng(seed)
    # Items of a category share a centre (cosine about 0.5 between them), so near misses exist.
    categories = rng.integers(0, NUM_CATEGORIES, size=gallery)
    centres = rng.standard_normal((NUM_CATEGORIES, dim), dtype=np.float32)
    base = centres[categories] + rng.standard_normal((gallery, dim), dtype=np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    counts = rng.integers(1, 5, size=queries)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    items = np.concatenate([rng.choice(gallery, size=c, replace=False) for c in counts]).astype(np.int64)
    # A query is close to its first relevant item, so only some of the others make the top 15.
    anchor = base[items[offsets[:-1]]]
    noise = rng.standard_normal((queries, dim), dtype=np.float32) * np.float32(QUERY_NOISE / np.sqrt(dim))
    query = anchor + noise
    query /= np.linalg.norm(query, axis=1, keepdims=True)
    return {
        "gallery": base,
        "queries": query.astype(np.float32),
        "offsets": offsets,
        "items": items,
        "categories": categories,
        "sections": rng.integers(0, NUM_SECTIONS, size=queries),
    }


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports kB


def run_bare(problem: dict[str, np.ndarray]) -> dict[str, float]:
    import faiss

    start = time.perf_counter()
    index = faiss.IndexFlatIP(problem["gallery"].shape[1])
    index.add(problem["gallery"])
    index.search(problem["queries"], max(KS))
    return {"seconds": time.perf_counter() - start}


def run_ours(problem: dict[str, np.ndarray]) -> dict[str, float]:
    from fashion_retrieval.evaluation.metrics import GroundTruth, metrics_by_group, retrieval_metrics
    from fashion_retrieval.index.faiss_index import EmbeddingIndex

    start = time.perf_counter()
    gallery = problem["gallery"]
    index = EmbeddingIndex(gallery, [str(i) for i in range(len(gallery))])
    _, topk = index.search(problem["queries"], max(KS))
    truth = GroundTruth(offsets=problem["offsets"], items=problem["items"])
    metrics = retrieval_metrics(topk, truth, KS)
    by_category = metrics_by_group(topk, truth, item_groups=problem["categories"], ks=KS)
    by_section = metrics_by_group(topk, truth, query_groups=problem["sections"], ks=KS)
    seconds = time.perf_counter() - start
    assert len(by_category) == NUM_CATEGORIES and len(by_section) == NUM_SECTIONS
    return {"seconds": seconds, **{f"ours/{name}": value for name, value in metrics.items()}}


def run_torchmetrics(problem: dict[str, np.ndarray]) -> dict[str, float]:
    import torch
    from torchmetrics.retrieval import (
        RetrievalHitRate,
        RetrievalNormalizedDCG,
        RetrievalPrecision,
        RetrievalRecall,
    )

    k = max(KS)
    start = time.perf_counter()
    queries, gallery = torch.from_numpy(problem["queries"]), torch.from_numpy(problem["gallery"])
    num_queries, num_gallery = len(queries), len(gallery)
    preds = (queries @ gallery.T).reshape(-1)
    target = torch.zeros(num_queries * num_gallery, dtype=torch.bool)
    query_of_item = np.repeat(np.arange(num_queries), np.diff(problem["offsets"]))
    target[torch.from_numpy(query_of_item * num_gallery + problem["items"])] = True
    indexes = torch.arange(num_queries).repeat_interleave(num_gallery)
    out: dict[str, float] = {}
    for name, metric in {
        "per_query_recall": RetrievalRecall(top_k=k),
        "hit_rate": RetrievalHitRate(top_k=k),
        "precision": RetrievalPrecision(top_k=k),
        "ndcg": RetrievalNormalizedDCG(top_k=k),
    }.items():
        metric.update(preds, target, indexes=indexes)
        out[f"torchmetrics/{name}@{k}"] = float(metric.compute())
    out["seconds"] = time.perf_counter() - start
    return out


PARTS: dict[str, Callable[[dict[str, np.ndarray]], dict[str, float]]] = {
    "bare": run_bare,
    "ours": run_ours,
    "torchmetrics": run_torchmetrics,
}


IMPORTS = {
    "bare": ("faiss",),
    "ours": ("faiss", "fashion_retrieval.evaluation.metrics", "fashion_retrieval.index.faiss_index"),
    "torchmetrics": ("torch", "torchmetrics.retrieval"),
}


def part_main(args: argparse.Namespace) -> None:
    """One part in this process; prints a JSON line with its figures."""
    for module in IMPORTS[args.part]:
        importlib.import_module(module)
    problem = make_problem(args.queries, args.gallery, args.dim, args.seed)
    before = peak_rss_mb()
    result = PARTS[args.part](problem)
    print(json.dumps({**result, "rss_before_mb": before, "peak_rss_mb": peak_rss_mb()}))


def run_part(part: str, args: argparse.Namespace) -> dict[str, float]:
    command = [sys.executable, __file__, "_part", part]
    command += ["--queries", str(args.queries), "--gallery", str(args.gallery), "--dim", str(args.dim)]
    command += ["--seed", str(args.seed)]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def machine() -> str:
    return f"{platform.node()}, {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}"


def report(args: argparse.Namespace, parts: list[str]) -> str:
    results = {part: run_part(part, args) for part in parts}
    lines = [
        f"### {args.mode}: {args.queries:,} queries x {args.gallery:,} gallery x {args.dim}-d "
        f"({dt.date.today().isoformat()})",
        "",
        f"Command: `python benchmarks/evaluation.py {' '.join(sys.argv[1:])}`; machine: {machine()}; "
        f"load average before: {os.getloadavg()[0]:.2f}.",
        "",
        "| part | seconds | peak RSS (MB) | RSS after imports + data (MB) |",
        "|---|---:|---:|---:|",
    ]
    for part, result in results.items():
        seconds, peak, before = result["seconds"], result["peak_rss_mb"], result["rss_before_mb"]
        lines.append(f"| {part} | {seconds:.2f} | {peak:.0f} | {before:.0f} |")
    base = "bare" if "bare" in results else "torchmetrics"
    lines += ["", f"ours / {base} time: {results['ours']['seconds'] / results[base]['seconds']:.2f}x"]
    if "torchmetrics" in results:
        k = max(KS)
        lines.append("")
        lines.append("| metric | ours | torchmetrics |")
        lines.append("|---|---:|---:|")
        for name in ("per_query_recall", "hit_rate", "precision", "ndcg"):
            ours = results["ours"][f"ours/{name}@{k}"]
            theirs = results["torchmetrics"][f"torchmetrics/{name}@{k}"]
            lines.append(f"| {name}@{k} | {ours:.6f} | {theirs:.6f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("mode", choices=["compare", "scale", "_part"])
    parser.add_argument("part", nargs="?", choices=list(PARTS))
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--gallery", type=int, default=10000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, help="append the Markdown table to this file")
    args = parser.parse_args()
    if args.mode == "_part":
        part_main(args)
        return
    parts = ["torchmetrics", "ours"] if args.mode == "compare" else ["bare", "ours"]
    text = report(args, parts)
    print(text)
    if args.output:
        with args.output.open("a", encoding="utf-8") as handle:
            handle.write(text + "\n")


if __name__ == "__main__":
    main()
