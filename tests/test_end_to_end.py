"""The whole CPU slice on a real (tiny) synthetic dataset: synth -> pretrain -> finetune -> evaluate,
through the CLI, with real encoded videos, the PyAV loader, the clip builder and real models."""
import json

import pytest
import torch
from click.testing import CliRunner

from fastssl.cli import main
from fastssl.config import Config


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    data = tmp_path_factory.mktemp("e2e") / "data"
    run("synth", data, "--classes", "3", "--videos-per-class", "2", "--frames", "24",
        "--size", "96x72", "--seed", "1")
    return data


def test_pretrain_finetune_evaluate(synth, tmp_path):
    common = ["--data", synth, "--device", "cpu", "--workers", "0", "--batch-size", "2"]
    out = run("pretrain", *common, "--out", tmp_path / "rp", "--mode", "ss", "--steps", "3")
    assert "held-out pretext accuracy" in out and "TensorBoard" in out

    ckpt = tmp_path / "rp" / "checkpoint.pt"
    state = torch.load(ckpt, weights_only=True)  # plain tensors, numbers and strings only
    assert state["kind"] == "pretext" and state["step"] == 3
    cfg = Config.load(tmp_path / "rp" / "config.json")
    assert cfg.mode == "ss" and cfg.preset == "tiny" and cfg.steps == 3
    lines = [json.loads(l) for l in (tmp_path / "rp" / "metrics.jsonl").read_text().splitlines()]
    assert {"pretext/loss", "clips_per_s", "data_wait_fraction"} <= set(lines[0])
    assert any("heldout/pretext_accuracy" in l for l in lines)
    assert list((tmp_path / "rp" / "tb").iterdir())

    out = run("finetune", *common, "--out", tmp_path / "ft", "--init", ckpt, "--steps", "2")
    ft = torch.load(tmp_path / "ft" / "checkpoint.pt", weights_only=True)
    assert ft["kind"] == "classifier"

    out = run("evaluate", *common, "--out", tmp_path / "ev", "--checkpoint", tmp_path / "ft" / "checkpoint.pt")
    assert "clip accuracy" in out and "video accuracy" in out
    result = json.loads((tmp_path / "ev" / "eval.json").read_text())
    assert result["videos"] == 3 and result["clips"] == 3 * (24 // 8)
    # the accuracies are what the per-video predictions and the confusion matrix say
    per_video = result["per_video"]
    assert result["video_accuracy"] == sum(v["pred"] == v["label"] for v in per_video) / 3
    confusion = result["confusion"]
    assert len(result["classes"]) == len(confusion) == 3 and sum(map(sum, confusion)) == 3
    assert sum(confusion[i][i] for i in range(3)) == sum(v["pred"] == v["label"] for v in per_video)
    assert (tmp_path / "ev" / "config.json").is_file()

    out = run("evaluate", *common, "--checkpoint", ckpt, "--out", tmp_path / "ev2")
    assert "pretext accuracy on held-out questions" in out


def test_pretext_conv_weights_arrive_in_the_finetuned_model(synth, tmp_path):
    from fastssl.data.dataset import load_dataset
    from fastssl.models import build_classifier
    from fastssl.train.checkpoints import features_of, read_checkpoint

    common = ["--data", synth, "--device", "cpu", "--workers", "0", "--batch-size", "2"]
    run("pretrain", *common, "--out", tmp_path / "pb", "--mode", "pb", "--steps", "2")
    pretext = torch.load(tmp_path / "pb" / "checkpoint.pt", weights_only=True)["model"]
    cfg = Config.load(tmp_path / "pb" / "config.json")
    model = build_classifier(cfg, load_dataset(synth).num_classes)
    before = {k: v.clone() for k, v in model.features.state_dict().items()}
    features = features_of(read_checkpoint(tmp_path / "pb" / "checkpoint.pt"))
    assert len(features) == len(before)
    model.features.load_state_dict(features)
    for name, value in model.features.state_dict().items():
        torch.testing.assert_close(value, pretext["features." + name], rtol=0, atol=0)
    # conv weights differ from a fresh init, so the check above is not trivially true
    assert any(not torch.equal(before[k], model.features.state_dict()[k]) for k in before if k.endswith("weight"))


@pytest.mark.slow
def test_same_seed_same_run(synth, tmp_path):
    common = ["--data", synth, "--device", "cpu", "--workers", "0", "--batch-size", "2", "--steps", "2"]
    run("pretrain", *common, "--out", tmp_path / "a")
    run("pretrain", *common, "--workers", "2", "--out", tmp_path / "b")  # workers do not change the run
    a = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)["model"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


def test_finetune_refuses_a_classifier_checkpoint_as_init(synth, tmp_path):
    common = ["--data", synth, "--device", "cpu", "--workers", "0", "--batch-size", "2", "--steps", "1"]
    run("finetune", *common, "--out", tmp_path / "scratch")
    result = CliRunner().invoke(main, [str(a) for a in ["finetune", *common, "--out", tmp_path / "x",
                                                         "--init", tmp_path / "scratch" / "checkpoint.pt"]])
    assert result.exit_code == 2 and "needs a pretext checkpoint" in result.output
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_same_losses_whatever_the_dali_pipelines(tmp_path):
    from fastssl.data import loaders
    if not loaders.dali_available():
        pytest.skip("DALI is not installed")
    data = tmp_path / "vp9"
    run("synth", data, "--classes", "2", "--videos-per-class", "3", "--frames", "24", "--size", "96x72",
        "--codec", "vp9")
    common = ["--data", data, "--device", "cpu", "--loader", "dali", "--batch-size", "4", "--steps", "4",
              "--log-every", "1"]
    runs = {}
    for decoders in (1, 2):
        run("pretrain", *common, "--decoders", decoders, "--workers", decoders, "--out", tmp_path / str(decoders))
        lines = [json.loads(l) for l in (tmp_path / str(decoders) / "metrics.jsonl").read_text().splitlines()]
        runs[decoders] = [(l["pretext/loss"], l["pretext/accuracy"]) for l in lines if "pretext/loss" in l]
    assert len(runs[1]) == 4 and runs[1] == runs[2]


@pytest.mark.slow
def test_compiled_training_and_evaluation_match_eager(synth, tmp_path):
    common = ["--data", synth, "--device", "cpu", "--workers", "0", "--batch-size", "4"]
    for name, extra in (("eager", []), ("compiled", ["--compile"])):
        run("finetune", *common, "--out", tmp_path / name, "--steps", "3", "--eval-every", "0",
            "--log-every", "1", *extra)
    assert Config.load(tmp_path / "compiled" / "config.json").compile
    # The first loss is computed before any update: the compiled forward must give it. Later
    # steps drift apart legitimately (Adam's first steps are ~lr * sign(gradient), so float-level
    # gradient differences become lr-sized weight differences).
    la, lb = ([json.loads(line)["finetune/loss"] for line in (tmp_path / n / "metrics.jsonl").read_text().splitlines()]
              for n in ("eager", "compiled"))
    assert len(lb) == 3 and la[0] == pytest.approx(lb[0], rel=1e-4)
    # one checkpoint, evaluated eager and compiled: the same predictions
    for name, extra in (("eager", []), ("compiled", ["--compile"])):
        run("evaluate", *common, "--checkpoint", tmp_path / "eager" / "checkpoint.pt", "--out",
            tmp_path / f"{name}-eval", *extra)
    ea, eb = (json.loads((tmp_path / f"{n}-eval" / "eval.json").read_text()) for n in ("eager", "compiled"))
    assert ea["per_video"] == eb["per_video"]
