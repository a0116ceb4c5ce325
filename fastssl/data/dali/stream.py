"""The batch stream: K pipelines fed round-robin, each batch copied into a torch-owned tensor,
and DALI's failures turned into errors that name the file.

- Round-robin: batch k is decoded by pipeline k % K, which draws only its own batches k, k+K, ...
  of the same key stream, so the batches are identical for every K (`decoders`); one pipeline
  drives one NVDEC engine. `workers` CPU threads are split among the pipelines.
- Prefetch: each pipeline runs asynchronously with PREFETCH batches queued ahead, so decoding
  batch k+1.. overlaps the model's work on batch k. Batch k always holds the same keys.
- Lifetime: every batch is *copied* into a tensor torch owns (one memcpy of the uint8 frames,
  GPU->GPU on CUDA), so a batch the caller holds is never touched again, whatever DALI does
  with its buffers. On CUDA the copy runs on torch's current stream and the DALI buffer is kept
  alive until an event recorded after the copy has completed; drained reader chunks are
  dropped only when no such copy is pending.
- Errors: DALI's own messages do not name the sample, so when a batch fails each of its samples
  is decoded alone (memory.MemoryPipe) to find the file(s); a sample that comes back short names
  its file too (DecodeError).
"""
from __future__ import annotations

from collections import deque
from typing import Any, Callable, Iterator, Sequence

import torch

from fastssl.data.contract import DecodeError
from fastssl.data.dali.common import Job, dali_reason
from fastssl.data.dali.memory import MemoryPipe
from fastssl.data.dali.probe import probe
from fastssl.data.dali.reader import ReaderPipe
from fastssl.data.dataset import Video
from fastssl.data.sampling import Geometry, Window


def torch_device(device: str) -> tuple[torch.device, int | None]:
    """'cpu' -> (cpu, None); 'cuda' / 'cuda:N' -> (cuda:N, N) for DALI's device_id."""
    dev = torch.device(device)
    if dev.type == "cpu":
        return dev, None
    if dev.type != "cuda":
        raise ValueError(f"the DALI loader runs on 'cpu' or 'cuda[:N]', not {device!r}")
    index = dev.index if dev.index is not None else torch.cuda.current_device()
    return torch.device("cuda", index), index


class Stream:
    """Decodes job streams with `decoders` pipelines round-robin and yields finished items.

    `jobs_for(j, K)` gives the jobs of pipeline j (batches j, j+K, ...), each pipeline a
    ReaderPipe; `finish(frames, job)` turns the copied frames (one tensor) into a list of items.
    Decoding starts at construction, before the first `next`.
    """

    def __init__(self, videos: Sequence[Video], jobs_for: Callable[[int, int], Iterator[Job]],
                 finish: Callable[[Any, Job], list], *, geometry: Geometry, batch_size: int,
                 workers: int, device: str, decoders: int = 1):
        if decoders < 1:
            raise ValueError(f"decoders must be at least 1, got {decoders}")
        self.device, device_id = torch_device(device)
        self.videos, self.finish, self.geometry = videos, finish, geometry
        threads = max(1, -(-max(workers, 1) // decoders))  # `workers` threads in all, >= 1 each
        self.pipes = [ReaderPipe(jobs_for(j, decoders), videos, geometry=geometry,
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

    def _check_lengths(self, out, job: Job):
        for shape, win in zip(out.shape(), job.windows):  # zip: a padded reader batch has extra rows
            if shape[0] != win.length:
                raise DecodeError(self._short(win, shape[0]))

    def _copy(self, out):
        """DALI output -> a torch-owned uint8 tensor on self.device (see the module notes). A
        reader batch is never ragged: every window of a pipeline has one length."""
        from nvidia.dali.plugin.pytorch import feed_ndarray

        cuda = self.device.type == "cuda"
        stream = torch.cuda.current_stream(self.device) if cuda else None
        shapes = [tuple(s) for s in out.shape()]
        frames = torch.empty((len(shapes), *shapes[0]), dtype=torch.uint8, device=self.device)
        if out.is_dense_tensor():
            feed_ndarray(out.as_tensor(), frames, cuda_stream=stream)
        else:
            for i in range(len(shapes)):
                feed_ndarray(out[i], frames[i], cuda_stream=stream)
        if cuda:
            # The copy is queued on torch's stream; DALI may free its buffer as soon as we drop
            # `out`, so keep it until the copy has run.
            event = torch.cuda.Event()
            event.record(stream)
            self.in_flight.append((event, out))
            while self.in_flight and self.in_flight[0][0].query():
                self.in_flight.popleft()
        return frames

    def _explain(self, job: Job | None, error: BaseException) -> str:
        if job is None:
            return f"DALI failed: {dali_reason(error)}"
        culprits = []
        for win in job.windows:  # decode each sample alone (from memory) to find the bad file(s)
            video = self.videos[win.video]
            single = None
            try:
                single = MemoryPipe(iter([Job([win], None)]), self.videos, geometry=self.geometry,
                                    batch_size=1, threads=1,
                                    device_id=None if self.device.type == "cpu" else self.device.index,
                                    prefetch=1)
                single.schedule()
                out, _ = single.outputs()
                if out.shape()[0][0] != win.length:
                    culprits.append("  " + self._short(win, out.shape()[0][0]))
            except Exception as e:  # noqa: BLE001 - any failure of this sample is the answer
                why = probe(video, device=str(self.device), min_frames=0)
                culprits.append(f"  {video.path} (frames {win.start}..{win.start + win.length - 1}): "
                                f"{dali_reason(e)}" + (f"; probe: {why}" if why else ""))
            finally:
                if single is not None:
                    single.close()
        if not culprits:
            files = "\n".join(f"  {self.videos[w.video].path}" for w in job.windows)
            return (f"DALI failed on batch {self.step} ({dali_reason(error)}); each file decodes "
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
