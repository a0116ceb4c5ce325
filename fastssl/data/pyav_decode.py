"""Frame-exact window decoding with PyAV: seek to the keyframe before the window, decode forward.

Used by the PyAV loader (the fallback on hosts without DALI) and by tests as ground truth.
"""
from __future__ import annotations

import time
from collections import OrderedDict

import av
import numpy as np
from av.video.reformatter import Interpolation, VideoReformatter

# DecodeError lives in the contract (every loader raises it); imported here because this module
# raises it, and so `fastssl.data.pyav_decode.DecodeError` keeps working for outside code.
from fastssl.data.contract import DecodeError  # noqa: F401
from fastssl.data.frame_count import count_frames  # noqa: F401 - bench/peers.py imports it from here


class WindowDecoder:
    """Decodes windows of consecutive frames as uint8 (T, H, W, 3) RGB arrays.

    Keeps a few containers open (seeking an open file is much cheaper than reopening it) and one
    VideoReformatter (colour conversion + resize in one libswscale pass, its context reused).
    One instance per process: DataLoader workers each build their own after fork.

    `timings`: an optional dict to which `decode` adds the seconds spent in each of its STAGES:
    "open" (find the file among the open ones, or open it), "seek" (to the keyframe before the
    window), "decode" (every frame from there, those before the window included), "convert"
    (yuv -> rgb + resize, one swscale pass per kept frame). `fastssl bench` reads them. Left
    None, `decode` reads no clock.
    """

    STAGES = ("open", "seek", "decode", "convert")

    def __init__(self, max_open: int = 8, *, timings: dict[str, float] | None = None,
                 threads: int | None = None):
        """`threads`: FFmpeg decoding threads per file (None: FFmpeg's own choice; 1 for
        one-thread measurements)."""
        self._open: OrderedDict[str, av.container.InputContainer] = OrderedDict()
        self._max_open = max_open
        self._threads = threads
        self._reformatter = VideoReformatter()
        self.timings = timings

    def is_open(self, path: str) -> bool:
        """Whether `path` is among the files kept open (its next window needs no av.open)."""
        return path in self._open

    def _container(self, path: str):
        container = self._open.pop(path, None)
        if container is None:
            try:
                container = av.open(path)
            except (av.error.FFmpegError, OSError) as e:
                raise DecodeError(f"{path}: cannot open: {e}") from None
            if not container.streams.video:
                container.close()
                raise DecodeError(f"{path}: has no video stream")
            if self._threads is not None:
                container.streams.video[0].thread_count = self._threads
            # Damaged data must raise, not be concealed: FFmpeg's H.264 decoder otherwise hides
            # corrupt packets and returns plausible frames (found by the soak: random bytes over
            # a file's last frames trained silently). A raised error is redrawn and reported.
            container.streams.video[0].codec_context.options = {"err_detect": "explode"}
            if len(self._open) >= self._max_open:
                self._open.popitem(last=False)[1].close()
        self._open[path] = container
        return container

    def decode(self, path: str, start: int, length: int, *, fps: float,
               resize: tuple[int, int] | None = None) -> np.ndarray:
        """Frames [start, start+length) of `path`, optionally resized to `resize` = (h, w)."""
        if length < 1:
            raise DecodeError(f"{path}: asked for {length} frames from frame {start}")
        timings = self.timings
        t = time.perf_counter() if timings is not None else 0.0
        container = self._container(path)
        stream = container.streams.video[0]
        # Frame index <-> pts: our files have pts = index in a 1/fps clock, whatever time base
        # the container stores it in, so index = round(time * fps).
        target = int(round(start / fps / stream.time_base))
        if timings is not None:
            t = _lap(timings, "open", t)
        out = None
        got = 0
        try:
            container.seek(target, stream=stream, backward=True, any_frame=False)
            if timings is not None:
                t = _lap(timings, "seek", t)
            for frame in container.decode(stream):
                if timings is not None:
                    t = _lap(timings, "decode", t)
                if frame.pts is None:
                    raise DecodeError(f"{path}: frame without a timestamp; re-encode it with `fastssl prepare`")
                index = int(round(frame.time * fps))
                if index < start:
                    continue
                if index != start + got:
                    raise DecodeError(f"{path}: expected frame {start + got}, decoder gave {index} "
                                      "(missing or out-of-order timestamps)")
                h, w = resize if resize is not None else (frame.height, frame.width)
                rgb = self._reformatter.reformat(frame, width=w, height=h, format="rgb24",
                                                 interpolation=Interpolation.BILINEAR)
                array = rgb.to_ndarray()
                if out is None:
                    out = np.empty((length, h, w, 3), dtype=np.uint8)
                out[got] = array
                got += 1
                if timings is not None:
                    t = _lap(timings, "convert", t)
                if got == length:
                    return out
        except av.error.FFmpegError as e:
            broken = self._open.pop(path, None)
            if broken is not None:
                broken.close()
            raise DecodeError(f"{path}: decoding frames {start}..{start + length - 1} failed: {e}") from None
        raise DecodeError(f"{path}: asked for frames {start}..{start + length - 1} "
                          f"but the file ends after {start + got} frames")

    def close(self):
        for container in self._open.values():
            container.close()
        self._open.clear()


def _lap(timings: dict[str, float], stage: str, t0: float) -> float:
    """Add the seconds since `t0` to `timings[stage]`; return now."""
    t1 = time.perf_counter()
    timings[stage] = timings.get(stage, 0.0) + (t1 - t0)
    return t1
