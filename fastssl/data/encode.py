"""Write seekable constant-frame-rate videos with PyAV (used by `synth`, `prepare` and tests).

Seekable means: pts = frame index in a 1/fps time base, no B-frames, a keyframe every `gop`
frames and no scene-cut keyframes, so "seek to the keyframe before frame S, decode forward"
lands on exact frames in every decoder we use (PyAV, DALI CPU and NVDEC).
"""
from __future__ import annotations

import os
from fractions import Fraction
from typing import Iterable

import av
import numpy as np

# codec name on the command line -> (PyAV encoder, container suffix, pixel format, options)
CODECS = {
    "h264": ("libx264", ".mp4", "yuv420p",
             {"bf": "0", "sc_threshold": "0", "preset": "veryfast", "crf": "20"}),
    # libvpx-vp9 at its defaults costs ~63 ms/frame at 320x240; realtime/cpu-used=8 ~3 ms.
    "vp9": ("libvpx-vp9", ".webm", "yuv420p",
            {"deadline": "realtime", "cpu-used": "8", "row-mt": "1", "crf": "30", "b": "0"}),
    # "q:v" is an ffmpeg command-line alias that reaches no encoder through PyAV (measured: the
    # same bytes as no option, ~25 dB on small frames); clamping the quantiser sets the quality.
    "mjpeg": ("mjpeg", ".avi", "yuvj420p", {"qmin": "2", "qmax": "3"}),
}


def suffix_for(codec: str) -> str:
    return CODECS[codec][1]


def write_video(path: str | os.PathLike, frames: Iterable[np.ndarray], *, fps: int = 25,
                codec: str = "h264", gop: int = 8, options: dict[str, str] | None = None) -> int:
    """Encode `frames` (each HxWx3 uint8 RGB, even H and W) to `path`; return the frame count.

    Writes to a temporary name and renames, so an interrupted run never leaves a truncated
    file that looks finished. `options` replace the codec's encoder options in CODECS (the GOP
    settings are always added).
    """
    if codec not in CODECS:
        raise ValueError(f"unknown codec {codec!r}; choose from {sorted(CODECS)}")
    encoder, _, pix_fmt, _ = CODECS[codec]
    path = os.fspath(path)
    tmp = f"{path}.part{CODECS[codec][1]}"  # keep the suffix: PyAV picks the muxer from it
    count = 0
    # PyAV picks the muxer from the name and writes the file itself, so this is files.atomic_open's
    # pattern by hand: a temporary name beside the target, renamed over it once complete.
    try:
        with av.open(tmp, mode="w") as container:
            stream = container.add_stream(encoder, rate=fps)
            stream.pix_fmt = pix_fmt
            stream.codec_context.gop_size = gop
            opts = dict(CODECS[codec][3] if options is None else options)
            opts["g"] = str(gop)
            opts["keyint_min"] = str(gop)
            stream.options = opts
            for frame in frames:
                if count == 0:
                    stream.height, stream.width = frame.shape[:2]
                vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
                vf.pts = count  # always increasing pts = frame index: seeks land exactly
                vf.time_base = Fraction(1, fps)
                for packet in stream.encode(vf):
                    container.mux(packet)
                count += 1
            for packet in stream.encode():
                container.mux(packet)
        if count == 0:
            raise ValueError(f"{path}: no frames to encode")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):  # failed (or no frames): no half-written file is left behind
            os.unlink(tmp)
    return count
