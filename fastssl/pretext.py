"""Video-order questions (the pretext task): pure numpy, every draw from a seeded Generator.

A question is N clips of D consecutive frames taken from one window of W frames; one of them
(the "wrong" clip) has its frames reordered. The model answers with the wrong clip's position.

Frame indices here are 0-based; the paper's notation is 1-based (x_1..x_D).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

MODES = ("rp", "ss", "pb")


class Questions(NamedTuple):
    starts: np.ndarray   # (B, N) int64: distinct clip starts in [0, W-D]; their order is the branch order
    orders: np.ndarray   # (B, N, D) int64: frame index within each clip (identity except the wrong clip)
    label: np.ndarray    # (B,) int64: position of the wrong clip


def wrong_order(mode: str, D: int, rng: np.random.Generator) -> np.ndarray:
    """The frame order of a wrong clip of D frames, as 0-based indices.

    rp: a random permutation, never the identity (otherwise the "wrong" clip would be correct).
    ss: the paper's split and swap <x_ps..x_D, x_1..x_ps-1>, p_s uniform in {2..D-1} (1-based);
        p_s = 1 would be the identity and p_s = D would only move one frame, so both are excluded.
    pb: the clip played backward.
    """
    if D < 3:
        raise ValueError(f"D must be at least 3 for a wrong clip to exist in every mode, got {D}")
    if mode == "rp":
        identity = np.arange(D)
        while True:  # rejection: 1/D! chance of retrying, so this ends at once in practice
            order = rng.permutation(D)
            if not np.array_equal(order, identity):
                return order.astype(np.int64)
    if mode == "ss":
        ps = int(rng.integers(2, D))          # 1-based split position in {2..D-1}
        return np.concatenate([np.arange(ps - 1, D), np.arange(0, ps - 1)]).astype(np.int64)
    if mode == "pb":
        return np.arange(D - 1, -1, -1, dtype=np.int64)
    raise ValueError(f"unknown mode {mode!r}; choose from {MODES}")


def check_sizes(W: int, D: int, N: int) -> None:
    """Raise ValueError unless N distinct D-frame clips fit in a W-frame window."""
    if D < 3:
        raise ValueError(f"clip length D={D} must be at least 3")
    if W < D:
        raise ValueError(f"window W={W} is shorter than a clip (D={D})")
    if N < 2:
        raise ValueError(f"N={N} clips: a question needs at least 2")
    if N > W - D + 1:
        raise ValueError(f"N={N} clips need N distinct starts but a {W}-frame window has only "
                         f"W-D+1={W - D + 1} starts for {D}-frame clips")


def sample_questions(B: int, W: int, D: int, N: int, mode: str,
                     rng: np.random.Generator) -> Questions:
    """Draw B questions. Starts are drawn without replacement and kept in random order: that
    order *is* the permutation of branch positions the paper applies to each question."""
    check_sizes(W, D, N)
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose from {MODES}")
    starts = np.empty((B, N), dtype=np.int64)
    orders = np.broadcast_to(np.arange(D, dtype=np.int64), (B, N, D)).copy()
    label = np.empty(B, dtype=np.int64)
    for b in range(B):
        starts[b] = rng.choice(W - D + 1, size=N, replace=False)
        label[b] = rng.integers(N)
        orders[b, label[b]] = wrong_order(mode, D, rng)
    return Questions(starts, orders, label)
