"""Issue 16's check on a finished run: the Retriever's lists for the run's test bundles against the
``submission.csv`` that ``infer`` wrote in the run (same products, same order).

Usage: ``python experiments/quickstart/retriever_check.py RUN_DIR``. It loads ``RUN_DIR`` as a service would
(``Retriever.from_run_dir``: its config, ``checkpoints/best.ckpt``, ``index/``; an index that does not match
is rebuilt there, so run it on a copy of a directory that must not change). Exit 0 when every searched test
bundle matches.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pandas as pd

from fashion_retrieval.search.retriever import Retriever


def main(run_dir: Path) -> int:
    start = time.perf_counter()
    retriever = Retriever.from_run_dir(run_dir)
    loaded = time.perf_counter() - start
    bundles = retriever.catalogue.searchable_test_bundle_ids
    start = time.perf_counter()
    results = retriever.search_bundles(bundles)
    searched = time.perf_counter() - start
    pairs = pd.read_csv(run_dir / "submission.csv", dtype=str)
    written = {b: list(rows["product_asset_id"]) for b, rows in pairs.groupby("bundle_asset_id", sort=False)}
    same = sum(written.get(r.query) == [p.product_id for p in r.products] for r in results)
    timings = results[0].timings if results else None
    print(f"run directory: {run_dir}")
    print(f"test bundles in the submission: {len(written)}; searched (with a photo): {len(bundles)}")
    print(f"identical lists (same products, same order): {same} of {len(bundles)}")
    print(f"load {loaded:.1f} s; search_bundles {searched:.1f} s; stage timings of the call: {timings}")
    return 0 if same == len(bundles) and set(bundles) <= set(written) else 1


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
