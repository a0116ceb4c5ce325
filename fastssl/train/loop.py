"""The one training loop every task shares.

    next batch (timed as data wait) -> task.model_inputs: clips on the device -> forward under
    autocast -> cross entropy -> step -> RunGuard.decide: log? checkpoint? stop?

Between two log points the loop makes no call that waits for the GPU: loss and accuracy are
summed on the device and read at log points; the guard reads its device flags only at log and
checkpoint steps. Exempt, and only there: log points, checkpoint steps, the held-out monitor
every cfg.eval_every steps, and --skip-nonfinite (which must look at every loss). On CUDA,
FASTSSL_SYNC_DEBUG=1 makes torch raise at any such call between log points
(`torch.cuda.set_sync_debug_mode("error")`); tests/test_host_waits.py audits the same on a CPU.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from fastssl.config import Config
from fastssl.train.checkpoints import CheckpointWriter, numbered
from fastssl.train.distributed import Dist, gather_objects, host_sum
from fastssl.train.gpu_stats import gpu_stats
from fastssl.train.guard import Decision, RunGuard, RunStopped, injected_nan_step
from fastssl.train.precision import autocast
from fastssl.train.progress import Progress
from fastssl.train.runlog import RunLog
from fastssl.train.schedule import current_lrs, lr_factor, set_lr
from fastssl.train.state import Interval, TrainState, bad_videos_text, rng_state
from fastssl.train.timer import DataWaitAdvice, StepTimer

SYNC_DEBUG_ENV = "FASTSSL_SYNC_DEBUG"


@dataclass
class Training:
    """The objects optimizer steps change. `model` may be wrapped in DistributedDataParallel
    (`bare` is the module checkpoints hold)."""
    cfg: Config
    task: "Task"  # noqa: F821 - fastssl.train.tasks.Task
    model: torch.nn.Module
    bare: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    checkpoint_extra: dict


@dataclass
class Output:
    """Where a run reports: its folder (checkpoints), its log (rank 0 only), messages, progress."""
    run_dir: Path
    log: RunLog | None
    report: Callable[[str], None] = print
    progress: bool = True
    dist: Dist = Dist()


def sync_debug(cfg: Config) -> Callable[[bool], None]:
    """strict(True/False): with FASTSSL_SYNC_DEBUG=1 on CUDA, torch raises at a host-GPU sync
    while strict; elsewhere a no-op. Not with the two options that sync every step by design:
    --skip-nonfinite (reads each loss) and fp16 (GradScaler reads its inf check)."""
    if (os.environ.get(SYNC_DEBUG_ENV) != "1" or not cfg.device.startswith("cuda") or cfg.skip_nonfinite
            or cfg.precision == "fp16"):
        return lambda strict: None
    return lambda strict: torch.cuda.set_sync_debug_mode("error" if strict else "default")


def out_of_memory(cfg: Config, step: int, run_dir: Path, error: Exception) -> RunStopped:
    """CUDA ran out of memory: say which options trade memory for nothing else, and what is kept."""
    kept = numbered(run_dir)
    last = f"the last checkpoint kept is {kept[0][1]} (step {kept[0][0]})" if kept else "no checkpoint was written yet"
    message = (f"CUDA ran out of memory in step {step} ({str(error).splitlines()[0]}). Lower --batch-size "
               f"(now {cfg.batch_size}), or keep it and pass --accumulate N (now {cfg.accumulate}): the same "
               f"step in N micro-batches, 1/N of the activations; a run can continue that way with "
               f"--resume RUN_DIR --accumulate N; {last}")
    return RunStopped(Decision(False, "out-of-memory", 1, message), step, str(kept[0][1]) if kept else None)


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


def train_steps(t: Training, batches, *, total: int, videos, start: TrainState, out: Output,
                monitor: Callable[[torch.nn.Module], dict] | None = None) -> dict:
    """Run optimizer steps start.step+1 .. total; return the last logged scalars.

    `monitor(model)` -> held-out scalars, called every cfg.eval_every steps and at the end on
    rank 0. Only rank 0 logs, shows progress and writes checkpoints; every rank takes the same
    decisions. Raises RunStopped when the guard stops the run early."""
    cfg, dist, prefix = t.cfg, out.dist, t.task.prefix
    writer = CheckpointWriter(out.run_dir, keep=cfg.keep_checkpoints)
    guard = RunGuard(cfg, total, videos, report=out.report if dist.is_main else (lambda _: None),
                     known_bad=start.bad_videos, skipped_nonfinite=start.skipped_nonfinite, dist=dist)
    timer = StepTimer(cfg.device)
    interval = start.interval or Interval.zero(cfg.device)
    nan_at = injected_nan_step(dist.rank)
    strict = sync_debug(cfg)
    advice = DataWaitAdvice(cfg.loader, cfg.workers, cfg.decoders)
    scalars: dict = {}

    def save(done: int) -> str | None:
        if not dist.is_main:
            return None
        return str(writer.save(done, kind=t.task.kind, model=t.bare, cfg=cfg, optimizer=t.optimizer,
                               scaler=t.scaler.state_dict(), interval=interval.state(),
                               bad_videos=bad_videos_text(guard.bad.found),
                               skipped_nonfinite=guard.skipped_nonfinite, **rng_state(), **t.checkpoint_extra))

    t.model.train()
    accumulate = max(1, cfg.accumulate)
    with guard.signals, Progress(total, t.task.title(cfg), enabled=out.progress and dist.is_main) as bar:
        bar.update(start.step)
        for step in range(start.step, total):
            set_lr(t.optimizer, lr_factor(step, total, cfg.warmup))
            done = step + 1
            strict(True)
            try:
                with timer.waiting():
                    batch = next(batches)
                guard.bad.note(batch.get("bad", ()))
                _step(t, batch, accumulate, guard, interval, timer, nan_at if nan_at == done else None, done)
            except torch.cuda.OutOfMemoryError as e:
                strict(False)
                raise out_of_memory(cfg, done, out.run_dir, e) from None
            strict(False)
            bar.update()

            held = {}
            if monitor is not None and dist.is_main and cfg.eval_every and (done % cfg.eval_every == 0 or done == total):
                with timer.paused():  # held-out scoring is not training time
                    held = monitor(t.bare)
            at_log = done % cfg.log_every == 0 or done == total
            decision = guard.decide(done, at_log=at_log)
            if decision.stop == "non-finite":
                raise RunStopped(decision, done, None)
            if at_log:
                scalars = _log_point(t, interval, timer, guard, held, out, done, bar)
                hint = advice.note(scalars["data_wait_fraction"])
                if hint and dist.is_main:
                    out.report(hint)
                interval = Interval.zero(cfg.device)
            elif held:
                if out.log is not None:
                    out.log.log(done, **held)
                scalars.update(held)
            path = save(done) if decision.checkpoint else None
            if decision.stop is not None:
                raise RunStopped(decision, done, path)
    if guard.bad.count and dist.is_main:
        out.report(f"{guard.bad.count} video(s) failed to decode during the run and were skipped "
                   "(named above; data/bad_videos in the logs)")
    return scalars


def _step(t: Training, batch: dict, accumulate: int, guard: RunGuard, interval: Interval, timer: StepTimer,
          poison: int | None, done: int) -> None:
    """One optimizer step on `batch` (in `accumulate` micro-batches); sums stay on the device."""
    cfg = t.cfg
    t.optimizer.zero_grad(set_to_none=True)
    parts = micro_batches(batch, accumulate)
    losses = []
    for j, part in enumerate(parts):
        x, y = t.task.model_inputs(part, cfg)
        # DDP all-reduces gradients on the last micro-batch only
        sync = contextlib.nullcontext() if j == len(parts) - 1 or not hasattr(t.model, "no_sync") \
            else t.model.no_sync()
        with sync:
            with autocast(cfg):
                logits = t.model(x)
            loss = F.cross_entropy(logits.float(), y)
            if poison is not None:
                loss = loss * float("nan")
            if cfg.skip_nonfinite and guard.skip_batch(loss):
                t.optimizer.zero_grad(set_to_none=True)
                return
            t.scaler.scale(loss / len(parts)).backward()  # fp16 needs loss scaling; else a no-op
        losses.append(loss.detach())
        interval.correct += (logits.argmax(1) == y).sum()
        timer.items += x.shape[0]
    loss = torch.stack(losses).mean()
    guard.nonfinite.note(loss, done)
    t.scaler.step(t.optimizer)  # fp16: reads the scale's inf check back (a host wait); bf16/fp32: none
    t.scaler.update()
    interval.loss_sum += loss * len(batch["label"])
    interval.seen += len(batch["label"])


def _log_point(t: Training, interval: Interval, timer: StepTimer, guard: RunGuard, held: dict,
               out: Output, done: int, bar: Progress) -> dict:
    """Read the interval's sums (the log point's sync), agree on them over ranks, log, show."""
    dist, prefix = out.dist, t.task.prefix
    seconds, wait_frac, clips_per_s = timer.close_interval()
    loss_sum, correct, seen, items = host_sum(
        [interval.loss_sum.item(), interval.correct.item(), interval.seen, clips_per_s], dist)
    waits = gather_objects(wait_frac, dist)
    seen = max(seen, 1)
    scalars = {f"{prefix}/loss": loss_sum / seen, f"{prefix}/accuracy": correct / seen,
               **current_lrs(t.optimizer), "clips_per_s": items,
               "data_wait_fraction": sum(waits) / len(waits), "data/bad_videos": guard.bad.count, **held}
    if dist.enabled:
        scalars["data_wait_fraction_max"] = max(waits)
    if t.cfg.skip_nonfinite:
        scalars["nonfinite_skipped"] = guard.skipped_nonfinite
    scalars.update(gpu_stats(t.cfg.device))
    if out.log is not None:
        out.log.log(done, **scalars)
    bar.note(loss=scalars[f"{prefix}/loss"], acc=scalars[f"{prefix}/accuracy"], clips_s=round(items),
             wait=f"{scalars['data_wait_fraction']:.0%}", **{k.split("/")[-1]: v for k, v in held.items()})
    return scalars
