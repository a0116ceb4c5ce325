"""Every stop decision of a training run, made once per step, in one place.

After each optimizer step the loop asks `RunGuard.decide(step)` whether to write a checkpoint
and whether to stop: a signal (Ctrl-C, a scheduler's SIGTERM), too many videos that no longer
decode, a non-finite loss, the periodic and timed checkpoints. Keeping the decision here is
what lets data-parallel training make it collectively (every rank must agree, or one hangs in
a collective the others left).
"""
from __future__ import annotations

import os
import signal
import sys
import time
from dataclasses import dataclass

import torch

from fastssl.config import Config
from fastssl.train.distributed import Dist, gather_objects, host_max

EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}
# Test-only: make the loss of this (1-based) step NaN, to exercise the non-finite path; with
# INJECT_NAN_RANK_ENV set, only on that rank (a NaN one rank meets and the others do not).
INJECT_NAN_ENV = "FASTSSL_TEST_NAN_AT_STEP"
INJECT_NAN_RANK_ENV = "FASTSSL_TEST_NAN_RANK"


@dataclass
class Decision:
    checkpoint: bool = False
    stop: str | None = None       # None, "signal", "bad-videos", "non-finite"
    exit_code: int = 0
    message: str = ""


class RunStopped(Exception):
    """The run stopped before its last step; `decision` says why (and the exit code)."""

    def __init__(self, decision: Decision, step: int, checkpoint: str | None):
        super().__init__(decision.message)
        self.decision, self.step, self.checkpoint = decision, step, checkpoint


class SignalWatch:
    """SIGINT/SIGTERM set a flag the loop reads at the next step boundary; a second Ctrl-C
    exits at once. The previous handlers come back on exit."""

    def __init__(self):
        self.received: int | None = None
        self._previous = {}

    def _handle(self, signum, frame):
        if self.received is not None and signum == signal.SIGINT:
            print("\nsecond interrupt: exiting now, without a checkpoint", file=sys.stderr, flush=True)
            os._exit(130)
        self.received = signum
        print(f"\n{signal.Signals(signum).name}: writing a checkpoint at the end of this step "
              "(Ctrl-C again to exit at once)", file=sys.stderr, flush=True)

    def __enter__(self):
        for sig in EXIT_CODES:
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: signals stay with whoever owns them
                pass
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class BadVideos:
    """Videos that failed to decode mid-run: each reported once and counted. The run stops when
    more than `max_fraction` of the split's videos are bad, or none is left."""

    def __init__(self, videos, max_fraction: float, report=print, known: dict[str, str] | None = None):
        self.videos, self.report = videos, report
        self.limit = int(max_fraction * len(videos))
        self.found: dict[str, str] = dict(known or {})

    def note(self, failures) -> None:
        for v, reason in failures:
            self.add(self.videos[int(v)].path, reason)

    def add(self, path: str, reason: str) -> None:
        if path not in self.found:
            self.found[path] = reason
            self.report(f"bad video ({len(self.found)} so far), redrawn and skipped from now on:\n"
                        f"  {reason}")

    def merge(self, d: Dist) -> None:
        """Data parallel: every rank learns the bad videos the others met (at log points)."""
        if d.enabled:
            for found in gather_objects(self.found, d):
                for path, reason in found.items():
                    self.add(path, reason)

    @property
    def count(self) -> int:
        return len(self.found)

    def exceeded(self) -> str | None:
        if self.count >= len(self.videos):
            return f"no usable video is left: all {len(self.videos)} failed to decode"
        if self.count > self.limit:
            return (f"{self.count} of {len(self.videos)} videos failed to decode, more than "
                    f"--max-bad-fraction allows ({self.limit}); check the files named above")
        return None


class NonFinite:
    """The first step whose loss was NaN/Inf, recorded on the device (no per-step sync) and read
    only when a decision needs it (log points, before every checkpoint)."""

    def __init__(self, device: str, first: int = -1):
        self.first = torch.full((), first, dtype=torch.long, device=device)

    def note(self, loss: torch.Tensor, step: int) -> None:
        bad = ~torch.isfinite(loss.detach()) & (self.first < 0)
        self.first = torch.where(bad, torch.full_like(self.first, step), self.first)

    def first_step(self) -> int | None:
        value = int(self.first)  # a CPU-GPU sync point
        return None if value < 0 else value


def injected_nan_step(rank: int = 0) -> int | None:
    value = os.environ.get(INJECT_NAN_ENV)
    only = os.environ.get(INJECT_NAN_RANK_ENV)
    if not value or (only and int(only) != rank):
        return None
    return int(value)


class RunGuard:
    """The stop decisions and the counts they rest on: bad videos met, non-finite losses, batches
    skipped with --skip-nonfinite. Restored from a checkpoint through `known_bad` and
    `skipped_nonfinite`."""

    def __init__(self, cfg: Config, total: int, videos, *, report=print, known_bad=None,
                 skipped_nonfinite: int = 0, dist: Dist = Dist()):
        self.cfg, self.total, self.dist = cfg, total, dist
        self.signals = SignalWatch()
        self.bad = BadVideos(videos, cfg.max_bad_fraction, report=report, known=known_bad)
        self.nonfinite = NonFinite(cfg.device)
        self.last_checkpoint = time.monotonic()
        self.skipped_nonfinite = skipped_nonfinite

    def skip_batch(self, loss: torch.Tensor) -> bool:
        """--skip-nonfinite: skip this step's update when the loss is NaN/Inf on any rank.
        Every rank gets the same answer (max over ranks), so none is left waiting in a gradient
        all-reduce the others skipped. Reads the loss: a CPU-GPU sync point, by request."""
        bad = host_max([float(not bool(torch.isfinite(loss)))], self.dist)[0]
        if bad:
            self.skipped_nonfinite += 1
        return bool(bad)

    def decide(self, step: int, *, at_log: bool) -> Decision:
        """After optimizer step `step` (1-based): checkpoint? stop? Under data parallelism every
        rank gets the same answer (the flags are max-reduced over ranks)."""
        cfg = self.cfg
        if at_log:
            self.bad.merge(self.dist)
        timed = time.monotonic() - self.last_checkpoint >= cfg.ckpt_minutes * 60
        sig = self.signals.received or 0
        bad = self.bad.exceeded()
        check_nonfinite = at_log or step % cfg.ckpt_every == 0 or step == self.total
        sig, bad_flag, timed, check_nonfinite = host_max(
            [float(sig), float(bad is not None), float(timed), float(check_nonfinite or sig or bad is not None
                                                                     or timed)], self.dist)
        scheduled = step % cfg.ckpt_every == 0 or step == self.total or bool(timed)
        stop, code, message = None, 0, ""
        if sig:
            sig = signal.Signals(int(sig))
            stop, code = "signal", EXIT_CODES[sig]
            message = f"stopped by {sig.name} after step {step}"
        elif bad_flag:
            stop, code = "bad-videos", 1
            message = f"stopped after step {step}: {bad or 'too many videos failed to decode on another rank'}"
        checkpoint = scheduled or stop is not None
        if check_nonfinite:
            first = self.nonfinite.first_step()
            # the earliest non-finite step over all ranks (max of the negated steps)
            worst = -host_max([-(first if first is not None else float("inf"))], self.dist)[0]
            if worst != float("inf"):
                return Decision(False, "non-finite", 1,
                                f"the loss became non-finite (NaN or Inf) at step {int(worst)}; the run "
                                "stopped and wrote no checkpoint after it (lower the learning rate, "
                                "or pass --skip-nonfinite to skip such batches)")
        if checkpoint:
            self.last_checkpoint = time.monotonic()
        return Decision(checkpoint, stop, code, message)
