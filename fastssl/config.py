"""Presets and the one resolved config object that every run dumps next to its outputs.

Choices the paper does not make, taken once here and kept equal across RP/SS/PB/Scratch so
that settings are compared like for like:
- Optimizer: Adam (betas 0.9, 0.999), no weight decay. The paper's learning rates (1e-4
  pretext; 1e-3 new fc / 1e-4 pretrained conv when fine-tuning) are Adam-sized rates; with
  plain SGD 1e-4 barely moves a randomly initialised 3D-AlexNet. BN replaces dropout.
- Schedule: linear warm-up over the first 2% of steps, then cosine decay to 0. A cosine tail
  makes the final checkpoint, the one evaluated, a settled one without picking an epoch count
  for step decays.
- Scratch fine-tuning uses the fine-tune learning rates unchanged (1e-3 fc, 1e-4 conv): the
  paper gives no Scratch rates, and equal rates isolate the effect of the initialisation.
- Inputs: frames resized to `resize` (h, w) then cropped to size x size: random crop + flip for
  training, centre crop for evaluation. `paper` keeps UCF101's 240x320 and crops 224.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

from fastssl.files import atomic_write

PRESETS = {
    "paper": dict(size=224, resize=(240, 320), width=1.0, fc_size=4096, branch_dim=128,
                  W=20, D=8, N=6, batch_size=64, epochs=None, steps=20000, finetune_steps=20000,
                  lr=1e-4, lr_fc=1e-3, lr_conv=1e-4, eval_questions=4),
    # C3D-style 112 px crops from 128x171 frames: 4x fewer pixels, same network.
    "small": dict(size=112, resize=(128, 171), width=1.0, fc_size=4096, branch_dim=128,
                  W=20, D=8, N=6, batch_size=32, epochs=None, steps=20000, finetune_steps=20000,
                  lr=1e-4, lr_fc=1e-3, lr_conv=1e-4, eval_questions=4),
    # For CPUs and tests: 64 px (the smallest size 3D-AlexNet accepts), quarter width, small fc.
    # The paper's learning rates hold here too (larger ones stall on a plateau at chance:
    # bench/RESULTS.md, "Learning rates of the tiny preset").
    "tiny": dict(size=64, resize=(72, 96), width=0.25, fc_size=512, branch_dim=128,
                 W=20, D=8, N=6, batch_size=16, epochs=None, steps=400, finetune_steps=300,
                 lr=1e-4, lr_fc=1e-3, lr_conv=1e-4, eval_questions=4),
}


OPTIMIZERS = ("adam", "sgd")
# Backbones (fastssl/models/build.py builds them); named here so the CLI need not import torch.
ARCHS = ("alexnet3d", "r3d_18", "mc3_18", "r2plus1d_18")

# Where and in which dtype a run computes (the CLI's choices; defaults in train/run_setup.py).
DEVICES = ("cpu", "cuda")
PRECISIONS = ("fp32", "bf16", "fp16")

# Settings of a run that are not part of the model: a checkpoint evaluated or reused on another
# machine takes these from the caller, everything else from the checkpoint.
RUNTIME_KEYS = ("device", "precision", "loader", "workers", "decoders", "batch_size", "data",
                "eval_questions", "out", "compile")


def default_preset(device: str) -> str:
    return "paper" if device.startswith("cuda") else "tiny"


@dataclass
class Config:
    """Everything a run depends on. `resolve` fills it from a preset plus command-line overrides."""
    command: str = "pretrain"          # pretrain | finetune | evaluate
    data: str = ""
    out: str = ""
    preset: str = "tiny"
    mode: str = "rp"                    # pretext mode: rp | ss | pb
    arch: str = "alexnet3d"             # backbone: alexnet3d | r3d_18 | mc3_18 | r2plus1d_18
    # geometry
    size: int = 64
    resize: tuple = (72, 96)
    W: int = 20
    D: int = 8
    N: int = 6
    # model
    width: float = 0.25
    fc_size: int = 512
    branch_dim: int = 128
    # optimisation
    batch_size: int = 16
    steps: int = 300
    epochs: float | None = None
    lr: float = 1e-4
    lr_fc: float = 1e-3
    lr_conv: float = 1e-4
    warmup: float = 0.02
    optimizer: str = "adam"             # adam | sgd (momentum 0.9, as OPN/VCOP-style code)
    init: str | None = None             # finetune: pretext checkpoint (None = scratch)
    inflate: str | None = None          # 2D AlexNet state dict whose conv weights are inflated to 3D
    split: int = 1                      # which train/test split lists (UCF101/HMDB51 have 1-3)
    # runtime
    seed: int = 0
    device: str = "cpu"
    precision: str = "fp32"
    loader: str = "pyav"
    workers: int = 2
    decoders: int = 1                   # DALI: video pipelines per GPU (one per NVDEC engine)
    log_every: int = 10
    ckpt_every: int = 500               # a checkpoint every this many steps ...
    ckpt_minutes: float = 10.0          # ... and at least every this many minutes of training
    keep_checkpoints: int = 2           # checkpoint-STEP.pt files kept (checkpoint.pt = the newest)
    eval_every: int = 100               # held-out monitor (questions / clips) every this many steps (0 = off)
    skip_bad: bool = False              # report and skip unusable videos at start instead of refusing
    max_bad_fraction: float = 0.05      # stop when more of a split's videos fail to decode mid-run
    skip_nonfinite: bool = False        # skip batches whose loss is NaN/Inf instead of stopping
    deterministic: bool = False         # CUDA: deterministic cuDNN/cuBLAS choices (slower)
    compile: bool = False               # torch.compile the model
    accumulate: int = 1                 # micro-batches per optimizer step (batch_size is the whole step)
    sync_bn: bool = False               # data parallel on CUDA: SyncBatchNorm across ranks
    eval_questions: int = 4            # held-out questions per test video (pretext evaluation)
    mean: tuple = (114.8, 107.7, 99.4)  # 0-255 units (Kinetics/UCF101 statistics used by C3D ports)
    std: tuple = (58.4, 57.1, 57.4)
    version: str = ""

    def total_steps(self, epoch_size: int) -> int:
        """--steps, or --epochs passes over `epoch_size` samples in batches of batch_size."""
        if self.epochs is not None:
            return max(1, math.ceil(self.epochs * epoch_size / self.batch_size))
        return self.steps

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    def dump(self, run_dir: str | os.PathLike) -> Path:
        return atomic_write(Path(run_dir) / "config.json", self.to_json() + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Config":
        return cls.load_json(Path(path).read_text())

    @classmethod
    def load_json(cls, text: str) -> "Config":
        raw = json.loads(text)
        known = {f.name for f in dataclasses.fields(cls)}
        raw = {k: v for k, v in raw.items() if k in known}
        for key in ("resize", "mean", "std"):
            if key in raw and raw[key] is not None:
                raw[key] = tuple(raw[key])
        return cls(**raw)


# What the video ResNets are usually trained with (VCOP and later): 16-frame clips of 112 px crops
# from 128x171 frames, and a pretext window long enough for N=6 such clips; a preset's own values
# stand for 3D-AlexNet. Flags still override.
_RESNET_CLIPS = dict(D=16, W=24, size=112, resize=(128, 171))
ARCH_DEFAULTS = {"r3d_18": _RESNET_CLIPS, "mc3_18": _RESNET_CLIPS, "r2plus1d_18": _RESNET_CLIPS}


def resolve(preset: str, command: str, **overrides) -> Config:
    """Preset values, then the arch's usual clip size, then every override that is not None."""
    from fastssl import __version__
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose from {sorted(PRESETS)}")
    values = dict(PRESETS[preset])
    finetune_steps = values.pop("finetune_steps")
    if command == "finetune":
        values["steps"] = finetune_steps
    values["command"] = command
    values.update(ARCH_DEFAULTS.get(overrides.get("arch") or "alexnet3d", {}))
    values.update({k: v for k, v in overrides.items() if v is not None})
    known = {f.name for f in dataclasses.fields(Config)}
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"unknown config keys {sorted(unknown)}")
    return Config(preset=preset, version=__version__, **values)
