"""Image composition: catalogue packshots and bundle photos.

A packshot is the garment alone, in the flat ``PACKSHOT_POSE``, centred on a light studio background
with a soft shadow. A bundle photo dresses a figure (skin, hair, pose, framing, slight perspective) in
its outfit layer by layer, adds a background and maybe a foreground occluder, then degrades the photo
(light fall-off, white balance, exposure, blur, sensor noise; JPEG comes at encoding). Visibility of each
garment is measured from the layer stack so the box file can say how much of it the photo shows.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

from fashion_retrieval.synthetic import backgrounds
from fashion_retrieval.synthetic.body import BODY_SHAPES, PACKSHOT_POSE, Pose, body_silhouette
from fashion_retrieval.synthetic.catalogue import (
    Article,
    CatalogueLayout,
    filler_article,
    material,
    skin_material,
)
from fashion_retrieval.synthetic.garments import build_silhouette
from fashion_retrieval.synthetic.geometry import local_scale, rotate, scale, translate
from fashion_retrieval.synthetic.palette import HAIR_COLOURS, SKIN_TONES
from fashion_retrieval.synthetic.raster import Sprite, composite, render
from fashion_retrieval.synthetic.rng import Domain, item_rng
from fashion_retrieval.synthetic.taxonomy import LAYER, Slot


@dataclass(frozen=True)
class SceneConfig:
    """Rendering knobs taken from the spec (sizes are (width, height) in pixels)."""

    seed: int
    product_size: tuple[int, int]
    bundle_size: tuple[int, int]
    product_jpeg_quality: tuple[int, int]
    bundle_jpeg_quality: tuple[int, int]
    blur_sigma_max: float
    noise_sigma_max: float
    occluder_probability: float
    studio_probability: float
    min_visible_fraction: float
    supersample: int


@dataclass(frozen=True)
class WornItem:
    """One garment in an outfit: a catalogue ``product`` row, or -1 for an unlisted filler garment."""

    slot: Slot
    category: int
    product: int


@dataclass(frozen=True)
class BundlePlan:
    """A bundle to render: its index (row of bundles_dataset.csv), section, split and outfit."""

    index: int
    section: int
    test: bool
    items: tuple[WornItem, ...]


@dataclass(frozen=True)
class GarmentBox:
    """A listed product as it appears in a bundle photo: amodal box (x2, y2 exclusive, clipped) and the
    visible share of its pixels."""

    product: int
    box: tuple[int, int, int, int]
    visible_fraction: float


def to_uint8(img: np.ndarray) -> np.ndarray:
    """Non-negative float image in 0..1 (values above 1 saturate) to uint8."""
    return cv2.convertScaleAbs(img, alpha=255.0)


def render_packshot(item: Article, variant: int, cfg: SceneConfig, index: int) -> np.ndarray:
    """Catalogue image of product row ``index`` (variant ``variant`` of ``item``): (H, W, 3) uint8 RGB."""
    rng = item_rng(cfg.seed, Domain.PACKSHOT, index)
    w, h = cfg.product_size
    body = BODY_SHAPES[item.section]
    sil = build_silhouette(item.category_info, item.shape, body, PACKSHOT_POSE)
    x0, y0, x1, y1 = sil.bounds()
    fill = rng.uniform(0.78, 0.88)
    s = fill * min(w / (x1 - x0), h / (y1 - y0))
    centre = (w / 2 + rng.normal(0, w * 0.01), h / 2 + rng.normal(0, h * 0.01))
    hom = (
        translate(*centre)
        @ rotate(rng.normal(0, 0.01))
        @ scale(s)
        @ translate(-(x0 + x1) / 2, -(y0 + y1) / 2)
    )
    grey = rng.uniform(0.92, 0.98)
    tint = (1 + rng.normal(0, 0.008, 3)).astype(np.float32)
    column = (grey * (1 - 0.03 * np.linspace(0, 1, h, dtype=np.float32)))[:, None, None] * tint
    canvas = np.repeat(np.repeat(column, w, axis=1), 1, axis=2)
    sprite = render(sil, material(item, variant), hom, (0, 0, w, h), cfg.supersample)
    if sprite is not None:
        full = np.zeros((h, w), np.float32)
        _paste_alpha(full, sprite)
        shadow = cv2.GaussianBlur(full, (0, 0), max(1.0, 0.02 * w))
        shadow = cv2.warpAffine(shadow, np.float32([[1, 0, 0.01 * w], [0, 1, 0.015 * h]]), (w, h))
        canvas *= (1 - rng.uniform(0.12, 0.22) * shadow)[..., None]
        composite(canvas, sprite)
    canvas *= rng.uniform(0.97, 1.03)
    return _add_noise(to_uint8(canvas), 1.2, rng)


@functools.lru_cache(maxsize=4)
def _noise_bank(h: int, w: int) -> np.ndarray:
    """A fixed block of unit Gaussian noise larger than the image; images take shifted crops of it
    (drawing fresh normals per pixel costs more than rendering the photo)."""
    return np.random.default_rng(20260228).standard_normal((h + 61, w + 67, 3), dtype=np.float32)


def _add_noise(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian sensor noise of std ``sigma`` (0..255 units) on a uint8 image."""
    h, w = image.shape[:2]
    dy, dx = int(rng.integers(0, 61)), int(rng.integers(0, 67))
    noise = _noise_bank(h, w)[dy : dy + h, dx : dx + w]
    return np.clip(image + noise * np.float32(sigma), 0, 255).astype(np.uint8)


def _paste_alpha(full: np.ndarray, sprite: Sprite) -> None:
    """Write ``sprite``'s alpha into the image-sized array ``full`` (clipped)."""
    height, width = full.shape
    x0, y0, x1, y1 = sprite.box
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    if cx1 > cx0 and cy1 > cy0:
        full[cy0:cy1, cx0:cx1] = sprite.alpha[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]


def _amodal_box(sprite: Sprite, width: int, height: int) -> tuple[int, int, int, int] | None:
    """Box of the garment's full extent (hidden parts included), clipped to the image; None if outside."""
    solid = sprite.alpha > 0.5
    if not solid.any():
        solid = sprite.alpha > 0
    rows = np.flatnonzero(solid.any(axis=1))
    cols = np.flatnonzero(solid.any(axis=0))
    x1, y1 = sprite.x0 + int(cols[0]), sprite.y0 + int(rows[0])
    x2, y2 = sprite.x0 + int(cols[-1]) + 1, sprite.y0 + int(rows[-1]) + 1
    x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, width), min(y2, height)
    return (x1, y1, x2, y2) if x2 > x1 and y2 > y1 else None


def _pose(rng: np.random.Generator) -> Pose:
    return Pose(
        arm_r=float(rng.uniform(0.05, 0.4)),
        arm_l=float(rng.uniform(0.05, 0.4)),
        leg_r=float(rng.uniform(0.0, 0.1)),
        leg_l=float(rng.uniform(0.0, 0.1)),
        foot_dir=int(rng.choice([-1, 1])),
        worn=True,
    )


def _camera(plan: BundlePlan, cfg: SceneConfig, rng: np.random.Generator) -> tuple[np.ndarray, bool]:
    """Body -> image homography (framing, lean, turn, keystone) and whether the feet are in frame."""
    w, h = cfg.bundle_size
    low_slots = {Slot.SHOES, Slot.SOCKS}
    needs_feet = any(item.slot in low_slots and item.product >= 0 for item in plan.items)
    kid = plan.section == 3
    full = needs_feet or rng.random() < 0.65
    if full:
        fig = h * (rng.uniform(0.6, 0.8) if kid else rng.uniform(0.8, 0.93))
        top = rng.uniform(0.02 * h, max(0.021 * h, h - fig - 0.01 * h))
    else:  # cropped at the thighs/knees, like a half-body lookbook shot
        fig = h * (rng.uniform(0.95, 1.15) if kid else rng.uniform(1.15, 1.45))
        top = rng.uniform(0.01, 0.06) * h
    cx = w * rng.uniform(0.4, 0.6)
    turn = rng.uniform(0.86, 1.04)
    keystone = np.array([[1.0, 0, 0], [0, 1.0, 0], [rng.uniform(-0.25, 0.25), rng.uniform(-0.1, 0.1), 1.0]])
    hom = (
        translate(cx, top + fig / 2)
        @ rotate(rng.uniform(-0.05, 0.05))
        @ scale(fig * turn, fig)
        @ keystone
        @ translate(0, -0.5)
    )
    return hom, full


def _jitter(
    hom: np.ndarray, bounds: tuple[float, float, float, float], rng: np.random.Generator
) -> np.ndarray:
    """A small per-garment warp around its centre: fit and drape differ from the catalogue shot."""
    cx, cy = (bounds[0] + bounds[2]) / 2, (bounds[1] + bounds[3]) / 2
    local = translate(cx + rng.normal(0, 0.002), cy + rng.normal(0, 0.002)) @ rotate(rng.normal(0, 0.012))
    local = local @ scale(rng.uniform(0.97, 1.03), rng.uniform(0.97, 1.03)) @ translate(-cx, -cy)
    return hom @ local


@functools.lru_cache(maxsize=8)
def _unit_grid(w: int, h: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x, y in [-1, 1] and x^2 + y^2 over an (h, w) image (float32, cached per size)."""
    ys, xs = np.mgrid[-1 : 1 : complex(0, h), -1 : 1 : complex(0, w)].astype(np.float32)
    return xs, ys, xs**2 + ys**2


def _photometric(img: np.ndarray, cfg: SceneConfig, rng: np.random.Generator) -> np.ndarray:
    """Light fall-off and vignette, white balance/exposure/gamma/contrast (one per-channel LUT), blur and
    sensor noise. (H, W, 3) float32 in -> uint8 out."""
    h, w = img.shape[:2]
    xs, ys, r2 = _unit_grid(w, h)
    angle = rng.uniform(0, 2 * np.pi)
    field = 1 + rng.uniform(0, 0.18) * (np.cos(angle) * xs + np.sin(angle) * ys)
    field *= 1 - rng.uniform(0, 0.3) * (r2 / 2)
    img *= field[..., None]
    out = to_uint8(img)
    gains = rng.uniform(0.88, 1.12, 3)
    gains = gains / gains.mean() * rng.uniform(0.85, 1.15)
    gamma, contrast = rng.uniform(0.85, 1.15), rng.uniform(0.85, 1.1)
    x = np.arange(256, dtype=np.float64)[:, None] / 255
    curve = (np.clip(x * gains[None, :], 0, 1) ** gamma - 0.5) * contrast + 0.5
    out = cv2.LUT(out, np.round(np.clip(curve, 0, 1) * 255).astype(np.uint8).reshape(256, 1, 3))
    if rng.random() < 0.7 and cfg.blur_sigma_max > 0:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.3, max(0.3, cfg.blur_sigma_max)))
    elif rng.random() < 0.3:  # slight camera shake
        k = int(rng.integers(3, 6))
        kernel = np.zeros((k, k), np.float32)
        kernel[k // 2, :] = 1.0 / k
        rot = cv2.getRotationMatrix2D((k / 2 - 0.5, k / 2 - 0.5), rng.uniform(0, 180), 1.0)
        kernel = cv2.warpAffine(kernel, rot, (k, k))
        out = cv2.filter2D(out, -1, kernel / max(float(kernel.sum()), 1e-6))
    sigma = rng.uniform(0, cfg.noise_sigma_max)
    if sigma > 0.5:
        out = _add_noise(out, sigma, rng)
    return out


def render_bundle(
    plan: BundlePlan, layout: CatalogueLayout, cfg: SceneConfig
) -> tuple[np.ndarray, list[GarmentBox]]:
    """Bundle photo (H, W, 3) uint8 RGB and the listed products that stay visible enough, in plan order."""
    rng = item_rng(cfg.seed, Domain.SCENE, plan.index)
    w, h = cfg.bundle_size
    body = BODY_SHAPES[plan.section]
    pose = _pose(rng)
    hom, full = _camera(plan, cfg, rng)
    canvas, _ = backgrounds.background((w, h), rng, cfg.studio_probability)
    clip = (-w // 2, -h // 2, w + w // 2, h + h // 2)  # render a margin so cut-off garments count as hidden
    if full:  # soft contact shadow under the feet
        feet = hom @ np.array([0.0, body.ground_y, 1.0])
        fx, fy = feet[:2] / feet[2]
        ppu = local_scale(hom, (0.0, body.ground_y))
        rx, ry = 0.13 * ppu + 4, 0.02 * ppu + 3
        x0, x1 = max(int(fx - 3 * rx), 0), min(int(fx + 3 * rx) + 1, w)
        y0, y1 = max(int(fy - 3 * ry), 0), min(int(fy + 3 * ry) + 1, h)
        if x1 > x0 and y1 > y0:
            yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
            shadow = np.exp(-(((xx - fx) / rx) ** 2 + ((yy - fy) / ry) ** 2))
            canvas[y0:y1, x0:x1] *= 1 - 0.35 * shadow[..., None]
    skin = SKIN_TONES[int(rng.integers(len(SKIN_TONES)))]
    hair = HAIR_COLOURS[int(rng.integers(len(HAIR_COLOURS) - (1 if plan.section == 3 else 0)))]
    hair_style = int(
        rng.choice([0, 1, 2, 3], p=[0.15, 0.3, 0.4, 0.15] if plan.section != 2 else [0.8, 0.15, 0.05, 0.0])
    )
    bare_feet = not any(item.slot == Slot.SHOES for item in plan.items)
    layers: list[tuple[Sprite, int]] = []  # (sprite, position in plan.items or -1)
    figure = render(
        body_silhouette(body, pose, hair_style, bare_feet),
        skin_material(skin, hair),
        hom,
        clip,
        cfg.supersample,
    )
    if figure is not None:
        layers.append((figure, -1))
    order = sorted(range(len(plan.items)), key=lambda k: (LAYER[plan.items[k].slot], k))
    for k in order:
        item = plan.items[k]
        if item.product >= 0:
            art, variant = layout.product_article(cfg.seed, item.product)
        else:
            art, variant = filler_article(cfg.seed, plan.index, k, item.category, plan.section), 0
        sil = build_silhouette(art.category_info, art.shape, body, pose)
        sprite = render(sil, material(art, variant), _jitter(hom, sil.bounds(), rng), clip, cfg.supersample)
        if sprite is not None:
            layers.append((sprite, k))
    for sprite, _ in layers:
        composite(canvas, sprite)
    occluder = None
    if rng.random() < cfg.occluder_probability:
        occ_rgb, occ_alpha = backgrounds.occluder((w, h), rng)
        canvas = canvas * (1 - occ_alpha[..., None]) + occ_rgb * occ_alpha[..., None]
        occluder = occ_alpha.copy()
    # Visibility: walk the stack top-down, accumulating what is already covered.
    covered = occluder if occluder is not None else np.zeros((h, w), np.float32)
    found: dict[int, GarmentBox] = {}
    for sprite, k in reversed(layers):
        x0, y0, x1, y1 = sprite.box
        cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        inside = sprite.alpha[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0] if cx1 > cx0 and cy1 > cy0 else None
        region = covered[cy0:cy1, cx0:cx1]
        if k >= 0 and plan.items[k].product >= 0:
            total = float(sprite.alpha.sum())  # includes the part outside the frame: that is hidden too
            box = _amodal_box(sprite, w, h)
            if box is not None and inside is not None and total > 0:
                visible = float((inside * (1 - region)).sum()) / total
                found[k] = GarmentBox(plan.items[k].product, box, min(1.0, visible))
        if inside is not None:
            region += inside * (1 - region)
    kept = [found[k] for k in sorted(found) if found[k].visible_fraction >= cfg.min_visible_fraction]
    if not kept and found:  # never leave a bundle empty: keep its most visible product
        kept = [max(found.values(), key=lambda g: g.visible_fraction)]
    return _photometric(canvas, cfg, rng), kept
