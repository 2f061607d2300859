"""Harmless hostile files for the security tests: each would create a marker file if it were ever run."""

from __future__ import annotations

import pathlib
from pathlib import Path

import torch


class CreatesMarker:
    """Unpickling this calls ``pathlib.Path.touch(marker)``: the marker's existence proves code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return pathlib.Path.touch, (pathlib.Path(self.marker),)


def write_pickle_payload(path: Path, marker: Path, **plain: object) -> Path:
    """A ``torch.save`` file whose ``"payload"`` entry creates ``marker`` when unpickled, beside ``plain``."""
    torch.save({**plain, "payload": CreatesMarker(marker)}, path)
    return path


def copyfile_config(source: Path, marker: Path) -> dict:
    """A plain-data encoder config whose ``_target_`` would copy ``source`` onto ``marker``."""
    return {"_target_": "shutil.copyfile", "src": str(source), "dst": str(marker)}
