"""`fastssl prepare` on real files: a small source tree of several kinds of good videos (made by
PyAV) mixed with every kind of bad one; outputs decoded and checked frame by frame (the frames
carry their own index, see videos.py)."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from click.testing import CliRunner

from fastssl.cli_prepare import prepare
from fastssl.data.dataset import load_dataset
from fastssl.data.prepare import PrepareError, SourceError, prepare_dataset
from fastssl.data.prepare.sources import find_source, group_of, held_out, safe_name
from fastssl.data.prepare.transcode import frame_rate, output_size
from videos import coded_frame, frame_ids

W, H = 64, 48
REPO = Path(__file__).resolve().parent.parent


def write(path, n, *, w=W, h=H, encoder="libx264", fmt=None, rate=25, pix_fmt="yuv420p",
          options=None, start=0, rotation=None, steps=None):
    """Index-coded frames. steps: per-frame pts steps in ms (variable frame rate)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format=fmt) as c:
        s = c.add_stream(encoder, rate=rate)
        s.width, s.height, s.pix_fmt = w, h, pix_fmt
        s.options = options or {}
        if rotation:
            s.set_display_rotation(rotation)
        t = 0
        for i in range(n):
            f = av.VideoFrame.from_ndarray(coded_frame(i, w, h), format="rgb24")
            if steps:
                f.pts, f.time_base = t, Fraction(1, 1000)
                t += steps[i % len(steps)]
            else:
                f.pts, f.time_base = start + i, 1 / Fraction(rate)
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def write_audio_only(path):
    with av.open(str(path), "w") as c:
        s = c.add_stream("aac", rate=8000)
        for i in range(4):
            f = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            f.sample_rate, f.pts = 8000, i * 1024
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def decode(path):
    """(frames as uint8 RGB arrays, pts in frame units, keyframe flags, rate) of an output."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        out = [(f.to_ndarray(format="rgb24"), f.pts * s.time_base, f.key_frame) for f in c.decode(s)]
        rate = s.average_rate
    return np.stack([o[0] for o in out]), [o[1] for o in out], [o[2] for o in out], rate


# name -> (writer, frames); B/R = the UCF-like tree's two classes
GOOD = {
    "B/v_B_g01_c01.avi": lambda p: write(p, 30, encoder="mpeg4", options={"vtag": "XVID", "qmax": "4"}),   # UCF101's XviD
    "B/v_B_g02_c01.mp4": lambda p: write(p, 32, rate=Fraction(30000, 1001), start=7, options={"bf": "3"}),
    "B/v_B_g03_c01.mp4": lambda p: write(p, 30, steps=[30, 50, 40]),                       # VFR, 25 fps on average
    "R/v_R_g01_c01.mp4": lambda p: write(p, 26, w=65, h=49, pix_fmt="yuv444p"),             # odd size
    "R/v_R_g02_c01.mp4": lambda p: write(p, 24, rotation=90),                               # rotated
    "B/v_Bee_g06_c01.mkv": lambda p: write(p, 22, pix_fmt="yuv420p10le"),  # 10-bit; not named after its class
    "R/v_R_g03_c01.webm": lambda p: write(p, 24, encoder="libvpx-vp9",
                                          options={"deadline": "realtime", "cpu-used": "8"}),
}
BAD = {
    "B/v_B_g04_c01.avi": ("empty file (0 bytes)", lambda p: p.write_bytes(b"")),
    "B/v_B_g05_c01.mp4": ("not a video PyAV can open", lambda p: p.write_bytes(np.random.default_rng(0).bytes(4096))),
    "R/v_R_g04_c01.mp4": ("no video stream (streams: audio)", write_audio_only),
    "R/v_R_g05_c01.mp4": ("12 frames, fewer than --min-frames 20", lambda p: write(p, 12)),
}
MISSING = "R/v_R_g06_c01.avi"


def ucf_tree(root: Path) -> Path:
    """A UCF101-like tree: class folders + ucfTrainTestlist/ with three splits."""
    for rel, make in GOOD.items():
        make(root / rel)
    for rel, (_, make) in BAD.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        make(root / rel)
    lists = root / "ucfTrainTestlist"
    lists.mkdir()
    (lists / "classInd.txt").write_text("1 B\n2 R\n")
    everything = sorted(list(GOOD) + list(BAD) + [MISSING])
    for s in (1, 2, 3):  # split s holds out group s of each class, as UCF101 holds out groups
        test = [r for r in everything if f"_g0{s}_" in r]
        (lists / f"trainlist0{s}.txt").write_text(
            "".join(f"{r} {1 + (r[0] == 'R')}\r\n" for r in everything if r not in test))  # UCF's CRLF
        (lists / f"testlist0{s}.txt").write_text("".join(f"{r}\r\n" for r in test))
    return root


@pytest.fixture(scope="module")
def ucf(tmp_path_factory):
    return ucf_tree(tmp_path_factory.mktemp("ucf"))


@pytest.fixture(scope="module")
def prepared(ucf, tmp_path_factory):
    out = tmp_path_factory.mktemp("prep") / "out"
    summary = prepare_dataset(ucf, out, jobs=2, progress=False)
    return out, summary


def _report(out):
    with open(out / "prepare_report.csv", newline="") as f:
        return {r["source"]: r for r in csv.DictReader(f)}


def test_good_sources_are_transcoded_and_verified(prepared):
    out, summary = prepared
    assert summary.layout == "ucf101" and summary.prepared == len(GOOD) and summary.bad == len(BAD) + 1
    assert summary.splits == [1, 2, 3]
    with open(out / "index.csv", newline="") as f:
        rows = {r["path"]: r for r in csv.DictReader(f)}
    want = {"videos/" + rel.rsplit(".", 1)[0] + ".mp4" for rel in GOOD}
    assert set(rows) == want
    for rel, row in rows.items():
        frames, times, keys, rate = decode(out / rel)
        if "R_g02" in rel:  # the rotated one: turn it back to read the coded index
            frames = np.rot90(frames, -1, axes=(1, 2))
        n = int(row["frames"])
        assert len(frames) == n and n >= 20
        assert frame_ids(frames) == list(range(n)), rel          # every frame, in order
        assert [round(t * rate) for t in times] == list(range(n))  # pts = frame index
        assert keys == [i % 8 == 0 for i in range(n)]             # GOP 8, no scene cuts
        assert int(row["width"]) % 2 == 0 and int(row["height"]) % 2 == 0
        assert row["class"] == rel.split("/")[1]  # the folder's, not the file name's
        with av.open(str(out / rel)) as c:
            assert c.streams.video[0].codec_context.pix_fmt == "yuv420p" and not c.streams.audio
    fps = {r.split("/")[-1]: float(rows[r]["fps"]) for r in rows}
    assert fps["v_B_g02_c01.mp4"] == pytest.approx(30000 / 1001, abs=1e-9)  # kept as a fraction
    assert fps["v_B_g03_c01.mp4"] == 25.0                                    # VFR: its average rate
    assert rows["videos/R/v_R_g01_c01.mp4"]["width"] == "64" and rows["videos/R/v_R_g01_c01.mp4"]["height"] == "48"
    with av.open(str(out / "videos/B/v_B_g02_c01.mp4")) as c:
        assert c.streams.video[0].average_rate == Fraction(30000, 1001)
        assert not c.streams.audio


def test_rotation_is_applied(prepared):
    out, _ = prepared
    frames, *_ = decode(out / "videos/R/v_R_g02_c01.mp4")
    assert frames[0].shape == (W, H, 3)  # 64x48 stored, shown turned 90 degrees: 48 wide, 64 high
    upright = np.rot90(coded_frame(0, W, H))  # counter-clockwise, as the display matrix says
    assert np.abs(frames[0].astype(int) - upright).mean() < 4


def test_bad_sources_are_reported_with_reasons(prepared, ucf):
    out, summary = prepared
    report = _report(out)
    for rel, (reason, _) in BAD.items():
        assert reason in report[str(ucf / rel)]["reason"], rel
    assert report[str(ucf / MISSING)]["reason"].startswith("listed in trainlist01.txt:")
    assert report[str(ucf / MISSING)]["reason"].endswith("but missing")
    assert all(r["kind"] == "bad" for r in report.values()) and len(report) == summary.bad
    # nothing bad is listed anywhere; the splits are UCF's minus the bad ones
    for s in (1, 2, 3):
        ds = load_dataset(out, s)
        assert ds.stamped and not ds.unlabelled and ds.classes == ["B", "R"]
        assert all(f"_g0{s}_" in v.rel for v in ds.test) and all(f"_g0{s}_" not in v.rel for v in ds.train)
        assert len(ds.train) + len(ds.test) == len(GOOD)
    assert f"{summary.bad} bad" in summary.line()


def test_strict_fails(ucf, tmp_path):
    result = CliRunner().invoke(prepare, [str(ucf), str(tmp_path / "o"), "--strict", "--no-progress"])
    assert result.exit_code == 1, result.output
    assert "missing" in result.output and MISSING in result.output
    # without missing files, bad ones fail after the run, named in the message and the report
    src = tmp_path / "folders"
    write(src / "A/a1.mp4", 24)
    write(src / "A/a2.mp4", 24)
    write(src / "C/c1.mp4", 24)
    write(src / "C/c2.mp4", 24)
    (src / "C/zero.mp4").write_bytes(b"")
    result = CliRunner().invoke(prepare, [str(src), str(tmp_path / "o2"), "--strict", "--no-progress", "--jobs", "1"])
    assert result.exit_code == 1 and "zero.mp4: empty file" in result.output
    assert not (tmp_path / "o2/index.csv").exists()
    assert "empty file" in _report(tmp_path / "o2")[str(src / "C/zero.mp4")]["reason"]


def test_rerun_with_other_settings_is_refused_same_settings_skip(prepared, ucf):
    out, _ = prepared
    with pytest.raises(PrepareError, match=r"other settings \(codec: 'h264' -> 'vp9'\)"):
        prepare_dataset(ucf, out, codec="vp9", progress=False)
    again = prepare_dataset(ucf, out, jobs=1, progress=False)
    assert again.prepared == 0 and again.skipped == len(GOOD) and again.bad == len(BAD) + 1


@pytest.mark.parametrize("codec,suffix", [("vp9", ".webm"), ("mjpeg", ".avi")])
def test_cpu_codecs(tmp_path, codec, suffix):
    src = tmp_path / "src"
    write(src / "A/plain.mp4", 22)
    write(src / "A/odd_rotated.mp4", 22, w=65, h=49, rotation=270, pix_fmt="yuv444p",
          options={"bf": "2", "crf": "12"})  # crf: x264's default blurs the coded greys of B-frames
    write(src / "C/plain2.mp4", 22)
    write(src / "C/plain.avi", 22, encoder="mpeg4", options={"qmax": "4"})
    result = CliRunner().invoke(prepare, [str(src), str(tmp_path / "o"), "--codec", codec, "--jobs", "1",
                                          "--no-progress", "--test-fraction", "0.5"])
    assert result.exit_code == 0, result.output
    frames, times, keys, rate = decode(tmp_path / "o/videos/A" / f"odd_rotated{suffix}")
    assert frames[0].shape == (64, 48, 3) and frame_ids(np.rot90(frames, 1, axes=(1, 2))) == list(range(22))
    assert np.abs(frames[0].astype(int) - np.rot90(coded_frame(0, 65, 49), -1)[:64, :48]).mean() < 6
    settings = json.loads((tmp_path / "o/prepare.json").read_text())
    assert settings["codec"] == codec and settings["layout"] == "folders"


def test_short_side(tmp_path):
    src = tmp_path / "src"
    for k in (1, 2):
        write(src / f"A/a{k}.mp4", 20, w=96, h=72)
        write(src / f"C/c{k}.mp4", 20, w=72, h=96)
    prepare_dataset(src, tmp_path / "o", short_side=32, jobs=1, progress=False, test_fraction=0.5)
    with open(tmp_path / "o/index.csv", newline="") as f:
        sizes = {r["path"]: (r["width"], r["height"]) for r in csv.DictReader(f)}
    assert sizes == {f"videos/{c}{k}.mp4": wh for k in (1, 2)
                     for c, wh in (("A/a", ("42", "32")), ("C/c", ("32", "42")))}
    frames, *_ = decode(tmp_path / "o/videos/A/a1.mp4")  # scaled, not cut: the whole picture
    assert frame_ids(frames) == list(range(20))
    assert frames[:, 20:, :8].mean() > 200 and frames[:, 20:, 14:].mean() < 40
    assert output_size(65, 49, 90, None) == (48, 64) and output_size(320, 240, 0, 128) == (170, 128)


def test_hmdb51_split_files(tmp_path):
    src = tmp_path / "hmdb"
    names = {"brush_hair": ["April_09_brush_hair_u_nm_np1_ba_goo_0.avi", "Brushing_Hair_(2)!_brush_hair_h_nm_np1_le_goo_0.avi",
                            "b3_brush_hair_f_cm_np1_ri_med_1.avi", "b4_brush_hair_f_cm_np1_ri_med_2.avi"],
             "cartwheel": ["c1_cartwheel_f_cm_np1_le_med_0.avi", "c2_cartwheel_f_cm_np1_le_med_1.avi",
                           "c3_cartwheel_f_cm_np1_le_med_2.avi", "c4_cartwheel_f_cm_np1_le_med_3.avi"]}
    marks = {1: "1212", 2: "2121", 3: "1120"}  # per split, one mark per video (0 = unused)
    splits = tmp_path / "testTrainMulti_7030_splits"
    splits.mkdir()
    for cls, files in names.items():
        for i, name in enumerate(files):
            write(src / cls / name, 20, encoder="mpeg4", options={"qmax": "4"})
        for s, m in marks.items():
            (splits / f"{cls}_test_split{s}.txt").write_text("".join(f"{n} {k} \n" for n, k in zip(files, m)))
    source = find_source(src, splits_dir=splits)
    assert source.layout == "hmdb51" and source.classes == ["brush_hair", "cartwheel"]
    s = prepare_dataset(src, tmp_path / "o", splits_dir=splits, jobs=2, progress=False)
    assert s.layout == "hmdb51" and s.bad == 0 and s.prepared == 8
    for split, m in marks.items():
        ds = load_dataset(tmp_path / "o", split)
        for cls, files in names.items():
            stems = [safe_name(Path(f).stem) for f in files]
            assert sorted(v.rel for v in ds.train if v.class_name == cls) == \
                sorted(f"videos/{cls}/{st}.mp4" for st, k in zip(stems, m) if k == "1")
            assert sorted(v.rel for v in ds.test if v.class_name == cls) == \
                sorted(f"videos/{cls}/{st}.mp4" for st, k in zip(stems, m) if k == "2")
    assert (tmp_path / "o/videos/brush_hair/Brushing_Hair_2_brush_hair_h_nm_np1_le_goo_0.mp4").is_file()
    with pytest.raises(SourceError, match=r"cartwheel_test_split1.txt:2: expected '<file> 0\|1\|2'"):
        (splits / "cartwheel_test_split1.txt").write_text("c1_cartwheel_f_cm_np1_le_med_0.avi 1\nx.avi 7\n")
        find_source(src, splits_dir=splits)


def test_folder_split_keeps_groups_together_and_is_seeded():
    groups = [f"g{g:02d}" for g in range(1, 11) for _ in range(3)]
    a, b = held_out(groups, 0.3, seed=0, salt=0), held_out(groups, 0.3, seed=0, salt=0)
    assert a == b and all(len(t) == 3 for t in a.values())
    assert not (a[1] & a[2] or a[2] & a[3] or a[1] & a[3])  # three disjoint held-out sets
    assert held_out(groups, 0.3, seed=1, salt=0) != a
    assert group_of(Path("v_X_g08_c01.avi")) == "g08" and group_of(Path("clip.mp4")) == "clip"


def test_folders_and_unlabelled(tmp_path):
    src = tmp_path / "src"
    for c in ("Run", "Walk"):
        for g in (1, 2, 3):
            for k in (1, 2):
                write(src / c / f"v_{c}_g{g:02d}_c{k:02d}.mp4", 20, w=32, h=32)
    s = prepare_dataset(src, tmp_path / "o", jobs=2, progress=False, test_fraction=0.34)
    assert s.layout == "folders" and s.prepared == 12
    for split in (1, 2, 3):
        ds = load_dataset(tmp_path / "o", split)
        test_groups = {(v.class_name, group_of(Path(v.rel))) for v in ds.test}
        train_groups = {(v.class_name, group_of(Path(v.rel))) for v in ds.train}
        assert len(test_groups) == 2 and not test_groups & train_groups
    # --unlabelled: any folder, recursively, one pseudo-class, marked in the stamp
    deep = tmp_path / "footage"
    for i in range(5):
        write(deep / ("a" if i % 2 else "b/c") / f"my clip {i}.mp4", 20, w=32, h=32)
    (deep / "notes.txt").write_text("not a video")
    result = CliRunner().invoke(prepare, [str(deep), str(tmp_path / "u"), "--unlabelled", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "pretrain" in result.output
    ds = load_dataset(tmp_path / "u")
    assert ds.unlabelled and ds.classes == ["Unlabelled"] and len(ds.test) == 1 and len(ds.train) == 4
    assert all(" " not in v.rel for v in ds.train + ds.test)


def test_usage_errors(tmp_path):
    src = tmp_path / "src"
    write(src / "loose.mp4", 20, w=32, h=32)
    r = CliRunner().invoke(prepare, [str(src), str(tmp_path / "o")])
    assert r.exit_code == 2 and "--unlabelled" in r.output
    r = CliRunner().invoke(prepare, [str(src), str(tmp_path / "o"), "--test-fraction", "1.5"])
    assert r.exit_code == 2 and "--test-fraction" in r.output
    r = CliRunner().invoke(prepare, [str(src), str(src / "inside"), "--unlabelled"])
    assert r.exit_code == 2 and "inside SRC" in r.output
    (tmp_path / "full").mkdir()
    (tmp_path / "full/x").write_text("x")
    r = CliRunner().invoke(prepare, [str(src), str(tmp_path / "full"), "--unlabelled"])
    assert r.exit_code == 2 and "not empty" in r.output
    r = CliRunner().invoke(prepare, ["--help"])
    assert r.exit_code == 0 and "HMDB51" in r.output and "--unlabelled" in r.output


def test_frame_rate_rules():
    tb = Fraction(1, 30000)
    assert frame_rate([i * 1001 for i in range(10)], tb, Fraction(30000, 1001)) == (Fraction(30000, 1001), False)
    assert frame_rate([0, 512, 1024, 1537, 2048], Fraction(1, 12800), Fraction(25)) == (Fraction(25), False)
    rate, vfr = frame_rate([0, 30, 80, 120, 150], Fraction(1, 1000), Fraction(25))
    assert vfr and rate == Fraction(4, Fraction(150, 1000))


def test_killed_prepare_resumes(tmp_path):
    src = tmp_path / "src"
    for c in ("A", "C"):
        for g in range(1, 9):
            write(src / c / f"v_{c}_g{g:02d}_c01.mp4", 40, w=160, h=120)
    out = tmp_path / "out"
    cmd = [sys.executable, "-c", "from fastssl.cli_prepare import prepare; prepare()",
           str(src), str(out), "--jobs", "2", "--no-progress"]
    proc = subprocess.Popen(cmd, cwd=REPO, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            done = [p for p in (out / "videos").rglob("*.mp4")] if (out / "videos").is_dir() else []
            if done:
                break
            time.sleep(0.002)
        os.killpg(proc.pid, signal.SIGKILL)  # the CLI and its workers, mid-run
    finally:
        proc.wait()
    first = {p: p.stat().st_mtime_ns for p in (out / "videos").rglob("*.mp4")}
    assert 1 <= len(first) < 16, "the run must be killed mid-way"
    assert not (out / "index.csv").exists()
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "16 videos" in result.stdout and "0 bad" in result.stdout
    skipped = int(result.stdout.split(" now, ")[1].split(" already")[0])
    assert skipped >= 1
    assert not list(out.rglob("*.part"))
    for p, mtime in first.items():
        assert p.stat().st_mtime_ns == mtime  # what was done is skipped, not redone
    ds = load_dataset(out, check=True)  # every listed file opens with the counted frames
    assert len(ds.train) + len(ds.test) == 16


@pytest.mark.slow
@pytest.mark.parametrize("loader", ["pyav", "dali"])
def test_pretrain_runs_on_a_prepared_unlabelled_set(tmp_path, loader):
    """--unlabelled trains a pretext run; with --codec vp9 DALI can read it on the CPU."""
    from fastssl.cli import main
    from fastssl.data.loaders import dali_available

    if loader == "dali" and not dali_available():
        pytest.skip("DALI is not installed")
    src = tmp_path / "footage"
    for i in range(6):
        write(src / f"day{i % 2}" / f"clip {i}.mov", 24, w=96, h=72, encoder="mpeg4", options={"qmax": "4"})
    r = CliRunner().invoke(prepare, [str(src), str(tmp_path / "data"), "--unlabelled", "--codec", "vp9",
                                     "--no-progress"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["pretrain", "--data", str(tmp_path / "data"), "--device", "cpu",
                                  "--workers", "0", "--batch-size", "2", "--steps", "2", "--loader", loader,
                                  "--out", str(tmp_path / "run")], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "held-out pretext accuracy" in r.output
