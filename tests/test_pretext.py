"""Every invariant of the questions, over many seeds and sizes (hypothesis)."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastssl.pretext import MODES, check_sizes, sample_questions, wrong_order


@given(D=st.integers(3, 16), seed=st.integers(0, 2**32 - 1))
def test_rp_is_a_permutation_and_never_identity(D, seed):
    order = wrong_order("rp", D, np.random.default_rng(seed))
    assert sorted(order.tolist()) == list(range(D))
    assert order.tolist() != list(range(D))


@given(D=st.integers(3, 16), seed=st.integers(0, 2**32 - 1))
def test_ss_is_the_papers_split_and_swap(D, seed):
    order = wrong_order("ss", D, np.random.default_rng(seed)).tolist()
    ps = order[0] + 1                       # 1-based split position: the clip starts at x_ps
    assert 2 <= ps <= D - 1
    assert order == list(range(ps - 1, D)) + list(range(0, ps - 1))


def test_ss_draws_every_split_position():
    rng = np.random.default_rng(0)
    seen = {int(wrong_order("ss", 8, rng)[0]) + 1 for _ in range(500)}
    assert seen == set(range(2, 8))


def test_pb_is_reversed():
    assert wrong_order("pb", 8, np.random.default_rng(0)).tolist() == list(range(7, -1, -1))


@settings(max_examples=60)
@given(B=st.integers(1, 8), D=st.integers(3, 10), extra=st.integers(0, 12), N=st.integers(2, 8),
       mode=st.sampled_from(MODES), seed=st.integers(0, 2**32 - 1))
def test_question_invariants(B, D, extra, N, mode, seed):
    W = D + extra
    if N > W - D + 1:
        with pytest.raises(ValueError, match="distinct starts"):
            sample_questions(B, W, D, N, mode, np.random.default_rng(seed))
        return
    q = sample_questions(B, W, D, N, mode, np.random.default_rng(seed))
    assert q.starts.shape == (B, N) and q.orders.shape == (B, N, D) and q.label.shape == (B,)
    assert q.starts.dtype == q.orders.dtype == q.label.dtype == np.int64
    identity = np.arange(D)
    for b in range(B):
        assert len(set(q.starts[b].tolist())) == N                      # distinct starts
        assert q.starts[b].min() >= 0 and q.starts[b].max() <= W - D   # clips inside the window
        assert 0 <= q.label[b] < N
        for n in range(N):
            is_identity = np.array_equal(q.orders[b, n], identity)
            assert is_identity == (n != q.label[b])                     # exactly one wrong clip
            assert sorted(q.orders[b, n].tolist()) == list(range(D))   # frames are reordered, not replaced


def test_same_seed_same_questions_and_starts_order_is_random():
    a = sample_questions(200, 20, 8, 6, "rp", np.random.default_rng(7))
    b = sample_questions(200, 20, 8, 6, "rp", np.random.default_rng(7))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    # starts come in random order (that order is the branch permutation), not sorted
    assert not all(np.all(np.diff(s) > 0) for s in a.starts)
    # the wrong position is spread over all N positions
    assert set(a.label.tolist()) == set(range(6))


@pytest.mark.parametrize("W,D,N,match", [(7, 8, 2, "shorter"), (20, 8, 14, "distinct starts"),
                                         (20, 8, 1, "at least 2"), (20, 2, 6, "at least 3")])
def test_bad_sizes(W, D, N, match):
    with pytest.raises(ValueError, match=match):
        check_sizes(W, D, N)


def test_unknown_mode():
    with pytest.raises(ValueError, match="unknown mode"):
        wrong_order("xx", 8, np.random.default_rng(0))
