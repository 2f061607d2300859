"""Table of the hard-negative ablation: mean and spread of validation Recall@15 over seeds, per arm.

    python experiments/hardneg/summarise.py outputs/hardneg/ablation

Reads ``<sweep dir>/hardneg/<arm>/seed<N>/metrics.json`` (the layout of the sweep command in README.md).
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

ARMS = (
    "inbatch",
    "same_category",
    "category_balanced",
    "index_mined",
    "memory",
    "combined",
    "mined_same_category",
    "mined_balanced",
    "triplet",
)


def summarise(sweep_dir: Path) -> str:
    lines = [
        "| arm | seeds | Recall@15 mean | std | min | max | per seed (1, 2, 3) | mAP@15 mean |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for arm in ARMS:
        runs = sorted((sweep_dir / "hardneg" / arm).glob("seed*/metrics.json"))
        if not runs:
            continue
        metrics = [json.loads(path.read_text()) for path in runs]
        recall = [m["val/recall@15"] for m in metrics]
        spread = statistics.stdev(recall) if len(recall) > 1 else float("nan")
        lines.append(
            f"| `hardneg/{arm}` | {len(recall)} | {statistics.mean(recall):.4f} | {spread:.4f} "
            f"| {min(recall):.4f} | {max(recall):.4f} | {', '.join(f'{r:.4f}' for r in recall)} "
            f"| {statistics.mean(m['val/map@15'] for m in metrics):.4f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(summarise(Path(sys.argv[1] if len(sys.argv) > 1 else "outputs/hardneg/ablation")))
