"""Accessories, shoes and underwear: shoes/sneakers/boots, socks, bags, hats, scarves, belts,
sunglasses, bras and briefs. Worn items anchor to the body (feet, hand, hips, head, eyes); in the
catalogue pose they are laid out alone (shoes as a pair in profile, a belt fastened in a loop)."""

from __future__ import annotations

import numpy as np

from fashion_retrieval.synthetic.body import (
    PACKSHOT_FEET_POSE,
    BodyShape,
    Pose,
    arm_axis,
    arm_point,
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
    rounded_rect,
    smooth,
)
from fashion_retrieval.synthetic.styles import (
    BEANIE,
    BUCKET,
    BUCKET_HAT,
    CAP,
    CLUTCH,
    CROSSBODY,
    FEDORA,
    RUCKSACK,
    SHOULDER,
    STRAW,
    TOTE,
    Shape,
)


def _feet_frame(body: BodyShape, pose: Pose, side: int) -> tuple[np.ndarray, float]:
    """(ankle point, ground level relative to it) of foot ``side``."""
    ankle = leg_point(body, pose, side, body.ankle_y)
    return ankle, body.ground_y - ankle[1]


def _to_body(local: np.ndarray | list, ankle: np.ndarray, foot_dir: int) -> np.ndarray:
    """Foot-local (x forward, y down, origin at the ankle) to body coordinates."""
    pts = np.asarray(local, float).copy()
    pts[:, 0] *= foot_dir
    return pts + ankle


def _leg_local(
    body: BodyShape, pose: Pose, side: int, y: float, forward: float, ankle: np.ndarray, fd: int
) -> tuple[float, float]:
    """Foot-local coordinates of the point ``forward`` units in front of leg ``side``'s axis at ``y``."""
    p = leg_point(body, pose, side, y) + np.array([fd * forward, 0.0]) - ankle
    return float(p[0] * fd), float(p[1])


def shoes(g: Shape, body: BodyShape, pose: Pose) -> Silhouette:
    """A pair of shoes, sneakers or boots in profile, toes to ``pose.foot_dir``.

    Foot-local frame: origin at the ankle, x forward, y down, ground at ``gy``; heel at -0.24 foot lengths.
    """
    sil = Silhouette()
    pose = pose if pose.worn else PACKSHOT_FEET_POSE
    fl = body.foot_len * g["length"]
    fd = pose.foot_dir
    hh, st = g["heel"], g["sole"]
    th = 0.026 * g["toe_h"]
    toe = int(g.get("toe", 0))
    shaft = g.get("shaft", 0.0)
    for side in (-fd, fd):  # the foot the toes point away from is further back: drawn first
        ankle, gy = _feet_frame(body, pose, side)
        heel_x, toe_x = -0.24 * fl, 0.76 * fl
        base = gy - st  # top of the sole under the forefoot
        collar_h = g.get("collar", 0.45) * gy
        if toe == 1:  # pointed
            tip = [(toe_x + 0.012, base - th * 0.15), (toe_x - 0.01, base - th * 0.75)]
        elif toe == 2:  # square
            tip = [(toe_x + 0.002, base), (toe_x + 0.002, base - th * 0.8), (toe_x - 0.008, base - th)]
        else:  # round
            tip = [(toe_x, base - th * 0.35), (toe_x - 0.006, base - th * 0.85)]
        vamp = (0.5 * fl, base - th * 1.1)
        heel_low = (heel_x, gy - hh - st)
        heel_mid = (heel_x - 0.003, gy - hh - st - collar_h * 0.35)
        arch = (0.3 * fl, base - hh * 0.3)
        if shaft > 0:  # boot: the shaft rises along the leg
            top_y = body.ankle_y - shaft
            w = leg_half_width(body, top_y) * 1.2 + 0.004
            back_top = _leg_local(body, pose, side, top_y, -w, ankle, fd)
            front_top = _leg_local(body, pose, side, top_y, w, ankle, fd)
            shin = _leg_local(body, pose, side, body.ankle_y - 0.01, body.ankle_hw * 1.3, ankle, fd)
            upper = [
                back_top,
                heel_mid,
                heel_low,
                arch,
                (0.55 * fl, base),
                (toe_x - 0.01, base),
                *tip,
                vamp,
                (0.28 * fl, gy * 0.35),
                shin,
                front_top,
            ]
        else:
            throat_h = max(collar_h * (0.95 if "stripe" in g else 0.8), st + th * 1.35)
            upper = [
                (heel_x + 0.004, gy - collar_h),
                heel_mid,
                heel_low,
                arch,
                (0.55 * fl, base),
                (toe_x - 0.01, base),
                *tip,
                vamp,
                (0.2 * fl, gy - throat_h),
                (0.0, gy - collar_h * 0.92),
            ]
        sil.poly("main", _to_body(smooth(upper, 2 if toe != 1 else 1), ankle, fd))
        front = toe_x + (0.006 if toe == 1 else 0.003)
        sole = [
            (heel_x - 0.002, gy - hh - st),
            arch,
            (0.55 * fl, base),
            (front, base),
            (front, gy),
            (0.55 * fl, gy),
            (0.3 * fl, gy - hh * 0.3),
            (heel_x - 0.002, gy - hh),
        ]
        sil.poly("trim", _to_body(smooth(sole, 1), ankle, fd))
        if hh > 0.008:  # heel block; a stiletto when high
            bottom = 0.03 * fl if hh > 0.03 else 0.08 * fl
            sil.poly(
                "main_dark",
                _to_body(
                    [
                        (heel_x, gy - hh),
                        (heel_x + 0.16 * fl, gy - hh),
                        (heel_x + 0.06 * fl + bottom, gy),
                        (heel_x + 0.06 * fl, gy),
                    ],
                    ankle,
                    fd,
                ),
            )
        if g.get("toe_cap"):
            sil.poly(
                "trim",
                _to_body(
                    [(0.6 * fl, base), (toe_x - 0.01, base), *tip, (0.58 * fl, base - th * 1.15)], ankle, fd
                ),
            )
        if g.get("laces"):
            top = upper[-1] if shaft > 0 else upper[-2]
            for f in np.linspace(0.15, 0.75, 4):
                x = top[0] + f * (vamp[0] - top[0]) - (0.012 if shaft > 0 else 0.004)  # inside the front edge
                y = top[1] + f * (vamp[1] - top[1]) + 0.005
                role = "trim" if "stripe" in g else "main_dark"
                sil.line(role, _to_body([(x - 0.006, y - 0.003), (x + 0.005, y + 0.004)], ankle, fd), 0.002)
        if g.get("stripe"):
            sil.poly(
                "accent",
                _to_body(
                    [
                        (0.0, base - 0.004),
                        (0.5 * fl, base - 0.012),
                        (0.46 * fl, base - 0.019),
                        (0.04 * fl, base - 0.013),
                    ],
                    ankle,
                    fd,
                ),
            )
            sil.poly(
                "accent",
                _to_body(
                    [
                        (heel_x - 0.002, gy - collar_h),
                        (heel_x + 0.05 * fl, gy - collar_h),
                        (heel_x + 0.04 * fl, gy - collar_h * 0.6),
                        (heel_x - 0.003, gy - collar_h * 0.6),
                    ],
                    ankle,
                    fd,
                ),
            )
        if g.get("strap"):
            sil.line(
                "main_dark",
                _to_body([(0.05 * fl, gy - collar_h * 0.9), (0.36 * fl, base - th * 1.1)], ankle, fd),
                0.003,
            )
        if g.get("chelsea") and shaft > 0:
            sil.poly(
                "main_dark",
                _to_body(
                    [
                        (-0.04 * fl, -min(shaft, 0.06) * 0.6),
                        (0.06 * fl, -min(shaft, 0.06) * 0.6),
                        (0.01 * fl, gy * 0.4),
                    ],
                    ankle,
                    fd,
                ),
            )
        if shaft == 0 and not g.get("laces") and not g.get("stripe"):  # toe seam of a plain shoe
            sil.line(
                "main_dark", _to_body([(0.52 * fl, base - th * 1.1), (0.6 * fl, base)], ankle, fd), 0.0015
            )
        sil.fold(_to_body([(0.25 * fl, base - th * 0.6), (0.5 * fl, base - th * 1.1)], ankle, fd))
    return sil


def socks(g: Shape, body: BodyShape, pose: Pose) -> Silhouette:
    """A pair of socks: a tube up the leg, a foot, a ribbed cuff and a darker heel."""
    sil = Silhouette()
    pose = pose if pose.worn else PACKSHOT_FEET_POSE
    fd = pose.foot_dir
    fl = body.foot_len * 0.95
    top_y = body.ankle_y - g["height"]
    for side in (-fd, fd):
        ankle, gy = _feet_frame(body, pose, side)
        w = leg_half_width(body, top_y) * 1.08
        back_top = _leg_local(body, pose, side, top_y, -w, ankle, fd)
        front_top = _leg_local(body, pose, side, top_y, w, ankle, fd)
        heel_x, toe_x = -0.24 * fl, 0.74 * fl
        foot = [
            back_top,
            (heel_x, gy * 0.45),
            (heel_x + 0.01, gy - 0.002),
            (toe_x - 0.01, gy - 0.002),
            (toe_x, gy - 0.009),
            (toe_x - 0.012, gy - 0.019),
            (0.4 * fl, gy - 0.022),
            (0.12 * fl, gy * 0.3),
            front_top,
        ]
        sil.poly("main", _to_body(foot, ankle, fd))
        if g.get("rib"):
            below = top_y + 0.014
            cuff = [
                back_top,
                front_top,
                _leg_local(body, pose, side, below, w, ankle, fd),
                _leg_local(body, pose, side, below, -w, ankle, fd),
            ]
            sil.poly("main_dark", _to_body(cuff, ankle, fd))
        sil.poly(
            "main_dark",
            _to_body(
                [
                    (heel_x, gy * 0.5),
                    (heel_x + 0.01, gy - 0.002),
                    (heel_x + 0.05 * fl + 0.01, gy - 0.002),
                    (heel_x + 0.02, gy * 0.5),
                ],
                ankle,
                fd,
            ),
        )
    return sil


def _handle(origin: np.ndarray, width: float, height: float, kind: int) -> np.ndarray:
    """The carrying handle arching above a bag's top edge (a rucksack's is a narrow loop)."""
    return ellipse(
        origin[0],
        origin[1],
        width * (0.12 if kind == RUCKSACK else 0.28),
        height,
        n=14,
        a0=np.pi,
        a1=2 * np.pi,
    )


def bag(g: Shape, body: BodyShape, pose: Pose) -> Silhouette:
    """A bag body with flap/clasp/quilting and its handle or strap; worn: held or on the shoulder."""
    sil = Silhouette()
    kind = int(g["kind"])
    w, h = g["w"], g["h"]
    sw = g["strap_w"]
    side = pose_carry_side(pose)
    straps: list[np.ndarray] = []
    if not pose.worn:
        origin = np.array([0.0, 0.5])
        if kind in (TOTE, RUCKSACK, BUCKET):
            hh = g["handle_h"] * (0.5 if kind == RUCKSACK else 1.0)
            straps.append(_handle(origin, w, hh, kind))
        if kind in (SHOULDER, CROSSBODY, BUCKET):
            straps.append(
                ellipse(origin[0], origin[1], w * 0.42, g["strap_drop"], n=20, a0=np.pi, a1=2 * np.pi)
            )
    else:
        d = arm_axis(body, pose, side)[1]
        hand = arm_point(body, pose, side, 1.0) + d * body.hand_r
        if kind in (TOTE, RUCKSACK, BUCKET, CLUTCH):
            hh = g["handle_h"] * (0.5 if kind == RUCKSACK else 1.0)
            if kind == CLUTCH:
                origin = hand + np.array([0.0, -h * 0.45])
            else:
                origin = hand + np.array([0.0, hh * 0.85])
                straps.append(_handle(origin, w, hh, kind))
        else:
            drop = 0.05 if kind == SHOULDER else 0.0
            origin = np.array([side * (body.hip_hw + w * 0.3), body.hip_y - h * 0.3 - drop])
            if kind == SHOULDER:
                top = np.array([side * body.shoulder_hw * 0.72, body.shoulder_y - 0.002])
                straps.append(
                    np.array([origin + np.array([-w * 0.4, 0.0]), top, origin + np.array([w * 0.4, 0.0])])
                )
            else:
                top = np.array([-side * body.shoulder_hw * 0.6, body.shoulder_y - 0.002])
                straps.append(np.array([origin + np.array([-side * w * 0.4, 0.0]), top]))
    for strap in straps:
        sil.line("main_dark" if kind != TOTE else "main", strap, sw)
    ox, oy = origin
    sil.poly("main", rounded_rect(ox, oy + h / 2, w, h, g["r"] * min(w, h), top_scale=g["taper"]))
    if kind == RUCKSACK:
        sil.line("main_dark", rounded_rect(ox, oy + h * 0.7, w * 0.7, h * 0.4, 0.01), 0.0025)
        sil.line("main_dark", [(ox - w * 0.35, oy + h * 0.25), (ox + w * 0.35, oy + h * 0.25)], 0.002)
    reach = w * 0.42 - h * 0.3  # diagonal quilting kept inside the bag body
    if g.get("quilt") and reach > 0:
        for x in np.linspace(-reach, reach, 4):
            sil.line(
                "main_dark", [(ox + x - h * 0.3, oy + h * 0.1), (ox + x + h * 0.3, oy + h * 0.9)], 0.0015
            )
            sil.line(
                "main_dark", [(ox + x + h * 0.3, oy + h * 0.1), (ox + x - h * 0.3, oy + h * 0.9)], 0.0015
            )
    if g.get("flap") and kind != RUCKSACK:
        fh = h * g["flap_h"]
        flap = rounded_rect(ox, oy + fh / 2, w * g["taper"] * 0.99, fh, g["r"] * min(w, h) * 0.8)
        sil.poly("main_dark", flap)
        sil.poly("metal", rounded_rect(ox, oy + fh, w * 0.12, h * 0.09, 0.002))
    elif kind in (TOTE, SHOULDER, BUCKET):
        sil.poly("metal", ellipse(ox, oy + h * 0.12, w * 0.035, w * 0.035, n=10))
    sil.fold([(ox - w * 0.3, oy + h * 0.5), (ox - w * 0.1, oy + h * 0.95)])
    return sil


def pose_carry_side(pose: Pose) -> int:
    """The arm that carries a bag: opposite to the feet's direction reads naturally in a 3/4 pose."""
    return -pose.foot_dir if pose.foot_dir else 1


def hat(g: Shape, body: BodyShape, pose: Pose) -> Silhouette:
    """Fedora, bucket hat, cap, beanie, beret or straw hat sitting on the head."""
    sil = Silhouette()
    hx, hy = body.head_c
    rx, ry = body.head_r
    kind = int(g["kind"])
    base = hy - ry * 0.42
    crown_h = ry * (0.75 + 0.35 * g["crown"])
    if kind in (FEDORA, STRAW):
        brim = rx * (1.45 + 0.5 * g["brim"] + (0.6 if kind == STRAW else 0.0))
        sil.poly("main", ellipse(hx, base, brim, ry * 0.13, n=28))
        sil.poly(
            "main",
            [
                (hx - rx * 0.92, base),
                (hx - rx * 0.82, base - crown_h),
                (hx, base - crown_h + 0.006),
                (hx + rx * 0.82, base - crown_h),
                (hx + rx * 0.92, base),
            ],
        )
        if g["band"] or kind == STRAW:
            sil.poly(
                "accent",
                [
                    (hx - rx * 0.92, base - 0.001),
                    (hx - rx * 0.9, base - ry * 0.2),
                    (hx + rx * 0.9, base - ry * 0.2),
                    (hx + rx * 0.92, base - 0.001),
                ],
            )
    elif kind == BUCKET_HAT:
        sil.poly(
            "main",
            [
                (hx - rx * 1.0, base),
                (hx + rx * 1.0, base),
                (hx + rx * (1.3 + 0.2 * g["brim"]), base + ry * 0.3),
                (hx - rx * (1.3 + 0.2 * g["brim"]), base + ry * 0.3),
            ],
        )
        sil.poly(
            "main",
            [
                (hx - rx * 1.0, base + 0.002),
                (hx - rx * 0.8, base - crown_h * 0.8),
                (hx + rx * 0.8, base - crown_h * 0.8),
                (hx + rx * 1.0, base + 0.002),
            ],
        )
        sil.line("main_dark", [(hx - rx * 1.0, base), (hx + rx * 1.0, base)], 0.002)
    elif kind == CAP:
        sil.poly("main", ellipse(hx, base + 0.004, rx * 1.04, crown_h * 0.95, n=24, a0=np.pi, a1=2 * np.pi))
        sil.poly(
            "main_dark",
            ellipse(hx, base + 0.004, rx * (1.1 + 0.2 * g["brim"]), ry * 0.22, n=20, a0=0.0, a1=np.pi),
        )
        sil.poly("main_dark", ellipse(hx, base - crown_h * 0.93, 0.005, 0.003, n=8))
        sil.line("main_dark", [(hx, base - crown_h * 0.9), (hx, base)], 0.0015)
    elif kind == BEANIE:
        sil.poly(
            "main", ellipse(hx, base + ry * 0.2, rx * 1.07, crown_h * 1.05, n=24, a0=np.pi, a1=2 * np.pi)
        )
        sil.poly(
            "main_dark",
            [
                (hx - rx * 1.08, base - ry * 0.05),
                (hx + rx * 1.08, base - ry * 0.05),
                (hx + rx * 1.08, base + ry * 0.25),
                (hx - rx * 1.08, base + ry * 0.25),
            ],
        )
        if g["pompom"]:
            sil.poly("accent", ellipse(hx, base + ry * 0.2 - crown_h * 1.05, rx * 0.35, rx * 0.35, n=16))
    else:  # beret, worn tilted
        sil.poly("main", ellipse(hx + rx * 0.18, base - ry * 0.2, rx * 1.3, ry * 0.42, n=28))
        sil.line("main_dark", [(hx + rx * 0.1, base - ry * 0.6), (hx + rx * 0.14, base - ry * 0.72)], 0.004)
    return sil


def scarf(g: Shape, body: BodyShape, pose: Pose) -> Silhouette:
    """A scarf looped round the neck with two tails hanging down the chest."""
    sil = Silhouette()
    w = g["w"]
    yc = body.neck_y1 - 0.016
    # The loop round the neck: a thick band along an arc from one side of the neck to the other.
    loop = ellipse(
        0.0, yc, body.neck_hw * 1.25 + w * 0.5, w * 0.9 + 0.004, n=16, a0=np.pi * 1.1, a1=-np.pi * 0.1
    )
    start = yc + w * 1.2
    for sign, tail in ((-1, g["tail1"]), (1, g["tail2"])):
        x0 = sign * 0.012 + g["drift"] * 0.3
        x1 = x0 + sign * 0.006 + g["drift"]
        sil.poly("main", limb((x0, start - 0.01), (x1, start + tail), w * 0.55, w * 0.6))
        if g["fringe"]:
            for k in np.linspace(-0.8, 0.8, 5):
                p = np.array([x1 + k * w * 0.55, start + tail])
                sil.line("main", [p, p + np.array([0.0, 0.014])], 0.0015)
        sil.fold([(x0, start + tail * 0.3), (x1 + sign * 0.004, start + tail * 0.7)])
    sil.line("main", loop, w)
    sil.fold([(-body.neck_hw * 1.5, yc + 0.008), (body.neck_hw * 1.2, yc + w)])
    return sil


def _belt_tip(x: float, y: float, width: float) -> list[tuple[float, float]]:
    """The pointed end of a belt strap that starts at ``x``, centred on ``y``, ``width`` thick."""
    return [
        (x, y - width / 2),
        (x + 0.035, y - width / 2),
        (x + 0.042, y),
        (x + 0.035, y + width / 2),
        (x, y + width / 2),
    ]


def belt(g: Shape, body: BodyShape, pose: Pose) -> Silhouette:
    """A belt: worn round the waist with a centred buckle; in the catalogue laid straight with its tip."""
    sil = Silhouette()
    bw = g["w"]
    bs = bw * g["buckle_s"]
    if pose.worn:
        y = body.waist_y + 0.02
        hw = torso_half_width(body, y) * 1.16
        xs = np.linspace(-hw, hw, 9)
        curve = 0.006 * (1 - (xs / hw) ** 2)
        band = np.vstack(
            [np.stack([xs, y - bw / 2 + curve], 1), np.stack([xs[::-1], y + bw / 2 + curve[::-1]], 1)]
        )
        bx, by = 0.0, y + 0.006
        sil.poly("main", band)
        sil.poly("main", _belt_tip(bx + bs * 0.4, by, bw))
        tip_x = bx + bs * 0.4 + 0.03
    else:  # catalogue shot: the belt fastened in a loop, seen from slightly above
        rx, ry = 0.1, 0.035
        bx, by = 0.0, 0.5 + ry
        sil.line("main_dark", ellipse(0.0, 0.5, rx, ry, n=20, a0=np.pi, a1=2 * np.pi), bw)
        sil.line("main", ellipse(0.0, 0.5, rx, ry, n=20, a0=0.0, a1=np.pi), bw)
        sil.poly("main", _belt_tip(bx + bs * 0.4, by, bw))
        for k in range(int(g["holes"])):
            hx = bx - 0.03 - k * 0.012
            sil.poly(
                "lining",
                ellipse(hx, 0.5 + ry * np.sqrt(max(0.0, 1 - (hx / rx) ** 2)), bw * 0.12, bw * 0.12, n=8),
            )
        tip_x = bx + bs * 0.4 + 0.03
    buckle = int(g["buckle"])
    if buckle == 1:
        sil.line("metal", ellipse(bx, by, bs * 0.55, bs * 0.55, n=18), bw * 0.2)
    elif buckle == 2:
        sil.poly("metal", rounded_rect(bx, by, bs * 1.3, bs * 0.9, bs * 0.1))
    elif buckle == 3:
        sil.line(
            "metal",
            np.vstack(
                [
                    [[bx - bs * 0.3, by - bs * 0.55]],
                    ellipse(bx - bs * 0.3, by, bs * 0.55, bs * 0.55, n=10, a0=-np.pi / 2, a1=np.pi / 2),
                    [[bx - bs * 0.3, by - bs * 0.55]],
                ]
            ),
            bw * 0.2,
        )
    else:
        sil.line("metal", rounded_rect(bx, by, bs * 0.9, bs, bs * 0.08), bw * 0.18)
        sil.line("metal", [(bx - bs * 0.4, by), (bx + bs * 0.2, by)], bw * 0.12)
    if g["stitch"]:
        start = bx + bs * 0.7
        sil.line("stitch", [(start, by - bw * 0.3), (tip_x - 0.01, by - bw * 0.3)], bw * 0.08)
        sil.line("stitch", [(start, by + bw * 0.3), (tip_x - 0.01, by + bw * 0.3)], bw * 0.08)
    return sil


def sunglasses(g: Shape, body: BodyShape, pose: Pose) -> Silhouette:
    """Sunglasses at eye level: frame (garment colour) round tinted lenses, bridge and temples."""
    sil = Silhouette()
    hx, hy = body.head_c
    rx, _ = body.head_r
    ey = hy - 0.002
    lrx, lry = g["lrx"], g["lrx"] * g["lry"]
    fr = g["frame"]
    lens = int(g["lens"])
    for side in (1, -1):
        cx = hx + side * (g["bridge"] / 2 + lrx)
        if lens == 0:
            shape = ellipse(cx, ey, lrx, lry, n=20)
        elif lens == 1:
            shape = rounded_rect(cx, ey, lrx * 2, lry * 2, lry * 0.35)
        elif lens == 2:  # cat-eye: upper outer corner lifted
            shape = ellipse(cx, ey, lrx, lry, n=20)
            lift = np.clip((shape[:, 0] - cx) * side / lrx, 0, 1) * np.clip((ey - shape[:, 1]) / lry, 0, 1)
            shape[:, 1] -= lift * lry * 0.6
        else:  # aviator: teardrop, deeper at the inner bottom
            shape = ellipse(cx, ey, lrx, lry, n=20)
            drop = (
                np.clip((shape[:, 1] - ey) / lry, 0, 1)
                * np.clip(1 - (shape[:, 0] - cx) * side / lrx, 0, 2)
                * 0.3
            )
            shape[:, 1] += drop * lry
        centre = np.array([cx, ey])
        sil.poly("main", centre + (shape - centre) * (1 + fr / lrx))
        sil.poly("lens", shape)
        temple_end = (
            (hx + side * rx * 1.02, ey - 0.002) if pose.worn else (cx + side * (lrx + 0.008), ey - lry * 0.3)
        )
        sil.line("main", [(cx + side * lrx, ey - lry * 0.3), temple_end], fr * 1.2 + 0.001)
        sil.poly("main_light", ellipse(cx - lrx * 0.35, ey - lry * 0.35, lrx * 0.18, lry * 0.12, n=8))
    sil.line(
        "main",
        [
            (hx - g["bridge"] / 2 - 0.001, ey - lry * 0.35),
            (hx, ey - lry * 0.5),
            (hx + g["bridge"] / 2 + 0.001, ey - lry * 0.35),
        ],
        fr * 1.3 + 0.001,
    )
    return sil


def bra(g: Shape, body: BodyShape, pose: Pose) -> Silhouette:
    """A bra: two cups, underband, straps up to the shoulders, optional bow."""
    sil = Silhouette()
    cy = body.chest_y + 0.01
    band_h = g["band"]
    sil.poly(
        "main",
        [
            (-body.chest_hw * 0.98, cy + 0.012),
            (body.chest_hw * 0.98, cy + 0.012),
            (body.chest_hw * 0.96, cy + 0.012 + band_h),
            (-body.chest_hw * 0.96, cy + 0.012 + band_h),
        ],
    )
    for side in (1, -1):
        inner, outer = side * 0.006, side * body.chest_hw * 0.95
        apex = (side * body.chest_hw * 0.5, cy - (0.045 if g["cup"] == 0 else 0.03))
        if g["cup"] == 0:
            cup = [(inner, cy + 0.014), apex, (outer, cy + 0.014)]
        else:
            arc = ellipse(
                side * body.chest_hw * 0.5,
                cy + 0.014,
                body.chest_hw * 0.47,
                0.04,
                n=14,
                a0=np.pi,
                a1=2 * np.pi,
            )
            cup = list(map(tuple, arc))
        sil.poly("main", cup)
        sil.line("main", [apex, (side * body.shoulder_hw * 0.55, body.shoulder_y + 0.004)], g["strap_w"])
        sil.fold([(side * body.chest_hw * 0.35, cy - 0.01), (side * body.chest_hw * 0.6, cy + 0.008)])
    if g["bow"]:
        sil.poly("accent", ellipse(0.0, cy + 0.012, 0.008, 0.005, n=10))
    return sil


def panty(g: Shape, body: BodyShape, pose: Pose) -> Silhouette:
    """Briefs, bikini, boxer briefs or hipsters at the hips."""
    sil = Silhouette()
    style = int(g["style"])
    top = body.hip_y - 0.035 + (0.015 if style == 1 else 0.0)
    hw = torso_half_width(body, top) * 1.03
    if style == 2:  # boxer brief with short legs
        c = leg_point(body, pose, 1, body.crotch_y + 0.06)
        n = leg_axis(body, pose, 1)[2]
        w = leg_half_width(body, body.crotch_y + 0.06) * 1.05
        right = np.array(
            [
                (hw, top),
                (body.hip_hw * 1.03, body.hip_y),
                c + n * w,
                c - n * w,
                (0.003, body.crotch_y + 0.012),
            ]
        )
        sil.poly("main", np.vstack([right, mirror(right)]))
    else:
        leg_cut = body.hip_y - 0.005 + 0.03 * g["cut"] - (0.02 if style == 1 else 0.0)
        right = np.array(
            [
                (hw, top),
                (torso_half_width(body, leg_cut) * 1.02, leg_cut),
                (0.04, body.crotch_y - 0.005),
                (0.012, body.crotch_y + 0.012),
            ]
        )
        sil.poly("main", np.vstack([right, mirror(right)]))
    sil.poly("trim", [(-hw, top), (hw, top), (hw * 1.005, top + g["band"]), (-hw * 1.005, top + g["band"])])
    return sil
