"""Our GPT-2 against Hugging Face transformers on the same random weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import gpt2viz
from tests.conftest import SMALL, make_hf_model, write_hub_layout

SHAPES = {
    "small": SMALL,
    "odd": dict(n_layer=3, n_head=3, n_embd=48, n_positions=64, n_inner=100, vocab_size=1000),
    "one_head": dict(n_layer=1, n_head=1, n_embd=32, n_positions=32, vocab_size=500),
}


def compare(ours: gpt2viz.GPT2, hf, ids: list[int]) -> None:
    trace = ours.run_with_capture(ids)
    with torch.no_grad():
        out = hf(torch.tensor([ids]), output_attentions=True, output_hidden_states=True)
    torch.testing.assert_close(trace.logits, out.logits[0], atol=1e-4, rtol=0)
    for layer, attn in enumerate(out.attentions):
        torch.testing.assert_close(trace["pattern", layer], attn[0], atol=1e-5, rtol=0)
        # HF's hidden_states[i] is the residual stream entering block i.
        torch.testing.assert_close(trace["resid_pre", layer], out.hidden_states[layer][0],
                                   atol=1e-4, rtol=0)
    # ...and its last entry is after the final LayerNorm: our pre-affine hook, then ln_f's affine.
    ln_f = ours.ln_f
    after_ln_f = trace["ln_final.hook_normalized"] * ln_f.weight.detach() + ln_f.bias.detach()
    torch.testing.assert_close(after_ln_f, out.hidden_states[-1][0], atol=1e-4, rtol=0)
    # Without a recorder the fused attention path must give the same logits.
    with torch.inference_mode():
        plain = ours(torch.tensor([ids]))[0]
    torch.testing.assert_close(plain, out.logits[0], atol=1e-4, rtol=0)


@pytest.mark.parametrize("layout", ["save_pretrained", "hub"])
@pytest.mark.parametrize("shape", list(SHAPES))
def test_matches_transformers(shape: str, layout: str, tmp_path: Path) -> None:
    hf = make_hf_model(seed=1, **SHAPES[shape])
    if layout == "hub":
        write_hub_layout(hf, tmp_path)
    else:
        hf.save_pretrained(tmp_path)
    ours = gpt2viz.load_model(tmp_path, device="cpu")
    n_pos, vocab = hf.config.n_positions, hf.config.vocab_size
    ids = torch.randint(0, vocab, (n_pos,), generator=torch.Generator().manual_seed(2)).tolist()
    compare(ours, hf, ids)  # the whole context
    compare(ours, hf, ids[:5])


@pytest.mark.slow
def test_full_gpt2_small_configuration(tmp_path: Path) -> None:
    """The real 124M shape (12 layers, 12 heads, 768 wide, 1024 context, 50257 tokens)."""
    hf = make_hf_model(seed=3)
    write_hub_layout(hf, tmp_path)
    ours = gpt2viz.load_model(tmp_path, device="cpu")
    assert sum(p.numel() for p in ours.parameters()) == 124_439_808
    ids = torch.randint(0, 50257, (96,), generator=torch.Generator().manual_seed(4)).tolist()
    compare(ours, hf, ids)
    steps = list(gpt2viz.generate(ours, gpt2viz.load_tokenizer(), ids[:12], max_new_tokens=8))
    expected = hf.generate(torch.tensor([ids[:12]]), max_new_tokens=8, do_sample=False)
    assert [s.token_id for s in steps] == expected[0, 12:].tolist()


@pytest.mark.parametrize("record", [True, False])  # False: only the last position is unembedded
@pytest.mark.parametrize("use_cache", [True, False])
def test_greedy_generation_matches_transformers(small_hf, small_model, tok, use_cache: bool,
                                                record: bool) -> None:
    prompt = tok.encode("The quick brown fox")
    steps = list(gpt2viz.generate(small_model, tok, prompt, max_new_tokens=30, use_cache=use_cache,
                                  record=record))
    with torch.no_grad():
        expected = small_hf.generate(torch.tensor([prompt]), max_new_tokens=30, do_sample=False,
                                     use_cache=use_cache, pad_token_id=gpt2viz.EOT_ID)
    got = [s.token_id for s in steps]
    want = expected[0, len(prompt):].tolist()
    # transformers also stops after writing <|endoftext|> (the config's eos), and keeps that token
    assert got == want
    ended = want[-1] == gpt2viz.EOT_ID
    assert steps[-1].stop_reason == (gpt2viz.STOP_ENDOFTEXT if ended else gpt2viz.STOP_MAX_TOKENS)


def test_cached_steps_equal_an_uncached_full_run(small_model, tok) -> None:
    """Each cached step's new attention row equals that row of one full forward pass."""
    prompt = tok.encode("Attention is all you need, they said")
    steps = list(gpt2viz.generate(small_model, tok, prompt, max_new_tokens=6))
    ids = prompt + [s.token_id for s in steps]
    full = small_model.run_with_capture(ids[:-1])
    for step in steps[1:]:
        q = step.trace.start
        assert step.trace.ids == [ids[q]]
        for name in ("blocks.1.attn.hook_pattern", "blocks.1.attn.hook_attn_scores"):
            torch.testing.assert_close(step.trace[name][:, 0], full[name][:, q, : q + 1],
                                       atol=1e-5, rtol=0)
        torch.testing.assert_close(step.trace.logits[0], full.logits[q], atol=1e-4, rtol=0)
    # The first step's trace is the prompt itself.
    assert steps[0].trace.ids == prompt and steps[0].trace.start == 0


def test_next_token_logits_unembed_only_the_last_position(small_model) -> None:
    from torch.utils.flop_counter import FlopCounterMode

    ids = list(range(200, 230))
    edits = {"blocks.0.attn.hook_z": lambda z: z * 0}
    for how in (None, edits):
        full = small_model.run_with_capture(ids, names=[], edits=how)
        got = small_model.next_token_logits(ids, how)
        assert got.shape == (small_model.config.vocab_size,) and got.dtype == torch.float32
        torch.testing.assert_close(got, full.logits[-1], atol=1e-5, rtol=0)
    with FlopCounterMode(display=False) as whole:
        small_model.run_with_capture(ids, names=[])
    with FlopCounterMode(display=False) as last:
        small_model.next_token_logits(ids)
    config = small_model.config  # the unembedding's 2·d_model·vocab flops, for 29 positions fewer
    assert whole.get_total_flops() - last.get_total_flops() == 2 * 29 * config.n_embd * config.vocab_size
