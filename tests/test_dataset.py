"""Loading a dataset folder: splits, the stamp, the header check of hand-made folders, and paths
that must not leave the folder."""
from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

from fastssl.data.dataset import (STAMP, DatasetError, VideoDataset, available_splits, load_dataset,
                                  read_stamp, write_splits, write_stamp)
from videos import make_coded_dataset


@pytest.fixture
def coded(tmp_path):
    """A hand-made (unstamped) folder: 2 classes x 3 videos, split 1 only."""
    return make_coded_dataset(tmp_path / "ds", frames=(24, 30, 26), width=64, height=48)


def _rows(root):
    with open(root / "index.csv", newline="") as f:
        return list(csv.DictReader(f))


def _write_rows(root, rows):
    with open(root / "index.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def test_unstamped_folder_is_checked_and_loads(coded):
    ds = load_dataset(coded)
    assert not ds.stamped and not ds.unlabelled and ds.split == 1
    assert len(ds.train) == 4 and len(ds.test) == 2 and ds.classes == ["A", "B"]
    assert not hasattr(VideoDataset, "split") or not callable(getattr(VideoDataset, "split", None))


def test_wrong_frame_count_names_file_and_line(coded):
    rows = _rows(coded)
    rows[1]["frames"] = "31"
    _write_rows(coded, rows)
    with pytest.raises(DatasetError, match=r"index.csv:3 .*index.csv says 31 frames, the file has 30"):
        load_dataset(coded)
    load_dataset(coded, check=False)  # the caller may opt out


def test_missing_file_and_malformed_lines(coded):
    os.unlink(coded / "videos/B/v_B_g02_c01.mp4")
    with pytest.raises(DatasetError, match=r"index.csv:6 .*trainlist01.txt:3\): .*v_B_g02_c01.mp4: file is missing"):
        load_dataset(coded)
    rows = _rows(coded)
    rows[0]["frames"] = "many"
    _write_rows(coded, rows)
    with pytest.raises(DatasetError, match=r"index.csv:2: invalid literal"):
        load_dataset(coded)
    rows[0]["frames"] = "24"
    _write_rows(coded, rows)
    (coded / "trainlist01.txt").write_text("A/v_A_g02_c01.mp4 1 extra\n")
    with pytest.raises(DatasetError, match=r"trainlist01.txt:1: expected '<Class/file> \[label\]'"):
        load_dataset(coded, check=False)
    (coded / "trainlist01.txt").write_text("A/v_A_g02_c01.mp4 2\n")
    with pytest.raises(DatasetError, match=r"trainlist01.txt:1: label 2 but index.csv puts"):
        load_dataset(coded, check=False)


def test_a_file_that_is_not_a_video(coded):
    (coded / "videos/A/v_A_g03_c01.mp4").write_bytes(b"\0" * 100)
    with pytest.raises(DatasetError, match=r"index.csv:4 .*v_A_g03_c01.mp4: cannot be opened as a video"):
        load_dataset(coded)


def test_splits(coded):
    with pytest.raises(DatasetError, match=r"trainlist02.txt: missing: this folder has split\(s\) \[1\], not 2"):
        load_dataset(coded, split=2)
    with pytest.raises(DatasetError, match="split must be one of"):
        load_dataset(coded, split=4)
    write_splits(coded, ["A", "B"], ["A/v_A_g01_c01.mp4", "B/v_B_g01_c01.mp4"],
                 ["A/v_A_g02_c01.mp4", "B/v_B_g03_c01.mp4"], split=2)
    assert available_splits(coded) == [1, 2]
    ds = load_dataset(coded, split=2)
    assert ds.split == 2 and [v.rel for v in ds.test] == ["videos/A/v_A_g02_c01.mp4", "videos/B/v_B_g03_c01.mp4"]


def test_stamp_is_trusted_until_the_lists_change(coded):
    write_stamp(coded, "synth")
    stamp, ok = read_stamp(coded)
    assert ok and stamp["written_by"] == "fastssl synth" and stamp["splits"] == [1] and not stamp["unlabelled"]
    os.unlink(coded / "videos/A/v_A_g03_c01.mp4")
    assert load_dataset(coded).stamped  # trusted: no file is opened
    with open(coded / "testlist01.txt", "a") as f:
        f.write("A/v_A_g03_c01.mp4\n")
    assert not read_stamp(coded)[1]
    with pytest.raises(DatasetError, match="file is missing"):
        load_dataset(coded)
    write_stamp(coded, "prepare", unlabelled=True)
    ds = load_dataset(coded)
    assert ds.stamped and ds.unlabelled
    (coded / STAMP).write_text("{not json")
    assert read_stamp(coded) == (None, False)


@pytest.mark.parametrize("bad,message", [
    ("../outside.mp4", "leaves the dataset folder"),
    ("/etc/passwd", "is not a path relative"),
    ("A/../../outside.mp4", "leaves the dataset folder"),
])
def test_list_paths_cannot_leave_the_root(coded, bad, message):
    (coded / "testlist01.txt").write_text(f"{bad}\n")
    with pytest.raises(DatasetError, match=rf"testlist01.txt:1: .*{message}"):
        load_dataset(coded, check=False)


def test_index_paths_cannot_leave_the_root(coded, tmp_path):
    rows = _rows(coded)
    rows[0]["path"] = str(coded / rows[0]["path"])  # absolute, even if it points inside
    _write_rows(coded, rows)
    with pytest.raises(DatasetError, match=r"index.csv:2: .*is not a path relative"):
        load_dataset(coded)


def test_symlinks(coded, tmp_path):
    # a symlinked file that resolves outside the root is refused
    outside = tmp_path / "elsewhere.mp4"
    os.replace(coded / "videos/A/v_A_g02_c01.mp4", outside)
    os.symlink(outside, coded / "videos/A/v_A_g02_c01.mp4")
    with pytest.raises(DatasetError, match=r"index.csv:3: .*resolves to .*outside the dataset folder"):
        load_dataset(coded)
    os.unlink(coded / "videos/A/v_A_g02_c01.mp4")
    os.replace(outside, coded / "videos/A/v_A_g02_c01.mp4")
    # ROOT/videos itself may live elsewhere (a big disk): allowed, and files inside it load
    store = tmp_path / "disk" / "videos"
    store.parent.mkdir()
    os.replace(coded / "videos", store)
    os.symlink(store, coded / "videos")
    ds = load_dataset(coded)
    assert Path(ds.train[0].path).is_file()
