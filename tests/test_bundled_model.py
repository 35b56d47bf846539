"""The bundled gpt2viz-mini model: loads offline, matches its config and its recorded figures.

The figures come from assets/gpt2viz-mini/training.json, written by
scripts/train_bundled_model.py; the validation-loss check recomputes the loss on the committed
held-out sample assets/gpt2viz-mini/val_sample.txt exactly as the training script did.
"""

from __future__ import annotations

import json
import math
import time

import pytest
import torch
import torch.nn.functional as F

import gpt2viz
from gpt2viz.analysis import best_head, induction_scores, previous_token_scores
from gpt2viz.loading import BUNDLED

FOLDER = BUNDLED[gpt2viz.BUNDLED_NAME]
MAX_BYTES = 30 * 1000 * 1000


@pytest.fixture(scope="module")
def record() -> dict:
    return json.loads((FOLDER / "training.json").read_text())


@pytest.fixture(scope="module")
def model() -> gpt2viz.GPT2:
    return gpt2viz.load_model(gpt2viz.BUNDLED_NAME, device="cpu")


@pytest.fixture(scope="module")
def tok() -> gpt2viz.GPT2Tokenizer:
    return gpt2viz.load_tokenizer()


@pytest.fixture(scope="module")
def sample_ids(tok: gpt2viz.GPT2Tokenizer) -> list[int]:
    text = (FOLDER / "val_sample.txt").read_text()
    return [gpt2viz.EOT_ID] + tok.encode(text, allowed_special={"<|endoftext|>"})


def test_files_present_and_small() -> None:
    for name in ("config.json", "model.safetensors", "README.md", "training.json", "val_sample.txt"):
        assert (FOLDER / name).is_file(), name
    assert (FOLDER / "model.safetensors").stat().st_size <= MAX_BYTES


def test_loads_offline_and_matches_config(model: gpt2viz.GPT2, record: dict) -> None:
    # the autouse no_network fixture (conftest.py) makes any non-loopback connection fail
    raw = json.loads((FOLDER / "config.json").read_text())
    assert gpt2viz.GPT2Config.from_hf_dict(raw) == model.config
    assert raw == record["config"]
    assert model.name == gpt2viz.BUNDLED_NAME
    assert model.config.vocab_size == 50257 and model.config.tie_word_embeddings
    assert sum(p.numel() for p in model.parameters()) == record["parameters"]
    assert (FOLDER / "model.safetensors").stat().st_size == record["file_bytes"]


def test_validation_loss_matches_record(model: gpt2viz.GPT2, record: dict,
                                        sample_ids: list[int]) -> None:
    vs = record["val_sample"]
    assert len(sample_ids) == vs["tokens"]
    ids = torch.tensor(sample_ids)
    total, n = 0.0, 0
    with torch.inference_mode():
        for s in range(0, len(ids) - 1, vs["window"]):
            chunk = ids[s:s + vs["window"] + 1]
            logits = model(chunk[:-1][None])[0]
            total += F.cross_entropy(logits.float(), chunk[1:], reduction="sum").item()
            n += len(chunk) - 1
    assert n == vs["predicted_tokens"]
    assert total / n == pytest.approx(vs["loss"], abs=2e-3)
    # the model card shows the same figures
    card = (FOLDER / "README.md").read_text()
    assert f"{vs['loss']:.4f}" in card
    assert f"{record['val_loss']:.3f}" in card and f"{math.exp(record['val_loss']):.1f}" in card


def test_head_scores_match_record(model: gpt2viz.GPT2, record: dict, sample_ids: list[int]) -> None:
    prev = previous_token_scores(model, [sample_ids[:model.config.n_positions]])
    ind_cfg = {k: record["induction"][k] for k in ("seq_len", "n_seqs", "seed")}
    ind = induction_scores(model, **ind_cfg)
    assert torch.allclose(prev, torch.tensor(record["previous_token"]["scores"]), atol=2e-3)
    assert torch.allclose(ind, torch.tensor(record["induction"]["scores"]), atol=2e-3)
    for scores, key in ((prev, "previous_token"), (ind, "induction")):
        layer, head, score = best_head(scores)
        best = record[key]["best"]
        assert score == pytest.approx(best["score"], abs=2e-3)
        assert scores[best["layer"], best["head"]].item() == pytest.approx(best["score"], abs=2e-3)
    # the project's target for a previous-token head (the induction target, ≥ 0.4, is not met yet:
    # the model card says what was reached and why)
    assert best_head(prev)[2] >= 0.5


def test_generation_with_full_recording_is_fast(model: gpt2viz.GPT2, tok: gpt2viz.GPT2Tokenizer,
                                                sample_ids: list[int]) -> None:
    prompt = sample_ids[1:65]
    start = time.perf_counter()
    steps = list(gpt2viz.generate(model, tok, prompt, max_new_tokens=32, temperature=0.0))
    seconds = time.perf_counter() - start
    print(f"gpt2viz-mini: 64-token prompt + 32 generated tokens, all hooks recorded: {seconds:.2f} s")
    assert len(steps) == 32
    assert "blocks.0.attn.hook_pattern" in steps[-1].trace.names()
    # generous: the point is "interactive on a laptop CPU", not a benchmark; the 2 CPU cores of
    # the test machine may be shared with other jobs
    assert seconds < 10.0
