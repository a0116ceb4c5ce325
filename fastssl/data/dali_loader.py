"""The DALI loader: DALI decodes every window (NVDEC on a GPU, libavcodec on the CPU).

Same contract as `pyav_loader` (same functions, same batch dicts, same frames for the same plan):
the sampler in `sampling.py` owns every random choice and DALI only decodes what it is told.
Two window sources, chosen by `source=` on every public function (default: module `SOURCE`):

"reader" (default) - a file_list per chunk of CHUNK_BATCHES batches:

    host  keys of the next CHUNK_BATCHES batches -> plan.sample -> Window per sample
          -> file_list, one line per sample in sample order: "abs_path position start start+W"
    DALI  fn.experimental.readers.video(file_list_format="frames", end exclusive, step=W,
              no shuffle, enable_frame_num)   "gpu" = NVDEC, or "cpu"; seeks to the keyframe
          + fn.external_source: the crop ROIs of the same samples, in the same order
          -> fn.resize(size=(s, s), roi=the crop)                  one op: resize + crop + mirror
    host  check labels == positions and first frames == starts, copy into a torch-owned uint8
          tensor on `device`; questions/labels come from the plan

"memory" - self-describing batches:

    host  keys -> plan.sample -> Window(video, start, length, top, left, size, flip) per sample
          -> fn.external_source: file bytes (LRU cache), start, length, crop ROI (relative)
    DALI  fn.decoders.video(bytes, start_frame, sequence_length)   "mixed" = NVDEC, or "cpu"
          -> fn.resize (as above)

The graph is the same on both devices; only the decoder's device and the pipeline's device_id
differ (resize runs wherever its input lives). Both sources give bit-identical batches here.

Design notes (measured on a 2-core CPU shared with other jobs, DALI 2.4, VP9 320x240, W=20):

- Why "reader" is the default: fn.decoders.video on an in-memory file does NOT seek - it
  decodes (or at least parses) every frame before `start_frame`, so a window costs
  O(start + W) frames (1 thread: 24 ms at start 0, 54 ms at start 80; PyAV seeking: 14-20 ms
  anywhere); the reader indexes each file and seeks. Whole loader (decode + 320x240 -> 224
  crop-resize), batches of 8 random 20-frame windows, workers=2, runs alternating, medians of 5,
  load average 3.1-5.3 from other jobs: 100-frame videos reader 32.9 windows/s (decoders=2:
  35.7), memory 24.8, PyAV loader (2 workers) 54.8; 186-frame videos reader 32.1 (31.1), memory
  17.2, PyAV 53.1. (On this CPU the PyAV loader is faster than either.) Remuxing just the
  window's packets with PyAV (~3.5 ms/window) into a small buffer for "memory" measured 50-65
  windows/s decode-only (not built). NVDEC is unmeasured (no GPU here): measure before relying
  on it.
- The reader decodes on ONE thread per pipeline: DALI 2.4's reader decodes in its prefetch
  (loader) thread, sample after sample - CPU use stays at ~1 core whatever num_threads, which
  only serves the resize. `decoders=K` gives K decoding threads.
- The reader follows its file_list, so the sampler still picks every window: positions are the
  reader's labels, and every batch checks label == position and first frame == window start
  (DecodeError naming the file otherwise). DALI drops a file it cannot open with only a
  warning, which would shift every later sample: the entry count is checked after each build,
  and a failure probes each file of the chunk to name the culprits.
- Chunks: the pipeline is rebuilt per CHUNK_BATCHES batches (stream_keys crosses epochs, so
  a chunk may too; resuming at step k starts a chunk there). Each chunk pipeline runs exactly
  its batches; the next one is built and starts decoding while the current one delivers its
  last PREFETCH batches. Per chunk: build ~0.15 ms per file_list line (20-80 ms for 512 lines;
  DALI indexes the files), close ~10 ms once idle - but the reader also decodes one batch past
  its list (read-ahead into a next pass) which is thrown away, and closing it before that
  finishes waits ~1 batch, so a drained chunk lives RETIRE_AFTER more batches. Measured
  (batches of 8): chunks of 2 batches 16.6 windows/s, 8: 24.3, 64: 30.6. Hence 64 (~1.5% lost
  to the wasted read-ahead).
- DALI's file_list parser splits at whitespace: paths containing any go through symlinks in a
  temporary directory. Evaluation writes one line per non-overlapping D-frame clip
  (EVAL_CLIPS_PER_BATCH per batch, the last one padded) and regroups clips into videos.
- Crop and mirror are folded into the resize: "resize to (h, w), cut s x s at (top, left),
  mirror" samples the input at exactly the positions of "resize the ROI [top/h, (top+s)/h] x
  [left/w, (left+s)/w] of the input to (s, s)", and a ROI whose x runs backwards is mirrored
  (documented fn.resize behaviour). Against fn.resize -> fn.slice -> fn.flip: at most 1 grey
  level apart, and only the s x s kept pixels are resampled (128x171 -> 112: 0.57 vs 0.79
  ms/frame). DALI's CPU resize is slow even at scale 1 (~1.1 ms/frame for a 224 crop); on the
  GPU it is noise.
- Lifetime: every batch is *copied* into a tensor that torch owns (one memcpy of the uint8
  frames: GPU->GPU on CUDA; ~8 ms per 8x20x224x224x3 batch on this CPU, ~2% of its decode).
  A batch you hold is never touched again, whatever DALI does with its buffers. On CUDA the
  copy runs on torch's current stream and the DALI buffer is kept alive until an event after
  the copy has completed; drained reader chunks are dropped only when no such copy is pending.
- Prefetch: each pipeline runs asynchronously with PREFETCH batches queued ahead, so decoding
  batch k+1.. overlaps the model's work on batch k (a 59 ms batch is waited for 3-12 ms after
  90 ms of "compute"). Batch k always holds the same keys.
- decoders=K: K independent pipelines (one NVDEC video decoder each), fed round-robin: batch k
  is decoded by pipeline k % K, which draws only its own batches k, k+K, ... from the same key
  stream, so the batches are identical for every K. `workers` CPU threads are split among them.
- Errors: DALI's own messages do not name the sample, so when a batch fails each of its
  samples is decoded alone (fn.decoders.video, either source) to find the file(s), and the
  error names them (DecodeError); a sample that comes back short names its file too.
"""
from __future__ import annotations

import itertools
import os
import tempfile
import time
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
EVAL_VIDEOS_PER_RUN = 4      # evaluation decodes whole videos; this many per pipeline run ("memory")

# Where windows come from (see the module notes): "reader" = fn.experimental.readers.video over a
# file_list written per chunk of batches (seeks); "memory" = whole files fed by external_source to
# fn.decoders.video (decodes from frame 0). Every public function takes source=; None means this.
SOURCES = ("reader", "memory")
SOURCE = "reader"
CHUNK_BATCHES = 64           # "reader": batches per file_list, i.e. per pipeline (re)build
RETIRE_AFTER = 2             # "reader": batches a drained pipeline lives on (its loader idles)
EVAL_CLIPS_PER_BATCH = 32    # "reader" evaluation: D-frame clips per batch


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
    reads the stream's metadata, and counts packets only when the container has no count (WebM).
    A file whose header still claims frames it lost is caught later, when DALI returns a short
    window (DecodeError naming the file)."""
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
                    "(re-encode it to VP9 or MJPEG, e.g. `fastssl synth --codec vp9`, or use --loader pyav)")
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


class _Feeder:
    """DALI's external_source callback for one pipeline: the inputs of its next job.

    Kept apart from _Pipe so that the DALI pipeline holds no reference back to its owner: with
    no cycle, dropping a stream frees its pipelines - and joins their threads - at once. (DALI
    threads alive in a process that forks, e.g. for PyAV DataLoader workers, deadlock the
    children.)"""

    def __init__(self, jobs: Iterator[_Job], videos: Sequence[Video], files: _FileBytes,
                 geometry: Geometry):
        self.jobs, self.videos, self.files, self.geometry = jobs, videos, files, geometry
        self.pending: deque[_Job] = deque()  # jobs handed to DALI, oldest first

    def __call__(self):
        # Called by DALI (on the consumer's thread, inside schedule_run) for each new batch.
        job = next(self.jobs)  # StopIteration ends the pipeline's stream
        self.pending.append(job)
        encoded, start, length = [], [], []
        for win in job.windows:
            encoded.append(self.files(self.videos[win.video].path))
            start.append(np.array(win.start, np.int32))
            length.append(np.array(win.length, np.int32))
        return (encoded, start, length, *_rois(job.windows, self.geometry))


def _rois(windows: Sequence[Window], geometry: Geometry) -> tuple[list, list]:
    """Per-sample relative crop ROI (start, end) for fn.resize; a flip is a backwards x range."""
    h, w = geometry.resize
    roi_start, roi_end = [], []
    for win in windows:
        y0, y1 = win.top / h, (win.top + win.size) / h
        x0, x1 = win.left / w, (win.left + win.size) / w
        if win.flip:
            x0, x1 = x1, x0  # a ROI that runs backwards in x comes out mirrored
        roi_start.append(np.array([y0, x0], np.float32))
        roi_end.append(np.array([y1, x1], np.float32))
    return roi_start, roi_end


def _crop_resize(frames, roi_start, roi_end, geometry: Geometry):
    """The one op after decoding: resize + crop + mirror (see the module notes)."""
    from nvidia.dali import fn, types

    s = geometry.size
    return fn.resize(frames, size=[s, s], roi_start=roi_start, roi_end=roi_end, roi_relative=True,
                     interp_type=types.INTERP_LINEAR, antialias=True, dtype=types.UINT8)


class _Pipe:
    """One DALI pipeline fed by its own iterator of jobs; outputs come back in job order."""

    def __init__(self, jobs: Iterator[_Job], videos: Sequence[Video], files: _FileBytes, *,
                 geometry: Geometry, batch_size: int, threads: int, device_id: int | None,
                 prefetch: int = PREFETCH):
        from nvidia.dali import Pipeline, fn, types

        self.feeder = _Feeder(jobs, videos, files, geometry)
        self.pipe = Pipeline(batch_size=batch_size, num_threads=threads, device_id=device_id,
                             prefetch_queue_depth=prefetch, exec_async=True, exec_pipelined=True,
                             exec_dynamic=True, seed=0)
        with self.pipe:
            encoded, start, length, roi_start, roi_end = fn.external_source(
                source=self.feeder, num_outputs=5, batch=True, parallel=False,
                dtype=[types.UINT8, types.INT32, types.INT32, types.FLOAT, types.FLOAT])
            # affine=False: K pipelines (and DDP ranks) must not pin their decoder threads to
            # the same few cores. pad_mode="none": a short file gives a short sample, which
            # _check_lengths reports, instead of silently padded frames.
            frames = fn.decoders.video(encoded, device="cpu" if device_id is None else "mixed",
                                       start_frame=start, sequence_length=length, pad_mode="none",
                                       affine=False)
            self.pipe.set_outputs(_crop_resize(frames, roi_start, roi_end, geometry))
        self.pipe.build()

    @property
    def pending(self) -> deque[_Job]:
        return self.feeder.pending

    def schedule(self):
        self.pipe.schedule_run()  # the first call queues `prefetch` batches

    def outputs(self):
        """(DALI TensorList, its job). Raises StopIteration when the jobs are exhausted."""
        (out,) = self.pipe.outputs()
        return out, self.pending.popleft()

    def release(self):
        pass  # nothing retired: one pipeline for the whole stream

    def close(self):
        self.pipe = None  # the last reference: DALI stops and joins its threads


def _host_ints(tensors) -> np.ndarray:
    """A DALI batch of one-element tensors (CPU or GPU) -> 1-D int64 array."""
    if hasattr(tensors, "as_cpu"):
        tensors = tensors.as_cpu()
    return np.asarray(tensors.as_array(), dtype=np.int64).reshape(-1)  # (B, 1) -> (B,)


class _ReaderChunk:
    """One fn.experimental.readers.video pipeline over a fixed run of jobs (see module notes).

    The file_list has one line per sample, in sample order: `path position start start+length`
    (frames, end exclusive), so each line is exactly one sequence and the reader's label is the
    sample's position. Crops come from an external_source list in the same order. Every batch
    is checked: label == position and first frame == start, else DecodeError naming the file -
    that is how an entry DALI dropped (it only warns) would show."""

    def __init__(self, jobs: list[_Job], videos: Sequence[Video], listable: Callable[[str], str],
                 list_path: str, *, geometry: Geometry, batch_size: int, threads: int,
                 device_id: int | None, prefetch: int):
        from nvidia.dali import Pipeline, fn, types

        self.videos, self.batch_size, self.device_id = videos, batch_size, device_id
        self.pending: deque[_Job] = deque(jobs)
        self.n, self.scheduled, self.consumed = len(jobs), 0, 0
        self.prefetch = min(prefetch, self.n)
        # The reader always returns full batches: a short last batch (evaluation) is padded with
        # its last window, and the padding rows are ignored downstream.
        self.windows: list[Window] = []
        for job in jobs:
            if not 0 < len(job.windows) <= batch_size:
                raise ValueError(f"a job holds {len(job.windows)} windows for batches of {batch_size}")
            self.windows += list(job.windows) + [job.windows[-1]] * (batch_size - len(job.windows))
        length = self.windows[0].length
        if any(w.length != length for w in self.windows):
            raise ValueError("one reader pipeline decodes one sequence length")
        with open(list_path, "w") as f:
            for position, win in enumerate(self.windows):
                f.write(f"{listable(videos[win.video].path)} {position} {win.start} {win.start + length}\n")
        roi_start, roi_end = _rois(self.windows, geometry)
        rois = [(roi_start[i:i + batch_size], roi_end[i:i + batch_size])
                for i in range(0, len(self.windows), batch_size)]
        self.pipe = Pipeline(batch_size=batch_size, num_threads=threads, device_id=device_id,
                             prefetch_queue_depth=self.prefetch, exec_async=True,
                             exec_pipelined=True, exec_dynamic=True, seed=0)
        with self.pipe:
            # step=length with a range of exactly `length` frames: one sequence per line.
            frames, label, first = fn.experimental.readers.video(
                file_list=list_path, file_list_format="frames", file_list_include_end=False,
                sequence_length=length, step=length, random_shuffle=False, enable_frame_num=True,
                pad_mode="none", device="cpu" if device_id is None else "gpu", name="reader")
            # A list source (no callback): it holds no reference back to this chunk.
            roi_start, roi_end = fn.external_source(source=rois, num_outputs=2, batch=True,
                                                    cycle=False, dtype=[types.FLOAT, types.FLOAT])
            self.pipe.set_outputs(_crop_resize(frames, roi_start, roi_end, geometry), label, first)
        try:
            try:
                self.pipe.build()  # reads the file_list and opens/indexes every file
                size = self.pipe.reader_meta("reader")["epoch_size"]
            finally:
                os.unlink(list_path)
        except Exception as e:  # e.g. every file dropped: DALI's "num_shards_ <= Size()" assert
            self.close()
            raise DecodeError(self._dropped(f"DALI's video reader failed to start ({_dali_reason(e)})")) \
                from e.with_traceback(None)
        if size != len(self.windows):
            self.close()
            raise DecodeError(self._dropped(f"DALI's video reader kept {size} of the {len(self.windows)} "
                                            "file_list entries (it drops files it cannot open with only a warning)"))

    def start(self) -> int:
        self.pipe.schedule_run()  # queues `prefetch` batches
        self.scheduled = self.prefetch
        return self.prefetch

    def schedule(self):
        self.pipe.schedule_run()
        self.scheduled += 1

    def outputs(self):
        out, label, first = self.pipe.outputs()
        job = self.pending.popleft()
        base = self.consumed * self.batch_size
        self.consumed += 1
        labels, firsts = _host_ints(label), _host_ints(first)
        want = np.arange(base, base + self.batch_size)
        starts = np.array([w.start for w in self.windows[base:base + self.batch_size]])
        bad = np.flatnonzero((labels != want) | (firsts != starts))
        if bad.size:
            b = int(bad[0])
            raise DecodeError(self._misaligned(int(want[b]), int(labels[b]), int(firsts[b])))
        return out, job

    def _misaligned(self, position: int, got: int, first: int) -> str:
        win = self.windows[position]
        text = (f"{self.videos[win.video].path}: DALI's video reader is out of step with the sampler: "
                f"sample {position} of its file_list (frames {win.start}..{win.start + win.length - 1}) "
                f"came back as line {got} starting at frame {first}")
        if got > position:
            skipped = dict.fromkeys(self.videos[w.video].path for w in self.windows[position:got])
            text += ("; it skipped lines without an error (a file it could not open?): "
                     + ", ".join(skipped))
        return text

    def _dropped(self, head: str) -> str:
        """Which files of this chunk DALI's reader cannot use: probe each, then ask a one-line
        reader about those that probe fine. Only runs on the error path."""
        device = "cpu" if self.device_id is None else f"cuda:{self.device_id}"
        first = {}  # video -> its first window in this chunk
        for w in self.windows:
            first.setdefault(w.video, w)
        culprits = [f"  {self.videos[v].path}: {why}" for v in first
                    if (why := probe(self.videos[v], device=device, min_frames=0)) is not None]
        if not culprits:  # every file probes fine: ask DALI about each one alone
            culprits = [f"  {self.videos[v].path}: {why}" for v, w in first.items()
                        if (why := _reader_refuses(self.videos[v].path, w, self.device_id)) is not None]
        if not culprits:
            culprits = ["  (each file of this chunk probes fine and opens alone)"]
        return head + ":\n" + "\n".join(culprits)

    def close(self):
        self.pipe = None  # the last reference: DALI stops and joins its threads


def _reader_refuses(path: str, win: Window, device_id: int | None) -> str | None:
    """Why a one-line reader drops or fails on `win` of `path`, or None (error path only)."""
    from nvidia.dali import Pipeline, fn

    with tempfile.TemporaryDirectory(prefix="fastssl-dali-") as tmp:
        list_path = os.path.join(tmp, "one.txt")
        link = os.path.join(tmp, "video" + os.path.splitext(path)[1])
        os.symlink(os.path.abspath(path), link)
        with open(list_path, "w") as f:
            f.write(f"{link} 0 {win.start} {win.start + win.length}\n")
        pipe = Pipeline(batch_size=1, num_threads=1, device_id=device_id, exec_dynamic=True)
        with pipe:
            pipe.set_outputs(fn.experimental.readers.video(
                file_list=list_path, file_list_format="frames", file_list_include_end=False,
                sequence_length=win.length, step=win.length, device="cpu" if device_id is None else "gpu",
                name="reader")[0])
        dropped = "DALI's video reader drops it (see DALI's warning above)"
        try:
            pipe.build()
            if pipe.reader_meta("reader")["epoch_size"] != 1:
                return dropped
            pipe.run()
        except Exception as e:  # noqa: BLE001 - any failure is the answer
            if "num_shards_ <= Size()" in str(e):  # nothing left to read: the line was dropped
                return dropped
            return f"DALI's video reader fails on it: {_dali_reason(e)}"
        finally:
            del pipe
    return None


class _ReaderPipe:
    """The "reader" source for one pipeline slot, with _Pipe's interface: its jobs are cut into
    chunks of CHUNK_BATCHES, each read by its own _ReaderChunk pipeline. The next chunk is built
    (and starts decoding) when the current one has all its batches queued; a drained chunk is
    dropped RETIRE_AFTER batches later, once its reader's read-ahead into the (unused) next pass
    of the file_list has finished - dropping it at once would wait for that, ~1 batch."""

    def __init__(self, jobs: Iterator[_Job], videos: Sequence[Video], *, geometry: Geometry,
                 batch_size: int, threads: int, device_id: int | None, prefetch: int = PREFETCH,
                 chunk_batches: int | None = None):
        self.jobs, self.videos = jobs, videos
        self.kwargs = dict(geometry=geometry, batch_size=batch_size, threads=threads,
                           device_id=device_id, prefetch=prefetch)
        self.chunk_batches = chunk_batches or CHUNK_BATCHES
        self.tmp = tempfile.TemporaryDirectory(prefix="fastssl-dali-")
        self.links: dict[str, str] = {}
        self.live: deque[_ReaderChunk] = deque()       # oldest first
        self.retired: deque[list] = deque()           # [batches left to live, chunk]
        self.credit = 0  # schedule() calls already covered by a new chunk's first prefetch
        self.started = False
        self.build_seconds: deque[float] = deque(maxlen=64)  # recent chunk builds (measurements)

    def _listable(self, path: str) -> str:
        """An absolute path DALI's file_list parser can read: it splits lines at whitespace, so a
        path containing any is replaced by a symlink in our temporary directory."""
        path = os.path.abspath(path)
        if not any(c.isspace() for c in path):
            return path
        if path not in self.links:
            link = os.path.join(self.tmp.name, f"{len(self.links)}{os.path.splitext(path)[1]}")
            os.symlink(path, link)
            self.links[path] = link
        return self.links[path]

    @property
    def pending(self) -> deque[_Job]:
        return self.live[0].pending if self.live else deque()

    def schedule(self):
        # The stream calls this once at the start (queue `prefetch` batches) and once after each
        # output (queue one more), so `prefetch` batches stay in flight across chunk changes.
        if self.credit:
            self.credit -= 1
            return
        if self.live and self.live[-1].scheduled < self.live[-1].n:
            self.live[-1].schedule()
            return
        jobs = list(itertools.islice(self.jobs, self.chunk_batches))
        if not jobs:
            return  # no more work: outputs() ends the stream once the live chunks are drained
        t = time.perf_counter()
        chunk = _ReaderChunk(jobs, self.videos, self._listable, os.path.join(self.tmp.name, "file_list.txt"),
                             **self.kwargs)
        self.live.append(chunk)
        queued = chunk.start()
        self.build_seconds.append(time.perf_counter() - t)
        if self.started:
            self.credit = queued - 1
        self.started = True

    def outputs(self):
        if not self.live:
            raise StopIteration
        chunk = self.live[0]
        out, job = chunk.outputs()
        for entry in self.retired:
            entry[0] -= 1
        if not chunk.pending:
            self.live.popleft()
            self.retired.append([RETIRE_AFTER, chunk])
        return out, job

    def release(self):
        """Drop drained chunks old enough (the stream calls this when no copy reads a DALI
        output any more)."""
        while self.retired and self.retired[0][0] <= 0:
            self.retired.popleft()[1].close()

    def close(self):
        for chunk in self.live:
            chunk.close()
        for _, chunk in self.retired:
            chunk.close()
        self.live.clear()
        self.retired.clear()
        self.tmp.cleanup()


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
    Decoding starts at construction, before the first `next`. `source` picks the pipelines:
    _ReaderPipe ("reader") or _Pipe ("memory").
    """

    def __init__(self, videos: Sequence[Video], jobs_for: Callable[[int, int], Iterator[_Job]],
                 finish: Callable[[Any, _Job], list], *, geometry: Geometry, batch_size: int,
                 workers: int, device: str, decoders: int = 1, source: str = "memory"):
        if decoders is None:
            decoders = 1
        if decoders < 1:
            raise ValueError(f"decoders must be at least 1, got {decoders}")
        self.device, device_id = _device(device)
        self.videos, self.finish, self.geometry, self.source = videos, finish, geometry, source
        self.files = _FileBytes()
        threads = max(1, -(-max(workers, 1) // decoders))  # `workers` threads in all, >= 1 each
        if source == "reader":
            self.pipes = [_ReaderPipe(jobs_for(j, decoders), videos, geometry=geometry,
                                      batch_size=batch_size, threads=threads, device_id=device_id)
                          for j in range(decoders)]
        else:
            self.pipes = [_Pipe(jobs_for(j, decoders), videos, self.files, geometry=geometry,
                                batch_size=batch_size, threads=threads, device_id=device_id)
                          for j in range(decoders)]
        self.step = 0
        self.items: deque = deque()
        self.in_flight: deque = deque()  # (cuda event, DALI output) until the copy is done
        self.done = False
        try:
            for pipe in self.pipes:
                pipe.schedule()
        except Exception:
            self.close()
            raise

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
        except (StopIteration, DecodeError):  # DecodeError: the reader's own checks, already explained
            self.close()
            raise
        except Exception as e:  # DALI: RuntimeError / IndexError / ...; the pipeline is dead now
            job = pipe.pending[0] if pipe.pending else None
            self.close()
            # Keep DALI's error as the cause but not its frames: they hold the dead pipeline
            # (and its threads) alive for as long as the exception lives.
            raise DecodeError(self._explain(job, e)) from e.with_traceback(None)
        try:
            self._check_lengths(out, job)
            frames = self._copy(out)
            del out
            if not self.in_flight:
                pipe.release()  # no copy reads DALI memory now: drained reader chunks may go
            self.step += 1
            pipe.schedule()  # pipeline j queues its next job while the model works on this one
        except Exception:
            self.close()
            raise
        return self.finish(frames, job)

    def _short(self, win: Window, got: int) -> str:
        video = self.videos[win.video]
        return (f"{video.path}: asked DALI for frames {win.start}..{win.start + win.length - 1} "
                f"and got {got} (index.csv says {video.frames} frames: the file is shorter or damaged)")

    def _check_lengths(self, out, job: _Job):
        for shape, win in zip(out.shape(), job.windows):  # zip: a padded reader batch has extra rows
            if shape[0] != win.length:
                raise DecodeError(self._short(win, shape[0]))

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
        for win in job.windows:  # decode each sample alone (from memory) to find the bad file(s)
            video = self.videos[win.video]
            single = None
            try:
                single = _Pipe(iter([_Job([win], None)]), self.videos, _FileBytes(0),
                               geometry=self.geometry, batch_size=1, threads=1,
                               device_id=None if self.device.type == "cpu" else self.device.index,
                               prefetch=1)
                single.schedule()
                out, _ = single.outputs()
                if out.shape()[0][0] != win.length:
                    culprits.append("  " + self._short(win, out.shape()[0][0]))
            except Exception as e:  # noqa: BLE001 - any failure of this sample is the answer
                why = probe(video, device=str(self.device), min_frames=0)
                culprits.append(f"  {video.path} (frames {win.start}..{win.start + win.length - 1}): "
                                f"{_dali_reason(e)}" + (f"; probe: {why}" if why else ""))
            finally:
                if single is not None:
                    single.close()
        if not culprits:
            files = "\n".join(f"  {self.videos[w.video].path}" for w in job.windows)
            return (f"DALI failed on batch {self.step} ({_dali_reason(error)}); each file decodes "
                    f"alone, so the batch as a whole failed. Its files:\n{files}")
        return f"DALI could not decode batch {self.step}:\n" + "\n".join(culprits)

    def close(self):
        self.done = True
        while self.in_flight:  # copies still reading DALI buffers must finish first
            self.in_flight.popleft()[0].synchronize()
        for pipe in self.pipes:
            pipe.close()
        self.pipes = []

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


# --------------------------------------------------------------------------- the contract

def _source(source: str | None) -> str:
    source = SOURCE if source is None else source
    if source not in SOURCES:
        raise ValueError(f"unknown DALI window source {source!r}; choose from {SOURCES}")
    return source


def _keys_for(epoch_size, batch_size, start_step, rank, world_size):
    def per_pipe(j: int, k: int):
        return itertools.islice(stream_keys(epoch_size, batch_size, start_step, rank, world_size), j, None, k)
    return per_pipe


def pretext_batches(plan: PretextPlan, batch_size: int, *, workers: int = 0, device: str = "cpu",
                    start_step: int = 0, decoders: int = 1, rank: int = 0,
                    world_size: int = 1, source: str | None = None) -> Iterator[dict]:
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
                   workers=workers, device=device, decoders=decoders, source=_source(source))


def clip_batches(plan: ClipPlan, batch_size: int, *, workers: int = 0, device: str = "cpu",
                 start_step: int = 0, decoders: int = 1, rank: int = 0,
                 world_size: int = 1, source: str | None = None) -> Iterator[dict]:
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
                   workers=workers, device=device, decoders=decoders, source=_source(source))


def eval_video_batches(videos: Sequence[Video], D: int, geometry: Geometry, *, workers: int = 0,
                       device: str = "cpu", decoders: int = 1, source: str | None = None) -> Iterator[dict]:
    """One item per test video, in order: clips (K, D, s, s, 3) (every non-overlapping D-frame
    clip, centre crop, no flip), label, video.

    "reader": one file_list line per clip, EVAL_CLIPS_PER_BATCH clips per batch (a video's clips
    may span batches; items are assembled in order). "memory": each video is decoded once, as
    one sequence of K*D frames from frame 0; a pipeline run decodes EVAL_VIDEOS_PER_RUN videos."""
    source = _source(source)
    if not videos:
        return iter(())
    top, left, _ = geometry.crop(None)
    counts = []
    for video in videos:
        k = len(eval_clip_starts(video.frames, D))
        if k == 0:
            raise DecodeError(f"{video.path}: {video.frames} frames, fewer than one {D}-frame clip")
        counts.append(k)
    if source == "reader":
        return _eval_clips(videos, D, geometry, counts, workers=workers, device=device, decoders=decoders)
    windows = [Window(v, 0, k * D, top, left, geometry.size, False) for v, k in enumerate(counts)]
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
                   device=device, decoders=decoders, source="memory")


def _eval_clips(videos: Sequence[Video], D: int, geometry: Geometry, counts: list[int], *,
                workers: int, device: str, decoders: int) -> Iterator[dict]:
    """eval_video_batches for the "reader" source: batches of clips, regrouped into videos."""
    top, left, _ = geometry.crop(None)
    clips = [Window(v, s, D, top, left, geometry.size, False)
             for v, video in enumerate(videos) for s in eval_clip_starts(video.frames, D)[:counts[v]]]
    per_batch = min(EVAL_CLIPS_PER_BATCH, len(clips))
    batches = [clips[i:i + per_batch] for i in range(0, len(clips), per_batch)]
    parts: list[torch.Tensor] = []  # clips of the video being assembled (finish runs in batch order)

    def jobs(j, k):
        for batch in batches[j::k]:
            yield _Job(batch, None)

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

    return _Stream(videos, jobs, finish, geometry=geometry, batch_size=per_batch, workers=workers,
                   device=device, decoders=decoders, source="reader")
