"""Test videos whose frames carry their own index, so identity survives compression, resizing,
cropping and flipping.

Frame i: the top half is one flat grey level that encodes i (flat grey has no chroma, so every
decoder's colour conversion agrees on it); the bottom half is white on the left quarter and black
elsewhere, so a horizontal flip is visible as white on the right.
"""
from __future__ import annotations

import numpy as np

from fastssl.data.dataset import write_index, write_splits
from fastssl.data.encode import suffix_for, write_video

STEP = 5          # grey levels per frame index
BASE = 10
MAX_FRAMES = (245 - BASE) // STEP + 1


def coded_frame(i: int, width: int, height: int) -> np.ndarray:
    frame = np.zeros((height, width, 3), np.uint8)
    frame[: height // 2] = BASE + STEP * i
    frame[height // 2:, : width // 4] = 255
    return frame


def frame_ids(frames: np.ndarray) -> list[int]:
    """uint8 (T, H, W, 3) -> the index coded in each frame (from the centre of the top half)."""
    h = frames.shape[1]
    top = frames[:, h // 8: 3 * h // 8, :, :].reshape(len(frames), -1).astype(np.float64)
    return [int(round((m - BASE) / STEP)) for m in top.mean(1)]


def is_flipped(frames: np.ndarray) -> list[bool]:
    h, w = frames.shape[1:3]
    bottom = frames[:, 5 * h // 8:, :, :].astype(np.float64)
    return [bool(f[:, w // 2:].mean() > f[:, : w // 2].mean()) for f in bottom]


def write_coded_video(path, frames: int, *, width: int = 96, height: int = 72, codec: str = "h264",
                      gop: int = 8, fps: int = 25) -> int:
    assert frames <= MAX_FRAMES, f"index coding holds at most {MAX_FRAMES} frames"
    return write_video(path, (coded_frame(i, width, height) for i in range(frames)), fps=fps,
                       codec=codec, gop=gop)


def make_coded_dataset(root, *, frames=(30, 40, 36, 44), classes=("A", "B"), codec="h264",
                       width=96, height=72, gop=8, fps=25):
    """A tiny UCF101-layout dataset of index-coded videos: video k of each class has frames[k]
    frames; the first video of each class is the test split, the rest train."""
    from pathlib import Path
    root = Path(root)
    rows, train, test = [], [], []
    for c in classes:
        (root / "videos" / c).mkdir(parents=True, exist_ok=True)
        for g, n in enumerate(frames, 1):
            rel = f"{c}/v_{c}_g{g:02d}_c01{suffix_for(codec)}"
            write_coded_video(root / "videos" / rel, n, width=width, height=height, codec=codec,
                              gop=gop, fps=fps)
            rows.append(dict(path="videos/" + rel, frames=n, fps=fps, codec=codec, width=width,
                             height=height, **{"class": c}))
            (test if g == 1 else train).append(rel)
    write_index(root, rows)
    write_splits(root, list(classes), train, test)
    return root


def crop_edges(frames: np.ndarray) -> np.ndarray:
    """(T, 2) sub-pixel position of the crop's content: the width of the white quarter in the
    bottom half, and the height of the grey top half (measured where the bottom is black).
    A crop or resize off by one pixel moves these by one; colour conversion does not."""
    f = frames[..., 0].astype(np.float64)
    t, h, w = f.shape
    white = (f[:, 5 * h // 8:, :] / 255).mean(1).sum(1)
    grey = f[:, h // 8: 3 * h // 8].mean((1, 2))
    flipped = np.array(is_flipped(frames))
    column = np.where(flipped, 0, w - 1)  # the side of the bottom half that is black
    top = np.stack([f[i, :, column[i]] for i in range(t)]) / np.maximum(grey, 1)[:, None]
    return np.stack([white, top.clip(0, 1).sum(1)], 1)


def assert_same_frames(got, reference):
    """Same frames, crop and mirror (uint8 (..., T, H, W, 3) tensors); pixels close: colour
    conversion and resampling differ between decoders."""
    a, b = got.cpu().numpy(), reference.cpu().numpy()
    assert a.shape == b.shape and a.dtype == b.dtype == np.uint8
    for x, y in zip(a.reshape(-1, *a.shape[-4:]), b.reshape(-1, *b.shape[-4:])):
        assert frame_ids(x) == frame_ids(y)
        assert is_flipped(x) == is_flipped(y)
        bright = np.array(frame_ids(x)) >= 10  # the grey/black boundary needs some contrast
        np.testing.assert_allclose(crop_edges(x)[bright], crop_edges(y)[bright], atol=0.3)
    assert np.abs(a.astype(np.int16) - b).mean() < 3


def same_value(a, b) -> bool:
    """Equal batch entries: tensors element for element, lists (the `bad` key) by value."""
    import torch
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    return a == b
