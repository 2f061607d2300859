"""Tables of the fine-tuning recipe comparison: synthetic validation Recall@15 and real-photo precision@10 /
MAP@R per arm and seed (mean +- std), the WiSE-FT curve, and whether a row meets both goals.

    python experiments/recipes/summarise.py outputs/recipes --reference /work/main/outputs/quickstart_issue14

Reads the layout of ``run_arms.sh`` (and of the commands in README.md): ``<root>/<arm>/seed<N>/metrics.json``
(train) and ``<root>/<arm>/seed<N>/real_photos/metrics.json`` (retrieval-eval); the WiSE-FT blends under
``<root>/wise_ft/<arm>/seed<N>/alpha<A>/{validate,real_photos}/metrics.json`` (alpha 1 is the fine-tuned run
itself, read from its own directories). ``--reference``: a quickstart run directory on the same data, whose
fine-tuned ``val/recall@15`` and frozen-backbone real-photo row (``real/baseline/pretrained/...``) are the two
goals; ``<root>/frozen_lite0/metrics.json`` (``retrieval-eval`` without ``ckpt_path``) overrides the latter.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
from dataclasses import dataclass
from pathlib import Path

ARMS = ("baseline", "bn_stats", "l2_sp", "distill", "distill_strong", "layer_decay", "domain_rand")
# Arms that train on the real-photo gallery (issue 14, section 3): a table of their own, whose real-photo
# figures are not transfer, so no goal is judged there.
IN_DOMAIN_ARMS = ("in_domain_collage",)


@dataclass(frozen=True)
class Row:
    """One scored checkpoint: synthetic validation Recall@15, real-photo precision@10 and MAP@R."""

    recall: float | None
    precision: float | None
    map_r: float | None


@dataclass(frozen=True)
class Goals:
    """The two thresholds: the quickstart's synthetic Recall@15 and the frozen backbone's real MAP@R."""

    recall: float | None
    map_r: float | None

    def met(self, row: Row) -> str:
        """``yes`` / ``no`` for a row, ``-`` when a threshold or a figure is missing."""
        if None in (self.recall, self.map_r, row.recall, row.map_r):
            return "-"
        return "yes" if row.recall >= self.recall and row.map_r >= self.map_r else "no"


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


def trained_row(run: Path) -> Row:
    """A training run directory and its ``real_photos/`` retrieval-eval."""
    real = real_photo(read(run / "real_photos" / "metrics.json"))
    return Row(read(run / "metrics.json").get("val/recall@15"), *real)


def reference(root: Path, run: Path | None) -> tuple[Goals, Row]:
    """The goals and the frozen backbone's row (no synthetic figure), from ``run`` / ``root/frozen_lite0``."""
    metrics = read(run / "metrics.json") if run is not None else {}
    if run is not None and not metrics:
        raise FileNotFoundError(f"--reference {run}: no metrics.json there")
    frozen = real_photo(read(root / "frozen_lite0" / "metrics.json"))
    if frozen == (None, None):
        row = "real/baseline/pretrained/clothing_small"
        frozen = metrics.get(f"{row}/precision@10"), metrics.get(f"{row}/map@R")
    return Goals(metrics.get("val/recall@15"), frozen[1]), Row(None, *frozen)


def cell(values: list[float]) -> str:
    if not values:
        return "not run"
    if len(values) == 1:
        return f"{values[0]:.4f} (1 seed)"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def present(values: list[float | None]) -> list[float]:
    return [v for v in values if v is not None]


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def arm_table(root: Path, goals: Goals, arms: tuple[str, ...] = ARMS) -> str:
    lines = [
        "| arm | seed | synthetic val Recall@15 | real P@10 | real MAP@R | both goals |",
        "|---|---|---|---|---|---|",
    ]
    summary = ["| arm | seeds | synthetic val Recall@15 | real P@10 | real MAP@R |", "|---|---|---|---|---|"]
    for arm in arms:
        rows = [(run.name[4:], trained_row(run)) for run in sorted((root / arm).glob("seed*/"))]
        rows = [(seed, row) for seed, row in rows if row.recall is not None]
        for seed, row in rows:
            lines.append(
                f"| `recipes/{arm}` | {seed} | {fmt(row.recall)} | {fmt(row.precision)} | {fmt(row.map_r)} "
                f"| {goals.met(row)} |"
            )
        if not rows:
            lines.append(f"| `recipes/{arm}` | - | not run | not run | not run | - |")
            continue
        cells = [cell(present([getattr(r, f) for _, r in rows])) for f in ("recall", "precision", "map_r")]
        summary.append(f"| `recipes/{arm}` | {len(rows)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n\n" + "\n".join(summary)


def wise_table(root: Path, goals: Goals) -> str:
    lines = [
        "| fine-tuned run | alpha | synthetic val Recall@15 | real P@10 | real MAP@R | both goals |",
        "|---|---|---|---|---|---|",
    ]
    for seed_dir in sorted((root / "wise_ft").glob("*/seed*/")):
        arm = seed_dir.parent.name
        curve = {float(blend.name[5:]): blend for blend in seed_dir.glob("alpha*/")}
        rows = {
            alpha: Row(
                read(blend / "validate" / "metrics.json").get("val_none/recall@15"),
                *real_photo(read(blend / "real_photos" / "metrics.json")),
            )
            for alpha, blend in curve.items()
        }
        # Alpha 1 is the fine-tuned checkpoint itself: training's best validation and its own real photos.
        rows.setdefault(1.0, trained_row(root / arm / seed_dir.name))
        for alpha in sorted(rows):
            row = rows[alpha]
            lines.append(
                f"| `{arm}/{seed_dir.name}` | {alpha:g} | {fmt(row.recall)} | {fmt(row.precision)} "
                f"| {fmt(row.map_r)} | {goals.met(row)} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", nargs="?", type=Path, default=Path("outputs/recipes"))
    parser.add_argument("--reference", type=Path, help="a quickstart run directory on the same data")
    args = parser.parse_args()
    goals, frozen = reference(args.root, args.reference)
    print(
        f"goals: synthetic val Recall@15 >= {fmt(goals.recall)} (the quickstart's), real MAP@R >= "
        f"{fmt(goals.map_r)} (frozen Lite0; its P@10 {fmt(frozen.precision)})\n"
    )
    print(arm_table(args.root, goals) + "\n\n" + wise_table(args.root, goals))
    print("\nin-domain arms (train on the real-photo gallery: not transfer, no goal judged)\n")
    print(arm_table(args.root, Goals(None, None), IN_DOMAIN_ARMS))


if __name__ == "__main__":
    main()
