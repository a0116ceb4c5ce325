"""Host headroom: the training thread's CPU time per step at the `paper` preset's batch, against
the GPU time the model needs for that step (its forward + backward FLOPs at GPU_EFFICIENCY of
GPU_PEAK_FLOPS). The real loop (`loop.train_steps`: stream, guard, lr schedule, logging) runs with
a stand-in model whose forward returns zero logits that still take a gradient. Off CUDA the clip
builder is called on the meta device: the whole call (checks, dispatch, the output's allocation)
but no frame written - a GPU kernel's work. Host ms = the training thread's time.thread_time, so
the loader's worker processes and threads (DALI's decoding and chunk builds, the DataLoader's
pinning) are left out; getrusage(RUSAGE_SELF) (every thread, no child) is reported beside it."""
from __future__ import annotations

import collections
import dataclasses
import resource
import time
from pathlib import Path

import numpy as np
import torch

from fastssl.benchmarks.common import config, dataset
from fastssl.benchmarks.model import flops_per_sample
from fastssl.benchmarks.stats import summarize

GPU_PEAK_FLOPS = 989e12   # H100 SXM, dense bf16
GPU_EFFICIENCY = 0.40     # the share of peak a well-fed step is assumed to reach


def _now() -> tuple[float, float, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return time.thread_time(), usage.ru_utime + usage.ru_stime, time.perf_counter()


class StepClock:
    """A batch stream noting the time whenever the loop asks for a batch (a step starts there), and
    the thread's CPU seconds inside each request, in each clip-builder call, and releasing the
    batch before last (the loop drops it on taking the next one; here it goes a step later)."""

    def __init__(self, batches):
        self.batches, self.held = batches, collections.deque()
        self.marks, self.release, self.handover, self.builder = [], [], [], []

    def __next__(self):
        self.marks.append(_now())
        t = time.thread_time()
        if len(self.held) == 2:
            self.held.popleft()  # only this clock still holds it: freed now
        t1 = time.thread_time()
        self.held.append(next(self.batches))
        self.release.append(t1 - t)
        self.handover.append(time.thread_time() - t1)
        return self.held[-1]


class StandIn(torch.nn.Module):
    """The model's place in the loop at no cost: zero logits (batch, outputs) with a gradient."""

    def __init__(self, batch: int, outputs: int):
        super().__init__()
        self.batch, self.logits = batch, torch.nn.Parameter(torch.zeros(1, outputs))

    def forward(self, x):
        return self.logits.expand(self.batch, -1)


@dataclasses.dataclass
class HostOnly:
    """The real task, its clip-builder call timed (and made on the meta device off CUDA)."""
    task: object
    clock: StepClock
    builder_cfg: object

    def __getattr__(self, name):  # command, kind, prefix, title: the task's own
        return getattr(self.task, name)

    def model_inputs(self, batch, cfg):
        t = time.thread_time()
        x, y = self.task.model_inputs(batch, self.builder_cfg)
        self.clock.builder.append(time.thread_time() - t)
        return x, (y if self.builder_cfg is cfg else batch["label"])


def host(spec: dict, command: str, loader: str) -> dict:
    """Host and GPU ms per step of `command` (pretrain | finetune) fed by `loader`, paper batch."""
    from fastssl.data.sampling import stream_keys
    from fastssl.train.distributed import Dist
    from fastssl.train.loop import Output, Training, train_steps
    from fastssl.train.runlog import RunLog
    from fastssl.train.state import TrainState
    from fastssl.train.tasks import TASKS

    warm, timed, cuda = 2, int(spec.get("host_steps", 20)), spec["device"].startswith("cuda")
    if not cuda:  # the loop's tensor ops are launches on a GPU; here tiny OpenMP regions would
        torch.set_num_threads(1)  # spin-wait on this thread's CPU clock
    run_dir = Path(spec["workdir"]) / f"host-{command}-{loader}"
    cfg = config(spec, command, preset="paper", size=None, width=None, batch_size=None, resize=None, loader=loader,
                 steps=warm + timed, log_every=10, ckpt_every=10**9, out=str(run_dir))
    notes: list[str] = []
    ds, task, B = dataset(cfg, notes), TASKS[command], cfg.batch_size
    plan = task.plan(cfg, ds)
    t = time.thread_time()  # the sampler and questions of one batch (PyAV: in its workers; DALI: a thread)
    for epoch, i in next(iter(stream_keys(plan.epoch_size, B))):
        plan.sample(epoch, i)
    sampler_ms = (time.thread_time() - t) * 1e3
    outputs = cfg.N if command == "pretrain" else ds.num_classes
    stand_in = StandIn(B, outputs).to(cfg.device)
    optimizer = torch.optim.Adam([{"params": stand_in.parameters(), "lr": cfg.lr, "base_lr": cfg.lr, "name": "all"}])
    scaler = torch.amp.GradScaler(torch.device(cfg.device).type, enabled=cfg.precision == "fp16")
    log = RunLog(run_dir)
    with task.stream(cfg, plan, start_step=0, dist=Dist()) as stream:
        clock = StepClock(stream)
        training = Training(cfg, HostOnly(task, clock, cfg if cuda else dataclasses.replace(cfg, device="meta")),
                            stand_in, stand_in, optimizer, scaler, {})
        try:
            train_steps(training, clock, total=cfg.steps, videos=plan.videos, start=TrainState(),
                        out=Output(run_dir, log, notes.append, False))
        finally:
            log.close()
        clock.marks.append(_now())
    step = np.diff(np.asarray(clock.marks)[warm:], axis=0) * 1e3   # per timed step: thread, process, wall (ms)
    release, handover, builder = (np.asarray(x[warm:]) * 1e3 for x in (clock.release, clock.handover, clock.builder))
    # Off CUDA, freeing a batch (munmap; on a GPU host the caching allocators make it free) is
    # measured per step and left out. DALI's frame copy into a torch tensor (GPU->GPU on CUDA) happens
    # inside the hand-over and cannot be timed apart per step: it stays in, and one copy's time is
    # shown beside it (subtracting that single, noisy estimate could make the figure negative).
    copy = 0.0
    if loader == "dali" and not cuda:
        t, frames = time.thread_time(), clock.held[-1]["windows"]
        torch.empty_like(frames).copy_(frames)
        copy = (time.thread_time() - t) * 1e3
    host_ms = summarize(step[:, 0] - (0 if cuda else release), "host ms/step")
    gpu_ms = flops_per_sample(cfg, "finetune" if command == "finetune" else "pretext", outputs) * B \
        / (GPU_EFFICIENCY * GPU_PEAK_FLOPS) * 1e3
    return {"metric": host_ms, **{f"{k}_ms_per_step": summarize(step[:, i], "ms/step")
                                  for i, k in enumerate(("thread", "process", "wall"))},
            "stages_ms": {"hand-over (next batch)": float(np.median(handover)),
                          "clip builder call": float(np.median(builder)),
                          "loop, guard, logging, stand-in step":
                              float(np.median(step[:, 0] - handover - release - builder)),
                          **({"releasing the batch before": float(np.median(release))} if cuda else {})},
            "left_out_ms": {} if cuda else {"releasing the batch before": float(np.median(release))},
            **({"frame_copy_in_handover_ms": copy} if copy else {}),
            "sampler_ms_per_batch": sampler_ms,
            "gpu_ms_per_step": gpu_ms, "host_vs_gpu": host_ms["median"] / gpu_ms,
            "batch": B, "loader": loader, "steps": timed,
            "gpu_assumption": f"{GPU_EFFICIENCY:.0%} of {GPU_PEAK_FLOPS / 1e12:.0f} TFLOP/s (H100 SXM dense bf16)",
            "notes": notes}
