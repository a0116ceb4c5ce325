"""The PyAV loader delivers exactly what the sampling plan asks for, whatever the workers."""
import itertools

import numpy as np
import pytest
import torch

from fastssl.data.dataset import load_dataset
from fastssl.data.pyav_loader import clip_batches, eval_video_batches, pretext_batches
from fastssl.data.sampling import ClipPlan, Geometry, PretextPlan, eval_clip_starts, stream_keys
from videos import frame_ids, is_flipped, make_coded_dataset

GEOM = Geometry(resize=(72, 96), size=64)


@pytest.fixture(scope="module")
def coded(tmp_path_factory):
    return load_dataset(make_coded_dataset(tmp_path_factory.mktemp("coded")))


def test_pretext_windows_match_the_plan(coded):
    plan = PretextPlan(coded.train, W=20, D=8, N=6, mode="rp", geometry=GEOM, seed=3)
    batches = pretext_batches(plan, 4, workers=0)
    flips = set()
    for step, batch in enumerate(itertools.islice(batches, 3)):
        assert batch["windows"].shape == (4, 20, 64, 64, 3) and batch["windows"].dtype == torch.uint8
        keys = [(e, i) for e, i in next(itertools.islice(stream_keys(plan.epoch_size, 4), step, None))]
        for b, (epoch, i) in enumerate(keys):
            window, q = plan.sample(epoch, i)
            frames = batch["windows"][b].numpy()
            assert frame_ids(frames) == list(range(window.start, window.start + 20))
            assert is_flipped(frames) == [window.flip] * 20
            np.testing.assert_array_equal(batch["starts"][b].numpy(), q.starts)
            np.testing.assert_array_equal(batch["orders"][b].numpy(), q.orders)
            assert int(batch["label"][b]) == q.label and int(batch["video"][b]) == window.video
            flips.add(window.flip)
    assert flips == {True, False}


def test_same_batches_whatever_the_workers(coded):
    plan = PretextPlan(coded.train, W=20, D=8, N=6, mode="ss", geometry=GEOM, seed=11)
    a = list(itertools.islice(pretext_batches(plan, 3, workers=0), 4))
    b = list(itertools.islice(pretext_batches(plan, 3, workers=2), 4))
    for x, y in zip(a, b):
        for key in x:
            assert torch.equal(x[key], y[key]), key


def test_an_epoch_visits_every_video_once(coded):
    plan = PretextPlan(coded.train, W=20, D=8, N=6, mode="pb", geometry=GEOM, seed=0)
    n = plan.epoch_size
    first = [plan.video_index(0, i) for i in range(n)]
    assert sorted(first) == list(range(n))
    assert [plan.video_index(1, i) for i in range(n)] != first or n < 3


def test_stream_keys_cross_epochs_without_dropping():
    keys = list(itertools.chain.from_iterable(itertools.islice(stream_keys(5, 3), 4)))
    assert keys == [(0, 0), (0, 1), (0, 2), (0, 3), (0, 4), (1, 0), (1, 1), (1, 2), (1, 3), (1, 4), (2, 0), (2, 1)]
    resumed = next(stream_keys(5, 3, start_step=2))
    assert resumed == keys[6:9]
    ranks = [set(itertools.chain.from_iterable(itertools.islice(stream_keys(6, 3, rank=r, world_size=2), 1)))
             for r in range(2)]
    assert not ranks[0] & ranks[1] and len(ranks[0] | ranks[1]) == 6


def test_finetune_clips_and_labels(coded):
    plan = ClipPlan(coded.train, D=8, geometry=GEOM, seed=5)
    batch = next(clip_batches(plan, 6, workers=0))
    assert batch["windows"].shape == (6, 8, 64, 64, 3)
    for b, (epoch, i) in enumerate(next(stream_keys(plan.epoch_size, 6))):
        window, label = plan.sample(epoch, i)
        assert frame_ids(batch["windows"][b].numpy()) == list(range(window.start, window.start + 8))
        assert int(batch["label"][b]) == label == coded.train[window.video].label


def test_evaluation_reads_every_non_overlapping_clip_in_order(coded):
    items = list(eval_video_batches(coded.test, 8, GEOM, workers=0))
    assert [int(it["video"]) for it in items] == list(range(len(coded.test)))
    for item, video in zip(items, coded.test):
        starts = eval_clip_starts(video.frames, 8)
        assert item["clips"].shape == (len(starts), 8, 64, 64, 3)
        for clip, s in zip(item["clips"].numpy(), starts):
            assert frame_ids(clip) == list(range(s, s + 8))
            assert not any(is_flipped(clip))
        assert int(item["label"]) == video.label


def test_geometry_refuses_a_crop_larger_than_the_frame():
    with pytest.raises(ValueError, match="larger"):
        Geometry(resize=(60, 80), size=64)
