"""Where the DALI loader's windows come from: fn.experimental.readers.video over a file_list
written per chunk of CHUNK_BATCHES batches, so DALI indexes each file and seeks.

    host  the chunk's windows, in sample order -> file_list, one line per sample:
          "abs_path position start start+W" (frames, end exclusive)
    DALI  fn.experimental.readers.video(file_list_format="frames", step=W, no shuffle,
              enable_frame_num)   "gpu" = NVDEC, or "cpu"
          + fn.external_source: the crop ROIs of the same samples, in the same order
          -> crop_resize
    host  check label == position and first frame == start for every sample

The sampler still picks every window: the reader follows its file_list, one sequence per line,
and its label is the sample's position. DALI drops a file it cannot open with only a warning,
which would shift every later sample, so the entry count is checked after each build, every
batch is checked against the plan, and a failure probes each file of the chunk to name it.

Chunks: the pipeline is rebuilt per CHUNK_BATCHES batches (the key stream crosses epochs, so a
chunk may too; resuming at step k starts a chunk there). Each chunk runs exactly its batches.
Building one (drawing its jobs, writing its file_list, DALI opening and indexing every file)
is slow, so it happens on a background thread one chunk ahead: while chunk k decodes, chunk k+1
is built, and once chunk k has all its batches queued the training thread only starts it. A
build that fails is raised then, at the step a build on the training thread would have raised
it. The reader also decodes one batch past its list (read-ahead into a next pass, thrown away),
and closing it before that finishes waits for it, so a drained chunk lives RETIRE_AFTER more
batches. Larger chunks amortise the build and the wasted read-ahead; the chunk-size
measurements are in bench/RESULTS.md.

DALI 2.4's reader decodes in its prefetch thread, sample after sample: one decoding thread per
pipeline whatever num_threads (which serves the resize), so `decoders=K` gives K decoding
threads. Its file_list parser splits at whitespace: such paths go through symlinks.
"""
from __future__ import annotations

import itertools
import os
import tempfile
import threading
import time
from collections import deque
from typing import Callable, Iterator, Sequence

import numpy as np

from fastssl.data.contract import DecodeError
from fastssl.data.dali.common import PREFETCH, Job, crop_resize, dali_reason, rois
from fastssl.data.dali.probe import probe
from fastssl.data.dataset import Video
from fastssl.data.sampling import Geometry, Window

CHUNK_BATCHES = 64           # batches per file_list, i.e. per pipeline (re)build
RETIRE_AFTER = 2             # batches a drained pipeline lives on (its loader idles)


def host_ints(tensors) -> np.ndarray:
    """A DALI CPU batch of one-element tensors -> 1-D int64 array."""
    return np.asarray(tensors.as_array(), dtype=np.int64).reshape(-1)  # (B, 1) -> (B,)


class ReaderChunk:
    """One fn.experimental.readers.video pipeline over a fixed run of jobs.

    The file_list has one line per sample, in sample order: `path position start start+length`
    (frames, end exclusive), so each line is exactly one sequence and the reader's label is the
    sample's position. Crops come from an external_source list in the same order. Every batch
    is checked: label == position and first frame == start, else DecodeError naming the file -
    that is how an entry DALI dropped (it only warns) would show."""

    def __init__(self, jobs: list[Job], videos: Sequence[Video], listable: Callable[[str], str],
                 list_path: str, *, geometry: Geometry, batch_size: int, threads: int,
                 device_id: int | None, prefetch: int):
        from nvidia.dali import Pipeline, fn, types

        self.videos, self.batch_size, self.device_id = videos, batch_size, device_id
        self.pending: deque[Job] = deque(jobs)
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
        roi_start, roi_end = rois(self.windows, geometry)
        batch_rois = [(roi_start[i:i + batch_size], roi_end[i:i + batch_size])
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
            roi_start, roi_end = fn.external_source(source=batch_rois, num_outputs=2, batch=True,
                                                    cycle=False, dtype=[types.FLOAT, types.FLOAT])
            # The checks below read label and first frame on the host every batch. Reading them
            # from GPU outputs (as_cpu) would make the training thread wait for the GPU; moved
            # to the host inside the graph (a no-op on the CPU) they are copied by DALI's own
            # threads, ahead, as part of the prefetch.
            self.pipe.set_outputs(crop_resize(frames, roi_start, roi_end, geometry), label.cpu(), first.cpu())
        try:
            try:
                self.pipe.build()  # reads the file_list and opens/indexes every file
                size = self.pipe.reader_meta("reader")["epoch_size"]
            finally:
                os.unlink(list_path)
        except Exception as e:  # e.g. every file dropped: DALI's "num_shards_ <= Size()" assert
            self.close()
            raise DecodeError(self._dropped(f"DALI's video reader failed to start ({dali_reason(e)})")) \
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
        labels, firsts = host_ints(label), host_ints(first)
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
                        if (why := reader_refuses(self.videos[v].path, w, self.device_id)) is not None]
        if not culprits:
            culprits = ["  (each file of this chunk probes fine and opens alone)"]
        return head + ":\n" + "\n".join(culprits)

    def close(self):
        self.pipe = None  # the last reference: DALI stops and joins its threads


def reader_refuses(path: str, win: Window, device_id: int | None) -> str | None:
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
            return f"DALI's video reader fails on it: {dali_reason(e)}"
        finally:
            del pipe
    return None


class ChunkBuild:
    """One chunk being built on a background thread. `take()` waits for it and returns the chunk
    (None when the jobs ran out) or raises what the build raised; `discard()` waits and closes it.
    `seconds`: how long the build took."""

    def __init__(self, build: Callable[[], ReaderChunk | None]):
        self.chunk: ReaderChunk | None = None
        self.error: BaseException | None = None
        self.seconds = 0.0
        self.thread = threading.Thread(target=self._run, args=(build,), name="fastssl-chunk-build",
                                       daemon=True)
        self.thread.start()

    def _run(self, build) -> None:
        t = time.perf_counter()
        try:
            self.chunk = build()
        except BaseException as e:  # noqa: BLE001 - handed to the training thread by take()
            self.error = e
        self.seconds = time.perf_counter() - t

    def take(self) -> ReaderChunk | None:
        self.thread.join()
        # Handed over, not kept: the error's traceback holds the failed pipeline's frames.
        error, self.error = self.error, None
        if error is not None:
            raise error
        chunk, self.chunk = self.chunk, None
        return chunk

    def discard(self) -> None:
        self.thread.join()  # a DALI build cannot be interrupted: wait for it, then drop it
        self.error = None
        if self.chunk is not None:
            self.chunk.close()
            self.chunk = None


class ReaderPipe:
    """The windows of one pipeline slot of the stream: its jobs are cut into chunks of
    CHUNK_BATCHES, each read by its own ReaderChunk pipeline, built one chunk ahead on a
    background thread (ChunkBuild). The next chunk starts decoding when the current one has
    all its batches queued; a drained chunk is dropped RETIRE_AFTER batches later, once its
    reader's read-ahead into the (unused) next pass of the file_list has finished - dropping it
    at once would wait for that.

    Timings, for the bench (seconds, most recent chunks; the first entry is the first chunk,
    built when the stream starts): `build_seconds` per chunk build (on the background thread),
    `chunk_waits` what the training thread waited for each built chunk at a chunk boundary."""

    def __init__(self, jobs: Iterator[Job], videos: Sequence[Video], *, geometry: Geometry,
                 batch_size: int, threads: int, device_id: int | None, prefetch: int = PREFETCH,
                 chunk_batches: int | None = None):
        self.jobs, self.videos = jobs, videos
        self.kwargs = dict(geometry=geometry, batch_size=batch_size, threads=threads,
                           device_id=device_id, prefetch=prefetch)
        self.chunk_batches = chunk_batches or CHUNK_BATCHES
        self.tmp = tempfile.TemporaryDirectory(prefix="fastssl-dali-")
        self.links: dict[str, str] = {}
        self.live: deque[ReaderChunk] = deque()        # oldest first
        self.retired: deque[list] = deque()           # [batches left to live, chunk]
        self.credit = 0  # schedule() calls already covered by a new chunk's first prefetch
        self.started = False
        self.built = 0   # chunks built so far (numbers their file_lists)
        self.build_seconds: deque[float] = deque(maxlen=64)
        self.chunk_waits: deque[float] = deque(maxlen=64)
        self.next: ChunkBuild | None = ChunkBuild(self._build)

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

    def _build(self) -> ReaderChunk | None:
        """The next chunk, built but not started (on the background thread; one build at a time,
        so the job iterator and the symlinks are never touched by two threads)."""
        jobs = list(itertools.islice(self.jobs, self.chunk_batches))
        if not jobs:
            return None
        self.built += 1
        list_path = os.path.join(self.tmp.name, f"file_list{self.built}.txt")
        return ReaderChunk(jobs, self.videos, self._listable, list_path, **self.kwargs)

    @property
    def pending(self) -> deque[Job]:
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
        if self.next is None:
            return  # no more work: outputs() ends the stream once the live chunks are drained
        build, self.next = self.next, None
        t = time.perf_counter()
        chunk = build.take()  # a failed build raises here, where building it here would have
        if chunk is None:
            return
        self.chunk_waits.append(time.perf_counter() - t)
        self.build_seconds.append(build.seconds)
        self.live.append(chunk)
        queued = chunk.start()
        self.next = ChunkBuild(self._build)
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
        build, self.next = self.next, None
        if build is not None:
            build.discard()
        for chunk in self.live:
            chunk.close()
        for _, chunk in self.retired:
            chunk.close()
        self.live.clear()
        self.retired.clear()
        self.tmp.cleanup()
