"""Bundle-photo backgrounds and foreground occluders.

Backgrounds range from a plain studio sweep (like most real lookbook shots) to rooms, streets and
out-of-focus clutter whose colours come from the same fashion palette as the garments, so a colour
histogram of the whole photo says little about the products in it.
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image, ImageDraw

from fashion_retrieval.synthetic.palette import COLOURS

WALLS: tuple[tuple[int, int, int], ...] = (
    (236, 232, 224), (222, 216, 204), (200, 206, 210), (214, 200, 190), (190, 198, 186),
    (170, 180, 190), (226, 214, 190), (150, 160, 150), (240, 240, 238), (206, 190, 200),
)  # fmt: skip
FLOORS: tuple[tuple[int, int, int], ...] = (
    (150, 110, 76),
    (186, 150, 110),
    (120, 120, 122),
    (200, 196, 188),
    (96, 72, 56),
)
FACADES: tuple[tuple[int, int, int], ...] = (
    (210, 196, 170),
    (170, 90, 70),
    (226, 220, 204),
    (150, 150, 150),
    (196, 170, 130),
    (120, 130, 140),
)


def _c(
    rng: np.random.Generator, options: tuple[tuple[int, int, int], ...], spread: float = 8.0
) -> tuple[int, int, int]:
    base = np.asarray(options[int(rng.integers(len(options)))], float) + rng.normal(0, spread, 3)
    return tuple(int(v) for v in np.clip(base, 0, 255))  # type: ignore[return-value]


def _palette_colour(rng: np.random.Generator) -> tuple[int, int, int]:
    names = list(COLOURS)
    return COLOURS[names[int(rng.integers(len(names)))]]


def _low_freq_noise(size: tuple[int, int], rng: np.random.Generator, cells: int = 6) -> np.ndarray:
    """Smooth (H, W) noise in about [-1, 1]: uneven light and surfaces."""
    w, h = size
    coarse = rng.standard_normal((cells + 1, max(2, int(cells * h / w) + 1))).astype(np.float32).T
    return cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)


def studio(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Seamless paper sweep: light colour, a floor gradient and soft fall-off."""
    w, h = size
    top = np.asarray(_c(rng, WALLS, 10), np.float32) / 255
    bottom = np.clip(top * rng.uniform(0.82, 0.97), 0, 1)
    y = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    floor = rng.uniform(0.72, 0.9)
    t = np.clip((y - floor + 0.1) / 0.2, 0, 1)
    img = top * (1 - t) + bottom * t
    img = img * (1 + 0.03 * _low_freq_noise(size, rng)[..., None])
    return np.broadcast_to(img, (h, w, 3)).astype(np.float32).copy()


def room(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A wall with windows/frames/door, a floor in perspective, furniture and a plant."""
    w, h = size
    image = Image.new("RGB", size, _c(rng, WALLS))
    draw = ImageDraw.Draw(image)
    floor_y = int(h * rng.uniform(0.62, 0.82))
    floor = _c(rng, FLOORS, 10)
    draw.rectangle((0, floor_y, w, h), fill=floor)
    vx = w * rng.uniform(0.2, 0.8)
    darker = tuple(max(0, v - 28) for v in floor)
    for k in range(-8, 9):  # plank joints converging to a vanishing point
        draw.line((vx + k * w * 0.02, floor_y, vx + k * w * 0.35, h), fill=darker, width=1)
    draw.line((0, floor_y, w, floor_y), fill=tuple(max(0, v - 40) for v in floor), width=2)
    for _ in range(int(rng.integers(2, 6))):
        kind = int(rng.integers(0, 5))
        x = rng.uniform(-0.1, 0.9) * w
        if kind == 0:  # window
            ww, wh = rng.uniform(0.2, 0.4) * w, rng.uniform(0.25, 0.45) * h
            y = rng.uniform(0.05, 0.2) * h
            draw.rectangle((x, y, x + ww, y + wh), fill=(235, 240, 246), outline=(250, 250, 250), width=4)
            draw.line((x + ww / 2, y, x + ww / 2, y + wh), fill=(250, 250, 250), width=3)
            draw.line((x, y + wh / 2, x + ww, y + wh / 2), fill=(250, 250, 250), width=3)
        elif kind == 1:  # picture frame
            fw, fh = rng.uniform(0.1, 0.25) * w, rng.uniform(0.08, 0.2) * h
            y = rng.uniform(0.1, 0.35) * h
            draw.rectangle((x, y, x + fw, y + fh), fill=_palette_colour(rng), outline=(40, 34, 30), width=3)
        elif kind == 2:  # door
            dw = rng.uniform(0.18, 0.3) * w
            draw.rectangle((x, floor_y - 0.55 * h, x + dw, floor_y), fill=_c(rng, FLOORS, 20))
        elif kind == 3:  # sofa / chair
            sw = rng.uniform(0.3, 0.6) * w
            sh = rng.uniform(0.12, 0.2) * h
            draw.rounded_rectangle(
                (x, floor_y - sh, x + sw, floor_y + 0.04 * h),
                radius=int(sh * 0.25),
                fill=_palette_colour(rng),
            )
        else:  # plant
            pot_x = x + 0.05 * w
            draw.rectangle(
                (pot_x, floor_y - 0.08 * h, pot_x + 0.1 * w, floor_y + 0.01 * h), fill=_c(rng, FLOORS, 15)
            )
            for _ in range(12):
                lx, ly = pot_x + rng.uniform(-0.08, 0.18) * w, floor_y - rng.uniform(0.1, 0.35) * h
                r = rng.uniform(0.02, 0.05) * w
                g = int(rng.integers(70, 140))
                draw.ellipse((lx - r, ly - r * 0.6, lx + r, ly + r * 0.6), fill=(40, g, 50))
    img = np.asarray(image, np.float32) / 255
    return img * (1 + 0.05 * _low_freq_noise(size, rng)[..., None])


def street(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Facades with window grids, a strip of sky, pavement and kerb, a parked car or a tree."""
    w, h = size
    image = Image.new("RGB", size, (186, 206, 226) if rng.random() < 0.6 else (200, 204, 210))
    draw = ImageDraw.Draw(image)
    ground = int(h * rng.uniform(0.7, 0.86))
    x = -rng.uniform(0, 0.2) * w
    while x < w:
        bw = rng.uniform(0.35, 0.8) * w
        top = rng.uniform(-0.1, 0.25) * h
        facade = _c(rng, FACADES, 12)
        draw.rectangle((x, top, x + bw, ground), fill=facade)
        win = tuple(max(0, v - 90) for v in facade)
        cols, rows = int(rng.integers(2, 5)), int(rng.integers(3, 7))
        for i in range(cols):
            for j in range(rows):
                wx = x + (i + 0.25) * bw / cols
                wy = top + 0.05 * h + j * (ground - top) / (rows + 0.5)
                draw.rectangle(
                    (wx, wy, wx + bw / cols * 0.5, wy + (ground - top) / (rows + 0.5) * 0.55), fill=win
                )
        x += bw
    draw.rectangle((0, ground, w, h), fill=_c(rng, ((150, 150, 148), (176, 170, 160), (120, 118, 116)), 10))
    draw.rectangle((0, ground, w, ground + 0.015 * h), fill=(200, 200, 196))
    vx = w * rng.uniform(0.3, 0.7)
    for k in range(-6, 7):
        draw.line((vx + k * 0.05 * w, ground, vx + k * 0.45 * w, h), fill=(110, 110, 108), width=1)
    if rng.random() < 0.5:
        cx = rng.uniform(-0.2, 0.8) * w
        draw.rounded_rectangle(
            (cx, ground - 0.12 * h, cx + 0.5 * w, ground + 0.02 * h),
            radius=int(0.04 * h),
            fill=_palette_colour(rng),
        )
    else:
        tx = rng.uniform(0, 1) * w
        draw.rectangle((tx - 0.02 * w, ground - 0.3 * h, tx + 0.02 * w, ground), fill=(80, 60, 44))
        for _ in range(14):
            lx, ly = tx + rng.uniform(-0.18, 0.18) * w, ground - rng.uniform(0.3, 0.6) * h
            r = rng.uniform(0.05, 0.1) * w
            draw.ellipse((lx - r, ly - r, lx + r, ly + r), fill=(50, int(rng.integers(90, 150)), 60))
    img = np.asarray(image, np.float32) / 255
    return img * (1 + 0.05 * _low_freq_noise(size, rng)[..., None])


def clutter(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Defocused shapes in fashion colours: the hardest background for colour-only matching."""
    w, h = size
    image = Image.new("RGB", size, _c(rng, WALLS, 20))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(12, 30))):
        colour = _palette_colour(rng)
        x, y = rng.uniform(-0.1, 1.0) * w, rng.uniform(-0.1, 1.0) * h
        a, b = rng.uniform(0.05, 0.35) * w, rng.uniform(0.05, 0.35) * h
        kind = int(rng.integers(0, 3))
        if kind == 0:
            draw.rectangle((x, y, x + a, y + b), fill=colour)
        elif kind == 1:
            draw.ellipse((x, y, x + a, y + b), fill=colour)
        else:
            pts = [(x + rng.uniform(-a, a), y + rng.uniform(-b, b)) for _ in range(int(rng.integers(3, 6)))]
            draw.polygon(pts, fill=colour)
    img = np.asarray(image, np.float32) / 255
    return cv2.GaussianBlur(img, (0, 0), rng.uniform(2.0, 5.0))


def background(
    size: tuple[int, int], rng: np.random.Generator, studio_probability: float
) -> tuple[np.ndarray, str]:
    """An (H, W, 3) float32 background in 0..1 and its kind."""
    if rng.random() < studio_probability:
        return studio(size, rng), "studio"
    kind = ("room", "street", "clutter")[int(rng.integers(0, 3))]
    img = {"room": room, "street": street, "clutter": clutter}[kind](size, rng)
    if kind != "clutter":  # shallow depth of field: the model is in focus, the set is not
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.8, 2.5))
    return img.astype(np.float32), kind


def occluder(size: tuple[int, int], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A foreground object in front of the model: (rgb (H, W, 3), alpha (H, W)) float32."""
    w, h = size
    mask = Image.new("L", size, 0)
    draw = ImageDraw.Draw(mask)
    kind = int(rng.integers(0, 4))
    if kind == 0:  # lamp post / pillar edge
        x = rng.choice([rng.uniform(-0.05, 0.15), rng.uniform(0.85, 1.05)]) * w
        pw = rng.uniform(0.04, 0.1) * w
        draw.rectangle((x, 0, x + pw, h), fill=255)
        colour, blur = _c(rng, ((40, 40, 44), (120, 120, 124), (160, 150, 140)), 10), rng.uniform(0.5, 2.0)
    elif kind == 1:  # foliage in a corner
        cx = rng.choice([0.0, 1.0]) * w
        cy = rng.uniform(0.5, 1.0) * h
        for _ in range(int(rng.integers(8, 16))):
            x, y = cx + rng.normal(0, 0.12) * w, cy + rng.normal(0, 0.12) * h
            r = rng.uniform(0.04, 0.09) * w
            draw.ellipse((x - r, y - r * 0.6, x + r, y + r * 0.6), fill=255)
        colour, blur = (50, int(rng.integers(80, 140)), 56), rng.uniform(1.5, 4.0)
    elif kind == 2:  # passer-by out of focus at the frame edge
        x = rng.choice([-0.25, 0.95]) * w
        y = rng.uniform(0.1, 0.6) * h
        draw.ellipse((x, y, x + rng.uniform(0.25, 0.4) * w, y + rng.uniform(0.5, 0.9) * h), fill=255)
        colour, blur = _palette_colour(rng), rng.uniform(4.0, 8.0)
    else:  # railing / bench across the legs
        y = rng.uniform(0.6, 0.85) * h
        draw.rectangle((0, y, w, y + rng.uniform(0.015, 0.035) * h), fill=255)
        for x in np.arange(rng.uniform(0, 0.2) * w, w, rng.uniform(0.15, 0.3) * w):
            draw.rectangle((x, y, x + 0.012 * w, h), fill=255)
        colour, blur = _c(rng, ((30, 30, 34), (90, 70, 50), (150, 150, 150)), 10), rng.uniform(0.5, 1.5)
    alpha = cv2.GaussianBlur(np.asarray(mask, np.float32) / 255, (0, 0), blur)
    shade = 1 + 0.15 * _low_freq_noise(size, rng, cells=4)
    rgb = np.clip((np.asarray(colour, np.float32) / 255)[None, None, :] * shade[..., None], 0, 1)
    return rgb.astype(np.float32), alpha
