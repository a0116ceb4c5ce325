"""Every score fastssl reports, in one place: held-out pretext questions, the held-out clips
watched during fine-tuning, per-video clip/video accuracy (optionally with the frames of every
clip shuffled), and `evaluate`, which scores a checkpoint and writes eval.json.

Scores stay on the device while they are counted and are read back once per call (or once per
forward, where a progress bar needs it), so scoring runs at the speed of the forward passes.
"""
from __future__ import annotations

import json
import math
from typing import Sequence

import numpy as np
import torch

from fastssl.config import Config
from fastssl.data import loaders
from fastssl.data.dataset import Video, VideoDataset
from fastssl.data.sampling import ClipPlan, PretextPlan
from fastssl.files import atomic_write
from fastssl.train.checkpoints import Checkpoint
from fastssl.train.clips import geometry, question_clips, single_clips
from fastssl.train.distributed import Dist, gather_objects, host_sum, sync_buffers
from fastssl.train.precision import autocast
from fastssl.train.progress import Progress
from fastssl.train.rundir import start_run_dir

# Held-out questions and monitoring clips use fixed seeds, not the run's: every run is scored
# on the same questions and clips.
EVAL_SEED = 20240601
MONITOR_SEED = 20240602
# The monitors: at most this many held-out clips (fine-tuning) or questions (pretext), and this
# many bytes of uint8 frames.
MONITOR_CLIPS = 512
MONITOR_QUESTIONS = 192
MONITOR_BYTES = 256 << 20


@torch.no_grad()
def pretext_accuracy(model: torch.nn.Module, cfg: Config, videos: Sequence[Video], *,
                     progress: bool = True, dist: Dist = Dist()) -> dict:
    """Accuracy on held-out questions: `videos` (the test split), centre crops, fixed seed,
    `cfg.eval_questions` questions per video. Under data parallelism each rank answers its
    slice of every batch and the counts are summed: every question is counted exactly once."""
    plan = PretextPlan(videos, W=cfg.W, D=cfg.D, N=cfg.N, mode=cfg.mode, geometry=geometry(cfg),
                       seed=EVAL_SEED, train=False)
    total = plan.epoch_size * cfg.eval_questions
    batch = cfg.batch_size - cfg.batch_size % dist.world_size or dist.world_size
    per_rank = batch // dist.world_size
    sync_buffers(model, dist)
    model.eval()
    correct = torch.zeros((), dtype=torch.long, device=cfg.device)
    seen = 0
    steps = math.ceil(total / batch)
    with loaders.get(cfg.loader).pretext_batches(plan, batch, device=cfg.device, workers=cfg.workers,
                                                 decoders=cfg.decoders, rank=dist.rank,
                                                 world_size=dist.world_size) as batches, \
            Progress(steps, "held-out questions", enabled=progress and dist.is_main, unit="batch") as bar:
        for step in range(steps):
            x, y = question_clips(next(batches), cfg)
            with autocast(cfg):
                pred = model(x).argmax(1)
            # this rank's questions are positions step*batch + rank*per_rank + j; the stream runs
            # on past `total`, so cut it there
            first = step * batch + dist.rank * per_rank
            keep = max(0, min(per_rank, total - first))
            correct += (pred[:keep] == y[:keep]).sum()
            seen += keep
            bar.update()
    model.train()
    correct, seen = host_sum([correct.item(), seen], dist)
    return {"pretext_accuracy": correct / seen, "questions": int(seen), "chance": 1.0 / cfg.N}


class HeldOutClips:
    """A fixed set of held-out clips (test videos, centre crops, a fixed seed) scored during
    fine-tuning. Decoded once, from its own plan: it never touches the training stream or RNG."""

    def __init__(self, cfg: Config, videos: Sequence[Video]):
        clip_bytes = cfg.D * cfg.size * cfg.size * 3
        want = max(1, min(MONITOR_CLIPS, MONITOR_BYTES // clip_bytes, len(videos) * 4))
        plan = ClipPlan(videos, D=cfg.D, geometry=geometry(cfg), seed=MONITOR_SEED, train=False)
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
        correct = torch.zeros((), dtype=torch.long, device=self.labels.device)
        for chunk, labels in zip(self.windows.split(self.cfg.batch_size), self.labels.split(self.cfg.batch_size)):
            with autocast(self.cfg):
                correct += (model(single_clips(chunk, self.cfg)).argmax(1) == labels).sum()
        model.train()
        return {"heldout/clip_accuracy": correct.item() / len(self.labels)}


class HeldOutQuestions:
    """A fixed set of held-out pretext questions (test videos, centre crops, a fixed seed) scored
    during pretext training, so the learning curve shows where the plateau ends. Decoded once,
    from its own plan: it never touches the training stream or RNG. The final score on every
    held-out question is `pretext_accuracy`."""

    def __init__(self, cfg: Config, videos: Sequence[Video]):
        window_bytes = cfg.W * cfg.size * cfg.size * 3
        want = max(1, min(MONITOR_QUESTIONS, MONITOR_BYTES // window_bytes, len(videos) * cfg.eval_questions))
        plan = PretextPlan(videos, W=cfg.W, D=cfg.D, N=cfg.N, mode=cfg.mode, geometry=geometry(cfg),
                           seed=MONITOR_SEED, train=False)
        batch = min(cfg.batch_size, want)
        parts = []
        with loaders.get(cfg.loader).pretext_batches(plan, batch, device=cfg.device, workers=0,
                                                     decoders=cfg.decoders) as batches:
            for _ in range(math.ceil(want / batch)):
                b = next(batches)
                parts.append({k: b[k].clone() for k in ("windows", "starts", "orders", "label")})
        self.batches = [{k: torch.cat([p[k] for p in parts])[:want][i:i + cfg.batch_size] for k in parts[0]}
                        for i in range(0, want, cfg.batch_size)]
        self.count, self.cfg = want, cfg

    @torch.no_grad()
    def __call__(self, model: torch.nn.Module) -> dict:
        model.eval()
        correct = torch.zeros((), dtype=torch.long, device=self.cfg.device)
        for batch in self.batches:
            x, y = question_clips(batch, self.cfg)
            with autocast(self.cfg):
                correct += (model(x).argmax(1) == y).sum()
        model.train()
        return {"heldout/question_accuracy": correct.item() / self.count}


def shuffled_orders(clips: int, D: int, seed: int, video: int) -> torch.Tensor:
    """(clips, 1, D) random frame orders for the clips of one test video, from (seed, video):
    the same shuffle whatever the batch size, loader or number of ranks."""
    rng = np.random.default_rng([seed, video])
    return torch.from_numpy(np.stack([rng.permutation(D) for _ in range(clips)])[:, None, :])


def clips_in_batches(items, mine: list[int], D: int, batch_size: int, shuffle_seed: int | None):
    """Regroup one-video items into forward batches of up to `batch_size` clips from as many
    videos as fit -> (clips, orders or None, [(video, first row, rows)]). The stream yields this
    rank's videos in `mine` order, so each item's video is known without reading its tensors."""
    clips, orders, owners, rows = [], [], [], 0
    for v, item in zip(mine, items):
        k = len(item["clips"])
        start = 0
        while start < k:
            take = min(k - start, batch_size - rows)
            clips.append(item["clips"][start:start + take])
            if shuffle_seed is not None:
                orders.append(shuffled_orders(k, D, shuffle_seed, v)[start:start + take])
            owners.append((v, rows, take))
            rows += take
            start += take
            if rows == batch_size:
                yield torch.cat(clips), (torch.cat(orders) if orders else None), owners
                clips, orders, owners, rows = [], [], [], 0
    if rows:
        yield torch.cat(clips), (torch.cat(orders) if orders else None), owners


@torch.no_grad()
def classify_videos(model: torch.nn.Module, cfg: Config, videos: Sequence[Video], *,
                    shuffle_seed: int | None = None, progress: bool = True, dist: Dist = Dist()) -> list[dict]:
    """Every non-overlapping D-frame clip of each test video -> per video: the mean of its clip
    softmaxes' argmax (`pred`), its clip count and correct clips. With `shuffle_seed` the frames
    of every clip are shuffled (seeded per video) first. Each rank scores videos rank, rank+R, ...;
    the result holds every video once, in index order."""
    model.eval()
    mine = list(range(dist.rank, len(videos), dist.world_size))
    probs: dict[int, list[torch.Tensor]] = {}
    done: list[tuple[int, torch.Tensor, torch.Tensor, int]] = []   # video, pred, correct, clips
    remaining = {v: None for v in mine}
    stream = loaders.get(cfg.loader).eval_videos(videos, cfg.D, geometry(cfg), device=cfg.device,
                                                  workers=cfg.workers, decoders=cfg.decoders,
                                                  rank=dist.rank, world_size=dist.world_size)
    with stream as items, Progress(len(mine), "evaluate", enabled=progress and dist.is_main, unit="video") as bar:
        def counted(items):
            for v, item in zip(mine, items):
                remaining[v] = len(item["clips"])
                yield item
        for clips, orders, owners in clips_in_batches(counted(items), mine, cfg.D, cfg.batch_size, shuffle_seed):
            with autocast(cfg):
                p = model(single_clips(clips, cfg, orders)).float().softmax(1)
            for v, first, rows in owners:
                probs.setdefault(v, []).append(p[first:first + rows])
                remaining[v] -= rows
                if remaining[v] == 0:
                    video_probs = torch.cat(probs.pop(v))
                    label = videos[v].label
                    done.append((v, video_probs.mean(0).argmax(), (video_probs.argmax(1) == label).sum(),
                                 len(video_probs)))
                    bar.update()
    # one read-back for all of this rank's videos
    preds = torch.stack([d[1] for d in done]).tolist() if done else []
    correct = torch.stack([d[2] for d in done]).tolist() if done else []
    per_video = [{"index": v, "video": videos[v].rel, "label": videos[v].label, "pred": pred,
                  "clips": n, "correct_clips": right}
                 for (v, _, _, n), pred, right in zip(done, preds, correct)]
    model.train()
    return sorted((v for part in gather_objects(per_video, dist) for v in part), key=lambda v: v["index"])


def video_scores(per_video: list[dict], classes: Sequence[str]) -> dict:
    """Clip and video accuracy, and the per-video confusion matrix (rows: true class)."""
    n = len(classes)
    confusion = [[0] * n for _ in range(n)]
    for v in per_video:
        confusion[v["label"]][v["pred"]] += 1
    clips = sum(v["clips"] for v in per_video)
    return {"clip_accuracy": sum(v["correct_clips"] for v in per_video) / clips,
            "video_accuracy": sum(v["pred"] == v["label"] for v in per_video) / len(per_video),
            "clips": clips, "videos": len(per_video), "chance": 1.0 / n,
            "classes": list(classes), "confusion": confusion, "per_video": per_video}


def evaluate(ckpt: Checkpoint, runtime: Config, dataset: VideoDataset, *, progress: bool = True,
             force: bool = False, shuffle_seed: int | None = None, dist: Dist = Dist()) -> dict:
    """Score a checkpoint read by `checkpoints.read_checkpoint` on the test split; model settings
    come from it, runtime ones (device, loader, batch size, data, out) from `runtime`. Writes
    out/eval.json (rank 0)."""
    from fastssl.train.tasks import TASK_OF_KIND
    cfg = ckpt.runtime_config(runtime)
    out = start_run_dir(runtime.out, runtime, force=force) if runtime.out and dist.is_main else None
    model = TASK_OF_KIND[ckpt.kind].build_model(cfg, dataset)
    model.load_state_dict(ckpt.state["model"])
    if cfg.compile:
        model = torch.compile(model)
    if ckpt.kind == "pretext":
        result = pretext_accuracy(model, cfg, dataset.test, progress=progress, dist=dist)
    else:
        per_video = classify_videos(model, cfg, dataset.test, shuffle_seed=shuffle_seed, progress=progress,
                                    dist=dist)
        result = video_scores(per_video, dataset.classes)
        if shuffle_seed is not None:
            result["shuffled_frames_seed"] = shuffle_seed
    result = {"kind": ckpt.kind, "checkpoint": ckpt.path, "step": ckpt.step, "split": cfg.split, **result}
    if out is not None:
        atomic_write(out / "eval.json", json.dumps(result, indent=2) + "\n")
    return result
