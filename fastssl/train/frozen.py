"""Frozen-feature evaluation: how good are the conv features a pretext trains, without fine-tuning.

The standard of self-supervised video papers, two scores on the same features:

Features. conv1..pool3 of 3D-AlexNet (a model's `.features`, in eval mode, so BatchNorm uses its
running statistics), global-average-pooled over (T, H, W) to one vector per clip, then
L2-normalised. Clips: every non-overlapping D-frame clip of every video (starts 0, D, 2D, ...),
centre crop, no flip (the loaders' `eval_videos` stream), for the training and the test split.

Retrieval (VCOP's protocol, Xu et al. 2019). Each test clip queries every training clip by cosine
similarity (a dot product of the normalised vectors); top-k accuracy is the fraction of test clips
for which at least one of the k most similar training clips has the test clip's class, for k in
RETRIEVAL_K, k capped at the number of training clips. Ties are broken by `torch.topk`.

Linear probe. Multinomial logistic regression on the training clips' features, scored on the test
clips. Every choice is fixed, so a score depends on the features alone:
- inputs standardised per dimension with the training clips' mean and standard deviation (the
  normalised vectors all lie in one orthant and differ in small components; unscaled, the L2
  weight below would mean something different for every model). A dimension constant over the
  training clips gets weight exactly 0;
- one Linear layer (weights and bias) started at zero: the loss is strictly convex, so there is one
  optimum and no random draw; no seed is needed, and the same features give the same numbers;
- loss: mean cross entropy + PROBE_L2 / 2 * ||weights||^2 (the bias is not penalised); the
  penalty keeps the optimum finite when the training clips are separable;
- full batch, L-BFGS (strong Wolfe line search, history PROBE_HISTORY) for at most
  PROBE_ITERATIONS iterations, stopping earlier at torch's tolerances (gradient 1e-7, change
  of loss or step 1e-9), in fp32, on the device;
- clip accuracy: argmax per test clip; video accuracy: argmax of the mean of a video's clip
  softmaxes (as `evaluate` scores a classifier).
`chance` is 1 / number of classes.

Features stay on the device while clips are encoded; the scores are read back once at the end
(only L-BFGS's line search reads a loss value back per step, after encoding is done). One process
only: under torchrun the CLI refuses --frozen.
"""
from __future__ import annotations

import json
from typing import Sequence

import torch
import torch.nn.functional as F

from fastssl.config import Config
from fastssl.data import loaders
from fastssl.data.dataset import Video, VideoDataset
from fastssl.files import atomic_write
from fastssl.models.build import build_features
from fastssl.train.checkpoints import Checkpoint, features_of
from fastssl.train.evaluation import clips_in_batches
from fastssl.train.clips import geometry, single_clips
from fastssl.train.precision import autocast
from fastssl.train.progress import Progress
from fastssl.train.rundir import start_run_dir

RETRIEVAL_K = (1, 5, 10, 20, 50)
PROBE_L2 = 1e-3
PROBE_ITERATIONS = 500
PROBE_HISTORY = 20
# Similarity rows per retrieval chunk: at most this many fp32 similarities in memory at once.
SIMILARITY_BUDGET = 64 << 20

SETTINGS = {
    "features": "conv1..pool3, global average pool over (T, H, W), L2-normalised",
    "clips": "every non-overlapping D-frame clip of every video, centre crop, no flip",
    "retrieval": "cosine similarity, each test clip queries all training clips",
    "probe": {"model": "linear (multinomial logistic regression), zero init",
              "inputs": "standardised with the training clips' mean and std",
              "optimizer": "L-BFGS, full batch, strong Wolfe", "max_iterations": PROBE_ITERATIONS,
              "history": PROBE_HISTORY, "l2": PROBE_L2},
}


def random_features(cfg: Config, seed: int) -> torch.nn.Module:
    """A freshly initialised conv1..pool3 (the "random init" row), seeded: the same seed gives
    the same weights. The global RNG is left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        features = build_features(cfg)
    return features.to(cfg.device, memory_format=torch.channels_last_3d)


@torch.no_grad()
def clip_features(features: torch.nn.Module, cfg: Config, videos: Sequence[Video], *,
                  progress: bool = True, what: str = "clips") -> tuple[torch.Tensor, torch.Tensor]:
    """Every non-overlapping D-frame clip of `videos` -> (features (n, C) fp32, L2-normalised, on
    the device; the video index of each row (n,), on the device), rows in video order. Forward
    passes take `cfg.batch_size` clips, gathered across videos. `features` runs in eval mode (in
    training mode BatchNorm would normalise by each batch and update its running statistics) and
    is left in the mode it came in."""
    was_training = features.training
    features.eval()
    try:
        return _clip_features(features, cfg, videos, progress=progress, what=what)
    finally:
        features.train(was_training)


def _clip_features(features, cfg, videos, *, progress, what):
    stream = loaders.get(cfg.loader).eval_videos(videos, cfg.D, geometry(cfg), device=cfg.device,
                                                  workers=cfg.workers, decoders=cfg.decoders)
    parts: list[torch.Tensor] = []
    owners: list[int] = []       # the video of each clip, known from the stream's order
    with stream as items, Progress(len(videos), f"frozen features ({what})", enabled=progress,
                                   unit="video") as bar:
        def counted(items):
            for item in items:
                yield item
                bar.update()
        for clips, _, owned in clips_in_batches(counted(items), list(range(len(videos))), cfg.D,
                                                cfg.batch_size, None):
            with autocast(cfg):
                out = features(single_clips(clips, cfg))
            pooled = out.float() if out.dim() == 2 else out.float().mean((2, 3, 4))  # ResNets pool already
            parts.append(F.normalize(pooled, dim=1))
            owners += [v for v, _, rows in owned for _ in range(rows)]
    if not parts:
        raise ValueError("no clips to encode: the video list is empty")
    return torch.cat(parts), torch.tensor(owners, device=parts[0].device)


def retrieval_hits(queries: torch.Tensor, query_labels: torch.Tensor, keys: torch.Tensor,
                   key_labels: torch.Tensor, ks: Sequence[int] = RETRIEVAL_K) -> torch.Tensor:
    """How many queries find their class among their k most similar keys, for each k in `ks`
    (capped at the number of keys): a (len(ks),) count tensor on the device. Vectors must be
    L2-normalised (the dot product is then the cosine similarity)."""
    capped = [min(k, len(keys)) for k in ks]
    deepest = max(capped)
    hits = torch.zeros(len(ks), dtype=torch.long, device=queries.device)
    where = torch.tensor([k - 1 for k in capped], device=queries.device)
    rows = max(1, SIMILARITY_BUDGET // max(1, len(keys)))
    for q, ql in zip(queries.split(rows), query_labels.split(rows)):
        nearest = (q @ keys.T).topk(deepest, dim=1).indices
        found = (key_labels[nearest] == ql[:, None]).int().cummax(dim=1).values  # found by rank j
        hits += found[:, where].sum(0)
    return hits


def fit_probe(x: torch.Tensor, y: torch.Tensor, num_classes: int) -> torch.nn.Linear:
    """The linear probe (module docstring) fitted on features `x` (n, C) and labels `y` (n,):
    one Linear layer with the standardisation folded in, so it takes the features as they are."""
    x = x.float()
    mean = x.mean(0)
    std = x.std(0, unbiased=False)
    std = torch.where(std > 0, std, torch.ones_like(std))  # constant dims: z = 0, so weight 0
    z = (x - mean) / std
    probe = torch.nn.Linear(x.shape[1], num_classes, device=x.device)
    with torch.no_grad():
        probe.weight.zero_()
        probe.bias.zero_()
    optimizer = torch.optim.LBFGS(probe.parameters(), lr=1, max_iter=PROBE_ITERATIONS,
                                  history_size=PROBE_HISTORY, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = F.cross_entropy(probe(z), y) + PROBE_L2 / 2 * probe.weight.square().sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    with torch.no_grad():  # logits = ((x - mean) / std) W^T + b = x (W / std)^T + (b - (mean / std) W^T)
        weight = probe.weight / std
        probe.bias -= (mean / std) @ probe.weight.T
        probe.weight.copy_(weight)
    return probe.requires_grad_(False)


def probe_hits(probe: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, video: torch.Tensor,
               video_labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(correct clips, correct videos) of `probe` on clips `x` with labels `y`; `video` (n,) is
    each clip's video (0..V-1), `video_labels` (V,) their classes. Count tensors on the device."""
    with torch.no_grad():
        probs = probe(x.float()).softmax(1)
        per_video = torch.zeros(len(video_labels), probs.shape[1], device=probs.device)
        per_video.index_add_(0, video, probs)  # the sum: its argmax is the mean's
        return (probs.argmax(1) == y).sum(), (per_video.argmax(1) == video_labels).sum()


@torch.no_grad()
def frozen_scores(features: torch.nn.Module, cfg: Config, dataset: VideoDataset, *,
                  progress: bool = True) -> dict:
    """Retrieval top-k and linear-probe accuracies of `features` (a model's conv1..pool3) on
    dataset.test, learnt from dataset.train (module docstring). `features` is in eval mode while
    scoring and left in the mode it came in."""
    train_x, train_video = clip_features(features, cfg, dataset.train, progress=progress, what="train")
    test_x, test_video = clip_features(features, cfg, dataset.test, progress=progress, what="test")
    device = train_x.device
    train_labels = torch.tensor([v.label for v in dataset.train], device=device)
    test_labels = torch.tensor([v.label for v in dataset.test], device=device)
    train_y, test_y = train_labels[train_video], test_labels[test_video]
    retrieved = retrieval_hits(test_x, test_y, train_x, train_y)
    probe = fit_probe(train_x, train_y, dataset.num_classes)
    clip_right, video_right = probe_hits(probe, test_x, test_y, test_video, test_labels)
    counts = torch.cat([retrieved, clip_right[None], video_right[None]]).tolist()  # the one read-back
    n_test = len(test_x)
    scores = {f"retrieval_top{k}": hits / n_test for k, hits in zip(RETRIEVAL_K, counts)}
    scores.update(probe_clip_accuracy=counts[-2] / n_test,
                  probe_video_accuracy=counts[-1] / len(dataset.test), train_clips=len(train_x), test_clips=n_test, chance=1.0 / dataset.num_classes)
    return scores


def checkpoint_features(ckpt: Checkpoint, cfg: Config) -> torch.nn.Module:
    """conv1..pool3 of a pretext or classifier checkpoint (both models keep them in `.features`),
    on cfg.device in channels_last_3d."""
    features = build_features(ckpt.config)
    features.load_state_dict(features_of(ckpt))
    return features.to(cfg.device, memory_format=torch.channels_last_3d)


def evaluate_frozen(ckpt: Checkpoint, runtime: Config, dataset: VideoDataset, *, progress: bool = True,
                    force: bool = False) -> dict:
    """`fastssl evaluate --frozen`: frozen_scores of a checkpoint's conv1..pool3 -> out/eval.json.
    Model settings come from the checkpoint, runtime ones (device, loader, batch size, data, out)
    from `runtime`."""
    cfg = ckpt.runtime_config(runtime)
    out = start_run_dir(runtime.out, runtime, force=force) if runtime.out else None
    features = checkpoint_features(ckpt, cfg)
    if cfg.compile:
        features = torch.compile(features)
    scores = frozen_scores(features, cfg, dataset, progress=progress)
    result = {"kind": "frozen", "checkpoint": ckpt.path, "checkpoint_kind": ckpt.kind, "step": ckpt.step,
              "split": cfg.split, **scores, "train_videos": len(dataset.train),
              "test_videos": len(dataset.test), "classes": list(dataset.classes),
              "settings": {**SETTINGS, "retrieval_k": list(RETRIEVAL_K), "clip_length": cfg.D,
                           "size": cfg.size}}
    if out is not None:
        atomic_write(out / "eval.json", json.dumps(result, indent=2) + "\n")
    return result

