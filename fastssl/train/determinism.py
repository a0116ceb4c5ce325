"""Seeding and the backend flags that decide whether a run repeats bit for bit."""
from __future__ import annotations

import os

import torch


def seed_everything(seed: int) -> None:
    # Only weight init and nothing else draws from torch's RNG: the data path uses its own
    # (seed, epoch, index) generators.
    torch.manual_seed(seed)


def set_deterministic(enabled: bool) -> None:
    """Off (the default): cuDNN benchmarks its algorithms once per conv shape and keeps the
    fastest - every shape in a run is fixed, so that is paid once. On: what PyTorch needs for
    repeatable CUDA runs: deterministic cuDNN algorithms (no autotune), deterministic kernels
    where they exist (warn_only: MaxPool3d's backward has none on CUDA, so that op stays
    non-deterministic), and a fixed cuBLAS workspace. CPU runs are repeatable either way."""
    if not enabled:
        torch.backends.cudnn.benchmark = True
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(True, warn_only=True)
