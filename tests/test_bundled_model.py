"""The bundled gpt2viz-mini model: loads offline, matches its config and its recorded figures.

The figures come from assets/gpt2viz-mini/training.json, written by `python -m training.train`;
these tests recompute them with the same functions (training/evaluate.py) on the committed
held-out sample assets/gpt2viz-mini/val_sample.txt, and check that the model card is the one
training/card.py renders from that record. Generation speed is measured by
bench/bench_bundled.py, not here.
"""

from __future__ import annotations

import json

import pytest
import torch

import gpt2viz
from gpt2viz.analysis import best_head, induction_scores
from gpt2viz.interventions import ablate_heads
from gpt2viz.loading import BUNDLED
from training.card import INDUCTION_TARGET, PREVIOUS_TOKEN_TARGET, render_card
from training.evaluate import CARD_PROMPTS, INDUCTION, eval_loss, greedy, role_scores, second_copy_loss
from training.prepare import encode_sample
from training.train import shipped_config_for

FOLDER = BUNDLED[gpt2viz.BUNDLED_NAME]
MAX_BYTES = 30 * 1000 * 1000
# Recomputed on the machine that trained the model, these figures match training.json exactly;
# the tolerance only absorbs float summation order on other CPUs.
TOL = 1e-4


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
    return encode_sample(tok, (FOLDER / "val_sample.txt").read_text())


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
    loss, n = eval_loss(model, sample_ids, vs["window"])
    assert n == vs["predicted_tokens"] == len(sample_ids) - 1
    assert loss == pytest.approx(vs["loss"], abs=TOL)


def test_head_scores_match_record(model: gpt2viz.GPT2, record: dict, sample_ids: list[int]) -> None:
    n_pos = model.config.n_positions
    assert record["previous_token"]["ids"] == f"first {n_pos} tokens of the encoded val_sample.txt"
    ind_cfg = {k: record["induction"][k] for k in ("seq_len", "n_seqs", "seed")}
    prev, ind = role_scores(model, sample_ids[:n_pos], **ind_cfg)
    torch.testing.assert_close(prev, torch.tensor(record["previous_token"]["scores"]), atol=TOL, rtol=0)
    torch.testing.assert_close(ind, torch.tensor(record["induction"]["scores"]), atol=TOL, rtol=0)
    for scores, key in ((prev, "previous_token"), (ind, "induction")):
        layer, head, score = best_head(scores)
        best = record[key]["best"]
        assert (layer, head) == (best["layer"], best["head"])
        assert score == pytest.approx(best["score"], abs=TOL)
    # the project's targets for a previous-token head and an induction head
    assert best_head(prev)[2] >= PREVIOUS_TOKEN_TARGET
    assert best_head(ind)[2] >= INDUCTION_TARGET


def test_induction_checks_match_record(model: gpt2viz.GPT2, record: dict) -> None:
    # the same test on other id sets, and the best head zero-ablated: recomputed from the weights
    checks = record["induction_checks"]
    for name in ("frequent", "known"):
        scores = induction_scores(model, ids=checks[name]["ids"], **INDUCTION)
        torch.testing.assert_close(scores, torch.tensor(checks[name]["scores"]), atol=TOL, rtol=0)
    layer, head = checks["ablation"]["head"]
    assert (layer, head) == (record["induction"]["best"]["layer"], record["induction"]["best"]["head"])
    edits = ablate_heads([(layer, head)], "zero", config=model.config)
    intact = second_copy_loss(model, **INDUCTION)
    assert intact == pytest.approx(checks["ablation"]["second_copy_loss"], abs=TOL)
    ablated = second_copy_loss(model, **INDUCTION, edits=edits)
    assert ablated == pytest.approx(checks["ablation"]["ablated"], abs=TOL)
    # the head does the copying: without it the second copies are much harder to predict
    assert ablated > intact + 1.0


def test_greedy_continuations_match_record(model: gpt2viz.GPT2, tok: gpt2viz.GPT2Tokenizer,
                                           record: dict) -> None:
    assert list(record["greedy_samples"]) == CARD_PROMPTS
    for prompt, continuation in record["greedy_samples"].items():
        assert greedy(model, tok, prompt) == continuation, prompt


def test_model_card_is_rendered_from_the_record(record: dict) -> None:
    # every figure of the card comes from training.json, which the tests above recompute
    card = (FOLDER / "README.md").read_text()
    assert card == render_card(record, shipped_config_for(record["hyperparameters"]))
    assert f"{record['val_sample']['loss']:.4f}" in card and f"**{record['val_loss']:.3f}**" in card
