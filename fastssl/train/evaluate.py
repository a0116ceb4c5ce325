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
from fastssl.train.inputs import single_clips
from fastssl.train.pretrain import evaluate_pretext
from fastssl.train.progress import Progress
from fastssl.train.rundir import start_run_dir


@torch.no_grad()
def evaluate_classifier(model, cfg: Config, dataset: VideoDataset, *, progress: bool = True) -> dict:
    model.eval()
    n = dataset.num_classes
    confusion = [[0] * n for _ in range(n)]   # rows: true class, columns: predicted (per video)
    clip_correct = clip_total = video_correct = 0
    per_video = []
    stream = loaders.get(cfg.loader).eval_video_batches(dataset.test, cfg.D, cfg.geometry(),
                                                        device=cfg.device, workers=cfg.workers,
                                                        decoders=cfg.decoders)
    with stream as items, Progress(len(dataset.test), "evaluate", enabled=progress, unit="video") as bar:
        for item in items:
            probs = []
            for chunk in item["clips"].split(cfg.batch_size):  # a long video may have more clips than a batch
                with autocast(cfg):
                    probs.append(model(single_clips(chunk, cfg)).float().softmax(1))
            probs = torch.cat(probs)
            label = int(item["label"])
            clip_correct += (probs.argmax(1) == label).sum().item()
            clip_total += len(probs)
            video_pred = int(probs.mean(0).argmax())
            video_correct += video_pred == label
            confusion[label][video_pred] += 1
            per_video.append({"video": dataset.test[int(item["video"])].rel, "label": label,
                              "pred": video_pred, "clips": len(probs)})
            bar.update()
    return {"clip_accuracy": clip_correct / clip_total, "video_accuracy": video_correct / len(dataset.test),
            "clips": clip_total, "videos": len(dataset.test), "chance": 1.0 / n,
            "classes": list(dataset.classes), "confusion": confusion, "per_video": per_video}


def evaluate(ckpt: Checkpoint, runtime: Config, dataset: VideoDataset, *, progress: bool = True,
             force: bool = False) -> dict:
    """Evaluate a checkpoint read by `checkpoints.read_checkpoint`; model settings come from it,
    runtime ones (device, loader, batch size, data, out) from `runtime`. Writes out/eval.json."""
    cfg = ckpt.runtime_config(runtime)
    out = start_run_dir(runtime.out, runtime, force=force) if runtime.out else None
    if ckpt.kind == "pretext":
        model = build_siamese(cfg)
        model.load_state_dict(ckpt.state["model"])
        result = evaluate_pretext(model, cfg, dataset, progress=progress)
    else:
        if ckpt.classes != dataset.classes:
            raise CheckpointError(f"{ckpt.path}: trained on classes {ckpt.classes[:5]}..., but "
                                  f"{dataset.root} has {dataset.classes[:5]}...")
        model = build_classifier(cfg, len(ckpt.classes))
        model.load_state_dict(ckpt.state["model"])
        result = evaluate_classifier(model, cfg, dataset, progress=progress)
    result = {"kind": ckpt.kind, "checkpoint": ckpt.path, "step": ckpt.step, "split": cfg.split, **result}
    if out is not None:
        tmp = out / "eval.json.tmp"
        tmp.write_text(json.dumps(result, indent=2) + "\n")
        os.replace(tmp, out / "eval.json")
    return result
