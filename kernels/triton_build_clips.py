"""Triton kernel for build_clips: gather frames by (start + order), normalize, cast, in one pass.

Importing this module imports triton. Whether the kernel is compiled for the GPU or run by the
Triton interpreter (numpy, on CPU tensors) is fixed when this module is imported: triton.jit reads
TRITON_INTERPRET at decoration time. So a process that wants the interpreter must set
TRITON_INTERPRET=1 before the first import of this module (tests do it in a subprocess).

Layout: the output is physically (B*N*D, H*W*C) - one row per output frame - which is exactly
channels_last_3d of the logical (B*N, C, D, H, W). Output row r = (b*N + n)*D + d copies source
frame b*T + starts[b, n] + orders[b, n, d] of the (B*T, H*W*C) uint8 windows. There is no
transpose, so every output element is one input element: the op is a memory-bound streaming copy
(1 byte read, 2 or 4 bytes written per element). Grid = (rows, cdiv(H*W*C, BLOCK)); each program
does BLOCK contiguous elements of one frame, so loads/stores vectorize to 16 B when H*W*C is a
multiple of 16 (Triton specializes integer arguments on divisibility by 16).
"""
import contextlib

import torch
import triton
import triton.language as tl

# 4096 elements x 8 warps = 16 elements per thread: one 16 B uint8 load and 4 x 16 B fp32 stores
# (2 x 16 B for bf16/fp16). build_clips_triton's block= and num_warps= override these for tuning.
DEFAULT_BLOCK = 4096
DEFAULT_NUM_WARPS = 8

# A global used inside a jit function must be a constexpr.
_NAN = tl.constexpr(float("nan"))

_TL_DTYPES = {torch.float32: tl.float32, torch.bfloat16: tl.bfloat16, torch.float16: tl.float16}


@triton.jit
def _build_clips_kernel(
    win_ptr,  # uint8 (B*T, FRAME), contiguous
    starts_ptr,  # int64 (B*N,), contiguous
    orders_ptr,  # int64 (B*N*D,), contiguous
    out_ptr,  # out dtype (B*N*D, FRAME), contiguous
    T,
    N,
    D,
    FRAME,  # H*W*C
    m0,
    m1,
    m2,
    s0,
    s1,
    s2,
    BLOCK: tl.constexpr,
):
    row = tl.program_id(0)  # output frame (b*N + n)*D + d
    blk = tl.program_id(1)
    bn = row // D
    b = bn // N
    t = tl.load(starts_ptr + bn) + tl.load(orders_ptr + row)  # frame within the window (int64)
    # Out-of-range frame index: don't read another sample's window (or past the buffer); write
    # NaN instead, so bad indices are loud downstream without a host sync. (check=True in the
    # Python wrapper raises instead, at the price of a sync.)
    valid = (t >= 0) & (t < T)
    t = tl.where(valid, t, 0)
    src = (b.to(tl.int64) * T + t) * FRAME
    dst = row.to(tl.int64) * FRAME

    offs = blk * BLOCK + tl.arange(0, BLOCK)
    mask = offs < FRAME
    x = tl.load(win_ptr + src + offs, mask=mask, other=0).to(tl.float32)
    c = offs % 3  # FHWC: channel is the fastest axis and each frame starts on a pixel boundary
    mean = tl.where(c == 0, m0, tl.where(c == 1, m1, m2))
    std = tl.where(c == 0, s0, tl.where(c == 1, s1, s2))
    # IEEE division, not `/` (div.full.f32, ~2 ulp on NVIDIA): keeps the kernel bit-identical to
    # the torch reference in fp32. The op is memory-bound, so the extra instructions are free.
    y = tl.math.div_rn(x - mean, std)
    y = tl.where(valid, y, _NAN)
    tl.store(out_ptr + dst + offs, y.to(out_ptr.dtype.element_ty), mask=mask)


def is_interpreter() -> bool:
    """True when this process runs Triton kernels in the interpreter (TRITON_INTERPRET=1 at import)."""
    try:
        from triton.runtime.interpreter import InterpretedFunction
    except ImportError:  # pragma: no cover - very old/new triton layouts
        return False
    return isinstance(_build_clips_kernel, InterpretedFunction)


def launch(
    windows: torch.Tensor,
    starts: torch.Tensor,
    orders: torch.Tensor,
    mean,
    std,
    dtype: torch.dtype,
    block: int | None = None,
    num_warps: int | None = None,
) -> torch.Tensor:
    """Run the kernel. Inputs must already be validated (see build_clips.build_clips_triton).

    Returns the logical (B*N, C, D, H, W) tensor in channels_last_3d memory format.
    """
    if windows.device.type == "cpu" and not is_interpreter():
        raise RuntimeError(
            "build_clips_triton got CPU tensors but Triton is not in interpreter mode: set "
            "TRITON_INTERPRET=1 before triton/fastssl.kernels is first imported, or pass CUDA tensors"
        )
    if dtype not in _TL_DTYPES:
        raise TypeError(f"build_clips_triton: unsupported output dtype {dtype}")
    block = DEFAULT_BLOCK if block is None else int(block)
    num_warps = DEFAULT_NUM_WARPS if num_warps is None else int(num_warps)
    if block <= 0 or block & (block - 1):
        raise ValueError(f"block must be a power of two, got {block}")

    B, T, H, W, C = windows.shape
    N = starts.shape[1]
    D = orders.shape[2]
    frame = H * W * C
    rows = B * N * D
    out = torch.empty((rows, frame), dtype=dtype, device=windows.device)
    if rows and frame:
        windows = windows.contiguous()
        starts = starts.contiguous()
        orders = orders.contiguous()
        grid = (rows, triton.cdiv(frame, block))
        m = [float(v) for v in mean]
        s = [float(v) for v in std]
        with torch.cuda.device(windows.device) if windows.is_cuda else contextlib.nullcontext():
            _build_clips_kernel[grid](
                windows, starts, orders, out, T, N, D, frame,
                m[0], m[1], m[2], s[0], s[1], s[2],
                BLOCK=block, num_warps=num_warps,
                # Nothing to fuse (sub then div), and saying so silences triton 3.9's warning
                # about the fusion default changing. The interpreter ignores launch options.
                enable_fp_fusion=False,
            )
    return out.view(B * N, D, H, W, C).permute(0, 4, 1, 2, 3)
