"""The baseline: the video loader people write today, for the same questions as fastssl's.

A torch DataLoader whose workers, per question,
    open the file with PyAV, seek to the keyframe before the window, decode forward,
    convert every frame with `frame.to_ndarray(format="rgb24")` (full size, a fresh converter
    per frame: what the PyAV docs show),
    resize on the CPU with torch (uint8 bilinear + antialias: what torchvision's v2 Resize runs
    on uint8 tensors - converting to float first is several times slower, bench/RESULTS.md),
    crop and flip,
    build the N normalized float32 clips (C, D, H, W) in the worker,
and the main process moves the float clips to the device (pinned when on CUDA).

It is honest, not strawman code: no per-frame Python work beyond the decode loop, the fast
uint8 resize path, and the same decoder settings as fastssl's own PyAV decoder (no extra
threads for either). What fastssl does differently: one reused swscale context that converts
and resizes in one pass from YUV, open files kept open, and uint8 windows (not 2.4x as many
float32 clip frames) handed to the device, where the clip builder expands them.

The windows, crops, flips and questions come from the same `PretextPlan` and key stream as
fastssl's loaders, so both decode exactly the same frames.
"""
from __future__ import annotations

import time
from typing import Sequence

import av
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from fastssl.data.contract import BatchStream
from fastssl.data.dataset import Video
from fastssl.data.sampling import PretextPlan, Window, stream_keys


def read_frames(path: str, start: int, length: int, fps: float,
                timings: dict[str, float] | None = None) -> list[np.ndarray]:
    """Frames [start, start+length) as full-size RGB uint8 arrays, the usual PyAV way.
    `timings`: as WindowDecoder's (seconds per stage added to it: open, seek, decode, convert)."""
    t = time.perf_counter() if timings is not None else 0.0
    with av.open(path) as container:
        stream = container.streams.video[0]
        if timings is not None:
            t = _lap(timings, "open", t)
        container.seek(int(start / fps / stream.time_base), stream=stream)  # keyframe before
        if timings is not None:
            t = _lap(timings, "seek", t)
        frames = []
        for frame in container.decode(stream):
            if timings is not None:
                t = _lap(timings, "decode", t)
            index = int(round(frame.time * fps))
            if index < start:
                continue
            frames.append(frame.to_ndarray(format="rgb24"))
            if timings is not None:
                t = _lap(timings, "convert", t)
            if len(frames) == length:
                return frames
    raise RuntimeError(f"{path}: ends before frame {start + length - 1}")


def _lap(timings: dict[str, float], stage: str, t0: float) -> float:
    t1 = time.perf_counter()
    timings[stage] = timings.get(stage, 0.0) + (t1 - t0)
    return t1


def resize_crop_flip(frames: list[np.ndarray], window: Window, resize: tuple[int, int]) -> torch.Tensor:
    """list of (H, W, 3) uint8 -> uint8 (T, 3, size, size): resize to `resize`, crop, flip."""
    x = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2)          # T, 3, H, W
    x = F.interpolate(x, size=resize, mode="bilinear", antialias=True, align_corners=False)
    s = window.size
    x = x[:, :, window.top:window.top + s, window.left:window.left + s]
    return x.flip(-1) if window.flip else x


def make_clips(x: torch.Tensor, starts: np.ndarray, orders: np.ndarray, mean: torch.Tensor,
               std: torch.Tensor) -> torch.Tensor:
    """uint8 (T, 3, s, s) + a question -> float32 (N, 3, D, s, s), normalized."""
    clips = []
    for start, order in zip(starts, orders):
        clip = x[torch.from_numpy(start + order)]                         # D, 3, s, s
        clips.append((clip.permute(1, 0, 2, 3).float() - mean) / std)    # 3, D, s, s
    return torch.stack(clips)


def question_clips(video: Video, window: Window, q, resize: tuple[int, int], mean: torch.Tensor,
                   std: torch.Tensor) -> torch.Tensor:
    """One question, the whole per-sample work of a baseline worker -> float32 (N, 3, D, s, s)."""
    frames = read_frames(video.path, window.start, window.length, video.fps)
    return make_clips(resize_crop_flip(frames, window, resize), q.starts, q.orders, mean, std)


def normalization(mean: Sequence[float], std: Sequence[float]) -> tuple[torch.Tensor, torch.Tensor]:
    """mean and std as float32 (3, 1, 1, 1), the shape make_clips takes."""
    return (torch.tensor(mean, dtype=torch.float32).view(3, 1, 1, 1),
            torch.tensor(std, dtype=torch.float32).view(3, 1, 1, 1))


class BaselineQuestions(Dataset):
    """(epoch, index) -> {"clips": float32 (N, 3, D, s, s), "label", "video"}."""

    def __init__(self, plan: PretextPlan, mean: Sequence[float], std: Sequence[float]):
        self.plan = plan
        self.mean, self.std = normalization(mean, std)

    def __len__(self):
        return self.plan.epoch_size

    def __getitem__(self, key):
        epoch, i = key
        window, q = self.plan.sample(epoch, i)
        clips = question_clips(self.plan.videos[window.video], window, q, self.plan.geometry.resize,
                               self.mean, self.std)
        return {"clips": clips, "label": torch.tensor(q.label), "video": torch.tensor(window.video)}


PREFETCH = 2  # DataLoader's default prefetch_factor: what people get when they do not set it


def pretext_batches(plan: PretextPlan, batch_size: int, *, workers: int, device: str,
                    mean: Sequence[float], std: Sequence[float], start_step: int = 0) -> BatchStream:
    """Endless batches: clips float32 (B, N, 3, D, s, s), label (B,), video (B,), on the host
    (pinned when `device` is CUDA). Same keys, hence same windows and questions, as fastssl's
    loaders for the same plan. A contract.BatchStream: close it (or use `with`)."""
    keys = stream_keys(plan.epoch_size, batch_size, start_step)
    return BatchStream(iter(DataLoader(BaselineQuestions(plan, mean, std), batch_sampler=keys,
                                       num_workers=workers, pin_memory=device.startswith("cuda"),
                                       prefetch_factor=PREFETCH if workers else None)))


def to_device(batch: dict, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """-> clips (B*N, 3, D, s, s) and labels (B,) on `device`."""
    clips = batch["clips"].to(device, non_blocking=True)
    return clips.flatten(0, 1), batch["label"].to(device, non_blocking=True)
