"""Images in: reading and decoding files and uploads (:func:`load_rgb`, :func:`decode_rgb`), fixed crops,
and the evaluation transform (:func:`eval_transform`: resize to a ``uint8`` array, or tensor for the data
loaders).

Nothing here imports albumentations, nor torch unless a tensor is asked for: a search (``serve``,
``infer``, ``validate``) reads and resizes images without the first, and the ONNX service without either
(docs/serving.md "Start-up"). Training augmentation, which needs albumentations, is
:mod:`fashion_retrieval.data.augmentation`.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
from PIL import Image

if TYPE_CHECKING:
    import torch

# What :func:`apply` runs: albumentations' calling convention, ``transform(image=array)["image"]``, which
# :class:`EvalTransform` and the training pipelines of :mod:`fashion_retrieval.data.augmentation` share.
ImageTransform = Callable[..., Mapping[str, Any]]


class ImageReadError(OSError):
    """An image file that cannot be used; ``reason`` says why without the path."""

    def __init__(self, path: str, reason: str = "") -> None:
        # One argument is a whole message: how a DataLoader worker's exception is rebuilt in the parent.
        super().__init__(f"cannot read image {path}: {reason}" if reason else path)
        self.reason = reason


def load_rgb(path: str, max_pixels: int | None = None) -> np.ndarray:
    """Read an image file as an ``(H, W, 3) uint8`` RGB array; ImageReadError (an OSError) naming the file
    when it is missing, not an image, a truncated JPEG (libjpeg pads it with grey and only warns on stderr)
    or declares more than ``max_pixels`` pixels (default ``PIL.Image.MAX_IMAGE_PIXELS``, PIL's
    decompression-bomb limit: refused from the header, before any pixel is allocated)."""
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise ImageReadError(path, str(error.strerror or error)) from error
    return decode_rgb(data, path, max_pixels)


def decode_rgb(data: bytes, name: str, max_pixels: int | None = None) -> np.ndarray:
    """The encoded image ``data`` (JPEG, PNG, WebP... what OpenCV decodes) as an ``(H, W, 3) uint8`` RGB
    array; ImageReadError naming ``name`` when it is empty, not an image, a truncated JPEG or over
    ``max_pixels`` (see :func:`load_rgb`, which reads files through it)."""
    problem = "the file is empty" if not data else image_bytes_problem(data, max_pixels)
    if problem is not None:
        raise ImageReadError(name, problem)
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ImageReadError(name, "truncated or not an image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def image_bytes_problem(data: bytes, max_pixels: int | None = None) -> str | None:
    """What makes the bytes of an image file unsafe or incomplete to decode, read from its header and
    markers only (no pixel is decoded): more than ``max_pixels`` pixels (default PIL's
    ``Image.MAX_IMAGE_PIXELS``), or a JPEG cut short. ``None`` when neither."""
    if data[:2] == b"\xff\xd8" and jpeg_truncated(data):
        return "truncated JPEG (no end-of-image marker after its image data)"
    limit = Image.MAX_IMAGE_PIXELS if max_pixels is None else max_pixels
    try:
        with warnings.catch_warnings():
            # PIL warns above its limit and raises above twice it: the limit here is ours.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:  # parses the header only
                width, height = image.size
    except Image.DecompressionBombError as error:
        return f"too many pixels ({error})"
    except (OSError, ValueError, SyntaxError):
        return None  # not something PIL reads: the decoder below says whether it is an image
    if limit is not None and width * height > limit:
        return (
            f"{width} x {height} = {width * height:,} pixels, over the limit of {limit:,} "
            "(data.max_image_pixels; a decompression bomb or a photo that needs resizing)"
        )
    return None


def jpeg_truncated(data: bytes) -> bool:
    """True when the JPEG ``data`` ends before its end-of-image marker (EOI, ``FF D9``).

    The segments before the first scan are walked by their lengths (an EXIF thumbnail holds an EOI of its
    own); after it, ``FF D9`` cannot occur inside entropy-coded data (a data ``FF`` is followed by ``00``),
    so its absence means the file was cut. Bytes after the EOI (padding, appended data) are fine.
    """
    position = 2
    while True:
        while position < len(data) and data[position] == 0xFF and position + 1 < len(data):
            if data[position + 1] != 0xFF:
                break
            position += 1  # fill bytes
        if position + 4 > len(data) or data[position] != 0xFF:
            return True
        marker = data[position + 1]
        if marker == 0xDA:  # start of scan
            return data.find(b"\xff\xd9", position) < 0
        if marker == 0xD9:
            return False
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # no length
            position += 2
            continue
        position += 2 + int.from_bytes(data[position + 2 : position + 4], "big")


def crop_fraction(image: np.ndarray, box: Sequence[float] | None) -> np.ndarray:
    """Cut ``box = (left, top, right, bottom)``, given as fractions of the width and height, from an
    ``(H, W, 3)`` image; ``None`` keeps the whole image. A fixed region of interest: bundle photos
    centre the person, so the side margins are mostly background."""
    if box is None:
        return image
    left, top, right, bottom = box
    if not (0.0 <= left < right <= 1.0 and 0.0 <= top < bottom <= 1.0):
        raise ValueError(f"crop box must be fractions with left < right and top < bottom, got {list(box)}")
    height, width = image.shape[:2]
    return image[round(top * height) : round(bottom * height), round(left * width) : round(right * width)]


@dataclass(frozen=True)
class EvalTransform:
    """Resize an ``(h, w, 3) uint8`` image to ``size = (H, W)`` with OpenCV's area interpolation and return
    it as a ``(3, H, W) uint8`` tensor (an image already of that size is not resampled): the same pixels as
    albumentations' ``Compose([Resize(H, W, cv2.INTER_AREA), ToTensorV2()])``, which training at strength
    0 uses (tested), without importing albumentations. :meth:`array` gives the same pixels as a numpy
    array, without importing torch."""

    size: tuple[int, int]

    def array(self, image: np.ndarray) -> np.ndarray:
        """``(3, H, W) uint8`` of an ``(h, w, 3) uint8`` image (a view of the resized image)."""
        height, width = self.size
        if image.shape[:2] != (height, width):
            image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
        return image.transpose(2, 0, 1)

    def __call__(self, *, image: np.ndarray) -> dict[str, torch.Tensor]:
        # Imported here: the data loaders want tensors, the ONNX service (arrays only) never imports torch.
        import torch

        return {"image": torch.from_numpy(self.array(image))}

    def describe(self) -> dict[str, Any]:
        """What decides its output, OpenCV's version included (its resampling): part of a feature cache
        key (:mod:`fashion_retrieval.features`)."""
        return {"resize": list(self.size), "interpolation": "area", "opencv": cv2.__version__}


def eval_transform(size: Sequence[int]) -> EvalTransform:
    """Resize to ``size = (H, W)``; used for validation, indexing and inference.

    Outputs stay ``uint8``: the model normalises its own input
    (:class:`fashion_retrieval.models.normalization.InputNormalization`), so one pipeline feeds any
    backbone, and ensembles of backbones with different statistics."""
    height, width = size
    return EvalTransform((int(height), int(width)))


def apply(transform: ImageTransform, image: np.ndarray) -> torch.Tensor:
    """Run a transform (:class:`EvalTransform`, an albumentations pipeline) on an ``(H, W, 3) uint8``
    image; returns ``(3, H, W) uint8``."""
    return transform(image=image)["image"]
