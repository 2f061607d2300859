"""Pictures of retrieval results, one implementation for the run directory (``report`` writes
``retrieval_grid.png`` and ``recall_curve.png`` next to ``results.md``), the notebooks (``notebooks/``) and
the W&B tables (:mod:`fashion_retrieval.callbacks.wandb_tables`).

The examples and curves are plain data built by pure functions; drawing needs matplotlib, which is optional
(as for the sweep's ``report.png``): :func:`matplotlib_available` says whether pictures can be drawn, and
the figures are ``matplotlib.figure.Figure`` objects built without pyplot (no display backend is touched:
a notebook shows :func:`png_bytes` with ``IPython.display.Image``, :func:`save_png` writes them).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from fashion_retrieval.detection.types import Box
from fashion_retrieval.evaluation.metrics import GroundTruth, hit_matrix, retrieval_metrics
from fashion_retrieval.io import atomic_path

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)

HIT, MISS = "✓", "✗"
HIT_COLOUR, MISS_COLOUR, MISSED_COLOUR = "limegreen", "lightgrey", "red"
GRID_FILE, CURVE_FILE = "retrieval_grid.png", "recall_curve.png"


@dataclass(frozen=True)
class RetrievalExample:
    """One query and what it retrieved: ``products``/``product_paths`` in rank order (``k``, no padding),
    ``hits`` whether each is one of the query's ``num_relevant`` true products. ``query_box``: the region
    searched (a garment crop; ``None``: the whole photo); ``truth_boxes``: boxes to draw on the photo, each
    with whether its product was found (the synthetic ground-truth boxes); ``missed_paths``: packshots of
    true products not retrieved, shown after the ranks."""

    bundle_id: str
    query_path: str
    query_box: Box | None
    products: list[str]
    product_paths: list[str]
    hits: list[bool]
    num_relevant: int
    truth_boxes: tuple[tuple[Box, bool], ...] = ()
    missed_paths: tuple[str, ...] = ()

    @property
    def recall(self) -> float:
        return sum(self.hits) / self.num_relevant if self.num_relevant else 0.0

    @property
    def marks(self) -> str:
        return "".join(HIT if hit else MISS for hit in self.hits)


def spread_indices(n: int, count: int) -> np.ndarray:
    """``min(n, count)`` indices spread evenly over ``range(n)``, first and last included: the same rows
    every epoch and every run, and not only the first ones (catalogues are often sorted by category)."""
    if n <= 0 or count <= 0:
        return np.zeros(0, dtype=np.int64)
    return np.unique(np.linspace(0, n - 1, min(n, count)).round().astype(np.int64))


def thumbnail(path: str, box: Box | None, max_side: int) -> np.ndarray:
    """``(h, w, 3) uint8`` image (the ``box`` region when given), shrunk so its longer side is at most
    ``max_side``: tables of full-size photos would weigh more than the run."""
    import cv2

    # Imported here: these modules bring torch and albumentations, which `report` without pictures (and a
    # sweep table) must not pay for at start-up (docs/cli.md).
    from fashion_retrieval.data.boxes import region
    from fashion_retrieval.data.transforms import load_rgb

    image = region(load_rgb(path), box)
    scale = max_side / max(image.shape[:2])
    if scale < 1.0:
        size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(image)


# -- rankings of a submission -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Rankings:
    """A submission scored against a truth file: ``bundle_ids`` (Q, the truth's bundles in its order),
    ``topk`` ``(Q, K)`` int64 catalogue rows (``-1`` where a bundle got fewer than ``K``), ``truth`` and
    ``hits`` ``(Q, K)`` bool."""

    bundle_ids: list[str]
    topk: np.ndarray
    truth: GroundTruth
    hits: np.ndarray

    @classmethod
    def from_pairs(
        cls, submission: pd.DataFrame, truth: pd.DataFrame, product_index: Mapping[str, int]
    ) -> Rankings:
        """From ``bundle_asset_id,product_asset_id`` frames (submission rows in rank order)."""
        bundle_ids = list(pd.unique(truth["bundle_asset_id"]))
        ranked = submission.groupby("bundle_asset_id", sort=False)["product_asset_id"].apply(list)
        k = int(ranked.map(len).max()) if len(ranked) else 0
        topk = np.full((len(bundle_ids), k), -1, dtype=np.int64)
        for row, bundle in enumerate(bundle_ids):
            indices = [product_index[p] for p in ranked.get(bundle, [])[:k]]
            topk[row, : len(indices)] = indices
        relevant = truth.groupby("bundle_asset_id", sort=False)["product_asset_id"].apply(list)
        gt = GroundTruth.from_lists([[product_index[p] for p in relevant[b]] for b in bundle_ids])
        return cls(bundle_ids, topk, gt, hit_matrix(topk, gt))

    def curve(self) -> dict[str, dict[int, float]]:
        """``recall@k`` and ``hit_rate@k`` for every ``k`` up to ``K``: ``{metric: {k: value}}``."""
        ks = list(range(1, self.topk.shape[1] + 1))
        scored = retrieval_metrics(self.topk, self.truth, ks) if ks else {}
        return {name: {k: float(scored[f"{name}@{k}"]) for k in ks} for name in ("recall", "hit_rate")}

    def examples(
        self,
        rows: Sequence[int],
        image_paths: Mapping[str, str],
        catalogue_ids: Sequence[str],
        catalogue_paths: Sequence[str],
        k: int,
        truth_boxes: Mapping[tuple[str, str], Box] | None = None,
        max_missed: int = 0,
    ) -> list[RetrievalExample]:
        """:class:`RetrievalExample` of the bundles at ``rows``: their first ``k`` products, the truth boxes
        ``(bundle, product) -> box`` of their photo when given, up to ``max_missed`` missed packshots."""
        examples = []
        for q in rows:
            bundle = self.bundle_ids[q]
            top = [int(g) for g in self.topk[q, :k] if g >= 0]
            relevant = self.truth.items[self.truth.offsets[q] : self.truth.offsets[q + 1]].tolist()
            found = set(self.topk[q][self.hits[q]].tolist())
            boxes = tuple(
                (truth_boxes[(bundle, catalogue_ids[item])], item in found)
                for item in relevant
                if truth_boxes and (bundle, catalogue_ids[item]) in truth_boxes
            )
            missed = [catalogue_paths[item] for item in relevant if item not in found][:max_missed]
            examples.append(
                RetrievalExample(
                    bundle_id=bundle,
                    query_path=str(image_paths[bundle]),
                    query_box=None,
                    products=[catalogue_ids[g] for g in top],
                    product_paths=[str(catalogue_paths[g]) for g in top],
                    hits=[bool(h) for h in self.hits[q, : len(top)]],
                    num_relevant=int(self.truth.num_relevant[q]),
                    truth_boxes=boxes,
                    missed_paths=tuple(str(p) for p in missed),
                )
            )
        return examples


# -- drawing ---------------------------------------------------------------------------------------------
def matplotlib_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _new_figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


def _show_image(ax: Axes, image: np.ndarray, title: str, colour: str | None) -> None:
    ax.imshow(image)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=7)
    for spine in ax.spines.values():
        spine.set_visible(colour is not None)
        if colour is not None:
            spine.set_edgecolor(colour)
            spine.set_linewidth(3)


def retrieval_grid(examples: Sequence[RetrievalExample], k: int, thumbnail_side: int = 256) -> Figure:
    """One row per example: the query photo (its searched box in blue, truth boxes green when found, red
    when missed), its first ``k`` packshots framed green (hit) or grey (miss), then missed packshots framed
    red."""
    from matplotlib.patches import Rectangle

    from fashion_retrieval.data.transforms import load_rgb  # brings torch: see thumbnail()

    width = 1 + k + max((len(e.missed_paths) for e in examples), default=0)
    figure = _new_figure(1.4 * width, 2.3 * max(1, len(examples)))
    # A fixed layout: tight_layout takes seconds over this many axes.
    axes = figure.subplots(
        max(1, len(examples)),
        width,
        squeeze=False,
        gridspec_kw={"wspace": 0.08, "hspace": 0.45, "left": 0.01, "right": 0.99, "top": 0.9, "bottom": 0.02},
    )
    for ax in axes.flat:
        ax.axis("off")
    for line, example in zip(axes, examples):
        photo = load_rgb(example.query_path)
        line[0].axis("on")
        found = f"{sum(example.hits)}/{example.num_relevant} in the first {len(example.hits)}"
        _show_image(line[0], photo, f"{example.bundle_id}\n{found}", None)
        marked = [(example.query_box, "dodgerblue")] if example.query_box is not None else []
        marked += [(box, HIT_COLOUR if found else MISSED_COLOUR) for box, found in example.truth_boxes]
        for (x1, y1, x2, y2), colour in marked:
            line[0].add_patch(
                Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=colour, linewidth=1.5)
            )
        for rank, (path, hit) in enumerate(zip(example.product_paths[:k], example.hits[:k])):
            line[1 + rank].axis("on")
            colour = HIT_COLOUR if hit else MISS_COLOUR
            _show_image(line[1 + rank], thumbnail(path, None, thumbnail_side), f"#{rank + 1}", colour)
        for j, path in enumerate(example.missed_paths):
            line[1 + k + j].axis("on")
            _show_image(line[1 + k + j], thumbnail(path, None, thumbnail_side), "missed", MISSED_COLOUR)
    return figure


def recall_curve(
    curves: Mapping[str, Mapping[int, float]],
    points: Mapping[str, Mapping[int, float]] | None = None,
    ylabel: str = "recall@k",
) -> Figure:
    """Lines ``{label: {k: value}}`` against ``k`` (a label with "hit rate" dashed), and marker-only series
    ``points`` (e.g. the validation figures of other methods, for scale)."""
    figure = _new_figure(7, 4)
    ax = figure.subplots()
    for label, values in curves.items():
        ks = sorted(values)
        style = "--" if "hit rate" in label else "-"
        ax.plot(ks, [values[k] for k in ks], marker=".", linestyle=style, label=label)
    for label, values in (points or {}).items():
        ks = sorted(values)
        if ks:
            ax.plot(ks, [values[k] for k in ks], marker="o", linestyle=":", label=label)
    ax.set_xlabel("k")
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    figure.tight_layout()
    return figure


def png_bytes(figure: Figure, dpi: int = 100) -> bytes:
    """``figure`` as PNG bytes (a notebook shows them with ``IPython.display.Image``, whatever its
    matplotlib backend)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def save_png(figure: Figure, path: str | Path, dpi: int = 100) -> Path:
    """Write ``figure`` as a PNG atomically (a temp file beside ``path``, then renamed)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(png_bytes(figure, dpi))
    return Path(path)
