"""Data parallelism under torchrun, on the CPU with gloo: real processes, real runs.

The one-process run is the reference: 2 ranks take the two halves of each global batch, which
is what one process does with --accumulate 2, so parameters and losses agree within float
tolerance (BatchNorm running buffers legitimately differ: each rank keeps its own)."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from fastssl.config import resolve
from fastssl.train.run_setup import SetupError, check_config
from videos import make_coded_dataset

ENV = {"MASTER_ADDR": "127.0.0.1", "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_coded_dataset(tmp_path_factory.mktemp("ddp"), frames=(30, 40, 36, 44))


def launch(*args, ranks: int = 1, wait: bool = True):
    env = {**os.environ, **ENV}
    if ranks > 1:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                   "--nproc-per-node", str(ranks), "-m", "fastssl", *map(str, args)]
    else:
        command = [sys.executable, "-m", "fastssl", *map(str, args)]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    if not wait:
        return proc
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    return out


def descendants(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        for child in (task / "children").read_text().split():
            found += [int(child)] + descendants(int(child))
    return found


def kill_tree(pid: int) -> None:
    for p in [pid] + descendants(pid):
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass


def losses(run: Path) -> list[float]:
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [line["pretext/loss"] for line in lines if "pretext/loss" in line]


def train(data, out, *extra):
    return ["pretrain", "--data", data, "--out", out, "--device", "cpu", "--workers", 0, "--steps", 6,
            "--batch-size", 8, "--log-every", 2, "--ckpt-every", 3, *extra]


@pytest.mark.slow
def test_two_ranks_agree_with_one_process_accumulating_two(data, tmp_path):
    launch(*train(data, tmp_path / "two"), ranks=2)
    launch(*train(data, tmp_path / "one", "--accumulate", 2))
    a = torch.load(tmp_path / "two" / "checkpoint.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "one" / "checkpoint.pt", weights_only=True)["model"]
    params = [k for k in a if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    assert len(params) > 20
    for k in params:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-6, msg=k)
    assert losses(tmp_path / "two") == pytest.approx(losses(tmp_path / "one"), rel=1e-5)
    # and it is not trivially so: without accumulation the one-process run differs
    launch(*train(data, tmp_path / "whole"))
    c = torch.load(tmp_path / "whole" / "checkpoint.pt", weights_only=True)["model"]
    assert any(not torch.allclose(a[k], c[k], rtol=1e-4, atol=1e-6) for k in params)


@pytest.mark.slow
def test_a_nan_on_one_rank_is_skipped_by_every_rank_together(data, tmp_path):
    # rank 1 alone meets a NaN loss at step 4: with --skip-nonfinite both ranks skip that step's
    # update (a rank skipping alone would leave the other waiting in the gradient all-reduce)
    from fastssl.train.guard import INJECT_NAN_ENV, INJECT_NAN_RANK_ENV
    os.environ.update({INJECT_NAN_ENV: "4", INJECT_NAN_RANK_ENV: "1"})
    try:
        launch(*train(data, tmp_path / "two", "--skip-nonfinite"), ranks=2)
    finally:
        del os.environ[INJECT_NAN_ENV], os.environ[INJECT_NAN_RANK_ENV]
    lines = [json.loads(line) for line in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()]
    assert [line["nonfinite_skipped"] for line in lines if "nonfinite_skipped" in line][-1] == 1
    state = torch.load(tmp_path / "two" / "checkpoint.pt", weights_only=True)
    assert state["step"] == 6 and all(torch.isfinite(v).all() for v in state["model"].values()
                                      if v.is_floating_point())


@pytest.mark.slow
def test_two_rank_evaluation_counts_every_video_once(data, tmp_path):
    launch("finetune", "--data", data, "--out", tmp_path / "ft", "--device", "cpu", "--workers", 0,
           "--steps", 2, "--batch-size", 4)
    ckpt = tmp_path / "ft" / "checkpoint.pt"
    for ranks in (1, 2):
        launch("evaluate", "--data", data, "--checkpoint", ckpt, "--device", "cpu", "--workers", 0,
               "--out", tmp_path / f"ev{ranks}", ranks=ranks)
    one, two = (json.loads((tmp_path / f"ev{r}" / "eval.json").read_text()) for r in (1, 2))
    for key in ("clip_accuracy", "video_accuracy", "clips", "videos", "confusion", "per_video"):
        assert one[key] == two[key], key
    assert [v["index"] for v in two["per_video"]] == list(range(two["videos"]))
    pre = tmp_path / "pre"
    launch(*train(data, pre, "--steps", 2))
    for ranks in (1, 2):
        launch("evaluate", "--data", data, "--checkpoint", pre / "checkpoint.pt", "--device", "cpu",
               "--workers", 0, "--out", tmp_path / f"pev{ranks}", ranks=ranks)
    p1, p2 = (json.loads((tmp_path / f"pev{r}" / "eval.json").read_text()) for r in (1, 2))
    assert p1["questions"] == p2["questions"] == 2 * 4  # 2 test videos x 4 questions, once each
    assert p1["pretext_accuracy"] == p2["pretext_accuracy"]


@pytest.mark.slow
def test_a_two_rank_run_killed_and_resumed_completes(data, tmp_path):
    run = tmp_path / "run"
    proc = launch(*train(data, run, "--steps", 400, "--ckpt-every", 5), ranks=2, wait=False)
    deadline = time.time() + 300
    while not list(run.glob("checkpoint-*.pt")):
        assert proc.poll() is None and time.time() < deadline, proc.stderr.read()[-3000:]
        time.sleep(0.1)
    kill_tree(proc.pid)  # torchrun starts its workers in process groups of their own
    proc.wait()
    step = max(int(p.stem.split("-")[1]) for p in run.glob("checkpoint-*.pt"))
    assert step < 400
    launch("pretrain", "--resume", run, "--steps", step + 4, ranks=2)
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    assert state["step"] == step + 4
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(steps)  # no duplicated lines from the killed part


@pytest.mark.parametrize("batch,accumulate,message", [
    (6, 1, "must divide by ranks x --accumulate = 4 x 1"),
    (8, 2, "at least 2 per rank and micro-batch"),
])
def test_the_global_batch_must_split_over_the_ranks(monkeypatch, batch, accumulate, message):
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "0")
    cfg = resolve("tiny", "pretrain", batch_size=batch, accumulate=accumulate)
    with pytest.raises(SetupError, match=message):
        check_config(cfg)
