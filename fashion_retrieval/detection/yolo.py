"""Detector ``yolo``: Ultralytics YOLO whose classes are the garment groups; offline by construction.

``fashion_retrieval.offline`` sets ``YOLO_OFFLINE=1`` (no update, connectivity or analytics calls) before
ultralytics is imported. Two helpers still reach for the network whatever that switch says, so every
ultralytics call of this project runs inside :func:`offline_ultralytics`: the dataset check downloads the
Arial font (only plots draw text), and the AMP check on a GPU downloads YOLO26n weights to compare with.
Weights are only ever read from a local file; a missing one fails before ultralytics sees its name (which
it would otherwise try to download). A ``.onnx`` export (ultralytics' own, docs/onnx.md) runs through
onnxruntime. A ``.pt`` file is data (docs/security.md): ultralytics' restricted
loader reads it first (:func:`check_weights`), so a file holding anything but ultralytics' and torch's
model classes is refused before ultralytics' ordinary loader unpickles it; ``ULTRALYTICS_SAFE_LOAD=1``
(``fashion_retrieval.offline``) makes ultralytics' own later loads (detect-train's) restricted too.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import inspect
import logging
import pickle
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

# Before ultralytics: importing it first sets OMP_NUM_THREADS=1 (when unset), leaving torch one CPU thread.
import torch

from fashion_retrieval.detection.fingerprint import settings_digest
from fashion_retrieval.detection.groups import validate_group_map
from fashion_retrieval.detection.types import Detection
from fashion_retrieval.io import file_digest

if TYPE_CHECKING:
    from ultralytics import YOLO

log = logging.getLogger(__name__)

TRAIN_HINT = "train one with `fashion-retrieval detect-train` (it writes <run dir>/detector/best.pt)"


def import_ultralytics() -> None:
    """Import ultralytics and undo its ``PIL.Image.open`` patch.

    On import, ultralytics replaces ``PIL.Image.open`` for the whole process with a wrapper that, on an
    unidentified image, tries to pip-install ``pi_heif`` and raises ``ModuleNotFoundError`` offline instead
    of Pillow's ``UnidentifiedImageError``: every later image check of this process (downloads, readers)
    would then fail differently depending on whether a detector was loaded first. We read no HEIF images.
    """
    from PIL import Image

    patches = importlib.import_module("ultralytics.utils.patches")
    if Image.open is getattr(patches, "image_open", None):
        Image.open = patches._image_open


@contextlib.contextmanager
def offline_ultralytics() -> Iterator[None]:
    """Replace, for the duration of the block, the two ultralytics helpers that download regardless of
    ``YOLO_OFFLINE``: the dataset check's font download (a no-op here; plots, off by default, need
    ``Arial.ttf`` in ultralytics' config directory) and the trainer's AMP check (trust AMP on CUDA)."""
    import_ultralytics()
    import ultralytics.data.utils as data_utils
    import ultralytics.engine.trainer as trainer

    saved = data_utils.check_font, trainer.check_amp

    def no_font_download(font: str = "") -> None:
        return None

    def amp_on_cuda(model: Any) -> bool:
        return next(model.parameters()).device.type == "cuda"

    data_utils.check_font, trainer.check_amp = no_font_download, amp_on_cuda
    try:
        yield
    finally:
        data_utils.check_font, trainer.check_amp = saved


def require_weights(weights: str | Path, override: str = "detector.weights") -> Path:
    """The weights file, or ``FileNotFoundError`` naming it and the ``override`` to pass."""
    path = Path(weights).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"YOLO weights {path} not found (nothing is downloaded). Pass a local file with "
            f"{override}=/path/to/best.pt, or {TRAIN_HINT}."
        )
    return path


def check_weights(path: Path) -> None:
    """Read ``path`` with ultralytics' restricted loader (``torch.load(weights_only=True)`` against its
    allow-list of ultralytics and torch model classes); ``ValueError`` naming the file when it holds any
    other object (a pickle that would run code) or is no checkpoint at all. Nothing in the file runs."""
    from ultralytics.nn.tasks import torch_safe_load

    if "safe_only" not in inspect.signature(torch_safe_load).parameters:  # never fall back to unpickling
        raise RuntimeError("this ultralytics has no restricted loader (safe_only); upgrade it (8.4.190 has)")
    try:
        torch_safe_load(str(path), safe_only=True)
    except (TypeError, ModuleNotFoundError, pickle.UnpicklingError, RuntimeError, EOFError) as error:
        raise ValueError(
            f"YOLO weights {path} refused: not an ultralytics checkpoint of known model classes ({error}). "
            "Weights are loaded as data only (docs/security.md); train them with `fashion-retrieval "
            "detect-train`."
        ) from None


def load_yolo(
    weights: str | Path | None = None, architecture: str | None = None, override: str = "detector.weights"
) -> YOLO:
    """A YOLO model from a local weights file, else built untrained from an architecture file
    (``yolov8n.yaml``: ultralytics' own model configs are found by name, no download). ``override`` is
    the config key named when the weights are missing."""
    if weights is not None:
        path = require_weights(weights, override)
        if path.suffix != ".onnx":  # ultralytics' ONNX export is a protobuf graph, no pickle (docs/onnx.md)
            check_weights(path)
        import_ultralytics()
        from ultralytics import YOLO

        return YOLO(str(path), task="detect")
    if architecture is None:
        raise ValueError(f"no YOLO weights: pass {override}=/path/to/best.pt, or {TRAIN_HINT}")
    import_ultralytics()
    from ultralytics import YOLO

    return YOLO(architecture, task="detect")


def state_digest(model: Any) -> str:
    """SHA-256 of a torch module's parameters and buffers: identifies an untrained, randomly built model."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().numpy().tobytes())
    return digest.hexdigest()


class YoloDetector:
    """Garment groups found by an Ultralytics YOLO model.

    ``weights``: a local ``.pt`` file (``detect-train`` writes one); without it, ``architecture``
    (e.g. ``yolov8n.yaml``) builds an untrained model with one class per group of ``groups`` (for tests
    and smoke runs). ``groups``: group -> catalogue categories (:mod:`fashion_retrieval.detection.groups`);
    every class of the model must be one of its groups. ``confidence``, ``iou``, ``image_size``,
    ``max_detections``: ultralytics' inference settings (keep ``confidence`` at or below
    ``crops.min_score``, which does the selection); ``device``: ``cpu``, ``0``, ``cuda:0``...
    """

    def __init__(
        self,
        groups: Mapping[str, Sequence[str]],
        weights: str | None = None,
        architecture: str | None = None,
        confidence: float = 0.05,
        iou: float = 0.6,
        image_size: int = 320,
        max_detections: int = 20,
        device: str = "cpu",
    ) -> None:
        groups = validate_group_map(groups)
        weights_path = None if weights is None else require_weights(weights)
        self.model = load_yolo(weights_path, architecture)
        if weights is None:
            from ultralytics.nn.tasks import DetectionModel

            # Built for ultralytics' 80 COCO classes: rebuild the head with one class per group.
            self.model.model = DetectionModel(self.model.model.yaml, nc=len(groups), verbose=False)
            self.model.model.names = dict(enumerate(groups))
        self.class_names: dict[int, str] = {int(k): str(v) for k, v in self.model.names.items()}
        unknown = sorted(set(self.class_names.values()) - set(groups))
        if unknown:
            raise ValueError(
                f"YOLO classes {unknown} of {weights or architecture} are not garment groups "
                f"{list(groups)}; add them to garment_groups or use a model trained by detect-train"
            )
        self.label_categories = {name: groups[name] for name in self.class_names.values()}
        self.settings = {
            "weights": file_digest(weights)
            if weights is not None
            else f"untrained:{state_digest(self.model.model)}",
            "classes": self.class_names,
            "confidence": confidence,
            "iou": iou,
            "image_size": image_size,
            "max_detections": max_detections,
        }
        self.device = device

    def fingerprint(self) -> str:
        return f"yolo-{settings_digest(self.settings)}"

    def detect(self, images: Sequence[np.ndarray], image_ids: Sequence[str]) -> list[list[Detection]]:
        if not images:
            return []
        # ultralytics reads numpy images as OpenCV's BGR (its training images are read by cv2.imread).
        bgr = [np.ascontiguousarray(image[..., ::-1]) for image in images]
        with offline_ultralytics():
            results = self.model.predict(
                bgr,
                imgsz=self.settings["image_size"],
                conf=self.settings["confidence"],
                iou=self.settings["iou"],
                max_det=self.settings["max_detections"],
                device=self.device,
                verbose=False,
            )
        detections = []
        for result in results:
            boxes = result.boxes
            detections.append(
                [
                    Detection((x1, y1, x2, y2), score, self.class_names[int(label)])
                    for (x1, y1, x2, y2), score, label in zip(
                        boxes.xyxy.tolist(), boxes.conf.tolist(), boxes.cls.tolist()
                    )
                ]
            )
        return detections


@dataclass(frozen=True)
class TrainedYolo:
    """What :func:`train_yolo` produced: the best weights and their validation box mAP."""

    best: Path
    map50: float
    map50_95: float
    seconds: float


def train_yolo(
    model: YOLO, data_yaml: Path, save_dir: Path, *, threads: int | None = None, **settings: Any
) -> TrainedYolo:
    """Train ``model`` on ``data_yaml`` with ultralytics' ``settings`` (``epochs``, ``imgsz``, ``batch``,
    ``workers``, ``device``, ``seed``, ``plots``...), writing ultralytics' run folder at ``save_dir``
    (never under the working directory). The mAP is ultralytics' final validation of ``best.pt``.

    ``threads``: torch CPU threads while training; ultralytics sets ``cores - 1`` (one thread on a 2-core
    machine) when it picks the CPU device, ``None`` keeps that."""
    if threads is not None:
        # Runs after ultralytics' device selection, which is what sets its own thread count.
        model.add_callback("on_pretrain_routine_start", lambda _: torch.set_num_threads(threads))
    with offline_ultralytics():
        start = time.perf_counter()
        model.train(
            data=str(data_yaml), project=str(save_dir.parent), name=save_dir.name, exist_ok=True, **settings
        )
        seconds = time.perf_counter() - start
    trainer = model.trainer
    return TrainedYolo(
        best=Path(trainer.best),
        map50=float(trainer.metrics["metrics/mAP50(B)"]),
        map50_95=float(trainer.metrics["metrics/mAP50-95(B)"]),
        seconds=seconds,
    )
