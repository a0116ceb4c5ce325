"""Tests for fastssl.kernels.build_clips: the torch reference against a naive loop, the custom op,
the Triton kernel under TRITON_INTERPRET=1 (in a subprocess), and on CUDA (marked gpu)."""
import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fastssl.kernels import (
    SUPPORTED_DTYPES,
    build_clips,
    build_clips_reference,
    build_clips_triton,
    identity_orders,
    triton_status,
)

# The module itself (the package's `build_clips` attribute is the function of that name).
bc = importlib.import_module("fastssl.kernels.build_clips")

MEAN = (123.675, 116.28, 103.53)
STD = (58.395, 57.12, 57.375)
HAS_TRITON = importlib.util.find_spec("triton") is not None
HAS_CUDA = torch.cuda.is_available()
# One rounding step of each output dtype, relative (the naive result is fp32).
HALF_RTOL = {torch.bfloat16: 2.0**-8, torch.float16: 2.0**-11}


def naive_build_clips(windows, starts, orders, mean, std):
    """The contract spelled out with loops: fp32 (B*N, C, D, H, W)."""
    w = windows.numpy()
    s, o = starts.numpy(), orders.numpy()
    B, T, H, W, C = w.shape
    N, D = o.shape[1], o.shape[2]
    m = np.asarray(mean, np.float32)
    sd = np.asarray(std, np.float32)
    out = np.empty((B * N, C, D, H, W), np.float32)
    for b in range(B):
        for n in range(N):
            for d in range(D):
                t = s[b, n] + o[b, n, d]
                for c in range(C):
                    out[b * N + n, c, d] = (w[b, t, :, :, c].astype(np.float32) - m[c]) / sd[c]
    return torch.from_numpy(out)


def random_case(B=2, T=7, H=5, W=6, N=3, D=4, seed=0, permutations=True):
    g = torch.Generator().manual_seed(seed)
    windows = torch.randint(0, 256, (B, T, H, W, 3), dtype=torch.uint8, generator=g)
    starts = torch.randint(0, T - D + 1, (B, N), generator=g)
    if permutations:
        orders = torch.stack(
            [torch.stack([torch.randperm(D, generator=g) for _ in range(N)]) for _ in range(B)]
        ).reshape(B, N, D)
    else:
        orders = torch.randint(0, D, (B, N, D), generator=g)
    return windows, starts, orders


def assert_matches_naive(out, expected_fp32, dtype):
    assert out.dtype == dtype
    if dtype == torch.float32:
        torch.testing.assert_close(out, expected_fp32, rtol=1e-6, atol=1e-6)
    else:
        torch.testing.assert_close(out.float(), expected_fp32, rtol=HALF_RTOL[dtype], atol=1e-6)
        # and it is the round-to-nearest-even cast of the fp32 value
        assert torch.equal(out, expected_fp32.to(dtype))


def assert_layout(out, B, N, D, H, W):
    assert out.shape == (B * N, 3, D, H, W)
    assert out.is_contiguous(memory_format=torch.channels_last_3d)
    assert out.stride() == (D * H * W * 3, 1, H * W * 3, W * 3, 3)


# ------------------------------------------------------------------------------------------
# Reference and public entry on the CPU
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", SUPPORTED_DTYPES)
@pytest.mark.parametrize("fn", [build_clips_reference, build_clips], ids=["reference", "op"])
def test_matches_naive_loop(fn, dtype):
    windows, starts, orders = random_case()
    out = fn(windows, starts, orders, mean=MEAN, std=STD, dtype=dtype)
    assert_layout(out, 2, 3, 4, 5, 6)
    assert_matches_naive(out, naive_build_clips(windows, starts, orders, MEAN, STD), dtype)


def test_shared_frames_and_no_sharing_paths_agree():
    # The CPU reference normalizes each used frame once when clips share frames, and gathers
    # directly when they don't: both must give the contract.
    windows, starts, orders = random_case(B=2, T=20, H=4, W=4, N=6, D=8)  # heavy sharing
    out = build_clips_reference(windows, starts, orders, mean=MEAN, std=STD)
    assert_matches_naive(out, naive_build_clips(windows, starts, orders, MEAN, STD), torch.float32)
    starts = torch.tensor([[0, 8], [4, 12]])  # disjoint clips: no frame used twice
    orders = torch.arange(8).expand(2, 2, 8).flip(-1).contiguous()
    out = build_clips_reference(windows, starts, orders, mean=MEAN, std=STD)
    assert_matches_naive(out, naive_build_clips(windows, starts, orders, MEAN, STD), torch.float32)


def test_large_frames_use_several_cpu_chunks():
    windows, starts, orders = random_case(B=1, T=10, H=100, W=96, N=4, D=5, seed=3)
    out = build_clips_reference(windows, starts, orders, mean=MEAN, std=STD, dtype=torch.bfloat16)
    assert_matches_naive(out, naive_build_clips(windows, starts, orders, MEAN, STD), torch.bfloat16)


@settings(max_examples=40, deadline=None)
@given(
    B=st.integers(1, 3), T=st.integers(1, 7), H=st.integers(1, 5), W=st.integers(1, 5),
    N=st.integers(1, 4), data=st.data(), dtype=st.sampled_from(SUPPORTED_DTYPES),
)
def test_property_random_shapes_and_orders(B, T, H, W, N, data, dtype):
    D = data.draw(st.integers(1, T), label="D")
    seed = data.draw(st.integers(0, 2**31 - 1), label="seed")
    g = torch.Generator().manual_seed(seed)
    windows = torch.randint(0, 256, (B, T, H, W, 3), dtype=torch.uint8, generator=g)
    starts = torch.randint(0, T - D + 1, (B, N), generator=g)
    orders = torch.randint(0, D, (B, N, D), generator=g)  # any indices, repeats allowed
    mean = data.draw(st.lists(st.floats(0, 255), min_size=3, max_size=3), label="mean")
    std = data.draw(st.lists(st.floats(1, 128), min_size=3, max_size=3), label="std")
    out = build_clips(windows, starts, orders, mean=mean, std=std, dtype=dtype)
    assert_layout(out, B, N, D, H, W)
    assert_matches_naive(out, naive_build_clips(windows, starts, orders, mean, std), dtype)
    assert torch.equal(out, build_clips_reference(windows, starts, orders, mean=mean, std=std, dtype=dtype))


def test_identity_orders_give_the_normalized_window():
    B, D, H, W = 3, 8, 4, 5
    windows = torch.randint(0, 256, (B, D, H, W, 3), dtype=torch.uint8)
    starts, orders = identity_orders(B, D)
    assert starts.shape == (B, 1) and orders.shape == (B, 1, D)
    out = build_clips(windows, starts, orders, mean=MEAN, std=STD)
    expected = ((windows.float() - torch.tensor(MEAN)) / torch.tensor(STD)).permute(0, 4, 1, 2, 3)
    assert_layout(out, B, 1, D, H, W)
    assert torch.equal(out, expected)


def test_accepts_int32_indices_noncontiguous_windows_and_tensor_stats():
    windows, starts, orders = random_case(T=9)
    big = torch.randint(0, 256, (2, 9, 5, 8, 3), dtype=torch.uint8)
    big[:, :, :, 1:7] = windows
    view = big[:, :, :, 1:7]  # non-contiguous (B, T, H, W, 3)
    assert not view.is_contiguous()
    out = build_clips(view, starts.int(), orders.int(), mean=torch.tensor(MEAN), std=list(STD))
    assert torch.equal(out, build_clips_reference(windows, starts, orders, mean=MEAN, std=STD))


def test_empty_batch_and_clips():
    windows, starts, orders = random_case()
    out = build_clips(windows, starts[:, :0], orders[:, :0], mean=MEAN, std=STD)
    assert out.shape == (0, 3, 4, 5, 6)
    out = build_clips(windows[:0], starts[:0], orders[:0], mean=MEAN, std=STD, dtype=torch.float16)
    assert out.shape == (0, 3, 4, 5, 6) and out.dtype == torch.float16


def test_custom_op_is_registered_and_passes_opcheck():
    windows, starts, orders = random_case(B=2, T=6, H=3, W=4, N=2, D=3)
    op = torch.ops.fastssl.build_clips.default
    out = op(windows, starts, orders, list(MEAN), list(STD), torch.bfloat16, True)
    assert torch.equal(out, build_clips_reference(windows, starts, orders, mean=MEAN, std=STD, dtype=torch.bfloat16))
    for w, s, o in [(windows, starts, orders), random_case(B=1, T=1, H=1, W=3, N=2, D=1)]:  # size-1 dims too
        result = torch.library.opcheck(op, (w, s, o, list(MEAN), list(STD), torch.float32, True))
        assert all(v == "SUCCESS" for v in result.values()), result


@pytest.mark.filterwarnings("ignore:.*torch.jit.script_method.*:DeprecationWarning")  # inductor's own
@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_torch_compile_fullgraph(backend):
    # The op is opaque to the compiler (its fake kernel gives shape, dtype and strides).
    windows, starts, orders = random_case(B=2, T=6, H=3, W=4, N=2, D=3)

    def f(w, s, o):
        return build_clips(w, s, o, mean=MEAN, std=STD, dtype=torch.float16)

    torch._dynamo.reset()
    out = torch.compile(f, backend=backend, fullgraph=True)(windows, starts, orders)
    assert_layout(out, 2, 2, 3, 3, 4)
    assert torch.equal(out, f(windows, starts, orders))


def test_reference_makes_mean_and_std_tensors_once_per_device_and_values():
    windows, starts, orders = random_case()
    build_clips_reference(windows, starts, orders, mean=MEAN, std=STD)
    before = bc._device_stats.cache_info()
    out = build_clips_reference(windows, starts, orders, mean=MEAN, std=STD)
    after = bc._device_stats.cache_info()
    assert (after.hits, after.misses) == (before.hits + 1, before.misses)  # no new tensors
    assert torch.equal(out, naive_build_clips(windows, starts, orders, MEAN, STD))
    cpu = torch.device("cpu")
    mean_t, std_t = bc._device_stats(MEAN, STD, cpu)
    assert mean_t.dtype == std_t.dtype == torch.float32 and mean_t.tolist() == list(np.float32(MEAN))
    assert bc._device_stats(MEAN, STD, cpu)[0] is mean_t
    # other values or another device: other tensors, on that device
    assert bc._device_stats((1.0, 2.0, 3.0), STD, cpu)[0].tolist() == [1.0, 2.0, 3.0]
    assert bc._device_stats(MEAN, STD, torch.device("meta"))[0].device.type == "meta"


# ------------------------------------------------------------------------------------------
# Whether CUDA calls get the Triton kernel, and saying so when they don't
# ------------------------------------------------------------------------------------------

def test_triton_status_of_this_process():
    status = triton_status()
    if HAS_TRITON:
        import triton
        assert status.startswith("the Triton kernel is used for CUDA tensors")
        assert triton.__version__ in status
        assert ("sees no CUDA device" in status) == (not HAS_CUDA)
    else:
        assert status.startswith("the Triton kernel is not used") and "ModuleNotFoundError" in status


def test_a_kernel_module_that_does_not_import_is_reported_and_warned_about_once():
    # A real failing import (the name does not exist), through the same loader build_clips uses.
    loader = bc._KernelModule("fastssl.kernels._no_such_kernel")
    assert loader.get() is None and loader.get() is None
    assert isinstance(loader.error, ModuleNotFoundError)
    status = loader.status()
    assert status.startswith("the Triton kernel is not used")
    assert "ModuleNotFoundError: No module named 'fastssl.kernels._no_such_kernel'" in status
    assert "torch reference" in status and "passes over memory" in status
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # the once-only must be the loader's, not Python's filter
        for _ in range(3):
            loader.warn_reference_on_cuda()
    assert len(caught) == 1 and caught[0].category is RuntimeWarning
    message = str(caught[0].message)
    assert "_no_such_kernel" in message and "torch reference" in message and "triton_status()" in message


# ------------------------------------------------------------------------------------------
# Index range: check=True raises, check=False writes NaN frames (the no-sync CUDA default)
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fn", [build_clips_reference, build_clips], ids=["reference", "op"])
def test_out_of_range_index_raises_on_cpu(fn):
    windows, starts, orders = random_case(T=7, D=4)
    orders[1, 2, 3] = 4  # start + 4 may still fit; force it out
    starts[1, 2] = 3
    with pytest.raises(ValueError, match=r"out of range.*starts\[1,2\] \+ orders\[1,2,3\] = 3 \+ 4 = 7.*T=7"):
        fn(windows, starts, orders, mean=MEAN, std=STD)
    starts[1, 2] = -5
    with pytest.raises(ValueError, match="out of range"):
        fn(windows, starts, orders, mean=MEAN, std=STD)


@pytest.mark.parametrize("dtype", SUPPORTED_DTYPES)
def test_check_false_poisons_bad_frames_with_nan(dtype):
    windows, starts, orders = random_case(T=7, D=4)
    good = build_clips(windows, starts, orders, mean=MEAN, std=STD, dtype=dtype)
    orders[0, 1, 2] = 99
    orders[1, 0, 0] = -99
    out = build_clips(windows, starts, orders, mean=MEAN, std=STD, dtype=dtype, check=False)
    bad = torch.zeros(2 * 3, 4, dtype=torch.bool)
    bad[0 * 3 + 1, 2] = True
    bad[1 * 3 + 0, 0] = True
    nan = out.isnan().permute(0, 2, 1, 3, 4)  # (B*N, D, C, H, W)
    assert nan[bad].all() and not nan[~bad].any()
    assert torch.equal(out.permute(0, 2, 1, 3, 4)[~bad], good.permute(0, 2, 1, 3, 4)[~bad])


# ------------------------------------------------------------------------------------------
# Bad inputs
# ------------------------------------------------------------------------------------------

def _bad_cases():
    w, s, o = random_case()
    return [
        ("windows not a tensor", dict(windows=w.numpy()), TypeError, "windows must be a torch.Tensor"),
        ("float windows", dict(windows=w.float()), TypeError, "windows must be uint8"),
        ("4-d windows", dict(windows=w[0]), ValueError, r"\(B, T, H, W, C=3\)"),
        ("CHW windows", dict(windows=w.permute(0, 1, 4, 2, 3).contiguous()), ValueError, "last dim 3"),
        ("float starts", dict(starts=s.float()), TypeError, "starts must be int64"),
        ("starts wrong B", dict(starts=s[:1]), ValueError, r"starts must be \(B, N\)"),
        ("starts 1-d", dict(starts=s[0]), ValueError, r"starts must be \(B, N\)"),
        ("orders wrong N", dict(orders=o[:, :2]), ValueError, r"orders must be \(B, N, D\)"),
        ("orders 2-d", dict(orders=o[:, 0]), ValueError, r"orders must be \(B, N, D\)"),
        ("mean of 2", dict(mean=(1.0, 2.0)), ValueError, "mean must have 3 values"),
        ("mean str", dict(mean="rgb"), TypeError, "mean must be 3 numbers"),
        ("std zero", dict(std=(1.0, 0.0, 1.0)), ValueError, "std must be non-zero"),
        ("std nan", dict(std=(1.0, float("nan"), 1.0)), ValueError, "std must be finite"),
        ("dtype int", dict(dtype=torch.int32), TypeError, "dtype must be one of"),
        ("dtype str", dict(dtype="float32"), TypeError, "dtype must be a torch.dtype"),
        ("no frames", dict(windows=w[:, :0]), ValueError, "no frames"),
    ]


@pytest.mark.parametrize("case", _bad_cases(), ids=lambda c: c[0])
@pytest.mark.parametrize("fn", [build_clips_reference, build_clips], ids=["reference", "op"])
def test_bad_inputs_raise_clearly(fn, case):
    _, override, exc, pattern = case
    w, s, o = random_case()
    kwargs = dict(windows=w, starts=s, orders=o, mean=MEAN, std=STD, dtype=torch.float32)
    kwargs.update(override)
    with pytest.raises(exc, match=pattern):
        fn(kwargs.pop("windows"), kwargs.pop("starts"), kwargs.pop("orders"), **kwargs)


def test_op_validates_when_called_directly():
    w, s, o = random_case()
    with pytest.raises(TypeError, match="starts must be int64"):
        torch.ops.fastssl.build_clips(w, s.int(), o, list(MEAN), list(STD), torch.float32, True)
    with pytest.raises(ValueError, match="mean and std need 3 values"):
        torch.ops.fastssl.build_clips(w, s, o, [1.0], list(STD), torch.float32, True)
    with pytest.raises(ValueError, match="one device"):
        torch.ops.fastssl.build_clips(w, s.to("meta"), o, list(MEAN), list(STD), torch.float32, True)


# ------------------------------------------------------------------------------------------
# Triton kernel in the interpreter (subprocess: TRITON_INTERPRET must be set before import)
# ------------------------------------------------------------------------------------------

_INTERPRETER_SCRIPT = textwrap.dedent(
    """
    import json, sys, torch
    sys.path.insert(0, {tests_dir!r})
    from test_kernels import random_case, MEAN, STD
    from fastssl.kernels import build_clips_reference, build_clips_triton, SUPPORTED_DTYPES
    from fastssl.kernels import triton_build_clips as tb
    assert tb.is_interpreter(), "TRITON_INTERPRET=1 did not take effect"
    results = []
    cases = [
        dict(shape=dict(B=2, T=6, H=3, W=4, N=2, D=3), block=None),   # one partial block per frame
        dict(shape=dict(B=1, T=5, H=4, W=4, N=2, D=4), block=16),     # 3 blocks per frame, exact fit
        dict(shape=dict(B=2, T=4, H=3, W=3, N=1, D=2), block=8),      # 27 elems: masked tail
    ]
    for i, case in enumerate(cases):
        w, s, o = random_case(**case["shape"], seed=i, permutations=False)
        for dtype in SUPPORTED_DTYPES:
            ref = build_clips_reference(w, s, o, mean=MEAN, std=STD, dtype=dtype)
            out = build_clips_triton(w, s, o, mean=MEAN, std=STD, dtype=dtype, block=case["block"])
            diff = (out.float() - ref.float()).abs()
            ulp = (ref.float().abs() * (2.0 ** -7 if dtype == torch.bfloat16 else 2.0 ** -10)).clamp_min(1e-6)
            results.append(dict(case=i, dtype=str(dtype), equal=bool(torch.equal(out, ref)),
                                max_abs=float(diff.max()), max_ulps=float((diff / ulp).max()),
                                layout=bool(out.is_contiguous(memory_format=torch.channels_last_3d))
                                       and out.shape == ref.shape and out.stride() == ref.stride()))
    # out-of-range index with check=False: NaN frame, like the reference
    w, s, o = random_case(seed=7)
    o[1, 2, 3] = 50
    ref = build_clips_reference(w, s, o, mean=MEAN, std=STD, check=False)
    out = build_clips_triton(w, s, o, mean=MEAN, std=STD, check=False)
    results.append(dict(case="nan", dtype="torch.float32", equal=bool(torch.equal(out.nan_to_num(7.0), ref.nan_to_num(7.0))),
                        nan=int(out.isnan().sum()), max_abs=0.0, max_ulps=0.0, layout=True))
    print("RESULTS" + json.dumps(results))
    """
)


@pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed")
def test_triton_kernel_in_interpreter_matches_reference():
    env = dict(os.environ, TRITON_INTERPRET="1")
    script = _INTERPRETER_SCRIPT.format(tests_dir=os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULTS"))
    results = json.loads(line[len("RESULTS"):])
    for r in results:
        assert r["layout"], r
        if r["case"] == "nan":
            assert r["equal"] and r["nan"] == 5 * 6 * 3, r  # one H*W*C frame of NaN
        elif r["dtype"] == "torch.bfloat16":
            # The interpreter casts fp32 -> bf16 by truncation (triton 3.9 numpy emulation), not
            # round-to-nearest-even as the GPU does: allow one bf16 ulp here, exact on CUDA.
            assert r["max_ulps"] <= 1.0, r
        else:
            assert r["equal"], r  # fp32 and fp16: bit-identical (IEEE div_rn, numpy rtne cast)


def test_triton_entry_refuses_cpu_tensors_without_interpreter():
    if not HAS_TRITON:
        pytest.skip("triton is not installed")
    from fastssl.kernels import triton_build_clips as tb

    if tb.is_interpreter():
        pytest.skip("this process runs the Triton interpreter")
    w, s, o = random_case()
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET=1"):
        build_clips_triton(w, s, o, mean=MEAN, std=STD)


@pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed")
@pytest.mark.parametrize("odt", ["fp32", "bf16"])
def test_triton_kernel_compiles_for_h100_with_16_byte_accesses(odt):
    # No GPU needed: compile to PTX for sm_90 with the ptxas bundled in the triton wheel. Checks
    # codegen (not just the interpreter), the 16 B vector loads/stores the design relies on (when
    # H*W*C is a multiple of 16) and that division and casts round to nearest.
    import re

    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from fastssl.kernels import triton_build_clips as tb

    if tb.is_interpreter():
        pytest.skip("this process runs the Triton interpreter")
    sig = {"win_ptr": "*u8", "starts_ptr": "*i64", "orders_ptr": "*i64", "out_ptr": f"*{odt}"}
    sig.update({k: "i32" for k in ("T", "N", "D", "FRAME")})
    sig.update({k: "fp32" for k in ("m0", "m1", "m2", "s0", "s1", "s2")})
    sig["BLOCK"] = "constexpr"
    attrs = {(i,): [["tt.divisibility", 16]] for i in (0, 1, 2, 3, 7)}  # pointers and FRAME
    try:
        src = ASTSource(fn=tb._build_clips_kernel, signature=sig, constexprs={"BLOCK": tb.DEFAULT_BLOCK}, attrs=attrs)
        kernel = triton.compile(
            src, target=GPUTarget("cuda", 90, 32),
            options={"num_warps": tb.DEFAULT_NUM_WARPS, "enable_fp_fusion": False},
        )
    except (TypeError, AttributeError, ImportError) as e:  # another triton's AOT API
        pytest.skip(f"this triton's ahead-of-time compile API differs: {e!r}")
    ptx = kernel.asm["ptx"]
    assert "ld.global.v4.b32" in ptx and "st.global.v4.b32" in ptx, set(re.findall(r"[ls][dt]\.global[\w.]*", ptx))
    assert "div.rn.f32" in ptx
    if odt == "bf16":
        assert re.search(r"cvt\.rn\.bf16(x2)?\.f32", ptx)


# ------------------------------------------------------------------------------------------
# CUDA
# ------------------------------------------------------------------------------------------

def _cuda_case(B, T, H, W, N, D, seed=0):
    w, s, o = random_case(B=B, T=T, H=H, W=W, N=N, D=D, seed=seed)
    return w, s, o, w.cuda(), s.cuda(), o.cuda()


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU")
@pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed")
@pytest.mark.parametrize("dtype", SUPPORTED_DTYPES)
@pytest.mark.parametrize(
    "shape",
    [(2, 20, 64, 64, 6, 8), (3, 9, 17, 13, 2, 5), (4, 8, 112, 112, 1, 8)],  # typical, odd sizes, finetune
    ids=["typical", "odd", "finetune"],
)
def test_triton_on_cuda_matches_cpu_reference(shape, dtype):
    w, s, o, wc, sc, oc = _cuda_case(*shape)
    ref = build_clips_reference(w, s, o, mean=MEAN, std=STD, dtype=dtype)
    out = build_clips_triton(wc, sc, oc, mean=MEAN, std=STD, dtype=dtype)
    assert out.is_cuda and out.stride() == ref.stride()
    # IEEE division and round-to-nearest-even casts on both sides: bit-identical.
    assert torch.equal(out.cpu(), ref)
    # the public entry dispatches to the same kernel; CPU index tensors are accepted
    assert torch.equal(build_clips(wc, s, o, mean=MEAN, std=STD, dtype=dtype), out)
    # and the torch reference on CUDA agrees too
    assert torch.equal(build_clips_reference(wc, sc, oc, mean=MEAN, std=STD, dtype=dtype).cpu(), ref)


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU")
def test_cuda_index_range_check_and_nan():
    w, s, o, wc, sc, oc = _cuda_case(2, 7, 8, 8, 3, 4)
    oc[1, 2, 3] = 40
    with pytest.raises(ValueError, match="out of range"):
        build_clips(wc, sc, oc, mean=MEAN, std=STD, check=True)
    out = build_clips(wc, sc, oc, mean=MEAN, std=STD)  # default on CUDA: no sync, NaN frame
    assert int(out.isnan().sum()) == 8 * 8 * 3
    assert out[1 * 3 + 2, :, 3].isnan().all()  # sample 1, clip 2, step 3


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU")
def test_cuda_reference_does_not_wait_for_the_host():
    # After the first call has put mean/std on the device, the reference with check=False makes
    # no host-to-device copy and no sync: sync debug mode "error" raises on either.
    w, s, o, wc, sc, oc = _cuda_case(2, 20, 16, 16, 6, 8)
    build_clips_reference(wc, sc, oc, mean=MEAN, std=STD, dtype=torch.bfloat16, check=False)
    torch.cuda.set_sync_debug_mode("error")
    try:
        out = build_clips_reference(wc, sc, oc, mean=MEAN, std=STD, dtype=torch.bfloat16, check=False)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert torch.equal(out.cpu(), build_clips_reference(w, s, o, mean=MEAN, std=STD, dtype=torch.bfloat16))


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU")
def test_cuda_graph_capture():
    w, s, o, wc, sc, oc = _cuda_case(2, 20, 32, 32, 6, 8)
    f = lambda: build_clips(wc, sc, oc, mean=MEAN, std=STD, dtype=torch.bfloat16, check=False)
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        f()  # warm up (Triton compiles on the first call) outside the capture
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = f()
    w2, s2, o2 = random_case(B=2, T=20, H=32, W=32, N=6, D=8, seed=5)
    wc.copy_(w2), sc.copy_(s2), oc.copy_(o2)
    graph.replay()
    torch.cuda.synchronize()
    expected = build_clips_reference(w2, s2, o2, mean=MEAN, std=STD, dtype=torch.bfloat16)
    assert torch.equal(out.cpu(), expected)
