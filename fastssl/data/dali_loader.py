"""The DALI loader: DALI decodes every window (NVDEC on a GPU, libavcodec on the CPU).

Same contract as `pyav_loader` (same functions, same batch dicts, same frames for the same plan):
the sampler in `sampling.py` owns every random choice and DALI only decodes what it is told.

How one batch is made

    host  keys -> plan.sample -> Window(video, start, length, top, left, size, flip) per sample
          -> fn.external_source: file bytes (LRU cache), start, length, crop ROI (relative)
    DALI  fn.decoders.video(bytes, start_frame, sequence_length)   "mixed" = NVDEC, or "cpu"
          -> fn.resize(size=(s, s), roi=the crop)                  one op: resize + crop + mirror
    host  copy into a torch-owned uint8 tensor on `device`; questions/labels come from the plan

The graph is the same on both devices; only the decoder's device ("cpu" or "mixed") and the
pipeline's device_id differ (resize runs wherever its input lives).

Design notes (numbers measured on a 2-core CPU, DALI 2.4; see the report in the PR):

- Crop and mirror are folded into the resize: "resize to (h, w), cut s x s at (top, left),
  mirror" samples the input at exactly the positions of "resize the ROI [top/h, (top+s)/h] x
  [left/w, (left+s)/w] of the input to (s, s)", and a ROI whose x runs backwards is mirrored.
  Measured against fn.resize -> fn.slice -> fn.flip: at most 1 grey level apart (rounding),
  and only the s x s kept pixels are resampled.
- external_source + fn.decoders.video, not a per-epoch `file_list` reader: the sampler picks
  every window, so a reader would need its order and per-sample crops kept in step with a
  second source; here each batch is self-describing, resuming at step k is free and rank /
  world_size is only a different key stream.
- Lifetime: every batch is *copied* into a tensor that torch owns (one memcpy of uint8 frames,
  GPU->GPU on CUDA, ~1% of decode time on the CPU). A batch you hold is never touched again,
  whatever DALI does with its buffers. On CUDA the copy runs on torch's current stream and the
  DALI buffer is kept alive until an event after the copy has completed.
- Prefetch: each pipeline runs asynchronously with PREFETCH batches queued ahead, so decoding
  batch k+1.. overlaps the model's work on batch k. Batch k always holds the same keys.
- decoders=K: K independent pipelines (one NVDEC video decoder each), fed round-robin: batch k
  is decoded by pipeline k % K, which draws only its own batches k, k+K, ... from the same key
  stream, so the batches are identical for every K.
- Errors: DALI's own messages do not name the sample, so when a batch fails each of its
  samples is decoded alone to find the file(s), and the error names them (DecodeError).
"""
from __future__ import annotations

import itertools
import os
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch

from fastssl.data.dataset import DatasetError, Video
from fastssl.data.pyav_decode import DecodeError
from fastssl.data.sampling import ClipPlan, Geometry, PretextPlan, Window, eval_clip_starts, stream_keys

# What fn.decoders.video decodes (DALI 2.4 docs; CPU list re-checked here).
CPU_CODECS = frozenset({"vp8", "vp9", "mjpeg"})
NVDEC_CODECS = CPU_CODECS | {"h264", "hevc", "av1", "mpeg4"}
# NVDEC decodes H.264 only as 8-bit 4:2:0 on the GPUs we target; 4:4:4 or 10-bit files fail
# at decode time with a message that names no file, so refuse them up front.
NVDEC_H264_PIX_FMTS = frozenset({"yuv420p", "yuvj420p", "nv12"})

PREFETCH = 2                 # batches each pipeline decodes ahead of the consumer
CACHE_BYTES = 1 << 30        # encoded bytes kept in memory (LRU); files are re-read beyond it
EVAL_VIDEOS_PER_RUN = 4      # evaluation decodes whole videos; this many per pipeline run


def _device(device: str) -> tuple[torch.device, int | None]:
    """'cpu' -> (cpu, None); 'cuda' / 'cuda:N' -> (cuda:N, N) for DALI's device_id."""
    dev = torch.device(device)
    if dev.type == "cpu":
        return dev, None
    if dev.type != "cuda":
        raise ValueError(f"the DALI loader runs on 'cpu' or 'cuda[:N]', not {device!r}")
    index = dev.index if dev.index is not None else torch.cuda.current_device()
    return torch.device("cuda", index), index


def decodable_codecs(device: str) -> frozenset[str]:
    return CPU_CODECS if torch.device(device).type == "cpu" else NVDEC_CODECS


# --------------------------------------------------------------------------- file checks

def probe(video: Video, *, device: str, min_frames: int) -> str | None:
    """Why DALI on `device` cannot use `video`, or None. Decode-free: opens the container,
    reads the stream's metadata, and counts packets only when the container has no count."""
    import av

    path = video.path
    if not os.path.isfile(path):
        return "file is missing"
    try:
        container = av.open(path)
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as e:
        return f"cannot be opened (damaged or not a video): {e}"
    with container:
        if not container.streams.video:
            return "has no video stream"
        stream = container.streams.video[0]
        codec = stream.codec_context.name
        codecs = decodable_codecs(device)
        where = "on the CPU" if torch.device(device).type == "cpu" else "with NVDEC"
        if codec not in codecs:
            return (f"codec {codec}: DALI decodes only {', '.join(sorted(codecs))} {where} "
                    "(re-encode it, e.g. with `fastssl prepare`)")
        pix_fmt = stream.codec_context.pix_fmt
        if where == "with NVDEC" and codec == "h264" and pix_fmt not in NVDEC_H264_PIX_FMTS:
            return f"H.264 in {pix_fmt}: NVDEC decodes H.264 only as 8-bit 4:2:0 (re-encode it)"
        frames = stream.frames
        if not frames:  # e.g. WebM stores no count: count packets (no decoding)
            try:
                frames = sum(1 for p in container.demux(stream) if p.size > 0)
            except (av.error.FFmpegError, OSError) as e:
                return f"damaged: {e}"
    if frames != video.frames:
        return f"has {frames} frames but index.csv says {video.frames} (truncated or replaced?)"
    if frames < min_frames:
        return f"{frames} frames, needs at least {min_frames}"
    return None


def validate_files(videos: Sequence[Video], *, device: str, min_frames: int, skip: bool,
                   report=print) -> list[Video]:
    """Probe every file before DALI sees it (DALI would fail mid-run, or drop files with only a
    warning). Bad files raise DatasetError listing all of them, or with `skip` are reported
    (path and reason) and dropped."""
    bad = []
    for video in videos:
        why = probe(video, device=device, min_frames=min_frames)
        if why is not None:
            bad.append((video, why))
    if not bad:
        return list(videos)
    lines = "\n".join(f"  {v.path}: {why}" for v, why in bad)
    if not skip:
        raise DatasetError(f"{len(bad)} video(s) the DALI loader cannot use on {device}:\n{lines}\n"
                           "(pass --skip-bad to skip them)")
    report(f"skipping {len(bad)} video(s) the DALI loader cannot use on {device}:\n{lines}")
    dropped = {id(v) for v, _ in bad}
    kept = [v for v in videos if id(v) not in dropped]
    if not kept:
        raise DatasetError(f"no usable videos left: all {len(bad)} were rejected for the DALI loader "
                           f"on {device} (reasons above)")
    return kept


# --------------------------------------------------------------------------- DALI plumbing

class _FileBytes:
    """Encoded files in memory, least recently used dropped beyond `budget` bytes."""

    def __init__(self, budget: int = CACHE_BYTES):
        self._files: OrderedDict[str, np.ndarray] = OrderedDict()
        self._bytes, self._budget = 0, budget

    def __call__(self, path: str) -> np.ndarray:
        data = self._files.get(path)
        if data is not None:
            self._files.move_to_end(path)
            return data
        try:
            data = np.fromfile(path, dtype=np.uint8)
        except OSError as e:
            raise DecodeError(f"{path}: cannot read: {e}") from None
        if data.size == 0:
            raise DecodeError(f"{path}: file is empty")
        if data.nbytes <= self._budget:
            self._files[path] = data
            self._bytes += data.nbytes
            while self._bytes > self._budget:
                self._bytes -= self._files.popitem(last=False)[1].nbytes
        return data


@dataclass
class _Job:
    """One DALI batch: what to decode, and what the plan says about it (passed through)."""
    windows: list[Window]
    meta: Any


class _Pipe:
    """One DALI pipeline fed by its own iterator of jobs; outputs come back in job order."""

    def __init__(self, jobs: Iterator[_Job], videos: Sequence[Video], files: _FileBytes, *,
                 geometry: Geometry, batch_size: int, threads: int, device_id: int | None,
                 prefetch: int = PREFETCH):
        from nvidia.dali import Pipeline, fn, types

        self.jobs, self.videos, self.files, self.geometry = jobs, videos, files, geometry
        self.pending: deque[_Job] = deque()
        self.pipe = Pipeline(batch_size=batch_size, num_threads=threads, device_id=device_id,
                             prefetch_queue_depth=prefetch, exec_async=True, exec_pipelined=True,
                             exec_dynamic=True, seed=0)
        with self.pipe:
            encoded, start, length, roi_start, roi_end = fn.external_source(
                source=self._next_batch, num_outputs=5, batch=True, parallel=False,
                dtype=[types.UINT8, types.INT32, types.INT32, types.FLOAT, types.FLOAT])
            frames = fn.decoders.video(encoded, device="cpu" if device_id is None else "mixed",
                                       start_frame=start, sequence_length=length, pad_mode="none")
            s = geometry.size
            out = fn.resize(frames, size=[s, s], roi_start=roi_start, roi_end=roi_end,
                            roi_relative=True, interp_type=types.INTERP_LINEAR, antialias=True,
                            dtype=types.UINT8)
            self.pipe.set_outputs(out)
        self.pipe.build()
        self.started = False

    def _next_batch(self):
        # Called by DALI (on this thread, inside schedule_run) each time it starts a batch.
        job = next(self.jobs)  # StopIteration ends the pipeline's stream
        self.pending.append(job)
        h, w = self.geometry.resize
        encoded, start, length, roi_start, roi_end = [], [], [], [], []
        for win in job.windows:
            encoded.append(self.files(self.videos[win.video].path))
            start.append(np.array(win.start, np.int32))
            length.append(np.array(win.length, np.int32))
            y0, y1 = win.top / h, (win.top + win.size) / h
            x0, x1 = win.left / w, (win.left + win.size) / w
            if win.flip:
                x0, x1 = x1, x0  # a ROI that runs backwards in x comes out mirrored
            roi_start.append(np.array([y0, x0], np.float32))
            roi_end.append(np.array([y1, x1], np.float32))
        return encoded, start, length, roi_start, roi_end

    def schedule(self):
        self.pipe.schedule_run()  # the first call queues `prefetch` batches
        self.started = True

    def outputs(self):
        """(DALI TensorList, its job). Raises StopIteration when the jobs are exhausted."""
        (out,) = self.pipe.outputs()
        return out, self.pending.popleft()

    def close(self):
        self.pipe = None


def _dali_reason(error: BaseException) -> str:
    """The informative line(s) of a DALI error (it also prints its own reason to stderr)."""
    text = str(error)
    if "encountered:" in text:
        text = text.split("encountered:", 1)[1]
    lines = [ln.strip() for ln in text.splitlines()
             if ln.strip() and not ln.startswith(("C++ context", "Current pipeline"))]
    return " ".join(lines)[:300] or type(error).__name__


class _Stream:
    """Decodes job streams with `decoders` pipelines round-robin and yields finished items.

    `jobs_for(j, K)` gives the jobs of pipeline j (batches j, j+K, ...); `finish(frames, job)`
    turns the copied frames (one tensor, or a list for ragged batches) into a list of items.
    Decoding starts at construction, before the first `next`.
    """

    def __init__(self, videos: Sequence[Video], jobs_for: Callable[[int, int], Iterator[_Job]],
                 finish: Callable[[Any, _Job], list], *, geometry: Geometry, batch_size: int,
                 workers: int, device: str, decoders: int = 1):
        if decoders is None:
            decoders = 1
        if decoders < 1:
            raise ValueError(f"decoders must be at least 1, got {decoders}")
        self.device, device_id = _device(device)
        self.videos, self.finish, self.geometry = videos, finish, geometry
        self.files = _FileBytes()
        threads = max(1, -(-max(workers, 1) // decoders))  # `workers` threads in all, >= 1 each
        self.pipes = [_Pipe(jobs_for(j, decoders), videos, self.files, geometry=geometry,
                            batch_size=batch_size, threads=threads, device_id=device_id)
                      for j in range(decoders)]
        self.step = 0
        self.items: deque = deque()
        self.in_flight: deque = deque()  # (cuda event, DALI output) until the copy is done
        self.done = False
        for pipe in self.pipes:
            pipe.schedule()

    def __iter__(self):
        return self

    def __next__(self):
        while not self.items:
            if self.done:
                raise StopIteration
            self.items.extend(self._next_batch())
        return self.items.popleft()

    def _next_batch(self) -> list:
        pipe = self.pipes[self.step % len(self.pipes)]
        try:
            out, job = pipe.outputs()
        except StopIteration:
            self.close()
            raise
        except Exception as e:  # DALI: RuntimeError / IndexError / ...; the pipeline is dead now
            job = pipe.pending[0] if pipe.pending else None
            self.close()
            raise DecodeError(self._explain(job, e)) from e
        try:
            self._check_lengths(out, job)
            frames = self._copy(out)
        except Exception:
            self.close()
            raise
        self.step += 1
        pipe.schedule()  # pipeline j starts on its next job while the model works on this one
        return self.finish(frames, job)

    def _check_lengths(self, out, job: _Job):
        for shape, win in zip(out.shape(), job.windows):
            if shape[0] != win.length:
                video = self.videos[win.video]
                raise DecodeError(f"{video.path}: asked DALI for frames {win.start}..{win.start + win.length - 1} "
                                  f"and got {shape[0]} (index.csv says {video.frames} frames: the file "
                                  "is shorter or damaged)")

    def _copy(self, out):
        """DALI output -> torch-owned uint8 tensor(s) on self.device (see module notes)."""
        from nvidia.dali.plugin.pytorch import feed_ndarray

        cuda = self.device.type == "cuda"
        stream = torch.cuda.current_stream(self.device) if cuda else None
        shapes = [tuple(s) for s in out.shape()]
        if len(set(shapes)) == 1:
            frames = torch.empty((len(shapes), *shapes[0]), dtype=torch.uint8, device=self.device)
            if out.is_dense_tensor():
                feed_ndarray(out.as_tensor(), frames, cuda_stream=stream)
            else:
                for i in range(len(shapes)):
                    feed_ndarray(out[i], frames[i], cuda_stream=stream)
        else:  # ragged (evaluation: whole videos of different lengths)
            frames = [feed_ndarray(out[i], torch.empty(s, dtype=torch.uint8, device=self.device),
                                   cuda_stream=stream) for i, s in enumerate(shapes)]
        if cuda:
            # The copy is queued on torch's stream; DALI may free its buffer as soon as we drop
            # `out`, so keep it until the copy has run.
            event = torch.cuda.Event()
            event.record(stream)
            self.in_flight.append((event, out))
            while self.in_flight and self.in_flight[0][0].query():
                self.in_flight.popleft()
        return frames

    def _explain(self, job: _Job | None, error: BaseException) -> str:
        if job is None:
            return f"DALI failed: {_dali_reason(error)}"
        culprits = []
        for win in job.windows:  # decode each sample alone to find the file(s) DALI rejects
            video = self.videos[win.video]
            try:
                single = _Pipe(iter([_Job([win], None)]), self.videos, _FileBytes(0),
                               geometry=self.geometry, batch_size=1, threads=1,
                               device_id=None if self.device.type == "cpu" else self.device.index,
                               prefetch=1)
                single.schedule()
                single.outputs()
            except Exception as e:  # noqa: BLE001 - any failure of this sample is the answer
                why = probe(video, device=str(self.device), min_frames=0)
                culprits.append(f"  {video.path} (frames {win.start}..{win.start + win.length - 1}): "
                                f"{_dali_reason(e)}" + (f"; probe: {why}" if why else ""))
        if not culprits:
            files = "\n".join(f"  {self.videos[w.video].path}" for w in job.windows)
            return (f"DALI failed on batch {self.step} ({_dali_reason(error)}); each file decodes "
                    f"alone, so the batch as a whole failed. Its files:\n{files}")
        return f"DALI could not decode batch {self.step}:\n" + "\n".join(culprits)

    def close(self):
        self.done = True
        for pipe in self.pipes:
            pipe.close()
        self.pipes = []
        self.in_flight.clear()

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


# --------------------------------------------------------------------------- the contract

def _keys_for(epoch_size, batch_size, start_step, rank, world_size):
    def per_pipe(j: int, k: int):
        return itertools.islice(stream_keys(epoch_size, batch_size, start_step, rank, world_size), j, None, k)
    return per_pipe


def pretext_batches(plan: PretextPlan, batch_size: int, *, workers: int = 0, device: str = "cpu",
                    start_step: int = 0, decoders: int = 1, rank: int = 0,
                    world_size: int = 1) -> Iterator[dict]:
    """Endless pretext batches: windows (B, W, s, s, 3) uint8, starts (B, N), orders (B, N, D),
    label (B,), video (B,), all on `device`."""
    keys = _keys_for(plan.epoch_size, batch_size, start_step, rank, world_size)

    def jobs(j, k):
        for batch in keys(j, k):
            samples = [plan.sample(epoch, i) for epoch, i in batch]
            yield _Job([w for w, _ in samples], [q for _, q in samples])

    def finish(frames, job):
        qs = job.meta
        host = {"starts": torch.from_numpy(np.stack([q.starts for q in qs])),
                "orders": torch.from_numpy(np.stack([q.orders for q in qs])),
                "label": torch.from_numpy(np.array([q.label for q in qs], dtype=np.int64)),
                "video": torch.tensor([w.video for w in job.windows], dtype=torch.int64)}
        return [{"windows": frames, **{k: v.to(frames.device) for k, v in host.items()}}]

    return _Stream(plan.videos, jobs, finish, geometry=plan.geometry, batch_size=batch_size,
                   workers=workers, device=device, decoders=decoders)


def clip_batches(plan: ClipPlan, batch_size: int, *, workers: int = 0, device: str = "cpu",
                 start_step: int = 0, decoders: int = 1, rank: int = 0,
                 world_size: int = 1) -> Iterator[dict]:
    """Endless fine-tuning batches: windows (B, D, s, s, 3) uint8, label (B,), video (B,)."""
    keys = _keys_for(plan.epoch_size, batch_size, start_step, rank, world_size)

    def jobs(j, k):
        for batch in keys(j, k):
            samples = [plan.sample(epoch, i) for epoch, i in batch]
            yield _Job([w for w, _ in samples], [label for _, label in samples])

    def finish(frames, job):
        return [{"windows": frames,
                 "label": torch.tensor(job.meta, dtype=torch.int64).to(frames.device),
                 "video": torch.tensor([w.video for w in job.windows], dtype=torch.int64).to(frames.device)}]

    return _Stream(plan.videos, jobs, finish, geometry=plan.geometry, batch_size=batch_size,
                   workers=workers, device=device, decoders=decoders)


def eval_video_batches(videos: Sequence[Video], D: int, geometry: Geometry, *, workers: int = 0,
                       device: str = "cpu", decoders: int = 1) -> Iterator[dict]:
    """One item per test video, in order: clips (K, D, s, s, 3) (every non-overlapping D-frame
    clip, centre crop, no flip), label, video. Each video is decoded once, as one sequence of
    K*D frames from frame 0; a pipeline run decodes EVAL_VIDEOS_PER_RUN videos."""
    if not videos:
        return iter(())
    top, left, _ = geometry.crop(None)
    windows = []
    for v, video in enumerate(videos):
        k = len(eval_clip_starts(video.frames, D))
        if k == 0:
            raise DecodeError(f"{video.path}: {video.frames} frames, fewer than one {D}-frame clip")
        windows.append(Window(v, 0, k * D, top, left, geometry.size, False))
    per_run = min(EVAL_VIDEOS_PER_RUN, len(videos))
    groups = [windows[i:i + per_run] for i in range(0, len(windows), per_run)]

    def jobs(j, k):
        for group in groups[j::k]:
            yield _Job(group, None)

    def finish(frames, job):
        items = []
        for clip_frames, win in zip(frames if isinstance(frames, list) else list(frames), job.windows):
            device = clip_frames.device
            items.append({"clips": clip_frames.reshape(win.length // D, D, *clip_frames.shape[1:]),
                          "label": torch.tensor(videos[win.video].label).to(device),
                          "video": torch.tensor(win.video).to(device)})
        return items

    return _Stream(videos, jobs, finish, geometry=geometry, batch_size=per_run, workers=workers,
                   device=device, decoders=decoders)
