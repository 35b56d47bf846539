"""One step from inside: the logit lens, residual norms, the key/value cache's size and cost, and
a step re-run over the cache, each against an independent computation."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import gpt2viz
from gpt2viz import lens
from gpt2viz.budget import nbytes
from gpt2viz.cached_step import cached_step, record_sequence, step_over_cache
from gpt2viz.kv_cache import KVCache, forward_multiply_adds, kv_cache_bytes
from gpt2viz.lens import logit_lens, residual_names, residual_norms

IDS = list(range(500, 523))


@pytest.fixture(scope="module")
def full(small_model) -> gpt2viz.Trace:
    return small_model.run_with_capture(IDS)


def lens_by_hand(model, resid: torch.Tensor) -> torch.Tensor:
    """ln_f with the point's own statistics, then the tied unembedding, then softmax (float64)."""
    x = resid.double()
    x = (x - x.mean(-1, keepdim=True)) / (x.var(-1, unbiased=False, keepdim=True) + 1e-5).sqrt()
    x = x * model.ln_f.weight.detach().double() + model.ln_f.bias.detach().double()
    return (x @ model.wte.weight.detach().double().T).softmax(-1)


def test_logit_lens_against_a_hand_computation(small_model, full, monkeypatch) -> None:
    monkeypatch.setattr(lens, "CHUNK", 5)  # several chunks per point
    got = logit_lens(small_model, full, k=4)
    assert got.labels == ["embeddings", "0: after attention", "0: after MLP", "1: after attention",
                          "1: after MLP"]
    points = [full["resid_pre", 0], full["resid_mid", 0], full["resid_post", 0], full["resid_mid", 1],
              full["resid_post", 1]]
    final_ids = full.logits.argmax(-1)
    assert torch.equal(got.final_ids, final_ids)
    for i, resid in enumerate(points):
        probs = lens_by_hand(small_model, resid)  # [pos, vocab]
        top = probs.topk(4, dim=-1)
        torch.testing.assert_close(got.top_probs[i].double(), top.values, atol=1e-5, rtol=0)
        assert torch.equal(got.top_ids[i], top.indices)
        want = probs.gather(-1, final_ids[:, None])[:, 0]
        torch.testing.assert_close(got.final_token_probs[i].double(), want, atol=1e-5, rtol=0)
    # The last point is the model's own output distribution.
    own = full.logits.softmax(-1).topk(4, dim=-1)
    torch.testing.assert_close(got.top_probs[-1], own.values, atol=1e-6, rtol=0)


def test_logit_lens_of_some_positions_and_of_a_cached_step(small_model, full) -> None:
    everything = logit_lens(small_model, full, k=3)
    some = logit_lens(small_model, full, k=3, positions=[20, 3])
    assert some.positions == [20, 3]
    assert torch.equal(some.top_ids, everything.top_ids[:, [20, 3]])
    cache = _cache_after(small_model, IDS[:-1])
    step = small_model.run_with_capture(IDS[-1:], names=residual_names(2), cache=cache)
    assert step.start == 22
    stepped = logit_lens(small_model, step, k=3)
    assert stepped.positions == [22]
    assert torch.equal(stepped.top_ids[:, 0], everything.top_ids[:, 22])
    with pytest.raises(ValueError, match="Positions must lie in range"):
        logit_lens(small_model, step, positions=[3])


def _cache_after(model, ids: list[int]) -> KVCache:
    cache = model.new_cache()
    model.run_with_capture(ids, names=[], cache=cache)
    return cache


def test_residual_norms_match_the_recorded_sublayer_outputs(small_model, full) -> None:
    norms = residual_norms(full, 2)
    assert norms.resid.shape == (5, len(IDS)) and norms.attn.shape == norms.mlp.shape == (2, len(IDS))
    for layer in range(2):
        torch.testing.assert_close(norms.attn[layer], full["attn_out", layer].norm(dim=-1), atol=1e-4, rtol=0)
        torch.testing.assert_close(norms.mlp[layer], full["mlp_out", layer].norm(dim=-1), atol=1e-4, rtol=0)
    torch.testing.assert_close(norms.resid[0], (full["embed"] + full["pos_embed"]).norm(dim=-1))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_kv_cache_bytes_equal_the_cache_tensors(small_model, dtype) -> None:
    config = small_model.config
    for positions in (1, 17, config.n_positions):
        cache = KVCache(config, batch=1, capacity=positions, device=torch.device("cpu"), dtype=dtype)
        assert kv_cache_bytes(config, positions, dtype) == cache.keys.nbytes + cache.values.nbytes
    # gpt2 (124M) at its full context in float32: 2 · 12 · 1024 · 768 · 4 bytes = 72 MiB
    assert kv_cache_bytes(gpt2viz.GPT2Config(), 1024) == 75_497_472


@pytest.mark.parametrize("new, past", [(12, 0), (1, 11), (4, 7)])
def test_multiply_adds_equal_torchs_count(small_model, new, past) -> None:
    """torch's FLOP counter (2 per multiply-add) on the explicit attention path a recording uses."""
    cache = small_model.new_cache()
    if past:
        small_model.run_with_capture(IDS[:past], names=[], cache=cache)
    with FlopCounterMode(display=False) as counter:
        small_model.run_with_capture(IDS[past:past + new], cache=cache)
    assert counter.get_total_flops() == 2 * forward_multiply_adds(small_model.config, new, past)


def test_cached_step_equals_the_full_rerun(small_model) -> None:
    sequence = record_sequence(small_model, IDS)
    full = small_model.run_with_capture(IDS)
    for q in (0, 1, 9, len(IDS) - 1):
        step = cached_step(small_model, sequence, q)
        assert step.trace.start == q and step.trace.ids == [IDS[q]]
        for layer in range(2):
            # the step's own key row and its attention row over the cache are the full run's
            torch.testing.assert_close(step.trace["k", layer][0], full["k", layer][q], atol=1e-5, rtol=0)
            want = full["pattern", layer][:, q, :q + 1]
            torch.testing.assert_close(step.trace["pattern", layer][:, 0], want, atol=1e-5, rtol=0)
        assert step.max_logit_diff < 1e-4
        # the sequence keeps no logits: the full run's come from its last residual point
        assert sequence.logits is None
        torch.testing.assert_close(step.rerun_logits, full.logits[q], atol=1e-5, rtol=0)
        independent = float((step.logits - full.logits[q]).abs().max())
        assert step.max_logit_diff == pytest.approx(independent, abs=1e-5)
    with pytest.raises(ValueError, match="query_position must lie in 0..22"):
        cached_step(small_model, sequence, 23)


def test_final_choice_logits_by_hand(small_model, full) -> None:
    from gpt2viz.lens import final_choice_logits

    got = final_choice_logits(small_model, full)
    assert got.shape == (5, len(IDS))
    final_ids = full.logits.argmax(-1)
    w_u = small_model.wte.weight.detach().double()
    points = [full["resid_pre", 0], full["resid_mid", 0], full["resid_post", 0], full["resid_mid", 1],
              full["resid_post", 1]]
    for i, resid in enumerate(points):
        x = resid.double()
        x = (x - x.mean(-1, keepdim=True)) / (x.var(-1, unbiased=False, keepdim=True) + 1e-5).sqrt()
        x = x * small_model.ln_f.weight.detach().double() + small_model.ln_f.bias.detach().double()
        want = (x * w_u[final_ids]).sum(-1)
        torch.testing.assert_close(got[i].double(), want, atol=1e-4, rtol=0)
    # the last point is the model's own logit of its top choice
    torch.testing.assert_close(got[-1], full.logits.max(-1).values, atol=1e-4, rtol=0)


def test_a_sequence_without_logits_reads_them_from_its_last_point(small_model, full, monkeypatch) -> None:
    # The app's sequence recording keeps no logits; the lens and its overview take the final
    # choice from the last residual point, CHUNK positions at a time (5 here: several chunks).
    monkeypatch.setattr(lens, "CHUNK", 5)
    sequence = record_sequence(small_model, IDS)
    assert sequence.logits is None
    torch.testing.assert_close(lens.final_logits(small_model, sequence, torch.arange(len(IDS))), full.logits,
                               atol=1e-5, rtol=0)
    without, with_logits = logit_lens(small_model, sequence), logit_lens(small_model, full)
    assert torch.equal(without.final_ids, full.logits.argmax(-1))
    torch.testing.assert_close(without.final_token_probs, with_logits.final_token_probs, atol=1e-5, rtol=0)
    # the display-only points are float16: the overview moves by their rounding, no more
    overview = lens.final_choice_logits(small_model, sequence)
    exact = lens.final_choice_logits(small_model, full)
    torch.testing.assert_close(overview[-1], exact[-1], atol=1e-5, rtol=0)
    torch.testing.assert_close(overview, exact, atol=2e-3 * float(exact.abs().max()), rtol=0)
    assert not torch.equal(overview, exact)


def test_a_sequence_keeps_the_residual_stream_in_float16_but_the_last_point(small_model, full) -> None:
    sequence = record_sequence(small_model, IDS)
    *display_only, last = residual_names(2)
    # (the full run records every hook point and may round its sums differently: 1e-5)
    for name in display_only:  # each point is the full run's, rounded to float16 (2⁻¹¹ relative)
        assert sequence[name].dtype == torch.float16
        torch.testing.assert_close(sequence[name].float(), full[name], atol=1e-5, rtol=2 ** -11)
    assert sequence[last].dtype == torch.float32
    torch.testing.assert_close(sequence[last], full[last], atol=1e-5, rtol=0)
    for name in ("k", "v"):  # float32 copies, not views of the fused q, k, v projection
        kept = sequence[name, 0]
        torch.testing.assert_close(kept, full[name, 0], atol=1e-5, rtol=0)
        assert kept.untyped_storage().nbytes() == kept.numel() * kept.element_size()
    d_model, n = small_model.config.n_embd, len(IDS)
    assert nbytes(sequence) == n * d_model * (2 * len(display_only) + 4 + 2 * 2 * 4)
    # the norms read the float16 points in float32: within their rounding of the exact ones
    norms, exact = residual_norms(sequence, 2), residual_norms(full, 2)
    torch.testing.assert_close(norms.resid, exact.resid, atol=0, rtol=1e-3)
    torch.testing.assert_close(norms.mlp, exact.mlp, atol=2e-3 * float(exact.resid.max()), rtol=0)


def test_a_generations_keys_and_values_serve_a_step_as_a_full_run_does(small_model, tok) -> None:
    """A finished generation kept with `retain_cache` hands over the keys and values it computed
    step by step: they equal a full run's, and a position re-run over them gives the full run's
    logits and direct logit attribution."""
    from gpt2viz.attribution import direct_logit_attribution

    generation = gpt2viz.Generation(small_model, tok, IDS[:15], max_new_tokens=6, record=False,
                                    retain_cache=True)
    for _ in generation:
        pass
    ids = generation.ids
    kept = generation.key_values()
    assert kept.ids == ids[:-1] and kept.start == 0  # the last token chosen was never run
    whole = small_model.run_with_capture(ids)
    for layer in range(2):
        torch.testing.assert_close(kept["k", layer], whole["k", layer][:-1], atol=1e-5, rtol=0)
        torch.testing.assert_close(kept["v", layer], whole["v", layer][:-1], atol=1e-5, rtol=0)
    for position in (0, 14, 17, len(ids) - 1):
        step = step_over_cache(small_model, kept, position, ids[position])
        assert step.start == position and step.ids == [ids[position]]
        torch.testing.assert_close(step.logits[-1], whole.logits[position], atol=1e-4, rtol=0)
        target, distractor = whole.logits[position].topk(2).indices.tolist()
        over_cache = direct_logit_attribution(small_model, step, position, target, distractor)
        full_run = direct_logit_attribution(small_model, whole, position, target, distractor)
        torch.testing.assert_close(over_cache.heads, full_run.heads, atol=1e-4, rtol=0)
        assert over_cache.total == pytest.approx(full_run.total, abs=1e-4)
    with pytest.raises(ValueError, match="every position before it"):
        step_over_cache(small_model, kept, len(ids), 0)
    handed = generation.release_key_values()
    assert handed.ids == kept.ids and generation.key_values() is None


def test_a_generation_frees_its_cache_at_the_end_unless_kept(small_model, tok) -> None:
    freed = gpt2viz.Generation(small_model, tok, IDS[:5], max_new_tokens=2, record=False)
    assert freed.key_values().ids == []  # nothing run yet
    freed.advance()
    assert freed.key_values().ids == IDS[:5]
    with pytest.raises(RuntimeError, match="finished"):
        freed.release_key_values()
    freed.advance()
    assert freed.key_values() is None
    kept = gpt2viz.Generation(small_model, tok, IDS[:5], max_new_tokens=2, record=False, retain_cache=True)
    gpt2viz.advance_together([kept])
    gpt2viz.advance_together([kept])  # batched steps keep it too
    assert kept.finished and kept.key_values().ids == kept.ids[:-1]
