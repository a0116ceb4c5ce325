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


class DataWaitAdvice:
    """Says once which knob to turn when data wait stays high: more than `threshold` of the step
    time at `patience` log points in a row means the loader, not the model, sets the pace."""

    def __init__(self, loader: str, workers: int, decoders: int, *, threshold: float = 0.25, patience: int = 3):
        self.loader, self.workers, self.decoders = loader, workers, decoders
        self.threshold, self.patience = threshold, patience
        self.high = 0
        self.said = False

    def note(self, wait_fraction: float) -> str | None:
        self.high = self.high + 1 if wait_fraction > self.threshold else 0
        if self.said or self.high < self.patience:
            return None
        self.said = True
        knob = (f"raise --decoders (now {self.decoders}; one pipeline per NVDEC engine, an H100 has 7) "
                f"or --workers (now {self.workers} CPU threads)" if self.loader == "dali" else
                f"raise --workers (now {self.workers} decoding processes), or use DALI on a GPU host")
        return (f"data wait has been over {self.threshold:.0%} of the step time for {self.high} log "
                f"intervals: the loader sets the pace, not the model; {knob}. Files written by "
                "`fastssl prepare` (short GOPs) decode fastest.")
