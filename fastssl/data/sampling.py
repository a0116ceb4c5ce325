"""What each sample is: which video, which frames, which crop and flip, which question.

This module owns every random choice of the data path, so all loaders (PyAV, DALI) decode
exactly the same things for the same seed: a loader is told *what* to decode, it never picks.
Every draw comes from a generator seeded by (seed, epoch, sample index) - never from worker
state - so a run is identical whatever the number of workers, and resuming at step k only
needs k.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

from fastssl.data.dataset import Video
from fastssl.pretext import Questions, sample_questions

# Distinct streams so that e.g. the epoch's video order never shares draws with a sample.
_ORDER_STREAM = 0
_SAMPLE_STREAM = 1


def sample_rng(seed: int, epoch: int, index: int, attempt: int = 0) -> np.random.Generator:
    """The generator of sample `index` of `epoch`; attempt k > 0 is the k-th redraw after a
    window failed to decode (a pure function of its key, so workers share no state)."""
    if attempt == 0:
        return np.random.default_rng([seed, _SAMPLE_STREAM, epoch, index])
    return np.random.default_rng([seed, _SAMPLE_STREAM, epoch, index, attempt])


@dataclass(frozen=True)
class Window:
    """Decode frames [start, start+length) of `video`, resized to `resize` (h, w), then crop
    `size` x `size` at (top, left) and mirror horizontally if `flip`."""
    video: int
    start: int
    length: int
    top: int
    left: int
    size: int
    flip: bool


@dataclass(frozen=True)
class Geometry:
    resize: tuple[int, int]   # (h, w) every frame is scaled to before cropping
    size: int                 # square crop side fed to the model

    def __post_init__(self):
        if self.size > min(self.resize):
            raise ValueError(f"crop {self.size} is larger than the resized frame {self.resize}")

    def crop(self, rng: np.random.Generator | None) -> tuple[int, int, bool]:
        """Random crop and flip when rng is given (training), centre crop otherwise."""
        h, w = self.resize
        if rng is None:
            return (h - self.size) // 2, (w - self.size) // 2, False
        top = int(rng.integers(0, h - self.size + 1))
        left = int(rng.integers(0, w - self.size + 1))
        return top, left, bool(rng.integers(0, 2))


def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    """The order in which an epoch visits the n videos (every video once)."""
    return np.random.default_rng([seed, _ORDER_STREAM, epoch]).permutation(n)


class _EpochPlan:
    """An epoch visits every video once, in an order drawn from (seed, epoch)."""

    videos: Sequence[Video]
    seed: int

    @property
    def epoch_size(self) -> int:
        return len(self.videos)

    def pick(self, epoch: int, i: int, attempt: int) -> tuple[int, np.random.Generator]:
        """The video and the generator of sample (epoch, i): the epoch's order first; a redraw
        (attempt > 0, after a decode failure) picks any video from its own generator."""
        rng = sample_rng(self.seed, epoch, i, attempt)
        if attempt == 0:
            return self.video_index(epoch, i), rng
        return int(rng.integers(0, len(self.videos))), rng

    def video_index(self, epoch: int, i: int) -> int:
        cached = getattr(self, "_order", None)
        if cached is None or cached[0] != epoch:  # keep only the current epoch's order
            cached = self._order = (epoch, epoch_order(self.seed, epoch, len(self.videos)))
        return int(cached[1][i])


class PretextPlan(_EpochPlan):
    """One pretext epoch visits every video once, with one random window and one question."""

    def __init__(self, videos: Sequence[Video], *, W: int, D: int, N: int, mode: str,
                 geometry: Geometry, seed: int, train: bool = True):
        self.videos, self.W, self.D, self.N, self.mode = videos, W, D, N, mode
        self.geometry, self.seed, self.train = geometry, seed, train

    def sample(self, epoch: int, i: int, attempt: int = 0) -> tuple[Window, Questions]:
        v, rng = self.pick(epoch, i, attempt)
        start = int(rng.integers(0, self.videos[v].frames - self.W + 1))
        top, left, flip = self.geometry.crop(rng if self.train else None)
        q = sample_questions(1, self.W, self.D, self.N, self.mode, rng)
        window = Window(v, start, self.W, top, left, self.geometry.size, flip)
        return window, Questions(q.starts[0], q.orders[0], q.label[0])


class ClipPlan(_EpochPlan):
    """Fine-tuning: one epoch visits every video once, one random D-frame clip each (random
    crop and flip when `train`, centre crop otherwise)."""

    def __init__(self, videos: Sequence[Video], *, D: int, geometry: Geometry, seed: int,
                 train: bool = True):
        self.videos, self.D, self.geometry, self.seed, self.train = videos, D, geometry, seed, train

    def sample(self, epoch: int, i: int, attempt: int = 0) -> tuple[Window, int]:
        v, rng = self.pick(epoch, i, attempt)
        start = int(rng.integers(0, self.videos[v].frames - self.D + 1))
        top, left, flip = self.geometry.crop(rng if self.train else None)
        return Window(v, start, self.D, top, left, self.geometry.size, flip), self.videos[v].label


def eval_clip_starts(frames: int, D: int) -> list[int]:
    """Every non-overlapping D-frame clip of a video: starts 0, D, 2D, ..."""
    return list(range(0, frames - D + 1, D))


def stream_keys(epoch_size: int, batch_size: int, start_step: int = 0,
                rank: int = 0, world_size: int = 1) -> Iterator[list[tuple[int, int]]]:
    """Endless batches of (epoch, index) keys. Batches run across epoch boundaries, so no
    partial batch is ever dropped or padded; step k always holds the same samples.

    `batch_size` is the global batch: at step k, rank r of `world_size` gets the slice
    [r*B/R, (r+1)*B/R) of the keys a one-process run gets at step k, so the one-process run is
    the reference for any number of ranks (and resuming any of them needs only k)."""
    if epoch_size < 1:
        raise ValueError("no samples to draw batches from")
    if batch_size % world_size or batch_size < world_size:
        raise ValueError(f"batch size {batch_size} does not split evenly over {world_size} ranks")
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in [0, {world_size})")
    per_rank = batch_size // world_size
    step = start_step
    while True:
        first = step * batch_size + rank * per_rank
        yield [divmod(p, epoch_size) for p in range(first, first + per_rank)]
        step += 1
