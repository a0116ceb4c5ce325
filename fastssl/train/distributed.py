"""Data parallelism under torchrun: who this process is, and the few collectives the loops use.

    torchrun --nproc-per-node 8 -m fastssl pretrain --data DATA --out runs/rp       # one node
    torchrun --nnodes 2 --node-rank 0 --rdzv-backend c10d --rdzv-endpoint HOST:29500 \\
             --nproc-per-node 8 -m fastssl pretrain ...                             # each node

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; without them this is a one-process run and every
function here is a no-op. NCCL carries the gradients on CUDA, gloo on the CPU; stop decisions
and metrics travel over a separate gloo group on CPU tensors, so agreeing on them every step
costs no GPU sync.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


_control = None  # the gloo group for host-side collectives


def from_env() -> Dist:
    """This process's place in a torchrun launch (rank 0 of 1 without torchrun)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    return Dist(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))


def rank_device(device: str, d: Dist) -> str:
    """This rank's device: "cuda:LOCAL_RANK" for each rank of a CUDA launch, else `device`."""
    if d.enabled and device.startswith("cuda"):
        return f"cuda:{d.local_rank}"
    return device


def init(d: Dist, device: str) -> None:
    """Join the process group (once); the entry point calls this before any collective."""
    global _control
    if not d.enabled:
        return
    if device.startswith("cuda"):
        torch.cuda.set_device(d.local_rank)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
        _control = dist.new_group(backend="gloo") if device.startswith("cuda") else dist.group.WORLD


def shutdown() -> None:
    global _control
    if dist.is_initialized():
        dist.destroy_process_group()
    _control = None


def _group():
    return _control if _control is not None else dist.group.WORLD


def _host_reduce(values: list[float], d: Dist, op) -> list[float]:
    if not d.enabled:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t, op=op, group=_group())
    return t.tolist()


def host_max(values: list[float], d: Dist) -> list[float]:
    """Element-wise max over ranks of a few host numbers (flags, counters)."""
    return _host_reduce(values, d, dist.ReduceOp.MAX)


def host_sum(values: list[float], d: Dist) -> list[float]:
    return _host_reduce(values, d, dist.ReduceOp.SUM)


def gather_objects(obj, d: Dist) -> list:
    """Every rank's `obj`, in rank order (pickled; for small things: results per video, paths)."""
    if not d.enabled:
        return [obj]
    out = [None] * d.world_size
    dist.all_gather_object(out, obj, group=_group())
    return out


def data_parallel(model: torch.nn.Module, cfg, d: Dist) -> torch.nn.Module:
    """The model as the training loop drives it: wrapped in DistributedDataParallel when
    there are several ranks (SyncBatchNorm first with --sync-bn), else unchanged."""
    if not d.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel
    if cfg.sync_bn:
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    cuda = cfg.device.startswith("cuda")
    return DistributedDataParallel(model, device_ids=[d.local_rank] if cuda else None)


@torch.no_grad()
def sync_buffers(model: torch.nn.Module, d: Dist) -> None:
    """Give every rank rank 0's BatchNorm statistics (per-rank by default), so that evaluation
    after data-parallel training scores one model."""
    if not d.enabled:
        return
    for buffer in model.buffers():
        dist.broadcast(buffer, src=0)
