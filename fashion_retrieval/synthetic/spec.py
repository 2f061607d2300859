"""``SyntheticSpec``: every knob of the synthetic dataset; the output is a pure function of it."""

from __future__ import annotations

from dataclasses import dataclass

# Real bundles list 1..11 products, most often 3, with 2-4 the bulk and a long tail.
DEFAULT_BUNDLE_SIZE_WEIGHTS: tuple[float, ...] = (
    0.09,
    0.2,
    0.27,
    0.19,
    0.11,
    0.06,
    0.035,
    0.02,
    0.012,
    0.008,
    0.005,
)


@dataclass
class SyntheticSpec:
    """Parameters of a synthetic "complete the look" dataset.

    Image sizes are (width, height) in pixels; ranges are inclusive (low, high). Lists (as Hydra passes
    them) are converted to tuples, so a spec built from YAML equals one built in Python.
    """

    seed: int = 0
    num_products: int = 2000
    num_bundles: int = 1500
    test_fraction: float = 0.2
    distractor_fraction: float = 0.4  # share of products never placed in a bundle by design
    product_image_size: tuple[int, int] = (192, 256)
    bundle_image_size: tuple[int, int] = (256, 384)
    product_jpeg_quality: tuple[int, int] = (85, 95)
    bundle_jpeg_quality: tuple[int, int] = (55, 92)
    variants_per_article: tuple[int, int] = (1, 4)  # colour variants of one design
    section_weights: tuple[float, float, float] = (0.5, 0.3, 0.2)  # sections 1, 2, 3 (woman, man, kids)
    bundle_size_weights: tuple[float, ...] = DEFAULT_BUNDLE_SIZE_WEIGHTS  # P(k listed products), k = 1..
    popularity_exponent: float = 0.9  # Zipf exponent of product reuse across bundles
    coverage_probability: float = 0.5  # chance a pick goes to a not-yet-used product of the pool
    min_visible_fraction: float = 0.04  # listed products hidden more than this are dropped from the bundle
    occluder_probability: float = 0.25  # foreground object in front of the model
    studio_probability: float = 0.35  # plain studio background (else room / street / clutter)
    blur_sigma_max: float = 1.2  # pixels
    noise_sigma_max: float = 5.0  # sensor noise std, in 0..255 units
    supersample: int = 2  # anti-aliasing factor of the rasteriser

    def __post_init__(self) -> None:
        # Hydra hands over lists (OmegaConf ListConfig): normalise to tuples of the declared element type.
        for name, kind in _TUPLE_FIELDS.items():
            setattr(self, name, tuple(kind(v) for v in getattr(self, name)))
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the first field out of range."""
        checks: list[tuple[bool, str]] = [
            (self.num_products >= 1, "num_products must be >= 1"),
            (self.num_bundles >= 1, "num_bundles must be >= 1"),
            (0.0 <= self.test_fraction < 1.0, "test_fraction must be in [0, 1)"),
            (0.0 <= self.distractor_fraction < 1.0, "distractor_fraction must be in [0, 1)"),
            (
                len(self.product_image_size) == 2 and min(self.product_image_size) >= 16,
                "product_image_size must be (w, h) >= 16",
            ),
            (
                len(self.bundle_image_size) == 2 and min(self.bundle_image_size) >= 32,
                "bundle_image_size must be (w, h) >= 32",
            ),
            (
                _is_range(self.product_jpeg_quality, 1, 100),
                "product_jpeg_quality must be (low, high) in 1..100",
            ),
            (
                _is_range(self.bundle_jpeg_quality, 1, 100),
                "bundle_jpeg_quality must be (low, high) in 1..100",
            ),
            (
                _is_range(self.variants_per_article, 1, 32),
                "variants_per_article must be (low, high) in 1..32",
            ),
            (
                len(self.section_weights) == 3
                and min(self.section_weights) >= 0
                and sum(self.section_weights) > 0,
                "section_weights: 3 non-negative weights",
            ),
            (
                1 <= len(self.bundle_size_weights) <= 11
                and min(self.bundle_size_weights) >= 0
                and sum(self.bundle_size_weights) > 0,
                "bundle_size_weights: 1..11 non-negative weights (k = 1..11)",
            ),
            (self.popularity_exponent >= 0, "popularity_exponent must be >= 0"),
            (0.0 <= self.coverage_probability <= 1.0, "coverage_probability must be in [0, 1]"),
            (0.0 <= self.min_visible_fraction < 1.0, "min_visible_fraction must be in [0, 1)"),
            (0.0 <= self.occluder_probability <= 1.0, "occluder_probability must be in [0, 1]"),
            (0.0 <= self.studio_probability <= 1.0, "studio_probability must be in [0, 1]"),
            (
                self.blur_sigma_max >= 0 and self.noise_sigma_max >= 0,
                "blur_sigma_max and noise_sigma_max must be >= 0",
            ),
            (self.supersample in (1, 2, 3, 4), "supersample must be 1..4"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"SyntheticSpec: {message}")


def _is_range(value: tuple[int, ...], low: int, high: int) -> bool:
    return len(value) == 2 and low <= value[0] <= value[1] <= high


_TUPLE_FIELDS: dict[str, type] = {
    "product_image_size": int,
    "bundle_image_size": int,
    "product_jpeg_quality": int,
    "bundle_jpeg_quality": int,
    "variants_per_article": int,
    "section_weights": float,
    "bundle_size_weights": float,
}
