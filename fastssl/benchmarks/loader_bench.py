"""Loader-only: questions/s delivered as normalized clips on the device, nothing else; for DALI
also the step-to-step gap where its reader moves from one chunk of batches to the next."""
from __future__ import annotations

import time

import numpy as np
import torch

from fastssl.benchmarks.common import config, dataset, device_inputs, fit_workers, sync, timed
from fastssl.benchmarks.stats import rate_stats, scaled


def loader(spec: dict, which: str) -> dict:
    """`which` = pyav | dali | baseline. One sample = one block of batches: one batch per worker,
    because DataLoader workers each build whole batches and deliver them in bursts."""
    from fastssl.benchmarks import baseline
    from fastssl.data import loaders
    from fastssl.train.clips import question_clips
    from fastssl.train.tasks import TASKS

    cfg = config(spec, "pretrain", loader="pyav" if which == "baseline" else which)
    notes: list[str] = []
    plan = TASKS["pretrain"].plan(cfg, dataset(cfg, notes))
    B, s, workers = cfg.batch_size, cfg.size, cfg.workers
    if which == "baseline":
        handed = cfg.N * cfg.D * s * s * 3 * 4  # float32 clips per question
        workers = fit_workers(workers, baseline.PREFETCH, B * handed, notes, "baseline")
        it = baseline.pretext_batches(plan, B, workers=workers, device=cfg.device, mean=cfg.mean, std=cfg.std)
        consume = lambda b: b["clips"].to(cfg.device, non_blocking=True).flatten(0, 1)  # noqa: E731
    else:
        # The first clip-builder call in a process is slow (seconds of imports): made now, or the
        # workers would fill their queue meanwhile and the first timed blocks only drain it.
        question_clips(device_inputs(cfg, 1), cfg)
        handed = cfg.W * s * s * 3  # a uint8 window per question
        workers = fit_workers(workers, 4, B * handed, notes, "pyav loader") if which == "pyav" else workers
        it = loaders.get(which).pretext_batches(plan, B, workers=workers, device=cfg.device, decoders=cfg.decoders)
        consume = lambda b: question_clips(b, cfg)  # noqa: E731
    block = max(1, workers) if which != "dali" else 1
    gaps: list[float] = []  # wall seconds from one batch's clips to the next's, as a training step sees it

    def batches(n: int) -> None:
        for _ in range(n):
            t = time.perf_counter()
            consume(next(it))
            gaps.append(time.perf_counter() - t)
        sync(cfg.device)

    def step():
        batches(block)
        return block * B

    with it:  # close() stops the workers / pipelines now, so their peak RSS is counted here
        batches(spec.get("warmup", 2) * block)
        q = rate_stats(timed(spec, step, warmup=0), "questions/s")
        chunks = chunk_gaps(spec, cfg, batches, gaps) if which == "dali" else None
    return {"metric": q, "clips_per_s": scaled(q, cfg.N, "clips/s"), "frames_per_s": scaled(q, cfg.W, "frames/s"),
            "batches_per_sample": block, "batch_size": B, "workers": workers, "main_threads": torch.get_num_threads(),
            "bytes_handed_over_per_question": handed, "chunk_boundaries": chunks, "notes": notes}


def chunk_gaps(spec: dict, cfg, batches, gaps: list[float]) -> dict:
    """The largest step-to-step gap near a reader chunk boundary vs the median step. The reader
    builds a pipeline per CHUNK_BATCHES batches of each of its K pipelines; a switch shows up to
    PREFETCH batches before a boundary (when the next chunk's first batch is queued) or just after.
    Batches go on until one boundary is crossed, if that fits in spec["chunk_seconds"]."""
    from fastssl.data.dali import PREFETCH
    from fastssl.data.dali.reader import CHUNK_BATCHES
    K = cfg.decoders
    period, want = CHUNK_BATCHES * K, (CHUNK_BATCHES + PREFETCH + 2) * K
    if (want - len(gaps)) * float(np.median(gaps)) <= spec.get("chunk_seconds", 60.0):
        while len(gaps) < want and time.perf_counter() < (spec.get("_deadline") or float("inf")) - 2:
            batches(1)
    near = {k for m in range(1, len(gaps) // period + 1)
            for k in range(m * period - (PREFETCH + 1) * K, m * period + K + 1)}
    median = float(np.median(gaps[1:]))  # the first batch waited for the first pipeline's build
    out = {"chunk_batches": period, "batches": len(gaps), "median_step_s": median}
    at = [(t, k) for k, t in enumerate(gaps, 1) if k in near]
    if not at:
        return {**out, "reached": False, "note": f"no chunk boundary in {len(gaps)} batches (one every {period})"}
    gap, step = max(at)
    return {**out, "reached": True, "max_gap_s": gap, "at_step": step, "gap_vs_median": gap / median,
            "max_gap_elsewhere_s": max((t for k, t in enumerate(gaps[1:], 2) if k not in near), default=None)}
