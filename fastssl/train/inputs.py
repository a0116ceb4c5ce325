"""Batches -> model inputs on the device: the clip builder turns uint8 windows into the model's
normalized channels-last clips, in its compute dtype (no separate cast pass)."""
from __future__ import annotations

import torch

from fastssl.config import Config
from fastssl.kernels import build_clips, identity_orders

_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def input_dtype(cfg: Config) -> torch.dtype:
    return _DTYPES[cfg.precision]


def question_clips(batch: dict, cfg: Config) -> tuple[torch.Tensor, torch.Tensor]:
    """A pretext batch -> (B*N, C, D, s, s) clips and the (B,) labels, on cfg.device."""
    dev = cfg.device
    clips = build_clips(batch["windows"].to(dev, non_blocking=True),
                        batch["starts"].to(dev, non_blocking=True),
                        batch["orders"].to(dev, non_blocking=True),
                        mean=cfg.mean, std=cfg.std, dtype=input_dtype(cfg))
    return clips, batch["label"].to(dev, non_blocking=True)


def single_clips(windows: torch.Tensor, cfg: Config, orders: torch.Tensor | None = None) -> torch.Tensor:
    """uint8 (B, D, s, s, 3) -> normalized (B, C, D, s, s): the clip builder with N=1, frames in
    order (or in `orders`, (B, 1, D), e.g. shuffled to test how much a model relies on time)."""
    windows = windows.to(cfg.device, non_blocking=True)
    B, D = windows.shape[:2]
    starts, identity = identity_orders(B, D, windows.device)
    orders = identity if orders is None else orders.to(windows.device)
    return build_clips(windows, starts, orders, mean=cfg.mean, std=cfg.std, dtype=input_dtype(cfg))


def shuffled_orders(clips: int, D: int, seed: int, video: int) -> torch.Tensor:
    """(clips, 1, D) random frame orders for the clips of one test video, from (seed, video):
    the same shuffle whatever the batch size, loader or number of ranks."""
    import numpy as np
    rng = np.random.default_rng([seed, video])
    return torch.from_numpy(np.stack([rng.permutation(D) for _ in range(clips)])[:, None, :])


def labelled_clips(batch: dict, cfg: Config) -> tuple[torch.Tensor, torch.Tensor]:
    """A fine-tuning batch -> (B, C, D, s, s) clips and (B,) class labels, on cfg.device."""
    return single_clips(batch["windows"], cfg), batch["label"].to(cfg.device, non_blocking=True)
