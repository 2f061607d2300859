"""Synthetic "complete the look" data in the exact on-disk format of the real challenge.

>>> from fashion_retrieval.synthetic import SyntheticSpec, generate_dataset
>>> spec = SyntheticSpec(seed=0, num_products=2000, num_bundles=1500)
>>> report = generate_dataset(spec, "data/synth", num_workers=2)

Modules: taxonomy (categories, skew, slots, layers), palette and patterns (colours, prints, fabric
textures), body and garments (figure landmarks, silhouettes from shape parameters), raster (anti-aliased
rendering through a homography), catalogue (articles, colour variants, layout), outfits (bundle
composition), backgrounds and scene (packshots and bundle photos), captions (product attributes and
captions in words), writer and generator (streaming, atomic output). See docs/dataset.md.
"""

from fashion_retrieval.synthetic.generator import GenerationReport, generate_dataset
from fashion_retrieval.synthetic.spec import SyntheticSpec
from fashion_retrieval.synthetic.writer import GENERATOR_VERSION

__all__ = ["GENERATOR_VERSION", "GenerationReport", "SyntheticSpec", "generate_dataset"]
