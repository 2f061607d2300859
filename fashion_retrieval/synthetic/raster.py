"""Rasterise a silhouette through a homography into an anti-aliased, patterned, shaded sprite.

Shapes are drawn at ``supersample`` x resolution into a label map (PIL polygons, later operations on
top), coloured per label, then box-downsampled: smooth edges at a fraction of the cost of per-pixel
coverage. Pattern and fabric texture are sampled in body coordinates through the inverse homography,
so they stretch, rotate and foreshorten with the garment.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, ImageDraw

from fashion_retrieval.synthetic.geometry import PATTERN_SHADE, Silhouette, apply_h, local_scale

_SHADE_SCALE = 200.0  # pattern shade factors (up to 1.12) stored as uint8 = factor * 200


@dataclass
class Material:
    """How a silhouette is coloured.

    ``pattern``: (n, n, 3) float32 tile in 0..1 or None (solid ``base``); ``pattern_map``: 3x3 affine from
    body coordinates to pattern-tile pixels. ``texture``: (m, m) grey multiplier tile or None, with
    ``texture_map`` likewise. ``flat``: RGB 0..1 per flat role (trim, accent, metal, lens...).
    """

    base: np.ndarray
    pattern: np.ndarray | None
    pattern_map: np.ndarray
    texture: np.ndarray | None
    texture_map: np.ndarray
    flat: dict[str, np.ndarray]
    edge_shading: float = 0.22
    fold_strength: float = 0.22


@dataclass
class Sprite:
    """A rendered layer: straight (not premultiplied) ``rgb`` (h, w, 3) float32 and ``alpha`` (h, w)
    float32, both in 0..1, whose top-left pixel is image pixel (``x0``, ``y0``)."""

    rgb: np.ndarray
    alpha: np.ndarray
    x0: int
    y0: int

    @property
    def box(self) -> tuple[int, int, int, int]:
        return self.x0, self.y0, self.x0 + self.alpha.shape[1], self.y0 + self.alpha.shape[0]


def _tile_level(tile: np.ndarray, texels_per_pixel: float) -> tuple[np.ndarray, float]:
    """Pre-shrink a tile that would be minified (a cheap mip-map): avoids moire on small garments."""
    factor = 1.0
    while texels_per_pixel / factor > 1.6 and tile.shape[0] >= 8:
        tile = cv2.resize(tile, (tile.shape[1] // 2, tile.shape[0] // 2), interpolation=cv2.INTER_AREA)
        factor *= 2
    return tile, factor


def _sample_tile(
    tile: np.ndarray, body_to_tile: np.ndarray, pixel_to_body: np.ndarray, size: tuple[int, int], ppu: float
) -> np.ndarray:
    """Tile values at every pixel of a (w, h) ``size`` patch, wrapping around the tile."""
    texels_per_unit = float(np.sqrt(abs(np.linalg.det(body_to_tile[:2, :2]))))
    tile, factor = _tile_level(tile, texels_per_unit / max(ppu, 1e-6))
    m = np.diag([1 / factor, 1 / factor, 1.0]) @ body_to_tile @ pixel_to_body
    return cv2.warpPerspective(
        tile, m, size, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_WRAP
    )


def render(
    sil: Silhouette,
    material: Material,
    h: np.ndarray,
    clip: tuple[int, int, int, int],
    supersample: int = 2,
) -> Sprite | None:
    """Draw ``sil`` through homography ``h`` (body -> image pixels) restricted to ``clip`` = (x0, y0, x1, y1).

    Returns None when nothing falls inside ``clip``.
    """
    if not sil.ops:
        return None
    if len(sil.ops) > 254:
        raise ValueError("a silhouette holds at most 254 draw operations")
    bx0, by0, bx1, by1 = sil.bounds()
    centre = ((bx0 + bx1) / 2, (by0 + by1) / 2)
    ppu = local_scale(h, centre)
    mapped = [apply_h(h, op.points) for op in sil.ops]
    allpts = np.concatenate(mapped, axis=0)
    pad = max(op.width for op in sil.ops) * ppu / 2 + 2
    x0 = max(int(np.floor(allpts[:, 0].min() - pad)), clip[0])
    y0 = max(int(np.floor(allpts[:, 1].min() - pad)), clip[1])
    x1 = min(int(np.ceil(allpts[:, 0].max() + pad)), clip[2])
    y1 = min(int(np.ceil(allpts[:, 1].max() + pad)), clip[3])
    if x1 <= x0 or y1 <= y0:
        return None
    w, hgt = x1 - x0, y1 - y0
    ss = supersample
    label_img = Image.new("L", (w * ss, hgt * ss), 0)
    draw = ImageDraw.Draw(label_img)
    offset = np.array([x0, y0], float)
    for label, (op, pts) in enumerate(zip(sil.ops, mapped), start=1):
        local = [tuple(p) for p in ((pts - offset) * ss).tolist()]
        if op.width > 0:
            width = max(1, round(op.width * ppu * ss))
            draw.line(local, fill=label, width=width, joint="curve")
        elif len(local) >= 3:
            draw.polygon(local, fill=label)
    labels = np.asarray(label_img)
    # Per-label colour look-up at the supersampled size, in uint8 so cv2.LUT/resize stay cheap.
    n_ops = len(sil.ops)
    flat_lut = np.zeros((256, 1, 3), np.uint8)
    shade_lut = np.zeros(256, np.uint8)
    alpha_lut = np.zeros(256, np.uint8)
    alpha_lut[1 : n_ops + 1] = 255
    for label, op in enumerate(sil.ops, start=1):
        if op.role in PATTERN_SHADE:
            shade_lut[label] = round(PATTERN_SHADE[op.role] * _SHADE_SCALE)
        else:
            flat_lut[label, 0] = np.round(np.clip(material.flat[op.role], 0, 1) * 255).astype(np.uint8)
    small = (w, hgt)
    alpha = (
        cv2.resize(cv2.LUT(labels, alpha_lut), small, interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    )
    if not alpha.any():
        return None
    flat = cv2.resize(
        cv2.LUT(cv2.merge([labels, labels, labels]), flat_lut), small, interpolation=cv2.INTER_AREA
    )
    shade = cv2.resize(cv2.LUT(labels, shade_lut), small, interpolation=cv2.INTER_AREA)
    flat = flat.astype(np.float32) / 255
    shade = shade.astype(np.float32) / _SHADE_SCALE
    pixel_to_body = np.linalg.inv(h) @ np.array([[1.0, 0, x0 + 0.5], [0, 1.0, y0 + 0.5], [0, 0, 1.0]])
    if material.pattern is None:
        pattern = np.broadcast_to(material.base, (hgt, w, 3))
    else:
        pattern = _sample_tile(material.pattern, material.pattern_map, pixel_to_body, small, ppu)
    premult = flat + shade[..., None] * pattern
    rgb = premult / np.maximum(alpha, 1e-4)[..., None]
    light = np.ones((hgt, w), np.float32)
    if material.texture is not None:
        light *= _sample_tile(material.texture, material.texture_map, pixel_to_body, small, ppu)
    if material.edge_shading > 0:  # darker towards the silhouette's edges: reads as volume
        sigma = max(1.0, 0.012 * ppu)
        soft = cv2.GaussianBlur(alpha, (0, 0), sigma)
        light *= 1 - material.edge_shading * (1 - np.clip((soft - 0.5) * 2.2, 0, 1))
    if sil.folds and material.fold_strength > 0:
        fold_img = Image.new("L", small, 0)
        fold_draw = ImageDraw.Draw(fold_img)
        fold_w = max(1, round(0.006 * ppu))
        for fold in sil.folds:
            fold_draw.line([tuple(p) for p in (apply_h(h, fold) - offset).tolist()], fill=255, width=fold_w)
        folds = cv2.GaussianBlur(np.asarray(fold_img, np.float32) / 255.0, (0, 0), max(0.8, 0.006 * ppu))
        light *= 1 - material.fold_strength * np.clip(folds * 1.5, 0, 1)
    rgb = np.clip(rgb * light[..., None], 0, 1).astype(np.float32)
    return Sprite(rgb=rgb, alpha=alpha, x0=x0, y0=y0)


def composite(canvas: np.ndarray, sprite: Sprite) -> None:
    """Alpha-blend ``sprite`` over ``canvas`` (H, W, 3) float32 in place, clipping to the canvas."""
    height, width = canvas.shape[:2]
    x0, y0, x1, y1 = sprite.box
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    if cx1 <= cx0 or cy1 <= cy0:
        return
    a = sprite.alpha[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0, None]
    c = sprite.rgb[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]
    region = canvas[cy0:cy1, cx0:cx1]
    region *= 1 - a
    region += a * c
