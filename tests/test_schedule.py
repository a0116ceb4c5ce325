"""The lr schedule: linear warm-up, cosine to zero, one factor for every param group."""
import pytest
import torch

from fastssl.train.schedule import current_lrs, lr_factor, set_lr


def test_warm_up_is_linear_then_cosine_reaches_zero_at_the_end():
    total, warmup = 100, 0.1
    factors = [lr_factor(s, total, warmup) for s in range(total)]
    assert factors[:10] == pytest.approx([(s + 1) / 10 for s in range(10)])
    assert factors[10] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(factors[10:], factors[11:]))  # never rises after the peak
    assert lr_factor(total, total, warmup) == pytest.approx(0.0)
    assert lr_factor(55, total, warmup) == pytest.approx(0.5)  # half-way through the cosine


def test_a_run_shorter_than_the_warm_up_still_starts_at_a_nonzero_rate():
    assert lr_factor(0, 3, 0.02) == pytest.approx(1.0)  # warm-up rounds to one step
    assert lr_factor(0, 1, 0.5) > 0


def test_every_group_scales_from_its_own_base_and_is_logged_by_name():
    a, b = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([{"params": [a], "lr": 1e-3, "base_lr": 1e-3, "name": "fc"},
                            {"params": [b], "lr": 1e-4, "base_lr": 1e-4, "name": "conv"}])
    set_lr(opt, 0.5)
    assert current_lrs(opt) == pytest.approx({"lr/fc": 5e-4, "lr/conv": 5e-5})
