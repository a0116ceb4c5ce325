"""The clip-builder op (Triton, torch reference) against the device's copy bandwidth. GB/s counts
bytes read plus bytes written: the uint8 windows and the clips, the source and the copy."""
from __future__ import annotations

import torch

from fastssl.benchmarks.common import config, device_inputs, sync, timed
from fastssl.benchmarks.stats import rate_stats


def _gbps(spec: dict, device: str, call, nbytes: int) -> dict:
    def step():
        call()
        sync(device)
        return nbytes
    return rate_stats(timed(spec, step, share=0.5), "GB/s", scale=1e-9)  # short calls: half the time will do


def op(spec: dict, which: str) -> dict:
    """`which` = reference (torch) | triton, on the preset's batch of questions."""
    from fastssl.kernels import build_clips_reference, build_clips_triton
    from fastssl.train.precision import input_dtype
    cfg = config(spec, "pretrain")
    b, dtype = device_inputs(cfg, cfg.batch_size, seed=1), input_dtype(cfg)
    args = (b["windows"], b["starts"], b["orders"])
    fn = {"reference": build_clips_reference, "triton": build_clips_triton}[which]

    def call():
        return fn(*args, mean=cfg.mean, std=cfg.std, dtype=dtype)
    err = None
    if which != "reference":
        ref = build_clips_reference(*args, mean=cfg.mean, std=cfg.std, dtype=dtype)
        err = float((call().float() - ref.float()).abs().max())
    nbytes = int(b["windows"].numel() * (1 + cfg.N * cfg.D / cfg.W * dtype.itemsize))
    return {"metric": _gbps(spec, cfg.device, call, nbytes), "bytes_per_call": nbytes, "dtype": str(dtype),
            "max_abs_diff_vs_reference": err, "notes": []}


def copy_bandwidth(spec: dict) -> dict:
    """A large copy_ on the device (CPU: host to host; GPU: device to device)."""
    device = spec["device"]
    n = (1 << 30) if device.startswith("cuda") else (256 << 20)
    src = torch.ones(n, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    dst.copy_(src)
    return {"metric": _gbps(spec, device, lambda: dst.copy_(src), 2 * n), "bytes_per_call": 2 * n,
            "threads": torch.get_num_threads(), "notes": []}
