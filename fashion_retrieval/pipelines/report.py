"""``report``: the results table of a run (printed, and written to ``results.md``), or, pointed at a folder
of run directories (a sweep), one row per run (``report.csv``, ``report.md``, ``report.png``)."""

from __future__ import annotations

import logging

from omegaconf import DictConfig

from fashion_retrieval.io import atomic_open
from fashion_retrieval.pipelines.context import RunContext
from fashion_retrieval.pipelines.run_dir import read_metrics
from fashion_retrieval.pipelines.sweep_report import sweep_report

log = logging.getLogger(__name__)

COLUMNS = ("recall@1", "recall@5", "recall@15", "hit_rate@15", "map@15")
ROWS = (
    ("random ranking", "baseline/random/"),
    ("colour histogram", "baseline/colour_histogram/"),
    ("pretrained backbone, not fine-tuned", "baseline/pretrained/"),
    ("fine-tuned", "val/"),
)


def results_table(metrics: dict[str, float]) -> str:
    """Markdown table of validation metrics for each method present in ``metrics``."""
    lines = [
        "| method (validation bundles) | " + " | ".join(COLUMNS) + " |",
        "|---" * (len(COLUMNS) + 1) + "|",
    ]
    for label, prefix in ROWS:
        if f"{prefix}recall@15" not in metrics:
            continue
        cells = [f"{metrics[prefix + c]:.4f}" if prefix + c in metrics else "" for c in COLUMNS]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    baselines = [metrics[p + "recall@15"] for _, p in ROWS[:-1] if p + "recall@15" in metrics]
    if "val/recall@15" in metrics and baselines and max(baselines) > 0:
        lines.append(
            f"\nFine-tuned Recall@15 / best baseline: {metrics['val/recall@15'] / max(baselines):.2f}x"
        )
    if "test/recall@15" in metrics:
        lines.append(f"Submission (test bundles) Recall@15: {metrics['test/recall@15']:.4f}")
    return "\n".join(lines)


def report(cfg: DictConfig, context: RunContext) -> dict[str, float]:
    metric = cfg.report.metric
    sweep_table = sweep_report(context.output_dir, metric)
    if sweep_table is not None:
        print(f"\nSweep ({context.output_dir}), by {metric}:\n{sweep_table}\n", flush=True)
        return {}
    table = results_table(read_metrics(context.output_dir))
    with atomic_open(context.output_dir / "results.md", "w") as handle:
        handle.write(table + "\n")
    print(f"\nResults ({context.output_dir}):\n{table}\n", flush=True)
    return {}
