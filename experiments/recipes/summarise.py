"""Tables of the fine-tuning recipe comparison: synthetic validation Recall@15 and real-photo precision@10 /
MAP@R per arm and seed (mean +- std), and the WiSE-FT curve.

    python experiments/recipes/summarise.py outputs/recipes

Reads the layout of the commands in README.md: ``<root>/<arm>/seed<N>/metrics.json`` (train) and
``<root>/<arm>/seed<N>/real_photos/metrics.json`` (retrieval-eval); the WiSE-FT blends under
``<root>/wise_ft/<arm>/seed<N>/alpha<A>/{validate,real_photos}/metrics.json``.
"""

from __future__ import annotations

import json
import re
import statistics
import sys
from pathlib import Path

ARMS = ("baseline", "layer_decay", "l2_sp", "distill", "domain_rand")


def read(path: Path) -> dict[str, float]:
    return json.loads(path.read_text()) if path.is_file() else {}


def real_photo(metrics: dict[str, float]) -> tuple[float | None, float | None]:
    """(precision@10, MAP@R) of a retrieval-eval metrics.json (its overall, not per-class, keys)."""
    overall = {
        key.rsplit("/", 1)[1]: v
        for key, v in metrics.items()
        if re.fullmatch(r"retrieval_eval/[^/]+/[^/]+", key)
    }
    return overall.get("precision@10"), overall.get("map@R")


def cell(values: list[float]) -> str:
    if not values:
        return "not run"
    if len(values) == 1:
        return f"{values[0]:.4f} (1 seed)"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def arm_table(root: Path) -> str:
    lines = [
        "| arm | seed | synthetic val Recall@15 | real P@10 | real MAP@R |",
        "|---|---|---|---|---|",
    ]
    summary = ["| arm | seeds | synthetic val Recall@15 | real P@10 | real MAP@R |", "|---|---|---|---|---|"]
    for arm in ARMS:
        recall, precision, map_r = [], [], []
        for run in sorted((root / arm).glob("seed*/")):
            synthetic = read(run / "metrics.json").get("val/recall@15")
            p10, mapr = real_photo(read(run / "real_photos" / "metrics.json"))
            if synthetic is None:
                continue
            lines.append(f"| `recipes/{arm}` | {run.name[4:]} | {synthetic:.4f} | {fmt(p10)} | {fmt(mapr)} |")
            recall.append(synthetic)
            precision += [p10] if p10 is not None else []
            map_r += [mapr] if mapr is not None else []
        if recall:
            summary.append(
                f"| `recipes/{arm}` | {len(recall)} | {cell(recall)} | {cell(precision)} | {cell(map_r)} |"
            )
    return "\n".join(lines) + "\n\n" + "\n".join(summary)


def wise_table(root: Path) -> str:
    lines = [
        "| fine-tuned run | alpha | synthetic val Recall@15 | real P@10 | real MAP@R |",
        "|---|---|---|---|---|",
    ]
    for blend in sorted(
        (root / "wise_ft").glob("*/seed*/alpha*/"), key=lambda p: (p.parent, float(p.name[5:]))
    ):
        synthetic = read(blend / "validate" / "metrics.json").get("val_none/recall@15")
        p10, mapr = real_photo(read(blend / "real_photos" / "metrics.json"))
        if float(blend.name[5:]) == 1.0:  # the fine-tuned checkpoint itself: its own real-photo run
            p10, mapr = real_photo(
                read(root / blend.parent.parent.name / blend.parent.name / "real_photos" / "metrics.json")
            )
        run = f"{blend.parent.parent.name}/{blend.parent.name}"
        lines.append(f"| `{run}` | {blend.name[5:]} | {fmt(synthetic)} | {fmt(p10)} | {fmt(mapr)} |")
    return "\n".join(lines)


if __name__ == "__main__":
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "outputs/recipes")
    frozen = real_photo(read(root / "frozen_lite0" / "metrics.json"))
    print(f"frozen Lite0 (reference): real P@10 {fmt(frozen[0])}, MAP@R {fmt(frozen[1])}\n")
    print(arm_table(root) + "\n\n" + wise_table(root))
