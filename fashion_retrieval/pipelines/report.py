"""``report``: the results table of a run (printed, and written to ``results.md``, with
``recall_curve.png`` and ``retrieval_grid.png`` beside it when the test truth is known), or, pointed at a
folder of run directories (a sweep), one row per run (``report.csv``, ``report.md``, ``report.png``)."""

from __future__ import annotations

import logging
import re
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from fashion_retrieval.data.catalogue import BOXES_FILE, load_catalogue, read_garment_boxes
from fashion_retrieval.evaluation import plots
from fashion_retrieval.evaluation.real_photo_notes import read_notes
from fashion_retrieval.evaluation.run_files import read_metrics
from fashion_retrieval.evaluation.submission import read_pairs
from fashion_retrieval.evaluation.sweep_report import sweep_report
from fashion_retrieval.io import atomic_open
from fashion_retrieval.pipelines.context import RunContext

log = logging.getLogger(__name__)

COLUMNS = ("recall@1", "recall@5", "recall@15", "hit_rate@15", "map@15")
# Real photos (evaluation/real_photos.py): metrics under real/<row prefix>/..., at the backbone's native size.
REAL_COLUMNS = (
    ("real P@10", "clothing_small/precision@10"),
    ("real MAP@R", "clothing_small/map@R"),
    ("real collage R@15", "collage/recall@15"),
)
REAL_COUNTS = ("clothing_small/num_queries", "clothing_small/num_gallery", "collage/num_bundles")
ROWS = (
    ("random ranking", "baseline/random/"),
    ("colour histogram", "baseline/colour_histogram/"),
    ("pretrained backbone, not fine-tuned", "baseline/pretrained/"),
    ("fine-tuned", "val/"),
)
FROZEN = re.compile(r"baseline/frozen_([^/]+)/recall@15")
VALIDATED = re.compile(r"val_([^/]+)/recall@15")


def table_rows(metrics: dict[str, float]) -> list[tuple[str, str]]:
    """``(label, metric prefix)`` of every row present: the fixed rows, a frozen backbone's
    (``baseline.backbones``) after the pretrained one, and ``validate`` / ``train-adapter`` rows last."""
    frozen = [
        (f"{m.group(1)}, frozen backbone, not fine-tuned", f"baseline/frozen_{m.group(1)}/")
        for m in (FROZEN.fullmatch(key) for key in sorted(metrics))
        if m
    ]
    validated = [
        (f"validate / train-adapter ({m.group(1)})", f"val_{m.group(1)}/")
        for m in (VALIDATED.fullmatch(key) for key in sorted(metrics))
        if m
    ]
    rows = [row for row in ROWS[:3] if f"{row[1]}recall@15" in metrics] + frozen
    return rows + [row for row in ROWS[3:] if f"{row[1]}recall@15" in metrics] + validated


def real_cells(metrics: dict[str, float], prefix: str) -> list[str]:
    """The real-photo cells of the row whose synthetic metrics start with ``prefix``: values, ``n/a``
    (the photos were not available: see the notes under the table) or empty (not scored)."""
    real = f"real/{prefix}"
    if metrics.get(f"{real}available") == 0.0:
        return ["n/a"] * len(REAL_COLUMNS)
    return [f"{metrics[real + key]:.4f}" if real + key in metrics else "" for _, key in REAL_COLUMNS]


def real_caption(metrics: dict[str, float]) -> str:
    """What the real-photo columns measured, with the counts of the first scored row."""
    counts = re.compile(r"real/(.+)/clothing_small/num_queries")
    row = next((m.group(1) for m in (counts.fullmatch(key) for key in sorted(metrics)) if m), None)
    if row is None:
        return "Real photos: clothing-dataset-small category retrieval and the collage set's Recall@15"
    value = {key: int(metrics[f"real/{row}/{key}"]) for key in REAL_COUNTS}
    return (
        f"Real photos (clothing-dataset-small, each backbone's native input size unless "
        f"real_photos.image_size): P@10 and MAP@R of {value['clothing_small/num_queries']} test photos among "
        f"{value['clothing_small/num_gallery']} train + validation photos (same class = positive); Recall@15 "
        f"of {value['collage/num_bundles']} collage bundles among those photos as products"
    )


def results_table(metrics: dict[str, float], real_notes: dict[str, str] | None = None) -> str:
    """Markdown table of validation metrics for each method present in ``metrics``, with its real-photo
    scores (``real_notes``: ``{row prefix: why not}`` of rows whose real photos were not available)."""
    rows = table_rows(metrics)
    real_photos = any(key.startswith("real/") for key in metrics)
    headers = list(COLUMNS) + ([label for label, _ in REAL_COLUMNS] if real_photos else [])
    lines = [
        "| method (validation bundles) | " + " | ".join(headers) + " |",
        "|---" * (len(headers) + 1) + "|",
    ]
    for label, prefix in rows:
        cells = [f"{metrics[prefix + c]:.4f}" if prefix + c in metrics else "" for c in COLUMNS]
        if real_photos:
            cells += real_cells(metrics, prefix)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    if "real/retrieval_eval/available" in metrics:
        cells = [""] * len(COLUMNS) + real_cells(metrics, "retrieval_eval/")
        lines.append("| retrieval-eval model | " + " | ".join(cells) + " |")
    notes = sorted(set((real_notes or {}).values()))
    if notes:
        lines.append("\nReal photos " + "; ".join(notes) + " (real_photos.root)")
    elif real_photos:
        lines.append("\n" + real_caption(metrics))
    baselines = [metrics[p + "recall@15"] for _, p in rows if p.startswith("baseline/")]
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
    table = results_table(metrics, read_notes(context.output_dir))
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
