"""A dataset folder in UCF101's layout, plus the `index.csv` every loader reads.

    ROOT/videos/<Class>/v_<Class>_gXX_cYY.<ext>
    ROOT/classInd.txt        "1 ClassName" per line (1-based, as UCF101)
    ROOT/trainlist0S.txt     "Class/v_Class_g08_c01.avi 1" (path relative to videos/, label optional)
    ROOT/testlist0S.txt      "Class/v_Class_g01_c01.avi"          (S = split 1, 2 or 3)
    ROOT/index.csv           path (relative to ROOT), frames, fps, codec, width, height, class
    ROOT/fastssl_dataset.json  the stamp: written by `synth`/`prepare` (see `write_stamp`)

The index is written once (by `synth` or `prepare`) so loaders never probe files again. A folder
whose stamp matches its lists is trusted; any other folder (hand-made, or edited after it was
written) gets a header-only check of every listed file at load, so a wrong line is a usage error
naming the file and line before any work, never a traceback from a worker. Paths in the lists
and the index never leave ROOT (`videos/` itself may be a symlink to elsewhere).
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from fastssl.files import atomic_write

INDEX_FIELDS = ["path", "frames", "fps", "codec", "width", "height", "class"]
STAMP = "fastssl_dataset.json"
STAMP_FORMAT = 1
SPLITS = (1, 2, 3)


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
    split: int = 1              # which trainlist0S/testlist0S these lists came from
    unlabelled: bool = False    # one pseudo-class: pretext training only (no finetune/evaluate)
    stamped: bool = False       # written by fastssl (stamp matches); False: checked at load

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def split_files(split: int) -> tuple[str, str]:
    """('trainlist0S.txt', 'testlist0S.txt') for split S."""
    return f"trainlist{split:02d}.txt", f"testlist{split:02d}.txt"


def write_index(root: str | os.PathLike, rows: list[dict]) -> Path:
    """Write ROOT/index.csv atomically from dicts with INDEX_FIELDS keys."""
    text = io.StringIO(newline="")  # csv writes its own "\r\n"; no newline translation on top
    writer = csv.DictWriter(text, fieldnames=INDEX_FIELDS)
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row[k] for k in INDEX_FIELDS})
    return atomic_write(Path(root) / "index.csv", text.getvalue().encode())


def write_splits(root: str | os.PathLike, classes: list[str], train: list[str], test: list[str],
                 split: int = 1) -> None:
    """Write classInd.txt, trainlist0S.txt and testlist0S.txt (S = split), each atomically;
    paths are relative to videos/ and start with the class folder."""
    root = Path(root)
    label = {c: i + 1 for i, c in enumerate(classes)}
    train_name, test_name = split_files(split)
    atomic_write(root / "classInd.txt", "".join(f"{i + 1} {c}\n" for i, c in enumerate(classes)))
    atomic_write(root / train_name, "".join(f"{p} {label[p.split('/')[0]]}\n" for p in train))
    atomic_write(root / test_name, "".join(f"{p}\n" for p in test))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _stamped_files(root: Path) -> list[str]:
    names = ["classInd.txt", "index.csv"]
    for s in SPLITS:
        names += [n for n in split_files(s) if (root / n).is_file()]
    return names


def write_stamp(root: str | os.PathLike, tool: str, *, unlabelled: bool = False) -> Path:
    """Mark ROOT as written by fastssl `tool` ('synth', 'prepare'): call it last, after
    index.csv and the lists. The stamp holds their checksums, so a folder edited afterwards is
    checked at load like a hand-made one."""
    root = Path(root)
    stamp = {"written_by": f"fastssl {tool}", "format": STAMP_FORMAT, "unlabelled": bool(unlabelled),
             "splits": [s for s in SPLITS if all((root / n).is_file() for n in split_files(s))],
             "sha256": {n: _sha256(root / n) for n in _stamped_files(root)}}
    return atomic_write(root / STAMP, json.dumps(stamp, indent=1) + "\n")


def read_stamp(root: str | os.PathLike) -> tuple[dict | None, bool]:
    """(stamp or None, whether it still matches the files it covers)."""
    path = Path(root) / STAMP
    try:
        stamp = json.loads(path.read_text())
        sums = stamp["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return None, False
    try:
        ok = (stamp.get("format") == STAMP_FORMAT and isinstance(sums, dict)
              and sorted(sums) == sorted(_stamped_files(Path(root)))
              and all(_sha256(Path(root) / n) == h for n, h in sums.items()))
    except OSError:
        ok = False
    return stamp, ok


def available_splits(root: str | os.PathLike) -> list[int]:
    """The splits S for which ROOT has both trainlist0S.txt and testlist0S.txt."""
    return [s for s in SPLITS if all((Path(root) / n).is_file() for n in split_files(s))]


def _read_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, stripped line) for the non-empty lines of a list file."""
    if not path.is_file():
        raise DatasetError(f"{path}: missing (expected a dataset made by `fastssl synth` or `fastssl prepare`)")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"{path}: cannot read: {e}") from None
    return [(n, ln.strip()) for n, ln in enumerate(text.splitlines(), 1) if ln.strip()]


def _relative(rel: str, where: str) -> None:
    p = PurePosixPath(rel)
    if not rel or p.is_absolute() or rel.startswith("\\") or (len(rel) > 1 and rel[1] == ":"):
        raise DatasetError(f"{where}: {rel!r} is not a path relative to the dataset folder")
    if ".." in p.parts or "\\" in rel:
        raise DatasetError(f"{where}: {rel!r} leaves the dataset folder ('..' or '\\' in the path)")


def safe_path(root: Path, rel: str, where: str) -> Path:
    """ROOT/rel, refusing anything that could leave ROOT: absolute paths, '..' components, and
    symlinks resolving outside ROOT (ROOT/videos may itself link elsewhere: inside it is fine).
    `root` must already be resolved. `where` ("file:line") goes into the message."""
    _relative(rel, where)
    full = root / rel
    real = Path(os.path.realpath(full))
    allowed = [root, Path(os.path.realpath(root / "videos"))]
    if not any(real == a or a in real.parents for a in allowed):
        raise DatasetError(f"{where}: {rel!r} resolves to {real}, outside the dataset folder "
                           f"(a symlink out of {root} is refused)")
    return full


def _header_frames(path: str) -> tuple[int | None, str | None]:
    """(frame count from the container, or None when it has none, error or None). Opens and
    demuxes only: no decoding. Containers without a count (WebM/Matroska) are counted by packets."""
    import av  # lazy: reading a stamped folder needs no PyAV

    from fastssl.data.frame_count import stream_frames
    try:
        with av.open(path) as container:
            if not container.streams.video:
                return None, "has no video stream"
            return stream_frames(container, container.streams.video[0]), None
    except (av.error.FFmpegError, OSError) as e:
        return None, f"cannot be opened as a video: {e}"


def check_index(videos_by_line: list[tuple[str, Video]]) -> None:
    """The header-only check of an unstamped folder: each listed file exists, opens, has a video
    stream and as many frames as index.csv says. Raises DatasetError naming file and line."""
    for where, v in videos_by_line:
        if not os.path.isfile(v.path):
            raise DatasetError(f"{where}: {v.path}: file is missing")
        frames, error = _header_frames(v.path)
        if error:
            raise DatasetError(f"{where}: {v.path}: {error}")
        if frames != v.frames:
            raise DatasetError(f"{where}: {v.path}: index.csv says {v.frames} frames, the file has {frames}")


def load_dataset(root: str | os.PathLike, split: int = 1, *, check: bool | None = None) -> VideoDataset:
    """Read split `split` (1..3) of a dataset folder; raise DatasetError naming file and line.

    check: None (default) checks every listed file's header when the folder carries no stamp
    that matches its lists; True always checks; False never does."""
    root = Path(root).resolve()
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset folder does not exist")
    if split not in SPLITS:
        raise DatasetError(f"split must be one of {list(SPLITS)}, got {split!r}")
    stamp, stamped = read_stamp(root)
    classes = []
    for n, line in _read_lines(root / "classInd.txt"):
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise DatasetError(f"{root / 'classInd.txt'}:{n}: expected '<index> <ClassName>', got {line!r}")
        if int(parts[0]) != len(classes) + 1:
            raise DatasetError(f"{root / 'classInd.txt'}:{n}: expected index {len(classes) + 1}, got {parts[0]}")
        if parts[1] in classes:
            raise DatasetError(f"{root / 'classInd.txt'}:{n}: class {parts[1]!r} listed twice")
        classes.append(parts[1])
    if not classes:
        raise DatasetError(f"{root / 'classInd.txt'}: lists no classes")
    label_of = {c: i for i, c in enumerate(classes)}

    train_name, test_name = split_files(split)
    for name in (train_name, test_name):
        if not (root / name).is_file():
            have = available_splits(root)
            raise DatasetError(f"{root / name}: missing: this folder has split(s) {have or 'none'}, not {split}")

    index_path = root / "index.csv"
    if not index_path.is_file():
        raise DatasetError(f"{index_path}: missing (every loader reads it; `synth`/`prepare` write it)")
    by_rel: dict[str, tuple[str, Video]] = {}
    with open(index_path, newline="") as f:
        reader = csv.DictReader(f)
        missing = set(INDEX_FIELDS) - set(reader.fieldnames or [])
        if missing:
            raise DatasetError(f"{index_path}: missing columns {sorted(missing)}")
        for n, row in enumerate(reader, 2):
            where = f"{index_path}:{n}"
            if None in row or any(row[k] is None for k in INDEX_FIELDS):
                raise DatasetError(f"{where}: expected {len(INDEX_FIELDS)} columns ({', '.join(INDEX_FIELDS)})")
            rel = row["path"]
            full = safe_path(root, rel, where)
            try:
                video = Video(path=str(full), rel=rel, frames=int(row["frames"]),
                              fps=float(row["fps"]), codec=row["codec"], width=int(row["width"]),
                              height=int(row["height"]), class_name=row["class"],
                              label=label_of[row["class"]])
            except KeyError:
                raise DatasetError(f"{where}: class {row['class']!r} is not in classInd.txt") from None
            except ValueError as e:
                raise DatasetError(f"{where}: {e}") from None
            if video.frames < 1 or not video.fps > 0:
                raise DatasetError(f"{where}: frames and fps must be positive, got {row['frames']}, {row['fps']}")
            if rel in by_rel:
                raise DatasetError(f"{where}: {rel} is listed twice (first at {by_rel[rel][0]})")
            by_rel[rel] = (where, video)

    checked: list[tuple[str, Video]] = []

    def read_list(name: str, labelled: bool) -> list[Video]:
        videos = []
        for n, line in _read_lines(root / name):
            where = f"{root / name}:{n}"
            parts = line.split()
            if len(parts) > (2 if labelled else 1):
                raise DatasetError(f"{where}: expected '<Class/file>{' [label]' if labelled else ''}' "
                                   f"(no spaces in names), got {line!r}")
            _relative(parts[0], where)
            rel = "videos/" + parts[0]
            safe_path(root, rel, where)
            if rel not in by_rel:
                raise DatasetError(f"{where}: {parts[0]} is not in index.csv")
            video = by_rel[rel][1]
            if len(parts) == 2:
                if not parts[1].isdigit():
                    raise DatasetError(f"{where}: label {parts[1]!r} is not a number")
                if int(parts[1]) != video.label + 1:
                    raise DatasetError(f"{where}: label {parts[1]} but index.csv puts {parts[0]} in class "
                                       f"{video.class_name!r} ({video.label + 1} in classInd.txt)")
            videos.append(video)
            checked.append((f"{by_rel[rel][0]} (listed at {where})", video))
        if not videos:
            raise DatasetError(f"{root / name}: no videos listed")
        return videos

    train, test = read_list(train_name, True), read_list(test_name, False)
    if check or (check is None and not stamped):
        check_index(checked)
    return VideoDataset(root=str(root), classes=classes, train=train, test=test, split=split,
                        unlabelled=bool(stamp and stamp.get("unlabelled")), stamped=stamped)


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
