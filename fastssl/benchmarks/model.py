"""Model-only: training steps on inputs already on the device (the ceiling a loader must feed),
eager or under torch.compile; and the FLOPs of a step, counted on the meta device."""
from __future__ import annotations

import dataclasses
import time
from types import SimpleNamespace

import torch
import torch.nn.functional as F

from fastssl.benchmarks.common import config, device_inputs, sync, timed
from fastssl.benchmarks.stats import rate_stats, scaled

COMMAND = {"pretext": "pretrain", "finetune": "finetune"}


def flops_per_sample(cfg, which: str, classes: int) -> int:
    """Forward + backward FLOPs of one sample (a question of N clips, or one clip) as
    FlopCounterMode counts them on the meta device: shapes only, no compute, any preset. Batch 2
    (BatchNorm refuses one sample in training mode), halved; the optimizer is not counted."""
    from torch.utils.flop_counter import FlopCounterMode

    from fastssl.train.tasks import TASKS
    with torch.device("meta"):
        meta = dataclasses.replace(cfg, device="meta")
        net = TASKS[COMMAND[which]].build_model(meta, SimpleNamespace(num_classes=classes))
        x = torch.empty(2 * (cfg.N if which == "pretext" else 1), 3, cfg.D, cfg.size, cfg.size)
        with FlopCounterMode(display=False) as counter:
            logits = net(x.to(memory_format=torch.channels_last_3d))
            F.cross_entropy(logits.float(), torch.zeros(len(logits), dtype=torch.long)).backward()
    return int(counter.get_total_flops()) // 2


def model(spec: dict, which: str, compiled: bool = False) -> dict:
    """`which` = pretext (SiameseNet on B questions x N clips) | finetune (AlexNet3D on B clips).
    `compiled`: the same steps eager, then under torch.compile, in this one process."""
    from fastssl.data.dataset import load_dataset
    from fastssl.train.clips import question_clips, single_clips
    from fastssl.train.determinism import seed_everything
    from fastssl.train.precision import autocast
    from fastssl.train.tasks import TASKS

    task, cfg = TASKS[COMMAND[which]], config(spec, COMMAND[which])
    seed_everything(cfg.seed)
    classes, B = load_dataset(cfg.data).num_classes, cfg.batch_size
    batch = device_inputs(cfg, B)
    net = task.build_model(cfg, SimpleNamespace(num_classes=classes))
    if which == "pretext":  # what each training loop feeds the model
        x, y = question_clips(batch, cfg)
    else:
        x, y = single_clips(batch["windows"][:, :cfg.D].contiguous(), cfg), batch["label"] % classes
    optimizer = torch.optim.Adam(task.param_groups(net, cfg))

    def stepper(forward):
        def step():
            optimizer.zero_grad(set_to_none=True)
            with autocast(cfg):
                logits = forward(x)
            F.cross_entropy(logits.float(), y).backward()
            optimizer.step()
            sync(cfg.device)
            return 1
        return step

    clips, flops = B * (cfg.N if which == "pretext" else 1), flops_per_sample(cfg, which, classes) * B
    out = {"input": [list(x.shape), str(x.dtype)], "precision": cfg.precision, "flops_per_step": flops,
           "params": sum(p.numel() for p in net.parameters()), "notes": []}
    steps = rate_stats(timed(spec, stepper(net), warmup=max(1, spec.get("warmup", 2)), share=0.5 if compiled else 1),
                       "steps/s")
    if compiled:
        fast, t = torch.compile(net), time.perf_counter()
        stepper(fast)()  # compiles the forward and backward graphs
        out.update(compile_seconds=time.perf_counter() - t, eager=scaled(steps, clips, "clips/s"))
        steps = rate_stats(timed(spec, stepper(fast), share=0.5), "steps/s")
        out["compiled_vs_eager"] = steps["median"] * clips / out["eager"]["median"]
    out.update(metric=scaled(steps, clips, "clips/s"), steps_per_s=steps, tflops=scaled(steps, flops / 1e12, "TFLOP/s"))
    if which == "pretext":
        out["questions_per_s"] = scaled(steps, B, "questions/s")
    if not cfg.device.startswith("cuda"):
        out["notes"].append("TFLOP/s on the CPU is for reference (fp32, no tensor cores)")
    return out
