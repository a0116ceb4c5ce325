"""An audit of the calls that make a CUDA host wait for the GPU, for CPU tests.

On a GPU, `.item()`, `.tolist()`, `bool/int/float(tensor)`, `.numpy()`, `.cpu()` and a blocking
`.to(device)` on a device tensor stop the host until the GPU has caught up: the host can no longer
run ahead, and the time shows up as data wait or slow steps. None of them fails on a CPU, so this
audit counts them instead: a TorchFunctionMode that records each such call made from fastssl's
own code (the first frame outside torch is under fastssl/ or kernels/, or a file the test adds),
with the training step it happened in.

What it does not count, by design: calls inside torch (Adam reads its CPU step counters), and
`fastssl/train/distributed.py`, whose tensors are host tensors on purpose (the DDP control group's
flags and sums travel over gloo on the CPU). A `.to(...)` counts when it names a device and is
not non_blocking.
"""
from __future__ import annotations

import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.overrides import TorchFunctionMode

import fastssl

ROOTS = [str(Path(fastssl.__file__).parent), str(Path(fastssl.__file__).parent.parent / "kernels")]
HOST_SIDE = ("fastssl/train/distributed.py",)
WAITS = {"item", "tolist", "__bool__", "__int__", "__float__", "numpy", "cpu"}
DISPATCH = ("torch/overrides.py", "torch/utils/_python_dispatch.py", "torch/_tensor.py")


def _names_a_device(args, kwargs) -> bool:
    if "device" in kwargs:
        return True
    return any(isinstance(a, (str, torch.device)) or (isinstance(a, torch.Tensor) and a is not args[0])
               for a in args[1:])


@dataclass
class HostWaitAudit(TorchFunctionMode):
    roots: list = field(default_factory=lambda: list(ROOTS))
    step: int = 0
    calls: list = field(default_factory=list)   # (step, name, "file:line")

    def __post_init__(self):
        super().__init__()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name in WAITS or (name == "to" and _names_a_device(args, kwargs) and not kwargs.get("non_blocking")):
            where = self._caller()
            if where is not None:
                self.calls.append((self.step, name, where))
        return func(*args, **kwargs)

    def _caller(self) -> str | None:
        """The code that made the call, if it is ours: the first frame past this file and torch's
        dispatch machinery. A call made by torch itself (Adam reading its host-side step counter
        from inside `optimizer.step()`) is torch's, whoever called torch."""
        frame = sys._getframe(2)
        while frame is not None and (frame.f_code.co_filename == __file__
                                     or frame.f_code.co_filename.endswith(DISPATCH)):
            frame = frame.f_back
        if frame is None:
            return None
        path = frame.f_code.co_filename
        if not any(path.startswith(root) for root in self.roots) or path.endswith(HOST_SIDE):
            return None
        return f"{path}:{frame.f_lineno}"

    def between(self, first: int, last: int) -> list:
        """The calls made during steps first..last."""
        return [c for c in self.calls if first <= c[0] <= last]


class CountingStream:
    """A batch stream that tells the audit which step it is in (the step starts at `next`)."""

    def __init__(self, stream, audit: HostWaitAudit):
        self.stream, self.audit = stream, audit

    def __enter__(self):
        self.stream.__enter__()
        return self

    def __exit__(self, *exc):
        return self.stream.__exit__(*exc)

    def __iter__(self):
        return self

    def __next__(self):
        self.audit.step += 1
        return next(self.stream)
