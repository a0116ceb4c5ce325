"""Models as a run's config describes them, on its device in channels_last_3d.

channels_last_3d is the layout the clip builder writes (FHWC per clip), so the first conv reads
its input without a transpose.
"""
from __future__ import annotations

import torch

from fastssl.models.alexnet3d import AlexNet3D, SiameseNet


def build_siamese(cfg) -> SiameseNet:
    model = SiameseNet(cfg.N, width=cfg.width, branch_dim=cfg.branch_dim, frames=cfg.D, size=cfg.size)
    return model.to(cfg.device, memory_format=torch.channels_last_3d)


def build_classifier(cfg, num_classes: int) -> AlexNet3D:
    model = AlexNet3D(num_classes, width=cfg.width, fc_size=cfg.fc_size, frames=cfg.D, size=cfg.size)
    return model.to(cfg.device, memory_format=torch.channels_last_3d)
