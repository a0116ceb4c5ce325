"""R3D-18, MC3-18 and R(2+1)D-18 (Tran et al. 2018) with torchvision's parameter layout.

torchvision cannot be a dependency (its wheels do not import beside the CPU torch this project
installs), so the three networks are written here, with the state-dict keys and shapes of
`torchvision.models.video.{r3d_18, mc3_18, r2plus1d_18}`: a state dict saved from torchvision loads
into these strictly, and ours loads into theirs. `tests/fixtures/torchvision_video_resnets.json`
holds torchvision's keys and shapes and `tests/test_resnet3d.py` checks ours against it;
`bench/torchvision_manifest.py` wrote it and compared the outputs of both for one input.

Layout (what the state-dict names mean):
- `stem`: conv (3x7x7, stride 1x2x2) -> BN -> ReLU; R(2+1)D's stem is factorised instead:
  1x7x7 conv to 45 channels -> BN -> ReLU -> 3x1x1 conv to 64 -> BN -> ReLU (keys stem.0/1/3/4).
- `layer1..layer4`: two BasicBlocks each, 64/128/256/512 planes, stride 1/2/2/2. A block is
  conv1 = (conv, BN, ReLU), conv2 = (conv, BN), plus a 1x1x1 conv + BN `downsample` where the
  shape changes. The conv is 3x3x3 (R3D; MC3's layer1), 1x3x3 (MC3's layer2-4, time untouched), or
  (2+1)D: 1x3x3 to `midplanes` channels -> BN -> ReLU -> 3x1x1, midplanes chosen so the pair has
  about the parameters of one 3x3x3 conv (keys conv1.0.0/conv1.0.1/conv1.0.3).
- `avgpool` (global), `fc` (512 -> num_classes).

`model.features` is the backbone fastssl trains: stem..layer4 + global average pool, clips
(B, C, D, H, W) -> (B, 512). It shares its modules with the model but is not registered as a child,
so the model's state dict stays torchvision's; `features.state_dict()` is torchvision's without
`fc.*`. Nothing here uses `view`, so channels_last_3d input and weights work as they are.
"""
from __future__ import annotations

import torch
from torch import nn

ARCHS = ("r3d_18", "mc3_18", "r2plus1d_18")
FEATURE_DIM = 512
_PLANES = (64, 128, 256, 512)
_BLOCKS = (2, 2, 2, 2)


def _bn_relu(channels: int) -> list[nn.Module]:
    return [nn.BatchNorm3d(channels), nn.ReLU(inplace=True)]


# --- the three kinds of 3D convolution; each also knows how its downsample shortcut strides ---

def _full(cin: int, cout: int, midplanes: int, stride: int = 1) -> nn.Module:
    """3x3x3 conv, strided in time and space."""
    return nn.Conv3d(cin, cout, 3, stride=stride, padding=1, bias=False)


def _spatial(cin: int, cout: int, midplanes: int, stride: int = 1) -> nn.Module:
    """1x3x3 conv: time is neither mixed nor strided."""
    return nn.Conv3d(cin, cout, (1, 3, 3), stride=(1, stride, stride), padding=(0, 1, 1), bias=False)


def _factorised(cin: int, cout: int, midplanes: int, stride: int = 1) -> nn.Module:
    """(2+1)D: 1x3x3 conv (space) -> BN -> ReLU -> 3x1x1 conv (time)."""
    return nn.Sequential(
        nn.Conv3d(cin, midplanes, (1, 3, 3), stride=(1, stride, stride), padding=(0, 1, 1), bias=False),
        *_bn_relu(midplanes),
        nn.Conv3d(midplanes, cout, (3, 1, 1), stride=(stride, 1, 1), padding=(1, 0, 0), bias=False))


def _shortcut_stride(conv, stride: int) -> tuple[int, int, int]:
    return (1, stride, stride) if conv is _spatial else (stride, stride, stride)


def _midplanes(cin: int, cout: int) -> int:
    """Channels between a (2+1)D pair so that it has about the parameters of a 3x3x3 conv."""
    return (cin * cout * 27) // (cin * 9 + 3 * cout)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, planes: int, conv, stride: int = 1):
        super().__init__()
        mid = _midplanes(cin, planes)  # both convs of a block use the first one's
        self.conv1 = nn.Sequential(conv(cin, planes, mid, stride), *_bn_relu(planes))
        self.conv2 = nn.Sequential(conv(planes, planes, mid), nn.BatchNorm3d(planes))
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or cin != planes:
            self.downsample = nn.Sequential(
                nn.Conv3d(cin, planes, 1, stride=_shortcut_stride(conv, stride), bias=False),
                nn.BatchNorm3d(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(self.conv2(self.conv1(x)) + shortcut)


def _stem(factorised: bool) -> nn.Sequential:
    if factorised:
        return nn.Sequential(
            nn.Conv3d(3, 45, (1, 7, 7), stride=(1, 2, 2), padding=(0, 3, 3), bias=False), *_bn_relu(45),
            nn.Conv3d(45, 64, (3, 1, 1), stride=1, padding=(1, 0, 0), bias=False), *_bn_relu(64))
    return nn.Sequential(
        nn.Conv3d(3, 64, (3, 7, 7), stride=(1, 2, 2), padding=(1, 3, 3), bias=False), *_bn_relu(64))


class VideoResNetFeatures(nn.Module):
    """stem..layer4 + global average pool: clips (B, C, D, H, W) -> features (B, 512)."""

    out_dim = FEATURE_DIM

    def __init__(self, stem, layer1, layer2, layer3, layer4, avgpool):
        super().__init__()
        self.stem, self.layer1, self.layer2, self.layer3, self.layer4 = stem, layer1, layer2, layer3, layer4
        self.avgpool = avgpool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer4(self.layer3(self.layer2(self.layer1(self.stem(x)))))
        return self.avgpool(x).flatten(1)


class VideoResNet(nn.Module):
    """stem -> layer1..4 -> avgpool -> fc, with torchvision's state-dict names and shapes."""

    def __init__(self, convs, num_classes: int = 400, *, factorised_stem: bool = False):
        super().__init__()
        if len(convs) != 4:
            raise ValueError(f"need one conv kind per layer (4), got {len(convs)}")
        self.stem = _stem(factorised_stem)
        cin = 64
        for i, (conv, planes, blocks) in enumerate(zip(convs, _PLANES, _BLOCKS)):
            stride = 1 if i == 0 else 2
            layer = [BasicBlock(cin, planes, conv, stride)]
            layer += [BasicBlock(planes, planes, conv) for _ in range(blocks - 1)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*layer))
            cin = planes
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.fc = nn.Linear(FEATURE_DIM, num_classes)
        # Shares the modules above; set past nn.Module's __setattr__ so it is no child of ours and
        # the state dict keeps torchvision's keys (no "features." duplicates).
        object.__setattr__(self, "features", VideoResNetFeatures(
            self.stem, self.layer1, self.layer2, self.layer3, self.layer4, self.avgpool))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """He init (fan out) for convs, BN to identity, fc to N(0, 0.01) with zero bias."""
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def train(self, mode: bool = True) -> "VideoResNet":
        super().train(mode)
        self.features.training = mode  # its children are ours and already switched
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """clips (B, C, D, H, W) -> logits (B, num_classes)."""
        return self.fc(self.features(x))


def r3d_18(num_classes: int = 400) -> VideoResNet:
    """R3D-18: 3x3x3 convs throughout."""
    return VideoResNet((_full,) * 4, num_classes)


def mc3_18(num_classes: int = 400) -> VideoResNet:
    """MC3-18: 3x3x3 convs in layer1, 1x3x3 (no temporal mixing) in layer2-4."""
    return VideoResNet((_full,) + (_spatial,) * 3, num_classes)


def r2plus1d_18(num_classes: int = 400) -> VideoResNet:
    """R(2+1)D-18: every 3x3x3 conv factorised into 1x3x3 then 3x1x1, factorised stem."""
    return VideoResNet((_factorised,) * 4, num_classes, factorised_stem=True)


_BUILDERS = {"r3d_18": r3d_18, "mc3_18": mc3_18, "r2plus1d_18": r2plus1d_18}


def video_resnet(arch: str, num_classes: int) -> VideoResNet:
    """One of ARCHS with a num_classes-way fc; a torchvision state dict of that arch loads strictly."""
    try:
        return _BUILDERS[arch](num_classes)
    except KeyError:
        raise ValueError(f"unknown arch {arch!r}; choose one of {', '.join(ARCHS)}") from None
