"""Which files DALI can decode on a device, checked before DALI sees them (decode-free).

DALI fails mid-run on a file it cannot decode, or drops it with only a warning (which would
shift every later sample), so every file is probed up front and the bad ones are named.
"""
from __future__ import annotations

import os
from typing import Sequence

import torch

from fastssl.data.dataset import DatasetError, Video
from fastssl.data.frame_count import stream_frames

# What fn.decoders.video decodes (DALI 2.4 docs; CPU list re-checked here).
CPU_CODECS = frozenset({"vp8", "vp9", "mjpeg"})
NVDEC_CODECS = CPU_CODECS | {"h264", "hevc", "av1", "mpeg4"}
# NVDEC decodes H.264 only as 8-bit 4:2:0 on the GPUs we target; 4:4:4 or 10-bit files fail
# at decode time with a message that names no file, so refuse them up front.
NVDEC_H264_PIX_FMTS = frozenset({"yuv420p", "yuvj420p", "nv12"})


def decodable_codecs(device: str) -> frozenset[str]:
    return CPU_CODECS if torch.device(device).type == "cpu" else NVDEC_CODECS


def probe(video: Video, *, device: str, min_frames: int) -> str | None:
    """Why DALI on `device` cannot use `video`, or None. Decode-free: opens the container,
    reads the stream's metadata, and counts packets only when the container has no count (WebM).
    A file whose header still claims frames it lost is caught later, when DALI returns a short
    window (DecodeError naming the file)."""
    import av

    path = video.path
    if not os.path.isfile(path):
        return "file is missing"
    try:
        container = av.open(path)
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as e:
        return f"cannot be opened (damaged or not a video): {e}"
    with container:
        if not container.streams.video:
            return "has no video stream"
        stream = container.streams.video[0]
        codec = stream.codec_context.name
        codecs = decodable_codecs(device)
        where = "on the CPU" if torch.device(device).type == "cpu" else "with NVDEC"
        if codec not in codecs:
            return (f"codec {codec}: DALI decodes only {', '.join(sorted(codecs))} {where} "
                    "(re-encode it to VP9 or MJPEG, e.g. `fastssl synth --codec vp9`, or use --loader pyav)")
        pix_fmt = stream.codec_context.pix_fmt
        if where == "with NVDEC" and codec == "h264" and pix_fmt not in NVDEC_H264_PIX_FMTS:
            return f"H.264 in {pix_fmt}: NVDEC decodes H.264 only as 8-bit 4:2:0 (re-encode it)"
        try:
            frames = stream_frames(container, stream)  # packets counted only when WebM has no count
        except (av.error.FFmpegError, OSError) as e:
            return f"damaged: {e}"
    if frames != video.frames:
        return f"has {frames} frames but index.csv says {video.frames} (truncated or replaced?)"
    if frames < min_frames:
        return f"{frames} frames, needs at least {min_frames}"
    return None


def validate_files(videos: Sequence[Video], *, device: str, min_frames: int, skip: bool,
                   report=print) -> list[Video]:
    """Probe every file before DALI sees it. Bad files raise DatasetError listing all of them,
    or with `skip` are reported (path and reason) and dropped."""
    bad = []
    for video in videos:
        why = probe(video, device=device, min_frames=min_frames)
        if why is not None:
            bad.append((video, why))
    if not bad:
        return list(videos)
    lines = "\n".join(f"  {v.path}: {why}" for v, why in bad)
    if not skip:
        raise DatasetError(f"{len(bad)} video(s) the DALI loader cannot use on {device}:\n{lines}\n"
                           "(pass --skip-bad to skip them)")
    report(f"skipping {len(bad)} video(s) the DALI loader cannot use on {device}:\n{lines}")
    dropped = {id(v) for v, _ in bad}
    kept = [v for v in videos if id(v) not in dropped]
    if not kept:
        raise DatasetError(f"no usable videos left: all {len(bad)} were rejected for the DALI loader "
                           f"on {device} (reasons above)")
    return kept
