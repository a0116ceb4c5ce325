"""Decoded frames are exactly the frames asked for: index-coded videos, every codec, every GOP."""
import numpy as np
import pytest

from fastssl.data.pyav_decode import DecodeError, WindowDecoder
from videos import MAX_FRAMES, coded_frame, frame_ids, is_flipped, write_coded_video

EXT = {"h264": ".mp4", "vp9": ".webm", "mjpeg": ".avi"}


def test_coding_survives_the_identity():
    frames = np.stack([coded_frame(i, 96, 72) for i in range(MAX_FRAMES)])
    assert frame_ids(frames) == list(range(MAX_FRAMES))
    assert not any(is_flipped(frames)) and all(is_flipped(frames[:, :, ::-1]))


@pytest.mark.parametrize("codec", ["h264", "vp9", "mjpeg"])
@pytest.mark.parametrize("gop", [1, 8, 13])
def test_windows_are_exact(tmp_path, codec, gop):
    path = str(tmp_path / f"v{EXT[codec]}")
    assert write_coded_video(path, 40, codec=codec, gop=gop) == 40
    decoder = WindowDecoder()
    # random access in an order that forces backward and forward seeks on one open container
    for start, length in [(0, 20), (17, 20), (3, 8), (32, 8), (20, 20), (9, 1), (39, 1)]:
        frames = decoder.decode(path, start, length, fps=25)
        assert frames.shape == (length, 72, 96, 3) and frames.dtype == np.uint8
        assert frame_ids(frames) == list(range(start, start + length)), (start, length)


def test_resize_keeps_identity(tmp_path):
    path = str(tmp_path / "v.mp4")
    write_coded_video(path, 24)
    frames = WindowDecoder().decode(path, 4, 12, fps=25, resize=(36, 48))
    assert frames.shape == (12, 36, 48, 3)
    assert frame_ids(frames) == list(range(4, 16))


def test_reading_past_the_end_names_the_file(tmp_path):
    path = str(tmp_path / "short.mp4")
    write_coded_video(path, 10)
    with pytest.raises(DecodeError, match="short.mp4.*ends after 10 frames"):
        WindowDecoder().decode(path, 5, 8, fps=25)


def test_corrupt_file_names_the_file(tmp_path):
    path = tmp_path / "corrupt.mp4"
    path.write_bytes(b"\x00\x00\x00\x18ftypisom" + b"garbage" * 100)
    with pytest.raises(DecodeError, match="corrupt.mp4"):
        WindowDecoder().decode(str(path), 0, 8, fps=25)


@pytest.mark.parametrize("codec", ["h264", "vp9"])
def test_timing_hook_adds_each_stage_and_changes_no_pixel(tmp_path, codec):
    path = str(tmp_path / f"v{EXT[codec]}")
    write_coded_video(path, 40, codec=codec, gop=8)
    plain = WindowDecoder()
    assert plain.timings is None  # the default: decode reads no clock
    timings: dict = {}
    timed = WindowDecoder(timings=timings)
    seen = []
    for start, length in [(0, 20), (17, 20), (3, 8)]:
        expected = plain.decode(path, start, length, fps=25, resize=(36, 48))
        assert np.array_equal(timed.decode(path, start, length, fps=25, resize=(36, 48)), expected)
        seen.append(dict(timings))
    assert set(timings) == set(WindowDecoder.STAGES)
    # every stage is met on every call, so each one's total grows with each window
    for before, after in zip(seen, seen[1:]):
        assert all(after[k] > before[k] for k in WindowDecoder.STAGES), (before, after)
    assert timed.is_open(path) and not WindowDecoder().is_open(path)
    timed.close()
    assert not timed.is_open(path)


def test_damaged_packets_raise_instead_of_being_concealed(tmp_path):
    import av
    path = tmp_path / "v.mp4"
    write_coded_video(path, 40, width=128, height=96, codec="h264")
    raw = bytearray(path.read_bytes())
    with av.open(str(path)) as c:
        packets = [(p.pos, p.size) for p in c.demux(c.streams.video[0]) if p.size]
    rng = np.random.default_rng(0)
    for pos, size in packets[32:]:  # the last frames' data, past the start-up checks' reach
        raw[pos + size // 3:pos + size] = rng.integers(0, 256, size - size // 3, dtype=np.uint8).tobytes()
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(bytes(raw))
    decoder = WindowDecoder()
    assert frame_ids(decoder.decode(str(damaged), 0, 20, fps=25)) == list(range(20))  # intact part
    with pytest.raises(DecodeError, match="damaged.mp4"):
        decoder.decode(str(damaged), 20, 20, fps=25)
    decoder.close()


@pytest.mark.parametrize("codec", ["h264", "vp9", "mjpeg"])
def test_frame_counts_from_packets(tmp_path, codec):
    # One count for every reader of counts: the container's own where it stores one, packets
    # where it does not (WebM), and packets always for count_frames.
    import av

    from fastssl.data.frame_count import count_frames, frame_packets, stream_frames
    path = str(tmp_path / f"v{EXT[codec]}")
    write_coded_video(path, 23, codec=codec)
    assert count_frames(path) == 23
    with av.open(path) as container:
        stream = container.streams.video[0]
        assert stream_frames(container, stream) == 23
    with av.open(path) as container:
        stream = container.streams.video[0]
        pts = sorted(p.pts * stream.time_base * 25 for p in frame_packets(container, stream))
        assert pts == list(range(23))  # one packet per frame, no flush packet among them
