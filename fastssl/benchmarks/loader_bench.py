"""Loader-only: questions/s delivered as normalized clips on the device, nothing else."""
from __future__ import annotations

import time

import torch

from fastssl.benchmarks.common import config, fit_workers, inputs, pretext_plan, sync, timed, warm_clip_builder
from fastssl.benchmarks.stats import rate_stats, scaled


def loader(spec: dict, which: str, main_threads: int | None = None) -> dict:
    """`which` = pyav | dali | baseline. One sample = one block of batches; a block is one batch
    per worker, because DataLoader workers each build whole batches and deliver them in bursts.
    `main_threads` sets torch's intra-op threads in this (the main) process first."""
    from fastssl.benchmarks import baseline
    from fastssl.data import loaders
    from fastssl.train.inputs import question_clips

    if main_threads:
        torch.set_num_threads(main_threads)
    cfg = config(spec, "pretrain", loader="pyav" if which == "baseline" else which)
    notes: list[str] = []
    videos = inputs(cfg, notes).train
    plan = pretext_plan(cfg, videos)
    # The first build_clips call in a process is slow (the custom op imports torch._dynamo:
    # seconds, bench/RESULTS.md); make it before the loader starts, or the workers would fill
    # their prefetch queue meanwhile and the first timed blocks would only drain it.
    if which != "baseline":
        warm_clip_builder(cfg)
    B, s = cfg.batch_size, cfg.size
    if which == "baseline":
        cfg.workers = fit_workers(cfg.workers, baseline.PREFETCH, B * cfg.N * cfg.D * s * s * 3 * 4, notes,
                                  "baseline")
    elif which == "pyav":
        cfg.workers = fit_workers(cfg.workers, 4, B * cfg.W * s * s * 3, notes, "pyav loader")
    if which == "baseline":
        it = baseline.pretext_batches(plan, B, workers=cfg.workers, device=cfg.device, mean=cfg.mean,
                                      std=cfg.std)

        def consume(batch):
            return baseline.to_device(batch, cfg.device)
        handed = cfg.N * cfg.D * s * s * 3 * 4              # float32 clips per question
    else:
        it = loaders.get(which).pretext_batches(plan, B, workers=cfg.workers, device=cfg.device,
                                                decoders=cfg.decoders)

        def consume(batch):
            return question_clips(batch, cfg)
        handed = cfg.W * s * s * 3                        # uint8 window per question
    block = max(1, cfg.workers) if which != "dali" else 1
    shapes = {}

    def batches(n):
        for _ in range(n):
            x, y = consume(next(it))
        sync(cfg.device)
        shapes["clips"] = [list(x.shape), str(x.dtype), str(x.device)]

    def step():
        batches(block)
        return block * B

    warm = spec.get("warmup", 2) * block
    with it:  # close() stops the workers / pipelines now, so their peak RSS is counted here
        t0 = time.perf_counter()
        batches(warm)
        warm_s = time.perf_counter() - t0
        samples = timed(spec, step, warmup=0)
    q = rate_stats(samples, "questions/s")
    return {"metric": q, "clips_per_s": scaled(q, cfg.N, "clips/s"),
            "frames_decoded_per_s": scaled(q, cfg.W, "frames/s"),
            "batches_per_sample": block, "warmup_batches": warm, "warmup_seconds": warm_s,
            "batch_size": B, "workers": cfg.workers, "main_threads": torch.get_num_threads(),
            "decoders": cfg.decoders if which == "dali" else None,
            "bytes_handed_over_per_question": handed, "output": shapes.get("clips"),
            "videos": len(videos), "notes": notes}
