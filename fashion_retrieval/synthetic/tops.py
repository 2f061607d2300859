"""Upper-body silhouettes: tops (T-shirts, shirts, sweaters...), dresses and open outerwear.

Built from the body's landmarks and pose: the torso panel follows chest/waist/hip widths times an
ease, sleeves are tubes along the arm axis, necklines and details (placket, pockets, ribbing, prints,
lapels, zips, quilting) are extra draw operations.
"""

from __future__ import annotations

import numpy as np

from fashion_retrieval.synthetic.body import (
    BodyShape,
    Pose,
    arm_axis,
    torso_half_width,
)
from fashion_retrieval.synthetic.geometry import (
    Silhouette,
    ellipse,
    limb,
    mirror,
    rounded_rect,
    symmetric,
)
from fashion_retrieval.synthetic.styles import (
    BOAT,
    COLLAR,
    CREW,
    HOOD,
    NO_PRINT,
    PRINT_CIRCLE,
    PRINT_STAR,
    PRINT_TEXT,
    SQUARE,
    STRAPS,
    TURTLE,
    VNECK,
    Shape,
    fold_rng,
)


def _neckline(neck: int, neck_w: float, yb: float, depth: float) -> np.ndarray:
    """Points of the front neckline from the left neck point to the right one (exclusive ends)."""
    if neck in (VNECK, COLLAR):
        return np.array(
            [[-neck_w * 0.5, yb + depth * 0.5], [0.0, yb + depth], [neck_w * 0.5, yb + depth * 0.5]]
        )
    if neck == SQUARE:
        return np.array([[-neck_w * 0.95, yb + depth], [neck_w * 0.95, yb + depth]])
    arc = ellipse(0.0, yb, neck_w, depth, n=13, a0=np.pi, a1=0.0)
    return arc[1:-1]


def _torso_outline(
    g: Shape, body: BodyShape, hem_y: float, ease: float, *, straps: bool, sleeveless: bool, hem_curve: float
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Closed outline of a top's body panel and its key points (right side, x > 0)."""
    neck = int(g.get("neck", CREW))
    yb = body.neck_y1 - 0.004
    neck_w = body.neck_hw * (2.3 if neck == BOAT else 1.35)
    fit = g.get("fit", 1.0)
    if straps:
        top_y = body.chest_y - 0.035
        sh = np.array([0.05, top_y - 0.004])
        pit = np.array([body.chest_hw * ease * 0.98, top_y + 0.012])
    else:
        sh_x = body.shoulder_hw * min(ease, 1.12) * (0.82 if sleeveless else 1.0)
        sh = np.array([sh_x, body.shoulder_y + 0.006])
        pit = np.array([body.chest_hw * ease + 0.004, body.arm_joint[1] + 0.045])
    right: list[np.ndarray] = [sh, pit]
    if sleeveless and not straps:  # a scooped armhole
        right.insert(1, np.array([sh[0] * 0.97, sh[1] + 0.03]))
    for y, hw in (
        (body.chest_y + 0.02, body.chest_hw * ease),
        (body.waist_y, body.waist_hw * ease * fit),
        (body.hip_y, body.hip_hw * ease * 1.02),
    ):
        if y < hem_y - 0.01 and y > right[-1][1] + 0.005:
            right.append(np.array([max(hw, body.waist_hw * 1.02), y]))
    hem_x = max(
        torso_half_width(body, hem_y) * ease * (fit if hem_y < body.hip_y else 1.0), body.waist_hw * 1.02
    ) + g.get("flare", 0.0)
    right.append(np.array([hem_x, hem_y]))
    xs = np.linspace(hem_x, -hem_x, 11)[1:-1]
    hem = np.stack([xs, hem_y + hem_curve * (1 - (xs / hem_x) ** 2)], axis=1)
    right_arr = np.array(right)
    left_arr = mirror(right_arr)
    if straps:
        top = np.array([[-0.03, sh[1] + 0.01], [0.0, sh[1] + 0.018], [0.03, sh[1] + 0.01]])
    else:
        depth = g.get("neck_depth", 0.015)
        top = np.vstack([[[-neck_w, yb]], _neckline(neck, neck_w, yb, depth), [[neck_w, yb]]])
    outline = np.vstack([top[-1:], right_arr, hem, left_arr, top[:-1]])
    points = {"sh": sh, "pit": pit, "hem": np.array([hem_x, hem_y]), "neck": np.array([neck_w, yb])}
    return outline, points


def _sleeves(
    sil: Silhouette,
    g: Shape,
    body: BodyShape,
    pose: Pose,
    sh: np.ndarray,
    pit: np.ndarray,
    *,
    cuff_role: str | None,
    folds: np.random.Generator,
) -> None:
    t1 = g["sleeve"]
    if t1 <= 0:
        return
    ease = g.get("sleeve_ease", 1.5)
    for side in (1, -1):
        joint, d, n = arm_axis(body, pose, side)
        length = body.arm_len
        w_end = float(np.interp(t1, [0, 1], [body.upper_hw, body.wrist_hw])) * ease * g.get("cuff", 1.0)
        w_end = max(w_end, body.wrist_hw * 1.25)
        w_top = body.upper_hw * ease + 0.004
        p1 = joint + d * (t1 * length)
        s_pt = np.array([side * sh[0], sh[1]])
        a_pt = np.array([side * pit[0], pit[1]])
        # A tube whose outer edge starts at the shoulder point (no bump above the shoulder line), joined
        # to the body panel by the armhole: the sleeve wraps the arm whatever its angle.
        start = s_pt - n * w_top
        sil.poly("main", [s_pt, start - n * w_top, a_pt])
        sil.poly("main", limb(start, p1, w_top, w_end))
        if cuff_role is not None and t1 > 0.5:
            cuff_len = 0.045 * length
            sil.poly(cuff_role, limb(p1 - d * cuff_len, p1, w_end * 0.98, w_end * 0.98))
        sil.line("main_dark", [s_pt, (s_pt + a_pt) / 2 + n * 0.004, a_pt], 0.0018)
        for _ in range(int(folds.integers(1, 3))):
            t = float(folds.uniform(0.3, 0.9)) * t1
            c = joint + d * (t * length)
            w = float(np.interp(t, [0, t1], [w_top, w_end]))
            sil.fold([c + n * w * 0.8, c - n * w * 0.6 + d * 0.01])


def _chest_print(sil: Silhouette, g: Shape, body: BodyShape) -> None:
    kind = int(g.get("print", NO_PRINT))
    if kind == NO_PRINT:
        return
    s = g["print_size"]
    cy = body.chest_y + 0.02 + g["print_dy"]
    if kind == PRINT_CIRCLE:
        sil.poly("accent", ellipse(0.0, cy, s * 0.5, s * 0.5, n=24))
        sil.poly("accent2", ellipse(0.0, cy, s * 0.28, s * 0.28, n=18))
    elif kind == PRINT_STAR:
        ang = -np.pi / 2 + np.arange(10) * np.pi / 5
        r = np.where(np.arange(10) % 2 == 0, s * 0.55, s * 0.22)
        sil.poly("accent", np.stack([r * np.cos(ang), cy + r * np.sin(ang)], axis=1))
    elif kind == PRINT_TEXT:
        letters = 5
        lw = s * 1.6 / letters
        for row, y in enumerate((cy - s * 0.18, cy + s * 0.2)):
            for k in range(letters - row):
                x = -s * 0.8 + (k + 0.5 * row) * lw
                sil.poly("accent", rounded_rect(x + lw * 0.4, y, lw * 0.7, s * 0.28, lw * 0.15))
    else:
        for k in range(3):
            sil.poly(
                "accent" if k != 1 else "accent2",
                rounded_rect(0.0, cy - s * 0.3 + k * s * 0.3, s * 1.6, s * 0.2, 0.001),
            )


def top(g: Shape, body: BodyShape, pose: Pose, name: str) -> Silhouette:
    """T-shirts, shirts, tops, sweaters, sweatshirts: torso panel, sleeves, neckline and details."""
    sil = Silhouette()
    folds = fold_rng(g)
    neck = int(g["neck"])
    straps = neck == STRAPS
    sleeveless = g["sleeve"] <= 0
    hem_y = body.waist_y + g["hem"] * (body.hip_y + 0.06 - body.waist_y)
    hem_curve = 0.018 if g.get("curved") else 0.004
    outline, pts = _torso_outline(
        g, body, hem_y, g["ease"], straps=straps, sleeveless=sleeveless, hem_curve=hem_curve
    )
    neck_w, yb = pts["neck"]
    if neck == HOOD:  # the hood lies around the neck, behind the front panel
        sil.poly("main_dark", ellipse(0.0, yb + 0.004, neck_w * 2.0, 0.03, n=24))
    if neck == COLLAR:
        sil.poly(
            "main",
            [
                (-neck_w * 1.05, yb - 0.016),
                (neck_w * 1.05, yb - 0.016),
                (neck_w, yb + 0.004),
                (-neck_w, yb + 0.004),
            ],
        )
    if not pose.worn and not straps:  # the inside back of the garment shows through an empty neckline
        sil.poly(
            "lining", ellipse(0.0, yb, neck_w * 0.98, g["neck_depth"] * 1.02 + 0.002, n=20, a0=np.pi, a1=0.0)
        )
    rib_role = "main_dark" if g.get("rib") else ("main_light" if name == "SHIRT" else None)
    _sleeves(sil, g, body, pose, pts["sh"], pts["pit"], cuff_role=rib_role, folds=folds)
    sil.poly("main", outline)
    if straps:
        for side in (1, -1):
            sil.line(
                "main", [(side * 0.04, pts["sh"][1] + 0.004), (side * 0.058, body.shoulder_y + 0.003)], 0.004
            )
    if neck == TURTLE:
        sil.poly(
            "main_dark",
            [
                (-body.neck_hw * 1.3, body.neck_y0 + 0.012),
                (body.neck_hw * 1.3, body.neck_y0 + 0.012),
                (neck_w * 1.05, yb + 0.006),
                (-neck_w * 1.05, yb + 0.006),
            ],
        )
    elif g.get("rib") and neck in (CREW, VNECK):  # ribbed neck band follows the neckline
        band = np.vstack([[[-neck_w, yb]], _neckline(neck, neck_w, yb, g["neck_depth"]), [[neck_w, yb]]])
        sil.line("main_dark", band, 0.008)
    if neck == COLLAR:  # shirt collar points over the neckline
        for side in (1, -1):
            sil.poly(
                "main_light",
                [
                    (side * neck_w * 1.08, yb - 0.012),
                    (side * 0.004, yb + g["neck_depth"]),
                    (side * neck_w * 1.55, yb + g["neck_depth"] + 0.01),
                ],
            )
    if neck == HOOD:
        for side in (1, -1):
            sil.line("trim", [(side * 0.012, yb + 0.02), (side * 0.014, yb + 0.07)], 0.0025)
    hem_x, hem_y = pts["hem"]
    if g.get("rib"):
        band_h = 0.022
        xs = np.linspace(hem_x, -hem_x, 9)
        sil.poly(
            "main_dark",
            np.vstack(
                [np.stack([xs, hem_y - band_h + 0 * xs], 1), np.stack([xs[::-1], hem_y + 0.004 + 0 * xs], 1)]
            ),
        )
    if g.get("placket"):
        top = yb + g["neck_depth"]
        sil.line("main_dark", [(0.0, top), (0.0, hem_y + hem_curve)], 0.0025)
        for y in np.linspace(top + 0.02, hem_y - 0.02, int(g.get("buttons", 5))):
            sil.poly("trim", ellipse(0.006, float(y), 0.0035, 0.0035, n=10))
    if g.get("pocket"):
        x, y = -body.chest_hw * 0.5, body.chest_y + 0.005
        sil.line("main_dark", rounded_rect(x, y, 0.04, 0.045, 0.003), 0.0018)
    if g.get("kangaroo"):
        y0 = hem_y - 0.085
        sil.line(
            "main_dark", [(-0.055, hem_y - 0.024), (-0.04, y0), (0.04, y0), (0.055, hem_y - 0.024)], 0.0025
        )
    if g.get("ruffle"):
        xs = np.linspace(-hem_x, hem_x, 12)
        sil.line("main_light", np.stack([xs, hem_y - 0.012 + 0.004 * np.sin(xs * 400)], 1), 0.003)
    _chest_print(sil, g, body)
    for _ in range(int(folds.integers(2, 5))):
        side = 1 if folds.random() < 0.5 else -1
        y = float(folds.uniform(body.chest_y, hem_y - 0.01))
        x = side * float(folds.uniform(0.02, 0.06))
        sil.fold([(x, y), (x + side * 0.03, y + float(folds.uniform(-0.03, 0.03)))])
    return sil


def dress(g: Shape, body: BodyShape, pose: Pose) -> Silhouette:
    """A top part down to the waist plus a skirt: neckline, sleeves, flare and length vary."""
    top_shape = dict(g, hem=0.0, rib=0.0, ruffle=0.0)
    sil = top(top_shape, body, pose, "DRESS")
    waist_y = body.waist_y
    hem_y = float(
        np.interp(g["length"], [0, 0.5, 1], [body.crotch_y + 0.06, body.knee_y + 0.02, body.ankle_y - 0.05])
    )
    ww = max(torso_half_width(body, waist_y) * g["ease"] * g["fit"], body.waist_hw * 1.02)
    hem_w = body.hip_hw * g["skirt_flare"] * (1 + 0.5 * max(0.0, hem_y - body.knee_y))
    right = np.array([[ww, waist_y - 0.005], [body.hip_hw * 1.08, body.hip_y], [hem_w, hem_y]])
    xs = np.linspace(hem_w, -hem_w, 13)[1:-1]
    hem = np.stack([xs, hem_y + 0.012 * (1 - (xs / hem_w) ** 2)], axis=1)
    sil.poly("main", np.vstack([right, hem, mirror(right)]))
    if g.get("waist_seam"):
        sil.line("main_dark", [(-ww, waist_y), (ww, waist_y)], 0.003)
    if g.get("tie"):
        sil.poly(
            "main_dark",
            [(-ww, waist_y - 0.008), (ww, waist_y - 0.008), (ww, waist_y + 0.008), (-ww, waist_y + 0.008)],
        )
        sil.poly("main_dark", [(0.01, waist_y), (0.03, waist_y + 0.07), (0.018, waist_y + 0.072)])
    if g.get("pleats"):
        for f in np.linspace(-0.75, 0.75, 6):
            sil.line("main_dark", [(f * ww, waist_y + 0.02), (f * hem_w, hem_y)], 0.0015)
    folds = fold_rng(g)
    for _ in range(3):
        f = float(folds.uniform(-0.8, 0.8))
        sil.fold([(f * ww * 0.8, body.hip_y), (f * hem_w, hem_y)])
    return sil


def outer(g: Shape, body: BodyShape, pose: Pose) -> Silhouette:
    """Jackets, blazers and coats, worn open: two front panels, lapels or collar, long sleeves."""
    sil = Silhouette()
    folds = fold_rng(g)
    ease = g["ease"]
    yb = body.neck_y1 - 0.006
    neck_w = body.neck_hw * 1.5
    hem_y = g["hem_y"]
    sh = np.array([body.shoulder_hw * min(ease, 1.2) + 0.004, body.shoulder_y + 0.003])
    pit = np.array([body.chest_hw * ease + 0.006, body.arm_joint[1] + 0.05])
    right = [
        np.array([neck_w, yb]),
        sh,
        pit,
        np.array([body.chest_hw * ease, body.chest_y + 0.02]),
        np.array([body.waist_hw * ease * g["fit"], body.waist_y]),
    ]
    if hem_y > body.hip_y + 0.01:
        right.append(np.array([body.hip_hw * ease, body.hip_y]))
    hem_x = (body.hip_hw * ease if hem_y > body.hip_y else torso_half_width(body, hem_y) * ease) + g[
        "flare"
    ] * max(0.0, hem_y - body.hip_y)
    right.append(np.array([hem_x, hem_y]))
    gap = g["gap"]
    button_y = float(np.interp(g["button_y"], [0, 1], [body.chest_y, body.waist_y + 0.03]))
    if not pose.worn:  # inside of the garment, seen through the open front
        sil.poly("lining", symmetric(right))
    if g.get("hood"):
        sil.poly("main_dark", ellipse(0.0, yb - 0.005, neck_w * 2.1, 0.035, n=24))
    collar_role = "main_dark" if g.get("lapel") != 1.0 else "main"
    sil.poly(
        collar_role,
        [
            (-neck_w * 1.15, yb - 0.022),
            (neck_w * 1.15, yb - 0.022),
            (neck_w * 1.1, yb + 0.008),
            (-neck_w * 1.1, yb + 0.008),
        ],
    )
    _sleeves(
        sil,
        dict(g, cuff=0.95),
        body,
        pose,
        sh,
        pit,
        cuff_role="main_dark" if g.get("quilt") or g.get("zip") else None,
        folds=folds,
    )
    panel = np.vstack([right, [[gap / 2, hem_y]], [[gap / 2, button_y]]])
    sil.poly("main", panel)
    sil.poly("main", mirror(panel))
    lapel = int(g.get("lapel", 0))
    if lapel:
        lw = 0.03 if lapel == 1 else 0.045
        for side in (1, -1):
            pts = np.array(
                [
                    [neck_w, yb - 0.008],
                    [neck_w + lw, body.chest_y - 0.04],
                    [neck_w + lw * 0.55, body.chest_y - 0.028],
                    [gap / 2 + lw * 0.6, button_y - 0.05],
                    [gap / 2, button_y],
                ]
            )
            pts[:, 0] *= side
            sil.poly("main_dark", pts)
    elif g.get("collar"):
        for side in (1, -1):
            sil.poly(
                "main_dark",
                [
                    (side * neck_w * 1.1, yb - 0.02),
                    (side * (neck_w + 0.035), yb + 0.035),
                    (side * gap / 2, yb + 0.02),
                ],
            )
    if g.get("zip"):
        for side in (1, -1):
            sil.line(
                "metal", [(side * (gap / 2 + 0.002), button_y), (side * (gap / 2 + 0.002), hem_y)], 0.0025
            )
    if g.get("quilt"):
        for y in np.arange(body.chest_y - 0.03, hem_y - 0.01, 0.04):
            hw = max(torso_half_width(body, float(y)), body.hip_hw if y > body.hip_y else 0.0) * ease * 0.98
            for side in (1, -1):
                sil.line("main_dark", [(side * (gap / 2 + 0.003), float(y)), (side * hw, float(y))], 0.0025)
    if g.get("pockets"):
        y = min(body.hip_y - 0.01, hem_y - 0.04)
        for side in (1, -1):
            sil.poly(
                "main_dark",
                [(side * 0.035, y), (side * 0.085, y), (side * 0.085, y + 0.01), (side * 0.035, y + 0.01)],
            )
    n_buttons = int(g.get("buttons", 2))
    if not g.get("zip") and n_buttons:
        for y in np.linspace(button_y + 0.005, min(button_y + 0.06 * n_buttons, hem_y - 0.03), n_buttons):
            sil.poly("trim", ellipse(gap / 2 + 0.01, float(y), 0.005, 0.005, n=10))
            if g.get("double"):
                sil.poly("trim", ellipse(-(gap / 2 + 0.01), float(y), 0.005, 0.005, n=10))
    if g.get("belt"):
        ww = body.waist_hw * ease * g["fit"] * 1.02
        sil.poly(
            "main",
            [
                (-ww, body.waist_y - 0.01),
                (ww, body.waist_y - 0.01),
                (ww, body.waist_y + 0.012),
                (-ww, body.waist_y + 0.012),
            ],
        )
        sil.line("metal", rounded_rect(0.0, body.waist_y + 0.001, 0.03, 0.03, 0.004), 0.003)
    for _ in range(int(folds.integers(2, 4))):
        side = 1 if folds.random() < 0.5 else -1
        y = float(folds.uniform(body.waist_y - 0.05, hem_y - 0.02))
        sil.fold([(side * 0.04, y), (side * 0.09, y + float(folds.uniform(0.0, 0.05)))])
    return sil
