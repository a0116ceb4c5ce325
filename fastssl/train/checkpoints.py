"""Checkpoints: written atomically, read once, checked for the use they are read for.

A checkpoint is a dict of tensors, numbers and strings (so `torch.load(weights_only=True)`
reads it): format (FORMAT), kind ("pretext" | "classifier"), step, config (the run's Config as
JSON), model, optimizer, torch_rng, and per kind: classes (classifier, newline-joined). What a
training run adds to resume exactly is in `state.py`.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from fastssl.config import RUNTIME_KEYS, Config
from fastssl.files import atomic_save, describe_file

KINDS = ("pretext", "classifier")
# The layout of the dict above. 0: checkpoints written before the field existed (main up to
# 2026-11-29), read as they are. Raise it when a key changes meaning, and teach `_upgrade` the old one.
FORMAT = 1
# Model settings a pretext checkpoint must share with the classifier it initialises.
INIT_KEYS = ("arch", "width", "size", "D")


class CheckpointError(ValueError):
    """A checkpoint cannot be read, or does not fit the use it was given for; names the file."""


@dataclass
class Checkpoint:
    path: str
    kind: str
    step: int
    config: Config       # the config of the run that wrote it
    state: dict          # everything saved (model, optimizer, ...)

    @property
    def classes(self) -> list[str]:
        return self.state["classes"].split("\n") if "classes" in self.state else []

    def runtime_config(self, runtime: Config) -> Config:
        """The saved model settings with the caller's runtime settings (device, loader, ...)."""
        return dataclasses.replace(self.config, **{k: getattr(runtime, k) for k in RUNTIME_KEYS})


def save_checkpoint(path: str | os.PathLike, *, kind: str, model: torch.nn.Module, cfg: Config,
                    step: int, optimizer: torch.optim.Optimizer | None = None, **extra) -> Path:
    """Write atomically (temp file, fsync, rename): a killed run never leaves a half-written file."""
    if kind not in KINDS:
        raise ValueError(f"unknown checkpoint kind {kind!r}")
    path = Path(path)
    state = {"format": FORMAT, "kind": kind, "step": step, "config": cfg.to_json(),
             "model": model.state_dict(), "torch_rng": torch.get_rng_state(), **extra}
    if optimizer is not None:
        state["optimizer"] = optimizer.state_dict()
    return atomic_save(state, path)


def _upgrade(path: Path, state: dict) -> dict:
    """A checkpoint of any format this fastssl reads -> today's layout."""
    version = state.get("format", 0)
    if not isinstance(version, int) or version > FORMAT:
        raise CheckpointError(f"{path}: checkpoint format {version!r}, written by a newer fastssl "
                              f"(this one reads formats 0-{FORMAT}); upgrade fastssl to use it")
    # format 0 differs only by lacking the field (its interval's "skipped" count is ignored)
    return {**state, "format": FORMAT}


def read_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read any fastssl checkpoint; CheckpointError says what the file is when it is not one."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - whatever the unpickler says, the file is not usable
        raise CheckpointError(f"{path}: is {describe_file(path, 'a checkpoint written by fastssl')}") from None
    if not isinstance(state, dict) or state.get("kind") not in KINDS or "config" not in state:
        raise CheckpointError(f"{path}: a torch file, but not a fastssl checkpoint "
                              f"(no kind/config; fastssl writes kinds {KINDS})")
    state = _upgrade(path, state)
    try:
        config = Config.load_json(state["config"])
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"{path}: its saved config is unreadable ({e})") from None
    return Checkpoint(str(path), state["kind"], int(state.get("step", 0)), config, state)


def checkpoint_for_init(path: str | os.PathLike | Checkpoint, cfg: Config) -> Checkpoint:
    """A pretext checkpoint (a path, or one already read) whose conv layers fit the classifier
    `cfg` describes."""
    ckpt = path if isinstance(path, Checkpoint) else read_checkpoint(path)
    path = ckpt.path
    if ckpt.kind != "pretext":
        raise CheckpointError(f"{path}: needs a pretext checkpoint (from `fastssl pretrain`), "
                              f"this one is a {ckpt.kind} checkpoint")
    mismatch = [f"{k}={getattr(ckpt.config, k)} (here {getattr(cfg, k)})" for k in INIT_KEYS
                if getattr(ckpt.config, k) != getattr(cfg, k)]
    if mismatch:
        raise CheckpointError(f"{path} was trained with {', '.join(mismatch)}; pass "
                              f"--preset {ckpt.config.preset} or the same sizes")
    return ckpt


def features_of(ckpt: Checkpoint) -> dict:
    """The backbone of a checkpoint (3D-AlexNet's conv1..pool3, a ResNet's stem..layer4), as a
    state dict for `model.features`. A ResNet classifier keeps torchvision's layout: everything
    but `fc`; every other model keeps its backbone under `features.`."""
    state = ckpt.state["model"]
    if ckpt.kind == "classifier" and ckpt.config.arch != "alexnet3d":
        return {k: v for k, v in state.items() if not k.startswith("fc.")}
    prefix = "features."
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def numbered(run_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    """The run's checkpoint-STEP.pt files, newest first."""
    found = []
    for path in Path(run_dir).glob("checkpoint-*.pt"):
        step = path.stem.split("-", 1)[1]
        if step.isdigit():
            found.append((int(step), path))
    return sorted(found, reverse=True)


class CheckpointWriter:
    """checkpoint-STEP.pt files, each written atomically; the last `keep` kept; checkpoint.pt
    always the newest complete one (a hard link where the file system has them, else a copy)."""

    def __init__(self, run_dir: str | os.PathLike, keep: int = 2):
        self.dir, self.keep = Path(run_dir), max(1, keep)
        self.dir.mkdir(parents=True, exist_ok=True)

    def save(self, step: int, **kw) -> Path:
        path = save_checkpoint(self.dir / f"checkpoint-{step}.pt", step=step, **kw)
        latest = self.dir / "checkpoint.pt"
        tmp = self.dir / "checkpoint.pt.tmp"
        tmp.unlink(missing_ok=True)
        try:
            os.link(path, tmp)
        except OSError:
            import shutil
            shutil.copyfile(path, tmp)
        os.replace(tmp, latest)
        for _, old in numbered(self.dir)[self.keep:]:
            old.unlink(missing_ok=True)
        return path


def newest_readable(run_dir: str | os.PathLike, report=print) -> Checkpoint | None:
    """The newest checkpoint of a run folder that reads back whole; a damaged one is reported
    and the one before it used. None when the folder has none."""
    for _, path in numbered(run_dir):
        try:
            return read_checkpoint(path)
        except CheckpointError as e:
            report(f"warning: {e}; trying the one before it")
    return None
