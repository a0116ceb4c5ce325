"""A dataset folder in UCF101's layout, plus the `index.csv` every loader reads.

    ROOT/videos/<Class>/v_<Class>_gXX_cYY.<ext>
    ROOT/classInd.txt        "1 ClassName" per line (1-based, as UCF101)
    ROOT/trainlist01.txt     "Class/v_Class_g08_c01.avi 1" (path relative to videos/, label optional)
    ROOT/testlist01.txt      "Class/v_Class_g01_c01.avi"
    ROOT/index.csv           path (relative to ROOT), frames, fps, codec, width, height, class

The index is written once (by `synth` or `prepare`) so loaders never probe files again.
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

INDEX_FIELDS = ["path", "frames", "fps", "codec", "width", "height", "class"]


class DatasetError(ValueError):
    """A dataset folder is missing something or contradicts itself; the message names the file."""


@dataclass(frozen=True)
class Video:
    path: str          # absolute path of the file
    rel: str           # path relative to the dataset root, as in index.csv
    frames: int
    fps: float
    codec: str
    width: int
    height: int
    class_name: str
    label: int         # 0-based class index (classInd.txt is 1-based)


@dataclass(frozen=True)
class VideoDataset:
    root: str
    classes: list[str]
    train: list[Video]
    test: list[Video]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def split(self, name: str) -> list[Video]:
        if name not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', not {name!r}")
        return self.train if name == "train" else self.test


def write_index(root: str | os.PathLike, rows: list[dict]) -> Path:
    """Write ROOT/index.csv atomically from dicts with INDEX_FIELDS keys."""
    path = Path(root) / "index.csv"
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=INDEX_FIELDS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row[k] for k in INDEX_FIELDS})
    os.replace(tmp, path)
    return path


def write_splits(root: str | os.PathLike, classes: list[str], train: list[str], test: list[str]) -> None:
    """Write classInd.txt, trainlist01.txt and testlist01.txt; paths are relative to videos/."""
    root = Path(root)
    label = {c: i + 1 for i, c in enumerate(classes)}
    (root / "classInd.txt").write_text("".join(f"{i + 1} {c}\n" for i, c in enumerate(classes)))
    (root / "trainlist01.txt").write_text("".join(f"{p} {label[p.split('/')[0]]}\n" for p in train))
    (root / "testlist01.txt").write_text("".join(f"{p}\n" for p in test))


def _read_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise DatasetError(f"{path}: missing (expected a dataset made by `fastssl synth` or `fastssl prepare`)")
    return [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]


def load_dataset(root: str | os.PathLike) -> VideoDataset:
    """Read a dataset folder; raise DatasetError naming the file and the problem."""
    root = Path(root).resolve()
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset folder does not exist")
    classes = []
    for n, line in enumerate(_read_lines(root / "classInd.txt"), 1):
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise DatasetError(f"{root / 'classInd.txt'}:{n}: expected '<index> <ClassName>', got {line!r}")
        classes.append(parts[1])
    label_of = {c: i for i, c in enumerate(classes)}

    index_path = root / "index.csv"
    if not index_path.is_file():
        raise DatasetError(f"{index_path}: missing (every loader reads it; `synth`/`prepare` write it)")
    by_rel = {}
    with open(index_path, newline="") as f:
        reader = csv.DictReader(f)
        missing = set(INDEX_FIELDS) - set(reader.fieldnames or [])
        if missing:
            raise DatasetError(f"{index_path}: missing columns {sorted(missing)}")
        for n, row in enumerate(reader, 2):
            try:
                video = Video(path=str(root / row["path"]), rel=row["path"], frames=int(row["frames"]),
                              fps=float(row["fps"]), codec=row["codec"], width=int(row["width"]),
                              height=int(row["height"]), class_name=row["class"],
                              label=label_of[row["class"]])
            except KeyError:
                raise DatasetError(f"{index_path}:{n}: class {row['class']!r} is not in classInd.txt") from None
            except ValueError as e:
                raise DatasetError(f"{index_path}:{n}: {e}") from None
            by_rel[row["path"]] = video

    def split(name: str) -> list[Video]:
        videos = []
        for n, line in enumerate(_read_lines(root / name), 1):
            rel = "videos/" + line.split()[0]
            if rel not in by_rel:
                raise DatasetError(f"{root / name}:{n}: {line.split()[0]} is not in index.csv")
            videos.append(by_rel[rel])
        if not videos:
            raise DatasetError(f"{root / name}: no videos listed")
        return videos

    return VideoDataset(root=str(root), classes=classes, train=split("trainlist01.txt"),
                        test=split("testlist01.txt"))


def check_videos(videos: list[Video], min_frames: int, *, skip: bool, what: str,
                 report=print) -> list[Video]:
    """Refuse (or, with skip, report and drop) videos that are missing or shorter than
    min_frames. Nothing is dropped silently: every skipped file is reported with its reason."""
    bad = []
    for v in videos:
        if not os.path.isfile(v.path):
            bad.append((v, "file is missing"))
        elif v.frames < min_frames:
            bad.append((v, f"{v.frames} frames, {what} needs at least {min_frames}"))
    if not bad:
        return videos
    lines = "\n".join(f"  {v.path}: {why}" for v, why in bad)
    if not skip:
        raise DatasetError(f"{len(bad)} unusable video(s):\n{lines}\n(pass --skip-bad to skip them)")
    report(f"skipping {len(bad)} unusable video(s):\n{lines}")
    kept = [v for v in videos if v not in {b for b, _ in bad}]
    if not kept:
        raise DatasetError(f"no usable videos left for {what} after skipping {len(bad)}")
    return kept
