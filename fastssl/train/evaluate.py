"""Evaluate a checkpoint on the test split.

Classifier checkpoints: clip accuracy over every non-overlapping D-frame clip of each test video,
and video accuracy from the mean of the clip softmaxes (the paper's protocol).
Pretext checkpoints: accuracy on held-out questions from test videos (fixed seed).
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from tqdm import tqdm

from fastssl.config import RUNTIME_KEYS, Config
from fastssl.data import loaders
from fastssl.data.dataset import VideoDataset
from fastssl.train.common import autocast, load_checkpoint
from fastssl.train.finetune import build_classifier, single_clips
from fastssl.train.pretrain import evaluate_pretext, geometry, load_pretext_model

@torch.no_grad()
def evaluate_classifier(model, cfg: Config, dataset: VideoDataset, *, progress: bool = True) -> dict:
    model.eval()
    clip_correct = clip_total = video_correct = 0
    per_video = []
    batches = loaders.eval_video_batches(cfg.loader, dataset.test, cfg.D, geometry(cfg),
                                         workers=cfg.workers, device=cfg.device,
                                   decoders=cfg.decoders)
    for item in tqdm(batches, total=len(dataset.test), desc="evaluate", disable=not progress, unit="video"):
        clips = item["clips"].to(cfg.device, non_blocking=True)
        probs = []
        for chunk in clips.split(cfg.batch_size):  # a long video may have more clips than a batch
            with autocast(cfg):
                probs.append(model(single_clips(chunk, cfg)).float().softmax(1))
        probs = torch.cat(probs)
        label = int(item["label"])
        clip_correct += (probs.argmax(1) == label).sum().item()
        clip_total += len(probs)
        video_pred = int(probs.mean(0).argmax())
        video_correct += video_pred == label
        per_video.append({"video": dataset.test[int(item["video"])].rel, "label": label,
                          "pred": video_pred, "clips": len(probs)})
    return {"clip_accuracy": clip_correct / clip_total, "video_accuracy": video_correct / len(dataset.test),
            "clips": clip_total, "videos": len(dataset.test), "chance": 1.0 / dataset.num_classes,
            "per_video": per_video}


def evaluate(checkpoint: str, runtime: Config, dataset: VideoDataset, *, progress: bool = True) -> dict:
    """Evaluate `checkpoint`; model settings come from the checkpoint, runtime ones from `runtime`."""
    state = load_checkpoint(checkpoint)
    kind = state.get("kind")
    if kind == "pretext":
        model, cfg, _ = load_pretext_model(checkpoint, runtime)
        result = evaluate_pretext(model, cfg, dataset, progress=progress)
    elif kind == "classifier":
        cfg = Config.load_json(state["config"])
        for key in RUNTIME_KEYS:
            setattr(cfg, key, getattr(runtime, key))
        classes = state["classes"].split("\n")
        if classes != dataset.classes:
            raise ValueError(f"{checkpoint}: trained on classes {classes[:5]}..., but {dataset.root} "
                             f"has {dataset.classes[:5]}...")
        model = build_classifier(cfg, len(classes))
        model.load_state_dict(state["model"])
        result = evaluate_classifier(model, cfg, dataset, progress=progress)
    else:
        raise ValueError(f"{checkpoint}: unknown checkpoint kind {kind!r}")
    result = {"kind": kind, "checkpoint": str(checkpoint), "step": state.get("step"), **result}
    if runtime.out:
        out = Path(runtime.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "eval.json").write_text(json.dumps(result, indent=2) + "\n")
    return result
