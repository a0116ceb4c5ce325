"""Fine-tune 3D-AlexNet for action recognition, from a pretext checkpoint or from scratch.

    fastssl finetune --data DATA --init runs/rp/checkpoint.pt --out runs/rp-ft

conv1..pool3 come from the pretext checkpoint; fc1..fc3 are new. Two learning rates, as in the
paper: `lr_fc` (1e-3) for the new fc layers, `lr_conv` (1e-4) for the pretrained convolutions.
Every `eval_every` steps the loop scores a fixed set of held-out clips (monitoring only), so
over-fitting shows while it happens.
"""
from __future__ import annotations

import math

import torch

from fastssl.config import Config
from fastssl.data import loaders
from fastssl.data.dataset import VideoDataset
from fastssl.data.sampling import ClipPlan
from fastssl.models import build_classifier
from fastssl.models.inflate import inflate_from_file
from fastssl.train.checkpoints import Checkpoint, checkpoint_for_init, load_features
from fastssl.train.common import RunLog, autocast, seed_everything, set_deterministic
from fastssl.train.inputs import labelled_clips, single_clips
from fastssl.train.distributed import Dist, data_parallel
from fastssl.train.loop import TrainState, restore, train_steps
from fastssl.train.rundir import prepare_run_dir

# The monitoring set: at most this many held-out clips and this many bytes of uint8 frames.
MONITOR_CLIPS = 512
MONITOR_BYTES = 256 << 20
MONITOR_SEED = 20240602


def finetune(cfg: Config, dataset: VideoDataset, *, progress: bool = True, force: bool = False,
             resume: Checkpoint | None = None, report=print, dist: Dist = Dist()) -> dict:
    run_dir = prepare_run_dir(cfg, resume=resume, force=force, dist=dist)
    set_deterministic(cfg.deterministic)
    seed_everything(cfg.seed)
    model = build_classifier(cfg, dataset.num_classes)
    if cfg.init and resume is None:
        load_features(model, checkpoint_for_init(cfg.init, cfg))
    if cfg.inflate and resume is None:
        inflate_from_file(model.features, cfg.inflate)
    plan = ClipPlan(dataset.train, D=cfg.D, geometry=cfg.geometry(), seed=cfg.seed)
    total = cfg.total_steps(plan.epoch_size)
    optimizer = torch.optim.Adam([
        {"params": model.features.parameters(), "lr": cfg.lr_conv, "base_lr": cfg.lr_conv, "name": "conv"},
        {"params": model.classifier.parameters(), "lr": cfg.lr_fc, "base_lr": cfg.lr_fc, "name": "fc"}])
    scaler = torch.amp.GradScaler(torch.device(cfg.device).type, enabled=cfg.precision == "fp16")
    start = restore(resume, model, optimizer, scaler, cfg.device) if resume else TrainState()
    monitor = (HeldOutClips(cfg, dataset) if cfg.eval_every and dataset.test and start.step < total
               and dist.is_main else None)
    log = RunLog(run_dir, resume_step=start.step if resume else None) if dist.is_main else None
    last = {}
    try:
        if start.step < total:
            with loaders.get(cfg.loader).clip_batches(
                    plan, cfg.batch_size, device=cfg.device, workers=cfg.workers, decoders=cfg.decoders,
                    start_step=start.step, rank=dist.rank, world_size=dist.world_size) as batches:
                last = train_steps(cfg, model=data_parallel(model, cfg, dist), optimizer=optimizer,
                                   batches=batches, total=total,
                                   inputs=labelled_clips, kind="classifier", prefix="finetune",
                                   run_dir=run_dir, log=log, videos=plan.videos, scaler=scaler,
                                   start=start, checkpoint_extra={"classes": "\n".join(dataset.classes)},
                                   monitor=monitor, progress=progress, report=report,
                                   desc="finetune" + ("" if cfg.init else " (scratch)"), dist=dist)
    finally:
        if log is not None:
            log.close()
    return {"steps": total, "checkpoint": str(run_dir / "checkpoint.pt"), "run_dir": str(run_dir),
            "heldout_clip_accuracy": last.get("heldout/clip_accuracy")}


class HeldOutClips:
    """A fixed set of held-out clips (test videos, centre crops, a fixed seed) scored during
    fine-tuning. Decoded once, from its own plan: it never touches the training stream or RNG."""

    def __init__(self, cfg: Config, dataset: VideoDataset):
        clip_bytes = cfg.D * cfg.size * cfg.size * 3
        want = max(1, min(MONITOR_CLIPS, MONITOR_BYTES // clip_bytes, len(dataset.test) * 4))
        plan = ClipPlan(dataset.test, D=cfg.D, geometry=cfg.geometry(), seed=MONITOR_SEED, train=False)
        batch = min(cfg.batch_size, want)
        windows, labels = [], []
        with loaders.get(cfg.loader).clip_batches(plan, batch, device=cfg.device, workers=0,
                                                  decoders=cfg.decoders) as batches:
            for _ in range(math.ceil(want / batch)):
                b = next(batches)
                windows.append(b["windows"].clone())
                labels.append(b["label"].clone())
        self.windows = torch.cat(windows)[:want]
        self.labels = torch.cat(labels)[:want].to(cfg.device)
        self.cfg = cfg

    @torch.no_grad()
    def __call__(self, model: torch.nn.Module) -> dict:
        model.eval()
        correct = 0
        for chunk, labels in zip(self.windows.split(self.cfg.batch_size), self.labels.split(self.cfg.batch_size)):
            with autocast(self.cfg):
                correct += (model(single_clips(chunk, self.cfg)).argmax(1) == labels).sum().item()
        model.train()
        return {"heldout/clip_accuracy": correct / len(self.labels)}
