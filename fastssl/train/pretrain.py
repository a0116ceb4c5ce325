"""The pretext loop: find the clip whose frames are out of order (RP / SS / PB).

    fastssl pretrain --data DATA --out runs/rp --mode rp
    fastssl pretrain --resume runs/rp                    # after Ctrl-C, a kill, a crash

The loop itself is `loop.train_steps`; this module sets up the SiameseNet, the question plan and
the optimizer (or restores them from a checkpoint), and scores the result on held-out questions.
"""
from __future__ import annotations

import math

import torch

from fastssl.config import Config
from fastssl.data import loaders
from fastssl.data.dataset import VideoDataset
from fastssl.data.sampling import PretextPlan
from fastssl.models import SiameseNet, build_siamese
from fastssl.models.inflate import inflate_from_file
from fastssl.train.checkpoints import Checkpoint
from fastssl.train.common import RunLog, autocast, seed_everything, set_deterministic
from fastssl.train.inputs import question_clips
from fastssl.train.distributed import Dist, data_parallel, host_sum, sync_buffers
from fastssl.train.loop import TrainState, restore, train_steps
from fastssl.train.progress import Progress
from fastssl.train.rundir import prepare_run_dir

# Held-out questions use a fixed seed, not the run's: every run is scored on the same questions.
EVAL_SEED = 20240601


def pretrain(cfg: Config, dataset: VideoDataset, *, progress: bool = True, force: bool = False,
             resume: Checkpoint | None = None, report=print, dist: Dist = Dist()) -> dict:
    run_dir = prepare_run_dir(cfg, resume=resume, force=force, dist=dist)
    set_deterministic(cfg.deterministic)
    seed_everything(cfg.seed)
    plan = PretextPlan(dataset.train, W=cfg.W, D=cfg.D, N=cfg.N, mode=cfg.mode, geometry=cfg.geometry(),
                       seed=cfg.seed, train=True)
    total = cfg.total_steps(plan.epoch_size)
    model = build_siamese(cfg)
    if cfg.inflate and resume is None:
        inflate_from_file(model.features, cfg.inflate)
    optimizer = torch.optim.Adam([{"params": model.parameters(), "lr": cfg.lr, "base_lr": cfg.lr,
                                   "name": "all"}])
    scaler = torch.amp.GradScaler(torch.device(cfg.device).type, enabled=cfg.precision == "fp16")
    start = restore(resume, model, optimizer, scaler, cfg.device) if resume else TrainState()
    log = RunLog(run_dir, resume_step=start.step if resume else None) if dist.is_main else None
    try:
        if start.step < total:
            with loaders.get(cfg.loader).pretext_batches(
                    plan, cfg.batch_size, device=cfg.device, workers=cfg.workers, decoders=cfg.decoders,
                    start_step=start.step, rank=dist.rank, world_size=dist.world_size) as batches:
                train_steps(cfg, model=data_parallel(model, cfg, dist), optimizer=optimizer,
                            batches=batches, total=total, inputs=question_clips, kind="pretext",
                            prefix="pretext", run_dir=run_dir, log=log, videos=plan.videos,
                            scaler=scaler, start=start, progress=progress, report=report,
                            desc=f"pretrain {cfg.mode}", dist=dist)
        result = evaluate_pretext(model, cfg, dataset, progress=progress, dist=dist)
        if log is not None:
            log.log(total, **{"heldout/pretext_accuracy": result["pretext_accuracy"]})
    finally:
        if log is not None:
            log.close()
    return {**result, "steps": total, "checkpoint": str(run_dir / "checkpoint.pt"), "run_dir": str(run_dir)}


@torch.no_grad()
def evaluate_pretext(model: SiameseNet, cfg: Config, dataset: VideoDataset, *, progress: bool = True,
                     dist: Dist = Dist()) -> dict:
    """Accuracy on held-out questions: test-split videos, centre crops, fixed seed,
    `cfg.eval_questions` questions per video. Under data parallelism each rank answers its
    slice of every batch and the counts are summed: every question is counted exactly once."""
    plan = PretextPlan(dataset.test, W=cfg.W, D=cfg.D, N=cfg.N, mode=cfg.mode, geometry=cfg.geometry(),
                       seed=EVAL_SEED, train=False)
    total = plan.epoch_size * cfg.eval_questions
    batch = cfg.batch_size - cfg.batch_size % dist.world_size or dist.world_size
    per_rank = batch // dist.world_size
    sync_buffers(model, dist)
    model.eval()
    correct, seen = 0, 0
    steps = math.ceil(total / batch)
    with loaders.get(cfg.loader).pretext_batches(plan, batch, device=cfg.device, workers=cfg.workers,
                                                 decoders=cfg.decoders, rank=dist.rank,
                                                 world_size=dist.world_size) as batches, \
            Progress(steps, "held-out questions", enabled=progress and dist.is_main, unit="batch") as bar:
        for step in range(steps):
            x, y = question_clips(next(batches), cfg)
            with autocast(cfg):
                pred = model(x).argmax(1)
            # this rank's questions are positions step*batch + rank*per_rank + j; the stream runs
            # on past `total`, so cut it there
            first = step * batch + dist.rank * per_rank
            keep = max(0, min(per_rank, total - first))
            correct += (pred[:keep] == y[:keep]).sum().item()
            seen += keep
            bar.update()
    model.train()
    correct, seen = host_sum([correct, seen], dist)
    return {"pretext_accuracy": correct / seen, "questions": int(seen), "chance": 1.0 / cfg.N}
