"""Readers that map other retrieval datasets onto one structure, :class:`RetrievalSet`.

One module per format; each ``load_*`` function returns a validated set and raises
:class:`~fashion_retrieval.data.catalogue.CatalogueError` naming the file, line and field of bad input.
"""

from fashion_retrieval.data.readers.clothing_small import load_clothing_small
from fashion_retrieval.data.readers.deepfashion2 import load_deepfashion2
from fashion_retrieval.data.readers.deepfashion_inshop import load_deepfashion_inshop
from fashion_retrieval.data.readers.generic_csv import load_generic_csv
from fashion_retrieval.data.readers.retrieval_set import (
    ImageList,
    RetrievalSet,
    TrainingSet,
    label_by,
    match_by,
)

__all__ = [
    "ImageList",
    "RetrievalSet",
    "TrainingSet",
    "label_by",
    "load_clothing_small",
    "load_deepfashion2",
    "load_deepfashion_inshop",
    "load_generic_csv",
    "match_by",
]
