"""Batches -> the model's clips on the device: the clip builder turns uint8 windows into the model's
normalized channels-last clips, in its compute dtype (no separate cast pass)."""
from __future__ import annotations

import torch

from fastssl.config import Config
from fastssl.data.sampling import Geometry
from fastssl.kernels import build_clips, identity_orders
from fastssl.train.precision import input_dtype


def geometry(cfg: Config) -> Geometry:
    """How frames are scaled and cropped for the model (the plans and loaders take this)."""
    return Geometry(resize=tuple(cfg.resize), size=cfg.size)


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
    orders = identity if orders is None else orders.to(windows.device, non_blocking=True)
    return build_clips(windows, starts, orders, mean=cfg.mean, std=cfg.std, dtype=input_dtype(cfg))


def labelled_clips(batch: dict, cfg: Config) -> tuple[torch.Tensor, torch.Tensor]:
    """A fine-tuning batch -> (B, C, D, s, s) clips and (B,) class labels, on cfg.device."""
    return single_clips(batch["windows"], cfg), batch["label"].to(cfg.device, non_blocking=True)
