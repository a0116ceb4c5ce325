"""What every benchmark component shares: the config from a spec, the device sync, the timed
loop, the dataset and plan, device-resident inputs, and the memory/queue arithmetic of loaders."""
from __future__ import annotations

import os

import numpy as np
import torch

from fastssl.benchmarks.stats import measure
from fastssl.config import Config


def config(spec: dict, command: str = "pretrain", **extra) -> Config:
    """The Config a component runs with: `run_setup.build_config`, as every command builds one."""
    from fastssl.train.run_setup import build_config
    values = {k: spec.get(k) for k in ("size", "width", "batch_size")}
    if spec.get("resize"):
        values["resize"] = tuple(spec["resize"])
    values.update(data=spec["data"], out=spec.get("out") or os.path.join(spec.get("workdir", ""), command),
                  preset=spec["preset"], device=spec["device"], precision=spec["precision"],
                  mode=spec.get("mode", "rp"), workers=spec["workers"], decoders=spec.get("decoders", 1),
                  seed=spec.get("seed", 0), loader="pyav")
    values.update(extra)
    return build_config(command, report=lambda _: None, **values)


def sync(device: str) -> None:
    # Work on a GPU is asynchronous: without this a timer measures only the launch.
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def deadline(spec: dict) -> float | None:
    return spec.get("_deadline")


def timed(spec: dict, step, *, warmup: int | None = None, share: float = 1.0) -> list[tuple[float, float]]:
    return measure(step, warmup=spec.get("warmup", 2) if warmup is None else warmup,
                   seconds=share * spec.get("seconds", 5.0), min_samples=spec.get("min_samples", 3),
                   deadline=deadline(spec))


def inputs(cfg: Config, notes: list):
    """The dataset, checked as every command checks it (`run_setup.load_inputs`: too-short or
    missing videos skipped and noted, then cfg.loader's own checks, e.g. DALI's up-front probe)."""
    from fastssl.train.run_setup import load_inputs
    return load_inputs(cfg, skip_bad=True, report=notes.append)


def pretext_plan(cfg: Config, videos):
    from fastssl.data.sampling import PretextPlan
    return PretextPlan(videos, W=cfg.W, D=cfg.D, N=cfg.N, mode=cfg.mode, geometry=cfg.geometry(),
                       seed=cfg.seed, train=True)


def device_inputs(cfg: Config, device: str, batch: int, seed: int = 0):
    """Random uint8 windows and real questions, already on the device (the model-only input)."""
    from fastssl.pretext import sample_questions
    g = torch.Generator().manual_seed(seed)
    windows = torch.randint(0, 256, (batch, cfg.W, cfg.size, cfg.size, 3), dtype=torch.uint8, generator=g)
    q = sample_questions(batch, cfg.W, cfg.D, cfg.N, cfg.mode, np.random.default_rng(seed))
    return (windows.to(device), torch.from_numpy(q.starts).to(device), torch.from_numpy(q.orders).to(device),
            torch.from_numpy(q.label).to(device))



def queue_limit_bytes() -> float:
    """What the batches a DataLoader keeps queued may occupy: they live in shared memory
    (/dev/shm), and as many again pinned on CUDA. A fraction of RAM and of /dev/shm."""
    limits = []
    try:
        limits.append(0.3 * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        pass
    try:
        st = os.statvfs("/dev/shm")
        limits.append(0.5 * st.f_bavail * st.f_frsize)
    except OSError:
        pass
    return min(limits) if limits else float("inf")


def fit_workers(workers: int, prefetch: int, batch_bytes: int, notes: list, what: str) -> int:
    """The most workers (<= `workers`) whose queued batches fit in memory. The baseline's float
    clips make paper-size batches of ~4.6 GB: 16 workers x 2 queued would need ~150 GB."""
    limit = queue_limit_bytes()
    fitted = workers
    while fitted > 1 and fitted * prefetch * batch_bytes > limit:
        fitted -= 1
    if fitted < workers:
        notes.append(f"{what}: {fitted} workers, not {workers}: {workers} x {prefetch} queued batches of "
                     f"{batch_bytes / 1e9:.2f} GB would need {workers * prefetch * batch_bytes / 1e9:.0f} GB "
                     f"(limit {limit / 1e9:.0f} GB: 30% of RAM, half of /dev/shm)")
    return fitted


def prefetched_batches(loader_name: str, workers: int, decoders: int = 1) -> int:
    """Batches a loader can hold ready before anyone asks (DataLoader: prefetch_factor 4 per
    worker, as pyav_loader and the baseline use; DALI: its queue depth per pipeline). They pile
    up while the first step is slow (first-call set-up), and draining them afterwards at memory
    speed would inflate the first timed blocks - so warm-up must consume them first."""
    if loader_name == "dali":
        from fastssl.data import loaders
        return loaders.get("dali").PREFETCH * decoders
    if loader_name == "baseline":
        from fastssl.benchmarks.baseline import PREFETCH
        return PREFETCH * max(workers, 1)
    return 4 * max(workers, 1)  # pyav_loader's prefetch_factor


def warm_clip_builder(cfg: Config) -> None:
    from fastssl.train.inputs import question_clips
    windows, starts, orders, labels = device_inputs(cfg, "cpu", 1)
    question_clips({"windows": windows, "starts": starts, "orders": orders, "label": labels}, cfg)
    sync(cfg.device)


def plan_windows(spec: dict):
    cfg = config(spec, "pretrain")
    notes: list[str] = []
    videos = inputs(cfg, notes).train
    plan = pretext_plan(cfg, videos)
    return cfg, videos, key_stream_samples(plan), notes


def key_stream_samples(plan):
    """(window, question) in the order every loader visits them (the key stream, one process)."""
    from fastssl.data.sampling import stream_keys
    for batch in stream_keys(plan.epoch_size, 1):
        for epoch, i in batch:
            yield plan.sample(epoch, i)


def crop_flip(x: torch.Tensor, window) -> torch.Tensor:
    """(T, H, W, 3) uint8 -> the window's crop, flipped if asked."""
    s = window.size
    x = x[:, window.top:window.top + s, window.left:window.left + s]
    return x.flip(2) if window.flip else x
