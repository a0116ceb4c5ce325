"""Pick a loader by name; every loader yields the same batches for the same plan.

Batches are dicts of tensors: `windows` uint8 (B, T, s, s, 3) plus `starts`/`orders`/`label`
(pretext), `label` (fine-tune), or `clips` (K, D, s, s, 3) + `label` + `video` (evaluation).
Tensors may live on the CPU (PyAV) or already on the GPU (DALI); the loop moves them with
`.to(device, non_blocking=True)`, which is free when they are already there.
"""
from __future__ import annotations

import importlib.util
from typing import Iterator, Sequence

from fastssl.data.dataset import Video
from fastssl.data.sampling import ClipPlan, Geometry, PretextPlan

LOADERS = ("auto", "pyav", "dali")


def dali_available() -> bool:
    return importlib.util.find_spec("nvidia.dali") is not None


def choose_loader(requested: str, device: str) -> str:
    """'auto' means DALI when it is installed and a GPU is used, else PyAV."""
    if requested not in LOADERS:
        raise ValueError(f"unknown loader {requested!r}; choose from {LOADERS}")
    if requested != "auto":
        if requested == "dali" and not dali_available():
            raise ValueError("--loader dali: nvidia-dali is not installed "
                             "(pip install nvidia-dali-cuda130, or nvidia-dali-cuda120 on CUDA 12)")
        return requested
    return "dali" if device.startswith("cuda") and dali_available() else "pyav"


def _impl(loader: str):
    if loader == "dali":
        from fastssl.data import dali_loader
        return dali_loader
    from fastssl.data import pyav_loader
    return pyav_loader


def _extra(loader: str, decoders: int) -> dict:
    return {"decoders": decoders} if loader == "dali" else {}


def pretext_batches(loader: str, plan: PretextPlan, batch_size: int, *, workers: int, device: str,
                    start_step: int = 0, decoders: int = 1) -> Iterator[dict]:
    return _impl(loader).pretext_batches(plan, batch_size, workers=workers, device=device,
                                         start_step=start_step, **_extra(loader, decoders))


def clip_batches(loader: str, plan: ClipPlan, batch_size: int, *, workers: int, device: str,
                 start_step: int = 0, decoders: int = 1) -> Iterator[dict]:
    return _impl(loader).clip_batches(plan, batch_size, workers=workers, device=device,
                                      start_step=start_step, **_extra(loader, decoders))


def eval_video_batches(loader: str, videos: Sequence[Video], D: int, geometry: Geometry, *,
                       workers: int, device: str, decoders: int = 1) -> Iterator[dict]:
    return _impl(loader).eval_video_batches(videos, D, geometry, workers=workers, device=device,
                                            **_extra(loader, decoders))


def validate_files(loader: str, videos: Sequence[Video], *, device: str, min_frames: int,
                   skip: bool, report=print) -> list[Video]:
    """Loader-specific up-front checks (DALI drops unreadable files with only a warning, so its
    loader probes every file first). PyAV reports bad files when it meets them."""
    if loader != "dali":
        return list(videos)
    return _impl(loader).validate_files(videos, device=device, min_frames=min_frames, skip=skip,
                                        report=report)
