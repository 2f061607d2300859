"""Lower-body silhouettes: trousers, jeans and shorts (two legs along the pose's leg axes) and skirts."""

from __future__ import annotations

import numpy as np

from fashion_retrieval.synthetic.body import (
    BodyShape,
    Pose,
    leg_axis,
    leg_half_width,
    leg_point,
    torso_half_width,
)
from fashion_retrieval.synthetic.geometry import (
    Silhouette,
    ellipse,
    limb,
    mirror,
)
from fashion_retrieval.synthetic.styles import (
    Shape,
    fold_rng,
)


def trousers(g: Shape, body: BodyShape, pose: Pose, name: str) -> Silhouette:
    """Trousers, jeans and shorts: waistband, two legs along the pose's leg axes, hem width and length."""
    sil = Silhouette()
    folds = fold_rng(g)
    wy = body.waist_y + g["rise"]
    ww = torso_half_width(body, wy) * g["waist_ease"]
    hip_w = body.hip_hw * g["hip_ease"]
    shorts = name == "SHORTS"
    hem_y = body.crotch_y + g["hem_y"] if shorts else g["hem_y"]
    sides: dict[int, tuple[list[np.ndarray], list[np.ndarray]]] = {}
    for side in (1, -1):
        _, d, n = leg_axis(body, pose, side)
        hem_c = leg_point(body, pose, side, hem_y)
        hem_w = leg_half_width(body, hem_y) * g["hem_w"] if shorts else g["hem_w"]
        outer = [np.array([side * hip_w, body.hip_y])]
        inner: list[np.ndarray] = []
        if hem_y > body.knee_y + 0.03:
            knee_c = leg_point(body, pose, side, body.knee_y)
            kw = max(body.knee_hw + g["knee_ease"], hem_w * 0.85)
            outer.append(knee_c + n * kw)
            inner.append(knee_c - n * kw)
        outer.append(hem_c + n * hem_w)
        inner.append(hem_c - n * hem_w)
        sides[side] = (outer, inner)
        if g.get("turnup"):
            sil.fold([hem_c + n * hem_w, hem_c - n * hem_w])
        if g.get("crease"):
            sil.fold([leg_point(body, pose, side, body.hip_y + 0.04), hem_c])
        for _ in range(int(folds.integers(1, 3))):
            y = (
                float(folds.uniform(body.knee_y - 0.05, hem_y - 0.02))
                if not shorts
                else float(folds.uniform(body.crotch_y, hem_y))
            )
            c = leg_point(body, pose, side, y)
            sil.fold([c + n * 0.02, c - n * 0.015 + d * 0.012])
    crotch_r = np.array([0.004, body.crotch_y + 0.01])
    crotch_l = np.array([-0.004, body.crotch_y + 0.01])
    outer_r, inner_r = sides[1]
    outer_l, inner_l = sides[-1]
    # Down the right outer edge, back up its inner edge (inner lists run knee -> hem), then the left leg.
    outline = [
        np.array([ww, wy]),
        *outer_r,
        *inner_r[::-1],
        crotch_r,
        crotch_l,
        *inner_l,
        *outer_l[::-1],
        np.array([-ww, wy]),
    ]
    sil.poly("main", np.array(outline))
    band_h = 0.018
    sil.poly("main_dark", [(-ww, wy), (ww, wy), (ww * 1.005, wy + band_h), (-ww * 1.005, wy + band_h)])
    sil.line(
        "main_dark", [(0.008, wy + band_h), (0.008, body.crotch_y - 0.03), (0.0, body.crotch_y - 0.01)], 0.002
    )
    stitch = "stitch" if name == "JEANS" else "main_dark"
    for side in (1, -1):
        if g.get("pockets") == 1.0:
            arc = ellipse(
                side * ww, wy + band_h, ww * 0.5, 0.045, n=8, a0=np.pi if side > 0 else 0.0, a1=np.pi / 2
            )
            sil.line(stitch, arc, 0.002)
        elif g.get("pockets") == 0.0:
            sil.line(stitch, [(side * ww * 0.7, wy + band_h), (side * hip_w * 0.97, wy + 0.075)], 0.002)
        if g.get("fade"):
            c = leg_point(body, pose, side, body.hip_y + 0.1)
            sil.poly("main_light", ellipse(c[0], c[1], 0.02, 0.07, n=16))
        if g.get("rips"):
            for k in range(3):
                c = leg_point(body, pose, side, body.knee_y - 0.03 + k * 0.012)
                sil.line("lining", [c - np.array([0.012, 0]), c + np.array([0.01, 0])], 0.003)
        if g.get("turnup"):
            _, d, n = leg_axis(body, pose, side)
            hem_c = leg_point(body, pose, side, hem_y)
            hem_w = leg_half_width(body, hem_y) * g["hem_w"] if shorts else g["hem_w"]
            sil.poly("main_dark", limb(hem_c - d * 0.022, hem_c, hem_w, hem_w))
        if g.get("style") == 3.0 and not shorts:  # jogger: elastic ankle cuff
            _, d, n = leg_axis(body, pose, side)
            hem_c = leg_point(body, pose, side, hem_y)
            sil.poly("main_dark", limb(hem_c - d * 0.03, hem_c, g["hem_w"], g["hem_w"]))
        if g.get("crease"):
            sil.line(
                "main_light",
                [leg_point(body, pose, side, body.hip_y + 0.05), leg_point(body, pose, side, hem_y - 0.01)],
                0.0015,
            )
    return sil


def skirt(g: Shape, body: BodyShape, pose: Pose) -> Silhouette:
    """A skirt: waist, hip, flared hem; pleats, wrap line, front buttons."""
    sil = Silhouette()
    wy = body.waist_y + g["rise"]
    ww = torso_half_width(body, wy) * 1.04
    hem_y = float(
        np.interp(g["length"], [0, 0.5, 1], [body.crotch_y + 0.05, body.knee_y + 0.03, body.ankle_y - 0.05])
    )
    hem_w = body.hip_hw * 1.05 * g["flare"] * (1 + 0.4 * max(0.0, hem_y - body.knee_y))
    right = np.array([[ww, wy], [body.hip_hw * 1.06, body.hip_y], [hem_w, hem_y]])
    xs = np.linspace(hem_w, -hem_w, 13)[1:-1]
    hem = np.stack([xs, hem_y + 0.01 * (1 - (xs / hem_w) ** 2)], axis=1)
    sil.poly("main", np.vstack([right, hem, mirror(right)]))
    if g.get("band"):
        sil.poly("main_dark", [(-ww, wy), (ww, wy), (ww * 1.01, wy + 0.016), (-ww * 1.01, wy + 0.016)])
    if g.get("pleats"):
        for f in np.linspace(-0.8, 0.8, 7):
            sil.line("main_dark", [(f * ww, wy + 0.02), (f * hem_w, hem_y)], 0.0016)
    if g.get("wrap"):
        sil.line("main_dark", [(ww * 0.5, wy + 0.018), (-hem_w * 0.25, hem_y)], 0.0025)
    if g.get("buttons"):
        for y in np.linspace(wy + 0.03, hem_y - 0.03, 5):
            sil.poly("trim", ellipse(0.0, float(y), 0.004, 0.004, n=10))
    folds = fold_rng(g)
    for _ in range(3):
        f = float(folds.uniform(-0.8, 0.8))
        sil.fold([(f * ww, body.hip_y), (f * hem_w, hem_y)])
    return sil
