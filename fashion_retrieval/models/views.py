"""Test-time views by name (``retrieval.tta``), checked without importing torch: the views themselves are
:data:`fashion_retrieval.models.inference.TEST_TIME_VIEWS` (tensors) and
:meth:`fashion_retrieval.models.onnx_session.OnnxSession.embed_views` (arrays, the ONNX service)."""

from __future__ import annotations

from collections.abc import Sequence

VIEW_NAMES = ("flip", "centre_crop")


def check_views(views: Sequence[str]) -> list[str]:
    """``views`` as a list, or ValueError naming the unknown ones."""
    unknown = [view for view in views if view not in VIEW_NAMES]
    if unknown:
        raise ValueError(f"unknown test-time view(s) {unknown}; choose from {list(VIEW_NAMES)}")
    return list(views)
