"""Bad command-line values are refused with a usage error (exit 2) that says what is wrong,
before any work starts."""
import pytest
from click.testing import CliRunner

from fastssl import __version__
from fastssl.cli import main
from videos import make_coded_dataset


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return str(make_coded_dataset(tmp_path_factory.mktemp("cli"), frames=(24, 30, 30)))


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_version_and_help():
    assert __version__ in run("--version").output
    for command in ("synth", "pretrain", "finetune", "evaluate", "bench"):
        result = run(command, "--help")
        assert result.exit_code == 0 and result.output.startswith("Usage: main " + command)


def test_evaluate_help_shows_only_what_it_takes():
    text = run("evaluate", "--help").output
    for taken in ("--checkpoint", "--data", "--out", "--force", "--batch-size", "--device", "--loader"):
        assert taken in text
    for refused in ("--steps", "--epochs", "--size", "--width", "--preset", "--clip-length", "--split"):
        assert refused not in text, refused


@pytest.mark.parametrize("args,message", [
    (["--mode", "xx"], "'xx' is not one of"),
    (["--clip-length", "4"], "at least 8 frames"),
    (["--window", "6"], "shorter than a clip"),
    (["--clips", "14"], "distinct starts"),
    (["--batch-size", "0"], "x>=1"),
    (["--device", "tpu"], "'tpu' is not one of"),
    (["--precision", "fp8"], "'fp8' is not one of"),
    (["--size", "32"], "x>=64"),
    (["--size", "96"], "larger than the frames"),
    (["--resize", "big"], "is not HxW"),
])
def test_pretrain_refuses_bad_values(data, tmp_path, args, message):
    result = run("pretrain", "--data", data, "--out", tmp_path / "run", "--device", "cpu", *args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not (tmp_path / "run").exists()  # refused before any work


def test_missing_dataset_folder(tmp_path):
    result = run("pretrain", "--data", tmp_path / "nope", "--device", "cpu")
    assert result.exit_code == 2 and "does not exist" in result.output


def test_folder_that_is_not_a_dataset(tmp_path):
    result = run("pretrain", "--data", tmp_path, "--device", "cpu")
    assert result.exit_code == 2 and "classInd.txt: missing" in result.output


def test_too_short_videos_are_named_and_can_be_skipped(data, tmp_path):
    # the coded dataset's 24-frame videos are too short for a 28-frame window
    result = run("pretrain", "--data", data, "--out", tmp_path / "r", "--window", "28", "--device", "cpu")
    assert result.exit_code == 2
    assert "g01_c01.mp4: 24 frames, pretrain (test split) needs at least 28" in result.output
    assert "--skip-bad" in result.output


def test_cuda_without_a_gpu_is_refused(data):
    import torch
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    result = run("pretrain", "--data", data, "--device", "cuda")
    assert result.exit_code == 2 and "no GPU" in result.output


def test_evaluate_needs_a_real_checkpoint(data, tmp_path):
    bogus = tmp_path / "bogus.pt"
    bogus.write_bytes(b"not a checkpoint")
    result = run("evaluate", "--data", data, "--checkpoint", bogus, "--device", "cpu")
    assert result.exit_code == 2 and "bogus.pt: is a text file (first line: 'not a checkpoint')" in result.output
    binary = tmp_path / "noise.pt"
    binary.write_bytes(bytes(range(256)) * 4)
    result = run("evaluate", "--data", data, "--checkpoint", binary, "--device", "cpu")
    assert result.exit_code == 2 and "noise.pt: is 1024 bytes of binary data" in result.output
    missing = run("evaluate", "--data", data, "--checkpoint", tmp_path / "nope.pt", "--device", "cpu")
    assert missing.exit_code == 2 and "nope.pt: checkpoint not found" in missing.output


def test_synth_refuses_bad_values(tmp_path):
    assert "unknown motion" in run("synth", tmp_path / "s", "--motions", "teleport").output
    assert run("synth", tmp_path / "s", "--size", "wide").exit_code == 2
    assert run("synth", tmp_path / "s", "--codec", "xvid").exit_code == 2
    assert run("synth", tmp_path / "s", "--videos-per-class", "1").exit_code == 2


def test_synth_refuses_to_overwrite_without_force(tmp_path):
    out = tmp_path / "s"
    args = ["synth", out, "--classes", "2", "--videos-per-class", "2", "--frames", "4", "--size", "32x32"]
    assert run(*args).exit_code == 0
    again = run(*args)
    assert again.exit_code == 2 and again.output.count("--force") == 1, again.output
    assert run(*args, "--force").exit_code == 0


def test_synth_lists_motions_without_an_out_folder():
    result = run("synth", "--list-motions")
    assert result.exit_code == 0 and "friction_slowdown" in result.output.split()
    assert run("synth").exit_code == 2


@pytest.mark.slow
def test_a_folder_holding_a_run_is_refused_unless_forced(data, tmp_path):
    args = ["pretrain", "--data", data, "--out", tmp_path / "p", "--device", "cpu", "--steps", "1",
            "--batch-size", "2", "--workers", "0"]
    assert run(*args).exit_code == 0
    (tmp_path / "p" / "notes.txt").write_text("mine")
    first_events = sorted(p.name for p in (tmp_path / "p" / "tb").iterdir())
    again = run(*args)
    assert again.exit_code == 2 and "already holds a run" in again.output and "--force" in again.output
    forced = run(*args, "--force")
    assert forced.exit_code == 0, forced.output
    assert (tmp_path / "p" / "notes.txt").read_text() == "mine"  # only run files are deleted
    events = sorted(p.name for p in (tmp_path / "p" / "tb").iterdir())
    assert len(events) == 1 and events != first_events  # one run's event file, the new one
    ev = ["evaluate", "--data", data, "--checkpoint", tmp_path / "p" / "checkpoint.pt", "--device", "cpu",
          "--workers", "0", "--out", tmp_path / "e"]
    assert run(*ev).exit_code == 0
    assert run(*ev).exit_code == 2
    assert run(*ev, "--force").exit_code == 0


def test_evaluate_has_no_model_settings(data, tmp_path):
    run("pretrain", "--data", data, "--out", tmp_path / "p", "--device", "cpu", "--steps", "1",
        "--batch-size", "2", "--workers", "0")
    result = run("evaluate", "--data", data, "--checkpoint", tmp_path / "p" / "checkpoint.pt",
                 "--device", "cpu", "--width", "0.5")
    assert result.exit_code == 2 and "No such option '--width'" in result.output


def test_training_refuses_batch_size_one_and_steps_with_epochs(data, tmp_path):
    result = run("pretrain", "--data", data, "--device", "cpu", "--batch-size", "1")
    assert result.exit_code == 2 and "at least 2 per batch" in result.output
    result = run("finetune", "--data", data, "--device", "cpu", "--steps", "3", "--epochs", "1")
    assert result.exit_code == 2 and "not both" in result.output


def test_evaluate_takes_window_and_clip_counts_from_the_checkpoint(data, tmp_path):
    # a pretext run on 12-frame windows must be evaluable on videos shorter than the default W=20
    run("pretrain", "--data", data, "--out", tmp_path / "p", "--device", "cpu", "--steps", "1",
        "--batch-size", "2", "--workers", "0", "--window", "12", "--clips", "3")
    result = run("evaluate", "--data", data, "--checkpoint", tmp_path / "p" / "checkpoint.pt",
                 "--device", "cpu", "--workers", "0", "--out", tmp_path / "e")
    assert result.exit_code == 0, result.output
    assert "chance 0.333" in result.output


def test_finetune_refuses_an_init_of_another_size(data, tmp_path):
    run("pretrain", "--data", data, "--out", tmp_path / "p", "--device", "cpu", "--steps", "1",
        "--batch-size", "2", "--workers", "0", "--width", "0.5")
    result = run("finetune", "--data", data, "--device", "cpu", "--init", tmp_path / "p" / "checkpoint.pt",
                 "--out", tmp_path / "f")
    assert result.exit_code == 2 and "width=0.5 (here 0.25)" in result.output
    assert not (tmp_path / "f").exists()


def test_splits_are_chosen_and_checked(data, tmp_path):
    missing = run("pretrain", "--data", data, "--device", "cpu", "--split", "2", "--out", tmp_path / "s2")
    assert missing.exit_code == 2 and "--split" in missing.output and "trainlist02.txt" in missing.output
    assert run("pretrain", "--data", data, "--split", "4").exit_code == 2  # 1..3 only


def test_an_unlabelled_set_is_for_pretraining_only(tmp_path):
    import shutil

    from fastssl.data.dataset import write_stamp
    root = make_coded_dataset(tmp_path / "unlabelled", frames=(24, 30, 30), classes=("all",))
    write_stamp(root, "prepare", unlabelled=True)
    refused = run("finetune", "--data", root, "--device", "cpu", "--out", tmp_path / "ft")
    assert refused.exit_code == 2 and "unlabelled" in refused.output and "fastssl pretrain" in refused.output
    assert not (tmp_path / "ft").exists()
    ok = run("pretrain", "--data", root, "--device", "cpu", "--steps", "1", "--batch-size", "2",
             "--workers", "0", "--window", "12", "--clips", "3", "--out", tmp_path / "p")
    assert ok.exit_code == 0, ok.output
    shutil.rmtree(tmp_path / "p")


def test_shuffled_frames_evaluation(data, tmp_path):
    import json
    common = ["--data", data, "--device", "cpu", "--workers", "0"]
    assert run("finetune", *common, "--steps", "2", "--batch-size", "2", "--out", tmp_path / "f").exit_code == 0
    ckpt = tmp_path / "f" / "checkpoint.pt"
    plain = run("evaluate", *common, "--checkpoint", ckpt, "--out", tmp_path / "a")
    shuffled = run("evaluate", *common, "--checkpoint", ckpt, "--out", tmp_path / "b", "--shuffle-frames", "3")
    again = run("evaluate", *common, "--checkpoint", ckpt, "--out", tmp_path / "c", "--shuffle-frames", "3")
    assert plain.exit_code == shuffled.exit_code == again.exit_code == 0, shuffled.output
    assert "clip accuracy (frames shuffled)" in shuffled.output
    a, b, c = (json.loads((tmp_path / x / "eval.json").read_text()) for x in "abc")
    assert b["shuffled_frames_seed"] == 3 and "shuffled_frames_seed" not in a
    assert b["per_video"] == c["per_video"]  # seeded: the same shuffle every time
    pretext = tmp_path / "p"
    run("pretrain", *common, "--steps", "1", "--batch-size", "2", "--window", "12", "--clips", "3", "--out", pretext)
    refused = run("evaluate", *common, "--checkpoint", pretext / "checkpoint.pt", "--shuffle-frames", "1")
    assert refused.exit_code == 2 and "pretext checkpoint" in refused.output


def test_shuffled_orders_are_permutations_seeded_per_video():
    import torch

    from fastssl.train.evaluation import shuffled_orders
    a = shuffled_orders(5, 8, seed=1, video=3)
    assert a.shape == (5, 1, 8)
    assert all(sorted(row.tolist()) == list(range(8)) for row in a[:, 0])
    assert torch.equal(a, shuffled_orders(5, 8, seed=1, video=3))
    assert not torch.equal(a, shuffled_orders(5, 8, seed=1, video=4))
    assert any(row.tolist() != list(range(8)) for row in a[:, 0])


@pytest.mark.slow
def test_init_from_another_split_warns_and_evaluate_keeps_the_checkpoint_split(tmp_path):
    import json
    import shutil
    root = make_coded_dataset(tmp_path / "two", frames=(24, 30, 30))
    shutil.copy(root / "trainlist01.txt", root / "trainlist02.txt")
    shutil.copy(root / "testlist01.txt", root / "testlist02.txt")
    common = ["--data", root, "--device", "cpu", "--workers", "0", "--steps", "1", "--batch-size", "2"]
    assert run("pretrain", *common, "--split", "2", "--window", "12", "--clips", "3",
               "--out", tmp_path / "p").exit_code == 0
    ft = run("finetune", *common, "--init", tmp_path / "p" / "checkpoint.pt", "--out", tmp_path / "f",
             "--width", "0.25")
    assert ft.exit_code == 0, ft.output
    assert "pretrained on split 2, and this is split 1" in ft.output
    ev = run("evaluate", "--data", root, "--device", "cpu", "--workers", "0",
             "--checkpoint", tmp_path / "p" / "checkpoint.pt", "--out", tmp_path / "e")
    assert ev.exit_code == 0 and "(split 2)" in ev.output
    assert json.loads((tmp_path / "e" / "eval.json").read_text())["split"] == 2
