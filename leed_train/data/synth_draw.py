"""Drawing of the synthetic faces: identity factors, FACS-style expression parameters, and a
renderer that places features on a head of revolution, projects them with yaw, and draws them
anti-aliased with OpenCV at `ss` times the output size before an INTER_AREA downsample.

Face units: the head's half-width is 1, y points down, the head centre is (0, 0). Each
horizontal slice of the head is a circle of radius R(y), so a yawed head keeps its outline
while its features slide and foreshorten. Landmarks are the projections of the very points
the eyes, nose tip and mouth corners are drawn around.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from leed_train.data.names import ETHNICITIES, GENDERS

GENERATOR_VERSION = "leed-synth-1.0"

# Continuous FACS-style action parameters; an expression is a vector over these, so
# expressions interpolate linearly (render_video blends them).
ACTIONS = (
    "brow_inner_raise",  # AU1
    "brow_outer_raise",  # AU2
    "brow_lower",  # AU4: down and together
    "upper_lid_raise",  # AU5 (negative: drooping lids)
    "cheek_raise",  # AU6
    "lid_tighten",  # AU7
    "nose_wrinkle",  # AU9
    "upper_lip_raise",  # AU10
    "lip_corner_pull",  # AU12
    "contempt",  # AU14, one-sided (image-right corner)
    "lip_corner_depress",  # AU15
    "lip_stretch",  # AU20
    "lip_press",  # AU24
    "jaw_drop",  # AU26/27
    "teeth",  # how much of the upper teeth shows when the mouth is open
)
_A = {name: i for i, name in enumerate(ACTIONS)}


def action_vector(**values: float) -> np.ndarray:
    """An expression parameter vector from named actions (others 0)."""
    vec = np.zeros(len(ACTIONS))
    for name, value in values.items():
        vec[_A[name]] = value
    return vec


EXPRESSION_PARAMS: dict[str, np.ndarray] = {
    "angry": action_vector(brow_lower=1.0, lid_tighten=0.6, upper_lid_raise=0.35, lip_press=1.0, nose_wrinkle=0.25),
    "contemptuous": action_vector(contempt=1.0, lid_tighten=0.35, brow_outer_raise=0.2),
    "disgusted": action_vector(
        nose_wrinkle=1.0, upper_lip_raise=1.0, brow_lower=0.7, cheek_raise=0.5, lip_corner_depress=0.6, teeth=0.8
    ),
    "fearful": action_vector(
        brow_inner_raise=1.0,
        brow_outer_raise=0.5,
        brow_lower=0.55,
        upper_lid_raise=1.0,
        lip_stretch=1.0,
        jaw_drop=0.45,
        teeth=0.6,
    ),
    "happy": action_vector(cheek_raise=1.0, lip_corner_pull=1.0, jaw_drop=0.4, teeth=1.0),
    "neutral": action_vector(),
    "sad": action_vector(
        brow_inner_raise=1.0, brow_lower=0.4, upper_lid_raise=-0.45, lip_corner_depress=1.0, lip_press=0.3
    ),
    "surprised": action_vector(
        brow_inner_raise=1.0, brow_outer_raise=1.0, upper_lid_raise=1.0, jaw_drop=1.0, teeth=0.25
    ),
}

GAZE_SHIFT = {"frontal": 0.0, "left": -1.0, "right": 1.0}  # iris shift toward image left / right
HAIR_STYLES = ("buzz", "short", "side", "curly", "long", "bob", "bun")
_SKIN = {
    "Caucasian": ((250, 214, 190), (228, 182, 150)),
    "Moroccan": ((214, 164, 120), (168, 116, 80)),
    "Kid": ((252, 220, 196), (150, 100, 70)),
}
_HAIR = ((30, 24, 22), (70, 45, 30), (120, 80, 45), (200, 160, 90), (150, 60, 30), (150, 148, 145))
_IRIS = ((90, 55, 30), (60, 40, 25), (70, 120, 170), (80, 130, 90), (130, 100, 50))
_LIPS = ((190, 90, 90), (170, 95, 85), (200, 70, 90), (150, 80, 70))


@dataclass(frozen=True)
class Identity:
    """One synthetic person: everything that stays fixed across expressions, poses, gazes."""

    number: int
    ethnicity: str
    gender: str
    head_b: float  # half-height of the head (half-width is 1)
    head_power: float  # superellipse exponent of the outline: 2 = oval, larger = squarer
    jaw_taper: float
    skin: tuple[int, int, int]
    eye_y: float
    eye_spacing: float
    eye_w: float
    eye_open: float  # eye half-height / half-width
    eye_tilt: float
    iris_color: tuple[int, int, int]
    brow_height: float
    brow_thick: float
    brow_arch: float
    brow_len: float
    nose_y: float
    nose_w: float
    nose_len: float
    mouth_y: float
    mouth_w: float
    lip_upper: float
    lip_lower: float
    cupid: float
    lip_color: tuple[int, int, int]
    hair_style: str
    hair_color: tuple[int, int, int]
    hair_volume: float
    hairline: float
    glasses: str  # none | round | square
    glasses_color: tuple[int, int, int]
    mustache: bool
    beard: bool
    shirt_color: tuple[int, int, int]
    blush: float


def make_identity(seed: int, number: int) -> Identity:
    """The identity `number` of dataset `seed` (its own RNG: independent of other identities)."""
    rng = np.random.default_rng([int(seed), int(number), 11])
    ethnicity = str(rng.choice(ETHNICITIES, p=[0.45, 0.35, 0.2]))
    gender = str(rng.choice(GENDERS))
    kid = ethnicity == "Kid"
    male = gender == "male"

    def u(lo: float, hi: float) -> float:
        return round(float(rng.uniform(lo, hi)), 4)

    def color(base: tuple[int, int, int], jitter: float) -> tuple[int, int, int]:
        return tuple(int(np.clip(c + rng.normal(0, jitter), 0, 255)) for c in base)  # type: ignore[return-value]

    lo, hi = _SKIN[ethnicity]
    tone = rng.uniform()
    skin = color(tuple(int(a + (b - a) * tone) for a, b in zip(lo, hi, strict=True)), 4)  # type: ignore[arg-type]
    styles = ("buzz", "short", "side", "curly", "long", "bob", "bun")
    p_style = [0.2, 0.3, 0.2, 0.15, 0.05, 0.1, 0.0] if male else [0.0, 0.05, 0.1, 0.15, 0.35, 0.2, 0.15]
    hair_color = _HAIR[int(rng.integers(0, 5 if kid else 6))]
    b = u(1.12, 1.25) if kid else u(1.25, 1.42)
    adult_male = male and not kid
    nose_y = u(0.36, 0.46) if kid else u(0.38, 0.55)
    return Identity(
        number=int(number),
        ethnicity=ethnicity,
        gender=gender,
        head_b=b,
        head_power=u(2.0, 2.9),
        jaw_taper=u(0.05, 0.25) if kid else u(0.08, 0.4),
        skin=skin,
        eye_y=u(0.05, 0.14) if kid else u(-0.04, 0.08),
        eye_spacing=u(0.36, 0.46),
        eye_w=u(0.17, 0.21) if kid else u(0.14, 0.19),
        eye_open=u(0.5, 0.62) if kid else u(0.4, 0.58),
        eye_tilt=u(-0.12, 0.18),
        iris_color=color(_IRIS[int(rng.integers(0, len(_IRIS)))], 8),
        brow_height=u(0.17, 0.25),
        brow_thick=u(0.04, 0.065) if adult_male else u(0.025, 0.045),
        brow_arch=u(0.0, 0.07),
        brow_len=u(0.9, 1.3),
        nose_y=nose_y,
        nose_w=u(0.08, 0.11) if kid else u(0.09, 0.15),
        nose_len=u(0.1, 0.16) if kid else u(0.14, 0.3),
        mouth_y=round(nose_y + u(0.3, 0.4), 4),
        mouth_w=u(0.2, 0.33),
        lip_upper=u(0.03, 0.055),
        lip_lower=u(0.04, 0.075),
        cupid=u(0.2, 1.0),
        lip_color=color(_LIPS[int(rng.integers(0, len(_LIPS)))], 8),
        hair_style=str(rng.choice(styles, p=p_style)),
        hair_color=color(hair_color, 6),
        hair_volume=u(0.05, 0.16),
        hairline=u(-0.78, -0.58),
        glasses=str(rng.choice(("none", "round", "square"), p=[0.9, 0.05, 0.05] if kid else [0.65, 0.17, 0.18])),
        glasses_color=color(((40, 30, 30), (120, 40, 40), (60, 60, 120), (150, 150, 150))[int(rng.integers(0, 4))], 5),
        mustache=bool(adult_male and rng.uniform() < 0.3),
        beard=bool(adult_male and rng.uniform() < 0.25),
        shirt_color=tuple(int(c) for c in rng.integers(40, 220, 3)),  # type: ignore[arg-type]
        blush=u(0.1, 0.45) if not adult_male else u(0.0, 0.2),
    )


@dataclass(frozen=True)
class Scene:
    """What varies per (identity, pose) but not per expression: background and lighting."""

    bg_top: tuple[int, int, int]
    bg_bottom: tuple[int, int, int]
    bg_angle: float
    light: tuple[float, float, float]
    offset: tuple[float, float]  # head centre jitter, fraction of the image side


def make_scene(seed: int, number: int, pose: str) -> Scene:
    """Background and lighting for (seed, identity, pose); pose is an angle or any label."""
    rng = np.random.default_rng([int(seed), int(number), sum(ord(c) * 31**i for i, c in enumerate(pose)), 23])
    light = np.array([rng.uniform(-0.7, 0.7), rng.uniform(-0.7, -0.1), 1.0])
    light /= np.linalg.norm(light)
    return Scene(
        bg_top=tuple(int(c) for c in rng.integers(60, 235, 3)),  # type: ignore[arg-type]
        bg_bottom=tuple(int(c) for c in rng.integers(30, 200, 3)),  # type: ignore[arg-type]
        bg_angle=float(rng.uniform(-0.6, 0.6)),
        light=tuple(float(x) for x in light),  # type: ignore[arg-type]
        offset=(float(rng.uniform(-0.03, 0.03)), float(rng.uniform(-0.02, 0.02))),
    )


def background(scene: Scene, width: int, height: int) -> np.ndarray:
    """A two-colour linear gradient with a soft vignette, RGB uint8."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    xn, yn = xx / max(width - 1, 1) - 0.5, yy / max(height - 1, 1) - 0.5
    t = np.clip(0.5 + yn * math.cos(scene.bg_angle) + xn * math.sin(scene.bg_angle), 0, 1)[..., None]
    img = np.array(scene.bg_top, np.float32) * (1 - t) + np.array(scene.bg_bottom, np.float32) * t
    img *= (1.0 - 0.35 * (xn**2 + yn**2))[..., None]
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


def _shade(color: tuple[int, int, int] | np.ndarray, k: float) -> tuple[int, int, int]:
    return tuple(int(np.clip(c * k, 0, 255)) for c in color)  # type: ignore[return-value]


def _mix(a: tuple[int, int, int], b: tuple[int, int, int], t: float) -> tuple[int, int, int]:
    return tuple(int(round(x + (y - x) * t)) for x, y in zip(a, b, strict=True))  # type: ignore[return-value]


@dataclass
class Rendered:
    """One rendered image (RGB uint8), its 5 landmarks (MTCNN order, pixels) and face mask."""

    image: np.ndarray
    landmarks: np.ndarray
    face_mask: np.ndarray
    geometry: dict[str, np.ndarray] = field(default_factory=dict)


class FaceRenderer:
    """Renders one identity in one pose and scene; `render` varies expression and gaze only.

    Everything outside the face (background, hair, neck, ears, glasses) is drawn once into a
    base layer and an overlay, so images of different expressions differ only inside the face.
    """

    def __init__(
        self,
        ident: Identity,
        scene: Scene,
        yaw_deg: float,
        size: int,
        ss: int = 4,
        bg: np.ndarray | None = None,
        center: tuple[float, float] | None = None,
        scale: float | None = None,
    ) -> None:
        self.id, self.scene, self.size, self.ss = ident, scene, int(size), int(ss)
        self.yaw = math.radians(yaw_deg)
        self.sc = scale if scale is not None else 0.36 * size / ident.head_b
        if center is None:
            center = (size * (0.5 + scene.offset[0]), size * (0.47 + scene.offset[1]))
        self.cx, self.cy = center
        self.light = np.array(scene.light)
        bg = background(scene, size, size) if bg is None else bg
        big = size * self.ss
        self.base = cv2.resize(bg, (big, big), interpolation=cv2.INTER_LINEAR)
        ov_rgb = np.zeros((big, big, 3), np.uint8)
        ov_a = np.zeros((big, big), np.uint8)
        self._draw_base(self.base)
        self._draw_overlay(ov_rgb, ov_a)
        self.ov_rgb = cv2.resize(ov_rgb, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32)
        self.ov_a = cv2.resize(ov_a, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32)[..., None] / 255.0
        self.face_mask = self._face_mask()

    # ---- geometry ---------------------------------------------------------------------------
    def radius(self, v: np.ndarray) -> np.ndarray:
        """Slice radius R(v) of the head at height v."""
        b, p = self.id.head_b, self.id.head_power
        t = np.clip(np.abs(v) / b, 0, 1)
        r = (1 - t**p) ** (1 / p)
        return r * (1 - self.id.jaw_taper * np.clip(v / b, 0, 1) ** 2)

    def project(self, u: np.ndarray, v: np.ndarray, d: np.ndarray | float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """Face point (u, v) lifted to the head surface plus `d` outward -> (pixels Nx2, depth)."""
        u, v = np.broadcast_arrays(np.asarray(u, float), np.asarray(v, float))
        r = np.maximum(self.radius(v), 1e-6)
        phi = np.arcsin(np.clip(u / r, -1, 1)) + self.yaw
        rho = r + d
        px = np.stack([self.cx + rho * np.sin(phi) * self.sc, self.cy + v * self.sc], -1)
        return px, rho * np.cos(phi)

    def _pt(self, u: np.ndarray, v: np.ndarray, d: np.ndarray | float = 0.0) -> np.ndarray:
        return self.project(u, v, d)[0]

    def outline(self, grow: float = 0.0, n: int = 90) -> np.ndarray:
        """Head outline (closed polygon, pixels), optionally scaled by 1 + grow about the centre."""
        v = self.id.head_b * np.sin(np.linspace(-math.pi / 2, math.pi / 2, n))
        r = self.radius(v)
        x = np.concatenate([r, -r[::-1]]) * (1 + grow)
        y = np.concatenate([v, v[::-1]]) * (1 + grow)
        return np.stack([self.cx + x * self.sc, self.cy + y * self.sc], -1)

    def _normal_shade(self, n: np.ndarray) -> float:
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        rot = np.array([n[0] * c + n[2] * s, n[1], -n[0] * s + n[2] * c])
        rot /= np.linalg.norm(rot)
        return 0.62 + 0.45 * max(0.0, float(rot @ self.light))

    # ---- low-level drawing on the supersampled canvas ---------------------------------------
    def _fix(self, pts: np.ndarray) -> np.ndarray:
        big = (np.asarray(pts, float) + 0.5) * self.ss - 0.5
        return np.round(big * 16).astype(np.int32).reshape(-1, 1, 2)

    def _fill(self, img: np.ndarray, pts: np.ndarray, color: tuple[int, ...] | int) -> None:
        cv2.fillPoly(img, [self._fix(pts)], color, cv2.LINE_AA, 4)

    def _line(
        self, img: np.ndarray, pts: np.ndarray, color: tuple[int, ...], width: float, closed: bool = False
    ) -> None:
        th = max(1, int(round(width * self.sc * self.ss)))
        cv2.polylines(img, [self._fix(pts)], closed, color, th, cv2.LINE_AA, 4)

    def _clipped(self, img: np.ndarray, clip: np.ndarray, draws: list, alpha: float = 1.0, blur: float = 0.0) -> None:
        """Run draws (callables on an ROI canvas and its pixel offset) inside the polygon `clip`."""
        big = (np.asarray(clip) + 0.5) * self.ss - 0.5
        pad = int(blur * self.ss * 3) + 3
        x0, y0 = np.maximum(np.floor(big.min(0)).astype(int) - pad, 0)
        x1, y1 = np.minimum(np.ceil(big.max(0)).astype(int) + pad, [img.shape[1], img.shape[0]])
        if x1 <= x0 or y1 <= y0:
            return
        roi = img[y0:y1, x0:x1]
        layer = roi.copy()
        off = np.array([x0, y0]) / self.ss
        for draw in draws:
            draw(layer, off)
        mask = np.zeros(roi.shape[:2], np.uint8)
        self._fill(mask, np.asarray(clip) - off, 255)
        if blur > 0:
            k = 2 * int(blur * self.ss * 1.5) + 1
            mask = cv2.GaussianBlur(mask, (k, k), blur * self.ss)
        a = mask.astype(np.float32)[..., None] * (alpha / 255.0)
        roi[:] = (layer * a + roi * (1 - a) + 0.5).astype(np.uint8)

    # ---- static layers ----------------------------------------------------------------------
    def _draw_base(self, img: np.ndarray) -> None:
        idn, b = self.id, self.id.head_b
        sy = math.sin(self.yaw)
        if idn.hair_style in ("long", "bob"):
            end = b + 0.55 if idn.hair_style == "long" else b * 0.72
            w0 = 1 + idn.hair_volume
            top = self.outline(idn.hair_volume)[: len(self.outline()) // 2]
            side = np.array([[1.12 * w0, 0.3], [1.2 * w0, end], [-1.2 * w0, end], [-1.12 * w0, 0.3]])
            shift = -0.2 * sy
            pts = np.concatenate(
                [
                    top[top[:, 1] < self.cy][::-1],
                    np.stack([self.cx + (side[:, 0] + shift) * self.sc, self.cy + side[:, 1] * self.sc], -1),
                ]
            )
            self._fill(img, pts, _shade(idn.hair_color, 0.8))
        neck_x = 0.1 * sy
        neck = np.array([[-0.4, 0.4 * b], [0.4, 0.4 * b], [0.45, b + 0.6], [-0.45, b + 0.6]]) + [neck_x, 0]
        self._fill(
            img, np.stack([self.cx + neck[:, 0] * self.sc, self.cy + neck[:, 1] * self.sc], -1), _shade(idn.skin, 0.78)
        )
        th = np.linspace(math.pi, 2 * math.pi, 40)
        shirt = np.stack([1.9 * np.cos(th), b + 0.98 + 0.8 * np.sin(th)], -1)
        shirt = np.concatenate([shirt, [[1.9, b + 3], [-1.9, b + 3]]])
        self._fill(
            img, np.stack([self.cx + shirt[:, 0] * self.sc, self.cy + shirt[:, 1] * self.sc], -1), idn.shirt_color
        )
        collar = np.array([[-0.45, b + 0.2], [0.0, b + 0.55], [0.45, b + 0.2]]) + [neck_x, 0]
        self._line(
            img,
            np.stack([self.cx + collar[:, 0] * self.sc, self.cy + collar[:, 1] * self.sc], -1),
            _shade(idn.shirt_color, 0.7),
            0.05,
        )
        ears = self._ears()
        for ear, front in ears:
            if not front:
                self._draw_ear(img, ear)
        self._draw_skin(img)
        for ear, front in ears:
            if front:
                self._draw_ear(img, ear)
        if idn.beard:
            self._draw_beard(img)

    def _ears(self) -> list[tuple[tuple[float, float, float, float], bool]]:
        idn = self.id
        ev = (idn.eye_y + idn.nose_y) / 2
        r = float(self.radius(np.array(ev)))
        out = []
        for side in (-1, 1):
            phi = side * math.pi / 2 + self.yaw
            c = math.cos(phi)
            if c < -0.35:
                continue
            x = (r + 0.06 * (1 - max(c, 0))) * math.sin(phi)
            out.append(((x, ev, 0.07 + 0.07 * max(c, 0), 0.21), c > 0.3))
        return out

    def _draw_ear(self, img: np.ndarray, ear: tuple[float, float, float, float]) -> None:
        x, y, w, h = ear
        th = np.linspace(0, 2 * math.pi, 32)
        pts = np.stack([self.cx + (x + w * np.cos(th)) * self.sc, self.cy + (y + h * np.sin(th)) * self.sc], -1)
        self._fill(img, pts, _shade(self.id.skin, 0.9))
        inner = np.stack(
            [self.cx + (x + 0.5 * w * np.cos(th)) * self.sc, self.cy + (y + 0.6 * h * np.sin(th)) * self.sc], -1
        )
        self._line(img, inner, _shade(self.id.skin, 0.7), 0.02, closed=True)

    def _draw_skin(self, img: np.ndarray) -> None:
        ol = self.outline()
        big = (ol + 0.5) * self.ss - 0.5
        x0, y0 = np.maximum(np.floor(big.min(0)).astype(int) - 2, 0)
        x1, y1 = np.minimum(np.ceil(big.max(0)).astype(int) + 3, [img.shape[1], img.shape[0]])
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        u = ((xx + 0.5) / self.ss - 0.5 - self.cx) / self.sc
        v = ((yy + 0.5) / self.ss - 0.5 - self.cy) / self.sc
        r = np.maximum(self.radius(v), 1e-3)
        nx = np.clip(u / r, -1, 1)
        ny = np.clip(v / self.id.head_b, -1, 1) * 0.45
        nz = np.sqrt(np.maximum(1 - nx**2, 0))
        norm = np.sqrt(nx**2 + ny**2 + nz**2)
        lam = np.maximum((nx * self.light[0] + ny * self.light[1] + nz * self.light[2]) / norm, 0)
        shade = 0.6 + 0.48 * lam - 0.08 * nx**4
        skin = np.clip(np.array(self.id.skin, np.float32) * shade[..., None], 0, 255)
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        self._fill(mask, ol - np.array([x0, y0]) / self.ss, 255)
        a = mask.astype(np.float32)[..., None] / 255.0
        roi = img[y0:y1, x0:x1]
        roi[:] = (skin * a + roi * (1 - a) + 0.5).astype(np.uint8)

    def _draw_beard(self, img: np.ndarray) -> None:
        idn, b = self.id, self.id.head_b
        start = (idn.eye_y + idn.nose_y) / 2 + 0.05
        v = np.linspace(start, b, 30)
        r = self.radius(v) * 1.02
        outer = np.concatenate([np.stack([-r, v], -1), np.stack([r[::-1], v[::-1]], -1)])
        outer_px = np.stack([self.cx + outer[:, 0] * self.sc, self.cy + outer[:, 1] * self.sc], -1)
        t = np.linspace(1, -1, 30)
        inner_u = t * float(self.radius(np.array(start))) * 0.92
        inner_v = idn.mouth_y + 0.2 - (idn.mouth_y + 0.2 - start) * np.abs(t) ** 4
        inner_px = self._pt(inner_u * 0.999, inner_v)
        self._fill(img, np.concatenate([outer_px, inner_px]), _shade(idn.hair_color, 0.9))

    def _draw_overlay(self, rgb: np.ndarray, alpha: np.ndarray) -> None:
        idn = self.id
        hair = _shade(idn.hair_color, 1.0)
        a = 0.7 if idn.hair_style == "buzz" else 1.0
        cap = self._hair_cap()
        self._fill(rgb, cap, _shade(hair, a))
        self._fill(alpha, cap, int(255 * a))
        if idn.hair_style != "buzz":
            hl = self.outline(idn.hair_volume * 0.5)
            top = hl[hl[:, 1] < self.cy - 0.55 * idn.head_b * self.sc]
            top = top[np.argsort(np.arctan2(top[:, 1] - self.cy, top[:, 0] - self.cx))]
            self._line(rgb, top, _shade(hair, 1.35), 0.05)
        if idn.hair_style in ("long", "bob"):
            end = idn.mouth_y if idn.hair_style == "bob" else idn.head_b * 0.95
            v = np.linspace(idn.hairline + 0.25, end, 30)
            r = self.radius(v)
            sy = math.sin(self.yaw)
            for side in (-1, 1):
                w = 0.16 * (1 - 0.9 * max(0.0, side * sy / 0.7071))
                outer = side * r * (1 + idn.hair_volume)
                inner = side * (r - w * np.sin(np.linspace(0.3, math.pi - 0.2, 30)))
                pts = np.concatenate([np.stack([outer, v], -1), np.stack([inner[::-1], v[::-1]], -1)])
                pts = np.stack([self.cx + pts[:, 0] * self.sc, self.cy + pts[:, 1] * self.sc], -1)
                self._fill(rgb, pts, hair)
                self._fill(alpha, pts, 255)
        if idn.hair_style == "bun":
            th = np.linspace(0, 2 * math.pi, 40)
            bun = np.stack(
                [self.cx + 0.35 * np.cos(th) * self.sc, self.cy + (-idn.head_b - 0.2 + 0.27 * np.sin(th)) * self.sc], -1
            )
            self._fill(rgb, bun, hair)
            self._fill(alpha, bun, 255)
        if idn.glasses != "none":
            self._draw_glasses(rgb, alpha)

    def _hair_cap(self) -> np.ndarray:
        idn, b = self.id, self.id.head_b
        phi = np.linspace(-math.pi, math.pi, 181)
        front = np.clip(np.abs(phi) / math.radians(55), 0, 1)
        low = idn.eye_y - 0.2
        hl = idn.hairline + (0.12 if idn.hair_style == "bob" else 0.0)
        v = hl + 0.04 * front**2 + (low - hl) * np.clip((np.abs(phi) - math.radians(55)) / math.radians(35), 0, 1)
        if idn.hair_style == "side":
            v = v + 0.18 * np.clip(phi / math.radians(55), -1, 1) * (1 - front**4)
        if idn.hair_style == "curly":
            v = v + 0.035 * np.sin(phi * 14)
        vis = phi + self.yaw
        keep = np.abs(vis) <= math.pi / 2
        order = np.argsort(vis[keep])
        vk, pk = v[keep][order], vis[keep][order]
        r = self.radius(vk)
        line = np.stack([self.cx + r * np.sin(pk) * self.sc, self.cy + vk * self.sc], -1)
        grow = 1 + idn.hair_volume
        t = np.linspace(math.asin(np.clip(vk[-1] / b, -1, 1)), -math.pi / 2, 40)
        t = np.concatenate([t, np.linspace(-math.pi / 2, -math.pi - math.asin(np.clip(vk[0] / b, -1, 1)), 40)[1:]])
        vv = b * np.sin(t)
        rr = self.radius(vv) * np.sign(np.cos(t))
        if idn.hair_style == "curly":
            grow = grow + 0.05 * np.sin(t * 18)
        outer = np.stack([self.cx + rr * grow * self.sc, self.cy + vv * grow * self.sc], -1)
        return np.concatenate([line, outer])

    def _draw_glasses(self, rgb: np.ndarray, alpha: np.ndarray) -> None:
        idn = self.id
        th = np.linspace(0, 2 * math.pi, 40)
        rw = idn.eye_w * 1.45
        if idn.glasses == "round":
            cu, cv_ = np.cos(th), np.sin(th) * 0.95
        else:
            cu = np.clip(1.25 * np.cos(th), -1, 1)
            cv_ = np.clip(1.25 * np.sin(th), -1, 1) * 0.72
        inner_ends = []
        for side in (-1, 1):
            eu = side * idn.eye_spacing
            ring = self._pt(eu + rw * cu, idn.eye_y + 0.01 + rw * cv_, 0.09)
            if self.project(eu, idn.eye_y)[1] < 0:
                continue
            self._fill(rgb, ring, (40, 40, 45))
            self._fill(alpha, ring, 30)
            self._line(rgb, ring, idn.glasses_color, 0.03, closed=True)
            self._line(alpha, ring, 255, 0.03, closed=True)
            inner_ends.append(self._pt(eu - side * rw, idn.eye_y - 0.02, 0.09))
            temple = self._pt(
                np.array([eu + side * rw, side * 0.999]), np.array([idn.eye_y - 0.02, idn.eye_y]), [0.09, 0.0]
            )
            if self.project(side * 0.99, idn.eye_y)[1] > -0.1:
                self._line(rgb, temple, idn.glasses_color, 0.03)
                self._line(alpha, temple, 255, 0.03)
        if len(inner_ends) == 2:
            bridge = np.concatenate(
                [inner_ends[0][None], self._pt(0.0, idn.eye_y - 0.05, 0.12)[None], inner_ends[1][None]]
            )
            self._line(rgb, bridge, idn.glasses_color, 0.03)
            self._line(alpha, bridge, 255, 0.03)

    def _face_mask(self) -> np.ndarray:
        mask = np.zeros((self.size, self.size), np.uint8)
        cv2.fillPoly(mask, [np.round(self.outline() * 16).astype(np.int32)], 255, cv2.LINE_8, 4)
        tip = self._pt(0.0, self.id.nose_y, self.id.nose_len)
        cv2.circle(mask, tuple(int(round(c)) for c in tip), int(0.2 * self.sc) + 1, 255, -1)
        return cv2.dilate(mask, np.ones((3, 3), np.uint8)) > 0

    # ---- per-expression features ------------------------------------------------------------
    def render(self, expr: np.ndarray, gaze: float = 0.0) -> Rendered:
        """Draw the face with expression parameters `expr` and horizontal gaze in [-1, 1]."""
        img = self.base.copy()
        e = dict(zip(ACTIONS, (float(x) for x in expr), strict=True))
        geo: dict[str, np.ndarray] = {}
        self._draw_cheeks(img, e)
        eyes = [self._draw_eye(img, side, e, gaze) for side in (-1, 1)]
        for side in (-1, 1):
            self._draw_brow(img, side, e)
        corners = self._draw_mouth(img, e)
        tip = self._draw_nose(img, e)
        small = cv2.resize(img, (self.size, self.size), interpolation=cv2.INTER_AREA)
        out = (small.astype(np.float32) * (1 - self.ov_a) + self.ov_rgb + 0.5).clip(0, 255).astype(np.uint8)
        landmarks = np.array([eyes[0], eyes[1], tip, corners[0], corners[1]], np.float64)
        geo["landmarks"] = landmarks
        return Rendered(out, landmarks, self.face_mask, geo)

    def _draw_cheeks(self, img: np.ndarray, e: dict[str, float]) -> None:
        idn = self.id
        th = np.linspace(0, 2 * math.pi, 28)
        raise_ = e["cheek_raise"]
        strength = min(1.0, idn.blush + 0.35 * raise_)
        if strength > 0.01:
            for side in (-1, 1):
                cu = side * (idn.eye_spacing + 0.06)
                cv_ = idn.nose_y - 0.02 - 0.08 * raise_
                poly = self._pt(cu + 0.16 * np.cos(th), cv_ + 0.1 * np.sin(th), 0.01)
                color = _mix(idn.skin, (235, 110, 110), 0.6)
                self._clipped(
                    img,
                    poly,
                    [lambda c, o, p=poly, col=color: self._fill(c, p - o, col)],
                    strength * 0.55,
                    0.04 * self.sc,
                )
        mw = idn.mouth_w
        folds = {
            -1: max(0.8 * e["lip_corner_pull"], e["upper_lip_raise"], 0.6 * e["cheek_raise"]),
            1: max(0.8 * e["lip_corner_pull"], e["upper_lip_raise"], 0.6 * e["cheek_raise"], 0.9 * e["contempt"]),
        }
        for side, s in folds.items():
            if s <= 0.02:
                continue
            t = np.linspace(0, 1, 12)
            fu = side * (idn.nose_w + 0.05 + (mw + 0.05 - idn.nose_w) * np.sin(t * math.pi / 2) * (1 + 0.15 * s))
            fv = idn.nose_y - 0.02 + (idn.mouth_y + 0.08 - idn.nose_y) * t - 0.05 * s * t
            self._line(img, self._pt(fu, fv, 0.01), _shade(idn.skin, 1 - 0.3 * min(s, 1)), 0.016)
        # forehead lines (AU1/AU2) and the frown furrow (AU4)
        f = min(1.0, 0.6 * e["brow_inner_raise"] + 0.6 * e["brow_outer_raise"])
        if f > 0.02:
            for k in range(3):
                yv = idn.eye_y - idn.brow_height - 0.16 - 0.07 * k
                uu = np.linspace(-0.28 + 0.04 * k, 0.28 - 0.04 * k, 12)
                self._line(img, self._pt(uu, yv - 0.03 * np.cos(uu * 4)), _shade(idn.skin, 1 - 0.22 * f), 0.012)
        f = e["brow_lower"]
        if f > 0.02:
            for side in (-1, 1):
                y0 = idn.eye_y - idn.brow_height + 0.01
                self._line(
                    img,
                    self._pt(np.array([side * 0.05, side * 0.04]), np.array([y0, y0 + 0.12])),
                    _shade(idn.skin, 1 - 0.3 * f),
                    0.014,
                )

    def _draw_eye(self, img: np.ndarray, side: int, e: dict[str, float], gaze: float) -> np.ndarray:
        idn = self.id
        ex, ey, ew = side * idn.eye_spacing, idn.eye_y, idn.eye_w
        center_px, depth = self.project(ex, ey)
        if depth < 0:
            return center_px
        eh = ew * idn.eye_open
        up = eh * max(0.35, 1 + 0.55 * e["upper_lid_raise"] - 0.45 * e["lid_tighten"] - 0.35 * e["cheek_raise"])
        lo = eh * 0.8 * max(0.3, 1 + 0.2 * e["upper_lid_raise"] - 0.55 * e["cheek_raise"] - 0.4 * e["lid_tighten"])
        t = np.linspace(0, 1, 21)
        xs = ex + side * ew * (2 * t - 1)
        tilt = -idn.eye_tilt * ew * (2 * t - 1)
        upper = np.stack([xs, ey + tilt - up * np.sin(math.pi * t) ** 0.7], -1)
        lower = np.stack([xs, ey + tilt + lo * np.sin(math.pi * t) ** 0.9], -1)
        opening = self._pt(*np.concatenate([upper, lower[::-1]]).T)
        self._fill(img, opening, (246, 243, 238))
        ir = 0.5 * ew
        iu = ex + gaze * ew * 0.45
        th = np.linspace(0, 2 * math.pi, 32)
        iris = self._pt(iu + ir * np.cos(th), ey + ir * np.sin(th), 0.004)
        iris_in = self._pt(iu + 0.8 * ir * np.cos(th), ey + 0.8 * ir * np.sin(th), 0.004)
        pupil = self._pt(iu + 0.42 * ir * np.cos(th), ey + 0.42 * ir * np.sin(th), 0.004)
        glint = self._pt(iu - 0.45 * ir + 0.14 * ir * np.cos(th), ey - 0.45 * ir + 0.14 * ir * np.sin(th), 0.004)
        upper_px = self._pt(*upper.T)
        draws = [
            lambda c, o: self._fill(c, iris - o, _shade(idn.iris_color, 0.6)),
            lambda c, o: self._fill(c, iris_in - o, idn.iris_color),
            lambda c, o: self._fill(c, pupil - o, (14, 12, 14)),
            lambda c, o: self._fill(c, glint - o, (255, 255, 255)),
            lambda c, o: self._line(c, upper_px - o, (175, 160, 155), 0.03),
        ]
        self._clipped(img, opening, draws)
        self._line(img, upper_px, (38, 28, 28), 0.026 if idn.gender == "male" else 0.034)
        self._line(img, self._pt(*lower.T), _shade(idn.skin, 0.72), 0.01)
        crease_t = t[2:-2]
        crease = np.stack([xs[2:-2], ey + tilt[2:-2] - (up + 0.045) * np.sin(math.pi * crease_t) ** 0.8], -1)
        self._line(img, self._pt(*crease.T), _shade(idn.skin, 0.75), 0.012)
        if e["cheek_raise"] > 0.02:
            bag = np.stack([xs[3:-3], ey + tilt[3:-3] + lo + 0.045 - 0.01 * np.sin(math.pi * t[3:-3])], -1)
            self._line(img, self._pt(*bag.T), _shade(idn.skin, 1 - 0.2 * e["cheek_raise"]), 0.012)
        if idn.gender == "female":
            for k in (0.7, 0.82, 0.93):
                i = int(k * 20)
                p = upper[i]
                tip = p + [side * 0.035, -0.04]
                self._line(img, self._pt(*np.array([p, tip]).T), (38, 28, 28), 0.012)
        return center_px

    def _draw_brow(self, img: np.ndarray, side: int, e: dict[str, float]) -> None:
        idn = self.id
        t = np.linspace(0, 1, 16)
        inner = side * (0.1 + 0.04 * idn.brow_len - 0.06 * e["brow_lower"])
        outer = side * (idn.eye_spacing + idn.eye_w * idn.brow_len)
        x = inner + (outer - inner) * t
        base = idn.eye_y - idn.brow_height
        dy_in = -0.15 * e["brow_inner_raise"] + 0.13 * e["brow_lower"]
        dy_out = -0.13 * e["brow_outer_raise"] + 0.03 * e["brow_lower"] - 0.02 * e["brow_inner_raise"]
        y = base - idn.brow_arch * np.sin(math.pi * t**0.8) + dy_in + (dy_out - dy_in) * t
        y = y - 0.03 * e["brow_inner_raise"] * np.sin(math.pi * np.clip(t * 1.6, 0, 1)) * (1 - e["brow_lower"])
        th = (
            idn.brow_thick
            * (1 + 0.3 * e["brow_lower"])
            * (1.0 - 0.5 * t**1.5)
            * (0.6 + 0.4 * np.sin(math.pi * np.clip(t * 3, 0, 1) / 2))
        )
        if self.project(x[len(x) // 2], y[len(y) // 2])[1] < 0:
            return
        poly = self._pt(np.concatenate([x, x[::-1]]), np.concatenate([y - th / 2, (y + th / 2)[::-1]]), 0.01)
        self._fill(img, poly, _mix(_shade(idn.hair_color, 0.6), (40, 28, 22), 0.35))

    def _draw_nose(self, img: np.ndarray, e: dict[str, float]) -> np.ndarray:
        idn = self.id
        w9 = e["nose_wrinkle"]
        ny = idn.nose_y - 0.025 * w9
        nw = idn.nose_w * (1 + 0.18 * w9)
        L = idn.nose_len
        top = idn.eye_y + 0.05
        if w9 > 0.02:
            for k in range(3):
                uu = np.linspace(-0.07, 0.07, 7)
                vv = top + 0.02 + 0.035 * k + 0.015 * uu**2 / 0.005
                self._line(img, self._pt(uu, vv, 0.03), _shade(idn.skin, 1 - 0.3 * w9), 0.011)
        tip_px = self._pt(0.0, ny, L)
        for side in (-1, 1):
            pts = self._pt(
                np.array([0.0, 0.0, 0.0, side * nw * 0.5, side * nw, side * 0.035]),
                np.array([top, ny, ny + 0.06, ny + 0.065, ny + 0.015, top + 0.05]),
                np.array([0.03, L, L * 0.45, 0.05, 0.02, 0.03]),
            )
            k = self._normal_shade(np.array([side * 0.75, 0.1, 0.65]))
            self._clipped(
                img, pts, [lambda c, o, p=pts, kk=k: self._fill(c, p - o, _shade(idn.skin, kk))], 0.85, 0.01 * self.sc
            )
        th = np.linspace(0, 2 * math.pi, 20)
        for side in (-1, 1):
            nost = self._pt(side * nw * 0.5 + 0.4 * nw * 0.5 * np.cos(th), ny + 0.047 + 0.018 * np.sin(th), 0.07)
            self._fill(img, nost, _shade(idn.skin, 0.38))
            ala = np.linspace(-0.3, math.pi * 0.75, 10)
            arc = self._pt(side * (nw * 0.78 + 0.05 * np.cos(ala) * 0.7), ny + 0.025 - 0.045 * np.sin(ala), 0.03)
            self._line(img, arc, _shade(idn.skin, 0.7), 0.012)
        hl = self._pt(-0.02 + 0.035 * np.cos(th), ny - 0.025 + 0.025 * np.sin(th), L)
        self._clipped(img, hl, [lambda c, o: self._fill(c, hl - o, _shade(idn.skin, 1.15))], 0.6, 0.01 * self.sc)
        return tip_px

    def mouth_curves(self, e: dict[str, float], n: int = 25) -> dict[str, np.ndarray]:
        """The lip curves in face units (each n x 2): line, upper/lower inner and outer."""
        idn = self.id
        jaw = e["jaw_drop"]
        mw = idn.mouth_w * (
            1
            + 0.22 * e["lip_corner_pull"]
            + 0.28 * e["lip_stretch"]
            - 0.12 * e["lip_press"]
            + 0.05 * e["lip_corner_depress"]
        )
        mw *= 1 - 0.22 * jaw * (1 - e["lip_corner_pull"]) * (1 - e["lip_stretch"])
        dy = -0.11 * e["lip_corner_pull"] + 0.1 * e["lip_corner_depress"] + 0.02 * e["lip_stretch"]
        dyl, dyr = dy, dy - 0.11 * e["contempt"]
        xr = mw + 0.05 * e["contempt"]
        t = np.linspace(-1, 1, n)
        x = -mw + (xr + mw) * (t + 1) / 2
        line = idn.mouth_y + dyl * np.clip(-t, 0, 1) ** 1.6 + dyr * np.clip(t, 0, 1) ** 1.6
        prof = np.clip(1 - t**2, 0, 1)
        op = 0.32 * jaw + 0.03 * e["upper_lip_raise"]
        raise10 = 0.05 * e["upper_lip_raise"] * prof**0.5
        upper_in = line - 0.22 * op * prof**0.8 - raise10
        lower_in = line + 0.78 * op * prof**0.7
        thin = 1 - 0.75 * e["lip_press"] - 0.2 * jaw
        bow = 1 - 0.35 * idn.cupid * np.exp(-((t / 0.16) ** 2))
        upper_out = upper_in - idn.lip_upper * thin * prof**0.45 * bow - 0.01 * e["upper_lip_raise"] * prof
        lower_out = lower_in + idn.lip_lower * thin * prof**0.5
        return {
            "x": x,
            "line": line,
            "upper_in": upper_in,
            "lower_in": lower_in,
            "upper_out": upper_out,
            "lower_out": lower_out,
        }

    def _draw_mouth(self, img: np.ndarray, e: dict[str, float]) -> list[np.ndarray]:
        idn = self.id
        m = self.mouth_curves(e)
        x = m["x"]
        d = 0.03 * np.clip(1 - np.linspace(-1, 1, len(x)) ** 2, 0, 1)

        def curve(name: str, sl: slice = slice(None)) -> np.ndarray:
            return self._pt(x[sl], m[name][sl], d[sl])

        lip = idn.lip_color
        if float(np.max(m["lower_in"] - m["upper_in"])) > 0.004:
            self._fill(img, np.concatenate([curve("upper_in"), curve("lower_in")[::-1]]), (80, 22, 30))
            teeth = 0.08 * e["teeth"]
            if teeth > 0.003:
                sl = slice(3, -3)
                bottom = np.minimum(m["upper_in"][sl] + teeth, m["lower_in"][sl] - 0.012)
                bottom = np.maximum(bottom, m["upper_in"][sl])
                poly = np.concatenate([curve("upper_in", sl), self._pt(x[sl], bottom, d[sl])[::-1]])
                self._fill(img, poly, (248, 246, 236))
        self._fill(img, np.concatenate([curve("lower_in"), curve("lower_out")[::-1]]), lip)
        self._fill(img, np.concatenate([curve("upper_out"), curve("upper_in")[::-1]]), _shade(lip, 0.88))
        if idn.mustache:
            sl = slice(None)
            xx = x * 1.12
            top = idn.nose_y + 0.075 + 0.03 * np.linspace(-1, 1, len(x)) ** 2
            bottom = np.maximum(m["upper_out"] - 0.005, top + 0.03)
            poly = np.concatenate([self._pt(xx[sl], top[sl], 0.04), self._pt(xx[sl], bottom[sl], 0.04)[::-1]])
            self._fill(img, poly, _shade(idn.hair_color, 0.85))
        self._line(img, curve("upper_in"), _shade(lip, 0.45), 0.012)
        hl = slice(8, -8)
        shine = self._pt(x[hl] * 0.6, (m["lower_in"][hl] * 0.45 + m["lower_out"][hl] * 0.55), 0.03)
        self._line(img, shine, _shade(lip, 1.2), 0.01)
        if e["contempt"] > 0.02:
            cu, cv_ = x[-1], m["line"][-1]
            dimple = self._pt(np.array([cu + 0.03, cu + 0.05]), np.array([cv_ - 0.04, cv_ + 0.02]), 0.02)
            self._line(img, dimple, _shade(idn.skin, 1 - 0.3 * e["contempt"]), 0.014)
        return [curve("line", slice(0, 1))[0], curve("line", slice(-1, None))[0]]
