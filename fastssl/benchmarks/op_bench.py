"""The clip-builder op (Triton, torch reference, DALI-only) against the device's copy bandwidth."""
from __future__ import annotations

import numpy as np
import torch

from fastssl.benchmarks.common import config, device_inputs, sync, timed
from fastssl.benchmarks.stats import rate_stats


def _op_inputs(spec: dict):
    from fastssl.train.inputs import input_dtype
    cfg = config(spec, "pretrain")
    windows, starts, orders, _ = device_inputs(cfg, cfg.device, cfg.batch_size, seed=1)
    dtype = input_dtype(cfg)
    out_bytes = cfg.batch_size * cfg.N * cfg.D * cfg.size * cfg.size * 3 * dtype.itemsize
    return cfg, windows, starts, orders, dtype, windows.numel() + out_bytes


def op(spec: dict, which: str) -> dict:
    """`which` = reference (torch) | triton. GB/s = (uint8 windows read + clips written) / s."""
    from fastssl.kernels import build_clips_reference, build_clips_triton

    cfg, windows, starts, orders, dtype, nbytes = _op_inputs(spec)
    fn = {"reference": build_clips_reference, "triton": build_clips_triton}[which]

    def run():
        return fn(windows, starts, orders, mean=cfg.mean, std=cfg.std, dtype=dtype)

    out = run()
    err = None
    if which != "reference":
        ref = build_clips_reference(windows, starts, orders, mean=cfg.mean, std=cfg.std, dtype=dtype)
        err = float((out.float() - ref.float()).abs().max())
    del out

    def step():
        run()
        sync(cfg.device)
        return nbytes

    samples = timed(spec, step, share=0.5)  # short calls, many samples: half the time will do
    return {"metric": rate_stats(samples, "GB/s", scale=1e-9), "bytes_per_call": nbytes,
            "shape": [cfg.batch_size, cfg.W, cfg.size, cfg.size, 3], "dtype": str(dtype),
            "max_abs_diff_vs_reference": err, "notes": []}


def op_dali(spec: dict) -> dict:
    """The same job done the DALI-only way: fn.sequence_rearrange (gather the N*D frames by
    start + order) + fn.crop_mirror_normalize (normalize, cast, FHWC out = channels_last_3d's
    memory layout) inside a pipeline fed by external_source (no_copy)."""
    from nvidia.dali import fn, pipeline_def, types

    from fastssl.benchmarks.machine import usable_cores
    from fastssl.kernels import build_clips_reference

    cfg, windows, starts, orders, dtype, nbytes = _op_inputs(spec)
    cuda = cfg.device.startswith("cuda")
    notes = []
    dali_dtype = types.FLOAT
    if dtype != torch.float32:
        dali_dtype = types.FLOAT16  # DALI has no bf16: fp16 is the same number of bytes
        notes.append(f"DALI writes float16 where fastssl writes {dtype} (DALI has no bfloat16)")
    B = cfg.batch_size
    samples_in = [windows[b] if cuda else windows[b].numpy() for b in range(B)]
    order = (starts[:, :, None] + orders).reshape(B, -1).to(torch.int32).cpu().numpy()
    order_list = [order[b] for b in range(B)]

    @pipeline_def(batch_size=B, num_threads=usable_cores(), device_id=0 if cuda else None,
                  prefetch_queue_depth=2)
    def pipe():
        x = fn.external_source(source=lambda: samples_in, batch=True, layout="FHWC", no_copy=True,
                               device="gpu" if cuda else "cpu")
        new_order = fn.external_source(source=lambda: order_list, batch=True, no_copy=True)
        x = fn.sequence_rearrange(x, new_order=new_order)
        return fn.crop_mirror_normalize(x, dtype=dali_dtype, mean=list(cfg.mean), std=list(cfg.std),
                                        output_layout="FHWC")

    p = pipe()
    p.build()
    (first,) = p.run()
    got = np.asarray(first.as_cpu()[0] if cuda else first[0], dtype=np.float32)
    ref = build_clips_reference(windows[:1], starts[:1], orders[:1], mean=cfg.mean, std=cfg.std,
                                dtype=torch.float32)
    ref = ref.permute(0, 2, 3, 4, 1).reshape(got.shape).cpu().numpy()  # (N*D, H, W, C)
    err = float(np.abs(got - ref).max())

    def step():
        p.run()
        sync(cfg.device)
        return nbytes

    samples = timed(spec, step, share=0.5)
    p = None  # the pipeline and its threads go now
    return {"metric": rate_stats(samples, "GB/s", scale=1e-9), "bytes_per_call": nbytes,
            "max_abs_diff_vs_reference": err, "notes": notes}


def copy_bandwidth(spec: dict) -> dict:
    """The device's copy bandwidth, measured here: CPU a large tensor copy_, GPU device to device.
    GB/s counts bytes read + written, like the op's figure."""
    device = spec["device"]
    n = (1 << 30) if device.startswith("cuda") else (256 << 20)
    src = torch.ones(n, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    dst.copy_(src)

    def step():
        dst.copy_(src)
        sync(device)
        return 2 * n

    samples = timed(spec, step, share=0.5)
    return {"metric": rate_stats(samples, "GB/s", scale=1e-9), "bytes_per_call": 2 * n,
            "what": "torch copy_ " + ("device to device" if device.startswith("cuda") else
                                      f"host to host ({torch.get_num_threads()} threads)"),
            "notes": []}
