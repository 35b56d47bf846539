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
from training.objectives import candidate_loss, pool_loss, synthetic_loss
from training.prepare import Batches, known_ids, synthetic_pool, toy_batch
from training.train import TrainConfig, lr_at, main, parse_args, parse_head, run_hparams, shipped_config_for

SHIPPED = "training/config/gpt2viz_mini.json"


@pytest.fixture(scope="module")
def tiny() -> gpt2viz.GPT2:
    torch.manual_seed(0)
    return gpt2viz.GPT2(gpt2viz.GPT2Config(n_positions=64, n_embd=32, n_layer=2, n_head=2))


def test_synthetic_pool_is_the_most_frequent_ids_and_known_ids_the_next_ones() -> None:
    train = np.array([7, 7, 7, 3, 3, 9, 9, 9, 9, 5, EOT_ID, EOT_ID, EOT_ID, EOT_ID, EOT_ID], dtype=np.uint16)
    assert synthetic_pool(train, 2).tolist() == [7, 9]  # never <|endoftext|>
    assert synthetic_pool(train, 0).tolist() == list(range(EOT_ID))
    assert known_ids(train, skip=2, size=2).tolist() == [3, 5]  # ranked 3rd and 4th, sorted
    x, y, _ = toy_batch(np.random.default_rng(1), 2, 50, 4, 10, synthetic_pool(train, 2))
    assert set(x[:, 1:].flatten().tolist()) == {7, 9} and (x[:, 0] == EOT_ID).all()
    assert set(y[y >= 0].tolist()) <= {7, 9}


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


def test_pool_loss_is_the_models_softmax_over_the_pool_at_counted_targets(tiny: gpt2viz.GPT2) -> None:
    pool = torch.tensor([5, 17, 300, 4000, 50000])
    x, y, keys = toy_batch(np.random.default_rng(0), 3, 40, 4, 12, pool.numpy())
    logits = tiny(x)[:, :, pool]  # [B, T, 5]: the model's own forward, restricted by hand
    keep = y >= 0
    expected = F.cross_entropy(logits[keep], torch.searchsorted(pool, y[keep]))
    loss = pool_loss(tiny, x, y, pool, bf16=False)
    assert loss.requires_grad
    torch.testing.assert_close(loss, expected)
    # the guide adds −log of head 1.1's attention to each induction key, from the recorded pattern
    total, main = synthetic_loss(tiny, x, y, keys, pool, False, (1, 1), 0.5)
    assert main == pytest.approx(expected.item(), rel=1e-5)
    patterns = [tiny.run_with_capture(x[i].tolist(), names=["blocks.1.attn.hook_pattern"])["pattern", 1][1]
                for i in range(3)]  # head 1.1, each window recorded on its own
    b, t = torch.nonzero(keys >= 0, as_tuple=True)
    pairs = zip(b.tolist(), t.tolist(), strict=True)
    guide = -torch.stack([torch.log(patterns[i][j, keys[i, j]]) for i, j in pairs]).mean()
    assert total.item() == pytest.approx(main + 0.5 * guide.item(), rel=1e-5)


def test_candidate_loss_over_every_id_is_the_full_softmax(tiny: gpt2viz.GPT2) -> None:
    hidden = torch.randn(5, 32)
    targets = torch.tensor([3, 50256, 7, 7, 1000])
    full = F.cross_entropy(hidden @ tiny.wte.weight.T, targets)
    every = torch.arange(50257)
    torch.testing.assert_close(candidate_loss(hidden, targets, tiny.wte.weight, every), full)
    some = torch.tensor([3, 7, 1000, 50256])
    assert candidate_loss(hidden, targets, tiny.wte.weight, some) < full  # fewer rivals
    with pytest.raises(ValueError, match="every target must be one of the candidates"):
        candidate_loss(hidden, targets, tiny.wte.weight, torch.tensor([3, 7, 50256]))


def test_shipped_config_is_the_last_run_of_the_bundled_model() -> None:
    record = json.loads((BUNDLED[gpt2viz.BUNDLED_NAME] / "training.json").read_text())
    cfg, action = parse_args(["--config", str(ROOT / SHIPPED), "--device", "cpu"])
    assert action == "train" and cfg.device == "cpu"
    # the run recorded where it trained (the CPU here); the config file leaves the device to the flag
    assert run_hparams(cfg) == record["hyperparameters"] and record["hyperparameters"]["device"] == "cpu"
    assert cfg.out == Path("data/mini_v2")  # like that run: the bundled weights stay untouched
    assert shipped_config_for(record["hyperparameters"]) == SHIPPED
    # flags given after the config win over it
    cfg, _ = parse_args(["--config", str(ROOT / SHIPPED), "--steps", "7"])
    assert cfg.steps == 7 and cfg.lr == 1e-3


def test_learning_rate_warms_up_holds_then_decays() -> None:
    cfg = TrainConfig(lr=1.0, warmup=2, hold=3, steps=10, min_lr_frac=0.1)
    assert [lr_at(s, cfg) for s in range(6)] == [0.5, 1.0, 1.0, 1.0, 1.0, 1.0]  # warm-up, then held
    assert lr_at(6, cfg) < 1.0 and lr_at(8, cfg) < lr_at(7, cfg)  # the cosine starts after the hold
    assert lr_at(10, cfg) == pytest.approx(0.1) and lr_at(50, cfg) == pytest.approx(0.1)


def test_induction_head_flag_is_checked_against_the_model() -> None:
    config = gpt2viz.GPT2Config(n_layer=4, n_head=4, n_embd=64)
    assert parse_head("1.0", config) == (1, 0) and parse_head("3.3", config) == (3, 3)
    for bad in ("1", "a.b", "1.0.2"):
        with pytest.raises(SystemExit, match="write layer.head"):
            parse_head(bad, config)
    with pytest.raises(SystemExit, match="layers 0..3 and heads 0..3"):
        parse_head("9.0", config)


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
          "--synthetic-frac", "0.5", "--synthetic-first", "1", "--synthetic-pool", "20",
          "--synthetic-batch-size", "3", "--synthetic-seq-len", "24", "--synthetic-len-max", "12",
          "--induction-aux", "0.5", "--induction-head", "0.1", "--synthetic-pool-later", "0",
          "--repeat-frac", "1", "--final-eval-tokens", "64", "--sample-chars", "200", "--device", "cpu"])
    record = json.loads((out / "training.json").read_text())
    synthetic = record["synthetic_steps"]
    assert record["steps"] == 4 and 1 <= synthetic <= 4
    assert record["tokens_seen"] == synthetic * 3 * 24 + (4 - synthetic) * 2 * 32
    assert [h["step"] for h in record["history"]] == [2, 4]
    assert record["hyperparameters"]["synthetic_first"] == 1 and record["hyperparameters"]["device"] == "cpu"
    assert record["hyperparameters"]["synthetic_pool_later"] == 0
    assert record["command"].startswith("python -m training.train --corpus")
    model = gpt2viz.load_model(str(out), device="cpu")
    assert model.config.n_embd == 32
    assert (out / "val_sample.txt").read_text().count(EOT_TEXT) == 1
    card = (out / "README.md").read_text()
    assert f"{record['val_loss']:.3f}" in card
    # the card says how the run trained and which head targets a 4-step model misses
    assert "**Synthetic steps.**" in card and "**Induction guide (an auxiliary objective).**" in card
    assert "**Previous-token probe" not in card  # no run of this model used one
    assert "the first 1 steps synthetic, 50% synthetic steps" in card
    assert "induction guide weight 0.5 on head 0.1" in card
    assert "**Targets not reached:**" in card and "an induction head scoring ≥ 0.4" in card
    checks = record["induction_checks"]
    best = record["induction"]["best"]
    assert checks["ablation"]["head"] == [best["layer"], best["head"]]
    assert f"zero-ablated {checks['ablation']['ablated']:.3f}" in card
    assert "bf16 autocast on CPU" in card
    assert "scripts/train_bundled_model.py" not in card and SHIPPED not in card


def test_card_states_only_the_missed_targets() -> None:
    assert targets_text(0.9, 0.6, 10**6) == ""
    only_induction = targets_text(0.9, 0.1, 10**6)
    assert "induction head scoring ≥ 0.4 (best here 0.100)" in only_induction
    assert "previous-token" not in only_induction
