"""Inflated 2D -> 3D initialisation (fastssl.models.inflate), without torchvision.

The 2D reference is torchvision's `alexnet().features` rebuilt here with the same key names and
shapes (Conv2d at indices 0, 3, 6, 8, 10), randomly initialised.
"""
import copy

import pytest
import torch
from torch import nn

from fastssl.models.alexnet3d import conv_features
from fastssl.models.inflate import (IMAGENET_MEAN, IMAGENET_STD, InflateError, inflate_from_file,
                                    inflate_into, load_2d_state_dict)


def assert_close(got, want, rtol=1e-4, atol=1e-4):
    """torch.testing.assert_close's check, without its slow first call."""
    assert got.shape == want.shape, (got.shape, want.shape)
    assert torch.allclose(got, want, rtol=rtol, atol=atol), \
        f"max abs difference {(got - want).abs().max().item():.3g}"


def alexnet2d_features() -> nn.Sequential:
    """torchvision.models.alexnet().features, layer for layer."""
    return nn.Sequential(
        nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2), nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(64, 192, kernel_size=5, padding=2), nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(192, 384, kernel_size=3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(256, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
    )


@pytest.fixture(scope="module")
def net2d():
    torch.manual_seed(0)
    features = alexnet2d_features().eval()
    with torch.no_grad():  # non-zero biases, so "biases dropped" is visible
        for m in features:
            if isinstance(m, nn.Conv2d):
                m.bias.uniform_(-0.5, 0.5)
    return features


@pytest.fixture(scope="module")
def state2d(net2d):
    state = {f"features.{k}": v.clone() for k, v in net2d.state_dict().items()}
    state["classifier.1.weight"] = torch.zeros(2, 9216)  # classifier.* keys are ignored
    return state


@pytest.fixture(scope="module")
def blank3d():
    """A fresh conv_features(1.0), built once (tests copy it)."""
    torch.manual_seed(1)
    return conv_features(1.0)


@pytest.fixture(scope="module")
def inflated3d(blank3d, state2d):
    features = copy.deepcopy(blank3d)
    assert inflate_into(features, state2d, source="alexnet.pth") == 5
    return features.eval()


def test_state_dict_keys_are_torchvisions(net2d):
    keys = set(net2d.state_dict())
    assert keys == {f"{i}.{p}" for i in (0, 3, 6, 8, 10) for p in ("weight", "bias")}


def test_identical_frames_give_the_2d_conv1_response(net2d, inflated3d):
    torch.manual_seed(2)
    image = torch.randn(2, 3, 64, 64)
    frames = 8
    clip = image.unsqueeze(2).expand(-1, -1, frames, -1, -1).contiguous()
    features = inflated3d
    with torch.no_grad():
        out3d = features[0](clip)                          # conv1, before BatchNorm
        out2d = net2d[0](image) - net2d[0].bias.view(1, -1, 1, 1)
    assert out3d.shape == (2, 64, frames, 15, 15)
    # conv1 is 5 frames wide with temporal padding 2: outputs 2..frames-3 never see the padding
    for t in range(2, frames - 2):
        assert_close(out3d[:, :, t], out2d)
    # ... and the padded ends do differ (the test would catch a kernel not divided by 5)
    assert not torch.allclose(out3d[:, :, 0], out2d, rtol=1e-3, atol=1e-3)
    # the kernel is the 2D one repeated over time, divided by 5
    w = features[0].weight
    assert_close(w * 5, net2d[0].weight.unsqueeze(2).expand_as(w))


def test_every_conv_maps_identical_frames_to_its_2d_response(net2d, inflated3d):
    """conv2..conv5 too, each fed its own 2D input activation repeated over time."""
    torch.manual_seed(3)
    x = torch.randn(1, 3, 64, 64)
    features = inflated3d
    convs3d = [features[i] for i in (0, 4, 8, 11, 14)]
    with torch.no_grad():
        for i, m in enumerate(net2d):
            if isinstance(m, nn.Conv2d):
                conv3d = convs3d.pop(0)
                kt, pt = conv3d.kernel_size[0], conv3d.padding[0]
                frames = kt + 2                   # output times pt..frames-pt-1 are unpadded
                clip = x.unsqueeze(2).expand(-1, -1, frames, -1, -1)
                out3d = conv3d(clip)
                want = m(x) - m.bias.view(1, -1, 1, 1)
                for t in range(pt, frames - pt):
                    assert_close(out3d[:, :, t], want)
            x = m(x)
    assert not convs3d


def test_whole_stack_with_identity_batchnorm_gives_the_2d_features(net2d, inflated3d):
    """With BatchNorm an exact identity (fresh statistics, eval, eps 0) and the 2D biases zeroed,
    3D conv1..pool3 on identical frames is the 2D features stack where no temporal padding reaches.
    Time: 64 -> conv1 64 (ends 0,1 / 62,63 padded) -> pool 32 -> pool 16 -> conv3..5 reach 3 in
    from each end -> pool3 8: outputs 2..5 are clean."""
    features = copy.deepcopy(inflated3d)
    for m in features:
        if isinstance(m, nn.BatchNorm3d):
            assert m.running_mean.eq(0).all() and m.running_var.eq(1).all()  # left fresh
            assert m.weight.eq(1).all() and m.bias.eq(0).all()
            m.eps = 0.0
    ref = copy.deepcopy(net2d)
    with torch.no_grad():
        for m in ref:
            if isinstance(m, nn.Conv2d):
                m.bias.zero_()
        torch.manual_seed(4)
        image = torch.randn(1, 3, 64, 64)
        clip = image.unsqueeze(2).expand(-1, -1, 64, -1, -1).contiguous()
        out3d = features(clip)
        out2d = ref(image)
    assert out3d.shape == (1, 256, 8, 1, 1) and out2d.shape == (1, 256, 1, 1)
    assert out2d.abs().sum() > 0
    for t in range(2, 6):
        assert_close(out3d[:, :, t], out2d)


def test_batchnorm_is_reset(blank3d, state2d):
    features = copy.deepcopy(blank3d)
    with torch.no_grad():
        features[1].running_mean.fill_(3.0)
        features[1].weight.fill_(2.0)
    inflate_into(features, state2d, source="x.pth")
    assert features[1].running_mean.eq(0).all() and features[1].weight.eq(1).all()


def test_clips_built_with_imagenet_statistics_are_what_the_2d_weights_were_trained_on(net2d, inflated3d):
    """The inflated conv1 on a clip the clip builder normalised with IMAGENET_MEAN/STD (0-255
    units) gives the 2D conv1 response to the image as torchvision normalises it ([0, 1], then
    its own mean/std): wrong units or channel order here would feed the 2D weights other inputs."""
    from fastssl.kernels import build_clips, identity_orders
    torch.manual_seed(5)
    image = torch.randint(0, 256, (2, 64, 64, 3), dtype=torch.uint8)  # HWC RGB, as decoded
    frames = 8
    windows = image.unsqueeze(1).expand(-1, frames, -1, -1, -1).contiguous()  # (B, T, H, W, 3)
    clip = build_clips(windows, *identity_orders(2, frames), mean=IMAGENET_MEAN, std=IMAGENET_STD)
    tv_mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)  # torchvision's, [0, 1] units
    tv_std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    tv_input = (image.permute(0, 3, 1, 2).float() / 255 - tv_mean) / tv_std
    assert_close(clip[:, :, 0], tv_input, rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        out3d = inflated3d[0](clip)
        out2d = net2d[0](tv_input) - net2d[0].bias.view(1, -1, 1, 1)
    for t in range(2, frames - 2):
        assert_close(out3d[:, :, t], out2d)


def test_load_plain_and_nested_state_dicts(tmp_path, blank3d, state2d, net2d):
    features = copy.deepcopy(blank3d)
    for name, obj in [("plain.pth", state2d), ("nested.pth", {"state_dict": state2d, "epoch": 3}),
                      ("model.pth", {"model": {f"module.{k}": v for k, v in state2d.items()}})]:
        path = tmp_path / name
        torch.save(obj, path)
        loaded = load_2d_state_dict(path)
        assert set(loaded) == set(state2d)
        assert all(torch.equal(loaded[k], v) for k, v in state2d.items())
    assert inflate_from_file(features, path) == 5  # the last one: nested and "module."-prefixed
    assert_close(features[14].weight[:, :, 1] * 3, net2d[10].weight)


def test_non_checkpoint_files_are_refused_by_name(tmp_path, net2d):
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    whole = tmp_path / "whole_model.pth"
    torch.save(net2d, whole)
    tensor = tmp_path / "tensor.pth"
    torch.save(torch.zeros(3), tensor)
    for path, words in [(text, "text file"), (empty, "empty"), (whole, "state_dict()"),
                        (tensor, "not a state dict"), (tmp_path / "missing.pth", "not found")]:
        with pytest.raises(InflateError, match=str(path.name)) as e:
            load_2d_state_dict(path)
        assert words in str(e.value)


def test_wrong_shape_is_refused_and_model_left_unchanged(blank3d, state2d):
    bad = dict(state2d)
    bad["features.6.weight"] = torch.randn(384, 192, 5, 5)
    features = blank3d
    before = copy.deepcopy(features.state_dict())
    message = r"bad\.pth.*features\.6\.weight.*conv3.*\(384, 192, 5, 5\)"
    with pytest.raises(InflateError, match=message):
        inflate_into(features, bad, source="bad.pth")
    for k, v in features.state_dict().items():
        assert torch.equal(v, before[k]), k  # nothing written before the error


def test_width_other_than_1_is_refused(state2d):
    with pytest.raises(InflateError, match=r"w\.pth.*conv1.*--width 1\.0"):
        inflate_into(conv_features(0.5), state2d, source="w.pth")


def test_missing_and_extra_keys_are_refused(blank3d, state2d):
    missing = {k: v for k, v in state2d.items() if k != "features.8.bias"}
    with pytest.raises(InflateError, match=r"m\.pth.*missing features\.8\.bias"):
        inflate_into(blank3d, missing, source="m.pth")
    with pytest.raises(InflateError, match=r"c\.pth.*missing"):
        inflate_into(blank3d, {"classifier.1.weight": torch.zeros(2)}, source="c.pth")
    extra = dict(state2d, **{"features.1.weight": torch.ones(64)})
    with pytest.raises(InflateError, match=r"e\.pth.*features\.1\.weight"):
        inflate_into(blank3d, extra, source="e.pth")


def test_damaged_and_odd_files_raise_inflate_errors_that_say_what_the_file_is(tmp_path, state2d):
    """Every unusable file comes out as InflateError (a ValueError) naming the file and what it
    is, never as torch's own error: the run setup turns exactly InflateError into an option error."""
    good = tmp_path / "good.pth"
    torch.save({"features.0.weight": state2d["features.0.weight"]}, good)
    data = good.read_bytes()
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(data[: len(data) // 2])
    bad_head = tmp_path / "bad_head.pth"  # a zip whose first entry's header is overwritten
    bad_head.write_bytes(bytes(64) + data[64:])
    binary = tmp_path / "random.bin"
    binary.write_bytes(bytes(range(256)) * 4)
    int_keys = tmp_path / "int_keys.pth"
    torch.save({0: torch.zeros(2)}, int_keys)
    empty_dict = tmp_path / "empty_dict.pth"
    torch.save({}, empty_dict)
    for path, words in [
        (truncated, f"a {len(data) // 2}-byte zip archive that torch cannot read as a torch state dict (truncated"),
        (bad_head, f"a {len(data)}-byte zip archive that torch cannot read as a torch state dict"),
        (binary, f"{4 * 256} bytes of binary data, not a torch state dict"),
        (int_keys, "keys are not parameter names"),
        (empty_dict, "not a state dict (got dict (empty))"),
    ]:
        with pytest.raises(ValueError) as e:
            load_2d_state_dict(path)
        assert type(e.value) is InflateError, type(e.value)
        assert str(e.value).startswith(f"{path}: ") and words in str(e.value), str(e.value)


def test_unusable_tensors_are_refused(blank3d, state2d):
    for key, value, words in [("features.3.weight", torch.zeros(192, 64, 5, 5, dtype=torch.int64),
                               "features.3.weight (conv2) is not a float tensor"),
                              ("features.0.weight", torch.full((64, 3, 11, 11), float("nan")),
                               "features.0.weight (conv1) has NaN or inf values")]:
        with pytest.raises(InflateError) as e:
            inflate_into(blank3d, dict(state2d, **{key: value}), source="t.pth")
        assert str(e.value) == f"t.pth: {words}"


@pytest.mark.slow
def test_the_cli_starts_from_inflated_weights(tmp_path):
    import json

    from click.testing import CliRunner

    from fastssl.cli import main
    from fastssl.models.inflate import IMAGENET_MEAN
    from videos import make_coded_dataset
    data = make_coded_dataset(tmp_path / "data", frames=(24, 30, 30))
    weights = tmp_path / "alexnet.pth"
    net = alexnet2d_features()
    torch.save({f"features.{k}": v for k, v in net.state_dict().items()}, weights)

    def run(*args):
        return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    common = ["finetune", "--data", data, "--device", "cpu", "--workers", "0", "--steps", "1",
              "--batch-size", "2", "--eval-every", "0"]
    ok = run(*common, "--inflate", weights, "--width", "1.0", "--out", tmp_path / "ft")
    assert ok.exit_code == 0, ok.output
    cfg = json.loads((tmp_path / "ft" / "config.json").read_text())
    assert tuple(cfg["mean"]) == IMAGENET_MEAN and cfg["inflate"] == str(weights)
    narrow = run(*common, "--inflate", weights, "--out", tmp_path / "x")  # tiny preset: width 0.25
    assert narrow.exit_code == 2 and "--width 1.0" in narrow.output
    both = run(*common, "--inflate", weights, "--width", "1.0", "--init", weights, "--out", tmp_path / "y")
    assert both.exit_code == 2 and "give one" in both.output
    own = run(*common, "--inflate", weights, "--width", "1.0", "--mean", "1,2,3", "--out", tmp_path / "z")
    assert own.exit_code == 0 and json.loads((tmp_path / "z" / "config.json").read_text())["mean"] == [1, 2, 3]
