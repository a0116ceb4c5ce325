"""The baseline: the video loader people write today, for the same questions as fastssl's.

DataLoader workers open the file with PyAV per question, seek to the keyframe before the window,
decode forward, convert every frame with `frame.to_ndarray(format="rgb24")` (as the PyAV docs
show), resize with torch (uint8 bilinear + antialias, as torchvision's v2 Resize on uint8), crop,
flip and build the N normalized float32 clips; the main process moves them to the device. No
per-frame Python beyond the decode loop, fastssl's decoder settings. fastssl instead converts
and resizes in one reused swscale pass, keeps files open and hands over uint8 windows (not 2.4x
as many float32 frames). Windows, crops, flips and questions come from the same `PretextPlan`.
"""
from __future__ import annotations

import av
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from fastssl.data.contract import BatchStream
from fastssl.data.sampling import PretextPlan, Window, stream_keys

PREFETCH = 2  # DataLoader's default prefetch_factor: what people get when they do not set it


def read_frames(path: str, start: int, length: int, fps: float) -> list[np.ndarray]:
    """Frames [start, start+length) as full-size RGB uint8 arrays, the usual PyAV way."""
    with av.open(path) as container:
        stream = container.streams.video[0]
        container.seek(int(start / fps / stream.time_base), stream=stream)  # the keyframe before
        frames = []
        for frame in container.decode(stream):
            if int(round(frame.time * fps)) >= start:
                frames.append(frame.to_ndarray(format="rgb24"))
                if len(frames) == length:
                    return frames
    raise RuntimeError(f"{path}: ends before frame {start + length - 1}")


def resize_crop_flip(frames: list[np.ndarray], window: Window, resize: tuple[int, int]) -> torch.Tensor:
    """list of (H, W, 3) uint8 -> uint8 (T, 3, size, size): resize to `resize`, crop, flip."""
    x = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2)
    x = F.interpolate(x, size=resize, mode="bilinear", antialias=True, align_corners=False)
    x = x[:, :, window.top:window.top + window.size, window.left:window.left + window.size]
    return x.flip(-1) if window.flip else x


def normalization(mean, std) -> tuple[torch.Tensor, torch.Tensor]:
    """mean and std as float32 (3, 1, 1, 1), the shape make_clips takes."""
    return (torch.tensor(mean, dtype=torch.float32).view(3, 1, 1, 1),
            torch.tensor(std, dtype=torch.float32).view(3, 1, 1, 1))


def make_clips(x: torch.Tensor, starts: np.ndarray, orders: np.ndarray, mean: torch.Tensor,
               std: torch.Tensor) -> torch.Tensor:
    """uint8 (T, 3, s, s) + a question -> float32 (N, 3, D, s, s), normalized."""
    clips = [x[torch.from_numpy(start + order)].permute(1, 0, 2, 3).float() for start, order in zip(starts, orders)]
    return (torch.stack(clips) - mean) / std


class BaselineQuestions(Dataset):
    """(epoch, index) -> {"clips": float32 (N, 3, D, s, s), "label", "video"}."""

    def __init__(self, plan: PretextPlan, mean, std):
        self.plan = plan
        self.mean, self.std = normalization(mean, std)

    def __len__(self):
        return self.plan.epoch_size

    def __getitem__(self, key):
        window, q = self.plan.sample(*key)
        video = self.plan.videos[window.video]
        frames = read_frames(video.path, window.start, window.length, video.fps)
        clips = make_clips(resize_crop_flip(frames, window, self.plan.geometry.resize), q.starts, q.orders,
                           self.mean, self.std)
        return {"clips": clips, "label": torch.tensor(q.label), "video": torch.tensor(window.video)}


def pretext_batches(plan: PretextPlan, batch_size: int, *, workers: int, device: str, mean, std,
                    start_step: int = 0) -> BatchStream:
    """Endless batches: clips float32 (B, N, 3, D, s, s), label (B,), video (B,), on the host
    (pinned on CUDA); the same keys, hence windows and questions, as fastssl's loaders. A
    contract.BatchStream: close it (or use `with`)."""
    keys = stream_keys(plan.epoch_size, batch_size, start_step)
    return BatchStream(iter(DataLoader(BaselineQuestions(plan, mean, std), batch_sampler=keys,
                                       num_workers=workers, pin_memory=device.startswith("cuda"),
                                       prefetch_factor=PREFETCH if workers else None)))
