"""Rendering: random looks (sprites, backgrounds) and scenes that move a sprite along a track.

Every video is one textured object (disc, square or blob, with stripes, checker or blocky noise)
moving over a static background (gradient, checker or smooth colour noise, plus pixel noise and
0-2 static distractor objects). Colours, sizes, textures, shapes, backgrounds and the track's
random draws are per video, so a single frame says little about the class; only the motion over
time does.

Rendering is numpy only: the background is drawn once per video, and each frame copies it and
alpha-composites the object inside its bounding box (a few vectorised float32 ops on ~1e4
pixels), so encoding dominates the cost of writing a dataset.

Reproducibility: every random choice of video i of class k comes from `video_rng(seed, k, i)`,
so the same seed gives the same frames, and a video does not change when other classes or
videos are added.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from fastssl.data.synth.motions import TWO_PI, Box, Track, get_motion

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
    m = get_motion(motion)
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
