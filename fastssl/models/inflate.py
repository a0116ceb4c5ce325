"""Inflated initialisation: 3D-AlexNet's conv1..conv5 from a 2D AlexNet state dict.

The paper's Table 2 "Inflated" row. The user gives a file (nothing here downloads weights) holding
a 2D AlexNet state dict in torchvision's key layout (`torchvision.models.alexnet().state_dict()`):

    2D (torchvision)                                   3D (`conv_features(1.0)`, our Sequential)
    features.0.weight  (64, 3, 11, 11)   conv1    ->   features[0]   Conv3d (64, 3, 5, 11, 11)
    features.3.weight  (192, 64, 5, 5)   conv2    ->   features[4]   Conv3d (192, 64, 3, 5, 5)
    features.6.weight  (384, 192, 3, 3)  conv3    ->   features[8]   Conv3d (384, 192, 3, 3, 3)
    features.8.weight  (256, 384, 3, 3)  conv4    ->   features[11]  Conv3d (256, 384, 3, 3, 3)
    features.10.weight (256, 256, 3, 3)  conv5    ->   features[14]  Conv3d (256, 256, 3, 3, 3)

(the indices in between are, in torchvision, ReLU and MaxPool2d; in ours BatchNorm3d, ReLU and
MaxPool3d). Spatial kernel sizes, strides and paddings are the same in both networks, so a
spatial slice of the 3D net is the 2D net.

- Each 2D kernel is repeated along time and divided by the temporal kernel size (5 for conv1,
  3 for conv2..conv5), so a clip of identical frames gives the 2D response at every output time
  the temporal zero-padding does not reach (I3D's inflation).
- The 2D biases (`features.N.bias`) are dropped: our convs have no bias, since each is followed
  by BatchNorm, whose shift takes the bias's role. So the identical-frames equality holds
  *before* BatchNorm against the 2D conv output minus its bias.
- The BatchNorm3d after each filled conv is reset (fresh running statistics and affine), since
  no 2D statistics exist for it. The fc layers are not touched; `classifier.*` keys are ignored.
- Only width 1.0 fits: other widths give other channel counts and are refused (InflateError).
- Input normalisation: torchvision's 2D weights were trained on RGB in [0, 1] normalised by
  ImageNet's mean/std; our clips are RGB in 0-255 normalised by `cfg.mean`/`cfg.std` in 0-255
  units, so IMAGENET_MEAN / IMAGENET_STD below are the same normalisation in our units.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from fastssl.files import describe_file

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "LAYER_MAP", "InflateError", "inflate_kernel",
           "load_2d_state_dict", "inflate_into", "inflate_from_file"]

# 0-255 units: torchvision's (0.485, 0.456, 0.406) and (0.229, 0.224, 0.225) times 255.
IMAGENET_MEAN: tuple = (123.675, 116.28, 103.53)
IMAGENET_STD: tuple = (58.395, 57.12, 57.375)

# name, torchvision features index, our conv_features() index, 2D weight shape at width 1.0
LAYER_MAP: tuple = (
    ("conv1", 0, 0, (64, 3, 11, 11)),
    ("conv2", 3, 4, (192, 64, 5, 5)),
    ("conv3", 6, 8, (384, 192, 3, 3)),
    ("conv4", 8, 11, (256, 384, 3, 3)),
    ("conv5", 10, 14, (256, 256, 3, 3)),
)
_EXPECTED_KEYS = {f"features.{tv}.{p}" for _, tv, _, _ in LAYER_MAP for p in ("weight", "bias")}


class InflateError(ValueError):
    """A 2D state dict (or the 3D target) that inflation cannot use; the message names the file."""


def inflate_kernel(weight_2d: torch.Tensor, time: int) -> torch.Tensor:
    """(O, I, kH, kW) -> (O, I, time, kH, kW): the kernel repeated along time, divided by `time`."""
    o, i, kh, kw = weight_2d.shape
    return weight_2d.unsqueeze(2).expand(o, i, time, kh, kw) / time


def load_2d_state_dict(path: str | os.PathLike) -> dict:
    """Read a 2D AlexNet state dict from `path` on the CPU (`torch.load(weights_only=True)`).

    Accepts a plain state dict, or one nested under "state_dict" or "model" (training-script
    checkpoints); a uniform "module." prefix (DataParallel) is stripped. Keys are not checked
    here: `inflate_into` does that. InflateError when the file is not such a dict.
    """
    path = Path(path)
    if not path.is_file():
        raise InflateError(f"{path}: 2D weights file not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - whatever the unpickler says, the file is not usable
        # The weights-only unpickler names the class it refused ("Unsupported global") for a
        # pickled object such as a whole model; for bytes that are no pickle at all it says
        # "weights only load failed" too, so that phrase alone does not mean a saved model.
        if "Unsupported global" in str(e):
            raise InflateError(f"{path}: a pickle that is not a plain state dict (a whole saved "
                               f"model?); save `model.state_dict()` instead") from None
        raise InflateError(f"{path}: is {describe_file(path, 'a torch state dict')}") from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not state:
        raise InflateError(f"{path}: a torch file, but not a state dict "
                           f"(got {type(state).__name__}{' (empty)' if state == {} else ''})")
    if not all(isinstance(k, str) for k in state):
        raise InflateError(f"{path}: a torch file, but its keys are not parameter names")
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def _check_2d(state_2d: dict, source: str) -> None:
    features = {k for k in state_2d if k.startswith("features.")}
    missing = sorted(_EXPECTED_KEYS - features)
    if missing:
        some = sorted(state_2d)[:6]
        raise InflateError(f"{source}: not a 2D AlexNet state dict in torchvision's layout: "
                           f"missing {', '.join(missing)} (its keys start {some})")
    extra = sorted(features - _EXPECTED_KEYS)
    if extra:
        raise InflateError(f"{source}: unexpected 2D keys {', '.join(extra[:6])}: not "
                           f"torchvision's AlexNet (a variant with BatchNorm or another net?)")
    for name, tv, _, shape in LAYER_MAP:
        for part, want in (("weight", shape), ("bias", shape[:1])):
            key = f"features.{tv}.{part}"
            t = state_2d[key]
            if not isinstance(t, torch.Tensor) or not t.is_floating_point():
                raise InflateError(f"{source}: {key} ({name}) is not a float tensor")
            if tuple(t.shape) != want:
                raise InflateError(f"{source}: {key} ({name} {part}) has shape {tuple(t.shape)}, "
                                   f"torchvision's AlexNet has {want}")
        if not torch.isfinite(state_2d[f"features.{tv}.weight"]).all():
            raise InflateError(f"{source}: features.{tv}.weight ({name}) has NaN or inf values")


def _targets(features: nn.Sequential, source: str) -> list[tuple[nn.Conv3d, nn.Module]]:
    out = []
    for name, _, ours, shape in LAYER_MAP:
        conv = features[ours] if ours + 1 < len(features) else None
        bn = features[ours + 1] if conv is not None else None
        if not isinstance(conv, nn.Conv3d) or not isinstance(bn, nn.BatchNorm3d):
            raise InflateError(f"{source}: cannot inflate into this model: features[{ours}] is "
                               f"not {name} (Conv3d followed by BatchNorm3d)")
        got = (conv.out_channels, conv.in_channels, *conv.kernel_size[1:])
        if got != shape:
            raise InflateError(
                f"{source}: 2D AlexNet's {name} is {shape[0]}x{shape[1]} channels, kernel "
                f"{shape[2]}x{shape[3]}; this model's {name} is {got[0]}x{got[1]}, kernel "
                f"{got[2]}x{got[3]}: inflation needs --width 1.0")
        out.append((conv, bn))
    return out


@torch.no_grad()
def inflate_into(features: nn.Sequential, state_2d: dict, *, source: str) -> int:
    """Fill conv1..conv5 of `features` (a `conv_features(1.0)` stack) from a 2D AlexNet state dict.

    See the module docstring for the mapping (torchvision features.0/3/6/8/10 -> our 0/4/8/11/14).
    Every check runs before anything is written, so on InflateError `features` is unchanged.
    The BatchNorm3d after each conv is reset; 2D biases are dropped. `source` (the file name)
    goes into every error message. Returns the number of conv layers filled (5).
    """
    _check_2d(state_2d, source)
    targets = _targets(features, source)
    for (_, tv, _, _), (conv, bn) in zip(LAYER_MAP, targets):
        w2d = state_2d[f"features.{tv}.weight"]
        conv.weight.copy_(inflate_kernel(w2d.to(conv.weight.dtype), conv.kernel_size[0]))
        bn.reset_parameters()  # running stats and affine: fresh
    return len(targets)


def inflate_from_file(features: nn.Sequential, path: str | os.PathLike) -> int:
    """`load_2d_state_dict(path)` then `inflate_into(features, ..., source=str(path))`."""
    return inflate_into(features, load_2d_state_dict(path), source=str(path))
