"""The training tasks: what differs between pretext training and fine-tuning, and nothing else.

A task says which model to build and how its parameters are grouped, which plan and stream
feed it, how a batch becomes (clips, labels) on the device, what is scored while it trains and
when it ends, and what its checkpoints carry. `run.run(task, ...)` does all the wiring, once,
for every task: adding a task (a backbone, a pretext) is one new class here.
"""
from __future__ import annotations

from typing import Callable

import torch

from fastssl.config import Config
from fastssl.data import loaders
from fastssl.data.dataset import VideoDataset
from fastssl.data.sampling import ClipPlan, PretextPlan
from fastssl.models import build_classifier, build_siamese
from fastssl.train import evaluation
from fastssl.train.clips import geometry, labelled_clips, question_clips
from fastssl.train.distributed import Dist


class Task:
    command: str    # the command that runs it (and Config.command)
    kind: str       # the checkpoint kind it writes
    prefix: str     # its training metrics: <prefix>/loss, <prefix>/accuracy
    batches: str    # the loader-contract function that feeds it: "pretext_batches" | "clip_batches"
    held_out = None  # its held-out monitor class (evaluation.HeldOutQuestions / HeldOutClips)

    def build_model(self, cfg: Config, dataset: VideoDataset) -> torch.nn.Module:
        raise NotImplementedError

    def param_groups(self, model: torch.nn.Module, cfg: Config) -> list[dict]:
        """Adam param groups, each with a `name` (logged as lr/<name>) and its peak `base_lr`."""
        raise NotImplementedError

    def plan(self, cfg: Config, dataset: VideoDataset):
        """The training plan (sampling.py): every random choice of the training stream."""
        raise NotImplementedError

    def stream(self, cfg: Config, plan, *, start_step: int, dist: Dist):
        batches = getattr(loaders.get(cfg.loader), self.batches)
        return batches(plan, cfg.batch_size, device=cfg.device, workers=cfg.workers, decoders=cfg.decoders,
                       start_step=start_step, rank=dist.rank, world_size=dist.world_size)

    def model_inputs(self, batch: dict, cfg: Config) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch -> (model input, labels) on cfg.device."""
        raise NotImplementedError

    def monitor(self, cfg: Config, dataset: VideoDataset) -> Callable[[torch.nn.Module], dict] | None:
        """Held-out scores every cfg.eval_every steps (None: nothing to watch)."""
        if self.held_out is None or not cfg.eval_every or not dataset.test:
            return None
        return self.held_out(cfg, dataset.test)

    def final_scores(self, model: torch.nn.Module, cfg: Config, dataset: VideoDataset, *, last: dict,
                     progress: bool, dist: Dist) -> dict:
        """Scores of the finished run (`last`: the loop's last logged scalars)."""
        return {}

    def checkpoint_extra(self, dataset: VideoDataset) -> dict:
        return {}

    def title(self, cfg: Config) -> str:
        return self.command


class Pretext(Task):
    """Find the one clip of N whose frames are out of order (RP / SS / PB): SiameseNet."""
    command, kind, prefix, batches = "pretrain", "pretext", "pretext", "pretext_batches"
    held_out = evaluation.HeldOutQuestions

    def build_model(self, cfg, dataset):
        return build_siamese(cfg)

    def param_groups(self, model, cfg):
        return [{"params": model.parameters(), "lr": cfg.lr, "base_lr": cfg.lr, "name": "all"}]

    def plan(self, cfg, dataset):
        return PretextPlan(dataset.train, W=cfg.W, D=cfg.D, N=cfg.N, mode=cfg.mode,
                           geometry=geometry(cfg), seed=cfg.seed, train=True)

    def model_inputs(self, batch, cfg):
        return question_clips(batch, cfg)

    def final_scores(self, model, cfg, dataset, *, last, progress, dist):
        return evaluation.pretext_accuracy(model, cfg, dataset.test, progress=progress, dist=dist)

    def title(self, cfg):
        return f"pretrain {cfg.mode}"


class Classify(Task):
    """Action recognition: 3D-AlexNet, new fc layers at lr_fc, (pretrained) convs at lr_conv."""
    command, kind, prefix, batches = "finetune", "classifier", "finetune", "clip_batches"
    held_out = evaluation.HeldOutClips

    def build_model(self, cfg, dataset):
        return build_classifier(cfg, dataset.num_classes)

    def param_groups(self, model, cfg):
        # the backbone (pretrained or not) at lr_conv; everything else (the new head) at lr_fc
        backbone = {id(p) for p in model.features.parameters()}
        head = [p for p in model.parameters() if id(p) not in backbone]
        return [{"params": model.features.parameters(), "lr": cfg.lr_conv, "base_lr": cfg.lr_conv, "name": "conv"},
                {"params": head, "lr": cfg.lr_fc, "base_lr": cfg.lr_fc, "name": "fc"}]

    def plan(self, cfg, dataset):
        return ClipPlan(dataset.train, D=cfg.D, geometry=geometry(cfg), seed=cfg.seed)

    def model_inputs(self, batch, cfg):
        return labelled_clips(batch, cfg)

    def final_scores(self, model, cfg, dataset, *, last, progress, dist):
        if "heldout/clip_accuracy" in last:
            return {"heldout_clip_accuracy": last["heldout/clip_accuracy"]}
        # a run resumed after its last step but before it was scored
        monitor = self.monitor(cfg, dataset) if dist.is_main else None
        return {"heldout_clip_accuracy": monitor(model)["heldout/clip_accuracy"] if monitor else None}

    def checkpoint_extra(self, dataset):
        return {"classes": "\n".join(dataset.classes)}

    def title(self, cfg):
        return "finetune" + ("" if cfg.init or cfg.inflate else " (scratch)")


TASKS: dict[str, Task] = {task.command: task for task in (Pretext(), Classify())}
TASK_OF_KIND: dict[str, Task] = {task.kind: task for task in TASKS.values()}
