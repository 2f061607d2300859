"""Single-box geometry in pixel space: padding, clipping at the borders, integer pixels."""

from __future__ import annotations

import pytest

from fashion_retrieval.data.boxes import clip_box, pad_box, pixel_box


def test_pad_grows_each_side_by_a_fraction_of_its_own_size():
    assert pad_box((10, 20, 30, 60), 0.1) == pytest.approx((8, 16, 32, 64))
    assert pad_box((10, 20, 30, 60), 0.0) == (10, 20, 30, 60)
    with pytest.raises(ValueError, match="padding"):
        pad_box((0, 0, 1, 1), -0.1)


def test_clip_keeps_boxes_inside_the_image():
    assert clip_box((-5, -3, 50, 70), 40, 60) == (0, 0, 40, 60)
    assert clip_box((5, 6, 7, 8), 40, 60) == (5, 6, 7, 8)
    outside = clip_box((50, 10, 60, 20), 40, 60)
    assert outside[0] == outside[2] == 40  # entirely to the right: empty, not inverted


def test_pixel_box_covers_every_touched_pixel_with_exclusive_ends():
    assert pixel_box((1.2, 2.7, 3.1, 4.0), 10, 10) == (1, 2, 4, 4)
    assert pixel_box((-3, -3, 20, 20), 10, 8) == (0, 0, 10, 8)
    assert pixel_box((9.5, 7.9, 9.5, 7.9), 10, 8) == (9, 7, 10, 8)  # never empty, even at the border
