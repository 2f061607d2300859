"""Progress bars: on an interactive terminal only, off in CI, forced either way by the environment."""

from __future__ import annotations

import io

import numpy as np
import pytest

from fashion_retrieval import progress as progress_module
from fashion_retrieval.index.factory import FlatSpec
from fashion_retrieval.index.faiss_index import EmbeddingIndex
from fashion_retrieval.progress import PROGRESS_ENV, show_progress


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("tty", "ci", "forced", "expected"),
    [
        (True, None, None, True),
        (False, None, None, False),  # redirected to a log file
        (True, "true", None, False),  # CI logs
        (True, "0", None, True),
        (False, "true", "1", True),
        (True, None, "0", False),
    ],
)
def test_bars_show_on_a_terminal_outside_ci_unless_forced(
    monkeypatch: pytest.MonkeyPatch, tty: bool, ci: str | None, forced: str | None, expected: bool
) -> None:
    monkeypatch.setattr("sys.stderr", FakeTerminal() if tty else io.StringIO())
    for name, value in (("CI", ci), (PROGRESS_ENV, forced)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    assert show_progress() is expected


def test_index_building_shows_count_rate_and_eta_when_on(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(PROGRESS_ENV, "1")
    monkeypatch.setattr("fashion_retrieval.index.faiss_index.ADD_CHUNK", 40)
    matrix = np.eye(100, 8, dtype=np.float32)
    EmbeddingIndex(matrix, [f"I_{i:012x}" for i in range(100)], spec=FlatSpec(device="cpu"))
    bar = capsys.readouterr().err
    assert "flat index" in bar and "100/100" in bar and "vectors/s" in bar
    monkeypatch.setenv(PROGRESS_ENV, "0")
    EmbeddingIndex(matrix, [f"I_{i:012x}" for i in range(100)], spec=FlatSpec(device="cpu"))
    assert capsys.readouterr().err == ""
    assert list(progress_module.progress(range(3), 3, "x")) == [0, 1, 2]
