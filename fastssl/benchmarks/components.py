"""The one registry of benchmark components: name -> what it measures, what it needs to run
here, and the function that measures it (spec -> JSON-able dict whose "metric" entry is the
headline summary: median, quartiles, ...).

Every component runs in a process of its own (`isolation.py`), so imports, threads and peak
memory of one never leak into the next. All of them use the same config (preset + overrides),
the same dataset and, where they read videos, the same `PretextPlan` and key stream, hence the
same windows, crops, flips and questions. REGISTRY is in priority order: what the headline
ratios need comes first, so a tight time budget drops the extras, never the ratios.

    loader_bench.py   loader.*        questions/s of each loader, clip builder included
    training.py       model.*, e2e.*  training steps on device tensors; the real loops
    op_bench.py       op.*            the clip builder against the copy bandwidth
    decoding.py       peer.*, profile peer decoders; where a question's CPU time goes
    parallel.py       dp.*            `fastssl pretrain` under torchrun, 1 / 2 / all-GPU processes
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass

# Groups, in the order the table shows them (`--only` / `--skip` take these or component names).
GROUPS = ("loader", "baseline", "model", "e2e", "dp", "op", "peers", "profile")
DEFAULT_GROUPS = ("loader", "baseline", "model", "e2e", "dp", "op", "profile")  # peers only with --peers

# What a component may need (runner.unmet says whether this host has it):
#   "dali"          NVIDIA DALI installed
#   "dali-codecs"   DALI installed and able to decode the dataset's codecs on the device
#   "cuda" / "cpu"  that device
#   "triton"        triton imports
#   "torchcodec", "decord"  that (optional, never a dependency) library installed
#   "ranks-2"       two data-parallel processes fit: the CPU (gloo), or CUDA with >= 2 GPUs
#   "gpus-3+"       CUDA with more than 2 GPUs (one process per GPU)
NEEDS = ("dali", "dali-codecs", "cuda", "cpu", "triton", "torchcodec", "decord", "ranks-2", "gpus-3+")


@dataclass(frozen=True)
class Component:
    name: str
    group: str
    title: str                  # what it measures; {workers} {device} {steps} {e2e_loader} filled in
    target: str                 # "module:function" under fastssl.benchmarks, imported in the child
    args: tuple = ()            # positional arguments after the spec
    kwargs: tuple = ()          # (name, value) pairs
    needs: tuple[str, ...] = ()

    def run(self, spec: dict) -> dict:
        module, function = self.target.split(":")
        fn = getattr(importlib.import_module(f"fastssl.benchmarks.{module}"), function)
        return fn(spec, *self.args, **dict(self.kwargs))


def _c(name, group, title, target, *args, needs=(), **kwargs) -> Component:
    return Component(name, group, title, target, args, tuple(kwargs.items()), tuple(needs))


REGISTRY: dict[str, Component] = {c.name: c for c in [
    _c("loader.pyav", "loader", "fastssl PyAV loader, {workers} workers, + clip builder",
       "loader_bench:loader", "pyav"),
    _c("loader.baseline", "baseline", "baseline DataLoader, {workers} workers, float clips built in workers",
       "loader_bench:loader", "baseline"),
    _c("model.pretext", "model", "pretext training step on device tensors (model-only ceiling)",
       "training:model", "pretext"),
    _c("e2e.pretrain", "e2e", "real pretrain loop ({e2e_loader} loader), {steps} timed steps after warm-up",
       "training:e2e", "pretrain"),
    _c("loader.dali", "loader", "fastssl DALI loader on {device}, {workers} threads, + clip builder",
       "loader_bench:loader", "dali", needs=("dali-codecs",)),
    _c("loader.pyav-1t", "loader", "as loader.pyav, torch.set_num_threads(1) in the main process",
       "loader_bench:loader", "pyav", main_threads=1, needs=("cpu",)),
    _c("profile", "profile", "per-question stage costs, one process (why the ratio is what it is)",
       "decoding:profile"),
    _c("model.finetune", "model", "fine-tune training step on device tensors (model-only ceiling)",
       "training:model", "finetune"),
    _c("e2e.finetune", "e2e", "real finetune loop ({e2e_loader} loader), {steps} timed steps after warm-up",
       "training:e2e", "finetune"),
    _c("op.copy", "op", "copy bandwidth of the device (reference for the op)", "op_bench:copy_bandwidth"),
    _c("op.reference", "op", "build_clips, torch reference", "op_bench:op", "reference"),
    _c("op.triton", "op", "build_clips, Triton kernel", "op_bench:op", "triton", needs=("cuda", "triton")),
    _c("op.dali", "op", "DALI-only: sequence_rearrange + crop_mirror_normalize", "op_bench:op_dali",
       needs=("dali",)),
    # data parallel: the real pretrain command under torchrun, same global batch, last in priority
    _c("dp.1", "dp", "torchrun pretrain, 1 process ({e2e_loader} loader), {steps} timed steps",
       "parallel:pretrain", 1),
    _c("dp.2", "dp", "torchrun pretrain, 2 processes ({dp_backend}), same global batch",
       "parallel:pretrain", 2, needs=("ranks-2",)),
    _c("dp.gpus", "dp", "torchrun pretrain, one process per GPU ({gpus}, nccl), same global batch",
       "parallel:pretrain", "gpus", needs=("gpus-3+",)),
    _c("peer.pyav", "peers", "fastssl's PyAV window decoder, timed like the peers, one process",
       "decoding:peer", "pyav"),
    _c("peer.torchcodec", "peers", "torchcodec decoding the same windows, one process",
       "decoding:peer", "torchcodec", needs=("torchcodec",)),
    _c("peer.decord", "peers", "decord decoding the same windows, one process",
       "decoding:peer", "decord", needs=("decord",)),
]}

assert all(c.group in GROUPS and set(c.needs) <= set(NEEDS) for c in REGISTRY.values())


def display_order() -> list[str]:
    """Component names grouped as the table shows them (priority order within a group)."""
    return sorted(REGISTRY, key=lambda n: GROUPS.index(REGISTRY[n].group))
