"""Runs that survive: kill and resume, Ctrl-C and SIGTERM, bad files met mid-run, non-finite
losses, damaged checkpoints. Real runs on real (tiny) encoded datasets."""
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from fastssl.cli import main
from fastssl.train.guard import INJECT_NAN_ENV
from videos import make_coded_dataset

TIMING = {"clips_per_s", "data_wait_fraction"}  # wall-clock figures: the only fields that may differ


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_coded_dataset(tmp_path_factory.mktemp("long"), frames=(30, 40, 36, 44))


def cli(*args, env=None):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False, env=env)


def train_args(data, out, steps=24, *extra):
    return ["pretrain", "--data", data, "--out", out, "--device", "cpu", "--steps", steps,
            "--batch-size", 4, "--ckpt-every", 3, "--log-every", 2, "--keep-checkpoints", 2, *extra]


def fastssl(*args, **kw) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "2", **kw.pop("env", {})}
    return subprocess.Popen([sys.executable, "-m", "fastssl", *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, **kw)


def metrics(run: Path) -> list[dict]:
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in line.items() if k not in TIMING} for line in lines]


def weights(run: Path) -> dict:
    return torch.load(run / "checkpoint.pt", weights_only=True)["model"]


def newest_step(run: Path) -> int:
    steps = [int(p.stem.split("-")[1]) for p in run.glob("checkpoint-*.pt")]
    return max(steps, default=0)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


@pytest.mark.slow
def test_killed_and_resumed_equals_uninterrupted(data, tmp_path):
    # SIGKILL at random points (mid-step, mid-checkpoint, wherever), three times, each time
    # resumed: the same weights, bit for bit, and the same metrics.jsonl as a run never stopped.
    straight = fastssl(*train_args(data, tmp_path / "straight", 24, "--workers", 2))
    assert straight.wait(timeout=300) == 0, straight.stderr.read()
    run = tmp_path / "killed"
    rng = random.Random(7)
    command = train_args(data, run, 24, "--workers", 2)
    for kill in range(3):
        proc = fastssl(*command)
        target = newest_step(run) + rng.choice([1, 3, 4])
        deadline = time.time() + 120
        while newest_step(run) < target and proc.poll() is None and time.time() < deadline:
            time.sleep(0.01)
        time.sleep(rng.uniform(0, 0.3))
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        assert newest_step(run) < 24, "the run finished before it could be killed"
        command = ["pretrain", "--resume", run, "--workers", 2]
    final = fastssl(*command)
    assert final.wait(timeout=300) == 0, final.stderr.read()
    a, b = weights(tmp_path / "straight"), weights(run)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert metrics(run) == metrics(tmp_path / "straight")


@pytest.mark.slow
@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_to_the_group_checkpoints_and_the_printed_command_resumes(data, tmp_path, sig, code):
    run = tmp_path / "run"
    proc = fastssl(*train_args(data, run, 400, "--workers", 2, "--ckpt-every", 100))
    deadline = time.time() + 120
    while not (run / "metrics.jsonl").is_file() or len((run / "metrics.jsonl").read_text().splitlines()) < 3:
        assert proc.poll() is None and time.time() < deadline
        time.sleep(0.05)
    os.killpg(proc.pid, sig)  # what a terminal's Ctrl-C does: the whole process group
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    step = newest_step(run)
    assert 0 < step < 400 and step % 100 != 0  # a checkpoint written because of the signal
    assert f"stopped by {sig.name} after step {step}" in err
    resume = [line for line in err.splitlines() if line.startswith("continue with: ")][0]
    time.sleep(0.5)
    assert not group_alive(proc.pid), "loader workers outlived the run"
    args = resume.removeprefix("continue with: fastssl ").split() + ["--steps", step + 4]
    again = fastssl(*args)
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    assert f"from checkpoint-{step}.pt" in out and newest_step(run) == step + 4


def test_resume_refuses_what_it_cannot_do(data, tmp_path):
    run = tmp_path / "run"
    assert cli(*train_args(data, run, 3, "--workers", 0)).exit_code == 0
    finished = cli("pretrain", "--resume", run)
    assert finished.exit_code == 0 and "already finished (step 3)" in finished.output
    changed = cli("pretrain", "--resume", run, "--mode", "pb", "--lr", "0.1")
    assert changed.exit_code == 2 and "--mode, --lr cannot be given with it" in changed.output
    wrong = cli("finetune", "--resume", run)
    assert wrong.exit_code == 2 and "is a `fastssl pretrain` run" in wrong.output
    for p in run.glob("checkpoint*.pt"):
        p.unlink()
    none = cli("pretrain", "--resume", run)
    assert none.exit_code == 2 and "has no checkpoint yet" in none.output
    assert cli("pretrain", "--resume", tmp_path / "nowhere").exit_code == 2


@pytest.mark.slow
def test_a_damaged_newest_checkpoint_is_named_and_the_one_before_used(data, tmp_path):
    run = tmp_path / "run"
    assert cli(*train_args(data, run, 9, "--workers", 0)).exit_code == 0
    assert sorted(p.name for p in run.glob("checkpoint-*.pt")) == ["checkpoint-6.pt", "checkpoint-9.pt"]
    newest = run / "checkpoint-9.pt"
    newest.write_bytes(newest.read_bytes()[:1000])  # truncated, as by a full disk
    result = cli("pretrain", "--resume", run, "--steps", 12)
    assert result.exit_code == 0, result.output
    assert "checkpoint-9.pt: is a 1000-byte zip archive that torch cannot read" in result.output
    assert "from checkpoint-6.pt (step 6 of 12)" in result.output
    assert torch.load(run / "checkpoint.pt", weights_only=True)["step"] == 12
    steps = [line["step"] for line in metrics(run) if "pretext/loss" in line]
    assert steps == [2, 4, 6, 8, 10, 12]  # the lines after step 6 were replaced, not duplicated


@pytest.mark.slow
def test_an_injected_nan_stops_the_run_at_that_step(data, tmp_path):
    run = tmp_path / "run"
    result = cli(*train_args(data, run, 12, "--workers", 0), env={INJECT_NAN_ENV: "7"})
    assert result.exit_code == 1
    assert "non-finite (NaN or Inf) at step 7" in result.output
    assert newest_step(run) == 6  # the last good checkpoint, intact; none after the NaN
    good = torch.load(run / "checkpoint.pt", weights_only=True)
    assert good["step"] == 6 and all(torch.isfinite(v).all() for v in good["model"].values() if v.is_floating_point())
    skipped = cli(*train_args(data, tmp_path / "skip", 12, "--workers", 0, "--skip-nonfinite"),
                  env={INJECT_NAN_ENV: "7"})
    assert skipped.exit_code == 0, skipped.output
    last = metrics(tmp_path / "skip")
    assert [line["nonfinite_skipped"] for line in last if "nonfinite_skipped" in line][-1] == 1


@pytest.mark.slow
def test_videos_that_break_mid_run_are_named_redrawn_and_counted(data, tmp_path):
    import shutil

    from fastssl.train.run import run
    from fastssl.train.run_setup import RunSetup, setup_training
    from fastssl.train.tasks import TASKS
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    args = dict(data=str(copy), out=str(tmp_path / "run"), device="cpu", steps=12, batch_size=4,
                workers=2, ckpt_every=6, log_every=3, max_bad_fraction=0.5)
    setup = setup_training("pretrain", report=lambda _: None, **args)
    dataset = setup.dataset
    # damaged after the checks at start, as a file can be on a shared disk at hour 30
    truncated, deleted = dataset.train[0], dataset.train[3]
    raw = Path(truncated.path).read_bytes()
    Path(truncated.path).write_bytes(raw[: len(raw) // 3])
    os.unlink(deleted.path)
    said = []
    result = run(TASKS["pretrain"], setup, progress=False, report=said.append)
    assert result["steps"] == 12
    named = "\n".join(said)
    assert truncated.path in named and deleted.path in named
    assert sum(f"({n} so far)" in named for n in (1, 2)) == 2 and "(3 so far)" not in named  # once each
    assert metrics(tmp_path / "run")[-2]["data/bad_videos"] == 2
    # the default limit (5% of 6 videos: none) stops the run, with a checkpoint to resume from
    from fastssl.train.guard import RunStopped
    from fastssl.train.run_setup import build_config
    cfg2 = build_config("pretrain", report=lambda _: None, **{**args, "out": str(tmp_path / "strict"),
                                                             "max_bad_fraction": None, "workers": 0})
    with pytest.raises(RunStopped) as stop:
        run(TASKS["pretrain"], RunSetup(cfg2, dataset), progress=False, report=lambda _: None)
    assert stop.value.decision.stop == "bad-videos" and stop.value.checkpoint
    assert "failed to decode, more than --max-bad-fraction allows" in str(stop.value)
