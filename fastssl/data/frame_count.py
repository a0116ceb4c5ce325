"""How many frames a video holds, from its packets: demuxing only, no decoding.

One definition of "a frame's packet" for every reader of counts (the dataset's header check,
DALI's probe, `prepare`, the bench): in the streams we read every non-empty packet is one frame;
demuxing ends with empty packets that flush the decoder and hold none. Kept free of torch: the
`prepare` workers import it.
"""
from __future__ import annotations

from typing import Iterator

import av


def frame_packets(container, stream) -> Iterator[av.Packet]:
    """The packets of `stream` that hold a frame, in file order (FFmpegError/OSError pass through)."""
    return (packet for packet in container.demux(stream) if packet.size > 0)


def stream_frames(container, stream) -> int:
    """The stream's frame count: the container's own, or counted from the packets when it stores
    none (WebM/Matroska)."""
    return stream.frames or sum(1 for _ in frame_packets(container, stream))


def count_frames(path: str) -> int:
    """The frames of `path`'s first video stream, counted from its packets (the container's own
    count is not trusted)."""
    with av.open(path) as container:
        stream = container.streams.video[0]
        return sum(1 for _ in frame_packets(container, stream))
