"""build_clips: uint8 FHWC windows -> normalized clips (B*N, C, D, H, W) in channels_last_3d.

Contract (one op, three implementations that must agree):

    build_clips(windows, starts, orders, *, mean, std, dtype=torch.float32, check=None)

    windows  uint8 (B, T, H, W, 3): W decoded frames per sample, FHWC (what DALI hands out).
    starts   int64 (B, N): first frame of clip n of sample b, within the window.
    orders   int64 (B, N, D): frame of each time step, within the clip.
    out[b*N + n, c, d] = (windows[b, starts[b, n] + orders[b, n, d], :, :, c] - mean[c]) / std[c]
             computed in fp32 (IEEE division), then cast to dtype (float32 | bfloat16 | float16).

The result is the logical (B*N, C, D, H, W) tensor whose memory is (B*N, D, H, W, C), i.e.
channels_last_3d: FHWC per sample already is that layout, so building clips is a gather +
normalize + cast with no transpose - one read of the needed frames, one write.

Index range: t = starts[b, n] + orders[b, n, d] must lie in [0, T). With check=True an
out-of-range t raises ValueError (on CUDA that is a host sync). With check=False nothing syncs and
the frame of an out-of-range t is written as NaN (it never reads another sample's frames).
check=None (default) means True on the CPU, where checking is free, and False elsewhere.

Implementations:
    build_clips_reference  pure torch, any device: the ground truth, and the CPU hot path.
    build_clips_triton     the Triton kernel (CUDA tensors; CPU tensors under TRITON_INTERPRET=1).
    build_clips            the public entry: normalizes arguments and calls the custom op
                           torch.ops.fastssl.build_clips, which dispatches to Triton on CUDA when
                           triton imports, else to the reference. It has a fake (meta) kernel, so it
                           traces under torch.compile (as an opaque call) and can be captured in
                           CUDA graphs when check is False.

On CUDA without an importable triton, build_clips warns once per process and runs the reference;
triton_status() says which of the two CUDA calls get, and why.
"""
import functools
import importlib
import math
import warnings
from typing import Sequence

import torch
from torch import Tensor

__all__ = [
    "SUPPORTED_DTYPES",
    "build_clips",
    "build_clips_reference",
    "build_clips_triton",
    "identity_orders",
    "triton_available",
    "triton_status",
]

SUPPORTED_DTYPES = (torch.float32, torch.bfloat16, torch.float16)

# CPU reference: normalize in chunks whose fp32 temporary stays in a core's L2 cache; one sub+div
# over a whole batch would write the temporary out to DRAM and read it back.
_CPU_CHUNK_BYTES = 1 << 20


# --------------------------------------------------------------------------------------------
# Validation (shape-level checks work on fake tensors too; the value check needs real ones)
# --------------------------------------------------------------------------------------------

def _as_floats(name: str, values) -> list[float]:
    if isinstance(values, (str, bytes)):
        raise TypeError(f"{name} must be 3 numbers (one per RGB channel, 0-255 units), got {values!r}")
    if isinstance(values, Tensor):
        values = values.detach().cpu().reshape(-1).tolist()
    try:
        out = [float(v) for v in values]
    except TypeError as e:
        raise TypeError(
            f"{name} must be 3 numbers (one per RGB channel, 0-255 units), got {values!r}"
        ) from e
    if len(out) != 3:
        raise ValueError(f"{name} must have 3 values (one per RGB channel), got {len(out)}: {out}")
    if not all(math.isfinite(v) for v in out):
        raise ValueError(f"{name} must be finite, got {out}")
    return out


def _check_args(windows, starts, orders, mean, std, dtype) -> None:
    for name, t in (("windows", windows), ("starts", starts), ("orders", orders)):
        if not isinstance(t, Tensor):
            raise TypeError(f"build_clips: {name} must be a torch.Tensor, got {type(t).__name__}")
    if windows.dtype != torch.uint8:
        raise TypeError(f"build_clips: windows must be uint8 frames, got dtype {windows.dtype}")
    if windows.dim() != 5:
        raise ValueError(
            f"build_clips: windows must be (B, T, H, W, C=3) uint8 FHWC, got shape {tuple(windows.shape)}"
        )
    if windows.shape[-1] != 3:
        raise ValueError(
            f"build_clips: windows must be channels-last RGB (last dim 3), got shape {tuple(windows.shape)}"
        )
    for name, t in (("starts", starts), ("orders", orders)):
        if t.dtype != torch.int64:
            raise TypeError(f"build_clips: {name} must be int64, got dtype {t.dtype}")
    if starts.dim() != 2 or starts.shape[0] != windows.shape[0]:
        raise ValueError(
            f"build_clips: starts must be (B, N) with B={windows.shape[0]} (windows.shape[0]), "
            f"got shape {tuple(starts.shape)}"
        )
    if orders.dim() != 3 or tuple(orders.shape[:2]) != tuple(starts.shape):
        raise ValueError(
            f"build_clips: orders must be (B, N, D) with (B, N)={tuple(starts.shape)} from starts, "
            f"got shape {tuple(orders.shape)}"
        )
    if windows.shape[1] == 0 and orders.numel() > 0:
        raise ValueError(f"build_clips: windows have no frames (T=0), got shape {tuple(windows.shape)}")
    if not (starts.device == windows.device == orders.device):
        raise ValueError(
            f"build_clips: windows, starts and orders must be on one device, got "
            f"{windows.device}, {starts.device}, {orders.device}"
        )
    if len(mean) != 3 or len(std) != 3:
        raise ValueError(f"build_clips: mean and std need 3 values each, got {list(mean)}, {list(std)}")
    if any(s == 0.0 for s in std):
        raise ValueError(f"build_clips: std must be non-zero, got {list(std)}")
    if dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"build_clips: dtype must be one of {SUPPORTED_DTYPES}, got {dtype}")


def _frame_index(starts: Tensor, orders: Tensor) -> Tensor:
    return starts[:, :, None] + orders  # (B, N, D): frame within the window


def _check_range(starts: Tensor, orders: Tensor, T: int) -> None:
    """Raise ValueError if starts + orders leaves [0, T). A host sync on CUDA."""
    if orders.numel() == 0:
        return
    t = _frame_index(starts, orders)
    bad = (t < 0) | (t >= T)
    if bool(bad.any()):
        b, n, d = (int(i) for i in bad.nonzero()[0].tolist())
        raise ValueError(
            f"build_clips: frame index out of range: starts[{b},{n}] + orders[{b},{n},{d}] = "
            f"{int(starts[b, n])} + {int(orders[b, n, d])} = {int(t[b, n, d])}, "
            f"window has T={T} frames (valid 0..{T - 1}); {int(bad.sum())} bad index(es) in total"
        )


def _resolve_check(check, device: torch.device) -> bool:
    # check=None checks the index range for CPU tensors only: there it is a cheap look at host
    # memory, while on CUDA it reads the indices back to the host, a sync on every call. CUDA
    # callers get NaN frames for bad indices instead, or ask for the check with check=True.
    return device.type == "cpu" if check is None else bool(check)


def _prepare(windows, starts, orders, mean, std, dtype):
    """Python-side argument normalization shared by the public entry points."""
    for name, t in (("windows", windows), ("starts", starts), ("orders", orders)):
        if not isinstance(t, Tensor):
            raise TypeError(f"build_clips: {name} must be a torch.Tensor, got {type(t).__name__}")
    mean = _as_floats("mean", mean)
    std = _as_floats("std", std)
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"build_clips: dtype must be a torch.dtype, got {dtype!r}")
    # Index tensors: the host-side sampler makes small int tensors; accept int32 and a CPU tensor
    # for CUDA windows (tiny copy; pin the host tensor to keep it asynchronous).
    for name, t in (("starts", starts), ("orders", orders)):
        if t.dtype not in (torch.int64, torch.int32):
            raise TypeError(f"build_clips: {name} must be int64 (or int32), got dtype {t.dtype}")
    starts = starts.to(device=windows.device, dtype=torch.int64, non_blocking=True)
    orders = orders.to(device=windows.device, dtype=torch.int64, non_blocking=True)
    _check_args(windows, starts, orders, mean, std, dtype)
    return windows, starts, orders, mean, std


def _empty_out(windows: Tensor, N: int, D: int, dtype: torch.dtype) -> Tensor:
    B, T, H, W, C = windows.shape
    return torch.empty(
        (B * N, C, D, H, W), dtype=dtype, device=windows.device, memory_format=torch.channels_last_3d
    )


# --------------------------------------------------------------------------------------------
# Torch reference (ground truth, CPU hot path, CUDA fallback)
# --------------------------------------------------------------------------------------------

def _normalize_rows(rows: Tensor, mean: Tensor, std: Tensor, dtype: torch.dtype) -> Tensor:
    """uint8 (R, F) frames -> dtype (R, F): (x - mean[c]) / std[c] in fp32, then cast.

    Arithmetic, not a 256-entry lookup table: torch has no fused byte-indexed gather, so a table
    costs an extra pass to widen the bytes into indices before the lookup.
    """
    R, F = rows.shape
    out = torch.empty((R, F), dtype=dtype, device=rows.device)
    if R == 0 or F == 0:
        return out
    src = rows.view(R, F // 3, 3)
    dst = out.view(R, F // 3, 3)
    if rows.device.type == "cpu":
        step = max(1, _CPU_CHUNK_BYTES // (4 * F))  # rows per cache-sized fp32 chunk
    else:
        step = R  # one launch per op; the GPU does not need cache blocking from Python
    for i in range(0, R, step):
        if dtype == torch.float32:
            o = dst[i : i + step]
            torch.sub(src[i : i + step], mean, out=o)  # uint8 - fp32 -> fp32, exact
            o.div_(std)
        else:
            tmp = torch.sub(src[i : i + step], mean)
            tmp.div_(std)
            dst[i : i + step].copy_(tmp)  # round-to-nearest-even, like the kernel's cast
    return out


@functools.lru_cache(maxsize=32)
def _device_stats(mean: tuple, std: tuple, device: torch.device) -> tuple[Tensor, Tensor]:
    """mean and std as fp32 tensors on `device`, made once per (values, device): building them
    per call would be a host-to-device copy, and a host wait, on every CUDA call. Callers only
    read them."""
    return (torch.tensor(mean, dtype=torch.float32, device=device),
            torch.tensor(std, dtype=torch.float32, device=device))


def _reference_impl(windows, starts, orders, mean, std, dtype, check: bool) -> Tensor:
    B, T, H, W, C = windows.shape
    N, D = orders.shape[1], orders.shape[2]
    F = H * W * C
    if check:
        _check_range(starts, orders, T)
    t = _frame_index(starts, orders)
    valid = None
    if not check:  # no sync: clamp, then poison out-of-range frames with NaN (like the kernel)
        valid = ((t >= 0) & (t < T)).reshape(-1, 1)
        t = t.clamp(0, max(T - 1, 0))
    flat = (t + torch.arange(B, device=t.device)[:, None, None] * T).reshape(-1)  # rows of (B*T, F)
    frames = windows.contiguous().view(B * T, F)
    mean_t, std_t = _device_stats(tuple(mean), tuple(std), windows.device)

    out2d = None
    if windows.device.type == "cpu" and flat.numel():
        # A window's frames are shared by several clips (paper: 20 decoded frames -> 48 clip
        # frames). On the CPU normalize each used frame once and copy rows, rather than
        # normalizing all B*N*D output frames. (Not on CUDA: unique() syncs.)
        uniq, inv = torch.unique(flat, return_inverse=True)
        if uniq.numel() < flat.numel():
            out2d = _normalize_rows(frames.index_select(0, uniq), mean_t, std_t, dtype).index_select(0, inv)
    if out2d is None:
        out2d = _normalize_rows(frames.index_select(0, flat), mean_t, std_t, dtype)
    if valid is not None and (windows.device.type != "cpu" or not bool(valid.all())):
        out2d.masked_fill_(~valid, float("nan"))
    # (B*N*D, F) is (B*N, D, H, W, C) contiguous; permuting to the logical NCDHW view gives
    # channels_last_3d strides without a copy.
    return out2d.view(B * N, D, H, W, C).permute(0, 4, 1, 2, 3)


def build_clips_reference(
    windows: Tensor,
    starts: Tensor,
    orders: Tensor,
    *,
    mean: Sequence[float],
    std: Sequence[float],
    dtype: torch.dtype = torch.float32,
    check: bool | None = None,
) -> Tensor:
    """Pure-torch build_clips (any device). See the module docstring for the contract."""
    windows, starts, orders, mean, std = _prepare(windows, starts, orders, mean, std, dtype)
    return _reference_impl(windows, starts, orders, mean, std, dtype, _resolve_check(check, windows.device))


# --------------------------------------------------------------------------------------------
# Triton
# --------------------------------------------------------------------------------------------

class _KernelModule:
    """The Triton kernel module, imported on first use, with the reason when it does not import.

    Importing it imports triton, which is slow and needed only for CUDA tensors, so the
    package imports it lazily. `name` is a parameter so that tests can give one that fails.
    """

    def __init__(self, name: str):
        self.name = name
        self._tried = False
        self._module = None
        self.error: BaseException | None = None
        self._warned = False

    def get(self):
        """The module, or None when it does not import (tried once per process)."""
        if not self._tried:
            self._tried = True
            try:
                self._module = importlib.import_module(self.name)
            except Exception as e:  # ImportError, or a broken triton install raising anything
                self.error = e
        return self._module

    def _why_not(self) -> str:
        return f"triton does not import ({type(self.error).__name__}: {self.error})"

    def status(self) -> str:
        mod = self.get()
        if mod is None:
            return (f"the Triton kernel is not used: {self._why_not()}; build_clips on CUDA runs "
                    f"the torch reference, which makes several passes over memory where the kernel "
                    f"reads each frame once and writes each output once")
        version = getattr(mod.triton, "__version__", "?")
        line = f"the Triton kernel is used for CUDA tensors (triton {version})"
        if mod.is_interpreter():
            line += "; TRITON_INTERPRET=1: kernels run in the interpreter, on the host"
        if not torch.cuda.is_available():
            line += "; this process sees no CUDA device, so every call runs the torch reference"
        return line

    def warn_reference_on_cuda(self) -> None:
        """Say once per process that CUDA calls run the reference instead of the kernel."""
        if self._warned:
            return
        self._warned = True
        warnings.warn(
            f"fastssl.kernels: {self._why_not()}, so build_clips on CUDA runs the torch reference: "
            f"several passes over memory instead of the kernel's one read and one write. "
            f"fastssl.kernels.triton_status() says why; (re)install triton to use the kernel.",
            RuntimeWarning,
            stacklevel=2,
        )


_TRITON = _KernelModule(f"{__package__}.triton_build_clips")


def triton_available() -> bool:
    """Whether the Triton kernel can be used (triton imports). Says nothing about a GPU."""
    return _TRITON.get() is not None


def triton_status() -> str:
    """One line: whether build_clips uses the Triton kernel for CUDA tensors, and if not why
    (the import error). Imports triton if that has not happened yet."""
    return _TRITON.status()


def build_clips_triton(
    windows: Tensor,
    starts: Tensor,
    orders: Tensor,
    *,
    mean: Sequence[float],
    std: Sequence[float],
    dtype: torch.dtype = torch.float32,
    check: bool | None = None,
    block: int | None = None,
    num_warps: int | None = None,
) -> Tensor:
    """The Triton kernel directly (for tests and benchmarks). CUDA tensors, or CPU tensors when
    TRITON_INTERPRET=1 was set before triton was imported. block/num_warps override the
    defaults in triton_build_clips (tuning)."""
    mod = _TRITON.get()
    if mod is None:
        raise RuntimeError(f"build_clips_triton: triton is not importable ({_TRITON.error!r})")
    windows, starts, orders, mean, std = _prepare(windows, starts, orders, mean, std, dtype)
    if _resolve_check(check, windows.device):
        _check_range(starts, orders, windows.shape[1])
    return mod.launch(windows, starts, orders, mean, std, dtype, block=block, num_warps=num_warps)


# --------------------------------------------------------------------------------------------
# Custom op: torch.ops.fastssl.build_clips
# --------------------------------------------------------------------------------------------

def _op_impl(
    windows: Tensor,
    starts: Tensor,
    orders: Tensor,
    mean: Sequence[float],
    std: Sequence[float],
    dtype: torch.dtype,
    check: bool,
) -> Tensor:
    mean, std = list(mean), list(std)
    _check_args(windows, starts, orders, mean, std, dtype)
    if windows.device.type == "cuda":
        mod = _TRITON.get()
        if mod is not None:
            if check:
                _check_range(starts, orders, windows.shape[1])
            return mod.launch(windows, starts, orders, mean, std, dtype)
        _TRITON.warn_reference_on_cuda()
    return _reference_impl(windows, starts, orders, mean, std, dtype, check)


def _op_fake(windows, starts, orders, mean, std, dtype, check):
    _check_args(windows, starts, orders, list(mean), list(std), dtype)
    return _empty_out(windows, starts.shape[1], orders.shape[2], dtype)


def _register():
    # Importing this file twice (e.g. as fastssl.kernels and, by accident, as a top-level
    # `kernels`) must not register the op twice: that raises in torch.library.
    try:
        return torch.ops.fastssl.build_clips
    except (AttributeError, RuntimeError):
        pass
    op = torch.library.custom_op("fastssl::build_clips", mutates_args=())(_op_impl)
    op.register_fake(_op_fake)
    return torch.ops.fastssl.build_clips


_OP = _register()


def build_clips(
    windows: Tensor,
    starts: Tensor,
    orders: Tensor,
    *,
    mean: Sequence[float],
    std: Sequence[float],
    dtype: torch.dtype = torch.float32,
    check: bool | None = None,
) -> Tensor:
    """Gather, normalize and cast clips in one pass; returns (B*N, C, D, H, W) channels_last_3d.

    See the module docstring for the contract. starts/orders may be int32 and may live on the
    CPU when windows is on the GPU (copied over; pin them to keep that asynchronous).
    check=None: raise on out-of-range indices on the CPU; on CUDA skip the (syncing) check and
    write NaN frames for them. Under CUDA-graph capture pass check=False and keep starts/orders
    on the GPU already (a host-to-device copy cannot be captured).
    """
    windows, starts, orders, mean, std = _prepare(windows, starts, orders, mean, std, dtype)
    return _OP(windows, starts, orders, mean, std, dtype, _resolve_check(check, windows.device))


def identity_orders(batch: int, depth: int, device=None) -> tuple[Tensor, Tensor]:
    """(starts, orders) for one in-order clip per sample: starts zeros (B, 1), orders 0..D-1
    (B, 1, D). Fine-tuning/evaluation windows are exactly one clip (T == D), so
    build_clips(windows, *identity_orders(B, D, windows.device), ...) gives (B, C, D, H, W)."""
    starts = torch.zeros((batch, 1), dtype=torch.int64, device=device)
    orders = torch.arange(depth, dtype=torch.int64, device=device).expand(batch, 1, depth).contiguous()
    return starts, orders
