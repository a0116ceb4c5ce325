"""The one registry of benchmark components: name -> group, what it measures, what it needs, and
the function that measures it (spec -> a JSON-able dict whose "metric" is the headline summary).
In priority order: what the headline ratios need first, so a tight budget drops only extras."""
from __future__ import annotations

import importlib
from dataclasses import dataclass

# Groups, in the order the table shows them (`--only` / `--skip` take these or component names).
GROUPS = ("loader", "baseline", "model", "e2e", "host", "eval", "dp", "op", "compile")
DEFAULT_GROUPS = tuple(g for g in GROUPS if g != "compile")  # compiling each model takes long: opt-in


@dataclass(frozen=True)
class Component:
    name: str
    group: str
    title: str            # {workers} {device} {steps} {e2e_loader} are filled in
    target: str           # "module:function" under fastssl.benchmarks, imported in the child
    args: tuple = ()
    needs: tuple = ()     # see `unmet`

    def run(self, spec: dict) -> dict:
        module, function = self.target.split(":")
        return getattr(importlib.import_module(f"fastssl.benchmarks.{module}"), function)(spec, *self.args)


def _c(name, title, target, *args, needs=()) -> Component:
    group = "baseline" if name == "loader.baseline" else name.split(".")[0]
    return Component(name, group, title, target, args, tuple(needs))


REGISTRY: dict[str, Component] = {c.name: c for c in [
    _c("loader.pyav", "fastssl PyAV loader, {workers} workers, + clip builder", "loader_bench:loader", "pyav"),
    _c("loader.baseline", "baseline DataLoader, {workers} workers, float clips built in workers", "loader_bench:loader",
       "baseline"),
    _c("model.pretext", "pretext training step on device tensors (model-only ceiling)", "model:model", "pretext"),
    _c("e2e.pretrain", "run.run pretrain ({e2e_loader} loader), {steps} timed steps", "runs:e2e", "pretrain"),
    _c("host.finetune.pyav", "training thread's CPU per paper fine-tune step, PyAV", "host:host", "finetune", "pyav"),
    _c("loader.dali", "fastssl DALI loader on {device}, {workers} threads, + clip builder", "loader_bench:loader",
       "dali", needs=("dali-codecs",)),
    _c("model.finetune", "fine-tune training step on device tensors (model-only ceiling)", "model:model", "finetune"),
    _c("e2e.finetune", "run.run finetune ({e2e_loader} loader), {steps} timed steps", "runs:e2e", "finetune"),
    _c("host.finetune.dali", "as host.finetune.pyav, DALI", "host:host", "finetune", "dali", needs=("dali-codecs",)),
    _c("dp.1", "torchrun pretrain, 1 process ({e2e_loader} loader), {steps} timed steps", "runs:data_parallel", 1),
    _c("dp.2", "torchrun pretrain, 2 processes, same global batch", "runs:data_parallel", 2, needs=("ranks-2",)),
    _c("eval.videos", "evaluation.classify_videos over the test split ({e2e_loader} loader)", "runs:evaluation"),
    _c("host.pretrain.pyav", "as host.finetune.pyav, pretext steps", "host:host", "pretrain", "pyav"),
    _c("host.pretrain.dali", "as host.finetune.dali, pretext", "host:host", "pretrain", "dali", needs=("dali-codecs",)),
    _c("op.copy", "copy bandwidth of the device (reference for the op)", "op_bench:copy_bandwidth"),
    _c("op.reference", "build_clips, torch reference", "op_bench:op", "reference"),
    _c("op.triton", "build_clips, Triton kernel", "op_bench:op", "triton", needs=("cuda", "triton")),
    _c("compile.finetune", "fine-tune step, eager then torch.compile", "model:model", "finetune", True),
    _c("compile.pretext", "pretext step, eager then torch.compile", "model:model", "pretext", True),
]}
# --quick leaves these out unless named: a pretext step has N times a fine-tune step's FLOPs, so the
# fine-tune runs answer the headroom question; and these are the slowest on a CPU.
QUICK_SKIP = ("host.pretrain.pyav", "host.pretrain.dali")


def unmet(need: str, device: str, codecs: set) -> str | None:
    """None when this host meets `need`, else why not."""
    import torch

    from fastssl.data import loaders
    from fastssl.kernels import triton_available
    cuda = device.startswith("cuda")
    if need == "dali-codecs":
        if not loaders.dali_available():
            return "nvidia-dali is not installed"
        try:
            bad = codecs - set(loaders.get("dali").decodable_codecs(device))
        except Exception as e:  # noqa: BLE001 - a broken install is a reason to skip, not to crash
            return f"fastssl's DALI loader does not import: {e}"
        return f"DALI on {device} cannot decode {', '.join(sorted(bad))} (use --codec vp9 on a CPU)" if bad else None
    return {"cuda": None if cuda else "needs a CUDA GPU (Triton on the CPU only runs in its interpreter)",
            "triton": None if triton_available() else "triton does not import",
            "ranks-2": f"{torch.cuda.device_count()} GPU visible: 2 data-parallel processes need 2 GPUs"
                       if cuda and torch.cuda.device_count() < 2 else None}[need]


def applicability(name: str, device: str, codecs: set) -> str | None:
    """None if the component can run here, else why it is skipped (its first unmet need)."""
    return next((why for why in (unmet(n, device, codecs) for n in REGISTRY[name].needs) if why), None)
