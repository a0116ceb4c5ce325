"""A run's metrics: TensorBoard scalars and metrics.jsonl, written together, read back in one place."""
from __future__ import annotations

import json
import os
from pathlib import Path

from fastssl.files import atomic_write

METRICS = "metrics.jsonl"


def read_metrics(run_dir: str | os.PathLike) -> list[dict]:
    """Every record of RUN_DIR/metrics.jsonl, in order; a last line cut short by a kill ends the
    list (nothing after it is trusted). [] when the file does not exist."""
    path = Path(run_dir) / METRICS
    records = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
                record["step"]
            except (ValueError, KeyError, TypeError):
                break
            records.append(record)
    return records


def last_value(records: list[dict], key: str):
    """The newest logged value of `key`, or None."""
    for record in reversed(records):
        if key in record:
            return record[key]
    return None


class RunLog:
    """TensorBoard scalars + metrics.jsonl in the run folder; one call logs to both.

    Resuming from a checkpoint at step S keeps what was logged up to S and drops the rest (a
    killed run may have logged past its last checkpoint), in both, so the resumed run's logs
    read as one uninterrupted run's."""

    def __init__(self, run_dir: str | os.PathLike, resume_step: int | None = None):
        from torch.utils.tensorboard import SummaryWriter
        self.dir = Path(run_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / METRICS
        if resume_step is None:
            self.tb = SummaryWriter(str(self.dir / "tb"))
            self._jsonl = open(path, "w")
            return
        kept = [json.dumps(r) + "\n" for r in read_metrics(self.dir) if r["step"] <= resume_step]
        atomic_write(path, "".join(kept))
        # TensorBoard hides events at steps >= purge_step from earlier event files.
        self.tb = SummaryWriter(str(self.dir / "tb"), purge_step=resume_step + 1)
        self._jsonl = open(path, "a")

    def log(self, step: int, **scalars) -> None:
        for name, value in scalars.items():
            self.tb.add_scalar(name, value, step)
        self._jsonl.write(json.dumps({"step": step, **scalars}) + "\n")
        self._jsonl.flush()

    def close(self) -> None:
        self.tb.close()
        self._jsonl.close()
