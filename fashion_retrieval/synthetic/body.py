"""The figure garments are built on: landmark proportions per section and a pose.

Garments are defined relative to these landmarks (a hem "between knee and ankle", a sleeve "60% of the
arm"), so one set of shape parameters renders both the flat catalogue shot (``PACKSHOT_POSE``: arms
out, legs apart, like a ghost-mannequin photo) and the worn garment in a bundle (the model's pose).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fashion_retrieval.synthetic.geometry import Silhouette, ellipse, limb, symmetric


@dataclass(frozen=True)
class BodyShape:
    """Landmarks in body units (figure height 1, y down; half-widths ``*_hw`` from the axis)."""

    head_c: tuple[float, float]
    head_r: tuple[float, float]
    neck_y0: float
    neck_y1: float
    neck_hw: float
    shoulder_y: float
    shoulder_hw: float
    chest_y: float
    chest_hw: float
    waist_y: float
    waist_hw: float
    hip_y: float
    hip_hw: float
    crotch_y: float
    knee_y: float
    ankle_y: float
    ground_y: float
    leg_x: float
    thigh_hw: float
    knee_hw: float
    ankle_hw: float
    arm_joint: tuple[float, float]
    arm_len: float
    upper_hw: float
    wrist_hw: float
    hand_r: float
    foot_len: float


WOMAN = BodyShape(
    head_c=(0.0, 0.066), head_r=(0.044, 0.06), neck_y0=0.115, neck_y1=0.158, neck_hw=0.02,
    shoulder_y=0.165, shoulder_hw=0.098, chest_y=0.245, chest_hw=0.083, waist_y=0.37, waist_hw=0.064,
    hip_y=0.46, hip_hw=0.09, crotch_y=0.515, knee_y=0.725, ankle_y=0.945, ground_y=0.995, leg_x=0.045,
    thigh_hw=0.044, knee_hw=0.03, ankle_hw=0.018, arm_joint=(0.088, 0.178), arm_len=0.34, upper_hw=0.021,
    wrist_hw=0.013, hand_r=0.02, foot_len=0.095,
)  # fmt: skip
MAN = BodyShape(
    head_c=(0.0, 0.066), head_r=(0.046, 0.062), neck_y0=0.118, neck_y1=0.16, neck_hw=0.025,
    shoulder_y=0.168, shoulder_hw=0.118, chest_y=0.25, chest_hw=0.098, waist_y=0.39, waist_hw=0.083,
    hip_y=0.465, hip_hw=0.088, crotch_y=0.515, knee_y=0.725, ankle_y=0.945, ground_y=0.995, leg_x=0.046,
    thigh_hw=0.045, knee_hw=0.032, ankle_hw=0.02, arm_joint=(0.106, 0.18), arm_len=0.35, upper_hw=0.025,
    wrist_hw=0.015, hand_r=0.022, foot_len=0.105,
)  # fmt: skip
KID = BodyShape(
    head_c=(0.0, 0.09), head_r=(0.062, 0.082), neck_y0=0.16, neck_y1=0.2, neck_hw=0.026,
    shoulder_y=0.205, shoulder_hw=0.1, chest_y=0.28, chest_hw=0.09, waist_y=0.4, waist_hw=0.084,
    hip_y=0.48, hip_hw=0.09, crotch_y=0.535, knee_y=0.74, ankle_y=0.945, ground_y=0.995, leg_x=0.046,
    thigh_hw=0.042, knee_hw=0.032, ankle_hw=0.022, arm_joint=(0.092, 0.22), arm_len=0.31, upper_hw=0.024,
    wrist_hw=0.016, hand_r=0.024, foot_len=0.1,
)  # fmt: skip
BODY_SHAPES: dict[int, BodyShape] = {1: WOMAN, 2: MAN, 3: KID}


@dataclass(frozen=True)
class Pose:
    """Limb angles in radians away from the body axis (right = image right), the side both feet point
    to (+1 image right, -1 left), and whether the garment is worn (False: flat catalogue shot)."""

    arm_r: float
    arm_l: float
    leg_r: float
    leg_l: float
    foot_dir: int = 1
    worn: bool = True


PACKSHOT_POSE = Pose(arm_r=0.42, arm_l=0.42, leg_r=0.07, leg_l=0.07, foot_dir=-1, worn=False)
# Shoes and socks are shot as an overlapping pair, closer together than the legs of PACKSHOT_POSE.
PACKSHOT_FEET_POSE = Pose(arm_r=0.42, arm_l=0.42, leg_r=0.0, leg_l=0.0, foot_dir=-1, worn=False)


def arm_axis(body: BodyShape, pose: Pose, side: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(shoulder joint, unit direction down the arm, outward unit normal) of arm ``side`` (+1/-1)."""
    angle = pose.arm_r if side > 0 else pose.arm_l
    joint = np.array([side * body.arm_joint[0], body.arm_joint[1]])
    direction = np.array([side * np.sin(angle), np.cos(angle)])
    normal = np.array([side * np.cos(angle), -np.sin(angle)])
    return joint, direction, normal


def arm_point(body: BodyShape, pose: Pose, side: int, t: float, offset: float = 0.0) -> np.ndarray:
    """Point at fraction ``t`` of the arm length, ``offset`` body units along the outward normal."""
    joint, d, n = arm_axis(body, pose, side)
    return joint + d * (t * body.arm_len) + n * offset


def leg_axis(body: BodyShape, pose: Pose, side: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(hip joint, unit direction down the leg, outward unit normal) of leg ``side``."""
    angle = pose.leg_r if side > 0 else pose.leg_l
    joint = np.array([side * body.leg_x, body.crotch_y - 0.03])
    direction = np.array([side * np.sin(angle), np.cos(angle)])
    normal = np.array([side * np.cos(angle), -np.sin(angle)])
    return joint, direction, normal


def leg_point(body: BodyShape, pose: Pose, side: int, y: float, offset: float = 0.0) -> np.ndarray:
    """Point on leg ``side``'s axis at height ``y`` (body units), shifted ``offset`` outward."""
    joint, d, n = leg_axis(body, pose, side)
    return joint + d * ((y - joint[1]) / d[1]) + n * offset


def leg_half_width(body: BodyShape, y: float) -> float:
    """The bare leg's half-width at height ``y`` (thigh -> knee -> ankle, linear in between)."""
    return float(
        np.interp(y, [body.crotch_y, body.knee_y, body.ankle_y], [body.thigh_hw, body.knee_hw, body.ankle_hw])
    )


def torso_half_width(body: BodyShape, y: float) -> float:
    """The bare torso's half-width at height ``y``."""
    return float(
        np.interp(
            y,
            [body.shoulder_y, body.chest_y, body.waist_y, body.hip_y, body.crotch_y],
            [body.shoulder_hw * 0.92, body.chest_hw, body.waist_hw, body.hip_hw, body.hip_hw * 0.95],
        )
    )


def body_silhouette(body: BodyShape, pose: Pose, hair_style: int, bare_feet: bool) -> Silhouette:
    """The figure (skin and hair) as draw operations, back to front.

    ``hair_style``: 0 short, 1 bob, 2 long (falls behind the shoulders), 3 bun.
    """
    sil = Silhouette()
    hx, hy = body.head_c
    rx, ry = body.head_r
    if hair_style == 2:  # long hair hangs behind neck and shoulders
        sil.poly(
            "hair",
            [
                (-rx * 1.15, hy - ry * 0.2),
                (rx * 1.15, hy - ry * 0.2),
                (rx * 1.6, body.chest_y),
                (-rx * 1.6, body.chest_y),
            ],
        )
    for side in (1, -1):
        n = leg_axis(body, pose, side)[2]
        hip_top = np.array([side * body.hip_hw * 0.98, body.hip_y - 0.01])
        knee, ankle = leg_point(body, pose, side, body.knee_y), leg_point(body, pose, side, body.ankle_y)
        outline = [
            hip_top,
            knee + n * body.knee_hw,
            ankle + n * body.ankle_hw,
            ankle - n * body.ankle_hw,
            knee - n * body.knee_hw,
            np.array([side * 0.004, body.crotch_y]),
        ]
        sil.poly("skin", outline)
        if bare_feet:
            sil.poly(
                "skin",
                ellipse(
                    ankle[0] + pose.foot_dir * body.foot_len * 0.3,
                    body.ground_y - 0.018,
                    body.foot_len * 0.55,
                    0.02,
                    n=16,
                ),
            )
        shoulder_joint = arm_point(body, pose, side, 0.0)
        wrist = arm_point(body, pose, side, 1.0)
        sil.poly("skin", limb(shoulder_joint, wrist, body.upper_hw, body.wrist_hw))
        hand = wrist + arm_axis(body, pose, side)[1] * body.hand_r * 0.9
        sil.poly("skin", ellipse(hand[0], hand[1], body.hand_r * 0.8, body.hand_r * 1.1, n=14))
    sil.poly(
        "skin",
        symmetric(
            [
                (body.neck_hw * 1.2, body.neck_y1),
                (body.shoulder_hw * 0.92, body.shoulder_y + 0.004),
                (body.arm_joint[0] + body.upper_hw * 0.6, body.arm_joint[1] + 0.01),
                (body.chest_hw, body.chest_y),
                (body.waist_hw, body.waist_y),
                (body.hip_hw, body.hip_y),
                (body.hip_hw * 0.7, body.crotch_y),
            ]
        ),
    )
    sil.poly(
        "skin",
        [
            (-body.neck_hw, body.neck_y0),
            (body.neck_hw, body.neck_y0),
            (body.neck_hw * 1.15, body.neck_y1 + 0.005),
            (-body.neck_hw * 1.15, body.neck_y1 + 0.005),
        ],
    )
    sil.poly("skin", ellipse(hx, hy, rx, ry, n=32))
    # Hair caps the top of the head; the face stays clear below the hairline.
    if hair_style == 3:
        sil.poly("hair", ellipse(hx, hy - ry * 1.05, rx * 0.45, ry * 0.35, n=16))
    top = ellipse(hx, hy, rx * 1.06, ry * 1.06, n=24, a0=np.pi * 0.95, a1=np.pi * 2.05)
    hairline = {0: 0.35, 1: 0.75, 2: 0.9, 3: 0.3}[hair_style]
    sil.poly(
        "hair",
        np.vstack(
            [
                top,
                [[rx * 1.06, hy + ry * hairline]],
                [[rx * 0.8, hy - ry * 0.45]],
                [[-rx * 0.8, hy - ry * 0.45]],
                [[-rx * 1.06, hy + ry * hairline]],
            ]
        ),
    )
    # Minimal facial shading so the head reads as a face, not a disc.
    sil.line("skin_dark", [(-rx * 0.4, hy + ry * 0.05), (-rx * 0.2, hy + ry * 0.05)], ry * 0.07)
    sil.line("skin_dark", [(rx * 0.2, hy + ry * 0.05), (rx * 0.4, hy + ry * 0.05)], ry * 0.07)
    sil.line("skin_dark", [(-rx * 0.18, hy + ry * 0.55), (rx * 0.18, hy + ry * 0.55)], ry * 0.05)
    return sil
