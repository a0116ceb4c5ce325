"""Every backbone on the same path: each video ResNet pretrains, fine-tunes from its pretext
checkpoint and evaluates (plain and frozen) through the CLI; --init takes torchvision-layout
weights; what cannot work is refused. Small clips (8 x 64 px) keep the ResNets cheap here."""
import json

import pytest
import torch
from click.testing import CliRunner

from fastssl.cli import main
from fastssl.models.resnet3d import ARCHS, video_resnet
from videos import make_coded_dataset

SMALL = ["--device", "cpu", "--workers", "0", "--batch-size", "2", "--clip-length", "8", "--size", "64",
         "--resize", "72x96"]


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_coded_dataset(tmp_path_factory.mktemp("archs"), frames=(24, 30, 30))


@pytest.mark.slow
@pytest.mark.parametrize("arch", ARCHS)
def test_each_resnet_pretrains_finetunes_and_evaluates(data, tmp_path, arch):
    common = ["--data", data, *SMALL, "--arch", arch, "--steps", 2]
    pre = cli("pretrain", *common, "--window", 12, "--clips", 3, "--out", tmp_path / "pre")
    assert pre.exit_code == 0, pre.output
    ft = cli("finetune", *common, "--init", tmp_path / "pre" / "checkpoint.pt", "--out", tmp_path / "ft",
             "--eval-every", 0)
    assert ft.exit_code == 0, ft.output
    pretext = torch.load(tmp_path / "pre" / "checkpoint.pt", weights_only=True)["model"]
    tuned = torch.load(tmp_path / "ft" / "checkpoint.pt", weights_only=True)["model"]
    assert set(tuned) == set(video_resnet(arch, 2).state_dict())  # torchvision's layout, 2 classes
    assert "features.stem.0.weight" in pretext
    ev = cli("evaluate", "--data", data, "--workers", 0, "--checkpoint", tmp_path / "ft" / "checkpoint.pt",
             "--out", tmp_path / "ev")
    assert ev.exit_code == 0 and json.loads((tmp_path / "ev" / "eval.json").read_text())["clips"] > 0
    fr = cli("evaluate", "--data", data, "--workers", 0, "--checkpoint", tmp_path / "pre" / "checkpoint.pt",
             "--frozen", "--out", tmp_path / "fr")
    assert fr.exit_code == 0, fr.output
    assert 0 <= json.loads((tmp_path / "fr" / "eval.json").read_text())["retrieval_top1"] <= 1


def test_init_takes_torchvision_layout_weights_for_a_resnet(data, tmp_path):
    torch.manual_seed(5)
    weights = video_resnet("mc3_18", 400).state_dict()  # as saved from torchvision (Kinetics' 400 classes)
    torch.save(weights, tmp_path / "mc3.pth")
    from fastssl.train.run_setup import setup_training
    setup = setup_training("finetune", data=str(data), out=str(tmp_path / "ft"), arch="mc3_18",
                           init=str(tmp_path / "mc3.pth"), report=lambda _: None, device="cpu")
    assert "torchvision layout" in setup.init.source and not any(k.startswith("fc.") for k in setup.init.features)
    assert all(torch.equal(setup.init.features[k], weights[k]) for k in setup.init.features)
    assert (setup.cfg.D, setup.cfg.size) == (16, 112)  # the ResNets' usual clips


@pytest.mark.parametrize("args,flag,words", [
    (["--arch", "r3d_18", "--inflate", "alexnet.pth"], "--inflate", "builds 3D-AlexNet"),
    (["--arch", "r3d_18", "--init", "BAD"], "--init", "is a text file (first line: 'not weights'), not a fastssl checkpoint or a state dict"),
    (["--init", "BAD"], "--init", "is a text file (first line: 'not weights')"),
    (["--arch", "r2plus1d_18", "--init", "MC3"], "--init", "does not fit --arch r2plus1d_18"),
])
def test_what_cannot_work_is_refused(data, tmp_path, args, flag, words):
    (tmp_path / "BAD").write_text("not weights\n")
    (tmp_path / "alexnet.pth").write_text("")
    torch.save(video_resnet("mc3_18", 400).state_dict(), tmp_path / "MC3")
    args = [str(tmp_path / a) if a in ("BAD", "MC3", "alexnet.pth") else a for a in args]
    result = cli("finetune", "--data", data, "--device", "cpu", "--out", tmp_path / "o", *args)
    assert result.exit_code == 2 and flag in result.output and words in " ".join(result.output.split())


def test_a_pretext_checkpoint_of_another_arch_does_not_initialise(data, tmp_path):
    pre = cli("pretrain", "--data", data, *SMALL, "--steps", 1, "--window", 12, "--clips", 3,
              "--out", tmp_path / "pre")
    assert pre.exit_code == 0, pre.output
    ft = cli("finetune", "--data", data, *SMALL, "--arch", "r3d_18", "--init", tmp_path / "pre" / "checkpoint.pt",
             "--out", tmp_path / "ft")
    assert ft.exit_code == 2 and "arch=alexnet3d (here r3d_18)" in ft.output


@pytest.mark.parametrize("arch", ["alexnet3d", "mc3_18"])
def test_export_then_init_round_trips(data, tmp_path, arch):
    pre = cli("pretrain", "--data", data, *SMALL, "--arch", arch, "--steps", 1, "--window", 12, "--clips", 3,
              "--out", tmp_path / "pre")
    assert pre.exit_code == 0, pre.output
    out = cli("export", tmp_path / "pre" / "checkpoint.pt", tmp_path / "backbone.pth")
    assert out.exit_code == 0, out.output
    exported = torch.load(tmp_path / "backbone.pth", weights_only=True)
    pretext = torch.load(tmp_path / "pre" / "checkpoint.pt", weights_only=True)["model"]
    assert exported and all(torch.equal(v, pretext["features." + k]) for k, v in exported.items())
    if arch != "alexnet3d":  # torchvision's layout: everything of the classifier but fc
        assert set(exported) == {k for k in video_resnet(arch, 5).state_dict() if not k.startswith("fc.")}
    from fastssl.train.run_setup import setup_training
    setup = setup_training("finetune", data=str(data), out=str(tmp_path / "ft"), arch=arch, D=8, size=64,
                           resize=(72, 96), init=str(tmp_path / "backbone.pth"), report=lambda _: None, device="cpu")
    assert all(torch.equal(setup.init.features[k], v) for k, v in exported.items())
    assert cli("export", tmp_path / "pre" / "checkpoint.pt", tmp_path / "backbone.pth").exit_code == 2  # exists
