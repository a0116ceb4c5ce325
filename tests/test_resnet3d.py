"""fastssl's video ResNets against torchvision's layout (the committed manifest), and their shapes.

The manifest was written by bench/torchvision_manifest.py in a venv with torchvision; there the
outputs of ours and torchvision's under the same weights were compared too. No torchvision here.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch

from fastssl.models.resnet3d import ARCHS, FEATURE_DIM, VideoResNet, video_resnet

MANIFEST = Path(__file__).parent / "fixtures" / "torchvision_video_resnets.json"
NUM_CLASSES = json.loads(MANIFEST.read_text())["num_classes"]
_built: dict[str, VideoResNet] = {}


def model(arch: str) -> VideoResNet:
    """One model per arch for the whole file (building R3D-18 is ~33M parameters); eval mode."""
    if arch not in _built:
        torch.manual_seed(0)
        _built[arch] = video_resnet(arch, NUM_CLASSES).eval()
    return _built[arch]


def clips(batch: int, frames: int, size: int) -> torch.Tensor:
    return torch.randn(batch, 3, frames, size, size, generator=torch.Generator().manual_seed(1))


def test_manifest_covers_the_archs():
    assert sorted(json.loads(MANIFEST.read_text())["archs"]) == sorted(ARCHS)


@pytest.mark.parametrize("arch", ARCHS)
def test_state_dict_matches_torchvision_manifest(arch):
    want = json.loads(MANIFEST.read_text())["archs"][arch]
    got = {k: list(v.shape) for k, v in model(arch).state_dict().items()}
    assert sorted(got) == sorted(want), (
        f"missing {sorted(set(want) - set(got))[:5]}, extra {sorted(set(got) - set(want))[:5]}")
    assert {k: s for k, s in got.items() if want[k] != s} == {}


@pytest.mark.parametrize("arch", ARCHS)
def test_features_share_the_model_and_are_torchvision_without_fc(arch):
    m = model(arch)
    sd = m.state_dict()
    assert not any(k.startswith("features.") for k in sd)
    fsd = m.features.state_dict()
    assert sorted(fsd) == sorted(k for k in sd if not k.startswith("fc."))
    assert all(fsd[k].data_ptr() == sd[k].data_ptr() for k in fsd)
    assert m.features.out_dim == FEATURE_DIM
    m.train()
    assert m.features.training and m.features.layer4[1].conv2[1].training
    m.eval()
    assert not m.features.training and not m.layer4[1].conv2[1].training


def test_deepcopy_keeps_features_on_the_copy():
    m = copy.deepcopy(model("mc3_18"))
    assert m.features.stem is m.stem and m.features.layer4 is m.layer4
    assert m.stem is not model("mc3_18").stem


@pytest.mark.parametrize("arch", ARCHS)
def test_small_clips_shapes_and_channels_last(arch):
    m = model(arch)
    x = clips(2, 8, 64)
    with torch.no_grad():
        feats = m.features(x)
        logits = m(x)
        cl = copy.deepcopy(m).to(memory_format=torch.channels_last_3d)
        logits_cl = cl(x.contiguous(memory_format=torch.channels_last_3d))
    assert feats.shape == (2, FEATURE_DIM)
    assert logits.shape == (2, NUM_CLASSES)
    assert torch.isfinite(logits).all()
    torch.testing.assert_close(logits_cl, logits, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(m.fc(feats), logits)


def test_torchvision_layout_state_dict_round_trips():
    """What --init will do: a torchvision-layout state dict loads strictly and gives the same output."""
    src = copy.deepcopy(model("r2plus1d_18"))
    with torch.no_grad():  # non-trivial BN statistics, so buffers must travel too
        for name, buf in src.named_buffers():
            if name.endswith("running_var"):
                buf.uniform_(0.5, 2.0)
    dst = video_resnet("r2plus1d_18", NUM_CLASSES).eval()
    dst.load_state_dict(src.state_dict(), strict=True)
    x = clips(1, 4, 32)
    with torch.no_grad():
        torch.testing.assert_close(dst(x), src(x), rtol=0, atol=0)


def test_backbone_features_load_without_fc():
    src, dst = model("r3d_18"), video_resnet("r3d_18", 7)
    dst.features.load_state_dict(src.features.state_dict(), strict=True)
    assert torch.equal(dst.layer3[0].downsample[0].weight, src.layer3[0].downsample[0].weight)
    assert dst.fc.out_features == 7


def test_unknown_arch():
    with pytest.raises(ValueError, match="r3d_18"):
        video_resnet("resnet50", 10)


@pytest.mark.slow
@pytest.mark.parametrize("arch", ARCHS)
def test_full_size_clip(arch):
    """The usual 16 x 112 x 112 clip: (1, 512) features, (1, num_classes) logits, time 16 -> 2 or 16."""
    m = model(arch)
    x = clips(1, 16, 112)
    with torch.no_grad():
        t = m.layer4(m.layer3(m.layer2(m.layer1(m.stem(x)))))
        logits = m.fc(m.avgpool(t).flatten(1))
    assert t.shape == (1, 512, 16 if arch == "mc3_18" else 2, 7, 7)
    assert logits.shape == (1, NUM_CLASSES)
