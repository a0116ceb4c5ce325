"""The pretext loop: find the clip whose frames are out of order (RP / SS / PB).

    fastssl pretrain --data DATA --out runs/rp --mode rp

One obvious loop: next batch (timed as data wait) -> build clips on the device -> forward under
autocast -> N-way cross entropy -> step. Loss and accuracy are accumulated on the device and read
only at log points, so the loop has no per-step CPU-GPU sync.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from fastssl.config import RUNTIME_KEYS, Config
from fastssl.data import loaders
from fastssl.data.dataset import VideoDataset
from fastssl.data.sampling import Geometry, PretextPlan
from fastssl.kernels import build_clips
from fastssl.models import SiameseNet
from fastssl.train.common import (RunLog, StepTimer, autocast, input_dtype, load_checkpoint,
                                  lr_factor, prepare_run_dir, save_checkpoint, seed_everything)

# Held-out questions use a fixed seed, not the run's: every run is scored on the same questions.
EVAL_SEED = 20240601


def geometry(cfg: Config) -> Geometry:
    return Geometry(resize=tuple(cfg.resize), size=cfg.size)


def build_siamese(cfg: Config) -> SiameseNet:
    model = SiameseNet(cfg.N, width=cfg.width, branch_dim=cfg.branch_dim, frames=cfg.D, size=cfg.size)
    return model.to(cfg.device, memory_format=torch.channels_last_3d)


def question_clips(batch: dict, cfg: Config) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 windows + question -> normalized (B*N, C, D, s, s) clips on the device, and labels."""
    dev = cfg.device
    clips = build_clips(batch["windows"].to(dev, non_blocking=True),
                        batch["starts"].to(dev, non_blocking=True),
                        batch["orders"].to(dev, non_blocking=True),
                        mean=cfg.mean, std=cfg.std, dtype=input_dtype(cfg))
    return clips, batch["label"].to(dev, non_blocking=True)


def steps_for(cfg: Config, epoch_size: int) -> int:
    if cfg.epochs is not None:
        return max(1, math.ceil(cfg.epochs * epoch_size / cfg.batch_size))
    return cfg.steps


def pretrain(cfg: Config, dataset: VideoDataset, *, progress: bool = True) -> dict:
    run_dir = prepare_run_dir(cfg.out, cfg)
    seed_everything(cfg.seed)
    plan = PretextPlan(dataset.train, W=cfg.W, D=cfg.D, N=cfg.N, mode=cfg.mode, geometry=geometry(cfg),
                       seed=cfg.seed, train=True)
    total = steps_for(cfg, plan.epoch_size)
    model = build_siamese(cfg)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    batches = loaders.pretext_batches(cfg.loader, plan, cfg.batch_size, workers=cfg.workers,
                                      device=cfg.device, decoders=cfg.decoders)
    scaler = torch.amp.GradScaler(torch.device(cfg.device).type, enabled=cfg.precision == "fp16")
    log = RunLog(run_dir)
    timer = StepTimer(cfg.device)
    loss_sum = torch.zeros((), device=cfg.device)
    correct = torch.zeros((), device=cfg.device, dtype=torch.long)
    seen = 0
    bar = tqdm(range(total), desc=f"pretrain {cfg.mode}", disable=not progress, unit="step")
    model.train()
    for step in bar:
        for group in optimizer.param_groups:
            group["lr"] = cfg.lr * lr_factor(step, total, cfg.warmup)
        with timer.waiting():
            batch = next(batches)
        x, y = question_clips(batch, cfg)
        with autocast(cfg):
            logits = model(x)
        loss = F.cross_entropy(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()  # fp16 needs loss scaling; a no-op otherwise
        scaler.step(optimizer)
        scaler.update()

        loss_sum += loss.detach() * len(y)
        correct += (logits.argmax(1) == y).sum()
        seen += len(y)
        timer.items += x.shape[0]
        if (step + 1) % cfg.log_every == 0 or step + 1 == total:
            seconds, wait_frac, clips_per_s = timer.close_interval()
            scalars = {"pretext/loss": loss_sum.item() / seen, "pretext/accuracy": correct.item() / seen,
                       "lr": optimizer.param_groups[0]["lr"], "clips_per_s": clips_per_s,
                       "data_wait_fraction": wait_frac}
            log.log(step + 1, **scalars)
            bar.set_postfix(loss=f"{scalars['pretext/loss']:.3f}", acc=f"{scalars['pretext/accuracy']:.2f}",
                            clips_s=f"{clips_per_s:.0f}", wait=f"{wait_frac:.0%}")
            loss_sum.zero_(), correct.zero_()
            seen = 0
        if (step + 1) % cfg.ckpt_every == 0 or step + 1 == total:
            save_checkpoint(run_dir / "checkpoint.pt", kind="pretext", model=model, cfg=cfg,
                            step=step + 1, optimizer=optimizer)
    del batches  # shuts the loader's workers down before evaluation starts its own
    result = evaluate_pretext(model, cfg, dataset, progress=progress)
    result["steps"] = total
    log.log(total, **{"heldout/pretext_accuracy": result["pretext_accuracy"]})
    log.close()
    return {**result, "checkpoint": str(run_dir / "checkpoint.pt"), "run_dir": str(run_dir)}


@torch.no_grad()
def evaluate_pretext(model: SiameseNet, cfg: Config, dataset: VideoDataset, *, progress: bool = True) -> dict:
    """Accuracy on held-out questions: test-split videos, centre crops, fixed seed,
    `cfg.eval_questions` questions per video."""
    plan = PretextPlan(dataset.test, W=cfg.W, D=cfg.D, N=cfg.N, mode=cfg.mode, geometry=geometry(cfg),
                       seed=EVAL_SEED, train=False)
    total = plan.epoch_size * cfg.eval_questions
    batches = loaders.pretext_batches(cfg.loader, plan, cfg.batch_size, workers=cfg.workers,
                                      device=cfg.device, decoders=cfg.decoders)
    model.eval()
    correct, seen = 0, 0
    for _ in tqdm(range(math.ceil(total / cfg.batch_size)), desc="held-out questions",
                  disable=not progress, unit="batch"):
        x, y = question_clips(next(batches), cfg)
        with autocast(cfg):
            pred = model(x).argmax(1)
        keep = min(len(y), total - seen)  # the stream runs on past `total`; cut it there
        correct += (pred[:keep] == y[:keep]).sum().item()
        seen += keep
    model.train()
    return {"pretext_accuracy": correct / seen, "questions": seen, "chance": 1.0 / cfg.N}


def load_pretext_model(path: str | Path, cfg: Config | None = None) -> tuple[SiameseNet, Config, dict]:
    state = load_checkpoint(path)
    if state.get("kind") != "pretext":
        raise ValueError(f"{path}: is a {state.get('kind')!r} checkpoint, not a pretext one")
    saved = Config.load_json(state["config"])
    if cfg is not None:  # runtime settings (device, loader, workers, data) come from the caller
        for key in RUNTIME_KEYS:
            setattr(saved, key, getattr(cfg, key))
    model = build_siamese(saved)
    model.load_state_dict(state["model"])
    return model, saved, state
