"""The compute dtype of a run: autocast for the model, and the dtype the clip builder writes."""
from __future__ import annotations

import contextlib

import torch

from fastssl.config import Config

_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def input_dtype(cfg: Config) -> torch.dtype:
    return _DTYPES[cfg.precision]


def autocast(cfg: Config):
    """bf16/fp16 autocast on CUDA; fp32 (no autocast) elsewhere or when asked."""
    if cfg.precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(cfg.device).type, dtype=input_dtype(cfg))
