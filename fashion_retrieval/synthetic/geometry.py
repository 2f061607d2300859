"""Vector shapes in body coordinates and the homographies that place them in an image.

Body coordinates: an adult figure stands 1.0 unit tall, head top at y = 0, ground at y = 1, x = 0 on
the body's axis, x to the image right, y down. A silhouette is an ordered list of draw operations (later
ones paint over earlier ones), each tagged with a *role* that says how it is coloured (the garment's
pattern, a darker shade of it, a flat trim colour...). The rasteriser (raster.py) maps it through a 3x3
homography into pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# How each role is coloured (resolved by raster.Material):
#   main / main_dark / main_light / lining: the garment pattern x a shade factor
#   trim, accent, accent2, metal, lens, stitch, skin, hair: flat colours
ROLES: tuple[str, ...] = (
    "main",
    "main_dark",
    "main_light",
    "lining",
    "trim",
    "accent",
    "accent2",
    "metal",
    "lens",
    "stitch",
    "skin",
    "skin_dark",
    "hair",
)
PATTERN_SHADE: dict[str, float] = {"main": 1.0, "main_dark": 0.78, "main_light": 1.12, "lining": 0.55}


@dataclass(frozen=True)
class Op:
    """One draw operation: a filled polygon (``width`` = 0) or a polyline ``width`` body units wide.

    ``points``: (N, 2) float array in body coordinates.
    """

    role: str
    points: np.ndarray
    width: float = 0.0


@dataclass
class Silhouette:
    """A garment (or body) as draw operations plus fold lines used only for shading."""

    ops: list[Op] = field(default_factory=list)
    folds: list[np.ndarray] = field(default_factory=list)

    def poly(self, role: str, points: np.ndarray | list) -> None:
        self.ops.append(Op(role, np.asarray(points, dtype=np.float64)))

    def line(self, role: str, points: np.ndarray | list, width: float) -> None:
        self.ops.append(Op(role, np.asarray(points, dtype=np.float64), float(width)))

    def fold(self, points: np.ndarray | list) -> None:
        self.folds.append(np.asarray(points, dtype=np.float64))

    def extend(self, other: Silhouette) -> None:
        self.ops.extend(other.ops)
        self.folds.extend(other.folds)

    def bounds(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) of all operations, in body units."""
        pts = np.concatenate([op.points for op in self.ops], axis=0)
        pad = max((op.width for op in self.ops), default=0.0) / 2
        return (
            float(pts[:, 0].min() - pad),
            float(pts[:, 1].min() - pad),
            float(pts[:, 0].max() + pad),
            float(pts[:, 1].max() + pad),
        )


def ellipse(
    cx: float, cy: float, rx: float, ry: float, n: int = 28, a0: float = 0.0, a1: float = 2 * np.pi
) -> np.ndarray:
    """(n, 2) points on an ellipse arc from angle ``a0`` to ``a1`` (radians, y down)."""
    t = np.linspace(a0, a1, n, endpoint=(a1 - a0) < 2 * np.pi - 1e-6)
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], axis=1)


def rounded_rect(cx: float, cy: float, w: float, h: float, r: float, top_scale: float = 1.0) -> np.ndarray:
    """A rounded rectangle centred at (cx, cy); ``top_scale`` < 1 narrows the top edge (a trapezoid)."""
    r = min(r, w / 2, h / 2)
    pts: list[np.ndarray] = []
    corners = [
        (cx + w / 2 - r, cy + h / 2 - r, 0.0),  # bottom right
        (cx - w / 2 + r, cy + h / 2 - r, np.pi / 2),  # bottom left
        (cx - w / 2 + r, cy - h / 2 + r, np.pi),  # top left
        (cx + w / 2 - r, cy - h / 2 + r, 1.5 * np.pi),  # top right
    ]
    for x, y, a in corners:
        arc = ellipse(x, y, r, r, n=6, a0=a, a1=a + np.pi / 2 + 1e-9)
        arc = np.vstack([arc, [x + r * np.cos(a + np.pi / 2), y + r * np.sin(a + np.pi / 2)]])
        pts.append(arc)
    out = np.concatenate(pts, axis=0)
    if top_scale != 1.0:  # squeeze x towards the centre progressively with height
        t = np.clip((cy + h / 2 - out[:, 1]) / h, 0, 1)
        out[:, 0] = cx + (out[:, 0] - cx) * (1 - (1 - top_scale) * t)
    return out


def limb(p0: np.ndarray, p1: np.ndarray, w0: float, w1: float) -> np.ndarray:
    """A quad from ``p0`` (half-width ``w0``) to ``p1`` (half-width ``w1``)."""
    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    d = p1 - p0
    d = d / (np.linalg.norm(d) + 1e-12)
    n = np.array([-d[1], d[0]])
    return np.array([p0 + n * w0, p1 + n * w1, p1 - n * w1, p0 - n * w0])


def smooth(points: np.ndarray | list, iterations: int = 2) -> np.ndarray:
    """Round a closed polygon's corners (Chaikin corner cutting): organic outlines from few points."""
    pts = np.asarray(points, float)
    for _ in range(iterations):
        nxt = np.roll(pts, -1, axis=0)
        pts = np.stack([0.75 * pts + 0.25 * nxt, 0.25 * pts + 0.75 * nxt], axis=1).reshape(-1, 2)
    return pts


def mirror(points: np.ndarray) -> np.ndarray:
    """Reflect points about the body axis x = 0 (reversed so polygon orientation is kept)."""
    out = np.asarray(points, float)[::-1].copy()
    out[:, 0] *= -1
    return out


def symmetric(right_half: list[tuple[float, float]] | np.ndarray) -> np.ndarray:
    """A closed outline from its right half (listed top to bottom, x >= 0) and the mirrored left half."""
    right = np.asarray(right_half, float)
    left = right[::-1].copy()
    left[:, 0] *= -1
    return np.concatenate([right, left], axis=0)


def apply_h(h: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map (N, 2) points through a 3x3 homography."""
    pts = np.asarray(points, float)
    homog = pts @ h[:, :2].T + h[:, 2]
    return homog[:, :2] / homog[:, 2:3]


def translate(tx: float, ty: float) -> np.ndarray:
    return np.array([[1.0, 0, tx], [0, 1.0, ty], [0, 0, 1.0]])


def scale(sx: float, sy: float | None = None) -> np.ndarray:
    return np.array([[sx, 0, 0], [0, sx if sy is None else sy, 0], [0, 0, 1.0]])


def rotate(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])


def local_scale(h: np.ndarray, point: tuple[float, float]) -> float:
    """Pixels per body unit of ``h`` near ``point`` (geometric mean of the two axes)."""
    p = np.array([point, (point[0] + 1e-3, point[1]), (point[0], point[1] + 1e-3)])
    q = apply_h(h, p)
    jac = np.stack([q[1] - q[0], q[2] - q[0]], axis=1) / 1e-3
    return float(np.sqrt(abs(np.linalg.det(jac))))
