"""Why a results row has no real-photo scores: ``real_photos.json`` in the run directory, ``{row: reason}``.

Kept apart from :mod:`fashion_retrieval.evaluation.real_photos` so that ``report`` reads it without importing
torch.
"""

from __future__ import annotations

import json
from pathlib import Path

from fashion_retrieval.io import atomic_open

NOTES_FILE = "real_photos.json"


def record_note(output_dir: Path, row: str, reason: str) -> None:
    """Add ``{row: reason}`` to the run directory's ``real_photos.json`` (atomic rewrite)."""
    notes = read_notes(output_dir)
    notes[row] = reason
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    with atomic_open(Path(output_dir) / NOTES_FILE, "w") as handle:
        json.dump(dict(sorted(notes.items())), handle, indent=2)
        handle.write("\n")


def read_notes(output_dir: Path) -> dict[str, str]:
    """``{row: reason}`` of the rows whose real photos were not available (empty when none)."""
    path = Path(output_dir) / NOTES_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
