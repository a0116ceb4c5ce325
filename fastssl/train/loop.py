"""The one training loop that pretext training and fine-tuning share.

    next batch (timed as data wait) -> clips on the device -> forward under autocast
    -> cross entropy -> step; every log_every steps: metrics; every ckpt_every steps: checkpoint

Loss and accuracy are summed on the device and read only at log points, so the loop has no
per-step CPU-GPU sync. Each optimizer param group carries a `name` and a `base_lr`; the lr
schedule scales every group by the same factor and each group's lr is logged as `lr/<name>`.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from fastssl.config import Config
from fastssl.train.checkpoints import save_checkpoint
from fastssl.train.common import RunLog, StepTimer, autocast, lr_factor
from fastssl.train.progress import Progress

Inputs = Callable[[dict, Config], tuple[torch.Tensor, torch.Tensor]]


def train_steps(cfg: Config, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer, batches,
                total: int, inputs: Inputs, kind: str, prefix: str, run_dir: Path, log: RunLog,
                checkpoint_extra: dict | None = None,
                monitor: Callable[[torch.nn.Module], dict] | None = None,
                progress: bool = True, desc: str | None = None) -> dict:
    """Run `total` optimizer steps; return the last logged scalars.

    `inputs(batch, cfg)` -> (model input, labels); `monitor(model)` -> extra scalars, called
    every cfg.eval_every steps and at the end (it must leave the model in train mode)."""
    scaler = torch.amp.GradScaler(torch.device(cfg.device).type, enabled=cfg.precision == "fp16")
    timer = StepTimer(cfg.device)
    loss_sum = torch.zeros((), device=cfg.device)
    correct = torch.zeros((), device=cfg.device, dtype=torch.long)
    seen = 0
    scalars: dict = {}
    model.train()
    with Progress(total, desc or prefix, enabled=progress) as bar:
        for step in range(total):
            factor = lr_factor(step, total, cfg.warmup)
            for group in optimizer.param_groups:
                group["lr"] = group["base_lr"] * factor
            with timer.waiting():
                batch = next(batches)
            x, y = inputs(batch, cfg)
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
            bar.update()
            done = step + 1
            held = {}
            if monitor is not None and cfg.eval_every and (done % cfg.eval_every == 0 or done == total):
                t = time.perf_counter()
                held = monitor(model)
                timer.t0 += time.perf_counter() - t  # held-out scoring is not training time
            if done % cfg.log_every == 0 or done == total:
                seconds, wait_frac, clips_per_s = timer.close_interval()  # a sync point on CUDA
                scalars = {f"{prefix}/loss": loss_sum.item() / seen,
                           f"{prefix}/accuracy": correct.item() / seen,
                           **{f"lr/{g['name']}": g["lr"] for g in optimizer.param_groups},
                           "clips_per_s": clips_per_s, "data_wait_fraction": wait_frac, **held}
                log.log(done, **scalars)
                bar.note(loss=scalars[f"{prefix}/loss"], acc=scalars[f"{prefix}/accuracy"],
                         clips_s=round(clips_per_s), wait=f"{wait_frac:.0%}",
                         **{k.split("/")[-1]: v for k, v in held.items()})
                loss_sum.zero_(), correct.zero_()
                seen = 0
            elif held:
                log.log(done, **held)
                scalars.update(held)
            if done % cfg.ckpt_every == 0 or done == total:
                save_checkpoint(run_dir / "checkpoint.pt", kind=kind, model=model, cfg=cfg, step=done,
                                optimizer=optimizer, **(checkpoint_extra or {}))
    return scalars
