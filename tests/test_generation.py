"""Step-by-step generation: sampling, stop reasons, bad prompts."""

from __future__ import annotations

import pytest
import torch

import gpt2viz


def tokens(steps) -> list[int]:
    return [s.token_id for s in steps]


def test_steps_carry_token_alternatives_and_trace(small_model, tok) -> None:
    steps = list(gpt2viz.generate(small_model, tok, "Once upon a time", max_new_tokens=4))
    assert [s.index for s in steps] == [0, 1, 2, 3]
    prompt_len = len(tok.encode("Once upon a time"))
    assert [s.position for s in steps] == list(range(prompt_len, prompt_len + 4))
    for s in steps:
        assert s.text == tok.token_text(s.token_id)
        probs = [p for _, _, p in s.top]
        assert len(s.top) == 10 and probs == sorted(probs, reverse=True)
        assert s.top[0][0] == s.token_id  # greedy picks the most likely
        assert s.prob == pytest.approx(probs[0])
        assert s.trace.logits.shape[0] == len(s.trace.ids)
    assert steps[2].trace["blocks.0.attn.hook_pattern"].shape == (4, 1, prompt_len + 2)
    assert [s.stop_reason for s in steps] == [None, None, None, gpt2viz.STOP_MAX_TOKENS]


def test_record_false_and_name_selection(small_model, tok) -> None:
    assert all(s.trace is None for s in gpt2viz.generate(small_model, tok, "Hi", 3, record=False))
    step = next(gpt2viz.generate(small_model, tok, "Hi", 3, names=["blocks.1.attn.hook_pattern"]))
    assert step.trace.names() == ["blocks.1.attn.hook_pattern"]


def test_sampling_is_reproducible_with_a_seed(small_model, tok) -> None:
    run = lambda seed: tokens(gpt2viz.generate(  # noqa: E731
        small_model, tok, "The weather", 12, temperature=1.0, top_k=50, top_p=0.95, seed=seed))
    assert run(7) == run(7)
    assert run(7) != run(8)
    assert run(7) != tokens(gpt2viz.generate(small_model, tok, "The weather", 12))


def test_sampling_honours_top_k(small_model, tok) -> None:
    for step in gpt2viz.generate(small_model, tok, "Sample", 10, temperature=5.0, top_k=3, seed=1):
        assert step.token_id in [t for t, _, _ in step.top[:3]]


def test_stops_at_the_context_limit(small_model, tok) -> None:
    # The small model's context is 128 positions.
    steps = list(gpt2viz.generate(small_model, tok, list(range(1000, 1120)), max_new_tokens=50))
    assert len(steps) == 8 and steps[-1].stop_reason == gpt2viz.STOP_CONTEXT
    assert steps[-1].position == 127


def test_stops_at_endoftext(small_model, tok) -> None:
    # A copy of the model whose final state is always ln_f.bias, and whose <|endoftext|>
    # embedding points along it, so <|endoftext|> is always the most likely token.
    model = gpt2viz.load_model(small_model.name, device="cpu")
    with torch.no_grad():
        model.wte.weight[gpt2viz.EOT_ID] = model.ln_f.bias * 100
        model.ln_f.weight.zero_()
    steps = list(gpt2viz.generate(model, tok, "Stop here", max_new_tokens=5))
    assert len(steps) == 1
    assert steps[0].token_id == gpt2viz.EOT_ID and steps[0].stop_reason == gpt2viz.STOP_ENDOFTEXT


@pytest.mark.parametrize("prompt, message", [
    ("", "empty"), ("   \n\t ", "only whitespace"), ([], "empty"),
    (list(range(128)), "128 tokens; this model's context holds 128"),
    (list(range(500)), "Shorten it by 373 tokens"),
    ([50257], "outside this model's vocabulary"),
])
def test_bad_prompts_get_clear_errors(small_model, tok, prompt, message) -> None:
    with pytest.raises(gpt2viz.PromptError, match=message):
        list(gpt2viz.generate(small_model, tok, prompt, max_new_tokens=2))


def test_a_prompt_too_long_gets_one_message_whoever_runs_it(small_model, tok) -> None:
    """Generating (one position kept free) and only reading the prompt name the same cut: to 127
    tokens of the 128-token context."""
    prompt = list(range(1000, 1500))  # 500 tokens
    want = ("The prompt is 500 tokens; this model's context holds 128, and generating keeps one of them "
            "free for the new token. Shorten it by 373 tokens or more (to 127 at most).")
    assert gpt2viz.errors.prompt_too_long(500, 128) == want
    said = []
    for run in (lambda: gpt2viz.Generation(small_model, tok, prompt),
                lambda: gpt2viz.encode_prompt(small_model, tok, prompt, reserve=0),
                lambda: small_model.next_token_logits(prompt),
                lambda: small_model.run_with_capture(prompt)):
        with pytest.raises(gpt2viz.PromptError) as err:
            run()
        said.append(str(err.value))
    assert said == [want] * 4
    # a prompt that fills the context runs where nothing is generated, and needs one token fewer to generate
    full = list(range(1000, 1128))
    assert gpt2viz.encode_prompt(small_model, tok, full, reserve=0) == full
    with pytest.raises(gpt2viz.PromptError, match=r"Shorten it by 1 token or more \(to 127 at most\)\.$"):
        gpt2viz.Generation(small_model, tok, full)
    long = gpt2viz.errors.prompt_too_long(3000, 1024)
    assert long.startswith("The prompt is 3,000 tokens; this model's context holds 1,024,")
    assert long.endswith("Shorten it by 1,977 tokens or more (to 1,023 at most).")


@pytest.mark.parametrize("kwargs, message", [
    (dict(temperature=-1.0), "temperature"), (dict(top_k=0), "top_k"),
    (dict(top_p=0.0), "top_p"), (dict(top_p=1.5), "top_p"), (dict(max_new_tokens=0), "max_new"),
])
def test_bad_sampling_settings(small_model, tok, kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        list(gpt2viz.generate(small_model, tok, "Hi", **kwargs))


def test_unusual_prompts_generate(small_model, tok) -> None:
    for prompt in ["<|endoftext|>", "🤖 مرحبا \u200b", "<script>alert(1)</script><b>x</b>"]:
        steps = list(gpt2viz.generate(small_model, tok, prompt, max_new_tokens=2))
        assert steps[0].trace.ids == tok.encode(prompt)
        assert gpt2viz.EOT_ID not in steps[0].trace.ids


def same_step(a: gpt2viz.Step, b: gpt2viz.Step) -> None:
    assert (a.index, a.position, a.token_id, a.text, a.stop_reason) == (b.index, b.position, b.token_id,
                                                                       b.text, b.stop_reason)
    assert a.top == b.top and a.prob == b.prob
    assert torch.equal(a.attention_row, b.attention_row)


@pytest.mark.parametrize("kwargs", [dict(), dict(temperature=0.9, top_k=40, top_p=0.9, seed=3)])
def test_generation_gives_generates_steps_and_resumes_anywhere(small_model, tok, kwargs) -> None:
    expected = list(gpt2viz.generate(small_model, tok, "Resume me", max_new_tokens=7, **kwargs))
    for pause_after in range(0, 8):
        g = gpt2viz.Generation(small_model, tok, "Resume me", max_new_tokens=7, **kwargs)
        first = [g.advance() for _ in range(pause_after)]
        assert g.ids == g.prompt_ids + [s.token_id for s in first]
        rest = list(g)  # iterating goes on from where advance() stopped
        for got, want in zip(first + rest, expected, strict=True):
            same_step(got, want)
            torch.testing.assert_close(got.trace.logits, want.trace.logits, atol=0, rtol=0)
        assert g.finished and g.stop_reason == gpt2viz.STOP_MAX_TOKENS
        assert g.ids == g.prompt_ids + [s.token_id for s in expected]
    with pytest.raises(RuntimeError, match="has finished"):
        g.advance()


def test_generation_keeps_steps_compactly(small_model, tok) -> None:
    g = gpt2viz.Generation(small_model, tok, "Keep it small", max_new_tokens=4)
    returned = [g.advance() for _ in range(4)]
    n_prompt = len(g.prompt_ids)
    for i, (kept, step) in enumerate(zip(g.steps, returned, strict=True)):
        assert kept.trace is None and step.trace is not None
        assert kept.query_position == n_prompt + i - 1
        row = kept.attention_row
        assert row.dtype == torch.float16 and row.shape == (2, 4, n_prompt + i)
        want = torch.stack([step.trace["pattern", layer][:, -1] for layer in range(2)])
        torch.testing.assert_close(row.float(), want, atol=1e-3, rtol=0)
    # Without every layer's pattern there is no row to keep.
    partial = gpt2viz.Generation(small_model, tok, "Hi", 2, names=["blocks.0.attn.hook_pattern"])
    assert partial.advance().attention_row is None


def test_generation_raises_at_construction(small_model, tok) -> None:
    with pytest.raises(gpt2viz.PromptError, match="empty"):
        gpt2viz.Generation(small_model, tok, "  ")
    with pytest.raises(gpt2viz.PromptError, match="context holds 128"):
        gpt2viz.generate(small_model, tok, list(range(200)))  # raises on the call, not on next()
    with pytest.raises(ValueError, match="top_p"):
        gpt2viz.Generation(small_model, tok, "Hi", top_p=2.0)


def zero_head(head: int):
    def edit(z: torch.Tensor) -> torch.Tensor:
        z = z.clone()
        z[:, :, head] = 0  # [batch, pos, head, d_head]
        return z
    return edit


@pytest.mark.parametrize("use_cache", [True, False])
def test_edits_while_generating_act_as_in_run_with_capture(small_model, tok, use_cache) -> None:
    # Zero one head, and flip the residual stream at the end (a random model's argmax barely
    # moves under a head ablation alone).
    edits = {"blocks.0.attn.hook_z": zero_head(1), "blocks.1.hook_resid_post": torch.negative}
    prompt = tok.encode("An edited model writes")
    steps = list(gpt2viz.generate(small_model, tok, prompt, max_new_tokens=6, edits=edits,
                                  use_cache=use_cache))
    ids = list(prompt)
    for step in steps:  # each token is the argmax of the edited full re-run
        edited = small_model.run_with_capture(ids, names=[], edits=edits).logits[-1]
        assert step.token_id == int(edited.argmax())
        torch.testing.assert_close(torch.tensor(step.prob), edited.softmax(-1).max(), atol=1e-5, rtol=0)
        assert torch.all(step.trace["z", 0][:, 1] == 0)
        ids.append(step.token_id)
    plain = [s.token_id for s in gpt2viz.generate(small_model, tok, prompt, max_new_tokens=6)]
    assert [s.token_id for s in steps] != plain  # the edit changed what was written
    # The edit applies without a recording too.
    unrecorded = list(gpt2viz.generate(small_model, tok, prompt, 6, edits=edits, record=False))
    assert [s.token_id for s in unrecorded] == [s.token_id for s in steps]
    # computed from the last position only: the same probabilities
    probs = torch.tensor([s.prob for s in unrecorded])
    torch.testing.assert_close(probs, torch.tensor([s.prob for s in steps]), atol=1e-6, rtol=0)


def test_generation_as_plain_data(small_model, tok) -> None:
    import json

    g = gpt2viz.Generation(small_model, tok, "Plain data", max_new_tokens=3, temperature=0.9, seed=4)
    steps = list(g)
    data = json.loads(json.dumps(g.to_dict()))  # JSON round trip
    assert data["model"] == small_model.name and data["prompt"] == "Plain data"
    want = {"max_new_tokens": 3, "temperature": 0.9, "top_k": None, "top_p": None, "seed": 4}
    assert data["settings"] == want
    assert data["ids"] == g.ids and data["tokens"] == [tok.token_text(i) for i in g.ids]
    assert [s["token_id"] for s in data["steps"]] == [s.token_id for s in steps]
    assert data["steps"][1]["top"][0] == {"token_id": steps[1].top[0][0], "text": steps[1].top[0][1],
                                          "prob": steps[1].top[0][2]}
    assert data["stop_reason"] == gpt2viz.STOP_MAX_TOKENS
