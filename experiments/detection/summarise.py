"""Table of validation Recall@15 per detector for each retrieval model of the detection experiment.

    python experiments/detection/summarise.py outputs/detection/table

Reads ``<table dir>/<model>/<query mode>/metrics.json``, as written by the ``validate`` commands in
README.md (metrics ``val_<query mode>/recall@15`` ...).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

MODES = {
    "none": "whole image",
    "zones": "body zones (no model)",
    "yolo": "detected crops (YOLO), round robin",
    "yolo_score": "detected crops, score merge",
    "yolo_quota": "detected crops, category quotas",
    "yolo_flip": "detected crops, round robin + flip TTA",
    "yolo_nomask": "detected crops, round robin, no category mask",
    "yolo_whole": "detected crops + whole photo, round robin",
    "yolo_whole_score": "detected crops + whole photo, score merge",
    "zones_whole": "body zones + whole photo, round robin",
    "truth": "ground-truth crops (ceiling), round robin",
    "truth_whole": "ground-truth crops + whole photo, round robin",
}


def summarise(table_dir: Path) -> str:
    models = sorted(path.name for path in table_dir.iterdir() if path.is_dir())
    lines = [
        "| queries | " + " | ".join(f"{m}: R@1 / R@5 / R@15 / mAP@15" for m in models) + " |",
        "|---|" + "---|" * len(models),
    ]
    for mode, label in MODES.items():
        cells = []
        for model in models:
            path = table_dir / model / mode / "metrics.json"
            if not path.is_file():
                cells.append("-")
                continue
            metrics = json.loads(path.read_text())
            cells.append(
                " / ".join(
                    f"{metrics[f'val_{mode}/{name}']:.4f}" for name in ("recall@1", "recall@5", "recall@15")
                )
                + f" / {metrics[f'val_{mode}/map@15']:.4f}"
            )
        lines.append(f"| {label} (`{mode}`) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(summarise(Path(sys.argv[1] if len(sys.argv) > 1 else "outputs/detection/table")))
