"""Wall time of a log interval, split into waiting for data and everything else."""
from __future__ import annotations

import contextlib
import time

import torch


class StepTimer:
    """Per log interval: seconds, the fraction spent in `next(batches)`, items per second.

    On CUDA the step is asynchronous, so the interval is closed with a synchronize (a log-point
    sync, like reading the loss). Time inside `paused()` (held-out scoring) counts as neither."""

    def __init__(self, device: str):
        self.cuda = device.startswith("cuda")
        self.reset()

    def reset(self) -> None:
        self.t0 = time.perf_counter()
        self.wait = 0.0
        self.items = 0

    @contextlib.contextmanager
    def waiting(self):
        t = time.perf_counter()
        yield
        self.wait += time.perf_counter() - t

    @contextlib.contextmanager
    def paused(self):
        t = time.perf_counter()
        yield
        self.t0 += time.perf_counter() - t

    def close_interval(self) -> tuple[float, float, float]:
        """-> (seconds, data-wait fraction, items per second) since the last reset."""
        if self.cuda:
            torch.cuda.synchronize()
        seconds = time.perf_counter() - self.t0
        result = seconds, self.wait / max(seconds, 1e-9), self.items / max(seconds, 1e-9)
        self.reset()
        return result
