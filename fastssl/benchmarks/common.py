"""What the components share: the config and the dataset (through run_setup, as every command
builds them), the device sync, the timed loop, inputs already on the device, loader queues."""
from __future__ import annotations

import os

import numpy as np
import torch

from fastssl.benchmarks.stats import measure
from fastssl.config import Config


def config(spec: dict, command: str = "pretrain", **extra) -> Config:
    """The Config a component runs with: `run_setup.build_config`, as every command builds one."""
    from fastssl.train.run_setup import build_config
    values = {k: spec.get(k) for k in ("size", "width", "batch_size", "preset", "device", "precision", "workers")}
    values.update(data=spec["data"], out=os.path.join(spec.get("workdir", ""), command), mode=spec.get("mode", "rp"),
                  resize=tuple(spec["resize"]) if spec.get("resize") else None, decoders=spec.get("decoders", 1),
                  seed=spec.get("seed", 0), loader="pyav")
    return build_config(command, report=lambda _: None, **{**values, **extra})


def dataset(cfg: Config, notes: list):
    """The dataset as every command checks it: unusable videos skipped and noted, then the
    loader's own checks (e.g. DALI's up-front probe)."""
    from fastssl.train.run_setup import usable_dataset
    return usable_dataset(cfg, skip_bad=True, report=notes.append)


def sync(device: str) -> None:
    # Work on a GPU is asynchronous: without this a timer measures only the launch.
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(spec: dict, step, *, warmup: int | None = None, share: float = 1.0) -> list[tuple[float, float]]:
    return measure(step, warmup=spec.get("warmup", 2) if warmup is None else warmup,
                   seconds=share * spec.get("seconds", 5.0), min_samples=spec.get("min_samples", 3),
                   deadline=spec.get("_deadline"))


def device_inputs(cfg: Config, batch: int, seed: int = 0):
    """Random uint8 windows and real questions, already on cfg.device (the model-only input)."""
    from fastssl.pretext import sample_questions
    g = torch.Generator().manual_seed(seed)
    windows = torch.randint(0, 256, (batch, cfg.W, cfg.size, cfg.size, 3), dtype=torch.uint8, generator=g)
    q = sample_questions(batch, cfg.W, cfg.D, cfg.N, cfg.mode, np.random.default_rng(seed))
    return {"windows": windows.to(cfg.device), "starts": torch.from_numpy(q.starts).to(cfg.device),
            "orders": torch.from_numpy(q.orders).to(cfg.device), "label": torch.from_numpy(q.label).to(cfg.device)}


def fit_workers(workers: int, prefetch: int, batch_bytes: int, notes: list, what: str) -> int:
    """The most workers (<= `workers`) whose queued batches fit in 30% of RAM: the baseline's float
    clips make a paper-size batch ~4.6 GB, and a GPU host has many cores."""
    limit = 0.3 * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    fitted = max(1, min(workers, int(limit // (prefetch * batch_bytes))))
    if fitted < workers:
        notes.append(f"{what}: {fitted} workers, not {workers}: their queued batches must fit in {limit / 1e9:.0f} GB")
    return fitted
