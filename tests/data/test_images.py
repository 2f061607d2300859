"""Images that would train silently wrong or cost gigabytes: a truncated JPEG (libjpeg pads it with grey and
warns on stderr only) and a header declaring 20000 x 20000 pixels are refused, by the loader and by the
catalogue's ``image_check=decode``, naming the file; skipped ones are counted."""

from __future__ import annotations

import io
import logging
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from test_catalogue import write_dataset

from fashion_retrieval.data.catalogue import CatalogueError, load_catalogue
from fashion_retrieval.data.datamodule import ChallengeDataModule
from fashion_retrieval.data.transforms import jpeg_truncated, load_rgb


def jpeg_bytes(width: int = 64, height: int = 48) -> bytes:
    pixels = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90, exif=Image.Exif())
    return buffer.getvalue()


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width x height`` RGB pixels, with almost no data behind it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def test_a_truncated_jpeg_is_refused_naming_the_file(tmp_path) -> None:
    path = tmp_path / "cut.jpg"
    whole = jpeg_bytes()
    path.write_bytes(whole[: len(whole) // 2])
    assert cv2.imread(str(path)) is not None, "OpenCV alone decodes it (grey padding, a stderr warning)"
    with pytest.raises(OSError, match=rf"{path}: truncated JPEG"):
        load_rgb(str(path))
    path.write_bytes(whole + b"\0" * 32)  # complete, with padding after the end marker: fine
    assert load_rgb(str(path)).shape == (48, 64, 3)


@pytest.mark.parametrize("cut", [2, 100, -2, -1])
def test_jpeg_truncation_is_told_from_the_markers(cut: int) -> None:
    whole = jpeg_bytes()
    assert not jpeg_truncated(whole)
    assert jpeg_truncated(whole[:cut])


def test_an_image_declaring_too_many_pixels_is_refused_from_its_header(tmp_path) -> None:
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_header(20_000, 20_000))  # 400 M pixels: 1.2 GB decoded
    assert bomb.stat().st_size < 200
    with pytest.raises(OSError, match=rf"{bomb}: too many pixels"):
        load_rgb(str(bomb))
    # The limit is configurable: a small image over a lower limit is refused, loads under the default.
    small = tmp_path / "small.png"
    Image.fromarray(np.zeros((40, 50, 3), np.uint8)).save(small)
    with pytest.raises(OSError, match=r"50 x 40 = 2,000 pixels, over the limit of 1,000"):
        load_rgb(str(small), max_pixels=1000)
    assert load_rgb(str(small)).shape == (40, 50, 3)


def test_the_decode_check_fails_or_skips_such_images_with_a_count(tmp_path, caplog) -> None:
    root = write_dataset(tmp_path)
    truncated = root / "images/products/I_000000000002.jpg"
    truncated.write_bytes(jpeg_bytes()[:300])
    bomb = root / "images/bundles/B_00000000000c.jpg"
    bomb.write_bytes(png_header(20_000, 20_000))
    load_catalogue(root)  # image_check=exists does not open them
    with pytest.raises(
        CatalogueError, match=r"1 image\(s\) missing or unreadable: I_000000000002 .*truncated JPEG"
    ):
        load_catalogue(root, image_check="decode")
    with caplog.at_level(logging.WARNING):
        catalogue = load_catalogue(root, image_check="decode", missing_images="skip")
    assert catalogue.skipped["products"] == 1 and catalogue.skipped["bundles"] == 1
    assert "too many pixels" in caplog.text and "truncated JPEG" in caplog.text


def test_training_on_zero_bundles_is_refused(tmp_path: Path) -> None:
    """Every training bundle's photo is missing and skipped: Lightning would run no step and exit 0."""
    root = write_dataset(tmp_path)
    for bundle in ("B_00000000000a", "B_00000000000b"):
        (root / f"images/bundles/{bundle}.jpg").unlink()
    datamodule = ChallengeDataModule(str(root), missing_images="skip", val_fraction=0.0)
    with pytest.raises(ValueError, match=rf"{root}: no training bundles .*'bundles': 2"):
        datamodule.train_dataloader()
