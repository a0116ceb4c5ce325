"""Which loaders exist, whether this host has them, and picking one by name.

Every loader implements the contract in `contract.py`; `get(name)` returns its module.
"""
from __future__ import annotations

import importlib.util
from types import ModuleType

LOADERS = ("pyav", "dali")
CHOICES = ("auto",) + LOADERS
DALI_INSTALL = ("pip install nvidia-dali-cuda130 (CUDA 13), or nvidia-dali-cuda120 on CUDA 12; "
                "Linux only")


def dali_available() -> bool:
    """True when `nvidia.dali` can be imported. Never raises: find_spec("nvidia.dali") raises
    ModuleNotFoundError when no `nvidia` package exists at all (macOS, Windows, a plain box)."""
    try:
        return importlib.util.find_spec("nvidia.dali") is not None
    except (ImportError, ValueError):
        return False


def choose_loader(requested: str, device: str, report=None) -> str:
    """'auto' means DALI when it is installed and a GPU is used, else PyAV (said through `report`
    when a GPU run falls back). ValueError for an unknown name or an unavailable loader."""
    if requested not in CHOICES:
        raise ValueError(f"unknown loader {requested!r}; choose from {CHOICES}")
    if requested == "dali" and not dali_available():
        raise ValueError(f"--loader dali: NVIDIA DALI is not installed ({DALI_INSTALL})")
    if requested != "auto":
        return requested
    if device.startswith("cuda"):
        if dali_available():
            return "dali"
        if report is not None:
            report(f"loader: pyav (DALI is not installed, so videos are decoded on the CPU; "
                   f"for GPU decoding: {DALI_INSTALL})")
    return "pyav"


def get(name: str) -> ModuleType:
    """The module implementing the loader contract for `name` ('pyav' or 'dali')."""
    if name == "pyav":
        from fastssl.data import pyav_loader
        return pyav_loader
    if name == "dali":
        if not dali_available():
            raise ValueError(f"NVIDIA DALI is not installed ({DALI_INSTALL})")
        from fastssl.data import dali
        return dali
    raise ValueError(f"unknown loader {name!r}; choose from {LOADERS}")
