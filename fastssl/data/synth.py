"""Procedural *action* videos in UCF101's layout: classes are motion patterns, not looks.

Every video is one textured object (disc, square or blob, with stripes, checker or blocky noise)
moving over a static background (gradient, checker or smooth colour noise, plus pixel noise and
0-2 static distractor objects). Colours, sizes, textures, shapes, backgrounds, start positions,
directions and phases are drawn per video, so a single frame says little about the class; only
the motion over time does. That is what makes the set useful for video-order pretexts and for
checking that a model learned temporal features.

Motions come in two kinds, on purpose (see DESIGN.md, "ambiguity of PB"):

- time-symmetric: played backward they still look like a video of the same class (constant
  velocity, elastic bounces, rotation, oscillation, orbit, pendulum). "Is this clip played
  backward?" (PB) cannot be answered for them.
- time-asymmetric: energy is dissipated or something grows/fades one way (friction, start from
  rest, inelastic bounce that settles, grow, shrink-and-fade, spiral in). Backward they look
  unphysical, so PB can be learned.

Motions are defined over the *clip* (normalised time s in [0, 1]), so each video shows its whole
pattern whatever `frames` is. When more classes than motions are asked for, class k uses motion
k % M at speed 2 ** (k // M) ("Fast", "Faster" suffixes): every randomised speed-like parameter
spans less than a factor of 2, so the speed bands of the regimes do not overlap and each class
stays a distinct motion pattern.

Rendering is numpy only: the background is drawn once per video, and each frame copies it and
alpha-composites the object inside its bounding box (a few vectorised float32 ops on ~1e4
pixels), so encoding dominates the cost of `make_synthetic_dataset`.

Reproducibility: every random choice of video i of class k comes from
`np.random.default_rng([seed, k, i])`, so the same seed gives the same frames, and a video does
not change when other classes or videos are added.
"""
from __future__ import annotations

import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from .dataset import VideoDataset, load_dataset, write_index, write_splits
from .encode import CODECS, suffix_for, write_video

TWO_PI = 2.0 * math.pi

# speed-regime suffixes for classes beyond the number of motions (regime j plays at 2**j)
REGIME_SUFFIXES = ("", "Fast", "Faster")


# --------------------------------------------------------------------------------------------
# Tracks: what a motion produces (one value per frame)
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Track:
    """Per-frame object state. Positions are pixel coordinates of the object's centre (x right,
    y down, pixel i covers [i, i+1)); `angle` (radians) is added to the sprite's own base angle;
    `scale` multiplies its radius; `opacity` is in [0, 1]."""
    x: np.ndarray
    y: np.ndarray
    angle: np.ndarray
    scale: np.ndarray
    opacity: np.ndarray


@dataclass(frozen=True)
class Box:
    """The frame and how far the object reaches from its centre (at scale 1, any angle):
    keeping the centre within [reach, W - reach] keeps the whole object visible."""
    width: int
    height: int
    reach: float

    @property
    def room_w(self) -> float:
        return self.width - 2 * self.reach

    @property
    def room_h(self) -> float:
        return self.height - 2 * self.reach


def _track(s, x, y, angle=None, scale=None, opacity=None) -> Track:
    ones = np.ones_like(s)
    return Track(x=np.asarray(x, np.float64) * ones, y=np.asarray(y, np.float64) * ones,
                 angle=ones * 0.0 if angle is None else angle,
                 scale=ones if scale is None else scale,
                 opacity=ones if opacity is None else opacity)


def _fold(p, lo, hi):
    """Reflect positions into [lo, hi] (elastic walls): a triangle wave of the free path."""
    span = hi - lo
    if span <= 0:
        return np.full_like(p, (lo + hi) / 2)
    q = np.mod(p - lo, 2 * span)
    return lo + span - np.abs(q - span)


def _max_chord(box: Box, dx: float, dy: float) -> float:
    """Longest straight run in direction (dx, dy) that fits in the room the centre has."""
    lim = []
    if abs(dx) > 1e-9:
        lim.append(box.room_w / abs(dx))
    if abs(dy) > 1e-9:
        lim.append(box.room_h / abs(dy))
    return max(min(lim), 1.0)


def _line(rng, s, box: Box, progress: np.ndarray, speed: float, rest_at_end: bool = False) -> Track:
    """A straight run along a random direction; `progress` (0 -> 1 over the clip) sets the
    speed profile, so constant velocity, friction and start-from-rest share all the geometry.

    At speed 1 the run is 50-95% of the longest chord that fits, and it is placed so the object
    stays in frame. Faster regimes travel further than fits, so they wrap around a torus with a
    margin of one object on each side: the object fully leaves before it reappears, so there is
    no visible jump. The end where the object dwells (`rest_at_end` for friction) is placed in
    view, so a slow or resting object is never hidden in the margin.
    """
    theta = rng.uniform(0, TWO_PI)
    dx, dy = math.cos(theta), math.sin(theta)
    chord = _max_chord(box, dx, dy)
    travel = rng.uniform(0.5, 0.95) * speed * chord
    if travel <= chord:
        ex, ey = travel * dx, travel * dy
        x0 = rng.uniform(box.reach + max(0.0, -ex), box.width - box.reach - max(0.0, ex))
        y0 = rng.uniform(box.reach + max(0.0, -ey), box.height - box.reach - max(0.0, ey))
        return _track(s, x0 + ex * progress, y0 + ey * progress)
    tw, th = box.width + 2 * box.reach, box.height + 2 * box.reach
    # a visible anchor point (+ reach: torus coordinates start one object left/above the frame)
    x0 = rng.uniform(box.reach, box.width - box.reach) + box.reach
    y0 = rng.uniform(box.reach, box.height - box.reach) + box.reach
    if rest_at_end:
        x0, y0 = x0 - travel * dx, y0 - travel * dy
    x = np.mod(x0 + travel * dx * progress, tw) - box.reach
    y = np.mod(y0 + travel * dy * progress, th) - box.reach
    return _track(s, x, y)


def _friction_progress(s, k):
    """Exponential slow-down: velocity falls by e^-k over the clip (k=4: to ~2%)."""
    return (1 - np.exp(-k * s)) / (1 - math.exp(-k))


# ---- time-symmetric motions ---------------------------------------------------------------

def constant_velocity(rng, s, box, speed):
    return _line(rng, s, box, s, speed)


def wall_bounce(rng, s, box, speed):
    """Billiard: constant speed, elastic reflections off the four walls (1-3 bounces)."""
    theta = rng.uniform(0, TWO_PI)
    path = rng.uniform(1.2, 2.2) * speed * max(box.room_w, box.room_h)
    x0 = rng.uniform(box.reach, box.width - box.reach)
    y0 = rng.uniform(box.reach, box.height - box.reach)
    x = _fold(x0 + path * math.cos(theta) * s, box.reach, box.width - box.reach)
    y = _fold(y0 + path * math.sin(theta) * s, box.reach, box.height - box.reach)
    return _track(s, x, y)


def elastic_bounce(rng, s, box, speed):
    """Ballistic under gravity with perfectly elastic floor and walls: every hop reaches the
    same height, so backward looks the same. Starts at a random phase of its hop."""
    floor = box.height - box.reach
    apex = rng.uniform(0.6, 0.95) * box.room_h
    hops = rng.uniform(1.3, 2.4) * speed
    tau = np.mod(hops * s + rng.uniform(0, 1), 1.0)  # phase within the current hop
    y = floor - 4 * apex * tau * (1 - tau)
    run = rng.uniform(0.5, 0.95) * speed * box.room_w * rng.choice([-1, 1])
    x = _fold(rng.uniform(box.reach, box.width - box.reach) + run * s,
              box.reach, box.width - box.reach)
    return _track(s, x, y)


def rotation(rng, s, box, speed):
    """A textured object spinning in place at constant angular velocity, either direction."""
    turns = rng.uniform(0.4, 0.75) * speed * rng.choice([-1, 1])
    x = rng.uniform(box.reach, box.width - box.reach)
    y = rng.uniform(box.reach, box.height - box.reach)
    return _track(s, x, y, angle=TWO_PI * turns * s)


def oscillation(rng, s, box, speed):
    """Harmonic motion along a random axis, 1-1.8 periods per clip at speed 1."""
    theta = rng.uniform(0, math.pi)
    dx, dy = math.cos(theta), math.sin(theta)
    amp = rng.uniform(0.55, 0.9) * _max_chord(box, dx, dy) / 2
    cx = rng.uniform(box.reach + amp * abs(dx), box.width - box.reach - amp * abs(dx))
    cy = rng.uniform(box.reach + amp * abs(dy), box.height - box.reach - amp * abs(dy))
    w = np.sin(TWO_PI * rng.uniform(1.0, 1.8) * speed * s + rng.uniform(0, TWO_PI))
    return _track(s, cx + amp * dx * w, cy + amp * dy * w)


def circular_orbit(rng, s, box, speed):
    """Uniform circular motion around a point near the centre, either direction."""
    radius = rng.uniform(0.6, 0.9) * min(box.room_w, box.room_h) / 2
    cx = rng.uniform(box.reach + radius, box.width - box.reach - radius)
    cy = rng.uniform(box.reach + radius, box.height - box.reach - radius)
    turns = rng.uniform(0.55, 1.0) * speed * rng.choice([-1, 1])
    phi = rng.uniform(0, TWO_PI) + TWO_PI * turns * s
    return _track(s, cx + radius * np.cos(phi), cy + radius * np.sin(phi))


def pendulum(rng, s, box, speed):
    """An undamped pendulum hanging from above the frame: swings on an arc and tilts with the
    string (unlike `oscillation`, which is straight and keeps its orientation)."""
    jitter = rng.uniform(-0.1, 0.1) * box.width
    px, py = box.width / 2 + jitter, -rng.uniform(0.1, 0.3) * box.height
    length = (box.height - box.reach - rng.uniform(0, 0.1) * box.height) - py
    fit = (box.width / 2 - box.reach - abs(jitter)) / length
    amp = min(rng.uniform(0.45, 0.75), math.asin(min(max(fit, 0.05), 1.0)))
    theta = amp * np.sin(TWO_PI * rng.uniform(0.8, 1.4) * speed * s + rng.uniform(0, TWO_PI))
    # the string direction is R(-theta) applied to "straight down", so the object turns by -theta
    return _track(s, px + length * np.sin(theta), py + length * np.cos(theta), angle=-theta)


# ---- time-asymmetric motions --------------------------------------------------------------

def friction_slowdown(rng, s, box, speed):
    """Launched fast, slides to a stop (exponential decay of velocity)."""
    return _line(rng, s, box, _friction_progress(s, rng.uniform(3.0, 5.0)), speed,
                 rest_at_end=True)


def start_from_rest(rng, s, box, speed):
    """Sits still for 15-35% of the clip, then accelerates uniformly (quadratic position)."""
    rest = rng.uniform(0.15, 0.35)
    return _line(rng, s, box, np.clip((s - rest) / (1 - rest), 0, 1) ** 2, speed)


def inelastic_bounce(rng, s, box, speed):
    """Dropped (or tossed a little upward), bounces with restitution 0.45-0.6 and settles on the
    floor; the horizontal slide slows down by friction. Gravity is chosen so it settles at
    50-75% of the clip at speed 1 (earlier when faster), leaving a visible rest at the end.
    """
    e = rng.uniform(0.45, 0.6)
    h0 = rng.uniform(0.5, 0.8) * box.room_h        # start height above the floor
    toss = rng.uniform(0.0, 0.4)                    # initial upward speed / sqrt(2 g h0)
    q = math.sqrt(toss ** 2 + 1)
    # time to settle = sqrt(2 h0 / g) * (toss + q + 2 q e / (1 - e)); solve for g
    settle = rng.uniform(0.5, 0.75) / speed
    g = 2 * h0 / (settle / (toss + q + 2 * q * e / (1 - e))) ** 2
    vy0 = toss * math.sqrt(2 * g * h0)
    t1 = (vy0 + math.sqrt(vy0 ** 2 + 2 * g * h0)) / g   # first impact
    height = np.zeros_like(s)
    first = s < t1
    height[first] = h0 + vy0 * s[first] - 0.5 * g * s[first] ** 2
    t, v = t1, (g * t1 - vy0) * e
    frame_dt = 1.0 / max(len(s) - 1, 1)
    while t < 1 and 2 * v / g > frame_dt / 4:       # hops shorter than a frame look like rest
        hop = (s >= t) & (s < t + 2 * v / g)
        tau = s[hop] - t
        height[hop] = v * tau - 0.5 * g * tau ** 2
        t, v = t + 2 * v / g, v * e
    run = rng.uniform(0.4, 0.7) * box.room_w * rng.choice([-1, 1])
    x0 = rng.uniform(box.reach, box.width - box.reach)
    x = _fold(x0 + run * _friction_progress(s, rng.uniform(3.0, 5.0)),
              box.reach, box.width - box.reach)
    return _track(s, x, box.height - box.reach - height)


GROW_MIN, GROW_MAX = 0.45, 1.5  # scale range of grow / shrink_fade (box.reach accounts for MAX)


def _sawtooth(rng, s, speed):
    """0 -> 1 ramps, 0.8-1 ramps per clip at speed 1, starting at a random early phase."""
    return np.mod(rng.uniform(0.8, 1.0) * speed * s + rng.uniform(0, 0.25), 1.0)


def _centre(rng, box):
    return rng.uniform(box.reach, box.width - box.reach), rng.uniform(box.reach, box.height - box.reach)


def grow(rng, s, box, speed):
    """Grows in place, exponentially, from ~0.5x to ~1.4x its size (faster regimes restart)."""
    lo, hi = rng.uniform(GROW_MIN, 0.55), rng.uniform(1.3, GROW_MAX)
    x, y = _centre(rng, box)
    return _track(s, x, y, scale=lo * (hi / lo) ** _sawtooth(rng, s, speed))


def shrink_fade(rng, s, box, speed):
    """Shrinks in place while fading into the background (faster regimes pop back and repeat)."""
    lo, hi = rng.uniform(GROW_MIN, 0.55), rng.uniform(1.3, GROW_MAX)
    x, y = _centre(rng, box)
    f = _sawtooth(rng, s, speed)
    return _track(s, x, y, scale=hi * (lo / hi) ** f, opacity=1 - f ** 2)


def spiral_in(rng, s, box, speed):
    """Spirals into a point at constant linear speed: the radius shrinks linearly to 10-25% and
    the angular velocity grows as 1/radius, like a ball circling a drain."""
    r0 = rng.uniform(0.75, 0.95) * min(box.room_w, box.room_h) / 2
    cx = rng.uniform(box.reach + r0, box.width - box.reach - r0)
    cy = rng.uniform(box.reach + r0, box.height - box.reach - r0)
    a = rng.uniform(0.75, 0.9)
    turns = rng.uniform(0.8, 1.4) * speed * rng.choice([-1, 1])
    phi = rng.uniform(0, TWO_PI) + TWO_PI * turns * np.log1p(-a * s) / math.log1p(-a)
    radius = r0 * (1 - a * s)
    return _track(s, cx + radius * np.cos(phi), cy + radius * np.sin(phi))


@dataclass(frozen=True)
class Motion:
    name: str
    class_name: str          # CamelCase, used for folders and classInd.txt
    time_symmetric: bool     # backward looks like the same class (PB cannot tell)
    track: Callable[..., Track]
    max_scale: float = 1.0   # largest scale the track uses (to keep the object in frame)

    @property
    def description(self) -> str:
        return (self.track.__doc__ or "").strip().splitlines()[0]


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def _motion(fn, symmetric, max_scale=1.0) -> Motion:
    return Motion(fn.__name__, _camel(fn.__name__), symmetric, fn, max_scale)


# Fixed order: the default 10 classes take the first 10, alternating symmetric / asymmetric
# so a small default set has both kinds (and the classic elastic/inelastic pair).
MOTIONS: dict[str, Motion] = {m.name: m for m in [
    _motion(constant_velocity, True),
    _motion(friction_slowdown, False),
    _motion(elastic_bounce, True),
    _motion(inelastic_bounce, False),
    _motion(rotation, True),
    _motion(start_from_rest, False),
    _motion(oscillation, True),
    _motion(grow, False, GROW_MAX),
    _motion(circular_orbit, True),
    _motion(shrink_fade, False, GROW_MAX),
    _motion(wall_bounce, True),
    _motion(spiral_in, False),
    _motion(pendulum, True),
]}


# --------------------------------------------------------------------------------------------
# Looks: sprites and backgrounds (all random per video, so they carry no class information)
# --------------------------------------------------------------------------------------------

# Object and background colours are drawn from opposite brightness bands (which one is bright
# is a coin flip), so the object always stands out, also after downscaling to 64x48. The object's
# main colour comes from the extreme end of its band; its second texture colour is 60-90 levels
# toward mid-grey, so textures (and hence rotation) keep luminance contrast too.
BRIGHT, DARK = (150.0, 255.0), (10.0, 105.0)
OBJECT_BANDS = {BRIGHT: (180.0, 255.0), DARK: (0.0, 75.0)}


@dataclass(frozen=True)
class Sprite:
    """A textured shape, evaluated procedurally in its own rotated, normalised coordinates
    (rim at distance 1), so rotation and scaling move the texture with the object."""
    shape: str               # disc | square | blob
    texture: str             # stripes | checker | noise
    radius: float            # pixels at scale 1
    base_angle: float
    colour1: np.ndarray      # float32 [3]
    colour2: np.ndarray
    freq: float              # stripes per radius / checker cells per radius
    phase: tuple             # texture offsets
    lobes: int = 0           # blob: number of bumps on the rim
    bump: float = 0.0        # blob: rim amplitude
    noise: np.ndarray | None = None  # noise texture table

    @property
    def extent(self) -> float:
        """Farthest rim point from the centre, in radii (any angle)."""
        return {"disc": 1.0, "square": math.sqrt(2), "blob": 1.0 + self.bump}[self.shape]

    def draw(self, canvas: np.ndarray, x: float, y: float, angle: float = 0.0,
             scale: float = 1.0, opacity: float = 1.0) -> None:
        """Alpha-composite onto `canvas` (HxWx3 uint8) in place, touching only the bounding box."""
        r = self.radius * scale
        if r < 0.5 or opacity <= 0:
            return
        height, width = canvas.shape[:2]
        ext = r * self.extent + 1.5
        x0, x1 = max(int(math.floor(x - ext)), 0), min(int(math.ceil(x + ext)) + 1, width)
        y0, y1 = max(int(math.floor(y - ext)), 0), min(int(math.ceil(y + ext)) + 1, height)
        if x0 >= x1 or y0 >= y1:
            return
        xs = (np.arange(x0, x1, dtype=np.float32) + np.float32(0.5 - x))[None, :]
        ys = (np.arange(y0, y1, dtype=np.float32) + np.float32(0.5 - y))[:, None]
        a = self.base_angle + angle
        c, s = np.float32(math.cos(a) / r), np.float32(math.sin(a) / r)
        u = xs * c + ys * s           # rotate the pixel offsets by -angle, normalise by radius
        v = ys * c - xs * s
        if self.shape == "square":
            dist = np.maximum(np.abs(u), np.abs(v))
        else:
            dist = np.sqrt(u * u + v * v)
            if self.shape == "blob":
                dist /= 1 + self.bump * np.sin(self.lobes * np.arctan2(v, u) + self.phase[2])
        # signed distance to the rim in pixels -> 1-pixel soft edge (kinder to the encoder)
        alpha = np.clip((1 - dist) * r + 0.5, 0, 1) * np.float32(opacity)
        t = self._texture(u, v)
        colour = self.colour1 + t[..., None] * (self.colour2 - self.colour1)
        patch = canvas[y0:y1, x0:x1].astype(np.float32)
        patch += alpha[..., None] * (colour - patch)
        canvas[y0:y1, x0:x1] = (patch + 0.5).astype(np.uint8)

    def _texture(self, u, v):
        """Texture value in [0, 1] at object coordinates (u, v). None is rotation-invariant, so
        `rotation` is always visible."""
        if self.texture == "stripes":
            return 0.5 + 0.5 * np.clip(3 * np.sin(np.float32(math.pi * self.freq) * u
                                                  + np.float32(self.phase[0])), -1, 1)
        if self.texture == "checker":
            cells = (np.floor(u * self.freq + self.phase[0])
                     + np.floor(v * self.freq + self.phase[1]))
            return np.mod(cells, 2).astype(np.float32)
        n = self.noise.shape[0]
        iu = np.clip(((u + 1.5) * (n / 3)).astype(np.int32), 0, n - 1)
        iv = np.clip(((v + 1.5) * (n / 3)).astype(np.int32), 0, n - 1)
        return self.noise[iv, iu]


def _colours(rng, band, n):
    return [rng.uniform(*band, size=3).astype(np.float32) for _ in range(n)]


def _random_sprite(rng, radius, band) -> Sprite:
    shape = str(rng.choice(["disc", "square", "blob"]))
    texture = str(rng.choice(["stripes", "checker", "noise"]))
    c1, = _colours(rng, OBJECT_BANDS[band], 1)
    toward_grey = -1.0 if band == BRIGHT else 1.0
    c2 = c1 + toward_grey * rng.uniform(60, 90) + rng.uniform(-20, 20, size=3)
    c2 = np.clip(c2, 0, 255).astype(np.float32)
    freq = float(rng.uniform(1.5, 2.8) if texture == "stripes" else rng.uniform(1.0, 2.0))
    return Sprite(shape=shape, texture=texture, radius=float(radius),
                  base_angle=float(rng.uniform(0, TWO_PI)), colour1=c1, colour2=c2, freq=freq,
                  phase=(float(rng.uniform(0, TWO_PI)), float(rng.uniform(0, TWO_PI)),
                         float(rng.uniform(0, TWO_PI))),
                  lobes=int(rng.integers(3, 6)), bump=float(rng.uniform(0.12, 0.22)),
                  noise=rng.integers(0, 2, size=(5, 5)).astype(np.float32))


def _random_background(rng, width, height, band) -> np.ndarray:
    """Gradient, checker or smooth colour noise, plus static pixel noise. Static on purpose:
    frame-to-frame changes then come from the motion only (and encode cheaply)."""
    kind = rng.choice(["gradient", "checker", "blobs"])
    ca, cb = _colours(rng, band, 2)
    yy = (np.arange(height, dtype=np.float32) + 0.5)[:, None]
    xx = (np.arange(width, dtype=np.float32) + 0.5)[None, :]
    if kind == "gradient":
        th = rng.uniform(0, TWO_PI)
        proj = xx * math.cos(th) + yy * math.sin(th)
        t = (proj - proj.min()) / max(float(proj.max() - proj.min()), 1e-6)
    elif kind == "checker":
        cell = rng.uniform(0.08, 0.2) * height
        t = np.mod(np.floor(xx / cell) + np.floor(yy / cell), 2) * np.float32(rng.uniform(0.4, 1.0))
    else:  # bilinear upsampling of a coarse random grid
        gh, gw = int(rng.integers(3, 7)), int(rng.integers(3, 7))
        grid = rng.uniform(0, 1, size=(gh, gw)).astype(np.float32)
        gy, gx = yy / height * (gh - 1), xx / width * (gw - 1)
        iy, ix = np.minimum(gy.astype(np.int32), gh - 2), np.minimum(gx.astype(np.int32), gw - 2)
        fy, fx = gy - iy, gx - ix
        t = (grid[iy, ix] * (1 - fy) * (1 - fx) + grid[iy + 1, ix] * fy * (1 - fx)
             + grid[iy, ix + 1] * (1 - fy) * fx + grid[iy + 1, ix + 1] * fy * fx)
    bg = ca + t[..., None] * (cb - ca)
    bg += rng.normal(0, rng.uniform(2, 8), size=(height, width, 1)).astype(np.float32)
    return np.clip(bg + 0.5, 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------------
# Scenes and rendering
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Scene:
    """One video: a static background and one sprite following a track."""
    background: np.ndarray   # HxWx3 uint8 (static distractors already drawn in)
    sprite: Sprite
    track: Track

    def __len__(self) -> int:
        return len(self.track.x)

    def frame(self, t: int) -> np.ndarray:
        canvas = self.background.copy()
        tr = self.track
        self.sprite.draw(canvas, float(tr.x[t]), float(tr.y[t]), float(tr.angle[t]),
                         float(tr.scale[t]), float(tr.opacity[t]))
        return canvas

    def frames(self) -> Iterator[np.ndarray]:
        """Frames one at a time (what the encoder consumes; nothing is held in memory)."""
        return (self.frame(t) for t in range(len(self)))

    def render(self) -> np.ndarray:
        """All frames as one [T, H, W, 3] uint8 array."""
        return np.stack(list(self.frames()))


def video_rng(seed: int, class_index: int, video_index: int) -> np.random.Generator:
    """The generator for video `video_index` of class `class_index`: independent of the
    number of classes/videos, so growing a dataset keeps the existing videos."""
    return np.random.default_rng([seed, class_index, video_index])


def make_scene(motion: str, rng: np.random.Generator, *, frames: int = 48,
               size: tuple[int, int] = (320, 240), regime: int = 0) -> Scene:
    """Draw looks and a track for one video of `motion` at speed 2**regime."""
    if motion not in MOTIONS:
        raise ValueError(f"unknown motion {motion!r}; valid: {', '.join(MOTIONS)}")
    m = MOTIONS[motion]
    width, height = size
    obj_band, bg_band = (BRIGHT, DARK) if rng.random() < 0.5 else (DARK, BRIGHT)
    background = _random_background(rng, width, height, bg_band)
    unit = min(width, height)
    # distractors: static, so they make single frames busier without adding motion
    for _ in range(int(rng.integers(0, 3))):
        d = _random_sprite(rng, rng.uniform(0.06, 0.12) * unit, obj_band)
        d.draw(background, rng.uniform(0, width), rng.uniform(0, height))
    # radius 0.1-0.16 of the short side: >= ~10 px across at 64x48
    sprite = _random_sprite(rng, rng.uniform(0.10, 0.16) * unit, obj_band)
    box = Box(width, height, sprite.radius * sprite.extent * m.max_scale)
    s = np.linspace(0.0, 1.0, frames) if frames > 1 else np.zeros(1)
    track = m.track(rng, s, box, float(2 ** regime))
    return Scene(background=background, sprite=sprite, track=track)


def render_video(motion: str, *, seed: int = 0, class_index: int = 0, video_index: int = 0,
                 frames: int = 48, size: tuple[int, int] = (320, 240),
                 regime: int = 0) -> np.ndarray:
    """Frames [T, H, W, 3] uint8 RGB of one video, exactly as `make_synthetic_dataset` renders
    video `video_index` of class `class_index` (when that class uses `motion` at `regime`)."""
    return make_scene(motion, video_rng(seed, class_index, video_index), frames=frames,
                      size=size, regime=regime).render()


# --------------------------------------------------------------------------------------------
# The dataset
# --------------------------------------------------------------------------------------------

def class_plan(classes: int, motions: Sequence[str] | None = None) -> list[tuple[str, str, int]]:
    """(class name, motion name, regime) per class: class k uses motion k % M at speed
    2 ** (k // M)."""
    motions = list(MOTIONS) if motions is None else list(motions)
    plan = []
    for k in range(classes):
        name, regime = motions[k % len(motions)], k // len(motions)
        plan.append((MOTIONS[name].class_name + REGIME_SUFFIXES[regime], name, regime))
    return plan


def _check_args(classes, motions, videos_per_class, frames, size, fps, codec, gop,
                seed) -> list[str]:
    def is_int(v):
        return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

    if motions is None:
        motions = list(MOTIONS)
    elif isinstance(motions, str):
        raise ValueError(f"motions must be a list of names, not the string {motions!r}")
    else:
        motions = list(motions)
    if not motions:
        raise ValueError("motions is empty; valid names: " + ", ".join(MOTIONS))
    unknown = [m for m in motions if m not in MOTIONS]
    if unknown:
        raise ValueError(f"unknown motion(s) {', '.join(map(repr, unknown))}; "
                         f"valid: {', '.join(MOTIONS)}")
    if len(set(motions)) != len(motions):
        raise ValueError(f"motions has duplicates: {motions}")
    if not is_int(classes) or classes < 2:
        raise ValueError(f"classes must be an integer >= 2, got {classes!r}")
    most = len(motions) * len(REGIME_SUFFIXES)
    if classes > most:
        raise ValueError(f"classes={classes} is too many for {len(motions)} motions: at most "
                         f"{most} ({len(REGIME_SUFFIXES)} speed regimes per motion)")
    if not is_int(videos_per_class) or videos_per_class < 2:
        raise ValueError(f"videos_per_class must be an integer >= 2 (one train and one test "
                         f"group per class), got {videos_per_class!r}")
    if not is_int(frames) or frames < 1:
        raise ValueError(f"frames must be an integer >= 1, got {frames!r}")
    if (not isinstance(size, (tuple, list)) or len(size) != 2
            or not all(is_int(v) for v in size)):
        raise ValueError(f"size must be (width, height) integers, got {size!r}")
    width, height = size
    if width < 16 or height < 16 or width % 2 or height % 2:
        raise ValueError(f"size {width}x{height}: width and height must be even and >= 16 "
                         f"(4:2:0 video needs even sizes)")
    if not is_int(fps) or fps < 1:
        raise ValueError(f"fps must be an integer >= 1, got {fps!r}")
    if codec not in CODECS:
        raise ValueError(f"unknown codec {codec!r}; valid: {', '.join(CODECS)}")
    if not is_int(gop) or gop < 1:
        raise ValueError(f"gop must be an integer >= 1, got {gop!r}")
    if not is_int(seed) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    return motions


# what `force=True` removes: only what this function writes, nothing else in `out`
_OUTPUTS = ("videos", "classInd.txt", "trainlist01.txt", "testlist01.txt", "index.csv")


def _prepare_out(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise FileExistsError(f"{out}: exists and is not empty; choose another folder or "
                                  f"use force (--force) to replace the dataset in it")
        for name in _OUTPUTS:
            p = out / name
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            elif p.exists() or p.is_symlink():
                p.unlink()
    out.mkdir(parents=True, exist_ok=True)


def is_test_group(video_index: int) -> bool:
    """Split by group (one group per video): every third video, starting with the first, is
    test, so both splits are non-empty from 2 videos per class (1 train, 1 test)."""
    return video_index % 3 == 0


def make_synthetic_dataset(out: str | os.PathLike, *, classes: int = 10,
                           motions: Sequence[str] | None = None, videos_per_class: int = 6,
                           frames: int = 48, size: tuple[int, int] = (320, 240), fps: int = 25,
                           codec: str = "h264", gop: int = 8, seed: int = 0,
                           progress: bool = True, force: bool = False) -> VideoDataset:
    """Render and encode a synthetic action dataset in UCF101's layout under `out`; return it.

        out/videos/<Class>/v_<Class>_gXX_cYY.<ext>   (XX = video index + 1, YY = 01)
        out/classInd.txt, trainlist01.txt, testlist01.txt, index.csv

    Class k uses motion `motions[k % len(motions)]` (default: all of MOTIONS in order) at speed
    2 ** (k // len(motions)). `size` is (width, height). Every video has exactly `frames`
    frames. Raises ValueError for bad arguments and FileExistsError if `out` is non-empty,
    unless `force`, which removes only the outputs of a previous run (videos/, the lists,
    index.csv) and leaves anything else in `out` alone.
    """
    from tqdm import tqdm

    motions = _check_args(classes, motions, videos_per_class, frames, size, fps, codec, gop, seed)
    out = Path(out)
    _prepare_out(out, force)
    plan = class_plan(classes, motions)
    ext = suffix_for(codec)
    width, height = size
    rows, train, test = [], [], []
    with tqdm(total=classes * videos_per_class, unit="video", desc="synth",
              disable=not progress) as bar:
        for k, (cls, motion, regime) in enumerate(plan):
            (out / "videos" / cls).mkdir(parents=True, exist_ok=True)
            for i in range(videos_per_class):
                rel = f"{cls}/v_{cls}_g{i + 1:02d}_c01{ext}"
                scene = make_scene(motion, video_rng(seed, k, i), frames=frames, size=size,
                                   regime=regime)
                n = write_video(out / "videos" / rel, scene.frames(), fps=fps, codec=codec,
                                gop=gop)
                if n != frames:  # write_video counts what it encoded; never expected to differ
                    raise RuntimeError(f"{rel}: encoded {n} frames, expected {frames}")
                rows.append({"path": f"videos/{rel}", "frames": n, "fps": fps, "codec": codec,
                             "width": width, "height": height, "class": cls})
                (test if is_test_group(i) else train).append(rel)
                bar.update(1)
    write_splits(out, [c for c, _, _ in plan], train, test)
    write_index(out, rows)  # last: a dataset with an index.csv is complete
    return load_dataset(out)
