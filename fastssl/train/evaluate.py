"""Evaluate a checkpoint on the test split.

Classifier checkpoints: clip accuracy over every non-overlapping D-frame clip of each test video,
and video accuracy from the mean of the clip softmaxes (the paper's protocol), with per-video
predictions and a confusion matrix. Pretext checkpoints: accuracy on held-out questions.
"""
from __future__ import annotations

import json
import os

import torch

from fastssl.config import Config
from fastssl.data import loaders
from fastssl.data.dataset import VideoDataset
from fastssl.models import build_classifier, build_siamese
from fastssl.train.checkpoints import Checkpoint, CheckpointError
from fastssl.train.common import autocast
from fastssl.train.distributed import Dist, gather_objects
from fastssl.train.inputs import shuffled_orders, single_clips
from fastssl.train.pretrain import evaluate_pretext
from fastssl.train.progress import Progress
from fastssl.train.rundir import start_run_dir


@torch.no_grad()
def evaluate_classifier(model, cfg: Config, dataset: VideoDataset, *, progress: bool = True,
                        shuffle_seed: int | None = None, dist: Dist = Dist()) -> dict:
    """Clip and video accuracy; with `shuffle_seed`, the frames of every test clip are shuffled
    (seeded per video) first - the drop in accuracy is how much the model relies on order."""
    model.eval()
    n = dataset.num_classes
    per_video = []
    stream = loaders.get(cfg.loader).eval_video_batches(dataset.test, cfg.D, cfg.geometry(),
                                                        device=cfg.device, workers=cfg.workers,
                                                        decoders=cfg.decoders, rank=dist.rank,
                                                        world_size=dist.world_size)
    mine = len(range(dist.rank, len(dataset.test), dist.world_size))
    with stream as items, Progress(mine, "evaluate", enabled=progress and dist.is_main, unit="video") as bar:
        for item in items:
            probs = []
            clips = item["clips"]
            orders = (shuffled_orders(len(clips), cfg.D, shuffle_seed, int(item["video"]))
                      if shuffle_seed is not None else None)
            for start in range(0, len(clips), cfg.batch_size):  # a long video may have more clips than a batch
                chunk = clips[start:start + cfg.batch_size]
                part = None if orders is None else orders[start:start + cfg.batch_size]
                with autocast(cfg):
                    probs.append(model(single_clips(chunk, cfg, part)).float().softmax(1))
            probs = torch.cat(probs)
            label = int(item["label"])
            per_video.append({"index": int(item["video"]), "video": dataset.test[int(item["video"])].rel,
                              "label": label, "pred": int(probs.mean(0).argmax()), "clips": len(probs),
                              "correct_clips": int((probs.argmax(1) == label).sum())})
            bar.update()
    # every rank scored its own videos: put them together, each test video exactly once
    per_video = sorted((v for part in gather_objects(per_video, dist) for v in part), key=lambda v: v["index"])
    confusion = [[0] * n for _ in range(n)]   # rows: true class, columns: predicted (per video)
    for v in per_video:
        confusion[v["label"]][v["pred"]] += 1
    clips = sum(v["clips"] for v in per_video)
    return {"clip_accuracy": sum(v["correct_clips"] for v in per_video) / clips,
            "video_accuracy": sum(v["pred"] == v["label"] for v in per_video) / len(per_video),
            "clips": clips, "videos": len(per_video), "chance": 1.0 / n,
            "classes": list(dataset.classes), "confusion": confusion, "per_video": per_video}


def evaluate(ckpt: Checkpoint, runtime: Config, dataset: VideoDataset, *, progress: bool = True,
             force: bool = False, shuffle_seed: int | None = None, dist: Dist = Dist()) -> dict:
    """Evaluate a checkpoint read by `checkpoints.read_checkpoint`; model settings come from it,
    runtime ones (device, loader, batch size, data, out) from `runtime`. Writes out/eval.json."""
    cfg = ckpt.runtime_config(runtime)
    out = start_run_dir(runtime.out, runtime, force=force) if runtime.out and dist.is_main else None
    if ckpt.kind == "pretext":
        model = build_siamese(cfg)
        model.load_state_dict(ckpt.state["model"])
        result = evaluate_pretext(model, cfg, dataset, progress=progress, dist=dist)
    else:
        if ckpt.classes != dataset.classes:
            raise CheckpointError(f"{ckpt.path}: trained on classes {ckpt.classes[:5]}..., but "
                                  f"{dataset.root} has {dataset.classes[:5]}...")
        model = build_classifier(cfg, len(ckpt.classes))
        model.load_state_dict(ckpt.state["model"])
        result = evaluate_classifier(model, cfg, dataset, progress=progress, shuffle_seed=shuffle_seed,
                                     dist=dist)
        if shuffle_seed is not None:
            result["shuffled_frames_seed"] = shuffle_seed
    result = {"kind": ckpt.kind, "checkpoint": ckpt.path, "step": ckpt.step, "split": cfg.split, **result}
    if out is not None:
        tmp = out / "eval.json.tmp"
        tmp.write_text(json.dumps(result, indent=2) + "\n")
        os.replace(tmp, out / "eval.json")
    return result
