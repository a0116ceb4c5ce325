"""Models as a run's config describes them, on its device in channels_last_3d.

channels_last_3d is the layout the clip builder writes (FHWC per clip), so the first conv reads
its input without a transpose. `cfg.arch` picks the backbone: 3D-AlexNet (the paper's), or one of
the video ResNets later work uses (`resnet3d.ARCHS`), whose pooled features feed the same
SiameseNet branch head (fc4) and fusion.
"""
from __future__ import annotations

import torch

from fastssl.config import ARCHS
from fastssl.models.alexnet3d import AlexNet3D, SiameseNet, conv_features
from fastssl.models.resnet3d import ARCHS as RESNETS, video_resnet

assert ARCHS == ("alexnet3d",) + RESNETS, "config.ARCHS names the backbones build.py builds"


def _backbone(cfg) -> torch.nn.Module | None:
    """The SiameseNet branch's backbone: None for 3D-AlexNet (built inside), else a ResNet's
    pooled features."""
    return None if cfg.arch == "alexnet3d" else video_resnet(cfg.arch, 1).features


def build_features(cfg) -> torch.nn.Module:
    """The backbone alone, as `model.features` holds it (frozen-feature scoring, --inflate),
    on the CPU: 3D-AlexNet's conv1..pool3, or a ResNet's stem..layer4 + pooling."""
    return conv_features(cfg.width) if cfg.arch == "alexnet3d" else video_resnet(cfg.arch, 1).features


def build_siamese(cfg) -> SiameseNet:
    model = SiameseNet(cfg.N, width=cfg.width, branch_dim=cfg.branch_dim, frames=cfg.D, size=cfg.size,
                       features=_backbone(cfg))
    return model.to(cfg.device, memory_format=torch.channels_last_3d)


def build_classifier(cfg, num_classes: int) -> torch.nn.Module:
    if cfg.arch == "alexnet3d":
        model = AlexNet3D(num_classes, width=cfg.width, fc_size=cfg.fc_size, frames=cfg.D, size=cfg.size)
    else:
        model = video_resnet(cfg.arch, num_classes)
    return model.to(cfg.device, memory_format=torch.channels_last_3d)
