"""The sampling plans own every random choice: (seed, epoch, index) -> the same sample."""
import itertools

import pytest

from fastssl.data.dataset import load_dataset
from fastssl.data.sampling import ClipPlan, Geometry, PretextPlan, stream_keys
from videos import make_coded_dataset

GEOM = Geometry(resize=(72, 96), size=64)


@pytest.fixture(scope="module")
def coded(tmp_path_factory):
    return load_dataset(make_coded_dataset(tmp_path_factory.mktemp("coded")))


def test_an_epoch_visits_every_video_once(coded):
    plan = PretextPlan(coded.train, W=20, D=8, N=6, mode="pb", geometry=GEOM, seed=0)
    n = plan.epoch_size
    first = [plan.video_index(0, i) for i in range(n)]
    assert sorted(first) == list(range(n))
    assert [plan.video_index(1, i) for i in range(n)] != first


def test_samples_are_a_function_of_seed_epoch_and_index(coded):
    a = PretextPlan(coded.train, W=20, D=8, N=6, mode="rp", geometry=GEOM, seed=4)
    b = PretextPlan(coded.train, W=20, D=8, N=6, mode="rp", geometry=GEOM, seed=4)
    # b visits in another order first: its answers must not depend on what it drew before
    later = [b.sample(2, 1), b.sample(0, 3)]
    assert a.sample(0, 3)[0] == later[1][0] and a.sample(2, 1)[0] == later[0][0]
    other = PretextPlan(coded.train, W=20, D=8, N=6, mode="rp", geometry=GEOM, seed=5)
    assert [other.sample(0, i)[0] for i in range(6)] != [a.sample(0, i)[0] for i in range(6)]


def test_evaluation_plans_centre_crop_without_flips(coded):
    plan = ClipPlan(coded.test, D=8, geometry=GEOM, seed=1, train=False)
    centre = GEOM.crop(None)
    for i in range(plan.epoch_size):
        window, _ = plan.sample(0, i)
        assert (window.top, window.left, window.flip) == centre
    train = ClipPlan(coded.train, D=8, geometry=GEOM, seed=1)
    assert {train.sample(e, i)[0].flip for e in range(4) for i in range(train.epoch_size)} == {True, False}


def test_stream_keys_cross_epochs_without_dropping():
    keys = list(itertools.chain.from_iterable(itertools.islice(stream_keys(5, 3), 4)))
    assert keys == [(0, 0), (0, 1), (0, 2), (0, 3), (0, 4), (1, 0), (1, 1), (1, 2), (1, 3), (1, 4), (2, 0), (2, 1)]
    assert next(stream_keys(5, 3, start_step=2)) == keys[6:9]


def test_ranks_take_the_slices_of_the_global_batch():
    whole = list(itertools.islice(stream_keys(7, 6), 5))
    for world in (2, 3):
        parts = [list(itertools.islice(stream_keys(7, 6, rank=r, world_size=world), 5)) for r in range(world)]
        for step in range(5):
            assert sum((p[step] for p in parts), []) == whole[step]
    resumed = next(stream_keys(7, 6, start_step=3, rank=1, world_size=2))
    assert resumed == whole[3][3:]


@pytest.mark.parametrize("args", [(5, 3, 0, 0, 2), (5, 4, 0, 2, 2), (0, 4, 0, 0, 1), (5, 1, 0, 0, 2)])
def test_stream_keys_refuse_what_cannot_work(args):
    with pytest.raises(ValueError):
        next(stream_keys(*args))


def test_geometry_refuses_a_crop_larger_than_the_frame():
    with pytest.raises(ValueError, match="larger"):
        Geometry(resize=(60, 80), size=64)
