"""Find the videos of a source tree, their classes and their three train/test splits.

Four layouts (`find_source`):

    ucf101      SRC/<Class>/*.avi, and classInd.txt + trainlist0S.txt/testlist0S.txt in SRC,
                SRC/ucfTrainTestlist/ or --splits DIR (as UCF101 ships them)
    hmdb51      SRC/<class>/*.avi, and <class>_test_split{1,2,3}.txt in SRC,
                SRC/testTrainMulti_7030_splits/ or --splits DIR; a line "name.avi M" marks the
                video train (M=1), test (M=2) or unused (M=0) in that split
    folders     SRC/<Class>/**/<video>: a seeded split per class that keeps UCF-style groups
                (`_gXX_`) together; the three splits hold out disjoint groups where they can
    unlabelled  SRC/**/<video>: one pseudo-class, a seeded 10% held out as the pretext test split

The class always comes from the folder, never the file name (UCF101 has
HandstandPushups/v_HandStandPushups_*). Output names are made safe for the split-list format.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

VIDEO_EXTS = {".avi", ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv",
              ".3gp", ".ogv", ".ts", ".mts", ".m2ts", ".vob", ".asf", ".divx", ".y4m", ".mjpeg"}
LAYOUTS = ("auto", "ucf101", "hmdb51", "folders", "unlabelled")
UNLABELLED_CLASS = "Unlabelled"
SPLITS = (1, 2, 3)


class SourceError(ValueError):
    """The source tree or its split lists cannot be used; the message names the file."""


@dataclass
class Item:
    src: str           # absolute path of the source video
    rel: str           # output path relative to OUT/videos, without suffix: "Class/name"
    class_name: str


@dataclass
class Source:
    layout: str
    classes: list[str]
    items: list[Item]                                   # what to transcode, in a stable order
    splits: dict[int, tuple[list[str], list[str]]]      # split -> (train rels, test rels)
    missing: list[tuple[str, str]] = field(default_factory=list)   # (path, reason): listed, absent
    unlisted: list[str] = field(default_factory=list)   # videos in SRC that no list names
    test_fraction: float | None = None   # seeded layouts: the split is drawn (again) over the
    seed: int | None = None              # videos that turned out usable, see `final_splits`

    def final_splits(self, ok: set[str]) -> dict[int, tuple[list[str], list[str]]]:
        """The splits restricted to the usable outputs `ok` (rels). Lists from the source keep
        their assignment; a seeded split is drawn over the usable videos only, so a bad file never
        leaves a class without test videos."""
        if self.test_fraction is None:
            return {s: ([r for r in tr if r in ok], [r for r in te if r in ok])
                    for s, (tr, te) in self.splits.items()}
        items = [it for it in self.items if it.rel in ok]
        by_class: dict[str, list[Item]] = {}
        for it in items:
            by_class.setdefault(it.class_name, []).append(it)
        return _seeded_splits(items, by_class, self.test_fraction, self.seed)


_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")


def safe_name(name: str) -> str:
    """A file or class name without spaces or characters the list format or shells trip on."""
    safe = re.sub("_+", "_", _UNSAFE.sub("_", name)).strip("._") or "video"
    return safe


def _is_video(p: Path) -> bool:
    return p.suffix.lower() in VIDEO_EXTS and not p.name.startswith(".")


def _walk_videos(folder: Path) -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found += [Path(dirpath) / f for f in sorted(filenames) if _is_video(Path(f))]
    return found


def _lines(path: Path) -> list[tuple[int, str]]:
    try:
        text = path.read_text(errors="replace")
    except OSError as e:
        raise SourceError(f"{path}: cannot read: {e}") from None
    return [(n, ln.strip()) for n, ln in enumerate(text.splitlines(), 1) if ln.strip()]


class _Namer:
    """Unique safe output names: 'Class/stem' (a clash gets _2, _3...)."""

    def __init__(self):
        self.used: set[str] = set()

    def __call__(self, class_name: str, stem: str) -> str:
        base = f"{class_name}/{safe_name(stem)}"
        rel, k = base, 2
        while rel.lower() in self.used:
            rel, k = f"{base}_{k}", k + 1
        self.used.add(rel.lower())
        return rel


def _ucf_dir(src: Path, splits_dir: Path | None) -> Path | None:
    for d in ([splits_dir] if splits_dir else [src, src / "ucfTrainTestlist"]):
        if (d / "classInd.txt").is_file() and (d / "trainlist01.txt").is_file():
            return d
    return None


def _hmdb_files(src: Path, splits_dir: Path | None) -> dict[tuple[str, int], Path]:
    found = {}
    for d in ([splits_dir] if splits_dir else [src, src / "testTrainMulti_7030_splits"]):
        if d.is_dir():
            for p in sorted(d.iterdir()):
                m = re.fullmatch(r"(.+)_test_split([123])\.txt", p.name)
                if m and p.is_file():
                    found[(m.group(1), int(m.group(2)))] = p
        if found:
            break
    return found


def _class_folders(src: Path) -> list[Path]:
    return sorted(p for p in src.iterdir() if p.is_dir() and not p.name.startswith("."))


def _unlisted(src: Path, listed: set[str], folders: list[Path]) -> list[str]:
    out = []
    for folder in folders:
        out += [str(p) for p in _walk_videos(folder) if str(p) not in listed]
    return out


def ucf101(src: Path, lists: Path) -> Source:
    """UCF101's classInd.txt / trainlist0S.txt / testlist0S.txt; class = the path's folder."""
    classes = []
    for n, line in _lines(lists / "classInd.txt"):
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise SourceError(f"{lists / 'classInd.txt'}:{n}: expected '<index> <ClassName>', got {line!r}")
        classes.append(parts[1])
    known = set(classes)
    items: dict[str, Item] = {}
    missing: list[tuple[str, str]] = []
    splits = {}
    namer = _Namer()
    for s in SPLITS:
        names = (lists / f"trainlist{s:02d}.txt", lists / f"testlist{s:02d}.txt")
        if not all(p.is_file() for p in names):
            continue
        both = []
        for path in names:
            rels = []
            for n, line in _lines(path):
                listed = line.split()[0].replace("\\", "/")
                parts = listed.split("/")
                if len(parts) != 2 or ".." in parts or not parts[1]:
                    raise SourceError(f"{path}:{n}: expected '<Class>/<file>', got {line!r}")
                cls = parts[0]
                if cls not in known:
                    raise SourceError(f"{path}:{n}: class {cls!r} is not in {lists / 'classInd.txt'}")
                full = src / cls / parts[1]
                if str(full) not in items:
                    if not full.is_file():
                        if str(full) not in {m for m, _ in missing}:
                            missing.append((str(full), f"listed in {path.name}:{n} but missing"))
                        continue
                    items[str(full)] = Item(str(full), namer(safe_name(cls), Path(parts[1]).stem), safe_name(cls))
                rels.append(items[str(full)].rel)
            both.append(rels)
        splits[s] = (both[0], both[1])
    classes = [safe_name(c) for c in classes]
    return Source("ucf101", classes, list(items.values()), splits, missing,
                  _unlisted(src, set(items) | {m for m, _ in missing},
                            [src / c for c in known if (src / c).is_dir()]))


def hmdb51(src: Path, files: dict[tuple[str, int], Path]) -> Source:
    """HMDB51's <class>_test_split{1,2,3}.txt: 'name.avi 1' train, '2' test, '0' unused."""
    classes = sorted({c for c, _ in files})
    items: dict[str, Item] = {}
    missing: list[tuple[str, str]] = []
    namer = _Namer()
    splits = {}
    for s in SPLITS:
        if not all((c, s) in files for c in classes):
            continue
        train, test = [], []
        for cls in classes:
            path = files[(cls, s)]
            for n, line in _lines(path):
                parts = line.split()
                if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                    raise SourceError(f"{path}:{n}: expected '<file> 0|1|2', got {line!r}")
                if parts[1] == "0":
                    continue
                full = src / cls / parts[0]
                if str(full) not in items:
                    if not full.is_file():
                        if str(full) not in {m for m, _ in missing}:
                            missing.append((str(full), f"listed in {path.name}:{n} but missing"))
                        continue
                    items[str(full)] = Item(str(full), namer(safe_name(cls), Path(parts[0]).stem), safe_name(cls))
                (train if parts[1] == "1" else test).append(items[str(full)].rel)
        splits[s] = (train, test)
    if not splits:
        raise SourceError(f"{src}: HMDB51 split files found, but no split has a file for every class "
                          f"({len(classes)} classes)")
    return Source("hmdb51", [safe_name(c) for c in classes], list(items.values()), splits, missing,
                  _unlisted(src, set(items) | {m for m, _ in missing},
                            [src / c for c in classes if (src / c).is_dir()]))


_GROUP = re.compile(r"_g(\d+)_", re.IGNORECASE)


def group_of(path: Path) -> str:
    """UCF-style group ('v_X_g08_c01' -> 'g08': clips cut from one long video); else the file."""
    m = _GROUP.search(path.name)
    return f"g{int(m.group(1)):02d}" if m else path.stem


def held_out(groups: list[str], fraction: float, seed: int, salt: int) -> dict[int, set[str]]:
    """For each split, the groups held out as test: a seeded shuffle cut into consecutive
    windows of round(fraction * n) groups (at least one; at least one group stays in train), so
    the three splits' test sets are disjoint where 3 * fraction <= 1."""
    uniq = sorted(set(groups))
    n = len(uniq)
    if n < 2:
        return {s: set() for s in SPLITS}
    k = min(max(1, int(round(fraction * n))), n - 1)
    order = [uniq[i] for i in np.random.default_rng([seed, salt]).permutation(n)]
    return {s: {order[((s - 1) * k + j) % n] for j in range(k)} for s in SPLITS}


def _seeded_splits(items: list[Item], by_class: dict[str, list[Item]], fraction: float,
                   seed: int) -> dict[int, tuple[list[str], list[str]]]:
    splits = {s: ([], []) for s in SPLITS}
    for salt, (cls, members) in enumerate(sorted(by_class.items())):
        groups = [group_of(Path(it.src)) for it in members]
        test = held_out(groups, fraction, seed, salt)
        for it, g in zip(members, groups):
            for s in SPLITS:
                splits[s][1 if g in test[s] else 0].append(it.rel)
    return splits


def folders(src: Path, test_fraction: float, seed: int) -> Source:
    """Class folders with no lists: class = the top folder, videos found recursively in it."""
    namer = _Namer()
    items, by_class = [], {}
    for folder in _class_folders(src):
        videos = _walk_videos(folder)
        if not videos:
            continue
        cls = safe_name(folder.name)
        if cls in by_class:
            raise SourceError(f"{folder}: class folder name clashes with another once made safe ({cls})")
        by_class[cls] = []
        for p in videos:
            stem = "_".join(p.relative_to(folder).with_suffix("").parts)
            it = Item(str(p), namer(cls, stem), cls)
            items.append(it)
            by_class[cls].append(it)
    if not items:
        loose = [p for p in src.iterdir() if p.is_file() and _is_video(p)]
        hint = (" (videos lie directly in it: use --unlabelled for pretext-only data, or put them "
                "in one folder per class)") if loose else ""
        raise SourceError(f"{src}: no class folders with videos found{hint}")
    if len(by_class) < 2:
        raise SourceError(f"{src}: only one class folder ({next(iter(by_class))}) has videos: "
                          f"classification needs two or more (or use --unlabelled)")
    return Source("folders", sorted(by_class), items, _seeded_splits(items, by_class, test_fraction, seed),
                  test_fraction=test_fraction, seed=seed)


def unlabelled(src: Path, seed: int, test_fraction: float = 0.1) -> Source:
    """Any folder of videos, recursively: one pseudo-class, a seeded 10% as the test split."""
    namer = _Namer()
    items = [Item(str(p), namer(UNLABELLED_CLASS, "_".join(p.relative_to(src).with_suffix("").parts)),
                  UNLABELLED_CLASS) for p in _walk_videos(src)]
    if not items:
        raise SourceError(f"{src}: no video files found (looked for {', '.join(sorted(VIDEO_EXTS))})")
    return Source("unlabelled", [UNLABELLED_CLASS], items,
                  _seeded_splits(items, {UNLABELLED_CLASS: items}, test_fraction, seed),
                  test_fraction=test_fraction, seed=seed)


def find_source(src: str | os.PathLike, *, layout: str = "auto", splits_dir: str | os.PathLike | None = None,
                test_fraction: float = 0.3, seed: int = 0) -> Source:
    """Detect (or take) the layout of `src` and list its videos and splits."""
    src = Path(src).resolve()
    splits_dir = Path(splits_dir).resolve() if splits_dir else None
    if not src.is_dir():
        raise SourceError(f"{src}: not a folder")
    if splits_dir and not splits_dir.is_dir():
        raise SourceError(f"{splits_dir}: not a folder")
    if layout not in LAYOUTS:
        raise SourceError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if layout == "unlabelled":
        return unlabelled(src, seed)
    if layout in ("auto", "ucf101"):
        lists = _ucf_dir(src, splits_dir)
        if lists:
            return ucf101(src, lists)
        if layout == "ucf101":
            raise SourceError(f"{splits_dir or src}: no classInd.txt + trainlist01.txt (UCF101 ships them "
                              f"in ucfTrainTestlist/: pass --splits DIR)")
    if layout in ("auto", "hmdb51"):
        files = _hmdb_files(src, splits_dir)
        if files:
            return hmdb51(src, files)
        if layout == "hmdb51":
            raise SourceError(f"{splits_dir or src}: no <class>_test_split1.txt files (HMDB51 ships them "
                              f"in testTrainMulti_7030_splits/: pass --splits DIR)")
    if splits_dir:
        raise SourceError(f"{splits_dir}: holds neither UCF101 lists (classInd.txt, trainlist01.txt) "
                          f"nor HMDB51 ones (<class>_test_split1.txt)")
    return folders(src, test_fraction, seed)
