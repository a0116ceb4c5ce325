"""What a benchmark ran on: CPU model and cores, memory, GPU and driver, library versions."""
from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import shutil
import subprocess
import sys


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def installed(module: str) -> bool:
    """Whether `module` can be imported, without importing it. Never raises: find_spec of a
    dotted name ("a.b") imports "a" first and raises when "a" is missing or broken."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _version(*dists: str) -> str | None:
    for dist in dists:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def _dali_version() -> str | None:
    """DALI's wheel names carry the CUDA version (nvidia-dali-cuda130, -cuda120, ...); a copy on
    PYTHONPATH may have no metadata at all, so fall back to the module's own __version__. None
    when `nvidia.dali` cannot be found (whatever metadata may say)."""
    from fastssl.data.loaders import dali_available
    if not dali_available():
        return None
    for dist in importlib.metadata.distributions():
        name = (dist.metadata.get("Name") or "").lower()
        if name.startswith("nvidia-dali"):
            return f"{dist.version} ({name})"
    try:
        import nvidia.dali as dali
        return getattr(dali, "__version__", "unknown")
    except Exception as e:  # noqa: BLE001 - a broken install is worth reporting, not raising
        return f"import failed: {e}"


def _module_version(module: str, *dists: str) -> str | None:
    version = _version(*dists)
    if version is None and installed(module):
        try:
            return getattr(__import__(module), "__version__", "unknown")
        except Exception as e:  # noqa: BLE001
            return f"import failed: {e}"
    return version


def _nvidia_smi() -> dict:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return {}
    try:
        out = subprocess.run([exe, "--query-gpu=name,driver_version,memory.total,clocks.max.sm",
                              "--format=csv,noheader"], capture_output=True, text=True, timeout=15)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    line = out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else ""
    parts = [p.strip() for p in line.split(",")]
    if len(parts) < 4:
        return {}
    return {"name": parts[0], "driver": parts[1], "memory": parts[2], "max_sm_clock": parts[3]}


def machine_info() -> dict:
    import torch

    info = {
        "hostname": platform.node(),
        "os": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_cores": os.cpu_count(),
        "cpu_cores_usable": usable_cores(),
        "memory_gib": _memory_gib(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda_runtime": torch.version.cuda,
        "numpy": _version("numpy"),
        "av": _module_version("av", "av"),
        "triton": _module_version("triton", "triton"),
        "dali": _dali_version(),
        "torchcodec": _module_version("torchcodec", "torchcodec"),
        "decord": _module_version("decord", "decord", "eva-decord"),
        "gpu": None,
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        smi = _nvidia_smi()
        info["gpu"] = {"name": props.name, "count": torch.cuda.device_count(),
                       "memory_gib": round(props.total_memory / 2**30, 1),
                       "capability": f"{props.major}.{props.minor}",
                       "sm_count": props.multi_processor_count,
                       "driver": smi.get("driver"), "max_sm_clock": smi.get("max_sm_clock")}
    return info


def describe(info: dict) -> str:
    """One line for the table header."""
    gpu = info.get("gpu")
    g = f"{gpu['name']} (driver {gpu.get('driver')})" if gpu else "no GPU"
    return (f"{info['cpu']} x{info['cpu_cores_usable']} cores, {info['memory_gib']} GiB; {g}; "
            f"python {info['python']}, torch {info['torch']}, dali {info['dali']}, av {info['av']}, "
            f"triton {info['triton']}")
