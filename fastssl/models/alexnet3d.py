"""3D-AlexNet (Table 1 of Suzuki et al.) and the SiameseNet used for the pretext task.

Choices the paper leaves open or gets wrong, and why:
- conv2 stride (1, 1, 1), not Table 1's (1, 2, 2): with 8x224x224 input and AlexNet paddings,
  only stride 1 gives the table's fc1 input of 9216 = 256 x 1 x 6 x 6 (stride 2 gives 1024).
- fc2 is 4096 -> 4096 (the table's "9216 -> 4096" for fc2 is a copy of fc1's line).
- BatchNorm after every conv and every hidden fc layer: the paper replaces dropout by BN.
- Paddings are AlexNet's: conv1 2, conv2 (1, 2, 2), conv3-5 1; pools (2, 3, 3) stride 2, so
  time goes 8 -> 4 -> 2 -> 1 and D must be at least 8.
The flatten size comes from a dummy forward, so any input size >= ~64 px works.
"""
from __future__ import annotations

import torch
from torch import nn

MIN_FRAMES = 8  # three temporal poolings of stride 2


def _check_frames(frames: int) -> None:
    if frames < MIN_FRAMES:
        raise ValueError(f"3D-AlexNet needs at least {MIN_FRAMES} frames per clip, got {frames}")


def _c(channels: int, width: float) -> int:
    return max(8, int(round(channels * width)))


def conv_features(width: float = 1.0) -> nn.Sequential:
    """conv1..pool3 of 3D-AlexNet: the part the pretext task trains and fine-tuning reuses."""
    c1, c2, c3, c4, c5 = (_c(c, width) for c in (64, 192, 384, 256, 256))

    def conv(cin, cout, k, s, p):
        return [nn.Conv3d(cin, cout, k, stride=s, padding=p, bias=False), nn.BatchNorm3d(cout),
                nn.ReLU(inplace=True)]

    pool = lambda: nn.MaxPool3d((2, 3, 3), stride=2)  # noqa: E731
    return nn.Sequential(
        *conv(3, c1, (5, 11, 11), (1, 4, 4), (2, 2, 2)), pool(),   # conv1, pool1
        *conv(c1, c2, (3, 5, 5), (1, 1, 1), (1, 2, 2)), pool(),    # conv2 (stride 1, see above), pool2
        *conv(c2, c3, 3, 1, 1),                                   # conv3
        *conv(c3, c4, 3, 1, 1),                                   # conv4
        *conv(c4, c5, 3, 1, 1), pool(),                           # conv5, pool3
    )


@torch.no_grad()
def flat_features(features: nn.Module, frames: int, size: int) -> int:
    """Number of features a backbone gives one (frames x size x size) clip, by a dummy forward
    (3D-AlexNet's conv1..pool3 map; a ResNet's pooled vector)."""
    was_training = features.training
    features.eval()
    try:
        out = features(torch.zeros(1, 3, frames, size, size))
    finally:
        features.train(was_training)
    if out.dim() == 5 and (out.shape[2] < 1 or out.shape[3] < 1):
        raise ValueError(f"input {frames}x{size}x{size} is too small for 3D-AlexNet")
    return out[0].numel()


def _fc(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Linear(cin, cout, bias=False), nn.BatchNorm1d(cout), nn.ReLU(inplace=True)]


class AlexNet3D(nn.Module):
    """Action recognition network: features (conv1..pool3) -> fc1 -> fc2 -> fc3 (num_classes)."""

    def __init__(self, num_classes: int, *, width: float = 1.0, fc_size: int = 4096,
                 frames: int = 8, size: int = 224):
        super().__init__()
        _check_frames(frames)
        self.features = conv_features(width)
        flat = flat_features(self.features, frames, size)
        self.classifier = nn.Sequential(
            nn.Flatten(), *_fc(flat, fc_size), *_fc(fc_size, fc_size),  # fc1, fc2
            nn.Linear(fc_size, num_classes))                             # fc3

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        """clips (B, C, D, H, W) -> logits (B, num_classes)."""
        return self.classifier(self.features(clips))


class SiameseNet(nn.Module):
    """N weight-sharing branches (conv1..pool3 + fc4 -> 128) and a fusion net (fc5, fc6 -> N).

    Input is the (B*N, C, D, H, W) batch the clip builder writes, clips of one question adjacent:
    all branches run as one batched call, which is what "weight sharing" means in practice.
    """

    def __init__(self, n_clips: int = 6, *, width: float = 1.0, branch_dim: int = 128,
                 frames: int = 8, size: int = 224, features: nn.Module | None = None):
        super().__init__()
        if features is None:  # the paper's branch: 3D-AlexNet's conv1..pool3
            _check_frames(frames)
            features = conv_features(width)
        self.n_clips = n_clips
        self.features = features
        flat = flat_features(self.features, frames, size)
        self.branch_head = nn.Sequential(nn.Flatten(), *_fc(flat, branch_dim))          # fc4
        fused = branch_dim * n_clips
        self.fusion = nn.Sequential(*_fc(fused, fused), nn.Linear(fused, n_clips))       # fc5, fc6

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        """clips (B*N, C, D, H, W) -> logits (B, N) over the wrong clip's position."""
        z = self.branch_head(self.features(clips))
        return self.fusion(z.reshape(-1, self.n_clips * z.shape[1]))
