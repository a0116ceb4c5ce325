"""The training loop's pieces on a tiny real model: micro-batches, logging, checkpoints, stops.
Milliseconds each; the end-to-end runs live in test_end_to_end.py and test_long_runs.py."""
import json
import signal

import pytest
import torch

from fastssl.config import Config
from fastssl.data.dataset import Video
from fastssl.train.checkpoints import read_checkpoint
from fastssl.train.guard import RunStopped
from fastssl.train.loop import Output, Training, micro_batches, train_steps
from fastssl.train.runlog import RunLog, read_metrics
from fastssl.train.state import TrainState
from fastssl.train.tasks import Task


class Linear(Task):
    """A task whose batches are already features: the loop, nothing else."""
    command, kind, prefix = "pretrain", "pretext", "toy"

    def model_inputs(self, batch, cfg):
        return batch["x"], batch["label"]


def batches(n_batches=100, size=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(4, 3, generator=g)
    for _ in range(n_batches):
        x = torch.randn(size, 4, generator=g)
        yield {"x": x, "label": (x @ w).argmax(1), "video": torch.zeros(size, dtype=torch.long), "bad": []}


def training(cfg, seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Linear(4, 3)
    opt = torch.optim.Adam([{"params": model.parameters(), "lr": 0.05, "base_lr": 0.05, "name": "all"}])
    return Training(cfg, Linear(), model, model, opt, torch.amp.GradScaler("cpu", enabled=False), {})


def config(tmp_path, **kw):
    return Config(device="cpu", out=str(tmp_path), log_every=2, ckpt_every=3, keep_checkpoints=2, **kw)


def run(tmp_path, cfg, total=6, stream=None, start=None, log=True):
    tmp_path.mkdir(parents=True, exist_ok=True)
    t = training(cfg)
    out = Output(tmp_path, RunLog(tmp_path) if log else None, report=lambda _: None, progress=False)
    try:
        last = train_steps(t, stream or batches(), total=total, videos=[None], start=start or TrainState(),
                           out=out)
    finally:
        if out.log is not None:
            out.log.close()
    return t, last


def test_micro_batches_split_contiguously_and_the_bad_list_goes_with_the_first():
    batch = {"x": torch.arange(8), "label": torch.arange(8), "bad": [(3, "broken")]}
    parts = micro_batches(batch, 4)
    assert [p["x"].tolist() for p in parts] == [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert parts[0]["bad"] == [(3, "broken")] and all(p["bad"] == [] for p in parts[1:])
    assert micro_batches(batch, 1) == [batch]


def test_accumulating_micro_batches_takes_the_same_step_as_one_batch(tmp_path):
    one, _ = run(tmp_path / "a", config(tmp_path / "a"), log=False)
    two, _ = run(tmp_path / "b", config(tmp_path / "b", accumulate=4), log=False)
    for p, q in zip(one.model.parameters(), two.model.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_logs_every_log_every_steps_and_learns(tmp_path):
    _, last = run(tmp_path, config(tmp_path), total=40)
    logged = read_metrics(tmp_path)
    assert [r["step"] for r in logged] == list(range(2, 41, 2))
    assert {"toy/loss", "toy/accuracy", "lr/all", "clips_per_s", "data_wait_fraction"} <= set(logged[0])
    assert logged[-1]["toy/loss"] < logged[0]["toy/loss"] and logged[-1]["toy/accuracy"] > 0.6
    assert last["toy/loss"] == logged[-1]["toy/loss"]
    assert logged[-1]["lr/all"] < 0.01 * 0.05 < logged[0]["lr/all"]  # the cosine ends near zero


def test_checkpoints_are_numbered_the_last_two_kept_and_resume_continues_exactly(tmp_path):
    whole, _ = run(tmp_path / "whole", config(tmp_path / "whole"), total=9, log=False)
    # a run of 9 steps whose stream ends after 6, then resumed from the step-6 checkpoint
    run_dir = tmp_path / "cut"
    cfg = config(run_dir)
    with pytest.raises(StopIteration):
        run(run_dir, cfg, total=9, stream=batches(6), log=False)
    assert sorted(p.name for p in run_dir.glob("checkpoint-*.pt")) == ["checkpoint-3.pt", "checkpoint-6.pt"]
    from fastssl.train.state import restore
    t = training(cfg, seed=1)  # a different init: everything must come from the checkpoint
    start = restore(read_checkpoint(run_dir / "checkpoint-6.pt"), t.model, t.optimizer, t.scaler, "cpu")
    rest = batches()
    for _ in range(6):
        next(rest)
    train_steps(t, rest, total=9, videos=[None], start=start,
                out=Output(run_dir, None, report=lambda _: None, progress=False))
    for p, q in zip(whole.model.parameters(), t.model.parameters()):
        assert torch.equal(p, q)


def test_a_signal_stops_at_the_step_boundary_with_a_checkpoint(tmp_path):
    def signalled():
        for i, batch in enumerate(batches()):
            if i == 4:
                signal.raise_signal(signal.SIGINT)  # arrives during step 5
            yield batch
    with pytest.raises(RunStopped) as stop:
        run(tmp_path, config(tmp_path), total=20, stream=signalled(), log=False)
    assert stop.value.step == 5 and stop.value.decision.exit_code == 130
    assert read_checkpoint(stop.value.checkpoint).step == 5


def test_running_out_of_cuda_memory_names_the_options_and_the_checkpoint_kept(tmp_path):
    class Hungry(Linear):
        def model_inputs(self, batch, cfg):
            self.calls = getattr(self, "calls", 0) + 1
            if self.calls == 3:  # what torch raises when a CUDA allocation fails
                raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
            return super().model_inputs(batch, cfg)
    cfg = Config(device="cpu", out=str(tmp_path), log_every=10, ckpt_every=2, batch_size=8)
    t = training(cfg)
    t.task = Hungry()
    with pytest.raises(RunStopped) as stop:
        train_steps(t, batches(), total=10, videos=[None], start=TrainState(),
                    out=Output(tmp_path, None, report=lambda _: None, progress=False))
    d = stop.value.decision
    assert (d.stop, d.exit_code, stop.value.step) == ("out-of-memory", 1, 3)
    assert "--batch-size (now 8)" in d.message and "--accumulate N" in d.message
    assert f"the last checkpoint kept is {tmp_path / 'checkpoint-2.pt'} (step 2)" in d.message


def test_high_data_wait_says_which_knob_to_turn_once():
    from fastssl.train.timer import DataWaitAdvice
    advice = DataWaitAdvice("dali", workers=4, decoders=1)
    said = [advice.note(w) for w in (0.5, 0.6, 0.1, 0.4, 0.5, 0.7, 0.9, 0.8)]
    assert said[:5] == [None] * 5  # a dip resets the count
    assert "--decoders (now 1" in said[5] and said[6:] == [None, None]
    assert "--workers (now 2" in DataWaitAdvice("pyav", 2, 1, patience=1).note(0.3)


def test_gpu_stats_are_empty_without_a_gpu():
    from fastssl.train.gpu_stats import gpu_stats
    assert gpu_stats("cpu") == {}
    if not torch.cuda.is_available():
        assert gpu_stats("cuda") == {}  # no NVML here: nothing, and no error
