"""advance_together: several generations advanced by one forward pass, each step what its own
advance() gives (same tokens, probabilities within 1e-5, the same recorded tensors), whatever mix
of prompt lengths, first and later steps, settings, recordings and edits goes together."""

from __future__ import annotations

import pytest
import torch

import gpt2viz
from gpt2viz.interventions import ablate_heads

PROMPTS = ["Hi", "The cat sat on the mat because", "Ships sail across the stormy sea to the north and",
           "Once upon a time " * 12]  # 1 to 49 tokens


def kinds(model, tok) -> list[dict]:
    """One of each kind of generation the app makes."""
    mean = ablate_heads([(0, 1)], "mean", config=model.config)
    zero = ablate_heads([(1, 2)], "zero", config=model.config)
    return [
        dict(prompt=PROMPTS[0], max_new_tokens=6),  # greedy, recorded (every hook point)
        dict(prompt=PROMPTS[1], max_new_tokens=5, temperature=0.9, top_k=20, seed=3, record=False),
        dict(prompt=PROMPTS[2], max_new_tokens=4, temperature=1.2, top_p=0.8, seed=11,
             names=[gpt2viz.act_name("pattern", "*")]),
        dict(prompt=PROMPTS[3], max_new_tokens=5, record=False, edits=zero),
        dict(prompt=PROMPTS[1], max_new_tokens=3, record=False, edits=mean, use_cache=False),
        dict(prompt=PROMPTS[2], max_new_tokens=1),  # finishes inside the first batch
    ]


def make(model, tok, spec: dict) -> gpt2viz.Generation:
    spec = dict(spec)
    return gpt2viz.Generation(model, tok, spec.pop("prompt"), **spec)


def assert_same_step(solo: gpt2viz.Step, together: gpt2viz.Step) -> None:
    assert together.token_id == solo.token_id and together.index == solo.index
    assert together.position == solo.position and together.stop_reason == solo.stop_reason
    assert together.prob == pytest.approx(solo.prob, abs=1e-5)
    assert [c.token_id for c in together.top] == [c.token_id for c in solo.top]
    assert [c.prob for c in together.top] == pytest.approx([c.prob for c in solo.top], abs=1e-5)
    if solo.trace is None:
        assert together.trace is None
        return
    assert together.trace.names() == solo.trace.names()
    assert together.trace.ids == solo.trace.ids and together.trace.start == solo.trace.start
    for name in solo.trace.names():
        torch.testing.assert_close(together.trace[name], solo.trace[name], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(together.trace.logits, solo.trace.logits, atol=1e-4, rtol=1e-4)
    if solo.attention_row is not None:
        torch.testing.assert_close(together.attention_row, solo.attention_row, atol=1e-3, rtol=0)


def run_alone(model, tok, specs) -> list[list[gpt2viz.Step]]:
    steps = []
    for spec in specs:
        generation = make(model, tok, spec)
        steps.append([generation.advance() for _ in range(spec["max_new_tokens"])])
    return steps


@pytest.mark.parametrize("fixture", ["small_model", "tiny"])
def test_every_kind_of_generation_together_steps_as_it_would_alone(fixture, request, tok):
    model = request.getfixturevalue("small_model") if fixture == "small_model" else _tiny()
    specs = kinds(model, tok)
    alone = run_alone(model, tok, specs)
    generations = [make(model, tok, spec) for spec in specs]
    together: list[list[gpt2viz.Step]] = [[] for _ in specs]
    while any(not g.finished for g in generations):
        live = [i for i, g in enumerate(generations) if not g.finished]
        for i, step in zip(live, gpt2viz.advance_together([generations[i] for i in live]), strict=True):
            together[i].append(step)
    for i, (solo_steps, batch_steps) in enumerate(zip(alone, together, strict=True)):
        assert len(batch_steps) == len(solo_steps), i
        for solo, batched in zip(solo_steps, batch_steps, strict=True):
            assert_same_step(solo, batched)
        assert generations[i].ids == [*generations[i].prompt_ids, *(s.token_id for s in solo_steps)]


def _tiny() -> gpt2viz.GPT2:
    from tests.conftest import tiny_model
    return tiny_model(seed=1)


def test_first_steps_go_with_later_ones_and_prompts_of_1_to_200_tokens(tok):
    """Generations at different steps: some are at their prompt (a 1- and a 200-token one), some
    several tokens in; every step as alone."""
    small_model = _tiny()  # a 256-token context
    long_prompt = tok.encode("word " * 200)[:200]
    specs = [dict(prompt=[464], max_new_tokens=4), dict(prompt=long_prompt, max_new_tokens=4),
             dict(prompt=PROMPTS[1], max_new_tokens=6), dict(prompt=PROMPTS[2], max_new_tokens=6,
                                                               temperature=0.7, seed=5)]
    alone = run_alone(small_model, tok, specs)
    generations = [make(small_model, tok, spec) for spec in specs]
    for generation in generations[2:]:  # two of them already on their way
        generation.advance()
        generation.advance()
    for _ in range(4):
        steps = gpt2viz.advance_together(generations)
        for solo_steps, step in zip(alone, steps, strict=True):
            assert_same_step(solo_steps[step.index], step)


def test_greedy_tokens_match_transformers(small_hf, small_model, tok):
    prompts = [tok.encode(p) for p in PROMPTS[:3]]
    generations = [gpt2viz.Generation(small_model, tok, ids, max_new_tokens=8, record=False)
                   for ids in prompts]
    while any(not g.finished for g in generations):
        gpt2viz.advance_together([g for g in generations if not g.finished])
    for ids, generation in zip(prompts, generations, strict=True):
        expected = small_hf.generate(torch.tensor([ids]), max_new_tokens=8, do_sample=False,
                                     pad_token_id=gpt2viz.EOT_ID)[0].tolist()
        got = generation.ids
        assert got == expected[: len(got)]  # transformers goes on past <|endoftext|>; we stop there


def test_a_finished_generation_raises_and_nothing_advances(small_model, tok):
    done = gpt2viz.Generation(small_model, tok, "Hi", max_new_tokens=1)
    done.advance()
    other = gpt2viz.Generation(small_model, tok, "Hello there", max_new_tokens=3)
    with pytest.raises(RuntimeError, match="has finished"):
        gpt2viz.advance_together([other, done])
    assert other.steps == [] and other.advance().index == 0  # untouched, its cache too


def test_generations_of_two_models_or_twice_the_same_are_refused(small_model, tok):
    first = gpt2viz.Generation(small_model, tok, "Hi", max_new_tokens=2)
    with pytest.raises(ValueError, match="one model"):
        gpt2viz.advance_together([first, gpt2viz.Generation(_tiny(), tok, "Hi", max_new_tokens=2)])
    with pytest.raises(ValueError, match="twice"):
        gpt2viz.advance_together([first, first])
    assert gpt2viz.advance_together([]) == []


def test_one_pass_reads_the_weights_once(small_model, tok, monkeypatch):
    """Three generations: the first block's MLP runs once, on all their new positions together."""
    generations = [gpt2viz.Generation(small_model, tok, prompt, max_new_tokens=2, record=False)
                   for prompt in PROMPTS[:3]]
    calls = []
    fc = small_model.h[0].mlp.c_fc
    original = fc.forward

    def counted(x: torch.Tensor) -> torch.Tensor:
        calls.append(tuple(x.shape))
        return original(x)

    monkeypatch.setattr(fc, "forward", counted)
    gpt2viz.advance_together(generations)
    assert calls == [(1, sum(len(tok.encode(p)) for p in PROMPTS[:3]), small_model.config.n_embd)]
    calls.clear()
    gpt2viz.advance_together(generations)
    assert calls == [(1, 3, small_model.config.n_embd)]  # one new token each, over their caches


def test_a_pass_that_fails_leaves_every_cache_as_it_was(small_model, tok):
    """One generation's edit fails after the blocks ran: the others' caches are not moved on, so
    each can go on by itself and writes what it would have written."""
    def broken(x):
        raise ValueError("this edit is broken")

    alone = gpt2viz.Generation(small_model, tok, "The cat sat on", max_new_tokens=4)
    list(alone)
    good = gpt2viz.Generation(small_model, tok, "The cat sat on", max_new_tokens=4)
    bad = gpt2viz.Generation(small_model, tok, "Hello", max_new_tokens=4, record=False,
                             edits={"ln_final.hook_normalized": broken})
    with pytest.raises(ValueError, match="this edit is broken"):
        gpt2viz.advance_together([good, bad])
    assert good.steps == [] and good._cache.length == 0
    list(good)
    assert good.ids == alone.ids
