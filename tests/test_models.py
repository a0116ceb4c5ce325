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


def test_siamese_shapes():
    model = SiameseNet(6, width=0.25, size=64).eval()
    x = torch.randn(2 * 6, 3, 8, 64, 64).to(memory_format=torch.channels_last_3d)
    assert model(x).shape == (2, 6)
    linears = [m for m in model.fusion if isinstance(m, torch.nn.Linear)]
    assert [(l.in_features, l.out_features) for l in linears] == [(768, 768), (768, 6)]


def branch_params(model):
    return {n: p for n, p in model.named_parameters() if not n.startswith("fusion.")}


def test_siamese_has_one_branch_whatever_the_number_of_clips():
    # N branches with their own weights would have N times these parameters.
    three, six = SiameseNet(3, width=0.25, size=64), SiameseNet(6, width=0.25, size=64)
    shapes = lambda m: {n: tuple(p.shape) for n, p in branch_params(m).items()}  # noqa: E731
    assert shapes(three) == shapes(six)
    assert {n.split(".")[0] for n in branch_params(six)} == {"features", "branch_head"}


def _branch_outputs(model, x):
    """Forward x through the whole model; the branch outputs (B, N, branch_dim) on the way."""
    seen = []
    handle = model.branch_head.register_forward_hook(lambda m, args, out: seen.append(out))
    try:
        logits = model(x)
    finally:
        handle.remove()
    return logits, seen[0].reshape(-1, model.n_clips, seen[0].shape[1])


def test_siamese_branches_are_one_function_with_one_set_of_weights():
    torch.manual_seed(0)
    model = SiameseNet(6, width=0.25, size=64).eval()  # eval: BatchNorm does not mix the batch
    x = torch.randn(2 * 6, 3, 8, 64, 64)
    x[3] = x[0]    # sample 0: the clip in position 0 again in position 3
    x[11] = x[0]   # sample 1, position 5
    x = x.to(memory_format=torch.channels_last_3d)
    _, z = _branch_outputs(model, x)
    # the same clip gives the same branch output in every position and sample ...
    torch.testing.assert_close(z[0, 3], z[0, 0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(z[1, 5], z[0, 0], rtol=1e-5, atol=1e-6)
    # ... namely the branch applied to that clip alone
    with torch.no_grad():
        alone = model.branch_head(model.features(x[:1]))
    torch.testing.assert_close(z[0, 0], alone[0], rtol=1e-5, atol=1e-6)
    assert not torch.allclose(z[0, 1], z[0, 0])  # (different clips do differ)

    # A loss on one position's branch output trains every branch parameter, and only those:
    # position 0 and position 4 reach exactly the same tensors.
    def trained_by(position):
        model.zero_grad(set_to_none=True)
        _, z = _branch_outputs(model, x)
        z[:, position].square().sum().backward()
        return {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}

    assert trained_by(0) == trained_by(4) == set(branch_params(model))


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
