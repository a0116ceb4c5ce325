"""Check a transcoded file against what was fed to its encoder: frame count, pts = frame index,
keyframe every `gop` frames, no B-frames, and PSNR at a few positions above a per-codec floor."""
from __future__ import annotations

import math
from fractions import Fraction

import av
import numpy as np
from av.video.frame import PictureType

# Lowest PSNR (dB, over the Y, U and V planes of the 4:2:0 frame) a verified frame may have.
# Lowest frame measured at the settings of encode.CODECS (+ transcode.EXTRA_OPTIONS), on
# natural-looking 320x240 content (1/f-noise textures panned, moving objects, sensor noise) and
# on the tests' 64x48 index-coded frames: h264 39.4 / 36.1, vp9 37.4 / 34.8, mjpeg 38.4 / 37.5.
# The floors sit ~4 dB under those. They catch wrong colour ranges, corrupt decodes and frames
# out of place in moving scenes (neighbouring frames of that content: 23-30 dB); a still scene
# cannot show a misplaced frame, which is what the pts = index and frame count checks are for.
PSNR_FLOOR = {"h264": 32.0, "vp9": 30.0, "mjpeg": 32.0}


class VerifyError(RuntimeError):
    """The output does not match its source; the message says how."""


def sample_positions(n: int) -> set[int]:
    """Frames compared by PSNR: 0, 1, 3, 7, 15, ... (2^k - 1) and the last. Chosen without
    knowing n in advance, so the transcoder keeps them while streaming."""
    return {(1 << k) - 1 for k in range(n.bit_length() + 1) if (1 << k) - 1 < n} | {n - 1}


def is_sample(i: int) -> bool:
    return (i + 1) & i == 0


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape != b.shape:
        return 0.0
    mse = float(np.mean((a.astype(np.float32) - b.astype(np.float32)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)


def verify(path: str, *, frames: int, rate: Fraction, width: int, height: int, gop: int,
           codec: str, reference: dict[int, np.ndarray]) -> float:
    """Decode all of `path`; raise VerifyError on any mismatch; return the lowest PSNR."""
    worst = math.inf
    count = 0
    try:
        with av.open(path) as container:
            stream = container.streams.video[0]
            stream.codec_context.thread_count = 1
            tb = stream.time_base
            for frame in container.decode(stream):
                i = count
                count += 1
                if frame.width != width or frame.height != height:
                    raise VerifyError(f"frame {i} is {frame.width}x{frame.height}, expected {width}x{height}")
                if frame.pts is None or round(frame.pts * tb * rate) != i:
                    raise VerifyError(f"frame {i} has pts {frame.pts} (x {tb}), expected frame index {i} at {rate} fps")
                if int(frame.pict_type) == int(PictureType.B):
                    raise VerifyError(f"frame {i} is a B-frame")
                if frame.key_frame != (i % gop == 0) and codec != "mjpeg":
                    raise VerifyError(f"frame {i}: keyframe={bool(frame.key_frame)}, expected a keyframe every {gop}")
                if i in reference:
                    worst = min(worst, psnr(frame.to_ndarray(), reference[i]))
    except av.error.FFmpegError as e:
        raise VerifyError(f"cannot decode the output: {e}") from None
    if count != frames:
        raise VerifyError(f"output has {count} frames, the source {frames}")
    if worst < PSNR_FLOOR[codec]:
        raise VerifyError(f"PSNR {worst:.1f} dB against the source is below the {codec} floor "
                          f"{PSNR_FLOOR[codec]} dB")
    return worst
