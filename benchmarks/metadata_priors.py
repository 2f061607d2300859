"""Do the URL metadata priors help a retrieval with an untrained scorer? Recall@15 on a synthetic dataset's
test bundles (generator 1.2.0 or later: its URLs carry timestamps and codes).

    fashion-retrieval generate synthetic=tiny synthetic.num_products=2000 synthetic.num_bundles=1500 \\
        paths.data_dir=/tmp/synth_meta
    python benchmarks/metadata_priors.py /tmp/synth_meta

Scorers, each on the whole bundle photo against every product of its section: ``random`` (uniform cosine
scores, three seeds) and ``colour`` (the difficulty check's foreground HSV histogram, cosine). Each one's
first ``--depth`` candidates go through a chain of none, the timestamp prior, the article-prefix bonus, or
both (conf/reranker/timestamp.yaml's and article.yaml's defaults), then the first ``--k`` are scored with
the challenge's Recall@k (hits over ground-truth pairs). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path

import cv2
import numpy as np

from fashion_retrieval.data import catalogue as challenge_format
from fashion_retrieval.data.catalogue import UNKNOWN_SECTION, code_numbers, load_catalogue
from fashion_retrieval.index.eligibility import Eligibility
from fashion_retrieval.index.faiss_index import PAD_SCORE
from fashion_retrieval.rerank.chain import CatalogueMetadata, RerankChain, RerankContext
from fashion_retrieval.rerank.priors import ArticlePrefixBonus, TimestampPrior
from fashion_retrieval.synthetic.difficulty import colour_histogram, packshot_histogram

CHAINS: Mapping[str, list] = {
    "none": [],
    "timestamp": [TimestampPrior()],
    "article": [ArticlePrefixBonus()],
    "timestamp + article": [TimestampPrior(), ArticlePrefixBonus()],
}


def recall(ranked: np.ndarray, truth: list[list[int]]) -> float:
    """The challenge's Recall@k: ground-truth products found in the ``(Q, k)`` lists over all pairs."""
    hits = sum(len(set(row.tolist()) & set(products)) for row, products in zip(ranked, truth))
    return hits / sum(len(products) for products in truth)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir")
    parser.add_argument("--depth", type=int, default=100)
    parser.add_argument("--k", type=int, default=15)
    args = parser.parse_args()
    root = Path(args.data_dir)
    catalogue = load_catalogue(root)
    index = catalogue.product_index()
    truth_of: dict[str, list[int]] = defaultdict(list)
    with open(root / challenge_format.TEST_TRUTH_FILE, newline="", encoding="utf-8") as handle:
        for bundle, product in list(csv.reader(handle))[1:]:
            truth_of[bundle].append(index[product])
    bundles = list(truth_of)
    truth = [truth_of[b] for b in bundles]
    sections = catalogue.bundles.set_index("bundle_asset_id").loc[bundles]["bundle_id_section"].to_numpy()
    known = catalogue.product_sections()
    catalogue_sections = np.array(
        [known.get(p, UNKNOWN_SECTION) for p in catalogue.products["product_asset_id"]]
    )
    eligibility = Eligibility(sections, catalogue_sections)
    allowed = (catalogue_sections[None, :] == sections[:, None]) | (
        catalogue_sections[None, :] == UNKNOWN_SECTION
    )
    context = RerankContext(
        eligibility,
        [str(p) for p in catalogue.bundles.set_index("bundle_asset_id").loc[bundles]["image_path"]],
        catalogue=CatalogueMetadata.from_catalogue(catalogue),
        query_timestamps=catalogue.bundle_timestamps(bundles),
        query_codes=code_numbers(catalogue.bundle_codes(bundles)),
    )

    packshots = np.stack([packshot_histogram(p) for p in catalogue.products["image_path"]])
    photos = np.stack([colour_histogram(cv2.imread(path)) for path in context.query_paths])
    scorers = {f"random (seed {s})": np.random.default_rng(s).uniform(-1, 1, allowed.shape) for s in range(3)}
    scorers["colour histogram"] = photos @ packshots.T
    pairs = sum(map(len, truth))
    print(f"{len(bundles)} test bundles, {pairs} pairs, {len(index)} products, depth {args.depth}\n")
    print("| scorer | " + " | ".join(f"{name} R@{args.k}" for name in CHAINS) + " |")
    print("|---" * (len(CHAINS) + 1) + "|")
    for name, scores in scorers.items():
        scores = np.where(allowed, scores, -np.inf).astype(np.float32)
        top = np.argsort(-scores, axis=1, kind="stable")[:, : args.depth]
        top_scores = np.take_along_axis(scores, top, 1)
        candidates = np.where(np.isfinite(top_scores), top, -1)
        top_scores = np.where(candidates >= 0, top_scores, PAD_SCORE).astype(np.float32)
        row = []
        for steps in CHAINS.values():
            ranked, _ = RerankChain(steps, depth=args.depth)(candidates, top_scores, context)
            row.append(f"{recall(ranked[:, : args.k], truth):.4f}")
        print(f"| {name} | " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
