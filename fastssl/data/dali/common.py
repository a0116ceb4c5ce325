"""What the reader and the one-sample memory decoder share: the job of one DALI batch, the
crop-resize op, and the readable part of a DALI error."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from fastssl.data.sampling import Geometry, Window

PREFETCH = 2                 # batches each pipeline decodes ahead of the consumer


@dataclass
class Job:
    """One DALI batch: what to decode, and what the plan says about it (passed through)."""
    windows: list[Window]
    meta: Any


def rois(windows: Sequence[Window], geometry: Geometry) -> tuple[list, list]:
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


def crop_resize(frames, roi_start, roi_end, geometry: Geometry):
    """The one op after decoding: resize + crop + mirror.

    "Resize to (h, w), cut s x s at (top, left), mirror" samples the input at exactly the
    positions of "resize the ROI [top/h, (top+s)/h] x [left/w, (left+s)/w] of the input to
    (s, s)", and a ROI whose x runs backwards is mirrored (documented fn.resize behaviour). One
    op instead of resize -> slice -> flip: only the s x s kept pixels are resampled (results
    differ by at most one grey level; timings in bench/RESULTS.md)."""
    from nvidia.dali import fn, types

    s = geometry.size
    return fn.resize(frames, size=[s, s], roi_start=roi_start, roi_end=roi_end, roi_relative=True,
                     interp_type=types.INTERP_LINEAR, antialias=True, dtype=types.UINT8)


def dali_reason(error: BaseException) -> str:
    """The informative line(s) of a DALI error (it also prints its own reason to stderr)."""
    text = str(error)
    if "encountered:" in text:
        text = text.split("encountered:", 1)[1]
    lines = [ln.strip() for ln in text.splitlines()
             if ln.strip() and not ln.startswith(("C++ context", "Current pipeline"))]
    return " ".join(lines)[:300] or type(error).__name__
