"""The one training loop that pretext training and fine-tuning share.

    next batch (timed as data wait) -> clips on the device -> forward under autocast
    -> cross entropy -> step -> RunGuard.decide: log? checkpoint? stop?

Loss and accuracy are summed on the device and read only at log points, so the loop has no
per-step CPU-GPU sync (except with --skip-nonfinite, which must look at every loss). Each
optimizer param group carries a `name` and a `base_lr`; the lr schedule scales every group by
the same factor and each group's lr is logged as `lr/<name>`.

A checkpoint holds everything the next step depends on - model, optimizer, grad scaler, step,
RNG states, the log interval's running sums, the bad videos met so far - and the data position
is the step itself (the sampler is a function of it), so a resumed run continues exactly where
the checkpoint left it.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from fastssl.config import Config
from fastssl.train.checkpoints import Checkpoint, CheckpointWriter
from fastssl.train.common import RunLog, StepTimer, autocast, lr_factor
from fastssl.train.distributed import Dist, gather_objects, host_sum
from fastssl.train.guard import RunGuard, RunStopped, injected_nan_step
from fastssl.train.progress import Progress

Inputs = Callable[[dict, Config], tuple[torch.Tensor, torch.Tensor]]


@dataclass
class Interval:
    """Running sums of the current log interval (saved in checkpoints, so a resumed run logs
    the same numbers as an uninterrupted one)."""
    loss_sum: torch.Tensor
    correct: torch.Tensor
    seen: int = 0
    skipped: int = 0

    @classmethod
    def zero(cls, device: str) -> "Interval":
        return cls(torch.zeros((), device=device), torch.zeros((), device=device, dtype=torch.long))

    def state(self) -> dict:
        return {"loss_sum": self.loss_sum.detach().cpu(), "correct": self.correct.cpu(),
                "seen": self.seen, "skipped": self.skipped}

    @classmethod
    def restore(cls, state: dict, device: str) -> "Interval":
        return cls(state["loss_sum"].to(device), state["correct"].to(device), int(state["seen"]),
                   int(state.get("skipped", 0)))


@dataclass
class TrainState:
    """What a checkpoint restores besides model and optimizer."""
    step: int = 0
    interval: Interval | None = None
    bad_videos: dict = field(default_factory=dict)
    skipped_nonfinite: int = 0


def rng_state() -> dict:
    state = {"torch_rng": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda_rng"] = torch.stack(torch.cuda.get_rng_state_all())
    return state


def restore(ckpt: Checkpoint, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
            scaler: torch.amp.GradScaler, device: str) -> TrainState:
    """Load everything a checkpoint holds back into the run's objects."""
    state = ckpt.state
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if "scaler" in state:
        scaler.load_state_dict(state["scaler"])
    torch.set_rng_state(state["torch_rng"])
    if "cuda_rng" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(list(state["cuda_rng"]))
    bad = dict(line.split("\t", 1) for line in state.get("bad_videos", "").splitlines() if "\t" in line)
    interval = Interval.restore(state["interval"], device) if "interval" in state else None
    return TrainState(ckpt.step, interval, bad, int(state.get("skipped_nonfinite", 0)))


def micro_batches(batch: dict, n: int) -> list[dict]:
    """Split a batch into n equal contiguous parts (the `bad` list goes with the first), so
    that micro-batch j of one process holds what rank j would hold: --accumulate N in one
    process is the reference for N data-parallel ranks."""
    if n == 1:
        return [batch]
    size = len(batch["label"]) // n
    parts = []
    for j in range(n):
        part = {k: v[j * size:(j + 1) * size] for k, v in batch.items() if k != "bad"}
        part["bad"] = batch.get("bad", []) if j == 0 else []
        parts.append(part)
    return parts


def train_steps(cfg: Config, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer, batches,
                total: int, inputs: Inputs, kind: str, prefix: str, run_dir: Path, log: RunLog | None,
                videos, scaler: torch.amp.GradScaler, start: TrainState | None = None,
                checkpoint_extra: dict | None = None,
                monitor: Callable[[torch.nn.Module], dict] | None = None,
                progress: bool = True, desc: str | None = None, report=print,
                dist: Dist = Dist()) -> dict:
    """Run optimizer steps start.step+1 .. total; return the last logged scalars.

    `model` may be wrapped in DistributedDataParallel; checkpoints hold the bare module.
    `inputs(batch, cfg)` -> (model input, labels); `monitor(model)` -> extra scalars, called
    every cfg.eval_every steps and at the end on rank 0 (it must leave the model in train
    mode). Only rank 0 logs (`log` is None elsewhere), shows progress and writes checkpoints;
    every rank takes the same decisions. Raises RunStopped when the guard stops the run early."""
    start = start or TrainState()
    bare = getattr(model, "module", model)
    writer = CheckpointWriter(run_dir, keep=cfg.keep_checkpoints)
    guard = RunGuard(cfg, total, videos, report=report if dist.is_main else (lambda _: None),
                     known_bad=start.bad_videos, dist=dist)
    guard.skipped_nonfinite = start.skipped_nonfinite
    timer = StepTimer(cfg.device)
    interval = start.interval or Interval.zero(cfg.device)
    nan_at = injected_nan_step()
    scalars: dict = {}

    def save(done: int) -> str | None:
        if not dist.is_main:
            return None
        return str(writer.save(done, kind=kind, model=bare, cfg=cfg, optimizer=optimizer,
                               scaler=scaler.state_dict(), interval=interval.state(),
                               bad_videos="\n".join(f"{p}\t{r}" for p, r in guard.bad.found.items()),
                               skipped_nonfinite=guard.skipped_nonfinite, **rng_state(),
                               **(checkpoint_extra or {})))

    model.train()
    accumulate = max(1, cfg.accumulate)
    with guard.signals, Progress(total, desc or prefix, enabled=progress and dist.is_main) as bar:
        bar.update(start.step)
        for step in range(start.step, total):
            factor = lr_factor(step, total, cfg.warmup)
            for group in optimizer.param_groups:
                group["lr"] = group["base_lr"] * factor
            with timer.waiting():
                batch = next(batches)
            guard.bad.note(batch.get("bad", ()))
            done = step + 1
            optimizer.zero_grad(set_to_none=True)
            parts = micro_batches(batch, accumulate)
            losses = []
            for j, part in enumerate(parts):
                x, y = inputs(part, cfg)
                # DDP all-reduces gradients on the last micro-batch only
                sync = contextlib.nullcontext() if j == len(parts) - 1 or not hasattr(model, "no_sync") \
                    else model.no_sync()
                with sync:
                    with autocast(cfg):
                        logits = model(x)
                    loss = F.cross_entropy(logits.float(), y)
                    if nan_at == done:
                        loss = loss * float("nan")
                    if cfg.skip_nonfinite and not bool(torch.isfinite(loss)):  # a sync point, by request
                        losses = None
                        break
                    scaler.scale(loss / len(parts)).backward()  # fp16 needs loss scaling; else a no-op
                losses.append(loss.detach())
                interval.correct += (logits.argmax(1) == y).sum()
                timer.items += x.shape[0]
            if losses is None:
                optimizer.zero_grad(set_to_none=True)
                guard.skipped_nonfinite += 1
                interval.skipped += 1
            else:
                loss = torch.stack(losses).mean()
                guard.nonfinite.note(loss, done)
                scaler.step(optimizer)
                scaler.update()
                interval.loss_sum += loss * len(batch["label"])
                interval.seen += len(batch["label"])
            bar.update()

            held = {}
            if monitor is not None and dist.is_main and cfg.eval_every and (done % cfg.eval_every == 0 or done == total):
                t = time.perf_counter()
                held = monitor(bare)
                timer.t0 += time.perf_counter() - t  # held-out scoring is not training time
            at_log = done % cfg.log_every == 0 or done == total
            decision = guard.decide(done, at_log=at_log)
            if decision.stop == "non-finite":
                raise RunStopped(decision, done, None)
            if at_log:
                seconds, wait_frac, clips_per_s = timer.close_interval()  # a sync point on CUDA
                loss_sum, correct, seen, items = host_sum(
                    [interval.loss_sum.item(), interval.correct.item(), interval.seen, clips_per_s], dist)
                waits = [w for w in gather_objects(wait_frac, dist)]
                seen = max(seen, 1)
                scalars = {f"{prefix}/loss": loss_sum / seen, f"{prefix}/accuracy": correct / seen,
                           **{f"lr/{g['name']}": g["lr"] for g in optimizer.param_groups},
                           "clips_per_s": items, "data_wait_fraction": sum(waits) / len(waits),
                           "data/bad_videos": guard.bad.count, **held}
                if dist.enabled:
                    scalars["data_wait_fraction_max"] = max(waits)
                if cfg.skip_nonfinite:
                    scalars["nonfinite_skipped"] = guard.skipped_nonfinite
                if log is not None:
                    log.log(done, **scalars)
                bar.note(loss=scalars[f"{prefix}/loss"], acc=scalars[f"{prefix}/accuracy"],
                         clips_s=round(items), wait=f"{scalars['data_wait_fraction']:.0%}",
                         **{k.split("/")[-1]: v for k, v in held.items()})
                interval = Interval.zero(cfg.device)
            elif held:
                if log is not None:
                    log.log(done, **held)
                scalars.update(held)
            path = save(done) if decision.checkpoint else None
            if decision.stop is not None:
                raise RunStopped(decision, done, path)
    if guard.bad.count and dist.is_main:
        report(f"{guard.bad.count} video(s) failed to decode during the run and were skipped "
               "(named above; data/bad_videos in the logs)")
    return scalars
