"""The dataset writer: renders and encodes a synthetic dataset in UCF101's layout.

When more classes than motions are asked for, class k uses motion k % M at speed 2 ** (k // M)
("Fast", "Faster" suffixes), so each class stays a distinct motion pattern (`class_plan`).
Arguments are checked before anything is written, and an existing folder is replaced only with
`force`, which removes only what this writer writes.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from fastssl.data.dataset import STAMP, VideoDataset, load_dataset, write_index, write_splits, write_stamp
from fastssl.data.encode import CODECS, suffix_for, write_video
from fastssl.data.synth.motions import CONTROL_MOTIONS, MOTIONS, get_motion
from fastssl.data.synth.render import make_scene, video_rng

# speed-regime suffixes for classes beyond the number of motions (regime j plays at 2**j)
REGIME_SUFFIXES = ("", "Fast", "Faster")


def class_plan(classes: int, motions: Sequence[str] | None = None) -> list[tuple[str, str, int]]:
    """(class name, motion name, regime) per class: class k uses motion k % M at speed
    2 ** (k // M). The default motions are MOTIONS; CONTROL_MOTIONS are used only by name."""
    motions = list(MOTIONS) if motions is None else list(motions)
    plan = []
    for k in range(classes):
        name, regime = motions[k % len(motions)], k // len(motions)
        plan.append((get_motion(name).class_name + REGIME_SUFFIXES[regime], name, regime))
    return plan


def _check_args(classes, motions, videos_per_class, frames, size, fps, codec, gop,
                seed, rate_control="crf") -> list[str]:
    def is_int(v):
        return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

    if motions is None:
        motions = list(MOTIONS)
    elif isinstance(motions, str):
        raise ValueError(f"motions must be a list of names, not the string {motions!r}")
    else:
        motions = list(motions)
    if not motions:
        raise ValueError("motions is empty; valid names: " + ", ".join(MOTIONS))
    unknown = [m for m in motions if m not in MOTIONS and m not in CONTROL_MOTIONS]
    if unknown:
        raise ValueError(f"unknown motion(s) {', '.join(map(repr, unknown))}; "
                         f"valid: {', '.join(MOTIONS)} (controls: {', '.join(CONTROL_MOTIONS)})")
    if len(set(motions)) != len(motions):
        raise ValueError(f"motions has duplicates: {motions}")
    if not is_int(classes) or classes < 2:
        raise ValueError(f"classes must be an integer >= 2, got {classes!r}")
    most = len(motions) * len(REGIME_SUFFIXES)
    if classes > most:
        raise ValueError(f"classes={classes} is too many for {len(motions)} motions: at most "
                         f"{most} ({len(REGIME_SUFFIXES)} speed regimes per motion)")
    if not is_int(videos_per_class) or videos_per_class < 2:
        raise ValueError(f"videos_per_class must be an integer >= 2 (one train and one test "
                         f"group per class), got {videos_per_class!r}")
    if not is_int(frames) or frames < 1:
        raise ValueError(f"frames must be an integer >= 1, got {frames!r}")
    if (not isinstance(size, (tuple, list)) or len(size) != 2
            or not all(is_int(v) for v in size)):
        raise ValueError(f"size must be (width, height) integers, got {size!r}")
    width, height = size
    if width < 16 or height < 16 or width % 2 or height % 2:
        raise ValueError(f"size {width}x{height}: width and height must be even and >= 16 "
                         f"(4:2:0 video needs even sizes)")
    if not is_int(fps) or fps < 1:
        raise ValueError(f"fps must be an integer >= 1, got {fps!r}")
    if codec not in CODECS:
        raise ValueError(f"unknown codec {codec!r}; valid: {', '.join(CODECS)}")
    if not is_int(gop) or gop < 1:
        raise ValueError(f"gop must be an integer >= 1, got {gop!r}")
    if not is_int(seed) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    if rate_control not in RATE_CONTROLS:
        raise ValueError(f"unknown rate_control {rate_control!r}; valid: {', '.join(RATE_CONTROLS)}")
    if rate_control == "cqp" and codec != "h264":
        raise ValueError(f"rate_control='cqp' is for codec 'h264' only, got {codec!r}")
    return motions


# what `force=True` removes: only what this function writes, nothing else in `out`
_OUTPUTS = ("videos", "classInd.txt", "trainlist01.txt", "testlist01.txt", "index.csv", STAMP)


def _prepare_out(out: Path, force: bool) -> None:
    """Make `out` ready: FileExistsError if it holds anything and not `force` (the message names
    the way out once, for the CLI and the API), ValueError if it is not a folder (force cannot
    help)."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise FileExistsError(f"{out}: exists and is not empty; choose another folder, or "
                                  f"replace the dataset in it with --force (force=True in Python)")
        for name in _OUTPUTS:
            p = out / name
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            elif p.exists() or p.is_symlink():
                p.unlink()
    out.mkdir(parents=True, exist_ok=True)


# How H.264 sets the quality of each frame. "crf" (constant rate factor, encode.CODECS' setting and
# `synth`'s default) lets x264's rate control give the first GOP a different quantiser from the
# later ones: on a *static* 96x72 scene, GOP 8, frames 8.. differ from frames 0..7 by 3.6 levels
# (mean |diff|), so decoded pixels reveal which frames come first - a frame-order shortcut that
# has nothing to do with motion. "cqp" (constant quantiser: P frames at 20, I frames at x264's
# ipratio below) decodes a static scene to frames that differ by < 0.03 levels, the same in
# every GOP (a periodic pattern, which looks the same played backward or permuted within a
# GOP-long clip). `fastssl replicate` writes its sets with "cqp".
RATE_CONTROLS = ("crf", "cqp")
CQP_OPTIONS = {"bf": "0", "sc_threshold": "0", "preset": "veryfast", "qp": "20"}


def write_video_cqp(path, frames, *, fps: int = 25, gop: int = 8) -> int:
    """`encode.write_video` for h264 with constant-quantiser rate control (see RATE_CONTROLS)."""
    return write_video(path, frames, fps=fps, codec="h264", gop=gop, options=CQP_OPTIONS)


def is_test_group(video_index: int) -> bool:
    """Split by group (one group per video): every third video, starting with the first, is
    test, so both splits are non-empty from 2 videos per class (1 train, 1 test)."""
    return video_index % 3 == 0


def make_synthetic_dataset(out: str | os.PathLike, *, classes: int = 10,
                           motions: Sequence[str] | None = None, videos_per_class: int = 6,
                           frames: int = 48, size: tuple[int, int] = (320, 240), fps: int = 25,
                           codec: str = "h264", gop: int = 8, seed: int = 0,
                           progress: bool = True, force: bool = False,
                           test_group: Callable[[int], bool] = is_test_group,
                           rate_control: str = "crf") -> VideoDataset:
    """Render and encode a synthetic action dataset in UCF101's layout under `out`; return it.

        out/videos/<Class>/v_<Class>_gXX_cYY.<ext>   (XX = video index + 1, YY = 01)
        out/classInd.txt, trainlist01.txt, testlist01.txt, index.csv

    Class k uses motion `motions[k % len(motions)]` (default: all of MOTIONS in order) at speed
    2 ** (k // len(motions)). `size` is (width, height). Every video has exactly `frames`
    frames. Raises ValueError for bad arguments (also when `out` is a file) and FileExistsError if
    `out` is non-empty, unless `force`, which removes only the outputs of a previous run (videos/, the lists,
    index.csv) and leaves anything else in `out` alone.

    `test_group(i)` says whether video i of every class is in the test split (default: every
    third, `is_test_group`); both splits must end up non-empty. `rate_control` "cqp" encodes
    h264 at a constant quantiser (see RATE_CONTROLS: no first-GOP quality step).
    """
    from tqdm import tqdm

    motions = _check_args(classes, motions, videos_per_class, frames, size, fps, codec, gop, seed,
                          rate_control)
    tests = [bool(test_group(i)) for i in range(videos_per_class)]
    if all(tests) or not any(tests):
        raise ValueError(f"test_group puts {'all' if all(tests) else 'none'} of the {videos_per_class} "
                         f"videos per class in the test split; both splits need videos")
    out = Path(out)
    _prepare_out(out, force)
    plan = class_plan(classes, motions)
    ext = suffix_for(codec)
    width, height = size
    rows, train, test = [], [], []
    with tqdm(total=classes * videos_per_class, unit="video", desc="synth",
              disable=not progress) as bar:
        for k, (cls, motion, regime) in enumerate(plan):
            (out / "videos" / cls).mkdir(parents=True, exist_ok=True)
            for i in range(videos_per_class):
                rel = f"{cls}/v_{cls}_g{i + 1:02d}_c01{ext}"
                scene = make_scene(motion, video_rng(seed, k, i), frames=frames, size=size,
                                   regime=regime)
                if rate_control == "cqp":
                    n = write_video_cqp(out / "videos" / rel, scene.frames(), fps=fps, gop=gop)
                else:
                    n = write_video(out / "videos" / rel, scene.frames(), fps=fps, codec=codec,
                                    gop=gop)
                if n != frames:  # write_video counts what it encoded; never expected to differ
                    raise RuntimeError(f"{rel}: encoded {n} frames, expected {frames}")
                rows.append({"path": f"videos/{rel}", "frames": n, "fps": fps, "codec": codec,
                             "width": width, "height": height, "class": cls})
                (test if tests[i] else train).append(rel)
                bar.update(1)
    write_splits(out, [c for c, _, _ in plan], train, test)
    write_index(out, rows)  # a dataset with an index.csv is complete ...
    write_stamp(out, "synth")  # ... and stamped: trusted at load, no per-file header check
    return load_dataset(out)
