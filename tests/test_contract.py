"""Every loader the host has follows the one contract (fastssl/data/contract.py): the same
keys, dtypes and shapes, and the same video, window, crop and flip as the plan asks for, for
the same seed. Pixels may differ by colour conversion; frame identity, crop and mirror may not."""
import itertools
import multiprocessing

import numpy as np
import pytest
import torch

from fastssl.data import loaders
from fastssl.data.contract import BATCH_KEYS, BatchStream
from fastssl.data.dataset import load_dataset
from fastssl.data.sampling import ClipPlan, Geometry, PretextPlan, eval_clip_starts, stream_keys
from videos import assert_same_frames, crop_edges, frame_ids, is_flipped, make_coded_dataset

# 96x72 videos scaled to 80 wide: a real resize, and every 64-px crop keeps part of the white
# quarter, so a mirror is always visible.
GEOM = Geometry(resize=(72, 80), size=64)
AVAILABLE = [name for name in loaders.LOADERS if name != "dali" or loaders.dali_available()]
DTYPES = {"windows": torch.uint8, "clips": torch.uint8, "starts": torch.int64, "orders": torch.int64,
          "label": torch.int64, "video": torch.int64}


@pytest.fixture(scope="module")
def vp9(tmp_path_factory):
    # VP9: the codec both PyAV and DALI's CPU decoder read.
    return load_dataset(make_coded_dataset(tmp_path_factory.mktemp("contract"), codec="vp9"))


@pytest.fixture(params=AVAILABLE)
def loader(request):
    return loaders.get(request.param)


def check_types(item: dict, kind: str):
    assert tuple(sorted(item)) == tuple(sorted(BATCH_KEYS[kind]))
    for key, value in item.items():
        if key == "bad":  # failures met while decoding this batch: none in a healthy dataset
            assert value == []
        else:
            assert value.dtype == DTYPES[key], key


def expected_window(videos, window, crop_from):
    """What the plan's window should look like: frame ids and flip; crop position via the
    reference decode of the same window (PyAV in this process)."""
    from fastssl.data.pyav_loader import decode_window
    return torch.from_numpy(decode_window(videos, window, crop_from))


def test_pretext_batches_are_what_the_plan_asks_for(vp9, loader):
    plan = PretextPlan(vp9.train, W=20, D=8, N=6, mode="rp", geometry=GEOM, seed=3)
    flips = set()
    with loader.pretext_batches(plan, 4, device="cpu", workers=1) as batches:
        assert isinstance(batches, BatchStream)
        for step, batch in enumerate(itertools.islice(batches, 2)):
            check_types(batch, "pretext")
            assert batch["windows"].shape == (4, 20, 64, 64, 3)
            assert batch["starts"].shape == (4, 6) and batch["orders"].shape == (4, 6, 8)
            keys = next(itertools.islice(stream_keys(plan.epoch_size, 4), step, None))
            for b, (epoch, i) in enumerate(keys):
                window, q = plan.sample(epoch, i)
                frames = batch["windows"][b]
                assert frame_ids(frames.numpy()) == list(range(window.start, window.start + 20))
                assert_same_frames(frames, expected_window(plan.videos, window, GEOM.resize))
                np.testing.assert_array_equal(batch["starts"][b].numpy(), q.starts)
                np.testing.assert_array_equal(batch["orders"][b].numpy(), q.orders)
                assert int(batch["label"][b]) == q.label and int(batch["video"][b]) == window.video
                flips.add(window.flip)
    assert flips == {True, False}  # both mirror states were checked


def test_clip_batches_are_what_the_plan_asks_for(vp9, loader):
    plan = ClipPlan(vp9.train, D=8, geometry=GEOM, seed=5)
    with loader.clip_batches(plan, 6, device="cpu", workers=0) as batches:
        batch = next(batches)
    check_types(batch, "clips")
    assert batch["windows"].shape == (6, 8, 64, 64, 3) and batch["label"].shape == (6,)
    for b, (epoch, i) in enumerate(next(stream_keys(plan.epoch_size, 6))):
        window, label = plan.sample(epoch, i)
        assert_same_frames(batch["windows"][b], expected_window(plan.videos, window, GEOM.resize))
        assert int(batch["label"][b]) == label == vp9.train[window.video].label
        assert int(batch["video"][b]) == window.video


def test_evaluation_items_hold_every_clip_of_each_video(vp9, loader):
    with loader.eval_videos(vp9.test, 8, GEOM, device="cpu", workers=0) as items:
        items = list(items)
    assert [int(it["video"]) for it in items] == list(range(len(vp9.test)))
    for item, video in zip(items, vp9.test):
        check_types(item, "eval")
        starts = eval_clip_starts(video.frames, 8)
        assert item["clips"].shape == (len(starts), 8, 64, 64, 3)
        for clip, s in zip(item["clips"].numpy(), starts):
            assert frame_ids(clip) == list(range(s, s + 8))
            assert not any(is_flipped(clip))
        assert item["label"].shape == () and int(item["label"]) == video.label


def test_ranks_take_slices_of_the_one_process_batch(vp9, loader):
    plan = PretextPlan(vp9.train, W=20, D=8, N=6, mode="ss", geometry=GEOM, seed=7)
    with loader.pretext_batches(plan, 4, device="cpu", workers=0) as one:
        whole = [next(one) for _ in range(2)]
    for rank in range(2):
        with loader.pretext_batches(plan, 4, device="cpu", workers=0, rank=rank, world_size=2) as part:
            for step in range(2):
                got = next(part)
                for key in ("starts", "orders", "label", "video"):
                    assert torch.equal(got[key], whole[step][key][2 * rank: 2 * rank + 2]), key
                assert frame_ids(got["windows"][0].numpy()) == frame_ids(whole[step]["windows"][2 * rank].numpy())


def test_evaluation_splits_videos_across_ranks(vp9, loader):
    seen = []
    for rank in range(2):
        with loader.eval_videos(vp9.test, 8, GEOM, device="cpu", rank=rank, world_size=2) as items:
            seen += [int(it["video"]) for it in items]
    assert sorted(seen) == list(range(len(vp9.test)))  # every test video exactly once


def test_start_step_resumes_the_stream(vp9, loader):
    plan = ClipPlan(vp9.train, D=8, geometry=GEOM, seed=9)
    with loader.clip_batches(plan, 3, device="cpu") as batches:
        third = list(itertools.islice(batches, 3))[2]
    with loader.clip_batches(plan, 3, device="cpu", start_step=2) as batches:
        resumed = next(batches)
    for key in ("label", "video"):
        assert torch.equal(resumed[key], third[key])
    assert frame_ids(resumed["windows"][1].numpy()) == frame_ids(third["windows"][1].numpy())


def test_close_stops_the_stream(vp9, loader):
    plan = ClipPlan(vp9.train, D=8, geometry=GEOM, seed=1)
    batches = loader.clip_batches(plan, 2, device="cpu", workers=2)
    next(batches)
    batches.close()
    batches.close()  # twice is fine
    assert batches.closed
    with pytest.raises(StopIteration):
        next(batches)
    assert not [p for p in multiprocessing.active_children() if p.is_alive()]  # no worker left


@pytest.mark.parametrize("bad", [dict(workers=-1), dict(decoders=0), dict(rank=2, world_size=2)])
def test_bad_stream_arguments_are_refused(vp9, loader, bad):
    plan = ClipPlan(vp9.train, D=8, geometry=GEOM, seed=1)
    with pytest.raises(ValueError):
        loader.clip_batches(plan, 2, device="cpu", **bad)


def test_a_batch_that_does_not_split_over_the_ranks_is_refused(vp9, loader):
    plan = ClipPlan(vp9.train, D=8, geometry=GEOM, seed=1)
    with pytest.raises(ValueError, match="split evenly"):
        next(loader.clip_batches(plan, 3, device="cpu", rank=0, world_size=2))


def test_crop_edges_see_a_one_pixel_shift():
    # the crop check above is only worth something if it notices an off-by-one crop
    from fastssl.data.pyav_decode import WindowDecoder  # noqa: F401 - same decoder as the loaders
    from videos import coded_frame
    frame = np.stack([coded_frame(12, 96, 72)])
    a, b = crop_edges(frame[:, :, 8:72]), crop_edges(frame[:, :, 9:73])
    assert abs(a[0, 0] - b[0, 0]) >= 0.9


def test_a_script_that_exits_without_closing_does_not_hang(vp9, tmp_path):
    # multiprocessing's exit handler SIGTERMs loader workers, which ignore SIGTERM: the
    # contract's own exit handler must close the stream first
    import subprocess
    import sys
    script = tmp_path / "leave.py"
    script.write_text(
        "from fastssl.data import pyav_loader\n"
        "from fastssl.data.dataset import load_dataset\n"
        "from fastssl.data.sampling import ClipPlan, Geometry\n"
        f"data = load_dataset({vp9.root!r})\n"
        "plan = ClipPlan(data.train, D=8, geometry=Geometry((72, 80), 64), seed=0)\n"
        "stream = pyav_loader.clip_batches(plan, 2, workers=2)\n"
        "next(stream)\n"
        "raise SystemExit(3)\n")
    result = subprocess.run([sys.executable, str(script)], timeout=120, capture_output=True)
    assert result.returncode == 3


def test_redraw_tries_each_attempt_in_order_and_names_the_sample():
    # Every loader redraws through contract.redraw: attempt k of sample (epoch, i) is
    # plan.sample(epoch, i, k), failures are reported in draw order, and REDRAWS + 1 failures
    # in a row name the sample.
    from types import SimpleNamespace

    from fastssl.data.contract import REDRAWS, DecodeError, redraw

    class Plan:
        def sample(self, epoch, i, attempt):
            return SimpleNamespace(video=10 * i + attempt), ("extra", epoch, i, attempt)

    def fails_below(n):
        def attempt(window):
            if window.video % 10 < n:
                raise DecodeError(f"video {window.video} is bad")
            return f"frames of {window.video}"
        return attempt

    window, extra, frames, bad = redraw(Plan(), 0, 3, fails_below(0))
    assert (window.video, extra, frames, bad) == (30, ("extra", 0, 3, 0), "frames of 30", [])
    window, extra, frames, bad = redraw(Plan(), 1, 2, fails_below(2))
    assert (window.video, extra, frames) == (22, ("extra", 1, 2, 2), "frames of 22")
    assert bad == [(20, "video 20 is bad"), (21, "video 21 is bad")]
    with pytest.raises(DecodeError, match=rf"sample 4 of epoch 5: {REDRAWS + 1} draws in a row") as e:
        redraw(Plan(), 5, 4, fails_below(REDRAWS + 1))
    assert f"video {40 + REDRAWS} is bad" in str(e.value)
