"""What a benchmark ran on: CPU, cores, memory, GPU and driver, library versions."""
from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import sys


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _versions() -> dict:
    """Installed versions of the libraries that matter; DALI's wheel names carry the CUDA version
    (nvidia-dali-cuda130, ...), a copy on PYTHONPATH may have no metadata, and metadata may
    outlive an import that fails: DALI counts only when it imports."""
    found = {"numpy": None, "av": None, "triton": None, "dali": None}
    for dist in importlib.metadata.distributions():
        name = (dist.metadata.get("Name") or "").lower()
        key = "dali" if name.startswith("nvidia-dali") else name
        if key in found:
            found[key] = f"{dist.version} ({name})" if key == "dali" else dist.version
    from fastssl.data.loaders import dali_available
    found["dali"] = (found["dali"] or "no package metadata") if dali_available() else None
    return found


def _first(path: str, key: str) -> str | None:
    try:
        with open(path) as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith(key)), None)
    except OSError:
        return None


def machine_info() -> dict:
    import torch
    info = {"hostname": platform.node(), "os": platform.platform(),
            "cpu": _first("/proc/cpuinfo", "model name") or platform.machine(), "cpu_cores": os.cpu_count(),
            "cpu_cores_usable": usable_cores(),
            "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
            "load_average": list(os.getloadavg()), "python": sys.version.split()[0], "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "cuda_runtime": torch.version.cuda, **_versions(), "gpu": None}
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        try:
            driver = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                    capture_output=True, text=True, timeout=15).stdout.split("\n")[0].strip() or None
        except (OSError, subprocess.TimeoutExpired):
            driver = None
        info["gpu"] = {"name": p.name, "count": torch.cuda.device_count(), "memory_gib": round(p.total_memory / 2**30),
                       "capability": f"{p.major}.{p.minor}", "sm_count": p.multi_processor_count, "driver": driver}
    return info


def describe(info: dict) -> str:
    """One line for the report's header."""
    gpu = f"{info['gpu']['name']} (driver {info['gpu']['driver']})" if info.get("gpu") else "no GPU"
    return (f"{info['cpu']} x{info['cpu_cores_usable']} cores, {info['memory_gib']} GiB; {gpu}; python {info['python']}"
            f", torch {info['torch']}, dali {info['dali']}, av {info['av']}, triton {info['triton']}")
