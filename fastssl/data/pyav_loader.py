"""The PyAV loader: torch DataLoader workers decode uint8 windows on the CPU.

It is the fallback for hosts without DALI (macOS, Windows, no GPU) and the CPU fast path:
workers hand over uint8 frames (FHWC) plus small integer tensors, and the clip builder in the
main process expands them into normalized clips - 20 uint8 frames cross the process boundary
instead of 48 float ones.
"""
from __future__ import annotations

import signal
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, default_collate

from fastssl.data.contract import BatchStream, ClipBatch, EvalItem, PretextBatch, StreamArgs, redraw
from fastssl.data.dataset import Video
from fastssl.data.pyav_decode import WindowDecoder
from fastssl.data.sampling import ClipPlan, Geometry, PretextPlan, Window, eval_clip_starts, stream_keys

_decoder: WindowDecoder | None = None


def _process_decoder() -> WindowDecoder:
    # One decoder per process, created lazily so each DataLoader worker opens its own files.
    global _decoder
    if _decoder is None:
        _decoder = WindowDecoder()
    return _decoder


def decode_window(videos: Sequence[Video], window: Window, resize: tuple[int, int]) -> np.ndarray:
    """Decode, crop and flip one window -> uint8 (T, size, size, 3), contiguous."""
    video = videos[window.video]
    frames = _process_decoder().decode(video.path, window.start, window.length, fps=video.fps,
                                       resize=resize)
    s = window.size
    frames = frames[:, window.top:window.top + s, window.left:window.left + s]
    if window.flip:
        frames = frames[:, :, ::-1]
    return np.ascontiguousarray(frames)


def decode_sample(plan, epoch: int, i: int):
    """Sample (epoch, i) of a training plan, decoded: (window, plan's extra, frames, bad), where
    `bad` lists the (video, reason) of draws that failed to decode before this one succeeded."""
    return redraw(plan, epoch, i, lambda window: decode_window(plan.videos, window, plan.geometry.resize))


class PretextWindows(Dataset):
    """(epoch, index) -> a window and its question."""

    def __init__(self, plan: PretextPlan):
        self.plan = plan

    def __len__(self):
        return self.plan.epoch_size

    def __getitem__(self, key):
        window, q, frames, bad = decode_sample(self.plan, *key)
        return {"windows": torch.from_numpy(frames),
                "starts": torch.from_numpy(q.starts), "orders": torch.from_numpy(q.orders),
                "label": torch.tensor(q.label), "video": torch.tensor(window.video), "bad": bad}


class TrainClips(Dataset):
    """(epoch, index) -> one random D-frame clip of a video and its class."""

    def __init__(self, plan: ClipPlan):
        self.plan = plan

    def __len__(self):
        return self.plan.epoch_size

    def __getitem__(self, key):
        window, label, frames, bad = decode_sample(self.plan, *key)
        return {"windows": torch.from_numpy(frames), "label": torch.tensor(label),
                "video": torch.tensor(window.video), "bad": bad}


class EvalVideos(Dataset):
    """video index -> every non-overlapping D-frame clip of it, centre-cropped, (K, D, s, s, 3)."""

    def __init__(self, videos: Sequence[Video], D: int, geometry: Geometry):
        self.videos, self.D, self.geometry = videos, D, geometry

    def __len__(self):
        return len(self.videos)

    def __getitem__(self, v):
        starts = eval_clip_starts(self.videos[v].frames, self.D)
        top, left, _ = self.geometry.crop(None)
        window = Window(v, 0, len(starts) * self.D, top, left, self.geometry.size, False)
        frames = decode_window(self.videos, window, self.geometry.resize)
        clips = frames.reshape(len(starts), self.D, *frames.shape[1:])
        return {"clips": torch.from_numpy(clips), "label": torch.tensor(self.videos[v].label),
                "video": torch.tensor(v)}


def _fresh_decoder(_worker_id: int) -> None:
    # A forked worker must not reuse containers the parent opened: FFmpeg's decoder threads do
    # not survive fork, and a reused context deadlocks. Each worker opens its own files.
    global _decoder
    _decoder = None


def _pin(device: str) -> bool:
    # Pinned host memory makes the copy to the GPU asynchronous (non_blocking=True).
    return device.startswith("cuda")


def close_decoder() -> None:
    """Close this process's open files (and their FFmpeg decoder threads)."""
    global _decoder
    if _decoder is not None:
        _decoder.close()
        _decoder = None


def _stream(dataset, sampler, *, workers: int, device: str) -> BatchStream:
    if workers:
        # Fork copies locks held by FFmpeg's decoder threads, not the threads: close them first.
        close_decoder()
    # persistent_workers only keeps workers alive from one `iter(loader)` to the next; the
    # stream makes one iterator (its sampler runs across epochs), so it changes nothing - and
    # True would make the loader keep the iterator, so dropping ours would not stop the workers.
    loader = DataLoader(dataset, batch_sampler=sampler, num_workers=workers, pin_memory=_pin(device),
                        persistent_workers=False, prefetch_factor=4 if workers else None,
                        worker_init_fn=_quiet_worker, collate_fn=_collate(dataset))
    # Workers stop when the iterator is released (BatchStream.close drops it); without workers
    # this process's open files are closed.
    return BatchStream(iter(loader), close=None if workers else close_decoder)


def _only_item(items: list) -> dict:
    return items[0]


def _training_batch(items: list) -> dict:
    bad = [failure for item in items for failure in item.pop("bad")]
    return {**default_collate(items), "bad": bad}


def _collate(dataset):
    # Evaluation batches are single videos whose clip counts differ: hand the item over as is.
    return _only_item if isinstance(dataset, EvalVideos) else _training_batch


def _quiet_worker(_worker_id: int) -> None:
    # A terminal's Ctrl-C (and a scheduler's SIGTERM to the group) reaches every process: the
    # main process decides what to do and shuts the workers down, so they ignore both.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _fresh_decoder(_worker_id)


def validate_files(videos: Sequence[Video], *, device: str, min_frames: int, skip: bool,
                   report=print) -> list[Video]:
    """Nothing to probe up front: PyAV names a bad file when it meets it (DecodeError)."""
    return list(videos)


def pretext_batches(plan: PretextPlan, batch_size: int, *, device: str = "cpu", workers: int = 0,
                    decoders: int = 1, start_step: int = 0, rank: int = 0,
                    world_size: int = 1) -> BatchStream[PretextBatch]:
    """Endless pretext batches (contract.PretextBatch) from step `start_step` on."""
    StreamArgs(device, workers, decoders, start_step, rank, world_size)
    keys = stream_keys(plan.epoch_size, batch_size, start_step, rank, world_size)
    return _stream(PretextWindows(plan), keys, workers=workers, device=device)


def clip_batches(plan: ClipPlan, batch_size: int, *, device: str = "cpu", workers: int = 0,
                 decoders: int = 1, start_step: int = 0, rank: int = 0,
                 world_size: int = 1) -> BatchStream[ClipBatch]:
    """Endless fine-tuning batches (contract.ClipBatch) from step `start_step` on."""
    StreamArgs(device, workers, decoders, start_step, rank, world_size)
    keys = stream_keys(plan.epoch_size, batch_size, start_step, rank, world_size)
    return _stream(TrainClips(plan), keys, workers=workers, device=device)


def eval_videos(videos: Sequence[Video], D: int, geometry: Geometry, *, device: str = "cpu",
                workers: int = 0, decoders: int = 1, start_step: int = 0, rank: int = 0,
                world_size: int = 1) -> BatchStream[EvalItem]:
    """One item per test video of this rank (videos rank, rank + world_size, ...), in order."""
    StreamArgs(device, workers, decoders, start_step, rank, world_size)
    mine = [[v] for v in range(rank, len(videos), world_size)]
    return _stream(EvalVideos(videos, D, geometry), mine, workers=workers, device=device)
