"""The "memory" window source: whole encoded files fed to fn.decoders.video, each batch
self-describing.

    host  Window(video, start, length, top, left, size, flip) per sample
          -> fn.external_source: file bytes (LRU cache), start, length, crop ROI (relative)
    DALI  fn.decoders.video(bytes, start_frame, sequence_length)   "mixed" = NVDEC, or "cpu"
          -> crop_resize

fn.decoders.video does not seek in an in-memory file: it decodes (or parses) every frame
before `start_frame`, so a window costs O(start + W) frames, which is why "reader" is the
default. This source stays because it decodes one sample alone cheaply - the stream uses it to
name the file(s) of a failed batch - and because nobody has measured it against the reader on
NVDEC yet (CPU figures: bench/RESULTS.md).
"""
from __future__ import annotations

from collections import OrderedDict, deque
from typing import Iterator, Sequence

import numpy as np

from fastssl.data.dali.common import PREFETCH, Job, crop_resize, rois
from fastssl.data.dataset import Video
from fastssl.data.pyav_decode import DecodeError
from fastssl.data.sampling import Geometry

CACHE_BYTES = 1 << 30        # encoded bytes kept in memory (LRU); files are re-read beyond it


class FileBytes:
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


class Feeder:
    """DALI's external_source callback for one pipeline: the inputs of its next job.

    Kept apart from MemoryPipe so that the DALI pipeline holds no reference back to its owner:
    with no cycle, dropping a stream frees its pipelines - and joins their threads - at once.
    (DALI threads alive in a process that forks, e.g. for PyAV DataLoader workers, deadlock the
    children.)"""

    def __init__(self, jobs: Iterator[Job], videos: Sequence[Video], files: FileBytes,
                 geometry: Geometry):
        self.jobs, self.videos, self.files, self.geometry = jobs, videos, files, geometry
        self.pending: deque[Job] = deque()  # jobs handed to DALI, oldest first

    def __call__(self):
        # Called by DALI (on the consumer's thread, inside schedule_run) for each new batch.
        job = next(self.jobs)  # StopIteration ends the pipeline's stream
        self.pending.append(job)
        encoded, start, length = [], [], []
        for win in job.windows:
            encoded.append(self.files(self.videos[win.video].path))
            start.append(np.array(win.start, np.int32))
            length.append(np.array(win.length, np.int32))
        return (encoded, start, length, *rois(job.windows, self.geometry))


class MemoryPipe:
    """One DALI pipeline fed by its own iterator of jobs; outputs come back in job order."""

    def __init__(self, jobs: Iterator[Job], videos: Sequence[Video], files: FileBytes, *,
                 geometry: Geometry, batch_size: int, threads: int, device_id: int | None,
                 prefetch: int = PREFETCH):
        from nvidia.dali import Pipeline, fn, types

        self.feeder = Feeder(jobs, videos, files, geometry)
        self.pipe = Pipeline(batch_size=batch_size, num_threads=threads, device_id=device_id,
                             prefetch_queue_depth=prefetch, exec_async=True, exec_pipelined=True,
                             exec_dynamic=True, seed=0)
        with self.pipe:
            encoded, start, length, roi_start, roi_end = fn.external_source(
                source=self.feeder, num_outputs=5, batch=True, parallel=False,
                dtype=[types.UINT8, types.INT32, types.INT32, types.FLOAT, types.FLOAT])
            # affine=False: K pipelines (and DDP ranks) must not pin their decoder threads to
            # the same few cores. pad_mode="none": a short file gives a short sample, which
            # the stream reports, instead of silently padded frames.
            frames = fn.decoders.video(encoded, device="cpu" if device_id is None else "mixed",
                                       start_frame=start, sequence_length=length, pad_mode="none",
                                       affine=False)
            self.pipe.set_outputs(crop_resize(frames, roi_start, roi_end, geometry))
        self.pipe.build()

    @property
    def pending(self) -> deque[Job]:
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
