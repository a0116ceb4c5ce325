"""Timing: warm up, then take samples until a time target; summarise as median and spread. A
sample is (seconds, items) for one block of work. The median of the block rates is robust to the
odd slow block (another process on a shared CPU); the spread shows a noisy figure as noisy."""
from __future__ import annotations

import time
from typing import Callable, Sequence

import numpy as np


def measure(step: Callable[[], float], *, warmup: int, seconds: float, min_samples: int = 3,
            deadline: float | None = None) -> list[tuple[float, float]]:
    """Call `step` (it returns how many items it did) `warmup` times untimed, then time calls
    until `seconds` have passed and `min_samples` were taken - but never past `deadline` (a
    time.perf_counter() value) once one sample exists."""
    for _ in range(warmup):
        step()
    samples: list[tuple[float, float]] = []
    stop = time.perf_counter() + seconds
    while True:
        now = time.perf_counter()
        if samples and ((deadline is not None and now >= deadline) or (len(samples) >= min_samples and now >= stop)):
            return samples
        items = step()
        samples.append((time.perf_counter() - now, float(items)))


def summarize(values: Sequence[float], unit: str) -> dict:
    """Median, quartiles, extremes and the relative spread (IQR / median) of `values`."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=np.float64)
    if v.size == 0:
        return {"unit": unit, "n": 0, "median": None}
    p25, med, p75 = np.percentile(v, [25, 50, 75])
    return {"unit": unit, "n": int(v.size), "median": float(med), "p25": float(p25), "p75": float(p75),
            "min": float(v.min()), "max": float(v.max()), "spread": float((p75 - p25) / med) if med else None}


def rate_stats(samples: Sequence[tuple[float, float]], unit: str, scale: float = 1.0) -> dict:
    """Block rates (scale * items / seconds) summarised, each block's rate kept under "samples"."""
    rates = [scale * items / dt for dt, items in samples if dt > 0]
    return {**summarize(rates, unit), "samples": [round(r, 6) for r in rates]}


def scaled(stats: dict, factor: float, unit: str) -> dict:
    """The same summary in another unit (e.g. questions/s -> clips/s with factor N)."""
    out = dict(stats, unit=unit)
    for key in ("median", "p25", "p75", "min", "max"):
        if out.get(key) is not None:
            out[key] = out[key] * factor
    out.pop("samples", None)
    return out
