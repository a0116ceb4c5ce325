"""The learning-rate schedule: linear warm-up, then cosine to zero, the same factor for every
param group (each group carries its own `base_lr` and a `name` for the logs)."""
from __future__ import annotations

import math

import torch


def lr_factor(step: int, total: int, warmup: float) -> float:
    """Linear warm-up over `warmup` of the run, then cosine to zero at `total`."""
    warm = max(1, int(round(warmup * total)))
    if step < warm:
        return (step + 1) / warm
    progress = (step - warm) / max(1, total - warm)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def set_lr(optimizer: torch.optim.Optimizer, factor: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = group["base_lr"] * factor


def make_optimizer(name: str, groups: list[dict]) -> torch.optim.Optimizer:
    """Adam (betas 0.9/0.999, no weight decay: the paper's rates are Adam-sized) or SGD with
    momentum 0.9 (what OPN/VCOP-style code uses; it wants larger rates)."""
    if name == "adam":
        return torch.optim.Adam(groups)
    if name == "sgd":
        return torch.optim.SGD(groups, momentum=0.9)
    raise ValueError(f"unknown optimizer {name!r}")


def current_lrs(optimizer: torch.optim.Optimizer) -> dict[str, float]:
    """{"lr/<group name>": lr} for the logs."""
    return {f"lr/{g['name']}": g["lr"] for g in optimizer.param_groups}
