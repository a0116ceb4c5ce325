"""Progress: a live bar on a terminal, one plain line per log interval anywhere else.

A carriage-return bar written to a file or a CI log is a flood of partial lines, so when stderr
is not a terminal the bar stays silent and `note` prints one line at each log point instead.
"""
from __future__ import annotations

import sys
import time

from tqdm import tqdm


class Progress:
    def __init__(self, total: int, desc: str, *, enabled: bool = True, unit: str = "step"):
        self.total, self.desc, self.unit = total, desc, unit
        self.enabled = enabled
        self.live = enabled and sys.stderr.isatty()
        self.bar = tqdm(total=total, desc=desc, unit=unit, disable=not self.live, dynamic_ncols=True)
        self.done = 0
        self.t0 = time.perf_counter()

    def update(self, n: int = 1) -> None:
        self.done += n
        self.bar.update(n)

    def note(self, **fields) -> None:
        """Show the latest figures: on the bar, or as one line when not on a terminal."""
        shown = {k: (f"{v:.3g}" if isinstance(v, float) else str(v)) for k, v in fields.items()}
        if self.live:
            self.bar.set_postfix(shown, refresh=False)
        elif self.enabled:
            elapsed = time.perf_counter() - self.t0
            eta = elapsed / max(self.done, 1) * (self.total - self.done)
            parts = " ".join(f"{k}={v}" for k, v in shown.items())
            print(f"{self.desc}: {self.unit} {self.done}/{self.total} {parts} "
                  f"elapsed {elapsed:.0f}s eta {eta:.0f}s", file=sys.stderr, flush=True)

    def close(self) -> None:
        self.bar.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
