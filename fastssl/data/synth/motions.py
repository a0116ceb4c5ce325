"""Motions: what the object does over a clip, one Track per video, and the MOTIONS registry.

Motions come in two kinds, on purpose (the paper's "ambiguity of PB", which `fastssl replicate` shows):

- time-symmetric: played backward they still look like a video of the same class (constant
  velocity, elastic bounces, rotation, oscillation, orbit, pendulum). "Is this clip played
  backward?" (PB) cannot be answered for them.
- time-asymmetric: energy is dissipated or something grows/fades one way (friction, start from
  rest, inelastic bounce that settles, grow, shrink-and-fade, spiral in). Backward they look
  unphysical, so PB can be learned.

A motion is `track(rng, s, box, speed) -> Track` over the *clip* (normalised time s in [0, 1]),
so each video shows its whole pattern whatever its number of frames. Every randomised
speed-like parameter spans less than a factor of 2, so `speed` = 2 ** regime gives speed bands
that do not overlap (see `writer.class_plan`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

TWO_PI = 2.0 * math.pi

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


# ---- controls: kept apart from MOTIONS, so no class list of `synth` ever uses them ----------

def static(rng, s, box, speed):
    """No motion at all: the object sits still for the whole clip (the shortcut control)."""
    x, y = _centre(rng, box)
    return _track(s, x, y)


# Named explicitly only (e.g. by `fastssl replicate`'s control set). Every frame of a static
# video is the same picture, so any frame-order signal a model finds in one comes from the codec.
CONTROL_MOTIONS: dict[str, Motion] = {m.name: m for m in [_motion(static, True)]}


def get_motion(name: str) -> Motion:
    """A motion of MOTIONS or CONTROL_MOTIONS by name; ValueError naming the valid ones."""
    m = MOTIONS.get(name) or CONTROL_MOTIONS.get(name)
    if m is None:
        raise ValueError(f"unknown motion {name!r}; valid: {', '.join([*MOTIONS, *CONTROL_MOTIONS])}")
    return m
