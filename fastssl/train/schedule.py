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


def current_lrs(optimizer: torch.optim.Optimizer) -> dict[str, float]:
    """{"lr/<group name>": lr} for the logs."""
    return {f"lr/{g['name']}": g["lr"] for g in optimizer.param_groups}
