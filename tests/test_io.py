"""Names from data stay inside their folder (``fashion_retrieval.io``)."""

from __future__ import annotations

import pytest

from fashion_retrieval.io import contained_path, is_safe_name


@pytest.mark.parametrize("name", ["I_3f9a0c27be41", "B_a07030518237", "p0", "009b3c31-fb62-45c0", "a..b.jpg"])
def test_safe_names(name):
    assert is_safe_name(name)


@pytest.mark.parametrize("name", ["", ".", "..", "../x", "/abs/x", "a/b", "a\\b", ".hidden", "-x", "x" * 129])
def test_unsafe_names(name):
    assert not is_safe_name(name)


def test_contained_path_keeps_names_inside_their_folder(tmp_path):
    assert contained_path(tmp_path / "images", "I_1.jpg") == tmp_path / "images" / "I_1.jpg"
    assert contained_path(tmp_path / "images", "sub/../I_1.jpg") == tmp_path / "images" / "sub/../I_1.jpg"
    for name in ("../I_1.jpg", "/etc/passwd", "a/../../x", "..", "", "."):
        with pytest.raises(ValueError, match="leads outside"):
            contained_path(tmp_path / "images", name)


def test_a_relative_folder_is_checked_too(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert contained_path(".", "x.jpg").name == "x.jpg"
    with pytest.raises(ValueError, match="leads outside"):
        contained_path(".", "../x.jpg")
