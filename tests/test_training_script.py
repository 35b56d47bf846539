"""The `training` package that made gpt2viz-mini: its data, its losses, its config, a tiny run.

These tests keep its pieces honest (the sampled softmax equals the full one over the whole
vocabulary, the windows are predictable exactly where their targets count, the shipped config
is the last run's) and run it end to end on a made-up two-document corpus.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import gpt2viz
from gpt2viz.loading import BUNDLED
from gpt2viz.tokenizer import EOT_ID, EOT_TEXT
from training import ROOT
from training.card import targets_text
from training.objectives import PrevTokenProbe, candidate_loss, lm_loss, residuals, step_loss
from training.prepare import Batches, synthetic_batch, synthetic_pool
from training.train import main, parse_args, run_hparams, shipped_config_for

SHIPPED = "training/config/gpt2viz_mini.json"


@pytest.fixture(scope="module")
def tiny() -> gpt2viz.GPT2:
    torch.manual_seed(0)
    return gpt2viz.GPT2(gpt2viz.GPT2Config(n_positions=64, n_embd=32, n_layer=2, n_head=2))


def test_synthetic_windows_count_only_predictable_targets() -> None:
    pool = np.arange(EOT_ID)
    x, y = synthetic_batch(np.random.default_rng(0), batch=3, T=200, len_max=30, pool=pool)
    assert x.shape == y.shape == (3, 200)
    assert (x[:, 0] == EOT_ID).all() and (x < EOT_ID).sum() == 3 * 199
    kept = y >= 0
    assert 0.35 < kept.float().mean() < 0.55  # about half: the second copies
    # a counted target is the next input token, and it occurred before: induction can predict it
    assert torch.equal(y[:, :-1][kept[:, :-1]], x[:, 1:][kept[:, :-1]])
    for b in range(3):
        for t in torch.nonzero(kept[b]).flatten().tolist():
            assert int(y[b, t]) in x[b, :t + 1].tolist()


def test_synthetic_pool_is_the_most_frequent_ids() -> None:
    train = np.array([7, 7, 7, 3, 3, 9, EOT_ID, EOT_ID, EOT_ID, EOT_ID], dtype=np.uint16)
    assert synthetic_pool(train, 2).tolist() == [3, 7]  # never <|endoftext|>
    assert synthetic_pool(train, 0).tolist() == list(range(EOT_ID))
    x, _ = synthetic_batch(np.random.default_rng(1), 2, 50, 10, synthetic_pool(train, 2))
    assert set(x[:, 1:].flatten().tolist()) == {3, 7}


def test_text_windows_repeat_a_random_block_and_mask_its_first_copy() -> None:
    data = np.arange(1000, dtype=np.uint16)  # no token occurs twice in the text itself
    batches = Batches(data, seq_len=64, batch_size=8, repeat_frac=1.0, random_frac=1.0,
                      repeat_min=5, repeat_max=20, seed=0)
    x, y = batches.next()
    assert x.shape == y.shape == (8, 64)
    for b in range(8):
        masked = torch.nonzero(y[b] < 0).flatten().tolist()
        L = len(masked) + 1  # the first copy's first token is predictable from the text before it
        assert 5 <= L <= 20 and masked == list(range(masked[0], masked[0] + L - 1))
        first = x[b, masked[0]:masked[0] + L].tolist()
        later = [x[b, s:s + L].tolist() for s in range(masked[0] + L, 64 - L + 1)]
        assert first in later  # the block occurs again after its first copy
        kept = y[b] >= 0
        assert torch.equal(y[b, :-1][kept[:-1]], x[b, 1:][kept[:-1]])


def test_residuals_reproduce_the_model_forward(tiny: gpt2viz.GPT2) -> None:
    x = torch.randint(0, 50257, (2, 17))
    final, after_first = residuals(tiny, x)
    assert final.requires_grad and after_first.requires_grad  # both train the model
    torch.testing.assert_close(F.linear(final, tiny.W_U), tiny(x))
    h = tiny.wte(x) + tiny.wpe(torch.arange(17))
    torch.testing.assert_close(after_first, tiny.h[0](h, None, None))


def test_candidate_loss_over_every_id_is_the_full_softmax(tiny: gpt2viz.GPT2) -> None:
    hidden = torch.randn(5, 32)
    targets = torch.tensor([3, 50256, 7, 7, 1000])
    full = F.cross_entropy(hidden @ tiny.wte.weight.T, targets)
    every = torch.arange(50257)
    torch.testing.assert_close(candidate_loss(hidden, targets, tiny.wte.weight, every), full)
    some = torch.tensor([3, 7, 1000, 50256])
    assert candidate_loss(hidden, targets, tiny.wte.weight, some) < full  # fewer rivals


def test_text_step_is_plain_next_token_loss(tiny: gpt2viz.GPT2) -> None:
    x = torch.randint(0, 50257, (2, 9))
    y = torch.randint(0, 50257, (2, 9))
    kw = {"synthetic": False, "negatives": 2048, "prev_aux": 1.0, "bf16": False}
    total, main_part = step_loss(tiny, None, x, y, rng=np.random.default_rng(0), **kw)
    assert total.item() == pytest.approx(main_part)
    assert main_part == pytest.approx(lm_loss(tiny, x, y, bf16=False).item(), rel=1e-5)
    probe = PrevTokenProbe(32)
    with_probe, main2 = step_loss(tiny, probe, x, y, rng=np.random.default_rng(0), **kw)
    assert main2 == pytest.approx(main_part)
    assert with_probe.item() > main_part + 1.0  # the probe adds its loss


def test_shipped_config_is_the_last_run_of_the_bundled_model() -> None:
    record = json.loads((BUNDLED[gpt2viz.BUNDLED_NAME] / "training.json").read_text())
    cfg, action = parse_args(["--config", str(ROOT / SHIPPED), "--device", "cpu"])
    assert action == "train" and cfg.device == "cpu"
    hparams = run_hparams(cfg)
    assert hparams.pop("device") == "cpu"
    assert hparams == record["hyperparameters"]
    assert cfg.out == Path("data/mini_run6")  # like that run: the bundled weights stay untouched
    assert shipped_config_for(record["hyperparameters"]) == SHIPPED
    # flags given after the config win over it
    cfg, _ = parse_args(["--config", str(ROOT / SHIPPED), "--steps", "7"])
    assert cfg.steps == 7 and cfg.lr == 1.5e-3


def test_config_file_errors_name_the_setting(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"learning_rate": 1e-3}))
    with pytest.raises(SystemExit, match="unknown setting 'learning_rate'.*lr"):
        parse_args(["--config", str(bad)])
    bad.write_text(json.dumps({"steps": 1.5}))
    with pytest.raises(SystemExit, match="steps = 1.5 should be of type int"):
        parse_args(["--config", str(bad)])


def test_device_defaults_to_cuda_when_available(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert parse_args([])[0].device == "cuda"
    assert parse_args(["--device", "cpu"])[0].device == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert parse_args([])[0].device == "cpu"
    with pytest.raises(SystemExit, match="--device cpu"):
        main(["--device", "cuda", "--out", "unused"])


def test_tiny_run_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # torch is told CUDA is there, so the run only stays on the CPU if --device cpu is honoured
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    brown = "The jury said that the city had done well. " * 30
    python = "Python functions return values. def f(x): return x + 1\n" * 30
    (corpus / "train.txt").write_text(f"{brown}\n{EOT_TEXT}\n{python}\n")
    (corpus / "val.txt").write_text(f"{brown}\n{EOT_TEXT}\n{python}\n")
    (corpus / "SOURCES.json").write_text(json.dumps({"sources": []}))
    out = tmp_path / "out"
    main(["--corpus", str(corpus), "--cache", str(tmp_path / "tokens"), "--out", str(out),
          "--n-layer", "1", "--n-head", "2", "--n-embd", "32", "--n-positions", "128",
          "--seq-len", "32", "--batch-size", "2", "--steps", "4", "--eval-every", "2",
          "--synthetic-frac", "0.5", "--synthetic-pool", "20", "--prev-aux", "1", "--negatives", "64",
          "--repeat-frac", "1", "--final-eval-tokens", "64", "--sample-chars", "200", "--device", "cpu"])
    record = json.loads((out / "training.json").read_text())
    assert record["steps"] == 4 and record["tokens_seen"] == 4 * 2 * 32
    assert [h["step"] for h in record["history"]] == [2, 4]
    assert record["hyperparameters"]["prev_aux"] == 1.0 and record["hyperparameters"]["device"] == "cpu"
    assert record["command"].startswith("python -m training.train --corpus")
    model = gpt2viz.load_model(str(out), device="cpu")
    assert model.config.n_embd == 32 and "probe" not in " ".join(n for n, _ in model.named_parameters())
    assert (out / "val_sample.txt").read_text().count(EOT_TEXT) == 1
    card = (out / "README.md").read_text()
    assert f"{record['val_loss']:.3f}" in card
    # the card says how the run trained and which head targets a 4-step model misses
    assert "**Synthetic steps.**" in card and "**Previous-token probe (an auxiliary objective).**" in card
    assert "50% synthetic steps" in card and "previous-token probe weight 1.0" in card
    assert "**Targets not reached:**" in card and "an induction head scoring ≥ 0.4" in card
    assert "bf16 autocast on CPU" in card
    assert "scripts/train_bundled_model.py" not in card and SHIPPED not in card


def test_card_states_only_the_missed_targets() -> None:
    assert targets_text(0.9, 0.6, 10**6) == ""
    only_induction = targets_text(0.9, 0.1, 10**6)
    assert "induction head scoring ≥ 0.4 (best here 0.100)" in only_induction
    assert "previous-token" not in only_induction
