"""Fine-tune 3D-AlexNet for action recognition, from a pretext checkpoint or from scratch.

    fastssl finetune --data DATA --init runs/rp/checkpoint.pt --out runs/rp-ft

conv1..pool3 come from the pretext checkpoint; fc1..fc3 are new. Two learning rates, as in the
paper: `lr_fc` (1e-3) for the new fc layers, `lr_conv` (1e-4) for the pretrained convolutions.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from tqdm import tqdm

from fastssl.config import Config
from fastssl.data import loaders
from fastssl.data.dataset import VideoDataset
from fastssl.data.sampling import ClipPlan
from fastssl.kernels import build_clips, identity_orders
from fastssl.models import AlexNet3D
from fastssl.train.common import (RunLog, StepTimer, autocast, input_dtype, load_checkpoint,
                                  lr_factor, prepare_run_dir, save_checkpoint, seed_everything)
from fastssl.train.pretrain import geometry, steps_for


def build_classifier(cfg: Config, num_classes: int) -> AlexNet3D:
    model = AlexNet3D(num_classes, width=cfg.width, fc_size=cfg.fc_size, frames=cfg.D, size=cfg.size)
    return model.to(cfg.device, memory_format=torch.channels_last_3d)


def single_clips(windows: torch.Tensor, cfg: Config) -> torch.Tensor:
    """uint8 (B, D, s, s, 3) -> normalized (B, C, D, s, s): the clip builder with N=1, identity order."""
    B, D = windows.shape[:2]
    starts, orders = identity_orders(B, D, windows.device)
    return build_clips(windows, starts, orders, mean=cfg.mean, std=cfg.std, dtype=input_dtype(cfg))


def load_pretrained_features(model: AlexNet3D, path: str) -> int:
    """Copy conv1..pool3 from a pretext checkpoint; return the number of tensors copied."""
    state = load_checkpoint(path)
    if state.get("kind") != "pretext":
        raise ValueError(f"{path}: --init needs a pretext checkpoint (from `fastssl pretrain`), "
                         f"this one is {state.get('kind')!r}")
    features = {k[len("features."):]: v for k, v in state["model"].items() if k.startswith("features.")}
    try:
        model.features.load_state_dict(features)
    except RuntimeError as e:
        raise ValueError(f"{path}: its conv layers do not fit this model (different --preset or width?): {e}") from None
    return len(features)


def finetune(cfg: Config, dataset: VideoDataset, *, progress: bool = True) -> dict:
    run_dir = prepare_run_dir(cfg.out, cfg)
    seed_everything(cfg.seed)
    model = build_classifier(cfg, dataset.num_classes)
    if cfg.init:
        load_pretrained_features(model, cfg.init)
    plan = ClipPlan(dataset.train, D=cfg.D, geometry=geometry(cfg), seed=cfg.seed)
    total = steps_for(cfg, plan.epoch_size)
    groups = [{"params": model.features.parameters(), "base_lr": cfg.lr_conv},
              {"params": model.classifier.parameters(), "base_lr": cfg.lr_fc}]
    optimizer = torch.optim.Adam([{**g, "lr": g["base_lr"]} for g in groups])
    batches = loaders.clip_batches(cfg.loader, plan, cfg.batch_size, workers=cfg.workers, device=cfg.device,
                                   decoders=cfg.decoders)
    scaler = torch.amp.GradScaler(torch.device(cfg.device).type, enabled=cfg.precision == "fp16")
    log = RunLog(run_dir)
    timer = StepTimer(cfg.device)
    loss_sum = torch.zeros((), device=cfg.device)
    correct = torch.zeros((), device=cfg.device, dtype=torch.long)
    seen = 0
    bar = tqdm(range(total), desc="finetune" + (" (scratch)" if not cfg.init else ""),
               disable=not progress, unit="step")
    model.train()
    for step in bar:
        factor = lr_factor(step, total, cfg.warmup)
        for group in optimizer.param_groups:
            group["lr"] = group["base_lr"] * factor
        with timer.waiting():
            batch = next(batches)
        x = single_clips(batch["windows"].to(cfg.device, non_blocking=True), cfg)
        y = batch["label"].to(cfg.device, non_blocking=True)
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
        timer.items += len(y)
        if (step + 1) % cfg.log_every == 0 or step + 1 == total:
            seconds, wait_frac, clips_per_s = timer.close_interval()
            scalars = {"finetune/loss": loss_sum.item() / seen, "finetune/accuracy": correct.item() / seen,
                       "lr": optimizer.param_groups[1]["lr"], "clips_per_s": clips_per_s,
                       "data_wait_fraction": wait_frac}
            log.log(step + 1, **scalars)
            bar.set_postfix(loss=f"{scalars['finetune/loss']:.3f}", acc=f"{scalars['finetune/accuracy']:.2f}",
                            clips_s=f"{clips_per_s:.0f}", wait=f"{wait_frac:.0%}")
            loss_sum.zero_(), correct.zero_()
            seen = 0
        if (step + 1) % cfg.ckpt_every == 0 or step + 1 == total:
            save_checkpoint(run_dir / "checkpoint.pt", kind="classifier", model=model, cfg=cfg,
                            step=step + 1, optimizer=optimizer, classes="\n".join(dataset.classes))
    del batches  # shut the loader's workers down now, not at garbage collection
    log.close()
    return {"steps": total, "checkpoint": str(run_dir / "checkpoint.pt"), "run_dir": str(run_dir)}
