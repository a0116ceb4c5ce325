"""`fastssl prepare`: turn a tree of videos into a dataset folder of fast-to-seek files.

    prepare_dataset(src, out, ...) -> Summary

1. `sources.find_source` lists the videos, their classes and up to three splits (UCF101 lists,
   HMDB51 split files, class folders, or --unlabelled).
2. `OUT/prepare.json` records the settings; a re-run with other settings is refused, one with
   the same settings resumes: outputs logged as verified (and present) are skipped.
3. A process pool runs `transcode.transcode` on the rest: temp name -> verify -> rename.
4. Every unusable source goes to `OUT/prepare_report.csv`; the index, the lists (trainlist0S /
   testlist0S for every split the source has) and the stamp are written last.
"""
from __future__ import annotations

import fcntl
import json
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from fastssl.files import atomic_write

from ..dataset import write_index, write_splits, write_stamp
from ..encode import CODECS
from .report import REPORT, mend_done_log, read_done, write_report
from .sources import LAYOUTS, SourceError, find_source
from .transcode import Result, Settings, transcode
from .verify import PSNR_FLOOR

# Keyframe interval of prepared files. Every window decode starts at the keyframe before it, so
# a window of W frames costs W + (gop - 1) / 2 decoded frames on average (8: +17% at W=20, what
# NVDEC pays per frame), while intra frames are the expensive ones to decode and to store. On
# natural-looking 320x240 content, PyAV CPU-ms per random 20-frame window, h264 / vp9:
# gop 1: 23 / 63, 4: 24 / 28, 8: 19 / 24, 16: 18 / 24, 32: 17 / 28, 250: 34 / 61; size
# 11.1 / 31.1, 5.8 / 5.8, 4.4 / 4.4, 2.8 / 3.2 KB per frame at gop 1, 8, 16, 250.
# 8 is at the minimum for both codecs on the CPU with the least wasted GPU decode near it.
DEFAULT_GOP = 8
SETTINGS_FILE = "prepare.json"
# settings that change what is written: a re-run must match them all
COMPARED = ("source", "splits_dir", "layout", "codec", "gop", "short_side", "min_frames",
            "test_fraction", "seed")

__all__ = ["prepare_dataset", "PrepareError", "Summary", "SourceError", "DEFAULT_GOP", "LAYOUTS",
           "PSNR_FLOOR", "CODECS"]


class PrepareError(RuntimeError):
    """prepare cannot start or (with strict) finish; the message says why and what to do."""


@dataclass
class Summary:
    out: str
    layout: str
    prepared: int        # outputs written this run
    skipped: int         # outputs already done by an earlier run
    bad: int             # unusable sources (in the report)
    unlisted: int        # videos found in the source tree that no split list names
    frames: int          # frames in all outputs (this run and earlier)
    bytes: int           # size of all outputs
    seconds: float
    splits: list[int]
    classes: int

    def line(self) -> str:
        total = self.prepared + self.skipped
        parts = [f"prepared {total} videos ({self.prepared} now, {self.skipped} already done), "
                 f"{self.frames} frames, {self.bytes / 1e6:.1f} MB, {self.classes} classes, "
                 f"splits {','.join(map(str, self.splits))}",
                 f"{self.bad} bad"]
        if self.unlisted:
            parts.append(f"{self.unlisted} in no split list")
        tail = f" (see {Path(self.out) / REPORT})" if self.bad or self.unlisted else ""
        return "; ".join(parts) + f"{tail}; {self.seconds:.1f} s -> {self.out}"


def _check_settings(out: Path, settings: dict) -> None:
    path = out / SETTINGS_FILE
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except ValueError:
            raise PrepareError(f"{path}: unreadable; delete it (and {out}) to start again") from None
        diff = [k for k in COMPARED if old.get(k) != settings.get(k)]
        if diff:
            what = ", ".join(f"{k}: {old.get(k)!r} -> {settings.get(k)!r}" for k in diff)
            raise PrepareError(f"{out} was prepared with other settings ({what}); use another OUT, "
                               f"the same settings (to resume), or delete {out}")
        return
    if out.exists() and any(out.iterdir()):
        raise PrepareError(f"{out}: exists, is not empty and holds no {SETTINGS_FILE}: choose an "
                           f"empty or new folder")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(settings, indent=1) + "\n")


def _lock(out: Path):
    f = open(out / ".prepare.lock", "w")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.close()
        raise PrepareError(f"{out}: another `fastssl prepare` is writing here") from None
    return f


def _clean_parts(videos: Path) -> None:
    """Remove temp files of an interrupted run: never done, never listed."""
    if videos.is_dir():
        for p in videos.rglob("*.part"):
            p.unlink()


def prepare_dataset(src, out, *, codec: str = "h264", gop: int = DEFAULT_GOP,
                    short_side: int | None = None, min_frames: int = 20, layout: str = "auto",
                    splits_dir=None, test_fraction: float = 0.3, seed: int = 0,
                    jobs: int | None = None, strict: bool = False, progress: bool = True,
                    echo=print) -> Summary:
    """Prepare `src` into `out` (see the module docstring). Raises SourceError for an unusable
    source tree, PrepareError for a refused OUT or (strict) any unusable video, ValueError for
    bad arguments."""
    from tqdm import tqdm

    if codec not in CODECS:
        raise ValueError(f"codec must be one of {sorted(CODECS)}, got {codec!r}")
    if gop < 1 or min_frames < 1 or (short_side is not None and short_side < 16):
        raise ValueError("gop and min_frames must be >= 1 and short_side >= 16")
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    jobs = jobs or len(os.sched_getaffinity(0)) or 1
    started = time.perf_counter()
    source = find_source(src, layout=layout, splits_dir=splits_dir, test_fraction=test_fraction,
                         seed=seed)
    out = Path(out).resolve()
    if out == Path(src).resolve() or Path(src).resolve() in out.parents:
        raise PrepareError(f"{out}: OUT must not be inside SRC ({Path(src).resolve()}): its outputs "
                           f"would be found as sources")
    settings = {"source": str(Path(src).resolve()),
                "splits_dir": str(Path(splits_dir).resolve()) if splits_dir else None,
                "layout": source.layout, "codec": codec, "gop": gop, "short_side": short_side,
                "min_frames": min_frames,
                "test_fraction": test_fraction if source.layout in ("folders",) else
                (0.1 if source.layout == "unlabelled" else None),
                "seed": seed if source.layout in ("folders", "unlabelled") else None,
                "encoder": CODECS[codec][0], "psnr_floor_db": PSNR_FLOOR[codec],
                "pixel_format": CODECS[codec][2], "written_by": "fastssl prepare"}
    if strict and source.missing:
        raise PrepareError(f"{len(source.missing)} listed video(s) missing (--strict):\n"
                           + "\n".join(f"  {m}: {why}" for m, why in source.missing[:20]))
    _check_settings(out, settings)
    lock = _lock(out)
    try:
        videos = out / "videos"
        _clean_parts(videos)
        srcs = {it.src for it in source.items}
        done = {s: r for s, r in read_done(out).items() if s in srcs}
        todo = [it for it in source.items if it.src not in done]
        # the biggest first: the pool's tail is short and the ETA honest sooner
        todo.sort(key=lambda it: -_size(it.src))
        cfg = Settings(codec=codec, gop=gop, short_side=short_side, min_frames=min_frames)
        results: dict[str, dict] = {s: r for s, r in done.items()}
        bad = [{"source": m, "kind": "bad", "reason": why} for m, why in source.missing]
        bad += [{"source": u, "kind": "unlisted", "reason": "in no split list: not prepared"}
                for u in source.unlisted]
        log = mend_done_log(out)
        bar = tqdm(total=len(todo), unit="video", desc="prepare", disable=not progress,
                   mininterval=0.5 if sys.stderr.isatty() else 30)  # a log gets a line per 30 s
        n_bad = 0

        def collect(r: Result) -> None:
            nonlocal n_bad
            if r.ok:
                results[r.src] = r.to_json()
            else:
                n_bad += 1
                bad.append({"source": r.src, "kind": "bad", "reason": r.reason})
            bar.update(1)
            bar.set_postfix(bad=n_bad + len(source.missing), refresh=False)

        try:
            if jobs == 1 or len(todo) <= 1:
                for it in todo:
                    collect(transcode(it.src, it.rel, it.class_name, str(videos), cfg, log))
            else:
                with ProcessPoolExecutor(max_workers=min(jobs, len(todo)), mp_context=_context()) as pool:
                    futures = [pool.submit(transcode, it.src, it.rel, it.class_name, str(videos), cfg, log)
                               for it in todo]
                    try:
                        for fut in as_completed(futures):
                            collect(fut.result())
                    except BaseException:
                        for f in futures:
                            f.cancel()
                        raise
        finally:
            bar.close()
            write_report(out, bad)

        n_bad_total = sum(1 for b in bad if b["kind"] == "bad")
        if strict and n_bad_total:
            lines = "\n".join(f"  {b['source']}: {b['reason']}" for b in bad if b["kind"] == "bad")
            raise PrepareError(f"{n_bad_total} unusable video(s) (--strict; all in "
                               f"{out / REPORT}):\n{lines}")
        ok = {r["rel"][: -len(CODECS[codec][1])]: r for r in results.values()}
        rows = [{"path": f"videos/{r['rel']}", "frames": r["frames"], "fps": float(Fraction(r["rate"])),
                 "codec": codec, "width": r["width"], "height": r["height"], "class": r["class_name"]}
                for _, r in sorted(ok.items())]
        suffix = CODECS[codec][1]
        written = []
        for s, (train, test) in sorted(source.final_splits(set(ok)).items()):
            tr = [f"{rel}{suffix}" for rel in train]
            te = [f"{rel}{suffix}" for rel in test]
            if not tr or not te:
                echo(f"warning: split {s} has {len(tr)} train / {len(te)} test videos left: not written")
                continue
            write_splits(out, source.classes, tr, te, split=s)
            written.append(s)
        if not written:
            raise PrepareError(f"no split has both train and test videos left ({len(ok)} prepared, "
                               f"{n_bad_total} bad: see {out / REPORT})")
        write_index(out, rows)
        write_stamp(out, "prepare", unlabelled=source.layout == "unlabelled")
        return Summary(out=str(out), layout=source.layout, prepared=len(results) - len(done),
                       skipped=len(done), bad=n_bad_total,
                       unlisted=sum(1 for b in bad if b["kind"] == "unlisted"),
                       frames=sum(r["frames"] for r in ok.values()),
                       bytes=sum(r["bytes"] for r in ok.values()),
                       seconds=time.perf_counter() - started, splits=written,
                       classes=len(source.classes))
    finally:
        lock.close()


def _context():
    """forkserver: workers never fork a parent that runs threads (tqdm's monitor), and the server
    imports PyAV once for all of them."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["fastssl.data.prepare.transcode"])
    return ctx


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0
