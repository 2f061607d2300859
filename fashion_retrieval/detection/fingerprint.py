"""Stable digests of settings: they name cache entries, so equal settings must give equal strings."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any


def settings_digest(settings: Mapping[str, Any], length: int = 16) -> str:
    """Hex SHA-256 (first ``length`` characters) of ``settings`` as canonical JSON (sorted keys), so the
    order in which a config lists its keys does not change the digest."""
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:length]
