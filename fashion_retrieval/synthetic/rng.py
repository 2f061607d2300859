"""Deterministic randomness: every item draws from its own stream, keyed by (seed, domain, index).

Keying streams by item rather than by processing order is what makes the output independent of
``num_workers`` and of the order in which workers pick up items.
"""

from __future__ import annotations

import hashlib
from enum import IntEnum

import numpy as np


class Domain(IntEnum):
    """Independent random streams; appending a member never changes existing streams."""

    LAYOUT = 1  # catalogue layout: articles, sections, categories, variants, distractors
    ARTICLE = 2  # one article's shape, pattern, texture and variant colours
    PACKSHOT = 3  # one product image's studio jitter and JPEG quality
    COMPOSE = 4  # bundle outfits and product picks (one sequential stream)
    SCENE = 5  # one bundle image: pose, background, lighting
    FILLER = 6  # unlisted garments worn in a bundle
    SPLIT = 7  # train/test split
    TILE = 8  # a pattern or texture tile
    TIMESTAMP = 9  # image URL metadata: dates, article and colour codes, each bundle's lead product
    CAPTION = 10  # one product's caption phrasings


def item_rng(seed: int, domain: Domain, *index: int) -> np.random.Generator:
    """A generator for item ``index`` of ``domain``; identical across processes and runs."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, int(domain), *(int(i) for i in index)])


def item_seed(seed: int, domain: Domain, *index: int) -> int:
    """A 63-bit integer seed for a sub-stream (stored in parameters, e.g. a tile's noise)."""
    return int(item_rng(seed, domain, *index).integers(0, 2**63 - 1))


def hex_id(prefix: str, seed: int, kind: str, index: int, salt: int = 0) -> str:
    """``prefix`` + 12 lowercase hex chars, a hash of (seed, kind, index, salt): looks random, is stable."""
    digest = hashlib.blake2b(f"{seed}:{kind}:{index}:{salt}".encode(), digest_size=6).hexdigest()
    return f"{prefix}{digest}"


def unique_ids(prefix: str, seed: int, kind: str, count: int) -> list[str]:
    """``count`` distinct ids; a (rare, 48-bit) collision is resolved by re-hashing with a salt."""
    ids: list[str] = []
    seen: set[str] = set()
    for index in range(count):
        salt = 0
        candidate = hex_id(prefix, seed, kind, index)
        while candidate in seen:
            salt += 1
            candidate = hex_id(prefix, seed, kind, index, salt)
        seen.add(candidate)
        ids.append(candidate)
    return ids
