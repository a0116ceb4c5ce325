"""The DALI loader: DALI decodes every window (NVDEC on a GPU, libavcodec on the CPU).

It implements the contract in `fastssl.data.contract`, like `pyav_loader`: the plans in
`sampling.py` own every random choice and DALI only decodes what it is told, so both loaders
give the same video, window, crop and flip for the same seed. The package, by concern:

    probe.py    which files DALI can decode on a device (validate_files), before it sees them
    reader.py   "reader" source (default): fn.experimental.readers.video over a file_list per
                chunk of batches - DALI indexes the files and seeks
    memory.py   "memory" source: whole files fed to fn.decoders.video (decodes from frame 0);
                also decodes single samples to name the file of a failed batch
    stream.py   K pipelines round-robin, each batch copied into a torch-owned tensor, errors
                that name the file
    common.py   the job of one batch, the crop-resize op (resize + crop + mirror in one
                fn.resize), DALI's error text

This module turns plans into jobs (the windows of each batch, in step order) and jobs' frames
into contract batches. Both sources run the same graph on both devices - only the decoder's
device and the pipeline's device_id differ - and give bit-identical batches. The measurements
behind these choices (reader vs memory, chunk size, threads, copy cost) are in
bench/RESULTS.md, "DALI loader design measurements".

Evaluation, "reader": one file_list line per non-overlapping D-frame clip, EVAL_CLIPS_PER_BATCH
clips per batch (a video's clips may span batches, the last batch is padded), regrouped into
videos in order. "memory": each video is one sequence of K*D frames from frame 0,
EVAL_VIDEOS_PER_RUN videos per batch.
"""
from __future__ import annotations

import itertools
from typing import Sequence

import numpy as np
import torch

from fastssl.data.contract import (REDRAWS, BatchStream, ClipBatch, EvalItem, PretextBatch, StreamArgs,
                                   rank_batch_size)
from fastssl.data.dali.common import PREFETCH, Job
from fastssl.data.dali.probe import CPU_CODECS, NVDEC_CODECS, decodable_codecs, probe, validate_files
from fastssl.data.dali.stream import Stream
from fastssl.data.dataset import Video
from fastssl.data.pyav_decode import DecodeError
from fastssl.data.sampling import ClipPlan, Geometry, PretextPlan, Window, eval_clip_starts, stream_keys

__all__ = ["validate_files", "pretext_batches", "clip_batches", "eval_video_batches", "probe",
           "decodable_codecs", "CPU_CODECS", "NVDEC_CODECS", "PREFETCH", "SOURCES",
           "EVAL_CLIPS_PER_BATCH", "EVAL_VIDEOS_PER_RUN"]

# Where windows come from: "reader" (seeks; the default) or "memory" (see the module notes).
SOURCES = ("reader", "memory")
EVAL_CLIPS_PER_BATCH = 32    # "reader" evaluation: D-frame clips per batch
EVAL_VIDEOS_PER_RUN = 4      # "memory" evaluation: whole videos per batch


def _check(source: str, **stream_args) -> None:
    StreamArgs(**stream_args)
    if source not in SOURCES:
        raise ValueError(f"unknown DALI window source {source!r}; choose from {SOURCES}")


def _keys_for(epoch_size, batch_size, start_step, rank, world_size):
    """Pipeline j of K takes batches j, j+K, ... of this rank's key stream."""
    def per_pipe(j: int, k: int):
        return itertools.islice(stream_keys(epoch_size, batch_size, start_step, rank, world_size), j, None, k)
    return per_pipe


def _pretext_batch(frames, windows, questions, bad) -> PretextBatch:
    host = {"starts": torch.from_numpy(np.stack([q.starts for q in questions])),
            "orders": torch.from_numpy(np.stack([q.orders for q in questions])),
            "label": torch.from_numpy(np.array([q.label for q in questions], dtype=np.int64)),
            "video": torch.tensor([w.video for w in windows], dtype=torch.int64)}
    return {"windows": frames, **{k: v.to(frames.device) for k, v in host.items()}, "bad": bad}


def _clip_batch(frames, windows, labels, bad) -> ClipBatch:
    return {"windows": frames, "label": torch.tensor(labels, dtype=torch.int64).to(frames.device),
            "video": torch.tensor([w.video for w in windows], dtype=torch.int64).to(frames.device),
            "bad": bad}


def _culprits(plan, error: DecodeError) -> dict[int, str]:
    """The videos a DALI error names (our errors name files; DALI's own do not)."""
    message = str(error)
    return {v: f"DALI: {message}" for v, video in enumerate(plan.videos) if video.path in message}


def _planned(plan, epoch: int, i: int, known_bad: dict[int, str], bad: list):
    """Sample (epoch, i), redrawn (attempt 1, 2, ...) past videos known not to decode."""
    for attempt in range(REDRAWS + 1):
        window, meta = plan.sample(epoch, i, attempt)
        if window.video not in known_bad:
            return window, meta
        bad.append((window.video, known_bad[window.video]))
    raise DecodeError(f"sample {i} of epoch {epoch}: {REDRAWS + 1} draws in a row hit files that do "
                      f"not decode, last: {bad[-1][1]}")


def _pyav_batch(plan, keys, make_batch, device, known_bad: dict[int, str]):
    """One batch decoded by PyAV in this process, with the same redraws as the PyAV loader: the
    way through a batch DALI fails on without naming a file."""
    from fastssl.data.pyav_loader import decode_window
    windows, metas, frames, bad = [], [], [], []
    for epoch, i in keys:
        for attempt in range(REDRAWS + 1):
            window, meta = plan.sample(epoch, i, attempt)
            reason = known_bad.get(window.video)
            if reason is None:
                try:
                    frames.append(decode_window(plan.videos, window, plan.geometry.resize))
                    break
                except DecodeError as e:
                    reason = str(e)
            bad.append((window.video, reason))
        else:
            raise DecodeError(f"sample {i} of epoch {epoch}: {REDRAWS + 1} draws in a row failed; "
                              f"last: {bad[-1][1]}")
        windows.append(window)
        metas.append(meta)
    return make_batch(torch.from_numpy(np.stack(frames)).to(device), windows, metas, bad)


def _training_stream(plan, batch_size: int, make_batch, *, device, workers, decoders, start_step,
                     rank, world_size, source) -> BatchStream:
    """Endless batches from `start_step`.

    A file DALI cannot decode (damaged after the index was written) is named by our errors: it
    joins `known_bad`, the pipelines restart at the failed step, and from then on every sample
    that draws it is redrawn (attempt 1, 2, ..., as the PyAV loader does), each redraw reported
    in its batch's `bad`. A failure that names no file is decoded by PyAV for that one batch."""
    _check(source, device=device, workers=workers, decoders=decoders, start_step=start_step,
           rank=rank, world_size=world_size)
    per_rank = rank_batch_size(batch_size, world_size)
    known_bad: dict[int, str] = {}
    torch_device = torch.device(device)
    current: list[Stream] = []

    def open_at(step: int) -> Stream:
        keys = _keys_for(plan.epoch_size, batch_size, step, rank, world_size)

        def jobs(j, k):
            for batch in keys(j, k):
                bad: list = []
                samples = [_planned(plan, epoch, i, known_bad, bad) for epoch, i in batch]
                yield Job([w for w, _ in samples], ([meta for _, meta in samples], bad))

        def finish(frames, job):
            metas, bad = job.meta
            return [make_batch(frames, job.windows, metas, bad)]

        return Stream(plan.videos, jobs, finish, geometry=plan.geometry, batch_size=per_rank,
                      workers=workers, device=device, decoders=decoders, source=source)

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
                    decoders: int = 1, start_step: int = 0, rank: int = 0, world_size: int = 1,
                    source: str = "reader") -> BatchStream[PretextBatch]:
    """Endless pretext batches (contract.PretextBatch) from step `start_step` on, on `device`."""
    return _training_stream(plan, batch_size, _pretext_batch, device=device, workers=workers,
                            decoders=decoders, start_step=start_step, rank=rank,
                            world_size=world_size, source=source)


def clip_batches(plan: ClipPlan, batch_size: int, *, device: str = "cpu", workers: int = 0,
                 decoders: int = 1, start_step: int = 0, rank: int = 0, world_size: int = 1,
                 source: str = "reader") -> BatchStream[ClipBatch]:
    """Endless fine-tuning batches (contract.ClipBatch) from step `start_step` on, on `device`."""
    return _training_stream(plan, batch_size, _clip_batch, device=device, workers=workers,
                            decoders=decoders, start_step=start_step, rank=rank,
                            world_size=world_size, source=source)


def eval_video_batches(videos: Sequence[Video], D: int, geometry: Geometry, *, device: str = "cpu",
                       workers: int = 0, decoders: int = 1, start_step: int = 0, rank: int = 0,
                       world_size: int = 1, source: str = "reader") -> BatchStream[EvalItem]:
    """One item (contract.EvalItem) per test video of this rank - videos rank, rank + world_size,
    ... in order, `video` indexing the whole list: every non-overlapping D-frame clip, centre
    crop, no flip. `start_step` is accepted for the contract and ignored (evaluation is finite)."""
    _check(source, device=device, workers=workers, decoders=decoders, start_step=start_step,
           rank=rank, world_size=world_size)
    counts = []
    for video in videos:
        k = len(eval_clip_starts(video.frames, D))
        if k == 0:
            raise DecodeError(f"{video.path}: {video.frames} frames, fewer than one {D}-frame clip")
        counts.append(k)
    mine = list(range(rank, len(videos), world_size))
    if not mine:
        return BatchStream(iter(()))
    if source == "reader":
        stream = _eval_clips(videos, mine, D, geometry, counts, workers=workers, device=device,
                             decoders=decoders)
        return BatchStream(stream, stream.close)
    top, left, _ = geometry.crop(None)
    windows = [Window(v, 0, counts[v] * D, top, left, geometry.size, False) for v in mine]
    per_run = min(EVAL_VIDEOS_PER_RUN, len(windows))
    groups = [windows[i:i + per_run] for i in range(0, len(windows), per_run)]

    def jobs(j, k):
        for group in groups[j::k]:
            yield Job(group, None)

    def finish(frames, job):
        items = []
        for clip_frames, win in zip(frames if isinstance(frames, list) else list(frames), job.windows):
            device = clip_frames.device
            items.append({"clips": clip_frames.reshape(win.length // D, D, *clip_frames.shape[1:]),
                          "label": torch.tensor(videos[win.video].label).to(device),
                          "video": torch.tensor(win.video).to(device)})
        return items

    stream = Stream(videos, jobs, finish, geometry=geometry, batch_size=per_run, workers=workers,
                    device=device, decoders=decoders, source="memory")
    return BatchStream(stream, stream.close)


def _eval_clips(videos: Sequence[Video], mine: list[int], D: int, geometry: Geometry,
                counts: list[int], *, workers: int, device: str, decoders: int) -> Stream:
    """eval_video_batches for the "reader" source: batches of clips, regrouped into videos."""
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
                              "label": torch.tensor(videos[v].label).to(clip_frames.device),
                              "video": torch.tensor(v).to(clip_frames.device)})
        return items

    return Stream(videos, jobs, finish, geometry=geometry, batch_size=per_batch, workers=workers,
                  device=device, decoders=decoders, source="reader")
