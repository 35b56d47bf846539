"""scripts/train_bundled_model.py: its data, its losses, and a tiny run end to end.

The committed gpt2viz-mini came from this script; these tests keep its pieces honest (the
sampled softmax equals the full one over the whole vocabulary, the synthetic windows are
predictable exactly where their targets count) and run it on a made-up two-document corpus.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import gpt2viz
from gpt2viz.tokenizer import EOT_ID

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "train_bundled_model.py"


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("train_bundled_model", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tiny() -> gpt2viz.GPT2:
    torch.manual_seed(0)
    return gpt2viz.GPT2(gpt2viz.GPT2Config(n_positions=64, n_embd=32, n_layer=2, n_head=2))


def test_synthetic_windows_count_only_predictable_targets(script) -> None:
    pool = np.arange(EOT_ID)
    x, y = script.synthetic_batch(np.random.default_rng(0), batch=3, T=200, len_max=30, pool=pool)
    assert x.shape == y.shape == (3, 200)
    assert (x[:, 0] == EOT_ID).all() and (x < EOT_ID).sum() == 3 * 199
    kept = y >= 0
    assert 0.35 < kept.float().mean() < 0.55  # about half: the second copies
    for b in range(3):
        for t in torch.nonzero(kept[b]).flatten().tolist():
            assert y[b, t] == x[b, t + 1] if t + 1 < 200 else True
            assert int(y[b, t]) in x[b, :t + 1].tolist()  # it occurred before: induction can predict it


def test_synthetic_pool_is_the_most_frequent_ids(script) -> None:
    train = np.array([7, 7, 7, 3, 3, 9, EOT_ID, EOT_ID, EOT_ID, EOT_ID], dtype=np.uint16)
    assert script.synthetic_pool(train, 2).tolist() == [3, 7]  # never <|endoftext|>
    assert len(script.synthetic_pool(train, 0)) == EOT_ID
    x, _ = script.synthetic_batch(np.random.default_rng(1), 2, 50, 10, script.synthetic_pool(train, 2))
    assert set(x[:, 1:].flatten().tolist()) == {3, 7}


def test_residuals_reproduce_the_model_forward(script, tiny: gpt2viz.GPT2) -> None:
    x = torch.randint(0, 50257, (2, 17))
    final, after_first = script.residuals(tiny, x)
    assert final.requires_grad and after_first.requires_grad  # both train the model
    torch.testing.assert_close(F.linear(final, tiny.wte.weight), tiny(x))
    h = tiny.wte(x) + tiny.wpe(torch.arange(17))
    torch.testing.assert_close(after_first, tiny.h[0](h, None, None))


def test_candidate_loss_over_every_id_is_the_full_softmax(script, tiny: gpt2viz.GPT2) -> None:
    hidden = torch.randn(5, 32)
    targets = torch.tensor([3, 50256, 7, 7, 1000])
    full = F.cross_entropy(hidden @ tiny.wte.weight.T, targets)
    every = torch.arange(50257)
    torch.testing.assert_close(script.candidate_loss(hidden, targets, tiny.wte.weight, every), full)
    some = torch.tensor([3, 7, 1000, 50256])
    assert script.candidate_loss(hidden, targets, tiny.wte.weight, some) < full  # fewer rivals


def test_text_step_is_plain_next_token_loss(script, tiny: gpt2viz.GPT2) -> None:
    args = script.parse_args(["--bf16", "0", "--prev-aux", "1"])
    x = torch.randint(0, 50257, (2, 9))
    y = torch.randint(0, 50257, (2, 9))
    total, main = script.step_loss(tiny, None, x, y, False, args, np.random.default_rng(0))
    assert total.item() == pytest.approx(main)
    assert main == pytest.approx(script.lm_loss(tiny, x, y, bf16=False).item(), rel=1e-5)
    probe = script.PrevTokenProbe(32)
    with_probe, main2 = script.step_loss(tiny, probe, x, y, False, args, np.random.default_rng(0))
    assert main2 == pytest.approx(main) and with_probe.item() > main + 1.0  # the probe adds its loss


def test_tiny_run_end_to_end(script, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    brown = "The jury said that the city had done well. " * 30
    python = "Python functions return values. def f(x): return x + 1\n" * 30
    (corpus / "train.txt").write_text(f"{brown}\n<|endoftext|>\n{python}\n")
    (corpus / "val.txt").write_text(f"{brown}\n<|endoftext|>\n{python}\n")
    (corpus / "SOURCES.json").write_text(json.dumps({"sources": []}))
    out = tmp_path / "out"
    script.main(["--corpus", str(corpus), "--cache", str(tmp_path / "tokens"), "--out", str(out),
                 "--n-layer", "1", "--n-head", "2", "--n-embd", "32", "--n-positions", "128",
                 "--seq-len", "32", "--batch-size", "2", "--steps", "4", "--eval-every", "2",
                 "--synthetic-frac", "0.5", "--synthetic-pool", "20", "--prev-aux", "1", "--negatives", "64",
                 "--repeat-frac", "1",
                 "--final-eval-tokens", "64", "--sample-chars", "200"])
    record = json.loads((out / "training.json").read_text())
    assert record["steps"] == 4 and record["tokens_seen"] == 4 * 2 * 32
    assert [h["step"] for h in record["history"]] == [2, 4]
    assert record["hyperparameters"]["prev_aux"] == 1.0
    model = gpt2viz.load_model(str(out))
    assert model.config.n_embd == 32 and "probe" not in " ".join(n for n, _ in model.named_parameters())
    card = (out / "README.md").read_text()
    assert f"{record['val_loss']:.3f}" in card
    # the card says how the run trained and which head targets a 4-step model misses
    assert "**Synthetic steps.**" in card and "**Previous-token probe (an auxiliary objective).**" in card
    assert "50% synthetic steps" in card and "previous-token probe weight 1.0" in card
    assert "**Targets not reached:**" in card and "an induction head scoring ≥ 0.4" in card


def test_card_states_only_the_missed_targets(script) -> None:
    assert script.targets_text(0.9, 0.6, 10**6) == ""
    only_induction = script.targets_text(0.9, 0.1, 10**6)
    assert "induction head scoring ≥ 0.4 (best here 0.100)" in only_induction
    assert "previous-token" not in only_induction
