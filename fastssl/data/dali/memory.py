"""Windows decoded from whole encoded files in memory: how the stream names the file of a
failed batch, by decoding each of its samples alone.

    host  Window(video, start, length, top, left, size, flip) per sample
          -> fn.external_source: file bytes, start, length, crop ROI (relative)
    DALI  fn.decoders.video(bytes, start_frame, sequence_length)   "mixed" = NVDEC, or "cpu"
          -> crop_resize

fn.decoders.video does not seek in an in-memory file: it decodes (or parses) every frame
before `start_frame`, so a window costs O(start + W) frames - too slow to train from (the reader
seeks), cheap enough for one sample on the error path, and independent of the reader, so it says
something the reader could not.
"""
from __future__ import annotations

from collections import deque
from typing import Iterator, Sequence

import numpy as np

from fastssl.data.contract import DecodeError
from fastssl.data.dali.common import PREFETCH, Job, crop_resize, rois
from fastssl.data.dataset import Video
from fastssl.data.sampling import Geometry


def file_bytes(path: str) -> np.ndarray:
    """The encoded bytes of `path`; DecodeError naming it when it cannot be read or is empty."""
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as e:
        raise DecodeError(f"{path}: cannot read: {e}") from None
    if data.size == 0:
        raise DecodeError(f"{path}: file is empty")
    return data


class Feeder:
    """DALI's external_source callback for one pipeline: the inputs of its next job.

    Kept apart from MemoryPipe so that the DALI pipeline holds no reference back to its owner:
    with no cycle, dropping a stream frees its pipelines - and joins their threads - at once.
    (DALI threads alive in a process that forks, e.g. for PyAV DataLoader workers, deadlock the
    children.)"""

    def __init__(self, jobs: Iterator[Job], videos: Sequence[Video], geometry: Geometry):
        self.jobs, self.videos, self.geometry = jobs, videos, geometry
        self.pending: deque[Job] = deque()  # jobs handed to DALI, oldest first

    def __call__(self):
        # Called by DALI (on the consumer's thread, inside schedule_run) for each new batch.
        job = next(self.jobs)  # StopIteration ends the pipeline's stream
        self.pending.append(job)
        encoded, start, length = [], [], []
        for win in job.windows:
            encoded.append(file_bytes(self.videos[win.video].path))
            start.append(np.array(win.start, np.int32))
            length.append(np.array(win.length, np.int32))
        return (encoded, start, length, *rois(job.windows, self.geometry))


class MemoryPipe:
    """One DALI pipeline fed by its own iterator of jobs; outputs come back in job order."""

    def __init__(self, jobs: Iterator[Job], videos: Sequence[Video], *, geometry: Geometry,
                 batch_size: int, threads: int, device_id: int | None, prefetch: int = PREFETCH):
        from nvidia.dali import Pipeline, fn, types

        self.feeder = Feeder(jobs, videos, geometry)
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

    def close(self):
        self.pipe = None  # the last reference: DALI stops and joins its threads
