"""``report``: the results table of a run (printed, and written to ``results.md``, with
``recall_curve.png`` and ``retrieval_grid.png`` beside it when the test truth is known), or, pointed at a
folder of run directories (a sweep), one row per run (``report.csv``, ``report.md``, ``report.png``)."""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from fashion_retrieval.data.catalogue import BOXES_FILE, load_catalogue, read_garment_boxes
from fashion_retrieval.evaluation import plots
from fashion_retrieval.evaluation.submission import read_pairs
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


def write_run_pictures(
    output_dir: Path,
    data_dir: str | Path,
    submission_path: str | Path,
    truth_path: str | Path,
    metrics: dict[str, float],
    num_examples: int = 6,
    show_k: int = 8,
) -> list[Path]:
    """``recall_curve.png`` (the submission's recall@k and hit rate@k for every k, the validation figures
    of ``metrics`` as markers) and ``retrieval_grid.png`` (``num_examples`` test bundles spread over the
    truth file: photo with its truth boxes where the dataset has them, first ``show_k`` packshots, hits in
    green) in ``output_dir``. Nothing without a submission and a truth file (the real test truth is hidden)
    or without matplotlib; returns the files written."""
    submission_path, truth_path = Path(submission_path), Path(truth_path)
    if not (submission_path.is_file() and truth_path.is_file()):
        log.info("report: no pictures (needs %s and %s)", submission_path, truth_path)
        return []
    if not plots.matplotlib_available():
        log.info("report: matplotlib is not installed, no pictures")
        return []
    catalogue = load_catalogue(data_dir, image_check="none")
    submission, truth = read_pairs(submission_path, "submission"), read_pairs(truth_path, "truth")
    index = catalogue.product_index()
    foreign = set(submission["product_asset_id"]).union(truth["product_asset_id"]) - set(index)
    if foreign:
        log.warning(
            "report: no pictures: %d product(s) of %s / %s are not in %s (another dataset's run? pass "
            "paths.data_dir=)",
            len(foreign),
            submission_path,
            truth_path,
            data_dir,
        )
        return []
    rankings = plots.Rankings.from_pairs(submission, truth, index)
    curve = rankings.curve()
    validation = {
        f"validation: {label}": {
            int(key.rsplit("@", 1)[1]): value
            for key, value in metrics.items()
            if key.startswith(f"{prefix}recall@") and key.rsplit("@", 1)[1].isdigit()
        }
        for label, prefix in ROWS
    }
    figure = plots.recall_curve(
        {"test submission: recall@k": curve["recall"], "test submission: hit rate@k": curve["hit_rate"]},
        validation,
    )
    written = [plots.save_png(figure, output_dir / plots.CURVE_FILE)]
    photos = dict(zip(catalogue.bundles["bundle_asset_id"], catalogue.bundles["image_path"].astype(str)))
    with_photo = [q for q, bundle in enumerate(rankings.bundle_ids) if bundle in photos]
    rows = [with_photo[i] for i in plots.spread_indices(len(with_photo), num_examples)]
    boxes = None
    if (Path(data_dir) / BOXES_FILE).is_file():
        frame = read_garment_boxes(data_dir)
        boxes = {
            (r.bundle_asset_id, r.product_asset_id): (float(r.x1), float(r.y1), float(r.x2), float(r.y2))
            for r in frame.itertuples(index=False)
        }
    examples = rankings.examples(
        rows,
        photos,
        list(catalogue.products["product_asset_id"]),
        list(catalogue.products["image_path"].astype(str)),
        show_k,
        boxes,
    )
    written.append(plots.save_png(plots.retrieval_grid(examples, show_k), output_dir / plots.GRID_FILE))
    log.info("report: wrote %s", ", ".join(str(p) for p in written))
    return written


def report(cfg: DictConfig, context: RunContext) -> dict[str, float]:
    metric = cfg.report.metric
    sweep_table = sweep_report(context.output_dir, metric)
    if sweep_table is not None:
        print(f"\nSweep ({context.output_dir}), by {metric}:\n{sweep_table}\n", flush=True)
        return {}
    metrics = read_metrics(context.output_dir)
    table = results_table(metrics)
    with atomic_open(context.output_dir / "results.md", "w") as handle:
        handle.write(table + "\n")
    sources = [
        OmegaConf.select(cfg, key)
        for key in ("paths.data_dir", "evaluate.submission_path", "evaluate.truth_path")
    ]
    if None not in sources:  # a bare config (tests, a hand-made one) has no dataset to draw from
        write_run_pictures(context.output_dir, *sources, metrics)
    print(f"\nResults ({context.output_dir}):\n{table}\n", flush=True)
    return {}
