"""The DALI loader delivers exactly what the sampling plan asks for - the same (video, window,
crop, flip) as the PyAV loader - and refuses files it cannot decode, naming them.

CPU tests use VP9 and MJPEG (DALI's CPU decoder handles only VP8/VP9/MJPEG); the GPU tests
(NVDEC, H.264) run only where CUDA is visible.
"""
import dataclasses
import itertools
import os
import threading

import numpy as np
import pytest
import torch

pytest.importorskip("nvidia.dali", reason="nvidia-dali is not installed (pip install nvidia-dali-cuda130)")

from fastssl.data import dali, pyav_loader  # noqa: E402
from fastssl.data.dali import reader as dali_reader  # noqa: E402
from fastssl.data.dataset import DatasetError, load_dataset  # noqa: E402
from fastssl.data.contract import DecodeError  # noqa: E402
from fastssl.data.sampling import ClipPlan, Geometry, PretextPlan, eval_clip_starts, stream_keys  # noqa: E402
from videos import (assert_same_frames, frame_ids, is_flipped, make_coded_dataset, same_value,  # noqa: E402
                    write_coded_video)

# 96x72 videos scaled to 80 wide: a real resize, and every 64-px crop keeps part of the white
# quarter, so a mirror is always visible.
GEOM = Geometry(resize=(72, 80), size=64)


@pytest.fixture(scope="module")
def vp9(tmp_path_factory):
    return load_dataset(make_coded_dataset(tmp_path_factory.mktemp("vp9"), codec="vp9"))


@pytest.fixture(scope="module")
def mjpeg(tmp_path_factory):
    return load_dataset(make_coded_dataset(tmp_path_factory.mktemp("mjpeg"), codec="mjpeg"))


@pytest.fixture(params=["vp9", "mjpeg"])
def coded(request):
    return request.getfixturevalue(request.param)


def test_pretext_windows_match_the_plan_and_pyav(coded):
    plan = PretextPlan(coded.train, W=20, D=8, N=6, mode="rp", geometry=GEOM, seed=3)
    got = list(itertools.islice(dali.pretext_batches(plan, 4, workers=2), 3))
    pyav = list(itertools.islice(pyav_loader.pretext_batches(plan, 4, workers=0), 3))
    flips = set()
    for step, (batch, ref) in enumerate(zip(got, pyav)):
        assert batch.keys() == ref.keys()
        assert batch["windows"].shape == (4, 20, 64, 64, 3) and batch["windows"].dtype == torch.uint8
        keys = next(itertools.islice(stream_keys(plan.epoch_size, 4), step, None))
        for b, (epoch, i) in enumerate(keys):
            window, q = plan.sample(epoch, i)
            frames = batch["windows"][b].numpy()
            assert frame_ids(frames) == list(range(window.start, window.start + 20))
            assert is_flipped(frames) == [window.flip] * 20
            flips.add(window.flip)
        for key in ("starts", "orders", "label", "video"):
            assert batch[key].dtype == ref[key].dtype and torch.equal(batch[key], ref[key]), key
        assert_same_frames(batch["windows"], ref["windows"])
    assert flips == {True, False}


def test_finetune_clips_match_the_plan_and_pyav(vp9):
    plan = ClipPlan(vp9.train, D=8, geometry=GEOM, seed=5)
    batch = next(dali.clip_batches(plan, 6, workers=2))
    ref = next(pyav_loader.clip_batches(plan, 6, workers=0))
    assert batch["windows"].shape == (6, 8, 64, 64, 3)
    for b, (epoch, i) in enumerate(next(stream_keys(plan.epoch_size, 6))):
        window, label = plan.sample(epoch, i)
        frames = batch["windows"][b].numpy()
        assert frame_ids(frames) == list(range(window.start, window.start + 8))
        assert is_flipped(frames) == [window.flip] * 8
        assert int(batch["label"][b]) == label == vp9.train[window.video].label
    assert torch.equal(batch["label"], ref["label"]) and torch.equal(batch["video"], ref["video"])
    assert_same_frames(batch["windows"], ref["windows"])


@pytest.mark.parametrize("which", ["same lengths", "mixed lengths"])
def test_evaluation_reads_every_non_overlapping_clip_in_order(coded, which, monkeypatch):
    # Clips of one video span batches, and the last batch is short (padded).
    monkeypatch.setattr(dali, "EVAL_CLIPS_PER_BATCH", 4)
    videos = coded.test if which == "same lengths" else coded.test + coded.train[:-1]
    assert sum(len(eval_clip_starts(v.frames, 8)) for v in videos) % 4
    items = list(dali.eval_videos(videos, 8, GEOM, workers=2))
    refs = list(pyav_loader.eval_videos(videos, 8, GEOM, workers=0))
    assert [int(it["video"]) for it in items] == list(range(len(videos)))
    for item, ref, video in zip(items, refs, videos):
        starts = eval_clip_starts(video.frames, 8)
        assert item["clips"].shape == (len(starts), 8, 64, 64, 3)
        for clip, s in zip(item["clips"].numpy(), starts):
            assert frame_ids(clip) == list(range(s, s + 8))
            assert not any(is_flipped(clip))
        assert int(item["label"]) == video.label == int(ref["label"])
        assert_same_frames(item["clips"], ref["clips"])


def test_a_held_batch_is_not_overwritten(vp9, monkeypatch):
    monkeypatch.setattr(dali_reader, "CHUNK_BATCHES", 2)  # pipelines retire meanwhile
    plan = PretextPlan(vp9.train, W=20, D=8, N=6, mode="ss", geometry=GEOM, seed=1)
    batches = dali.pretext_batches(plan, 3, workers=2, decoders=2)
    held = next(batches)
    ids = [frame_ids(w) for w in held["windows"].numpy()]
    copy = held["windows"].clone()
    later = list(itertools.islice(batches, 2 * dali.PREFETCH * 2 + 1))  # every buffer cycles
    assert any(frame_ids(b["windows"][0].numpy()) != ids[0] for b in later)  # they differ...
    assert [frame_ids(w) for w in held["windows"].numpy()] == ids  # ...and the held one is intact
    assert torch.equal(held["windows"], copy)


def test_same_batches_whatever_the_decoders_and_threads(vp9):
    plan = PretextPlan(vp9.train, W=20, D=8, N=6, mode="pb", geometry=GEOM, seed=11)
    # 5 batches of 4 over 6 videos: crosses epochs, and pipeline 0 of 2 runs one more batch.
    one = list(itertools.islice(dali.pretext_batches(plan, 4, workers=1, decoders=1), 5))
    two = list(itertools.islice(dali.pretext_batches(plan, 4, workers=2, decoders=2), 5))
    for x, y in zip(one, two):
        for key in x:
            assert same_value(x[key], y[key]), key
    videos = vp9.test + vp9.train
    a = list(dali.eval_videos(videos, 8, GEOM, workers=2, decoders=1))
    b = list(dali.eval_videos(videos, 8, GEOM, workers=2, decoders=3))
    assert len(a) == len(b) == len(videos)
    for x, y in zip(a, b):
        for key in x:
            assert same_value(x[key], y[key]), key


def test_selected_by_the_loaders_module(vp9):
    from fastssl.data import loaders
    loader = loaders.get("dali")
    assert loader is dali
    videos = loader.validate_files(vp9.train, device="cpu", min_frames=20, skip=False)
    plan = PretextPlan(videos, W=20, D=8, N=6, mode="rp", geometry=GEOM, seed=0)
    with loader.pretext_batches(plan, 2, workers=1, device="cpu", decoders=2) as batches:
        batch = next(batches)
    assert batch["windows"].shape == (2, 20, 64, 64, 3)


def test_streams_follow_the_contract(vp9):
    # Every stream is a contract.BatchStream: typed keys and dtypes, a context manager whose
    # close() stops decoding (twice is fine, next() after it ends the stream).
    from fastssl.data.contract import BATCH_KEYS, BatchStream
    pretext = PretextPlan(vp9.train, W=20, D=8, N=6, mode="rp", geometry=GEOM, seed=0)
    clips = ClipPlan(vp9.train, D=8, geometry=GEOM, seed=0)
    streams = {"pretext": dali.pretext_batches(pretext, 2, workers=1),
               "clips": dali.clip_batches(clips, 2, workers=1),
               "eval": dali.eval_videos(vp9.test, 8, GEOM, workers=1)}
    for kind, stream in streams.items():
        assert isinstance(stream, BatchStream)
        with stream:
            item = next(stream)
        assert tuple(item) == BATCH_KEYS[kind], kind
        assert item["clips" if kind == "eval" else "windows"].dtype == torch.uint8
        assert all(item[k].dtype == torch.int64 for k in BATCH_KEYS[kind][1:] if k != "bad"), kind
        assert stream.closed
        stream.close()
        with pytest.raises(StopIteration):
            next(stream)
    assert dali_threads() == []


def test_resume_takes_its_keys(vp9):
    plan = ClipPlan(vp9.train, D=8, geometry=GEOM, seed=2)
    full = list(itertools.islice(dali.clip_batches(plan, 2, workers=2), 4))
    resumed = list(itertools.islice(dali.clip_batches(plan, 2, workers=2, start_step=2), 2))
    for x, y in zip(full[2:], resumed):
        for key in x:
            assert same_value(x[key], y[key]), key


def test_ranks_split_the_one_process_batches(vp9):
    # batch_size is global: rank r gets rows [r*B/R, (r+1)*B/R) of the one-process batch, and
    # its pipelines run batches of B/R; evaluation gives rank r videos r, r+R, ...
    plan = PretextPlan(vp9.train, W=20, D=8, N=6, mode="ss", geometry=GEOM, seed=4)
    one = list(itertools.islice(dali.pretext_batches(plan, 4, workers=1), 2))
    ranks = [list(itertools.islice(dali.pretext_batches(plan, 4, workers=1, rank=r, world_size=2), 2))
             for r in range(2)]
    for step, batch in enumerate(one):
        assert ranks[0][step]["windows"].shape[0] == 2
        for key in batch:
            joined = [ranks[0][step][key], ranks[1][step][key]]
            joined = joined[0] + joined[1] if key == "bad" else torch.cat(joined)
            assert same_value(joined, batch[key]), key
    with pytest.raises(ValueError, match="batch size 3 .* 2 ranks"):
        dali.clip_batches(ClipPlan(vp9.train, D=8, geometry=GEOM, seed=0), 3, world_size=2, rank=1)
    videos = vp9.test + vp9.train
    whole = list(dali.eval_videos(videos, 8, GEOM, workers=1))
    for r in range(3):
        mine = list(dali.eval_videos(videos, 8, GEOM, workers=1, rank=r, world_size=3))
        assert [int(it["video"]) for it in mine] == list(range(r, len(videos), 3))
        for item in mine:
            ref = whole[int(item["video"])]
            for key in item:
                assert same_value(item[key], ref[key]), key
    assert list(dali.eval_videos(videos[:1], 8, GEOM, rank=1, world_size=2)) == []


def dali_threads() -> list[str]:
    names = []
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/comm") as f:
                names.append(f.read().strip())
        except OSError:  # the thread ended meanwhile
            pass
    return [n for n in names if "DALI" in n]


def test_streams_leave_no_threads_behind(vp9):
    # DALI threads alive when the process forks (PyAV DataLoader workers, later tests) deadlock
    # the children: a closed, dropped or failed stream must have joined them.
    plan = PretextPlan(vp9.train, W=20, D=8, N=6, mode="rp", geometry=GEOM, seed=0)
    batches = dali.pretext_batches(plan, 2, workers=2, decoders=2)
    next(batches)
    assert dali_threads()
    batches.close()
    assert dali_threads() == []
    next(dali.pretext_batches(plan, 2, workers=2))  # dropped without close
    assert dali_threads() == []


def test_the_hand_over_does_not_wait_for_the_gpu(vp9, monkeypatch):
    # On CUDA a plain .to(device) of a pageable host tensor blocks the host until the GPU has
    # run everything queued before it: every small tensor of a batch or evaluation item must go
    # through pinned memory with non_blocking=True. Checked here without a GPU: frames that
    # claim to be on CUDA, and torch's copy calls recorded.
    from types import SimpleNamespace
    copies = []

    class Pinned:
        def __init__(self, host):
            self.host = host

        def to(self, device, *, non_blocking=False):
            copies.append((device, non_blocking))
            return self.host

    def blocking_to(self, *args, **kwargs):
        raise AssertionError(f"a blocking .to{args} on the hand-over path")

    cuda = torch.device("cuda", 0)
    frames = SimpleNamespace(device=cuda)
    pretext = PretextPlan(vp9.train, W=20, D=8, N=6, mode="rp", geometry=GEOM, seed=0)
    clips = ClipPlan(vp9.train, D=8, geometry=GEOM, seed=0)
    samples = [pretext.sample(0, i) for i in range(3)]
    windows = [clips.sample(0, i)[0] for i in range(3)]
    with monkeypatch.context() as m:
        m.setattr(torch.Tensor, "pin_memory", lambda self: Pinned(self))
        m.setattr(torch.Tensor, "to", blocking_to)
        batch = dali._pretext_batch(frames, [w for w, _ in samples], [q for _, q in samples], [])
        assert copies == [(cuda, True)] * 4
        clip = dali._clip_batch(frames, windows, [1, 0, 1], [])
        assert copies == [(cuda, True)] * 6
    for key in ("starts", "orders", "label", "video"):  # the values are those of the plan
        assert torch.equal(batch[key], torch.as_tensor(np.stack([
            {"starts": q.starts, "orders": q.orders, "label": q.label, "video": w.video}[key]
            for w, q in samples])))
    assert clip["label"].tolist() == [1, 0, 1] and clip["video"].tolist() == [w.video for w in windows]
    host = torch.arange(3)
    assert dali._to_device(torch.device("cpu"), host) is host  # on the CPU: today's tensors, untouched


# --------------------------------------------------------------------------- bad files

@pytest.fixture(scope="module")
def bad(vp9, tmp_path_factory):
    """Good videos plus one of each kind of bad file, as index.csv would describe them."""
    tmp = tmp_path_factory.mktemp("bad")
    good = vp9.train[0]
    h264 = tmp / "h264.mp4"
    write_coded_video(h264, good.frames, codec="h264")
    corrupt = tmp / "corrupt.webm"
    corrupt.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    truncated = tmp / "truncated.webm"
    data = open(good.path, "rb").read()
    truncated.write_bytes(data[: len(data) // 2])

    def like(**kw):
        return dataclasses.replace(good, **kw)

    return {"good": list(vp9.train),
            "h264": like(path=str(h264), codec="h264"),
            "corrupt": like(path=str(corrupt)),
            "missing": like(path=str(tmp / "missing.webm")),
            "truncated": like(path=str(truncated)),
            "short": vp9.train[1]}


def test_validate_files_rejects_each_bad_file_with_its_reason(bad):
    short = bad["short"]
    videos = bad["good"] + [bad["h264"], bad["corrupt"], bad["missing"], bad["truncated"]]
    reports = []
    kept = dali.validate_files(videos, device="cpu", min_frames=short.frames + 1, skip=True,
                                      report=reports.append)
    assert kept == [v for v in bad["good"] if v.frames > short.frames]
    (text,) = reports
    lines = {line.split(": ", 1)[0].strip(): line for line in text.splitlines()[1:]}
    assert "codec h264" in lines[bad["h264"].path] and "CPU" in lines[bad["h264"].path]
    assert "cannot be opened" in lines[bad["corrupt"].path]
    assert "missing" in lines[bad["missing"].path]
    assert "index.csv says" in lines[bad["truncated"].path]
    assert f"needs at least {short.frames + 1}" in lines[short.path]


def test_validate_files_refuses_without_skip_and_when_nothing_is_left(bad):
    everything = bad["good"] + [bad["h264"], bad["missing"]]
    assert dali.validate_files(bad["good"], device="cpu", min_frames=20, skip=False) == bad["good"]
    with pytest.raises(DatasetError, match="--skip-bad") as e:
        dali.validate_files(everything, device="cpu", min_frames=20, skip=False)
    assert bad["h264"].path in str(e.value) and bad["missing"].path in str(e.value)
    with pytest.raises(DatasetError, match="no usable videos left: all 3 were rejected"):
        dali.validate_files([bad["h264"], bad["corrupt"], bad["missing"]], device="cpu",
                                   min_frames=20, skip=True, report=lambda _: None)


def test_decode_errors_name_the_file(bad):
    # Files that slipped past validation: DALI's own errors name no file, ours do. (The reader
    # drops the H.264 file with only a warning.) Training streams redraw such samples and report
    # them in `bad`; evaluation stops.
    plan = ClipPlan(bad["good"][:2] + [bad["h264"]], D=8, geometry=GEOM, seed=0)
    with dali.clip_batches(plan, 3, workers=2) as stream:
        batches = list(itertools.islice(stream, 2))
    failures = [f for b in batches for f in b["bad"]]
    assert failures and {v for v, _ in failures} == {2}
    assert all(bad["h264"].path in why and "codec h264" in why for _, why in failures)
    assert all(bad["good"][0].path not in why for _, why in failures)
    assert all(2 not in b["video"].tolist() for b in batches)  # redrawn from the good videos
    assert [len(b["label"]) for b in batches] == [3, 3]
    # Clips past the real end fail; each sample of the batch is decoded alone to name the file.
    short = r"truncated.webm \(frames 16..23\): .*out of bounds.*index.csv says 40"
    with pytest.raises(DecodeError, match=short):
        list(dali.eval_videos([bad["truncated"]], 8, GEOM, workers=1))
    with pytest.raises(DecodeError, match="missing.webm: file is missing"):
        next(dali.eval_videos([bad["missing"]], 8, GEOM, workers=1))
    assert dali_threads() == []  # failed streams and the per-file diagnosis are cleaned up


# --------------------------------------------------------------------------- the reader

def test_same_batches_whatever_the_chunk_size(vp9, monkeypatch):
    # Chunks of 2 batches (pipelines rebuilt 3 times per decoder), epochs crossed, a resumed
    # stream, evaluation clips spanning batches: the same bytes as one chunk for everything.
    plan = PretextPlan(vp9.train, W=20, D=8, N=6, mode="rp", geometry=GEOM, seed=7)
    whole = list(itertools.islice(dali.pretext_batches(plan, 4, workers=2), 7))
    videos = vp9.test + vp9.train
    whole_eval = list(dali.eval_videos(videos, 8, GEOM, workers=2))
    monkeypatch.setattr(dali_reader, "CHUNK_BATCHES", 2)
    monkeypatch.setattr(dali, "EVAL_CLIPS_PER_BATCH", 3)
    for decoders, start in [(1, 0), (2, 0), (1, 1)]:
        chunked = dali.pretext_batches(plan, 4, workers=2, decoders=decoders, start_step=start)
        for x, y in zip(whole[start:], itertools.islice(chunked, 7 - start)):
            for key in x:
                assert same_value(x[key], y[key]), (decoders, start, key)
    chunked = list(dali.eval_videos(videos, 8, GEOM, workers=2, decoders=2))
    assert len(whole_eval) == len(chunked) == len(videos)
    for x, y in zip(whole_eval, chunked):
        for key in x:
            assert same_value(x[key], y[key]), key


def test_reader_names_files_it_dropped(bad):
    # DALI drops a file it cannot open with only a warning: the entry count gives it away at
    # build time, and each file of the chunk is probed to name the culprit.
    plan = ClipPlan(bad["good"][:2] + [bad["corrupt"]], D=8, geometry=GEOM, seed=0)  # chunk: 64 x 3
    with dali.clip_batches(plan, 3, workers=1) as stream:
        batches = list(itertools.islice(stream, 3))
    failures = [f for b in batches for f in b["bad"]]
    assert failures and {v for v, _ in failures} == {2}  # reported, and redrawn
    why = failures[0][1]
    assert "kept 128 of the 192 file_list entries" in why and f"{bad['corrupt'].path}: cannot be opened" in why
    assert bad["good"][0].path not in why
    assert all(2 not in b["video"].tolist() for b in batches)
    # Files that probe fine are asked about one by one (a one-line reader each).
    window = plan.sample(0, 0)[0]
    assert dali_reader.reader_refuses(bad["good"][0].path, window, None) is None
    assert "drops it" in dali_reader.reader_refuses(bad["corrupt"].path, window, None)


def test_reader_alignment_check_catches_a_drop_the_count_missed(bad, monkeypatch):
    # Were the entry count fooled, every batch's labels (= sample positions) and first frames
    # are still checked against the plan: a silently skipped entry names its file.
    from nvidia.dali import Pipeline

    class Anything:
        def __eq__(self, other):
            return True

        def __ne__(self, other):
            return False

    monkeypatch.setattr(Pipeline, "reader_meta", lambda self, name=None: {"epoch_size": Anything()})
    plan = ClipPlan(bad["good"][:2] + [bad["missing"]], D=8, geometry=GEOM, seed=0)
    with dali.clip_batches(plan, 3, workers=1) as stream:
        batches = list(itertools.islice(stream, 3))
    failures = [why for b in batches for v, why in b["bad"] if v == 2]
    assert failures and "out of step with the sampler" in failures[0]
    assert f"{bad['missing'].path}: DALI's video reader" in failures[0] and "skipped" in failures[0]
    assert all(2 not in b["video"].tolist() for b in batches)
    assert dali_threads() == []


def test_the_next_chunk_is_built_off_the_training_thread(vp9, monkeypatch):
    # A chunk's build (jobs, file_list, DALI indexing every file) runs on a background thread,
    # one chunk ahead: the training thread only starts it at the chunk boundary.
    from fastssl.data.dali.common import Job
    built_on = []
    real_init = dali_reader.ReaderChunk.__init__

    def init(self, *args, **kwargs):
        built_on.append(threading.get_ident())
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(dali_reader.ReaderChunk, "__init__", init)
    plan = ClipPlan(vp9.train, D=8, geometry=GEOM, seed=3)
    jobs = (Job([plan.sample(epoch, i)[0] for epoch, i in keys], None)
            for keys in stream_keys(plan.epoch_size, 2))
    pipe = dali_reader.ReaderPipe(jobs, plan.videos, geometry=GEOM, batch_size=2, threads=1,
                                  device_id=None, chunk_batches=2)
    try:
        pipe.schedule()  # chunk 1 starts: its 2 batches are queued
        pipe.next.thread.join()
        assert pipe.next.chunk is not None  # chunk 2 is built...
        assert pipe.live[0].consumed == 0  # ...before chunk 1 has handed out a batch
        for step in range(5):  # three chunk boundaries
            out, job = pipe.outputs()
            assert [w.start for w in job.windows] == [plan.sample(e, i)[0].start
                                                     for e, i in next(itertools.islice(
                                                         stream_keys(plan.epoch_size, 2), step, None))]
            pipe.schedule()
        assert len(pipe.build_seconds) == len(pipe.chunk_waits) == 4
    finally:
        pipe.close()  # also waits for the build of chunk 5, under way, and drops it
    assert len(built_on) == 5 and threading.get_ident() not in built_on
    assert not [t for t in threading.enumerate() if t.name == "fastssl-chunk-build"]
    assert dali_threads() == []


class BuildInPlace:
    """dali_reader.ChunkBuild as a synchronous build: the chunk is built on the training thread
    when it is taken (the reader before chunks were built ahead)."""

    def __init__(self, build):
        self.build, self.seconds = build, 0.0

    def take(self):
        return self.build()

    def discard(self):
        pass


def test_chunks_built_ahead_give_the_batches_of_chunks_built_in_place(vp9, monkeypatch):
    # Chunks of 2 batches: several boundaries, two decoders, a resumed stream, and a chunk whose
    # build fails (the third build: DALI "drops" an entry). The failure must surface at the step
    # an in-place build raises it - there that one batch is decoded by PyAV - and every batch
    # must be the same bytes.
    from nvidia.dali import Pipeline
    monkeypatch.setattr(dali_reader, "CHUNK_BATCHES", 2)
    plan = PretextPlan(vp9.train, W=20, D=8, N=6, mode="rp", geometry=GEOM, seed=5)
    real_meta, real_pyav = Pipeline.reader_meta, dali._pyav_batch

    def run(*, decoders=1, start_step=0, fail_third_build=False):
        builds, pyav = itertools.count(1), []

        def reader_meta(self, name=None):
            meta = real_meta(self, name)
            if next(builds) == 3:
                meta = {**meta, "epoch_size": meta["epoch_size"] - 1}
            return meta

        def pyav_batch(plan, keys, *args):
            pyav.append(keys)
            return real_pyav(plan, keys, *args)

        with monkeypatch.context() as m:
            if fail_third_build:
                m.setattr(Pipeline, "reader_meta", reader_meta)
                m.setattr(dali, "_pyav_batch", pyav_batch)
            with dali.pretext_batches(plan, 4, workers=2, decoders=decoders, start_step=start_step) as stream:
                return list(itertools.islice(stream, 7 - start_step)), pyav

    cases = [dict(), dict(decoders=2), dict(start_step=3), dict(fail_third_build=True)]
    ahead = [run(**case) for case in cases]
    monkeypatch.setattr(dali_reader, "ChunkBuild", BuildInPlace)
    in_place = [run(**case) for case in cases]
    for case, (batches, pyav), (reference, reference_pyav) in zip(cases, ahead, in_place):
        assert len(batches) == len(reference)
        for x, y in zip(batches, reference):
            for key in x:
                assert same_value(x[key], y[key]), (case, key)
        assert pyav == reference_pyav, case
    # Chunks (0, 1) (2, 3) (4, 5): the third is taken by the schedule() after batch 2 is out, so
    # batch 2 is the one PyAV decodes.
    step_2 = next(itertools.islice(stream_keys(plan.epoch_size, 4), 2, None))
    assert ahead[-1][1] == [step_2]
    assert dali_threads() == []


def test_reader_reads_paths_with_spaces(vp9, tmp_path):
    # DALI's file_list splits at whitespace: such paths go through a symlink.
    import shutil
    spaced = tmp_path / "a folder" / "my video.webm"
    spaced.parent.mkdir()
    shutil.copy(vp9.train[0].path, spaced)
    videos = [dataclasses.replace(vp9.train[0], path=str(spaced))] + list(vp9.train[1:2])
    plan = ClipPlan(videos, D=8, geometry=GEOM, seed=1)
    batch = next(dali.clip_batches(plan, 2, workers=1))
    for b, (epoch, i) in enumerate(next(stream_keys(plan.epoch_size, 2))):
        window, _ = plan.sample(epoch, i)
        assert frame_ids(batch["windows"][b].numpy()) == list(range(window.start, window.start + 8))


def test_bad_arguments_are_refused_before_any_pipeline(vp9):
    plan = ClipPlan(vp9.train, D=8, geometry=GEOM, seed=1)
    with pytest.raises(ValueError, match="decoders must be >= 1"):
        dali.clip_batches(plan, 2, decoders=0)
    assert dali_threads() == []  # refused before any pipeline was built


# --------------------------------------------------------------------------- NVDEC

@pytest.fixture(scope="module")
def h264(tmp_path_factory):
    return load_dataset(make_coded_dataset(tmp_path_factory.mktemp("h264"), codec="h264"))


@pytest.mark.gpu
def test_nvdec_windows_match_the_plan_on_the_gpu(h264):
    assert dali.validate_files(h264.train, device="cuda", min_frames=20, skip=False) == h264.train
    plan = PretextPlan(h264.train, W=20, D=8, N=6, mode="rp", geometry=GEOM, seed=3)
    batches = list(itertools.islice(dali.pretext_batches(plan, 4, workers=2, device="cuda"), 3))
    refs = list(itertools.islice(pyav_loader.pretext_batches(plan, 4, workers=0), 3))
    for step, (batch, ref) in enumerate(zip(batches, refs)):
        assert all(t.is_cuda for t in batch.values())
        keys = next(itertools.islice(stream_keys(plan.epoch_size, 4), step, None))
        for b, (epoch, i) in enumerate(keys):
            window, _ = plan.sample(epoch, i)
            frames = batch["windows"][b].cpu().numpy()
            assert frame_ids(frames) == list(range(window.start, window.start + 20))
            assert is_flipped(frames) == [window.flip] * 20
        for key in ("starts", "orders", "label", "video"):
            assert torch.equal(batch[key].cpu(), ref[key]), key
        assert_same_frames(batch["windows"], ref["windows"])


@pytest.mark.gpu
def test_nvdec_decoders_and_evaluation_on_the_gpu(h264):
    plan = ClipPlan(h264.train, D=8, geometry=GEOM, seed=4)
    one = list(itertools.islice(dali.clip_batches(plan, 4, workers=2, device="cuda", decoders=1), 3))
    two = list(itertools.islice(dali.clip_batches(plan, 4, workers=2, device="cuda:0", decoders=2), 3))
    for x, y in zip(one, two):
        assert x["windows"].device == torch.device("cuda", 0)
        for key in x:
            assert same_value(x[key], y[key]), key
    items = list(dali.eval_videos(h264.test, 8, GEOM, workers=2, device="cuda", decoders=2))
    for item, video in zip(items, h264.test):
        assert item["clips"].is_cuda
        starts = eval_clip_starts(video.frames, 8)
        assert [frame_ids(c) for c in item["clips"].cpu().numpy()] == [list(range(s, s + 8)) for s in starts]
