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
from fastssl.train.checkpoints import Checkpoint
from fastssl.train.common import RunLog, autocast, seed_everything, set_deterministic
from fastssl.train.inputs import question_clips
from fastssl.train.loop import TrainState, restore, train_steps
from fastssl.train.progress import Progress
from fastssl.train.rundir import continue_run_dir, start_run_dir

# Held-out questions use a fixed seed, not the run's: every run is scored on the same questions.
EVAL_SEED = 20240601


def pretrain(cfg: Config, dataset: VideoDataset, *, progress: bool = True, force: bool = False,
             resume: Checkpoint | None = None, report=print) -> dict:
    run_dir = continue_run_dir(cfg.out, cfg) if resume else start_run_dir(cfg.out, cfg, force=force)
    set_deterministic(cfg.deterministic)
    seed_everything(cfg.seed)
    plan = PretextPlan(dataset.train, W=cfg.W, D=cfg.D, N=cfg.N, mode=cfg.mode, geometry=cfg.geometry(),
                       seed=cfg.seed, train=True)
    total = cfg.total_steps(plan.epoch_size)
    model = build_siamese(cfg)
    optimizer = torch.optim.Adam([{"params": model.parameters(), "lr": cfg.lr, "base_lr": cfg.lr,
                                   "name": "all"}])
    scaler = torch.amp.GradScaler(torch.device(cfg.device).type, enabled=cfg.precision == "fp16")
    start = restore(resume, model, optimizer, scaler, cfg.device) if resume else TrainState()
    log = RunLog(run_dir, resume_step=start.step if resume else None)
    try:
        if start.step < total:
            with loaders.get(cfg.loader).pretext_batches(
                    plan, cfg.batch_size, device=cfg.device, workers=cfg.workers,
                    decoders=cfg.decoders, start_step=start.step) as batches:
                train_steps(cfg, model=model, optimizer=optimizer, batches=batches, total=total,
                            inputs=question_clips, kind="pretext", prefix="pretext", run_dir=run_dir,
                            log=log, videos=plan.videos, scaler=scaler, start=start,
                            progress=progress, desc=f"pretrain {cfg.mode}", report=report)
        result = evaluate_pretext(model, cfg, dataset, progress=progress)
        log.log(total, **{"heldout/pretext_accuracy": result["pretext_accuracy"]})
    finally:
        log.close()
    return {**result, "steps": total, "checkpoint": str(run_dir / "checkpoint.pt"), "run_dir": str(run_dir)}


@torch.no_grad()
def evaluate_pretext(model: SiameseNet, cfg: Config, dataset: VideoDataset, *, progress: bool = True) -> dict:
    """Accuracy on held-out questions: test-split videos, centre crops, fixed seed,
    `cfg.eval_questions` questions per video."""
    plan = PretextPlan(dataset.test, W=cfg.W, D=cfg.D, N=cfg.N, mode=cfg.mode, geometry=cfg.geometry(),
                       seed=EVAL_SEED, train=False)
    total = plan.epoch_size * cfg.eval_questions
    model.eval()
    correct, seen = 0, 0
    with loaders.get(cfg.loader).pretext_batches(plan, cfg.batch_size, device=cfg.device,
                                                 workers=cfg.workers, decoders=cfg.decoders) as batches, \
            Progress(math.ceil(total / cfg.batch_size), "held-out questions", enabled=progress,
                     unit="batch") as bar:
        while seen < total:
            x, y = question_clips(next(batches), cfg)
            with autocast(cfg):
                pred = model(x).argmax(1)
            keep = min(len(y), total - seen)  # the stream runs on past `total`; cut it there
            correct += (pred[:keep] == y[:keep]).sum().item()
            seen += keep
            bar.update()
    model.train()
    return {"pretext_accuracy": correct / seen, "questions": seen, "chance": 1.0 / cfg.N}
