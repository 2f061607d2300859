"""Periodic pattern and fabric-texture tiles.

A garment's pattern is one square tile repeated over the garment in *body coordinates* (see body.py),
so the same product shows the same stripes, checks or print at the same scale relative to its shape in
the catalogue shot and in every bundle photo, whatever the warp. Tiles are periodic by construction
(wrapped drawing, FFT-filtered noise) so repetition shows no seams.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, ImageDraw

PATTERN_TILE_PX = 64
TEXTURE_TILE_PX = 64

# Relative frequency of each pattern for woven tops/dresses; categories override (taxonomy families).
PATTERN_KINDS: tuple[str, ...] = (
    "plain",
    "stripes",
    "breton",
    "pinstripe",
    "checks",
    "gingham",
    "tartan",
    "dots",
    "floral",
    "geometric",
    "leopard",
)


@dataclass(frozen=True)
class PatternSpec:
    """Article-level pattern: ``period`` in body units per tile, ``angle`` in radians, kind-specific
    ``params`` (fractions of the tile); ``seed`` drives the random layout of prints."""

    kind: str
    period: float
    angle: float
    params: tuple[float, ...]
    seed: int


@dataclass(frozen=True)
class TextureSpec:
    """Fabric grain: a grey multiplier tile (mean 1) repeated every ``period`` body units, scaled by
    ``amplitude``."""

    kind: str
    period: float
    amplitude: float
    seed: int


@functools.lru_cache(maxsize=4)
def _supersampled_grid(n: int, factor: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Tile coordinates u, v in [0, 1) on an ``n*factor`` square grid (pixel centres)."""
    coords = (np.arange(n * factor, dtype=np.float32) + 0.5) / (n * factor)
    return np.meshgrid(coords, coords)


def _downsample(values: np.ndarray, factor: int = 4) -> np.ndarray:
    """Box-filter an (n*f, n*f[, c]) array to (n, n[, c]): anti-aliased band edges."""
    n = values.shape[0] // factor
    shape = (n, factor, n, factor, *values.shape[2:])
    return values.reshape(shape).mean(axis=(1, 3))


def _bands(coord: np.ndarray, starts: list[float], widths: list[float]) -> np.ndarray:
    """1 where ``coord`` (in [0, 1)) falls in one of the periodic bands [start, start + width)."""
    mask = np.zeros_like(coord)
    for start, width in zip(starts, widths):
        mask = np.maximum(mask, ((coord - start) % 1.0 < width).astype(np.float32))
    return mask


def _draw_wrapped_ellipse(
    draw: ImageDraw.ImageDraw, size: int, cx: float, cy: float, rx: float, ry: float, fill: tuple
) -> None:
    """Draw an ellipse and its copies shifted by +-size so it wraps around the tile edges."""
    for dx in (-size, 0, size):
        for dy in (-size, 0, size):
            draw.ellipse((cx + dx - rx, cy + dy - ry, cx + dx + rx, cy + dy + ry), fill=fill)


def _draw_wrapped_polygon(draw: ImageDraw.ImageDraw, size: int, points: np.ndarray, fill: tuple) -> None:
    for dx in (-size, 0, size):
        for dy in (-size, 0, size):
            draw.polygon([(float(x + dx), float(y + dy)) for x, y in points], fill=fill)


def pattern_tile(
    spec: PatternSpec, base: tuple[int, int, int], accent: tuple[int, int, int], accent2: tuple[int, int, int]
) -> np.ndarray | None:
    """RGB tile (PATTERN_TILE_PX, PATTERN_TILE_PX, 3) float32 in 0..1, or None for a plain garment."""
    if spec.kind == "plain":
        return None
    n = PATTERN_TILE_PX
    b = np.asarray(base, np.float32) / 255.0
    a = np.asarray(accent, np.float32) / 255.0
    a2 = np.asarray(accent2, np.float32) / 255.0
    p = spec.params
    if spec.kind in ("stripes", "breton", "pinstripe", "checks", "gingham", "tartan"):
        u, v = _supersampled_grid(n, 2)
        if spec.kind in ("stripes", "breton", "pinstripe"):
            mask = _bands(v, [0.0], [p[0]])
            second = _bands(v, [0.5], [p[1]]) if p[1] > 0 else np.zeros_like(v)
            rgb = b * (1 - mask[..., None]) + a * mask[..., None]
            rgb = rgb * (1 - second[..., None]) + a2 * second[..., None]
        elif spec.kind == "checks":  # windowpane: thin lines both ways
            mask = np.maximum(_bands(u, [0.0], [p[0]]), _bands(v, [0.0], [p[0]]))
            rgb = b * (1 - mask[..., None]) + a * mask[..., None]
        elif spec.kind == "gingham":  # half-tone where one band crosses, full accent where both do
            mix = 0.5 * (_bands(u, [0.0], [0.5]) + _bands(v, [0.0], [0.5]))
            rgb = b * (1 - mix[..., None]) + a * mix[..., None]
        else:  # tartan: a woven mix of a warp and a weft colour sequence
            starts = [0.0, p[0], 0.55]
            widths = [p[0] * 0.6, p[1], 0.08]
            warp = _bands(u, starts[:2], widths[:2])[..., None]
            weft = _bands(v, starts[:2], widths[:2])[..., None]
            fine_u = _bands(u, starts[2:], widths[2:])[..., None]
            fine_v = _bands(v, starts[2:], widths[2:])[..., None]
            col_u = b * (1 - warp) + a * warp
            col_u = col_u * (1 - fine_u) + a2 * fine_u
            col_v = b * (1 - weft) + a * weft
            col_v = col_v * (1 - fine_v) + a2 * fine_v
            rgb = 0.5 * (col_u + col_v)
        return _downsample(rgb.astype(np.float32), 2)
    # Printed motifs: draw at 2x with wraparound, then area-downsample.
    rng = np.random.default_rng(spec.seed)
    size = 2 * n
    image = Image.new("RGB", (size, size), tuple(int(c) for c in base))
    draw = ImageDraw.Draw(image)
    acc, acc2 = tuple(int(c) for c in accent), tuple(int(c) for c in accent2)
    if spec.kind == "dots":
        r = p[0] * size
        _draw_wrapped_ellipse(draw, size, 0.25 * size, 0.25 * size, r, r, acc)
        _draw_wrapped_ellipse(draw, size, 0.75 * size, 0.75 * size, r, r, acc)
    elif spec.kind == "floral":
        for _ in range(int(p[0])):
            cx, cy = rng.uniform(0, size, 2)
            petal = rng.uniform(0.05, 0.09) * size
            for k in range(5):
                ang = 2 * np.pi * k / 5 + rng.uniform(0, 0.5)
                px, py = cx + np.cos(ang) * petal, cy + np.sin(ang) * petal
                _draw_wrapped_ellipse(draw, size, px, py, petal * 0.75, petal * 0.75, acc)
            _draw_wrapped_ellipse(draw, size, cx, cy, petal * 0.5, petal * 0.5, acc2)
            lx, ly = cx + rng.uniform(-2, 2) * petal, cy + rng.uniform(1.5, 2.5) * petal
            _draw_wrapped_ellipse(draw, size, lx, ly, petal * 0.9, petal * 0.4, acc2)
    elif spec.kind == "geometric":
        for _ in range(int(p[0])):
            cx, cy = rng.uniform(0, size, 2)
            r = rng.uniform(0.05, 0.1) * size
            sides = int(rng.integers(3, 5))
            rot = rng.uniform(0, np.pi)
            ang = rot + 2 * np.pi * np.arange(sides) / sides
            pts = np.stack([cx + r * np.cos(ang), cy + r * np.sin(ang)], axis=1)
            _draw_wrapped_polygon(draw, size, pts, acc if rng.random() < 0.6 else acc2)
    else:  # leopard: dark broken rings around lighter blobs
        for _ in range(int(p[0])):
            cx, cy = rng.uniform(0, size, 2)
            rx, ry = rng.uniform(0.06, 0.11, 2) * size
            _draw_wrapped_ellipse(draw, size, cx, cy, rx, ry, acc2)
            _draw_wrapped_ellipse(
                draw, size, cx + rng.uniform(-2, 2), cy + rng.uniform(-2, 2), rx * 0.6, ry * 0.6, acc
            )
    tile = np.asarray(image, dtype=np.float32) / 255.0
    return cv2.resize(tile, (n, n), interpolation=cv2.INTER_AREA)


def _periodic_noise(n: int, sigma_x: float, sigma_y: float, rng: np.random.Generator) -> np.ndarray:
    """Zero-mean, unit-std Gaussian-filtered white noise on an ``n`` x ``n`` torus (seamless)."""
    white = rng.standard_normal((n, n))
    fy = np.fft.fftfreq(n)[:, None]
    fx = np.fft.fftfreq(n)[None, :]
    transfer = np.exp(-2 * (np.pi**2) * ((fx * sigma_x) ** 2 + (fy * sigma_y) ** 2))
    noise = np.real(np.fft.ifft2(np.fft.fft2(white) * transfer))
    return (noise - noise.mean()) / (noise.std() + 1e-8)


def texture_tile(spec: TextureSpec) -> np.ndarray:
    """Grey multiplier tile (TEXTURE_TILE_PX, TEXTURE_TILE_PX) float32 with mean ~1."""
    n = TEXTURE_TILE_PX
    rng = np.random.default_rng(spec.seed)
    y, x = np.mgrid[0:n, 0:n].astype(np.float64) / n
    if spec.kind == "knit":  # vertical wales of small chevrons
        wales = 8
        col = (x * wales) % 1.0
        row = (y * wales * 2 + np.abs(col - 0.5)) % 1.0
        base = 0.6 * np.cos(2 * np.pi * col) + 0.4 * np.cos(2 * np.pi * row)
        noise = base + 0.5 * _periodic_noise(n, 1.0, 1.0, rng)
    elif spec.kind == "denim":  # diagonal twill plus vertical slub streaks
        twill = np.cos(2 * np.pi * 16 * (x + y))
        noise = (
            0.6 * twill + 0.8 * _periodic_noise(n, 0.6, 6.0, rng) + 0.3 * _periodic_noise(n, 0.7, 0.7, rng)
        )
    elif spec.kind == "corduroy":
        noise = np.cos(2 * np.pi * 10 * x) + 0.3 * _periodic_noise(n, 1.0, 1.0, rng)
    elif spec.kind == "leather":
        noise = 0.7 * _periodic_noise(n, 4.0, 4.0, rng) + 0.5 * _periodic_noise(n, 0.8, 0.8, rng)
    elif spec.kind == "quilt":  # padded channels
        noise = -np.abs(np.cos(np.pi * 3 * y)) * 2 + 0.3 * _periodic_noise(n, 1.0, 1.0, rng)
    else:  # cotton, satin: fine even grain
        noise = _periodic_noise(n, 0.7, 0.7, rng)
    noise = (noise - noise.mean()) / (noise.std() + 1e-8)
    return (1.0 + spec.amplitude * noise).astype(np.float32)
