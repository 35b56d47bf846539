"""Why this token: direct logit attribution, saliency and ablations, each against an independent
computation (by hand from recorded tensors, or through transformers on the same weights)."""

from __future__ import annotations

import threading

import pytest
import torch

from gpt2viz.attribution import (
    SALIENCY_BF16_FROM,
    attribution_names,
    direct_logit_attribution,
    saliency,
    saliency_in_bf16,
)
from gpt2viz.interventions import ablate_heads, ablate_neurons

IDS = list(range(1200, 1216))
POS, TARGET, DISTRACTOR = 12, 464, 1000


@pytest.fixture(scope="module")
def trace(small_model):
    return small_model.run_with_capture(IDS)


def head_push_by_hand(model, trace, layer: int, head: int, direction: torch.Tensor) -> float:
    """Head `head`'s output at POS through ln_f (scale from resid_post by hand) and `direction`."""
    d = model.config.d_head
    w_o = model.h[layer].attn.c_proj.weight.detach().double()
    result = trace["z", layer][POS, head].double() @ w_o[:, head * d:(head + 1) * d].T
    final = trace["resid_post", model.config.n_layer - 1][POS].double()
    scale = ((final - final.mean()).pow(2).mean() + 1e-5).sqrt()
    centred = result - result.mean()
    return float((centred / scale * model.ln_f.weight.detach().double()) @ direction.double())


@pytest.mark.parametrize("distractor", [None, DISTRACTOR])
def test_direct_logit_attribution(small_model, trace, distractor) -> None:
    dla = direct_logit_attribution(small_model, trace, POS, TARGET, distractor)
    w_u = small_model.wte.weight.detach()
    direction = w_u[TARGET] - (w_u[distractor] if distractor is not None else 0)
    for layer in range(2):
        for head in range(4):
            assert dla.heads[layer, head].item() == pytest.approx(
                head_push_by_hand(small_model, trace, layer, head, direction), abs=1e-4)
    parts = float(dla.heads.sum() + dla.mlps.sum()) + sum(dla.rest.values())
    assert parts == pytest.approx(dla.total, abs=1e-9)
    logits = trace.logits[POS]
    actual = logits[TARGET] - (logits[distractor] if distractor is not None else 0)
    assert dla.total == pytest.approx(float(actual), abs=1e-3)
    assert set(dla.rest) == {"embeddings", "attention output biases", "final LayerNorm bias"}


def test_attribution_from_a_minimal_recording_and_bad_arguments(small_model, trace) -> None:
    minimal = small_model.run_with_capture(IDS, names=attribution_names(2))
    full = direct_logit_attribution(small_model, trace, POS, TARGET)
    from_minimal = direct_logit_attribution(small_model, minimal, POS, TARGET)
    assert from_minimal.total == pytest.approx(full.total, abs=1e-4)
    with pytest.raises(ValueError, match="position must lie in range"):
        direct_logit_attribution(small_model, trace, 99, TARGET)
    with pytest.raises(ValueError, match="distractor id 60000 is outside the vocabulary"):
        direct_logit_attribution(small_model, trace, POS, TARGET, 60000)


def saliency_through_transformers(hf, ids: list[int], position: int, target: int, distractor: int | None):
    """The same gradient × input, computed by transformers' autograd with inputs_embeds."""
    idx = torch.tensor([ids[: position + 1]])
    emb = hf.transformer.wte(idx).detach().requires_grad_(True)
    logits = hf(inputs_embeds=emb).logits[0, position]
    loss = logits[target] - (logits[distractor] if distractor is not None else 0)
    (grad,) = torch.autograd.grad(loss, emb)
    x = emb.detach() + hf.transformer.wpe(torch.arange(position + 1)).detach()
    return (grad * x)[0].sum(-1)


@pytest.mark.parametrize("distractor", [None, DISTRACTOR])
def test_saliency_matches_transformers(small_model, small_hf, distractor) -> None:
    got = saliency(small_model, IDS, POS, TARGET, distractor)
    want = saliency_through_transformers(small_hf, IDS, POS, TARGET, distractor)
    assert got.shape == (POS + 1,)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5 * float(want.abs().max()))
    assert all(p.grad is None for p in small_model.parameters())  # the shared model is untouched


def test_saliency_in_bfloat16_stays_within_a_few_percent(small_model) -> None:
    ids = torch.randint(0, 50000, (120,), generator=torch.Generator().manual_seed(3)).tolist()
    exact = saliency(small_model, ids, 119, TARGET, DISTRACTOR)
    fast = saliency(small_model, ids, 119, TARGET, DISTRACTOR, bf16=True)
    assert fast.dtype == torch.float32 and fast.shape == exact.shape
    assert float((fast - exact).abs().max()) <= 0.03 * float(exact.abs().max())
    assert float(torch.corrcoef(torch.stack([fast, exact]))[0, 1]) > 0.999
    assert not torch.equal(fast, exact)  # it really ran in lower precision
    # the app switches at SALIENCY_BF16_FROM input positions (position 255 has 256 of them)
    assert SALIENCY_BF16_FROM == 256 and not saliency_in_bf16(254) and saliency_in_bf16(255)


def test_saliency_from_two_threads(small_model) -> None:
    cases = [(IDS, POS, TARGET, None), (IDS[::-1], 9, 77, DISTRACTOR)]
    alone = [saliency(small_model, *c) for c in cases]
    results: dict[int, list[torch.Tensor]] = {0: [], 1: []}
    barrier = threading.Barrier(2)

    def work(i: int) -> None:
        for _ in range(10):
            barrier.wait()
            results[i].append(saliency(small_model, *cases[i]))

    threads = [threading.Thread(target=work, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in (0, 1):
        assert len(results[i]) == 10
        for got in results[i]:
            torch.testing.assert_close(got, alone[i], atol=1e-6, rtol=0)


def test_zero_ablation_equals_an_explicit_edit(small_model) -> None:
    def zero_head_2(z: torch.Tensor) -> torch.Tensor:
        z = z.clone()
        z[:, :, 2] = 0
        return z

    edits = ablate_heads([(1, 2)], config=small_model.config)
    ablated = small_model.run_with_capture(IDS, names=[], edits=edits)
    explicit = small_model.run_with_capture(IDS, names=[], edits={"blocks.1.attn.hook_z": zero_head_2})
    assert torch.equal(ablated.logits, explicit.logits)
    assert not torch.equal(ablated.logits, small_model.run_with_capture(IDS, names=[]).logits)


def test_mean_ablation_by_hand(small_model) -> None:
    plain = small_model.run_with_capture(IDS)
    z = plain["z", 0].clone()  # layer 0's z does not depend on its own ablation
    z[:, 3] = z[:, 3].mean(0)
    replace_z = {"blocks.0.attn.hook_z": lambda _: z[None]}
    by_hand = small_model.run_with_capture(IDS, names=[], edits=replace_z)
    mean_ablation = ablate_heads([(0, 3)], "mean", config=small_model.config)
    ablated = small_model.run_with_capture(IDS, edits=mean_ablation)
    torch.testing.assert_close(ablated.logits, by_hand.logits, atol=1e-6, rtol=0)
    assert torch.allclose(ablated["z", 0][:, 3], z[:, 3].expand(len(IDS), -1))


def test_neuron_ablation(small_model) -> None:
    config = small_model.config
    zeroed = small_model.run_with_capture(IDS, edits=ablate_neurons([(1, 5), (1, 200)], config=config))
    assert torch.all(zeroed["post", 1][:, [5, 200]] == 0)
    meaned = small_model.run_with_capture(IDS, edits=ablate_neurons([(0, 7)], "mean", config=config))
    plain = small_model.run_with_capture(IDS)
    torch.testing.assert_close(meaned["post", 0][:, 7], plain["post", 0][:, 7].mean().expand(len(IDS)))


@pytest.mark.parametrize("call, message", [
    (lambda c: ablate_heads([(2, 0)], config=c), r"Layer 2 does not exist: this model has layers 0\.\.1"),
    (lambda c: ablate_heads([(0, 4)], config=c), r"Head 4 does not exist: layer 0 has heads 0..3"),
    (lambda c: ablate_neurons([(1, 256)], config=c),
     r"Neuron 256 does not exist: layer 1 has neurons 0\.\.255"),
    (lambda c: ablate_heads([(0, 0)], "half", config=c), r"mode must be one of \('zero', 'mean'\)"),
    (lambda c: ablate_heads([], config=c), r"Name at least one head"),
])
def test_ablation_errors_name_the_valid_range(small_model, call, message) -> None:
    with pytest.raises(ValueError, match=message):
        call(small_model.config)


def test_parse_units() -> None:
    from gpt2viz.interventions import parse_units

    assert parse_units("0.3, 1.2;2.10 ,") == [(0, 3), (1, 2), (2, 10)]
    for bad, message in [("", "at least one"), ("3", "'3' is not layer.index"), ("a.b", "not layer.index"),
                         ("1.-2", "not layer.index")]:
        with pytest.raises(ValueError, match=message):
            parse_units(bad)
