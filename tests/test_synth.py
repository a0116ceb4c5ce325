"""fastssl.data.synth: layout, determinism, codecs, and that classes are motions, not looks.

Real videos are encoded into tmp_path; sizes are tiny (64x48, few frames) to keep this fast.
"""
import csv
import inspect
import re

import av
import numpy as np
import pytest

from fastssl.data.encode import suffix_for
from fastssl.data.synth import MOTIONS, class_plan, make_scene, make_synthetic_dataset, render_video, video_rng

SMALL = dict(size=(64, 48), frames=8, progress=False)


def decode(path):
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


def rel_lists(root):
    train = [ln.split()[0] for ln in (root / "trainlist01.txt").read_text().splitlines() if ln.strip()]
    test = [ln.split()[0] for ln in (root / "testlist01.txt").read_text().splitlines() if ln.strip()]
    return train, test


# ---- layout ---------------------------------------------------------------------------------

def test_defaults_have_at_least_ten_motion_classes():
    assert len(MOTIONS) >= 10
    assert inspect.signature(make_synthetic_dataset).parameters["classes"].default >= 10
    kinds = {m.time_symmetric for m in MOTIONS.values()}
    assert kinds == {True, False}  # both time-symmetric and time-asymmetric motions
    names = [c for c, _, _ in class_plan(len(MOTIONS))]
    assert len(set(names)) == len(names) and all(re.fullmatch(r"[A-Z][A-Za-z]+", n) for n in names)


def test_layout_lists_and_index_are_consistent(tmp_path):
    root = tmp_path / "ds"
    ds = make_synthetic_dataset(root, videos_per_class=2, **SMALL)
    assert ds.num_classes == 10
    assert ds.classes == [c for c, _, _ in class_plan(10)]
    assert [ln.split() for ln in (root / "classInd.txt").read_text().splitlines()] == \
        [[str(i + 1), c] for i, c in enumerate(ds.classes)]

    with open(root / "index.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 10 * 2
    files = sorted(p.relative_to(root).as_posix() for p in (root / "videos").rglob("*") if p.is_file())
    assert files == sorted(r["path"] for r in rows)  # no stray .part files, nothing missing
    for r in rows:
        cls = r["class"]
        assert re.fullmatch(rf"videos/{cls}/v_{cls}_g\d\d_c\d\d\.mp4", r["path"]), r["path"]
        assert (r["frames"], r["fps"], r["codec"], r["width"], r["height"]) == ("8", "25", "h264", "64", "48")

    train, test = rel_lists(root)
    assert sorted(train + test) == sorted(r["path"][len("videos/"):] for r in rows)
    labels = {ln.split()[0]: int(ln.split()[1]) for ln in (root / "trainlist01.txt").read_text().splitlines()}
    assert all(ds.classes[labels[p] - 1] == p.split("/")[0] for p in train)
    # split by group, and at 2 videos per class every class has one train and one test video
    for cls in ds.classes:
        tr = {p for p in train if p.startswith(cls + "/")}
        te = {p for p in test if p.startswith(cls + "/")}
        assert len(tr) == 1 and len(te) == 1
    assert len(ds.train) == len(ds.test) == 10


def test_split_is_by_group(tmp_path):
    ds = make_synthetic_dataset(tmp_path / "ds", classes=2, videos_per_class=5, **SMALL)

    def group(v):
        return (v.class_name, re.search(r"_g(\d+)_", v.rel).group(1))

    train, test = {group(v) for v in ds.train}, {group(v) for v in ds.test}
    assert train and test and not train & test
    assert sorted(g for c, g in test if c == ds.classes[0]) == ["01", "04"]


def test_more_classes_than_motions_use_faster_regimes():
    plan = class_plan(5, ["rotation", "grow"])
    assert plan == [("Rotation", "rotation", 0), ("Grow", "grow", 0), ("RotationFast", "rotation", 1),
                    ("GrowFast", "grow", 1), ("RotationFaster", "rotation", 2)]
    # the speed bands of the regimes do not overlap: a distinct motion pattern per class
    turns = [[abs(make_scene("rotation", video_rng(0, 0, i), frames=16, size=(64, 48), regime=r)
                  .track.angle[-1]) for i in range(20)] for r in range(3)]
    assert max(turns[0]) < min(turns[1]) and max(turns[1]) < min(turns[2])


def test_existing_folder_needs_force(tmp_path):
    root = tmp_path / "ds"
    root.mkdir()
    (root / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty") as e:
        make_synthetic_dataset(root, classes=2, videos_per_class=2, **SMALL)
    assert str(e.value).count("force") == 2 and str(e.value).count("--force") == 1  # said once
    make_synthetic_dataset(root, classes=3, videos_per_class=2, force=True, **SMALL)
    ds = make_synthetic_dataset(root, classes=2, videos_per_class=2, force=True, **SMALL)
    assert ds.num_classes == 2 and len(list((root / "videos").iterdir())) == 2  # old class gone
    assert (root / "keep.txt").read_text() == "mine"  # force removes only our outputs
    # a file where the folder should be: force cannot help, so it is a bad argument
    with pytest.raises(ValueError, match="not a directory"):
        make_synthetic_dataset(root / "keep.txt", classes=2, videos_per_class=2, force=True, **SMALL)
    assert (root / "keep.txt").read_text() == "mine"


# ---- determinism ----------------------------------------------------------------------------

def test_same_seed_same_frames_different_seed_different():
    for motion in MOTIONS:
        a = render_video(motion, seed=3, class_index=1, video_index=2, frames=6, size=(64, 48))
        b = render_video(motion, seed=3, class_index=1, video_index=2, frames=6, size=(64, 48))
        c = render_video(motion, seed=4, class_index=1, video_index=2, frames=6, size=(64, 48))
        assert a.shape == (6, 48, 64, 3) and a.dtype == np.uint8
        assert np.array_equal(a, b), motion
        assert not np.array_equal(a, c), motion


def test_same_seed_same_decoded_dataset(tmp_path):
    kw = dict(classes=2, videos_per_class=2, **SMALL)
    a = make_synthetic_dataset(tmp_path / "a", seed=1, **kw)
    b = make_synthetic_dataset(tmp_path / "b", seed=1, **kw)
    c = make_synthetic_dataset(tmp_path / "c", seed=2, **kw)
    for va, vb, vc in zip(a.train + a.test, b.train + b.test, c.train + c.test):
        assert va.rel == vb.rel == vc.rel
        fa, fb, fc = decode(va.path), decode(vb.path), decode(vc.path)
        assert np.array_equal(fa, fb)
        assert not np.array_equal(fa, fc)


def test_dataset_writes_what_render_video_renders(tmp_path):
    ds = make_synthetic_dataset(tmp_path / "ds", classes=2, videos_per_class=2, codec="mjpeg",
                                **SMALL)
    v = next(v for v in ds.test if v.label == 1)  # class 1, video 0 (g01 is test)
    ref = render_video(class_plan(2)[1][1], class_index=1, video_index=0, frames=8, size=(64, 48))
    other = render_video(class_plan(2)[1][1], class_index=1, video_index=1, frames=8, size=(64, 48))
    got = decode(v.path).astype(np.int16)
    # lossy codec with 4:2:0 chroma at a tiny size, but clearly the same picture
    assert np.abs(got - ref).mean() < 15
    assert np.abs(got - ref).mean() < 0.5 * np.abs(got - other).mean()


# ---- codecs ---------------------------------------------------------------------------------

@pytest.mark.parametrize("codec", ["h264", "vp9", "mjpeg"])
def test_every_codec_decodes_to_exact_frames(tmp_path, codec):
    frames, size = 11, (64, 48)
    ds = make_synthetic_dataset(tmp_path / codec, classes=2, videos_per_class=2, frames=frames,
                                size=size, codec=codec, gop=4, progress=False)
    for v in ds.train + ds.test:
        assert v.path.endswith(suffix_for(codec)) and v.frames == frames
        assert decode(v.path).shape == (frames, size[1], size[0], 3)


def test_single_frame_videos(tmp_path):
    ds = make_synthetic_dataset(tmp_path / "ds", classes=2, videos_per_class=2, frames=1,
                                size=(64, 48), progress=False)
    assert all(decode(v.path).shape[0] == 1 for v in ds.train + ds.test)


# ---- classes are motions, not looks ---------------------------------------------------------

def test_one_frame_does_not_reveal_the_class():
    """Looks vary as much within a class as between classes (weak, but catches e.g. a colour
    or background per class)."""
    means = {}
    for k, motion in enumerate(MOTIONS):
        firsts = np.stack([render_video(motion, class_index=k, video_index=i, frames=1, size=(64, 48))[0]
                           for i in range(8)]).astype(np.float32)
        means[motion] = firsts.reshape(8, -1, 3).mean(1)  # mean colour of each video's frame
        assert means[motion].std(0).mean() > 25, motion   # varies a lot within the class
        pair = np.abs(firsts[:, None] - firsts[None]).mean((2, 3, 4))
        assert pair[np.triu_indices(8, 1)].min() > 10, motion  # no two videos look alike
    centres = np.stack([m.mean(0) for m in means.values()])
    within = np.mean([m.std(0).mean() for m in means.values()])
    assert centres.std(0).mean() < within  # class means spread less than videos in a class


def motion_profile(motion, n=8, frames=48, size=(160, 120)):
    """Mean absolute frame difference over time, averaged over n videos, each normalised by
    its own mean (so object size and contrast drop out)."""
    profiles = []
    for i in range(n):
        v = render_video(motion, class_index=0, video_index=i, frames=frames, size=size).astype(np.float32)
        d = np.abs(np.diff(v, axis=0)).mean((1, 2, 3))
        profiles.append(d / d.mean())
    return np.mean(profiles, 0)


def test_motion_differs_between_classes():
    const, fric, rest = (motion_profile(m) for m in ("constant_velocity", "friction_slowdown", "start_from_rest"))
    third = len(const) // 3
    ratio = lambda p: p[:third].mean() / p[-third:].mean()  # noqa: E731
    assert 0.6 < ratio(const) < 1.6     # steady
    assert ratio(fric) > 3              # slows down
    assert ratio(rest) < 0.3            # speeds up from rest
    # every video of start_from_rest really rests first: the background is static
    for i in range(4):
        v = render_video("start_from_rest", video_index=i, frames=48, size=(64, 48))
        assert np.array_equal(v[0], v[6])
    # the inelastic bounce settles: far less motion in the last third than the elastic one
    inel, el = motion_profile("inelastic_bounce"), motion_profile("elastic_bounce")
    assert inel[-third:].mean() < 0.5 * el[-third:].mean()


def test_motions_are_visible_at_64x48():
    """Over 16 frames at 64x48 each motion visibly changes at least ~half the object's area
    (rotation changes only its inside; the others move it across the frame)."""
    for k, motion in enumerate(MOTIONS):
        for i in range(4):
            scene = make_scene(motion, video_rng(0, k, i), frames=16, size=(64, 48))
            assert scene.sprite.radius >= 0.1 * 48
            v = scene.render().astype(np.int16)
            changed = (np.abs(v - v[0]).max(-1) > 20).any(0).sum() / (np.pi * scene.sprite.radius ** 2)
            assert changed > 0.5, (motion, i, changed)


# ---- arguments ------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, message", [
    (dict(motions=["constant_velocity", "moonwalk"]), "moonwalk.*valid: constant_velocity"),
    (dict(motions=[]), "empty"),
    (dict(motions="rotation"), "list of names"),
    (dict(motions=["rotation", "rotation"]), "duplicates"),
    (dict(classes=1), "classes"),
    (dict(classes=2.0), "classes"),
    (dict(classes=7, motions=["rotation", "grow"]), "too many"),
    (dict(videos_per_class=1), "videos_per_class"),
    (dict(frames=0), "frames"),
    (dict(size=(63, 48)), "even"),
    (dict(size=(64, 47)), "even"),
    (dict(size=(8, 8)), ">= 16"),
    (dict(size=64), "width, height"),
    (dict(fps=0), "fps"),
    (dict(codec="av1"), "codec"),
    (dict(gop=0), "gop"),
    (dict(seed=-1), "seed"),
])
def test_bad_arguments_raise_value_error(tmp_path, kwargs, message):
    args = dict(classes=2, videos_per_class=2, frames=4, size=(64, 48), progress=False)
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        make_synthetic_dataset(tmp_path / "ds", **args)
    assert not (tmp_path / "ds").exists()  # validated before anything is written


def test_unknown_motion_in_renderer():
    with pytest.raises(ValueError, match="valid"):
        render_video("moonwalk")


def test_synth_stamps_its_dataset(tmp_path):
    from fastssl.data.dataset import load_dataset, read_stamp
    from fastssl.data.synth import make_synthetic_dataset
    out = tmp_path / "s"
    make_synthetic_dataset(out, classes=2, videos_per_class=2, frames=4, size=(32, 32))
    stamp, matches = read_stamp(out)
    assert stamp["written_by"] == "fastssl synth" and matches
    assert load_dataset(out).stamped


def test_a_failed_encode_leaves_no_file(tmp_path):
    # write_video renames a complete temporary file over the target: a run that raises (here a
    # frame of the wrong shape after the first) or encodes nothing leaves neither file behind.
    from fastssl.data.encode import write_video

    def frames():
        yield np.zeros((16, 16, 3), np.uint8)
        yield np.zeros((16, 17), np.uint8)
    with pytest.raises(ValueError):
        write_video(tmp_path / "v.mp4", frames())
    with pytest.raises(ValueError, match="no frames"):
        write_video(tmp_path / "w.webm", iter(()), codec="vp9")
    assert list(tmp_path.iterdir()) == []
