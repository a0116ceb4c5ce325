"""Model-only (training steps on device tensors: the ceiling) and end-to-end (the real loops)."""
from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from fastssl.benchmarks.common import config, device_inputs, inputs, prefetched_batches, sync, timed
from fastssl.benchmarks.stats import rate_stats, scaled, summarize


def _count_flops(step) -> int | None:
    try:
        from torch.utils.flop_counter import FlopCounterMode
    except ImportError:
        return None
    with FlopCounterMode(display=False) as counter:
        step()
    return int(counter.get_total_flops())


def model(spec: dict, which: str) -> dict:
    """`which` = pretext (SiameseNet on B questions x N clips) | finetune (AlexNet3D on B clips)."""
    import torch.nn.functional as F

    from fastssl.data.dataset import load_dataset
    from fastssl.models.build import build_classifier, build_siamese
    from fastssl.train.common import autocast, seed_everything
    from fastssl.train.inputs import question_clips, single_clips

    command = "pretrain" if which == "pretext" else "finetune"
    cfg = config(spec, command)
    dev = cfg.device
    seed_everything(cfg.seed)
    B = cfg.batch_size
    windows, starts, orders, labels = device_inputs(cfg, dev, B)
    if which == "pretext":
        net = build_siamese(cfg)
        # what the pretraining loop feeds the model
        x, y = question_clips({"windows": windows, "starts": starts, "orders": orders, "label": labels}, cfg)
        per_step = {"questions": B, "clips": B * cfg.N}
    else:
        classes = load_dataset(cfg.data).num_classes
        net = build_classifier(cfg, classes)
        x = single_clips(windows[:, :cfg.D].contiguous(), cfg)  # what the fine-tuning loop feeds
        y = labels % classes
        per_step = {"clips": B}
    del windows
    optimizer = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    net.train()

    def forward_backward():
        optimizer.zero_grad(set_to_none=True)
        with autocast(cfg):
            logits = net(x)
        loss = F.cross_entropy(logits.float(), y)
        loss.backward()

    def step():
        forward_backward()
        optimizer.step()
        sync(dev)
        return 1

    for _ in range(max(1, spec.get("warmup", 2))):
        step()
    flops = _count_flops(forward_backward)  # forward + backward of one step; Adam is not counted
    samples = timed(spec, step, warmup=0)
    steps = rate_stats(samples, "steps/s")
    out = {"metric": scaled(steps, per_step["clips"], "clips/s"), "steps_per_s": steps,
           "input": [list(x.shape), str(x.dtype)], "precision": cfg.precision,
           "flops_per_step": flops, "params": sum(p.numel() for p in net.parameters()), "notes": []}
    if "questions" in per_step:
        out["questions_per_s"] = scaled(steps, per_step["questions"], "questions/s")
    if flops:
        out["tflops"] = scaled(steps, flops / 1e12, "TFLOP/s")
        if not dev.startswith("cuda"):
            out["notes"].append("TFLOP/s on the CPU is for reference (fp32, no tensor cores)")
    return out



def e2e(spec: dict, which: str) -> dict:
    """Runs fastssl.train.pretrain.pretrain / finetune.finetune unchanged and reads the
    `clips_per_s` and `data_wait_fraction` they log to metrics.jsonl. The first logging interval
    holds the loader's start-up (workers forking, pipelines building), so it is dropped."""
    command = "pretrain" if which == "pretrain" else "finetune"
    measured = int(spec.get("steps", 20))
    log_every = max(1, measured // 8)
    e2e_loader = spec.get("e2e_loader", "pyav")
    # warm-up steps: the loader's start-up plus its prefetch queue, whole logging intervals
    warm = prefetched_batches(e2e_loader, spec["workers"], spec.get("decoders", 1)) + 1
    warm = -(-warm // log_every) * log_every
    steps = warm + -(-measured // log_every) * log_every
    run_dir = Path(spec["workdir"]) / f"e2e-{which}"
    cfg = config(spec, command, loader=e2e_loader, steps=steps, log_every=log_every,
                 ckpt_every=10**9, eval_questions=1, out=str(run_dir))
    notes: list[str] = []
    dataset = inputs(cfg, notes)
    t0 = time.perf_counter()
    if command == "pretrain":
        from fastssl.train.pretrain import pretrain
        pretrain(cfg, dataset, progress=False)
    else:
        from fastssl.train.finetune import finetune
        finetune(cfg, dataset, progress=False)
    wall = time.perf_counter() - t0
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if "clips_per_s" in r]
    kept = [r for r in rows if r["step"] > warm]
    clips = summarize([r["clips_per_s"] for r in kept], "clips/s")
    out = {"metric": clips, "data_wait_fraction": summarize([r["data_wait_fraction"] for r in kept], "fraction"),
           "warmup": [r for r in rows if r["step"] <= warm], "steps": steps, "warmup_steps": warm,
           "log_every": log_every,
           "loader": cfg.loader, "wall_seconds_incl_startup_eval_checkpoint": wall, "notes": notes}
    if command == "pretrain":
        out["questions_per_s"] = scaled(clips, 1.0 / cfg.N, "questions/s")
    return out
