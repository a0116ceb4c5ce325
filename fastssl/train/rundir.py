"""The run folder: what a run writes there, and refusing to mix two runs in one folder."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from fastssl.config import Config

# Everything a run (or an evaluation) writes into its folder; --force removes exactly these.
RUN_FILES = ("config.json", "metrics.jsonl", "checkpoint.pt", "eval.json", "scores.json", "tb")
# ... and checkpoint-STEP.pt, checkpoint.pt.tmp (see existing_run_files)


class RunDirError(ValueError):
    """The --out folder already holds a run."""


def existing_run_files(out: str | os.PathLike) -> list[str]:
    out = Path(out)
    if not out.is_dir():
        return []
    return sorted(p.name for p in out.iterdir()
                  if p.name in RUN_FILES or (p.name.startswith("checkpoint") and p.suffix in (".pt", ".tmp")))


def check_run_dir(out: str | os.PathLike, *, force: bool) -> None:
    """Refuse a folder that holds a run unless `force` (then `clear_run_dir` empties it)."""
    found = existing_run_files(out)
    if found and not force:
        raise RunDirError(f"{out} already holds a run ({', '.join(found)}); pass --force to delete "
                          f"those files and start over, or choose another --out")


def clear_run_dir(out: str | os.PathLike) -> None:
    """Delete a previous run's files (only those; anything else in the folder stays)."""
    for name in existing_run_files(out):
        path = Path(out) / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


def start_run_dir(out: str | os.PathLike, cfg: Config, *, force: bool = False) -> Path:
    """Create the folder, clear a previous run when forced, dump the resolved config."""
    check_run_dir(out, force=force)
    clear_run_dir(out)
    run_dir = Path(out)
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg.dump(run_dir)
    return run_dir


def continue_run_dir(out: str | os.PathLike, cfg: Config) -> Path:
    """A resumed run: same folder, its config re-dumped (steps or workers may have changed)."""
    run_dir = Path(out)
    cfg.dump(run_dir)
    return run_dir


def prepare_run_dir(cfg: Config, *, resume, force: bool, dist) -> Path:
    """The run folder of a new or resumed run; only rank 0 of a data-parallel run writes it."""
    if not dist.is_main:
        return Path(cfg.out)
    return continue_run_dir(cfg.out, cfg) if resume else start_run_dir(cfg.out, cfg, force=force)
