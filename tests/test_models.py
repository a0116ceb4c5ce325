import pytest
import torch

from fastssl.models import AlexNet3D, SiameseNet, flat_features
from fastssl.models.alexnet3d import conv_features


def test_table1_feature_size_at_224():
    features = conv_features(1.0)
    out = features.eval()(torch.zeros(1, 3, 8, 224, 224))
    assert tuple(out.shape) == (1, 256, 1, 6, 6)
    assert flat_features(features, 8, 224) == 9216


def test_full_alexnet3d_shapes_and_fc2():
    model = AlexNet3D(101)
    linears = [m for m in model.classifier if isinstance(m, torch.nn.Linear)]
    assert [(l.in_features, l.out_features) for l in linears] == [(9216, 4096), (4096, 4096), (4096, 101)]
    assert 55e6 < sum(p.numel() for p in model.parameters()) < 70e6


def test_siamese_shapes_and_weight_sharing():
    model = SiameseNet(6, width=0.25, size=64).eval()
    x = torch.randn(2 * 6, 3, 8, 64, 64).to(memory_format=torch.channels_last_3d)
    logits = model(x)
    assert logits.shape == (2, 6)
    # one set of branch weights: swapping two clips swaps their branch outputs (in eval mode,
    # where BN does not mix the batch)
    perm = torch.tensor([1, 0, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11])
    z = model.branch_head(model.features(x))
    z_swapped = model.branch_head(model.features(x[perm]))
    torch.testing.assert_close(z_swapped, z[perm], rtol=1e-4, atol=1e-5)
    linears = [m for m in model.fusion if isinstance(m, torch.nn.Linear)]
    assert [(l.in_features, l.out_features) for l in linears] == [(768, 768), (768, 6)]


def test_too_few_frames_refused():
    with pytest.raises(ValueError, match="at least 8 frames"):
        SiameseNet(6, frames=4, size=64)


def test_too_small_input_refused():
    with pytest.raises((ValueError, RuntimeError)):
        AlexNet3D(10, width=0.25, size=32)


def test_backward_in_channels_last():
    model = AlexNet3D(5, width=0.25, fc_size=64, size=64).to(memory_format=torch.channels_last_3d)
    x = torch.randn(4, 3, 8, 64, 64).to(memory_format=torch.channels_last_3d)
    loss = torch.nn.functional.cross_entropy(model(x), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
