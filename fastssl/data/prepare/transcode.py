"""Transcode one source video into a file that is fast to decode and seek, then verify it.

Runs inside a worker process, one thread, and never raises for a bad input: every outcome is a
`Result` whose `reason` says what was wrong. The output is written as `<name>.part`, verified,
then renamed, so an interrupted run never leaves a file that looks finished.

    source --demux--> packet pts: frame count (early --min-frames check), rate (CFR or VFR)
           --decode--> rotate upright, crop odd sizes by one pixel or scale to --short-side,
                       8-bit 4:2:0 (one libavfilter graph)
           --encode--> pts = frame index in a 1/rate clock, keyframe every `gop`, no B-frames
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass
from fractions import Fraction

import av
import numpy as np
from av.video.frame import PictureType

from ..encode import CODECS
from ..frame_count import frame_packets
from .report import append_done
from .verify import VerifyError, is_sample, verify

MUXERS = {".mp4": "mp4", ".webm": "webm", ".avi": "avi"}
# Options on top of encode.CODECS. H.264: x264's fastdecode tune (no CABAC, no deblocking) halves
# the CPU cost of a 20-frame window (19.4 -> 9.8 ms measured, files ~10% larger; NVDEC decodes
# either at the same speed): prepared files must be cheap for every decoder, not just NVDEC.
EXTRA_OPTIONS: dict[str, dict[str, str]] = {"h264": {"tune": "fastdecode"}}


@dataclass(frozen=True)
class Settings:
    codec: str = "h264"
    gop: int = 8
    short_side: int | None = None
    min_frames: int = 20


@dataclass
class Result:
    src: str
    rel: str                  # output path relative to OUT/videos (with suffix) when ok
    class_name: str
    ok: bool = False
    reason: str = ""
    frames: int = 0
    rate: str = ""            # output frame rate as a fraction, "30000/1001"
    vfr: bool = False         # the source had a variable frame rate (every frame kept)
    width: int = 0
    height: int = 0
    psnr: float = 0.0         # lowest PSNR of the verified frames, dB
    bytes: int = 0
    seconds: float = 0.0
    src_codec: str = ""

    def to_json(self) -> dict:
        d = asdict(self)
        if math.isinf(d["psnr"]):
            d["psnr"] = 99.0
        return d


class BadInput(Exception):
    """The source cannot be used; the message is the report's reason."""


def frame_rate(pts: list[int], time_base: Fraction, guessed: Fraction | None) -> tuple[Fraction, bool]:
    """(rate, is_vfr) from the sorted presentation times of all frames. A constant step (within
    two ticks of the time base) is CFR and keeps the container's rate when it agrees, so 29.97 stays
    30000/1001; anything else is VFR and gets its average rate, (n-1) / (last - first)."""
    if len(pts) < 2:
        return (guessed or Fraction(25)), False
    steps = np.diff(np.asarray(pts, dtype=np.int64))
    if steps.min() <= 0:
        raise BadInput("timestamps repeat: cannot order the frames")
    mean = Fraction(int(pts[-1] - pts[0]), len(pts) - 1) * time_base
    average = (1 / mean).limit_denominator(1001)
    if steps.max() - steps.min() <= 2:  # timestamps rounded to the time base jitter by a tick
        if guessed and abs(float(guessed) * float(mean) - 1) < 0.01:
            return guessed, False
        return average, False
    return average, True


def _rotation(frame) -> int:
    """Counter-clockwise degrees the frame must turn to be upright: 0, 90, 180 or 270."""
    try:
        r = frame.rotation
    except (AttributeError, ValueError):
        return 0
    return int(round((r or 0) / 90.0)) % 4 * 90


def output_size(width: int, height: int, rotation: int, short_side: int | None) -> tuple[int, int]:
    """(w, h) after rotation, then scaling so the short side is `short_side` (other side rounded
    to even), or else cropping an odd side by one pixel."""
    if rotation in (90, 270):
        width, height = height, width
    if short_side:
        scale = short_side / min(width, height)
        w, h = (short_side, 2 * round(height * scale / 2)) if width <= height else \
               (2 * round(width * scale / 2), short_side)
        return max(2, w), max(2, h)
    return width // 2 * 2, height // 2 * 2


def build_graph(stream, rotation: int, size: tuple[int, int], pix_fmt: str, scale: bool):
    """buffer -> rotate -> scale (--short-side) or crop (odd sizes) -> format -> buffersink."""
    graph = av.filter.Graph()
    chain = [graph.add_buffer(template=stream)]
    if rotation == 90:        # turn counter-clockwise
        chain.append(graph.add("transpose", "cclock"))
    elif rotation == 270:
        chain.append(graph.add("transpose", "clock"))
    elif rotation == 180:
        chain += [graph.add("hflip"), graph.add("vflip")]
    w, h = size
    if scale:
        chain.append(graph.add("scale", f"w={w}:h={h}:flags=area"))
    else:  # a no-op unless a side is odd: then its last row or column goes
        chain.append(graph.add("crop", f"w={w}:h={h}:x=0:y=0:exact=1"))
    chain.append(graph.add("format", pix_fmt))
    chain.append(graph.add("buffersink"))
    for a, b in zip(chain, chain[1:]):
        a.link_to(b)
    graph.configure()
    return graph


def probe(src: str, min_frames: int):
    """Open and demux only: ((time base, container rate, codec name), sorted pts or None).
    Raises BadInput for anything unusable, including fewer packets than min_frames."""
    try:
        size = os.path.getsize(src)
    except OSError as e:
        raise BadInput(f"cannot read: {e.strerror or e}")
    if size == 0:
        raise BadInput("empty file (0 bytes)")
    try:
        container = av.open(src)
    except PermissionError as e:
        raise BadInput(f"cannot read: {e.strerror}")
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as e:
        raise BadInput(f"not a video PyAV can open: {getattr(e, 'strerror', None) or e}")
    with container:
        if not container.streams.video:
            kinds = sorted({s.type for s in container.streams}) or ["none"]
            raise BadInput(f"no video stream (streams: {', '.join(kinds)})")
        stream = container.streams.video[0]
        if stream.codec_context is None or stream.codec_context.name is None:
            raise BadInput("video stream with a codec PyAV cannot decode")
        try:
            stamps = [p.pts if p.pts is not None else p.dts for p in frame_packets(container, stream)]
        except av.error.FFmpegError as e:
            raise BadInput(f"cannot read the packets: {e}")
        info = (stream.time_base, stream.guessed_rate or stream.average_rate, stream.codec_context.name)
    if len(stamps) < min_frames:
        raise BadInput(f"{len(stamps)} frames, fewer than --min-frames {min_frames}")
    if any(t is None for t in stamps):
        pts = None  # no timestamps (some AVI): trust the container's rate
    else:
        pts = sorted(stamps)
    return info, pts


def transcode(src: str, rel: str, class_name: str, videos_dir: str, settings: Settings,
              done_log: str | None = None) -> Result:
    """Transcode `src` to videos_dir/rel+suffix, verify, log it in `done_log`, rename; never
    raises for bad input. Logged before the rename: a file in place is always in the log."""
    started = time.perf_counter()
    suffix = CODECS[settings.codec][1]
    result = Result(src=src, rel=rel + suffix, class_name=class_name)
    final = os.path.join(videos_dir, rel + suffix)
    tmp = final + ".part"
    try:
        (time_base, guessed, src_codec), pts = probe(src, settings.min_frames)
        result.src_codec = src_codec
        guessed = Fraction(guessed) if guessed else None
        if pts is None:
            rate, vfr = guessed or Fraction(25), False
        else:
            rate, vfr = frame_rate(pts, Fraction(time_base), guessed)
        os.makedirs(os.path.dirname(final), exist_ok=True)
        frames, size, reference = _encode(src, tmp, settings, rate)
        if frames < settings.min_frames:
            raise BadInput(f"{frames} frames decode, fewer than --min-frames {settings.min_frames}")
        try:
            result.psnr = verify(tmp, frames=frames, rate=rate, width=size[0], height=size[1],
                                 gop=settings.gop, codec=settings.codec, reference=reference)
        except VerifyError as e:
            raise BadInput(f"output failed verification: {e}")
        result.bytes = os.path.getsize(tmp)
        result.ok, result.frames, result.vfr = True, frames, vfr
        result.rate = f"{rate.numerator}/{rate.denominator}"
        result.width, result.height = size
        result.seconds = time.perf_counter() - started
        if done_log:
            append_done(done_log, result.to_json())
        os.replace(tmp, final)
    except BadInput as e:
        result.reason = str(e)
    except Exception as e:  # noqa: BLE001 - a worker reports, it never takes the pool down
        result.ok = False
        result.reason = f"unexpected error: {type(e).__name__}: {e}"
    finally:
        if not result.ok and os.path.exists(tmp):
            os.unlink(tmp)
    if not result.ok:
        result.seconds = time.perf_counter() - started
    return result


def _encode(src: str, tmp: str, settings: Settings, rate: Fraction):
    """Decode, filter and encode every frame; return (frames, (w, h), reference frames)."""
    encoder, suffix, pix_fmt, options = CODECS[settings.codec]
    gop = settings.gop
    reference: dict[int, np.ndarray] = {}
    last = None
    count = 0
    graph = size = None
    with av.open(src) as source, av.open(tmp, "w", format=MUXERS[suffix]) as out:
        stream = source.streams.video[0]
        stream.codec_context.thread_count = 1
        ostream = None
        try:
            decoded = source.decode(stream)
            for frame in decoded:
                if graph is None:
                    rotation = _rotation(frame)
                    size = output_size(frame.width, frame.height, rotation, settings.short_side)
                    if min(size) < 2:
                        raise BadInput(f"frames of {frame.width}x{frame.height} are too small")
                    graph = build_graph(stream, rotation, size, pix_fmt, bool(settings.short_side))
                    ostream = out.add_stream(encoder, rate=rate)
                    ostream.width, ostream.height = size
                    ostream.pix_fmt = pix_fmt
                    ostream.codec_context.time_base = 1 / rate
                    ostream.codec_context.gop_size = gop
                    ostream.codec_context.thread_count = 1
                    ostream.options = {**options, **EXTRA_OPTIONS.get(settings.codec, {}),
                                       "g": str(gop), "keyint_min": str(gop)}
                frame.pts = None  # the graph needs no clock; our pts is set below
                graph.push(frame)
                filtered = graph.pull()
                filtered.pts = count
                filtered.pict_type = PictureType.NONE  # else a source keyframe forces one here
                filtered.time_base = 1 / rate
                if is_sample(count):
                    reference[count] = filtered.to_ndarray()
                last = filtered
                for packet in ostream.encode(filtered):
                    out.mux(packet)
                count += 1
        except av.error.FFmpegError as e:
            raise BadInput(f"decoding failed after {count} frames: {e}")
        if ostream is None:
            raise BadInput("no frame decodes")
        if count - 1 not in reference:
            reference[count - 1] = last.to_ndarray()
        for packet in ostream.encode():
            out.mux(packet)
    return count, size, reference
