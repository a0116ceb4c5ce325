"""RunGuard: every stop decision and the counts it rests on, decided per step."""
import signal

import pytest
import torch

from fastssl.config import Config
from fastssl.data.dataset import Video
from fastssl.train.guard import RunGuard


def videos(n):
    return [Video(f"/data/v{i}.mp4", f"v{i}.mp4", 30, 25.0, "h264", 96, 72, "A", 0) for i in range(n)]


def guard(**cfg):
    base = dict(device="cpu", ckpt_every=5, ckpt_minutes=60.0, max_bad_fraction=0.2)
    return RunGuard(Config(**{**base, **cfg}), 20, videos(10), report=lambda _: None)


def test_checkpoints_come_every_ckpt_every_steps_and_at_the_end():
    g = guard()
    assert [s for s in range(1, 21) if g.decide(s, at_log=False).checkpoint] == [5, 10, 15, 20]
    assert all(g.decide(s, at_log=True).stop is None for s in range(1, 21))


def test_a_signal_stops_with_a_checkpoint_and_the_shell_exit_code():
    g = guard()
    g.signals.received = signal.SIGTERM
    d = g.decide(3, at_log=False)
    assert (d.stop, d.exit_code, d.checkpoint) == ("signal", 143, True)
    g.signals.received = signal.SIGINT
    assert g.decide(4, at_log=False).exit_code == 130


def test_a_non_finite_loss_stops_at_the_next_check_naming_its_step_without_a_checkpoint():
    g = guard()
    g.nonfinite.note(torch.tensor(1.0), 6)
    g.nonfinite.note(torch.tensor(float("nan")), 7)
    g.nonfinite.note(torch.tensor(float("inf")), 8)  # the first one is the one named
    assert g.decide(8, at_log=False).stop is None  # no log or checkpoint step: not read yet
    d = g.decide(10, at_log=False)  # a checkpoint step reads it first
    assert (d.stop, d.checkpoint) == ("non-finite", False) and "at step 7" in d.message


def test_too_many_bad_videos_stop_the_run_each_named_once():
    said = []
    g = RunGuard(Config(device="cpu", max_bad_fraction=0.2), 20, videos(10), report=said.append)
    g.bad.note([(0, "truncated"), (1, "missing")])
    g.bad.note([(0, "truncated")])
    assert g.bad.count == 2 and len(said) == 2 and g.decide(1, at_log=False).stop is None
    g.bad.note([(2, "moov atom not found")])
    d = g.decide(2, at_log=False)
    assert d.stop == "bad-videos" and d.checkpoint and "3 of 10 videos" in d.message


def test_skip_batch_counts_only_non_finite_losses():
    g = guard(skip_nonfinite=True)
    assert not g.skip_batch(torch.tensor(2.0))
    assert g.skip_batch(torch.tensor(float("nan")))
    assert g.skip_batch(torch.tensor(float("-inf")))
    assert g.skipped_nonfinite == 2


@pytest.mark.parametrize("restored", [0, 4])
def test_the_skip_count_continues_from_a_checkpoint(restored):
    g = RunGuard(Config(device="cpu"), 5, videos(2), report=lambda _: None, skipped_nonfinite=restored)
    g.skip_batch(torch.tensor(float("nan")))
    assert g.skipped_nonfinite == restored + 1
