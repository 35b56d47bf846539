"""Hook points: the pinned list of names, shapes, attention invariants, edits, thread isolation."""

from __future__ import annotations

import math
import threading

import pytest
import torch

import gpt2viz
from gpt2viz.hooks import hook_names_for

BLOCK_HOOKS = [
    "hook_resid_pre", "ln1.hook_scale", "ln1.hook_normalized", "attn.hook_q", "attn.hook_k",
    "attn.hook_v", "attn.hook_mask", "attn.hook_attn_scores", "attn.hook_pattern", "attn.hook_z",
    "attn.hook_result", "hook_attn_out", "hook_resid_mid", "ln2.hook_scale", "ln2.hook_normalized",
    "mlp.hook_pre", "mlp.hook_post", "hook_mlp_out", "hook_resid_post",
]


def test_hook_names_are_pinned(small_model) -> None:
    expected = (["hook_embed", "hook_pos_embed"]
                + [f"blocks.{i}.{h}" for i in range(2) for h in BLOCK_HOOKS]
                + ["ln_final.hook_scale", "ln_final.hook_normalized"])
    assert small_model.hook_names() == expected
    trace = small_model.run_with_capture([1, 2, 3])
    # Recorded in forward order; attn.hook_result only when asked for by name.
    assert trace.names() == [n for n in expected if not n.endswith("attn.hook_result")]
    assert len(hook_names_for(12)) == 2 + 12 * 19 + 2


def layer_norm_by_hand(x: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(x − mean) / √(var + eps) and √(var + eps), in float64 from a recorded residual."""
    x = x.double()
    centred = x - x.mean(-1, keepdim=True)
    scale = (centred.pow(2).mean(-1, keepdim=True) + eps).sqrt()
    return centred / scale, scale


def test_layer_norm_hooks_hold_the_pre_affine_values(small_model) -> None:
    """As TransformerLens: hook_normalized is before the LN weight and bias; hook_scale beside it."""
    trace = small_model.run_with_capture(list(range(200, 213)))
    eps = small_model.config.layer_norm_epsilon
    inputs = {(layer, ln): trace[resid, layer]
              for layer in range(2) for ln, resid in (("ln1", "resid_pre"), ("ln2", "resid_mid"))}
    inputs[(None, "ln_final")] = trace["resid_post", 1]
    for (layer, ln), x in inputs.items():
        normalized, scale = layer_norm_by_hand(x, eps)
        assert trace["scale", layer, ln].shape == (13, 1)
        torch.testing.assert_close(trace["scale", layer, ln].double(), scale, atol=1e-6, rtol=0)
        torch.testing.assert_close(trace["normalized", layer, ln].double(), normalized,
                                   atol=2e-5, rtol=0)
    # ln_1's weight and bias applied to hook_normalized give what attention reads: q = c_attn(·).
    block = small_model.h[1]
    ln_out = trace["normalized", 1, "ln1"] * block.ln_1.weight.detach() + block.ln_1.bias.detach()
    q = (ln_out @ block.attn.c_attn.weight.detach().T + block.attn.c_attn.bias.detach())[:, :64]
    torch.testing.assert_close(q.view(13, 4, 16), trace["q", 1], atol=1e-5, rtol=0)


def test_hook_result_is_each_heads_share_of_attn_out(small_model) -> None:
    ids = list(range(60, 71))
    trace = small_model.run_with_capture(ids, names=["blocks.*.attn.hook_result", "blocks.*.hook_attn_out",
                                                     "blocks.*.attn.hook_z"])
    for layer in range(2):
        result = trace["result", layer]
        assert result.shape == (11, 4, 64)
        bias = small_model.h[layer].attn.c_proj.bias.detach()
        torch.testing.assert_close(result.sum(1) + bias, trace["attn_out", layer], atol=1e-5, rtol=0)
        # head 2's share is its z through columns 32..47 of W_O
        w_o = small_model.h[layer].attn.c_proj.weight.detach()
        torch.testing.assert_close(result[:, 2], trace["z", layer][:, 2] @ w_o[:, 32:48].T,
                                   atol=1e-5, rtol=0)
    # Only when spelled out: neither everything (None) nor a wildcard over the layer records it.
    assert "blocks.0.attn.hook_result" not in small_model.run_with_capture(ids[:3])
    assert "blocks.0.attn.hook_result" not in small_model.run_with_capture(ids[:3], names=["blocks.0.attn.*"])
    # Recording it leaves the logits as they were.
    torch.testing.assert_close(trace.logits, small_model.run_with_capture(ids, names=[]).logits,
                               atol=1e-5, rtol=0)


def test_shapes(small_model) -> None:
    T, H, D, C = 7, 4, 16, 64
    trace = small_model.run_with_capture(list(range(10, 10 + T)))
    assert trace.logits.shape == (T, 50257) and trace.logits.dtype == torch.float32
    shapes = {
        "hook_embed": (T, C), "hook_pos_embed": (T, C), "ln_final.hook_normalized": (T, C),
        "ln_final.hook_scale": (T, 1), "blocks.1.ln2.hook_scale": (T, 1),
        "blocks.1.hook_resid_pre": (T, C), "blocks.1.ln1.hook_normalized": (T, C),
        "blocks.1.attn.hook_q": (T, H, D), "blocks.1.attn.hook_k": (T, H, D),
        "blocks.1.attn.hook_v": (T, H, D), "blocks.1.attn.hook_z": (T, H, D),
        "blocks.1.attn.hook_attn_scores": (H, T, T), "blocks.1.attn.hook_pattern": (H, T, T),
        "blocks.1.attn.hook_mask": (T, T), "blocks.1.hook_attn_out": (T, C),
        "blocks.1.mlp.hook_pre": (T, 4 * C), "blocks.1.mlp.hook_post": (T, 4 * C),
        "blocks.1.hook_mlp_out": (T, C), "blocks.1.hook_resid_post": (T, C),
    }
    for name, shape in shapes.items():
        assert tuple(trace[name].shape) == shape, name
        assert trace[name].device.type == "cpu"
    assert trace["blocks.0.attn.hook_mask"].dtype == torch.bool


def test_embedding_mlp_and_residual_hooks_hold_their_values(small_model) -> None:
    """What test_shapes cannot see: each of these hooks holds the number its stage computes,
    rebuilt here from the weights and the previous recorded stage."""
    ids = list(range(500, 509))
    trace = small_model.run_with_capture(ids)
    torch.testing.assert_close(trace["embed"], small_model.wte.weight.detach()[ids])
    torch.testing.assert_close(trace["pos_embed"], small_model.wpe.weight.detach()[: len(ids)])
    torch.testing.assert_close(trace["resid_pre", 0], trace["embed"] + trace["pos_embed"])
    for layer in range(2):
        block = small_model.h[layer]
        ln_out = trace["normalized", layer, "ln2"] * block.ln_2.weight.detach() + block.ln_2.bias.detach()
        pre = ln_out @ block.mlp.c_fc.weight.detach().T + block.mlp.c_fc.bias.detach()
        torch.testing.assert_close(trace["pre", layer], pre, atol=1e-5, rtol=0)
        x = trace["pre", layer].double()  # GPT-2's tanh GELU ("gelu_new"), written out
        gelu = 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
        torch.testing.assert_close(trace["post", layer].double(), gelu, atol=1e-6, rtol=0)
        out = trace["post", layer] @ block.mlp.c_proj.weight.detach().T + block.mlp.c_proj.bias.detach()
        torch.testing.assert_close(trace["mlp_out", layer], out, atol=1e-5, rtol=0)
        resid_post = trace["resid_mid", layer] + trace["mlp_out", layer]
        torch.testing.assert_close(trace["resid_post", layer], resid_post)
    torch.testing.assert_close(trace["resid_pre", 1], trace["resid_post", 0], atol=0, rtol=0)


def test_attention_invariants(small_model) -> None:
    T = 20
    trace = small_model.run_with_capture(list(range(300, 300 + T)))
    causal = torch.tril(torch.ones(T, T, dtype=torch.bool))
    for layer in range(2):
        p = f"blocks.{layer}.attn."
        pattern, scores = trace[p + "hook_pattern"], trace[p + "hook_attn_scores"]
        assert torch.equal(trace[p + "hook_mask"], causal)
        torch.testing.assert_close(pattern.sum(-1), torch.ones(4, T), atol=1e-6, rtol=0)
        assert torch.all(pattern[:, ~causal] == 0)  # exactly zero above the diagonal
        assert torch.all(scores[:, ~causal] == float("-inf"))
        # scores = q·k / sqrt(d_head) where allowed
        q, k = trace[p + "hook_q"], trace[p + "hook_k"]
        manual = torch.einsum("qhd,khd->hqk", q, k) / math.sqrt(16)
        torch.testing.assert_close(scores[:, causal], manual[:, causal], atol=1e-5, rtol=0)
        torch.testing.assert_close(pattern, scores.softmax(-1))
        # z = pattern · v
        z = torch.einsum("hqk,khd->qhd", pattern, trace[p + "hook_v"])
        torch.testing.assert_close(trace[p + "hook_z"], z, atol=1e-5, rtol=0)
        torch.testing.assert_close(trace[f"blocks.{layer}.hook_resid_mid"],
                                   trace[f"blocks.{layer}.hook_resid_pre"]
                                   + trace[f"blocks.{layer}.hook_attn_out"])


def test_the_softmax_in_place_is_bit_for_bit_and_only_where_allowed() -> None:
    from gpt2viz.model import _softmax

    scores = torch.randn(2, 3, 50, 50).masked_fill_(torch.rand(50, 50) < 0.3, float("-inf"))
    want = scores.softmax(-1)
    with torch.inference_mode():
        own = scores.clone()
        got = _softmax(own, in_place=True)
        assert torch.equal(got, want) and got.data_ptr() == own.data_ptr()  # written over the scores
        kept = scores.clone()
        assert torch.equal(_softmax(kept, in_place=False), want) and torch.equal(kept, scores)
    grad = scores.clone().requires_grad_()  # autograd needs the scores: never in place
    assert _softmax(grad, in_place=True).data_ptr() != grad.data_ptr()


def test_an_edit_of_the_scores_is_not_overwritten_by_the_softmax(small_model) -> None:
    ids = list(range(70, 80))
    fixed = torch.zeros(1, 4, len(ids), len(ids))  # an edit that returns its own tensor every time
    trace = small_model.run_with_capture(ids, names=["blocks.0.attn.hook_pattern"],
                                         edits={"blocks.0.attn.hook_attn_scores": lambda s: fixed})
    assert torch.equal(fixed, torch.zeros_like(fixed))
    torch.testing.assert_close(trace["pattern", 0], torch.full((4, len(ids), len(ids)), 1 / len(ids)))


def test_name_selection(small_model) -> None:
    trace = small_model.run_with_capture([5, 6, 7], names=["blocks.*.attn.hook_pattern",
                                                           "hook_embed"])
    assert trace.names() == ["hook_embed", "blocks.0.attn.hook_pattern",
                             "blocks.1.attn.hook_pattern"]
    assert small_model.run_with_capture([5, 6], names=[]).names() == []
    with pytest.raises(KeyError, match=r"hook_patern' \(did you mean 'blocks.0.attn.hook_pattern'"):
        small_model.run_with_capture([5], names=["blocks.0.attn.hook_patern"])
    with pytest.raises(KeyError, match="was not recorded"):
        trace["blocks.0.attn.hook_q"]


def test_recording_leaves_logits_unchanged(small_model) -> None:
    ids = list(range(40, 60))
    everything = small_model.run_with_capture(ids)
    nothing = small_model.run_with_capture(ids, names=[])
    torch.testing.assert_close(everything.logits, nothing.logits, atol=1e-5, rtol=0)


def test_edit_zeroes_one_head(small_model) -> None:
    ids = list(range(100, 112))

    def zero_head_2(z: torch.Tensor) -> torch.Tensor:
        z = z.clone()
        z[:, :, 2] = 0  # [batch, pos, head, d_head]
        return z

    base = small_model.run_with_capture(ids)
    ablated = small_model.run_with_capture(ids, edits={"blocks.0.attn.hook_z": zero_head_2})
    assert torch.all(ablated["blocks.0.attn.hook_z"][:, 2] == 0)
    # attn_out = c_proj(concat heads): removing head 2 removes exactly its slice of W_O.
    w_o = small_model.h[0].attn.c_proj.weight.detach()  # [C, H*D]
    head2 = base["blocks.0.attn.hook_z"][:, 2] @ w_o[:, 32:48].T
    torch.testing.assert_close(ablated["blocks.0.hook_attn_out"],
                               base["blocks.0.hook_attn_out"] - head2, atol=1e-5, rtol=0)
    assert not torch.allclose(ablated.logits, base.logits)
    # The shared model is untouched: a plain run afterwards gives the original logits.
    torch.testing.assert_close(small_model.run_with_capture(ids).logits, base.logits)


def test_edit_of_one_neuron_and_of_the_pattern(small_model) -> None:
    ids = list(range(7, 17))

    def kill_neuron(x: torch.Tensor) -> torch.Tensor:
        x = x.clone()
        x[..., 5] = 0
        return x

    trace = small_model.run_with_capture(ids, edits={"blocks.1.mlp.hook_post": kill_neuron})
    assert torch.all(trace["blocks.1.mlp.hook_post"][:, 5] == 0)

    def attend_to_first(p: torch.Tensor) -> torch.Tensor:
        out = torch.zeros_like(p)
        out[..., 0] = 1
        return out

    trace = small_model.run_with_capture(ids, edits={"blocks.0.attn.hook_pattern": attend_to_first})
    v0 = trace["blocks.0.attn.hook_v"][0]  # [head, d_head] at position 0
    torch.testing.assert_close(trace["blocks.0.attn.hook_z"], v0.expand(len(ids), -1, -1))


def test_edit_must_keep_shape(small_model) -> None:
    with pytest.raises(ValueError, match="must keep the shape"):
        small_model.run_with_capture([1, 2], edits={"hook_embed": lambda x: x[..., :3]})
    with pytest.raises(KeyError, match="No such hook point"):
        small_model.run_with_capture([1, 2], edits={"blocks.9.hook_z": lambda x: x})


def test_no_hooks_registered_on_the_shared_module(small_model) -> None:
    small_model.run_with_capture([1, 2, 3], edits={"hook_embed": lambda x: x * 0})
    for module in small_model.modules():
        assert not module._forward_hooks and not module._forward_pre_hooks


def test_two_threads_recording_at_once_see_only_their_own(small_model, tok) -> None:
    prompts = ["The cat sat on the mat and looked at", "Numbers: 1, 2, 3, 4, 5, 6, 7, 8, 9"]
    names = ["blocks.*.attn.hook_pattern", "blocks.1.mlp.hook_post", "blocks.0.attn.hook_z"]
    alone = [small_model.run_with_capture(tok.encode(p), names=names) for p in prompts]
    alone_gen = [[s.token_id for s in gpt2viz.generate(small_model, tok, p, max_new_tokens=8)]
                 for p in prompts]
    barrier = threading.Barrier(2)
    results: dict[int, list] = {0: [], 1: []}
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for _ in range(15):
                barrier.wait()
                results[i].append(small_model.run_with_capture(tok.encode(prompts[i]), names=names))
            steps = gpt2viz.generate(small_model, tok, prompts[i], max_new_tokens=8)
            results[i].append([s.token_id for s in steps])
        except BaseException as err:  # surfaced below with the thread's failure
            errors.append(err)

    threads = [threading.Thread(target=work, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for i in (0, 1):
        *traces, generated = results[i]
        assert generated == alone_gen[i]
        for trace in traces:
            assert trace.names() == alone[i].names()
            for name in trace.names():
                torch.testing.assert_close(trace[name], alone[i][name], atol=1e-6, rtol=0)
