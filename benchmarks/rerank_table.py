"""Table of ``benchmarks/rerank_steps.sh``: validation Recall@k per re-ranking configuration.

python benchmarks/rerank_table.py outputs/rerank/table
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROWS = {
    "none": "no re-ranking",
    "original": "original chain: section + category gate + gated colour bonus",
    "gate_only": "section + category gate",
    "colour_only": "section + colour bonus (gated by the label, no gate step)",
    "colour_ungated": "section + colour bonus on every candidate",
    "original_metadata": "original chain + article prior",
}


def table(directory: Path) -> str:
    lines = ["| re-ranking | R@1 | R@5 | R@15 | mAP@15 |", "|---|---|---|---|---|"]
    for name, label in ROWS.items():
        path = directory / name / "metrics.json"
        if path.is_file():
            metrics = json.loads(path.read_text())
            values = [metrics[f"val_{name}/{m}"] for m in ("recall@1", "recall@5", "recall@15", "map@15")]
            lines.append(f"| {label} (`{name}`) | " + " | ".join(f"{v:.4f}" for v in values) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(Path(sys.argv[1])))
