"""Memory of a flat FAISS index read into memory against mapped from its file (docs/serving.md).

    OMP_NUM_THREADS=1 python benchmarks/index_mmap.py --items 200000 --dim 256

Each mode runs in its own process: a random ``(items, dim)`` flat inner-product index is written once to
``--path``, then read with FAISS's flags ``0`` (a copy), ``IO_FLAG_MMAP`` and ``IO_FLAG_MMAP_IFC`` (flat
codes mapped); the process's private memory (``RssAnon``) is read before, after reading and after a
top-15 search, and the search's ids are printed so the modes can be compared.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import faiss
import numpy as np

FLAGS = {"read": 0, "mmap": faiss.IO_FLAG_MMAP, "mmap_ifc": faiss.IO_FLAG_MMAP_IFC}


def anonymous_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no RssAnon in /proc/self/status")


def measure(path: Path, mode: str, dim: int) -> None:
    queries = np.random.default_rng(1).standard_normal((8, dim)).astype(np.float32)
    before = anonymous_mib()
    index = faiss.read_index(str(path), FLAGS[mode])
    after_read = anonymous_mib()
    _, ids = index.search(queries, 15)
    print(
        f"| {mode} | {after_read - before:.0f} | {anonymous_mib() - before:.0f} | {ids[0, :5].tolist()} |",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--path", type=Path, default=Path("/tmp/index_mmap_flat.faiss"))
    parser.add_argument("--mode", choices=list(FLAGS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode is not None:
        measure(args.path, args.mode, args.dim)
        return
    if not args.path.is_file():
        vectors = np.random.default_rng(0).standard_normal((args.items, args.dim)).astype(np.float32)
        faiss.normalize_L2(vectors)
        index = faiss.IndexFlatIP(args.dim)
        index.add(vectors)
        faiss.write_index(index, str(args.path))
    print(f"{args.items} x {args.dim} flat index, {args.path.stat().st_size / 2**20:.0f} MiB on disk\n")
    print("| flag | private MiB after read | after a search | first ids |\n|---|---|---|---|", flush=True)
    for mode in FLAGS:
        subprocess.run(
            [sys.executable, __file__, f"--path={args.path}", f"--dim={args.dim}", f"--mode={mode}"],
            check=True,
        )


if __name__ == "__main__":
    main()
