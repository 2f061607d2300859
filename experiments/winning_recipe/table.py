"""The ladder per backbone as Markdown: mean ± sample standard deviation of ``val_yolo/recall@15`` and
``val_yolo/map@15`` over the seeds of each ``<runs>/<backbone tag>/<row>/seed<N>/metrics.json``.

    python experiments/winning_recipe/table.py [outputs/ladder/runs]
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

METRICS = ("val_yolo/recall@15", "val_yolo/map@15")


def mean_std(values: list[float]) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {spread:.3f}"


def table(runs: Path) -> str:
    """One line per (backbone tag, row) that has at least one finished seed."""
    lines = [
        "| backbone | row | Recall@15 | MAP@15 | seeds | per seed (Recall@15) |",
        "|---|---|---|---|---|---|",
    ]
    for tag in sorted(p for p in runs.iterdir() if p.is_dir()):
        for row in sorted(p for p in tag.iterdir() if p.is_dir()):
            found = {}
            for seed in sorted(row.glob("seed*/metrics.json")):
                metrics = json.loads(seed.read_text(encoding="utf-8"))
                if all(name in metrics for name in METRICS):
                    found[seed.parent.name] = metrics
            if not found:
                continue
            columns = [mean_std([m[name] for m in found.values()]) for name in METRICS]
            seeds = ", ".join(f"{s}: {m[METRICS[0]]:.3f}" for s, m in found.items())
            lines.append(
                f"| {tag.name} | {row.name} | {columns[0]} | {columns[1]} | {len(found)} | {seeds} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(Path(sys.argv[1] if len(sys.argv) > 1 else "outputs/ladder/runs")))
