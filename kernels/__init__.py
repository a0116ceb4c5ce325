"""fastssl.kernels: the fused clip builder (gather by start+order, normalize, cast) and its
torch reference. Lives in the top-level `kernels/` folder, installed as `fastssl.kernels`.

Importing this package registers the custom op torch.ops.fastssl.build_clips; it does not import
triton (that happens on first CUDA use, or via build_clips_triton / triton_available() /
triton_status()).
"""
from .build_clips import (
    SUPPORTED_DTYPES,
    build_clips,
    build_clips_reference,
    build_clips_triton,
    identity_orders,
    triton_available,
    triton_status,
)

__all__ = [
    "SUPPORTED_DTYPES",
    "build_clips",
    "build_clips_reference",
    "build_clips_triton",
    "identity_orders",
    "triton_available",
    "triton_status",
]
