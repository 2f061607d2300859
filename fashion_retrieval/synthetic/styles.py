"""Garment style vocabulary shared by the samplers and silhouette builders.

A garment's shape is a flat ``dict[str, float]`` (discrete choices stored as small integers) so it
pickles and hashes cheaply; these constants name the discrete values.
"""

from __future__ import annotations

import numpy as np

Shape = dict[str, float]

# Necklines
CREW, VNECK, BOAT, COLLAR, TURTLE, HOOD, SQUARE, STRAPS = range(8)
# Prints on a T-shirt/sweatshirt chest
NO_PRINT, PRINT_CIRCLE, PRINT_STAR, PRINT_TEXT, PRINT_BANDS = range(5)
# Bags
TOTE, SHOULDER, CROSSBODY, CLUTCH, RUCKSACK, BUCKET = range(6)
# Hats
FEDORA, BUCKET_HAT, CAP, BEANIE, BERET, STRAW = range(6)


def fold_rng(shape: Shape) -> np.random.Generator:
    """Fold placement is part of the article: the same creases in the catalogue shot and when worn."""
    return np.random.default_rng(int(shape["fold_seed"]))
