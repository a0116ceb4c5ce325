"""Checkpoints: written atomically, numbered and pruned, read once with errors that say what a
file is, and readable across format versions (fixtures written by the main of 2026-11-29)."""
import json
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from fastssl.cli import main
from fastssl.config import Config
from fastssl.train.checkpoints import (FORMAT, CheckpointError, CheckpointWriter, newest_readable,
                                      read_checkpoint, save_checkpoint)

FIXTURES = Path(__file__).parent / "fixtures" / "checkpoints-v0"


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def tiny_checkpoint(path, step=1, **extra):
    return save_checkpoint(path, kind="pretext", model=torch.nn.Linear(2, 2), cfg=Config(), step=step, **extra)


def test_the_writer_keeps_the_newest_k_and_points_checkpoint_pt_at_the_newest(tmp_path):
    writer = CheckpointWriter(tmp_path, keep=2)
    for step in (3, 6, 9):
        writer.save(step, kind="pretext", model=torch.nn.Linear(2, 2), cfg=Config())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-6.pt", "checkpoint-9.pt", "checkpoint.pt"]
    assert read_checkpoint(tmp_path / "checkpoint.pt").step == 9
    assert read_checkpoint(tmp_path / "checkpoint-9.pt").state["format"] == FORMAT


def test_files_that_are_not_checkpoints_are_named_and_described(tmp_path):
    good = tiny_checkpoint(tmp_path / "good.pt")
    cases = {"empty.pt": (b"", "an empty file"),
             "notes.pt": (b"step 3\nloss 1.2\n", "a text file (first line: 'step 3')"),
             "cut.pt": (good.read_bytes()[:300], "a 300-byte zip archive that torch cannot read"),
             "noise.pt": (bytes(range(256)) * 2, "512 bytes of binary data, not a checkpoint")}
    for name, (data, words) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(CheckpointError) as e:
            read_checkpoint(tmp_path / name)
        assert str(e.value).startswith(f"{tmp_path / name}: is ") and words in str(e.value), str(e.value)
    torch.save({"weights": torch.zeros(1)}, tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="not a fastssl checkpoint"):
        read_checkpoint(tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="not found"):
        read_checkpoint(tmp_path / "missing.pt")


def test_a_checkpoint_from_a_newer_fastssl_is_refused_naming_its_format(tmp_path):
    path = tiny_checkpoint(tmp_path / "new.pt")
    state = torch.load(path, weights_only=True)
    torch.save({**state, "format": FORMAT + 1}, path)
    with pytest.raises(CheckpointError, match=f"format {FORMAT + 1}, written by a newer fastssl.*upgrade"):
        read_checkpoint(path)


def test_a_damaged_newest_checkpoint_falls_back_to_the_one_before(tmp_path):
    writer = CheckpointWriter(tmp_path, keep=3)
    for step in (1, 2):
        writer.save(step, kind="pretext", model=torch.nn.Linear(2, 2), cfg=Config())
    (tmp_path / "checkpoint-2.pt").write_bytes(b"")
    said = []
    assert newest_readable(tmp_path, report=said.append).step == 1
    assert "checkpoint-2.pt: is an empty file" in said[0]


def test_format_0_checkpoints_read_with_the_state_they_hold():
    ckpt = read_checkpoint(FIXTURES / "pretext-run" / "checkpoint-2.pt")
    assert "format" not in torch.load(FIXTURES / "pretext-run" / "checkpoint-2.pt", weights_only=True)
    assert (ckpt.kind, ckpt.step, ckpt.config.mode, ckpt.config.width) == ("pretext", 2, "rp", 0.05)
    assert ckpt.state["format"] == FORMAT and "optimizer" in ckpt.state and "interval" in ckpt.state


@pytest.fixture(scope="module")
def fixture_data(tmp_path_factory):
    """The dataset the fixtures were trained on: `fastssl synth` is deterministic."""
    data = tmp_path_factory.mktemp("fixture") / "data"
    result = cli("synth", data, "--classes", 3, "--videos-per-class", 4, "--frames", 24, "--size", "96x72",
                 "--seed", 0)
    assert result.exit_code == 0, result.output
    return data


def test_a_format_0_run_resumes_onto_the_weights_the_old_main_reached(fixture_data, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(FIXTURES / "pretext-run", run)
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "data": str(fixture_data), "out": str(run)}))
    result = cli("pretrain", "--resume", run, "--workers", 0)
    assert result.exit_code == 0, result.output
    assert "from checkpoint-2.pt (step 2 of 4)" in result.output
    resumed = torch.load(run / "checkpoint.pt", weights_only=True)
    old = torch.load(FIXTURES / "pretext-run-step4-model.pt", weights_only=True)
    assert resumed["step"] == old["step"] == 4 and resumed["format"] == FORMAT
    for name, value in old["model"].items():
        torch.testing.assert_close(resumed["model"][name], value, rtol=1e-5, atol=1e-6, msg=name)


def test_a_format_0_classifier_evaluates_to_the_old_main_s_predictions(fixture_data, tmp_path):
    result = cli("evaluate", "--data", fixture_data, "--checkpoint", FIXTURES / "classifier.pt",
                 "--workers", 0, "--out", tmp_path / "eval")
    assert result.exit_code == 0, result.output
    new = json.loads((tmp_path / "eval" / "eval.json").read_text())
    old = json.loads((FIXTURES / "classifier-eval.json").read_text())
    for key in ("per_video", "confusion", "clip_accuracy", "video_accuracy", "clips", "classes"):
        assert new[key] == old[key], key
