"""The loader contract, written down once: what every loader takes and what its batches hold.

A loader is a module with these four functions, taking the same keyword arguments:

    validate_files(videos, *, device, min_frames, skip, report) -> list[Video]
    pretext_batches(plan: PretextPlan, batch_size, **STREAM_ARGS) -> BatchStream[PretextBatch]
    clip_batches(plan: ClipPlan, batch_size, **STREAM_ARGS)       -> BatchStream[ClipBatch]
    eval_videos(videos, D, geometry, **STREAM_ARGS)               -> BatchStream[EvalItem]

with STREAM_ARGS = device, workers, decoders, start_step, rank, world_size (see `StreamArgs`).
A loader is told *what* to decode (the plans in `sampling.py` own every random choice) and only
decodes it, so every loader yields the same video, window, crop and flip for the same seed;
pixels may differ by colour conversion. Training streams are endless (they run across epochs);
the evaluation stream ends after the last video of this rank. Tensors may live on the CPU (PyAV)
or already on the GPU (DALI): consumers move them with `.to(device, non_blocking=True)`, which is
free when they are already there. A batch handed out is owned by the caller: the loader never
writes into it again.

Sharding: `batch_size` is the *global* batch. At step k rank r of `world_size` gets the slice
[r*B/R, (r+1)*B/R) of the batch a one-process run gets at step k (see `sampling.stream_keys`),
so a one-process run is the reference for any number of ranks. Evaluation gives rank r the
test videos r, r+R, r+2R, ...; `video` stays the index into the whole test list.
"""
from __future__ import annotations

import atexit
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Generic, Iterator, TypedDict, TypeVar

import torch

T = TypeVar("T")


class DecodeError(RuntimeError):
    """A video could not be decoded as its index says; the message names the file. Every loader
    raises it (a training stream only after REDRAWS redraws also failed)."""


class PretextBatch(TypedDict):
    windows: torch.Tensor   # uint8 (B, W, s, s, 3): W consecutive frames, cropped and flipped
    starts: torch.Tensor    # int64 (B, N): first frame of each clip inside the window
    orders: torch.Tensor    # int64 (B, N, D): frame order of each clip (identity but one)
    label: torch.Tensor     # int64 (B,): which clip is out of order
    video: torch.Tensor     # int64 (B,): index of the source video in the plan's list
    bad: list               # [(video index, reason)]: windows that failed to decode and were redrawn


class ClipBatch(TypedDict):
    windows: torch.Tensor   # uint8 (B, D, s, s, 3): one D-frame clip per sample
    label: torch.Tensor     # int64 (B,): class index
    video: torch.Tensor     # int64 (B,)
    bad: list               # [(video index, reason)], as in PretextBatch


class EvalItem(TypedDict):
    clips: torch.Tensor     # uint8 (K, D, s, s, 3): every non-overlapping D-frame clip, centre crop
    label: torch.Tensor     # int64 (): class index
    video: torch.Tensor     # int64 (): index into the test list


# A training window that fails to decode (a file damaged after the index was written, or broken
# deep inside) is replaced by a redraw, `plan.sample(epoch, i, attempt)` for attempt 1, 2, ...:
# a pure function of the key, so no exclusion state is shared and a resumed run stays exact.
# The failure travels with the batch (`bad`) so the training loop can name and count it.
REDRAWS = 8


def redraw(plan, epoch: int, i: int, attempt: Callable[[Any], T]) -> tuple[Any, Any, T, list]:
    """Sample (epoch, i) of a training plan, redrawn until `attempt(window)` succeeds:
    (window, the plan's extra, what `attempt` returned, failures). `attempt` raises DecodeError
    for a window that does not decode; `failures` lists the (video, reason) of those draws, in
    draw order. After REDRAWS + 1 failures in a row: DecodeError naming the sample."""
    failures = []
    for k in range(REDRAWS + 1):
        window, extra = plan.sample(epoch, i, k)
        try:
            return window, extra, attempt(window), failures
        except DecodeError as e:
            failures.append((window.video, str(e)))
    reasons = "\n".join(f"  {why}" for _, why in failures)
    raise DecodeError(f"sample {i} of epoch {epoch}: {len(failures)} draws in a row failed to decode:\n"
                      f"{reasons}")

# What each batch kind holds; the contract test checks every loader against these.
BATCH_KEYS = {"pretext": tuple(PretextBatch.__annotations__),
              "clips": tuple(ClipBatch.__annotations__),
              "eval": tuple(EvalItem.__annotations__)}


@dataclass(frozen=True)
class StreamArgs:
    """The keyword arguments every stream function takes (documentation and validation)."""
    device: str = "cpu"
    workers: int = 0        # PyAV: decoding processes (0 = in this process); DALI: CPU threads
    decoders: int = 1       # DALI: pipelines per GPU, one NVDEC engine each; PyAV ignores it
    start_step: int = 0     # training streams: the first batch is step `start_step`'s
    rank: int = 0
    world_size: int = 1

    def __post_init__(self):
        if self.workers < 0:
            raise ValueError(f"workers must be >= 0, got {self.workers}")
        if self.decoders < 1:
            raise ValueError(f"decoders must be >= 1, got {self.decoders}")
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank {self.rank} is not in [0, world_size={self.world_size})")
        if self.start_step < 0:
            raise ValueError(f"start_step must be >= 0, got {self.start_step}")


def rank_batch_size(batch_size: int, world_size: int) -> int:
    """Samples per rank of a global batch; the global batch must split evenly."""
    if batch_size % world_size:
        raise ValueError(f"batch size {batch_size} does not split evenly over {world_size} ranks")
    return batch_size // world_size



class BatchStream(Generic[T]):
    """What every loader returns: an iterator, a context manager, and `close()`.

    `close()` stops decoding and shuts down whatever the loader started (worker processes, DALI
    pipelines) now, not at garbage collection; it may be called twice, and `next` after it
    raises StopIteration. Use it as `with loader.pretext_batches(...) as batches: ...`.
    """

    def __init__(self, items: Iterator[T], close: Callable[[], None] | None = None):
        self._items: Iterator[T] | None = items
        self._close = close
        _OPEN.add(self)

    def __iter__(self) -> "BatchStream[T]":
        return self

    def __next__(self) -> T:
        if self._items is None:
            raise StopIteration
        return next(self._items)

    def close(self) -> None:
        # Dropping the last reference to a DataLoader iterator is what shuts its workers down
        # (its __del__ does), so the iterator is released before the loader's own close runs.
        self._items = None
        close, self._close = self._close, None
        if close is not None:
            close()

    @property
    def closed(self) -> bool:
        return self._items is None

    def __enter__(self) -> "BatchStream[T]":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


# Streams still open when the interpreter exits (a script that raised before closing one) are
# closed first: multiprocessing's own exit handler would SIGTERM the loader workers, which
# ignore SIGTERM (the main process decides what a signal means), and wait for them forever.
# Registered after torch imported multiprocessing, so it runs before multiprocessing's handler.
_OPEN: "weakref.WeakSet[BatchStream]" = weakref.WeakSet()


@atexit.register
def _close_open_streams() -> None:
    for stream in list(_OPEN):
        try:
            stream.close()
        except Exception:  # noqa: BLE001 - exiting anyway
            pass
