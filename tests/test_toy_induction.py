"""The toy induction experiment (training/toy_induction.py): its windows, its loss masking, and
that a couple of optimisation steps run. No training to convergence here (see
training/TOY_INDUCTION.md for the runs)."""

from __future__ import annotations

import math

import numpy as np
import torch

from gpt2viz.analysis import induction_score, repeated_random_tokens
from training.prepare import IGNORE, target_masks, toy_batch, toy_windows
from training.toy_induction import build_parser, run

POOL = np.arange(50, 114)  # ids 50..113: not 0-based, so a mix-up of ids and indices shows
BOS = 200


def test_windows_hold_one_copied_block_at_a_random_offset() -> None:
    T, lo, hi = 48, 6, 24
    w, L, S = toy_windows(np.random.default_rng(0), 200, T, lo, hi, POOL, BOS)
    assert w.shape == (200, T + 1) and w.dtype == np.int64
    assert (w[:, 0] == BOS).all() and np.isin(w[:, 1:], POOL).all()
    assert L.min() >= lo and L.max() <= hi and len(set(L.tolist())) > 10
    assert S.min() == 1 and (S + 2 * L <= T + 1).all() and len(set(S.tolist())) > 10
    for b in range(200):
        s, n = int(S[b]), int(L[b])
        assert (w[b, s + n:s + 2 * n] == w[b, s:s + n]).all()


def test_only_the_predictable_second_copy_counts() -> None:
    T = 40
    rng = np.random.default_rng(1)
    x, y, keys = toy_batch(rng, 64, T, 5, 20, POOL, BOS)
    w, L, S = toy_windows(np.random.default_rng(1), 64, T, 5, 20, POOL, BOS)  # the same windows
    assert x.shape == y.shape == keys.shape == (64, T) and x.dtype == y.dtype == keys.dtype == torch.int64
    assert torch.equal(keys >= 0, y != IGNORE)
    assert torch.equal(x, torch.from_numpy(w[:, :-1]))  # inputs: tokens 0..T-1, <bos> first
    for b in range(64):
        s, n = int(S[b]), int(L[b])
        counted = torch.nonzero(y[b] != IGNORE).flatten().tolist()
        # targets r[1:] of the second copy: t = S+L .. S+2L-2 (target t is token t+1)
        assert counted == list(range(s + n, s + 2 * n - 1))
        assert int(y[b, s + n - 1]) == IGNORE  # r[0] of the second copy: nothing predicts it
        for t in counted:
            assert int(y[b, t]) == w[b, t + 1]  # aligned: target t is the token after input t
            # induction: the input token occurred L positions back, and the target followed it
            assert int(x[b, t - n]) == int(x[b, t]) and int(y[b, t]) == w[b, t - n + 1]
            # the induction key is the position after the earlier occurrence: its input is the target
            assert int(keys[b, t]) == t - n + 1 and int(x[b, t - n + 1]) == int(y[b, t])
        assert (y[b][y[b] != IGNORE] != BOS).all()
    second, first = target_masks(T, L, S)
    assert torch.equal(torch.from_numpy(second), y != IGNORE)
    for b in range(64):  # the first copy's targets: r, tokens S .. S+L-1
        s, n = int(S[b]), int(L[b])
        assert np.nonzero(first[b])[0].tolist() == list(range(s - 1, s + n - 1))
    assert not (second & first).any()


def test_longest_block_is_the_induction_test_layout() -> None:
    """With L = T/2 the window is [bos] + r + r, the layout `induction_score(..., prefix=1)` reads."""
    w, L, S = toy_windows(np.random.default_rng(2), 3, 20, 10, 10, POOL, BOS)
    assert (S == 1).all() and (L == 10).all()
    assert (w[:, 0] == BOS).all() and (w[:, 1:11] == w[:, 11:21]).all()  # [bos] + r + r
    ref = repeated_random_tokens(10, 1, 0, vocab_size=len(POOL), bos=None)[0]
    assert len(ref) == 20 == w.shape[1] - 1  # the same shape: bos + 2 × 10
    # and induction_score reads exactly the targets the toy counts: query S+L+i-1 → key S+i
    second, _ = target_masks(20, L, S)
    pattern = torch.zeros(4, 21, 21)
    for q in range(21):
        pattern[:, q, 0] = 1.0  # everything on bos, except the induction stripe below
    for t in np.nonzero(second[0])[0]:  # target t is predicted at query t
        pattern[:, t, :] = 0.0
        pattern[:, t, t - 10 + 1] = 1.0  # the token after the earlier copy of token t
    assert torch.allclose(induction_score(pattern, 10, prefix=1)[0], torch.tensor(9 / 10))


def test_two_steps_run_and_report() -> None:
    args = build_parser().parse_args(["--steps", "2", "--log-every", "1", "--batch", "8", "--pool", "32",
                                      "--seq-len", "24", "--len-min", "4", "--len-max", "12",
                                      "--eval-len", "10", "--n-positions", "32", "--d-model", "32",
                                      "--threads", "1"])
    summary = run(args)
    assert summary["steps"] == 2 and [r["step"] for r in summary["log"]] == [1, 2]
    first = summary["log"][0]
    # at initialisation every id is about equally likely: both losses near log(vocab)
    assert abs(first["second_copy"] - math.log(33)) < 0.3 and abs(first["first_copy"] - math.log(33)) < 0.3
    layer, head, score = first["induction"]
    assert 0 <= layer < 2 and 0 <= head < 4 and 0.0 <= score <= 1.0


def test_pool_loss_and_real_schedule_run() -> None:
    args = build_parser().parse_args(["--steps", "2", "--log-every", "2", "--batch", "4", "--pool", "32",
                                      "--seq-len", "24", "--len-min", "4", "--len-max", "12",
                                      "--eval-len", "10", "--n-positions", "32", "--d-model", "32",
                                      "--loss", "pool", "--schedule", "real", "--threads", "1"])
    summary = run(args)
    assert summary["steps"] == 2 and math.isfinite(summary["final"]["train_loss"])
