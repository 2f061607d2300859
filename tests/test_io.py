"""``fashion_retrieval.io``: names from data stay inside their folder, content digests follow the bytes,
YAML is read as data."""

from __future__ import annotations

import os

import pytest
import yaml

from fashion_retrieval import io
from fashion_retrieval.io import (
    contained_path,
    content_digest,
    contents_digest,
    file_digest,
    is_safe_name,
    read_yaml,
    write_yaml,
)


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


def test_content_digest_is_memoised_until_the_file_changes(tmp_path, monkeypatch):
    path = tmp_path / "image.jpg"
    path.write_bytes(b"first")
    calls = []
    monkeypatch.setattr(io, "file_digest", lambda p: calls.append(p) or file_digest(p))
    first = content_digest(path)
    assert content_digest(path) == first == file_digest(path)
    assert len(calls) == 1, "an unchanged file is hashed once"
    stamp = path.stat()
    replacement = tmp_path / "new.jpg"
    replacement.write_bytes(b"other")  # same size
    replacement.replace(path)
    os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))  # even with the old time: another inode
    second = content_digest(path)
    assert second == file_digest(path) != first
    path.write_bytes(b"third")  # in place: same inode and size, a later modification time
    os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns + 10**9))
    assert content_digest(path) == file_digest(path) != second


def test_contents_digest_follows_every_file_and_their_order(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(b"a")
    b.write_bytes(b"b")
    both = contents_digest([a, b])
    assert contents_digest([b, a]) != both
    b.write_bytes(b"B")
    assert contents_digest([a, b]) != both


def test_yaml_round_trips_plain_data_and_builds_no_object(tmp_path):
    content = {"b": [1, 2.5, None], "a": {"name": "x", "flag": True}}
    write_yaml(tmp_path / "c.yaml", content)
    assert read_yaml(tmp_path / "c.yaml") == content
    assert list(read_yaml(tmp_path / "c.yaml")) == ["b", "a"]  # keys stay in their order
    assert [p.name for p in tmp_path.iterdir()] == ["c.yaml"]  # no temporary file left behind
    (tmp_path / "evil.yaml").write_text("x: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(yaml.constructor.ConstructorError):
        read_yaml(tmp_path / "evil.yaml")
