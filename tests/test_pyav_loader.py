"""What is particular to the PyAV loader (the contract itself is tested in test_contract.py):
workers change nothing, and the pixels are exactly what the decoder gives."""
import itertools

import numpy as np
import pytest
import torch

from fastssl.data.dataset import load_dataset
from fastssl.data.pyav_decode import WindowDecoder
from fastssl.data.pyav_loader import clip_batches, pretext_batches
from fastssl.data.sampling import ClipPlan, Geometry, PretextPlan, stream_keys
from videos import make_coded_dataset, same_value

GEOM = Geometry(resize=(72, 96), size=64)


@pytest.fixture(scope="module")
def coded(tmp_path_factory):
    return load_dataset(make_coded_dataset(tmp_path_factory.mktemp("coded")))


def test_same_batches_whatever_the_workers(coded):
    plan = PretextPlan(coded.train, W=20, D=8, N=6, mode="ss", geometry=GEOM, seed=11)
    with pretext_batches(plan, 3, workers=0) as a, pretext_batches(plan, 3, workers=2) as b:
        for x, y in zip(itertools.islice(a, 4), itertools.islice(b, 4)):
            for key in x:
                assert same_value(x[key], y[key]), key


def test_pixels_are_the_decoders_resized_crop(coded):
    plan = ClipPlan(coded.train, D=8, geometry=GEOM, seed=2)
    with clip_batches(plan, 4, workers=0) as batches:
        batch = next(batches)
    decoder = WindowDecoder()
    for b, (epoch, i) in enumerate(next(stream_keys(plan.epoch_size, 4))):
        w, _ = plan.sample(epoch, i)
        video = coded.train[w.video]
        full = decoder.decode(video.path, w.start, w.length, fps=video.fps, resize=GEOM.resize)
        crop = full[:, w.top:w.top + w.size, w.left:w.left + w.size]
        if w.flip:
            crop = crop[:, :, ::-1]
        np.testing.assert_array_equal(batch["windows"][b].numpy(), crop)
    decoder.close()
