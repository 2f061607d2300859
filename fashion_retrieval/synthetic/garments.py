"""Garment shapes: per-category shape parameters and the silhouette they draw.

``sample_shape`` draws an article's shape parameters (waist width, leg taper, length, sleeve length,
neckline, flare, strap, heel, brim...). ``build_silhouette`` turns (category, shape, body, pose) into draw
operations in body coordinates (builders in tops.py, bottoms.py, accessories.py). The same shape drawn
in ``PACKSHOT_POSE`` is the catalogue image; drawn in a model's pose it is the garment in a bundle, so a
product keeps its identity across both.
"""

from __future__ import annotations

import numpy as np

from fashion_retrieval.synthetic import accessories, bottoms, tops
from fashion_retrieval.synthetic.body import BodyShape, Pose
from fashion_retrieval.synthetic.geometry import Silhouette
from fashion_retrieval.synthetic.styles import (
    BEANIE,
    BERET,
    BOAT,
    BUCKET,
    BUCKET_HAT,
    CAP,
    CLUTCH,
    COLLAR,
    CREW,
    CROSSBODY,
    FEDORA,
    HOOD,
    NO_PRINT,
    PRINT_BANDS,
    PRINT_CIRCLE,
    PRINT_STAR,
    PRINT_TEXT,
    RUCKSACK,
    SHOULDER,
    SQUARE,
    STRAPS,
    STRAW,
    TOTE,
    TURTLE,
    VNECK,
    Shape,
)
from fashion_retrieval.synthetic.taxonomy import Category


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _pick(rng: np.random.Generator, options: list[int], weights: list[float]) -> float:
    p = np.asarray(weights, float)
    return float(options[int(rng.choice(len(options), p=p / p.sum()))])


def sample_shape(category: Category, section: int, rng: np.random.Generator) -> Shape:
    """Draw one article's silhouette parameters for ``category`` sold in ``section``."""
    name, family = category.name, category.family
    g: Shape = {"fold_seed": float(rng.integers(0, 2**31 - 1))}
    if family == "top":
        _sample_top(name, section, rng, g)
    elif family == "dress":
        _sample_top("DRESS", section, rng, g)
        g.update(
            skirt_flare=_u(rng, 1.05, 1.9),
            length=_u(rng, 0.0, 1.0),
            waist_seam=_pick(rng, [0, 1], [0.4, 0.6]),
        )
        g.update(tie=_pick(rng, [0, 1], [0.8, 0.2]), pleats=_pick(rng, [0, 1], [0.7, 0.3]))
    elif family == "trousers":
        _sample_trousers(name, section, rng, g)
    elif family == "skirt":
        g.update(rise=_u(rng, -0.01, 0.03), length=_u(rng, 0.0, 1.0), flare=_u(rng, 1.0, 1.8))
        g.update(pleats=_pick(rng, [0, 1], [0.7, 0.3]), wrap=_pick(rng, [0, 1], [0.85, 0.15]))
        g.update(buttons=_pick(rng, [0, 1], [0.85, 0.15]), band=_pick(rng, [0, 1], [0.4, 0.6]))
    elif family == "outer":
        _sample_outer(name, section, rng, g)
    elif family == "shoes":
        _sample_shoes(name, section, rng, g)
    elif family == "socks":
        g.update(height=_u(rng, 0.04, 0.16), rib=_pick(rng, [0, 1], [0.3, 0.7]))
    elif family == "bag":
        kinds = [TOTE, SHOULDER, CROSSBODY, CLUTCH, RUCKSACK, BUCKET]
        weights = [0.25, 0.25, 0.2, 0.1, 0.12, 0.08] if section != 3 else [0.1, 0.1, 0.35, 0.0, 0.45, 0.0]
        kind = _pick(rng, kinds, weights)
        w = {
            TOTE: (0.11, 0.17),
            SHOULDER: (0.09, 0.14),
            CROSSBODY: (0.06, 0.1),
            CLUTCH: (0.08, 0.12),
            RUCKSACK: (0.09, 0.12),
            BUCKET: (0.07, 0.1),
        }[int(kind)]
        width = _u(rng, *w)
        aspect = {
            TOTE: (0.75, 1.05),
            SHOULDER: (0.55, 0.8),
            CROSSBODY: (0.6, 0.9),
            CLUTCH: (0.45, 0.62),
            RUCKSACK: (1.15, 1.4),
            BUCKET: (1.0, 1.3),
        }[int(kind)]
        g.update(
            kind=kind, w=width, h=width * _u(rng, *aspect), r=_u(rng, 0.05, 0.3), taper=_u(rng, 0.8, 1.0)
        )
        g.update(
            flap=_pick(rng, [0, 1], [0.5, 0.5]),
            flap_h=_u(rng, 0.3, 0.6),
            quilt=_pick(rng, [0, 1], [0.85, 0.15]),
        )
        g.update(strap_w=_u(rng, 0.003, 0.008), handle_h=_u(rng, 0.03, 0.06), strap_drop=_u(rng, 0.12, 0.22))
    elif family == "hat":
        kinds = [FEDORA, BUCKET_HAT, CAP, BEANIE, BERET, STRAW]
        weights = [0.2, 0.2, 0.25, 0.2, 0.07, 0.08] if section != 3 else [0.0, 0.3, 0.35, 0.35, 0.0, 0.0]
        g.update(kind=_pick(rng, kinds, weights), brim=_u(rng, 0.0, 1.0), crown=_u(rng, 0.0, 1.0))
        g.update(band=_pick(rng, [0, 1], [0.5, 0.5]), pompom=_pick(rng, [0, 1], [0.7, 0.3]))
    elif family == "scarf":
        g.update(
            w=_u(rng, 0.022, 0.04),
            tail1=_u(rng, 0.1, 0.26),
            tail2=_u(rng, 0.06, 0.2),
            fringe=_pick(rng, [0, 1], [0.5, 0.5]),
        )
        g.update(drift=_u(rng, -0.02, 0.02))
    elif family == "belt":
        g.update(
            w=_u(rng, 0.009, 0.017),
            buckle=_pick(rng, [0, 1, 2, 3], [0.5, 0.15, 0.2, 0.15]),
            buckle_s=_u(rng, 1.3, 1.9),
        )
        g.update(holes=float(rng.integers(3, 7)), stitch=_pick(rng, [0, 1], [0.5, 0.5]))
    elif family == "sunglasses":
        g.update(
            lens=_pick(rng, [0, 1, 2, 3], [0.3, 0.3, 0.2, 0.2]),
            lrx=_u(rng, 0.013, 0.019),
            lry=_u(rng, 0.7, 1.0),
        )
        g.update(bridge=_u(rng, 0.005, 0.01), frame=_u(rng, 0.0015, 0.004))
    elif family == "bra":
        g.update(
            cup=_pick(rng, [0, 1], [0.5, 0.5]),
            strap_w=_u(rng, 0.002, 0.005),
            band=_u(rng, 0.008, 0.02),
            bow=_pick(rng, [0, 1], [0.6, 0.4]),
        )
    elif family == "panty":
        styles = [0, 1, 2, 3]
        weights = {1: [0.45, 0.25, 0.0, 0.3], 2: [0.3, 0.0, 0.7, 0.0], 3: [0.6, 0.0, 0.4, 0.0]}[section]
        g.update(style=_pick(rng, styles, weights), band=_u(rng, 0.006, 0.016), cut=_u(rng, 0.0, 1.0))
    else:  # pragma: no cover - every taxonomy family is handled above
        raise ValueError(f"no shape sampler for family {family!r}")
    return g


def _sample_top(name: str, section: int, rng: np.random.Generator, g: Shape) -> None:
    if name == "SHIRT":
        neck = COLLAR
        sleeve = _pick(rng, [1, 0], [0.8, 0.2])
        sleeve = _u(rng, 0.9, 1.0) if sleeve else _u(rng, 0.25, 0.4)
        g.update(
            placket=1.0, buttons=float(rng.integers(4, 7)), pocket=_pick(rng, [0, 1], [0.5, 0.5]), curved=1.0
        )
    elif name == "T-SHIRT":
        neck = _pick(rng, [CREW, VNECK, BOAT], [0.75, 0.2, 0.05])
        sleeve = _pick(rng, [0, 1, 2], [0.75, 0.15, 0.1])
        sleeve = {0: _u(rng, 0.2, 0.35), 1: _u(rng, 0.9, 1.0), 2: _u(rng, 0.4, 0.55)}[int(sleeve)]
        g.update(pocket=_pick(rng, [0, 1], [0.85, 0.15]), curved=0.0)
    elif name == "SWEATER":
        neck = _pick(rng, [CREW, VNECK, TURTLE, BOAT], [0.5, 0.2, 0.22, 0.08])
        sleeve = _u(rng, 0.92, 1.02)
        g.update(rib=1.0, curved=0.0)
    elif name == "SWEATSHIRT":
        neck = _pick(rng, [CREW, HOOD], [0.55, 0.45])
        sleeve = _u(rng, 0.93, 1.02)
        g.update(rib=1.0, kangaroo=_pick(rng, [0, 1], [0.5, 0.5]) if neck == HOOD else 0.0, curved=0.0)
    elif name == "DRESS":
        neck = _pick(rng, [CREW, VNECK, SQUARE, STRAPS, BOAT, COLLAR], [0.25, 0.25, 0.12, 0.2, 0.08, 0.1])
        sleeve = 0.0 if neck == STRAPS else _pick(rng, [0, 1, 2, 3], [0.35, 0.3, 0.15, 0.2])
        sleeve = {0: 0.0, 1: _u(rng, 0.15, 0.3), 2: _u(rng, 0.45, 0.6), 3: _u(rng, 0.9, 1.0)}[int(sleeve)]
        g.update(placket=1.0 if neck == COLLAR else 0.0, buttons=float(rng.integers(3, 6)), curved=0.0)
    else:  # TOPS AND OTHERS: camisoles, blouses, crop tops, bodies
        neck = _pick(rng, [CREW, VNECK, SQUARE, STRAPS, BOAT], [0.2, 0.2, 0.15, 0.3, 0.15])
        sleeve = 0.0 if neck == STRAPS else _pick(rng, [0, 1, 2], [0.4, 0.35, 0.25])
        sleeve = {0: 0.0, 1: _u(rng, 0.15, 0.3), 2: _u(rng, 0.8, 1.0)}[int(sleeve)]
        g.update(curved=_pick(rng, [0, 1], [0.7, 0.3]), ruffle=_pick(rng, [0, 1], [0.75, 0.25]))
    loose = name in ("SWEATER", "SWEATSHIRT")
    g.update(neck=float(neck), sleeve=float(sleeve))
    g.update(
        neck_depth={
            VNECK: _u(rng, 0.035, 0.075),
            SQUARE: _u(rng, 0.03, 0.05),
            COLLAR: _u(rng, 0.02, 0.035),
        }.get(int(neck), _u(rng, 0.01, 0.022))
    )
    g.update(ease=_u(rng, 1.12, 1.35) if loose else _u(rng, 1.02, 1.25), fit=_u(rng, 0.88, 1.12))
    g.update(sleeve_ease=_u(rng, 1.35, 2.0), cuff=_u(rng, 0.8, 1.05), flare=_u(rng, 0.0, 0.02))
    crop = name == "TOPS AND OTHERS" and rng.random() < 0.25
    g.update(hem=_u(rng, -0.45, -0.1) if crop else _u(rng, 0.35, 1.25))
    if name in ("T-SHIRT", "SWEATSHIRT") and section != 0:
        chance = 0.45 if section == 3 else 0.25
        kind = (
            _pick(rng, [PRINT_CIRCLE, PRINT_STAR, PRINT_TEXT, PRINT_BANDS], [0.3, 0.2, 0.35, 0.15])
            if rng.random() < chance
            else NO_PRINT
        )
        g.update(print=float(kind), print_size=_u(rng, 0.03, 0.06), print_dy=_u(rng, -0.01, 0.03))


def _sample_trousers(name: str, section: int, rng: np.random.Generator, g: Shape) -> None:
    shorts = name == "SHORTS"
    g.update(rise=_u(rng, -0.01, 0.035), waist_ease=_u(rng, 1.02, 1.1), hip_ease=_u(rng, 1.02, 1.15))
    style = _pick(rng, [0, 1, 2, 3], [0.35, 0.3, 0.25, 0.1])  # straight, slim, wide, jogger
    if name == "JEANS":
        style = _pick(rng, [0, 1, 2], [0.4, 0.4, 0.2])
    hem_w = {
        0: _u(rng, 0.03, 0.04),
        1: _u(rng, 0.021, 0.028),
        2: _u(rng, 0.05, 0.075),
        3: _u(rng, 0.02, 0.025),
    }[int(style)]
    g.update(style=style, hem_w=hem_w, knee_ease=_u(rng, 0.004, 0.016) + (0.015 if style == 2 else 0.0))
    if shorts:
        g.update(hem_y=_u(rng, 0.04, 0.16), hem_w=_u(rng, 1.15, 1.6))  # hem: below crotch; width: x thigh
    else:
        g.update(hem_y=_u(rng, 0.9, 0.975) if rng.random() < 0.8 else _u(rng, 0.85, 0.9))
    g.update(
        pockets=1.0 if name == "JEANS" else _pick(rng, [0, 2], [0.7, 0.3]),
        crease=_pick(rng, [0, 1], [0.6, 0.4]) if name == "TROUSERS" else 0.0,
    )
    g.update(
        turnup=_pick(rng, [0, 1], [0.8, 0.2]), fade=_pick(rng, [0, 1], [0.4, 0.6]) if name == "JEANS" else 0.0
    )
    g.update(rips=_pick(rng, [0, 1], [0.8, 0.2]) if name == "JEANS" else 0.0)


def _sample_outer(name: str, section: int, rng: np.random.Generator, g: Shape) -> None:
    if name == "COAT":
        hem = _u(rng, 0.6, 0.86)
        g.update(
            lapel=_pick(rng, [0, 1, 2], [0.25, 0.35, 0.4]),
            belt=_pick(rng, [0, 1], [0.7, 0.3]),
            zip=0.0,
            quilt=_pick(rng, [0, 1], [0.85, 0.15]),
        )
    elif name == "BLAZER":
        hem = _u(rng, 0.47, 0.55)
        g.update(lapel=1.0, belt=0.0, zip=0.0, quilt=0.0, double=_pick(rng, [0, 1], [0.75, 0.25]))
    else:  # JACKET: denim, bomber, biker, puffer, overshirt
        hem = _u(rng, 0.4, 0.5)
        g.update(
            lapel=_pick(rng, [0, 2], [0.75, 0.25]),
            belt=0.0,
            zip=_pick(rng, [0, 1], [0.5, 0.5]),
            quilt=_pick(rng, [0, 1], [0.75, 0.25]),
        )
        g.update(hood=_pick(rng, [0, 1], [0.8, 0.2]), collar=_pick(rng, [0, 1], [0.4, 0.6]))
    g.update(hem_y=hem, ease=_u(rng, 1.2, 1.4) + (0.08 if g.get("quilt") else 0.0), fit=_u(rng, 0.92, 1.1))
    g.update(
        sleeve=_u(rng, 0.93, 1.03),
        sleeve_ease=_u(rng, 1.7, 2.2),
        button_y=_u(rng, 0.0, 1.0),
        gap=_u(rng, 0.012, 0.04),
    )
    g.update(
        buttons=float(rng.integers(1, 5)), pockets=_pick(rng, [0, 1], [0.4, 0.6]), flare=_u(rng, 0.0, 0.12)
    )


def _sample_shoes(name: str, section: int, rng: np.random.Generator, g: Shape) -> None:
    woman = section == 1
    if name == "SNEAKERS":
        g.update(
            heel=0.0,
            sole=_u(rng, 0.008, 0.014),
            collar=_u(rng, 0.75, 0.95) if rng.random() < 0.85 else _u(rng, 1.3, 1.6),
            toe=0.0,
            laces=1.0,
        )
        g.update(stripe=_pick(rng, [0, 1], [0.4, 0.6]), toe_cap=_pick(rng, [0, 1], [0.6, 0.4]))
    elif name == "BOOTS":
        g.update(heel=_u(rng, 0.0, 0.035) if woman else _u(rng, 0.004, 0.012), sole=_u(rng, 0.005, 0.012))
        g.update(
            shaft=_u(rng, 0.04, 0.22),
            toe=_pick(rng, [0, 1, 2], [0.6, 0.25, 0.15]),
            laces=_pick(rng, [0, 1], [0.6, 0.4]),
            chelsea=_pick(rng, [0, 1], [0.6, 0.4]),
        )
    else:
        g.update(
            heel=_pick(rng, [0, 1], [0.45, 0.55]) * _u(rng, 0.01, 0.045) if woman else _u(rng, 0.003, 0.01)
        )
        g.update(
            sole=_u(rng, 0.003, 0.007),
            collar=_u(rng, 0.55, 0.75),
            toe=_pick(rng, [0, 1, 2], [0.5, 0.35, 0.15]),
        )
        g.update(
            laces=_pick(rng, [0, 1], [0.55, 0.45]) if not woman else _pick(rng, [0, 1], [0.85, 0.15]),
            strap=_pick(rng, [0, 1], [0.8, 0.2]),
        )
    g.update(length=_u(rng, 0.95, 1.1), toe_h=_u(rng, 0.85, 1.2))


def build_silhouette(category: Category, shape: Shape, body: BodyShape, pose: Pose) -> Silhouette:
    """Draw operations for ``category`` with ``shape`` on ``body`` in ``pose`` (body coordinates)."""
    family = category.family
    if family in ("top", "trousers"):
        builder = tops.top if family == "top" else bottoms.trousers
        return builder(shape, body, pose, category.name)
    builders = {
        "dress": tops.dress,
        "outer": tops.outer,
        "skirt": bottoms.skirt,
        "shoes": accessories.shoes,
        "socks": accessories.socks,
        "bag": accessories.bag,
        "hat": accessories.hat,
        "scarf": accessories.scarf,
        "belt": accessories.belt,
        "sunglasses": accessories.sunglasses,
        "bra": accessories.bra,
        "panty": accessories.panty,
    }
    return builders[family](shape, body, pose)
