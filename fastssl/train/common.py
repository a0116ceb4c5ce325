"""What every loop shares: autocast, seeding, the lr schedule, metrics logging, data-wait timing."""
from __future__ import annotations

import contextlib
import json
import math
import os
import time
from pathlib import Path

import torch
from torch.utils.tensorboard import SummaryWriter

from fastssl.config import Config


def autocast(cfg: Config):
    """bf16/fp16 autocast on CUDA; fp32 (no autocast) elsewhere or when asked."""
    if cfg.precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if cfg.precision == "bf16" else torch.float16
    return torch.autocast(device_type=torch.device(cfg.device).type, dtype=dtype)


def set_deterministic(enabled: bool) -> None:
    """What PyTorch needs for repeatable CUDA runs: deterministic cuDNN algorithms (no autotune),
    deterministic kernels where they exist (warn_only: MaxPool3d's backward has none on CUDA,
    so that op stays non-deterministic), and a fixed cuBLAS workspace. CPU runs are already
    repeatable; this costs speed on GPUs."""
    if not enabled:
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(True, warn_only=True)


def seed_everything(seed: int) -> None:
    # Only weight init and nothing else draws from torch's RNG: the data path uses its own
    # (seed, epoch, index) generators.
    torch.manual_seed(seed)


def lr_factor(step: int, total: int, warmup: float) -> float:
    """Linear warm-up over `warmup` of the run, then cosine to zero at `total`."""
    warm = max(1, int(round(warmup * total)))
    if step < warm:
        return (step + 1) / warm
    progress = (step - warm) / max(1, total - warm)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


class RunLog:
    """TensorBoard scalars + metrics.jsonl in the run folder; one call logs to both.

    Resuming from a checkpoint at step S keeps what was logged up to S and drops the rest (a
    killed run may have logged past its last checkpoint), in both, so the resumed run's logs
    read as one uninterrupted run's."""

    def __init__(self, run_dir: str | os.PathLike, resume_step: int | None = None):
        self.dir = Path(run_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / "metrics.jsonl"
        if resume_step is None:
            self.tb = SummaryWriter(str(self.dir / "tb"))
            self._jsonl = open(path, "w")
            return
        kept = []
        if path.is_file():
            for line in path.read_text().splitlines():
                try:
                    if json.loads(line)["step"] <= resume_step:
                        kept.append(line + "\n")
                except (ValueError, KeyError):
                    break  # a line cut short by the kill: nothing after it is kept
        tmp = path.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(kept))
        os.replace(tmp, path)
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


class StepTimer:
    """Splits wall time into waiting for data and everything else, per logging interval.

    On CUDA the step is asynchronous, so the interval is closed with a synchronize (the only
    CPU-GPU sync point of the loop besides reading the loss for the log)."""

    def __init__(self, device: str):
        self.cuda = device.startswith("cuda")
        self.reset()

    def reset(self):
        self.t0 = time.perf_counter()
        self.wait = 0.0
        self.items = 0

    @contextlib.contextmanager
    def waiting(self):
        t = time.perf_counter()
        yield
        self.wait += time.perf_counter() - t

    def close_interval(self) -> tuple[float, float, float]:
        """-> (seconds, data-wait fraction, items per second) since the last reset."""
        if self.cuda:
            torch.cuda.synchronize()
        seconds = time.perf_counter() - self.t0
        result = seconds, self.wait / max(seconds, 1e-9), self.items / max(seconds, 1e-9)
        self.reset()
        return result
