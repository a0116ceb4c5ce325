"""The DALI loader: DALI decodes every window (NVDEC on a GPU, libavcodec on the CPU).

It implements the contract in `fastssl.data.contract`, like `pyav_loader`: the plans in
`sampling.py` own every random choice and DALI only decodes what it is told, so both loaders
give the same video, window, crop and flip for the same seed. The package, by concern:

    probe.py    which files DALI can decode on a device (validate_files), before it sees them
    reader.py   fn.experimental.readers.video over a file_list per chunk of batches: DALI
                indexes the files and seeks
    memory.py   one sample decoded alone from its whole file (fn.decoders.video): how a failed
                batch's file is named
    stream.py   K pipelines round-robin, each batch copied into a torch-owned tensor, errors
                that name the file
    common.py   the job of one batch, the crop-resize op (resize + crop + mirror in one
                fn.resize), DALI's error text

This module turns plans into jobs (the windows of each batch, in step order) and jobs' frames
into contract batches. The graph is the same on both devices - only the decoder's device and the
pipeline's device_id differ. The measurements behind these choices (chunk size, threads, copy
cost) are in bench/RESULTS.md, "DALI loader design measurements".

Evaluation: one file_list line per non-overlapping D-frame clip, EVAL_CLIPS_PER_BATCH clips per
batch (a video's clips may span batches, the last batch is padded), regrouped into videos in
order.
"""
from __future__ import annotations

import itertools
from typing import Sequence

import numpy as np
import torch

from fastssl.data.contract import (BatchStream, ClipBatch, DecodeError, EvalItem, PretextBatch, StreamArgs,
                                   rank_batch_size, redraw)
from fastssl.data.dali.common import PREFETCH, Job
from fastssl.data.dali.probe import CPU_CODECS, NVDEC_CODECS, decodable_codecs, probe, validate_files
from fastssl.data.dali.stream import Stream
from fastssl.data.dataset import Video
from fastssl.data.sampling import ClipPlan, Geometry, PretextPlan, Window, eval_clip_starts, stream_keys

__all__ = ["validate_files", "pretext_batches", "clip_batches", "eval_videos", "probe",
           "decodable_codecs", "CPU_CODECS", "NVDEC_CODECS", "PREFETCH", "EVAL_CLIPS_PER_BATCH"]

EVAL_CLIPS_PER_BATCH = 32    # evaluation: D-frame clips per batch


def _keys_for(epoch_size, batch_size, start_step, rank, world_size):
    """Pipeline j of K takes batches j, j+K, ... of this rank's key stream."""
    def per_pipe(j: int, k: int):
        return itertools.islice(stream_keys(epoch_size, batch_size, start_step, rank, world_size), j, None, k)
    return per_pipe


def _to_device(device: torch.device, host: torch.Tensor) -> torch.Tensor:
    """A host tensor on `device`, without the host waiting for the GPU. A plain `.to("cuda")`
    from pageable memory is a synchronous copy: the host waits until the GPU has run everything
    queued before it (the previous step's work) - once per small tensor, every step. Copied from
    pinned memory with non_blocking=True it is queued on the current stream, before any kernel
    that reads it, and the host goes on (torch keeps the pinned buffer until the copy has run).
    On the CPU the tensor is returned as it is (pin_memory needs CUDA)."""
    if device.type != "cuda":
        return host
    return host.pin_memory().to(device, non_blocking=True)


def _pretext_batch(frames, windows, questions, bad) -> PretextBatch:
    host = {"starts": torch.from_numpy(np.stack([q.starts for q in questions])),
            "orders": torch.from_numpy(np.stack([q.orders for q in questions])),
            "label": torch.from_numpy(np.array([q.label for q in questions], dtype=np.int64)),
            "video": torch.tensor([w.video for w in windows], dtype=torch.int64)}
    return {"windows": frames, **{k: _to_device(frames.device, t) for k, t in host.items()},
            "bad": bad}


def _clip_batch(frames, windows, labels, bad) -> ClipBatch:
    device = frames.device
    return {"windows": frames, "label": _to_device(device, torch.tensor(labels, dtype=torch.int64)),
            "video": _to_device(device, torch.tensor([w.video for w in windows], dtype=torch.int64)),
            "bad": bad}


def _culprits(plan, error: DecodeError) -> dict[int, str]:
    """The videos a DALI error names (our errors name files; DALI's own do not)."""
    message = str(error)
    return {v: f"DALI: {message}" for v, video in enumerate(plan.videos) if video.path in message}


def _not_known_bad(known_bad: dict[int, str]):
    """A redraw attempt that fails on videos known not to decode (DALI decodes the rest later)."""
    def attempt(window: Window) -> None:
        reason = known_bad.get(window.video)
        if reason is not None:
            raise DecodeError(reason)
    return attempt


def _pyav_batch(plan, keys, make_batch, device, known_bad: dict[int, str]):
    """One batch decoded by PyAV in this process, with the same redraws as the PyAV loader: the
    way through a batch DALI fails on without naming a file."""
    from fastssl.data.pyav_loader import decode_window
    skip = _not_known_bad(known_bad)

    def attempt(window: Window):
        skip(window)
        return decode_window(plan.videos, window, plan.geometry.resize)

    samples = [redraw(plan, epoch, i, attempt) for epoch, i in keys]
    frames = _to_device(device, torch.from_numpy(np.stack([f for _, _, f, _ in samples])))
    return make_batch(frames, [w for w, _, _, _ in samples], [m for _, m, _, _ in samples],
                      [failure for *_, bad in samples for failure in bad])


def _training_stream(plan, batch_size: int, make_batch, *, device, workers, decoders, start_step,
                     rank, world_size) -> BatchStream:
    """Endless batches from `start_step`.

    A file DALI cannot decode (damaged after the index was written) is named by our errors: it
    joins `known_bad`, the pipelines restart at the failed step, and from then on every sample
    that draws it is redrawn (attempt 1, 2, ..., as the PyAV loader does), each redraw reported
    in its batch's `bad`. A failure that names no file is decoded by PyAV for that one batch."""
    StreamArgs(device, workers, decoders, start_step, rank, world_size)
    per_rank = rank_batch_size(batch_size, world_size)
    known_bad: dict[int, str] = {}
    torch_device = torch.device(device)
    current: list[Stream] = []

    def open_at(step: int) -> Stream:
        keys = _keys_for(plan.epoch_size, batch_size, step, rank, world_size)

        def jobs(j, k):
            skip = _not_known_bad(known_bad)  # sees videos added to known_bad later too
            for batch in keys(j, k):
                samples = [redraw(plan, epoch, i, skip) for epoch, i in batch]
                bad = [failure for *_, failures in samples for failure in failures]
                yield Job([w for w, _, _, _ in samples], ([m for _, m, _, _ in samples], bad))

        def finish(frames, job):
            metas, bad = job.meta
            return [make_batch(frames, job.windows, metas, bad)]

        return Stream(plan.videos, jobs, finish, geometry=plan.geometry, batch_size=per_rank,
                      workers=workers, device=device, decoders=decoders)

    def recover(step: int, error: DecodeError):
        """After a failure at `step`: a restarted stream, or (no file named) one PyAV batch."""
        named = {v: why for v, why in _culprits(plan, error).items() if v not in known_bad}
        if named:
            known_bad.update(named)
            return None
        keys = next(stream_keys(plan.epoch_size, batch_size, step, rank, world_size))
        return _pyav_batch(plan, keys, make_batch, torch_device, known_bad)

    def batches():
        step = start_step
        while True:
            if not current or current[0].done:
                try:
                    current[:] = [open_at(step)]
                except DecodeError as error:  # a reader chunk refused a file at build time
                    current.clear()
                    batch = recover(step, error)
                    if batch is not None:
                        yield batch
                        step += 1
                    continue
            try:
                for batch in current[0]:
                    yield batch
                    step += 1
            except DecodeError as error:  # the stream has closed its pipelines
                batch = recover(step, error)
                if batch is not None:
                    yield batch
                    step += 1

    def close():
        for stream in current:
            stream.close()

    try:
        current.append(open_at(start_step))  # decoding starts now, before the first `next`
    except DecodeError:
        pass  # met again, and handled, at the first `next`
    return BatchStream(batches(), close)


def pretext_batches(plan: PretextPlan, batch_size: int, *, device: str = "cpu", workers: int = 0,
                    decoders: int = 1, start_step: int = 0, rank: int = 0,
                    world_size: int = 1) -> BatchStream[PretextBatch]:
    """Endless pretext batches (contract.PretextBatch) from step `start_step` on, on `device`."""
    return _training_stream(plan, batch_size, _pretext_batch, device=device, workers=workers,
                            decoders=decoders, start_step=start_step, rank=rank,
                            world_size=world_size)


def clip_batches(plan: ClipPlan, batch_size: int, *, device: str = "cpu", workers: int = 0,
                 decoders: int = 1, start_step: int = 0, rank: int = 0,
                 world_size: int = 1) -> BatchStream[ClipBatch]:
    """Endless fine-tuning batches (contract.ClipBatch) from step `start_step` on, on `device`."""
    return _training_stream(plan, batch_size, _clip_batch, device=device, workers=workers,
                            decoders=decoders, start_step=start_step, rank=rank,
                            world_size=world_size)


def eval_videos(videos: Sequence[Video], D: int, geometry: Geometry, *, device: str = "cpu",
                workers: int = 0, decoders: int = 1, start_step: int = 0, rank: int = 0,
                world_size: int = 1) -> BatchStream[EvalItem]:
    """One item (contract.EvalItem) per test video of this rank - videos rank, rank + world_size,
    ... in order, `video` indexing the whole list: every non-overlapping D-frame clip, centre
    crop, no flip. `start_step` is accepted for the contract and ignored (evaluation is finite)."""
    StreamArgs(device, workers, decoders, start_step, rank, world_size)
    counts = []
    for video in videos:
        k = len(eval_clip_starts(video.frames, D))
        if k == 0:
            raise DecodeError(f"{video.path}: {video.frames} frames, fewer than one {D}-frame clip")
        counts.append(k)
    mine = list(range(rank, len(videos), world_size))
    if not mine:
        return BatchStream(iter(()))
    top, left, _ = geometry.crop(None)
    clips = [Window(v, s, D, top, left, geometry.size, False)
             for v in mine for s in eval_clip_starts(videos[v].frames, D)[:counts[v]]]
    per_batch = min(EVAL_CLIPS_PER_BATCH, len(clips))
    batches = [clips[i:i + per_batch] for i in range(0, len(clips), per_batch)]
    parts: list[torch.Tensor] = []  # clips of the video being assembled (finish runs in batch order)

    def jobs(j, k):
        for batch in batches[j::k]:
            yield Job(batch, None)

    def finish(frames, job):
        items = []
        rows = 0
        while rows < len(job.windows):  # padding rows past len(job.windows) are dropped
            v = job.windows[rows].video
            end = rows
            while end < len(job.windows) and job.windows[end].video == v:
                end += 1
            parts.append(frames[rows:end])
            rows = end
            if sum(len(p) for p in parts) == counts[v]:
                clip_frames = parts[0] if len(parts) == 1 else torch.cat(parts)
                parts.clear()
                items.append({"clips": clip_frames,
                              "label": _to_device(clip_frames.device, torch.tensor(videos[v].label)),
                              "video": _to_device(clip_frames.device, torch.tensor(v))})
        return items

    stream = Stream(videos, jobs, finish, geometry=geometry, batch_size=per_batch, workers=workers,
                    device=device, decoders=decoders)
    return BatchStream(stream, stream.close)
