"""What the GPU is doing, for the logs: utilisation, NVDEC utilisation, memory - read through
NVML (libnvidia-ml.so.1, which every NVIDIA driver installs) with ctypes, so no Python package is
needed. Where NVML is absent (a CPU host, macOS) every reading is simply empty."""
from __future__ import annotations

import ctypes
import functools


class _Utilization(ctypes.Structure):
    _fields_ = [("gpu", ctypes.c_uint), ("memory", ctypes.c_uint)]


class _Memory(ctypes.Structure):
    _fields_ = [("total", ctypes.c_ulonglong), ("free", ctypes.c_ulonglong), ("used", ctypes.c_ulonglong)]


@functools.lru_cache(maxsize=1)
def _nvml():
    try:
        lib = ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        return None
    if lib.nvmlInit_v2() != 0:
        return None
    return lib


@functools.lru_cache(maxsize=None)
def _handle(index: int):
    lib = _nvml()
    handle = ctypes.c_void_p()
    if lib is None or lib.nvmlDeviceGetHandleByIndex_v2(index, ctypes.byref(handle)) != 0:
        return None
    return handle


def gpu_stats(device: str) -> dict[str, float]:
    """{"gpu/utilization", "gpu/nvdec_utilization" (percent over NVML's last sample period),
    "gpu/memory_used_gib"} of a CUDA device ("cuda" or "cuda:N"); {} without NVML or on the CPU.
    NVML numbers GPUs as the driver does; CUDA_VISIBLE_DEVICES reorderings are not followed."""
    if not device.startswith("cuda"):
        return {}
    index = int(device.split(":")[1]) if ":" in device else 0
    lib, handle = _nvml(), _handle(index)
    if lib is None or handle is None:
        return {}
    stats = {}
    util = _Utilization()
    if lib.nvmlDeviceGetUtilizationRates(handle, ctypes.byref(util)) == 0:
        stats["gpu/utilization"] = float(util.gpu)
    decoder, period = ctypes.c_uint(), ctypes.c_uint()
    if lib.nvmlDeviceGetDecoderUtilization(handle, ctypes.byref(decoder), ctypes.byref(period)) == 0:
        stats["gpu/nvdec_utilization"] = float(decoder.value)
    memory = _Memory()
    if lib.nvmlDeviceGetMemoryInfo(handle, ctypes.byref(memory)) == 0:
        stats["gpu/memory_used_gib"] = memory.used / 2**30
    return stats
