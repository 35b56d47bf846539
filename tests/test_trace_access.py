"""TransformerLens-style access to a recording: act_name, trace["pattern", 3], stack, and
traces saved to and loaded from .safetensors files."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

import gpt2viz
from gpt2viz.hooks import BLOCK_HOOKS
from gpt2viz.recording import Deferred

# TransformerLens's short names and the full names they stand for (written out, not derived).
PER_LAYER = {
    "q": "attn.hook_q", "k": "attn.hook_k", "v": "attn.hook_v", "z": "attn.hook_z",
    "attn_scores": "attn.hook_attn_scores", "pattern": "attn.hook_pattern", "mask": "attn.hook_mask",
    "result": "attn.hook_result", "resid_pre": "hook_resid_pre", "resid_mid": "hook_resid_mid",
    "resid_post": "hook_resid_post", "attn_out": "hook_attn_out", "mlp_out": "hook_mlp_out",
    "pre": "mlp.hook_pre", "post": "mlp.hook_post",
}
LAYER_NORM = {("scale", "ln1"): "ln1.hook_scale", ("normalized", "ln1"): "ln1.hook_normalized",
              ("scale", "ln2"): "ln2.hook_scale", ("normalized", "ln2"): "ln2.hook_normalized"}


@pytest.fixture(scope="module")
def trace(small_model) -> gpt2viz.Trace:
    everything = small_model.hook_names()  # hook_result too
    return small_model.run_with_capture(list(range(30, 39)), names=everything)


def test_act_name_for_every_short_name_and_layer(small_model) -> None:
    for layer in range(small_model.config.n_layer):
        for short, suffix in PER_LAYER.items():
            assert gpt2viz.act_name(short, layer) == f"blocks.{layer}.{suffix}"
        for (short, ln), suffix in LAYER_NORM.items():
            assert gpt2viz.act_name(short, layer, ln) == f"blocks.{layer}.{suffix}"
    assert gpt2viz.act_name("embed") == "hook_embed"
    assert gpt2viz.act_name("pos_embed") == "hook_pos_embed"
    assert gpt2viz.act_name("scale", None, "ln_final") == "ln_final.hook_scale"
    assert gpt2viz.act_name("normalized", None, "ln_final") == "ln_final.hook_normalized"
    assert gpt2viz.act_name("pattern", "*") == "blocks.*.attn.hook_pattern"
    # Every declared per-layer point is covered above.
    assert {h.short for h in BLOCK_HOOKS} == set(PER_LAYER) | {"ln1_scale", "ln1_normalized",
                                                               "ln2_scale", "ln2_normalized"}


@pytest.mark.parametrize("args, message", [
    (("patern", 0), "Unknown short hook name 'patern'"),
    (("pattern",), "give a layer"),
    (("embed", 2), "without a layer"),
    (("scale", 0, "ln3"), "Unknown LayerNorm 'ln3'"),
    (("pattern", 0, "ln1"), "Only 'scale' and 'normalized'"),
])
def test_act_name_errors_say_what_to_do(args, message) -> None:
    with pytest.raises(KeyError, match=message):
        gpt2viz.act_name(*args)


def test_scores_and_neurons_are_rebuilt_when_read_bit_for_bit(small_model, trace) -> None:
    # An identity edit forces the forward pass to keep the scores and the MLP neurons after GELU
    # it computed: the deferred ones equal them exactly. Over a key/value cache the scores are
    # kept as computed.
    ids, layers = trace.ids, range(small_model.config.n_layer)
    names = [gpt2viz.act_name("attn_scores", layer) for layer in layers]
    post = [gpt2viz.act_name("post", layer) for layer in layers]
    identity = {n: lambda t: t for n in names + post}
    kept = small_model.run_with_capture(ids, names=small_model.hook_names(), edits=identity)
    for name in names + post:
        assert isinstance(trace._tensors[name], Deferred) and not isinstance(kept._tensors[name], Deferred)
        assert torch.equal(trace[name], kept[name])
    cache = small_model.new_cache()
    small_model.run_with_capture(ids[:-2], names=[], cache=cache)
    step = small_model.run_with_capture(ids[-2:], names=names, cache=cache)
    before = [step[name].clone() for name in names]
    zeros = torch.zeros(cache.keys.shape[0], len(ids), *cache.keys.shape[3:])
    cache.fill(zeros, zeros)  # the cache is overwritten, as the next step of the app's re-runs does
    for name, first_read in zip(names, before, strict=True):
        assert torch.equal(step[name], first_read)  # over a cache the scores are kept, not rebuilt
        torch.testing.assert_close(step[name], trace[name][:, -2:])  # [head, 2 new queries, all keys]
    assert torch.isinf(step[names[0]][:, 0, -1]).all()  # the first new query cannot see the second


def test_tuple_and_short_indexing_equal_full_names(small_model, trace) -> None:
    for layer in range(small_model.config.n_layer):
        for short, suffix in PER_LAYER.items():
            if short in ("attn_scores", "post"):  # rebuilt at each read (from q and k; from pre): equal,
                # not the same object
                assert torch.equal(trace[short, layer], trace[f"blocks.{layer}.{suffix}"])
            else:
                assert trace[short, layer] is trace[f"blocks.{layer}.{suffix}"]
        for (short, ln), suffix in LAYER_NORM.items():
            if short == "normalized":  # normalised from x and its statistics at each read
                assert torch.equal(trace[short, layer, ln], trace[f"blocks.{layer}.{suffix}"])
            else:
                assert trace[short, layer, ln] is trace[f"blocks.{layer}.{suffix}"]
    assert trace["embed"] is trace["hook_embed"]
    assert trace["scale", None, "ln_final"] is trace["ln_final.hook_scale"]
    with pytest.raises(KeyError, match="'blocks.5.attn.hook_pattern' was not recorded"):
        trace["pattern", 5]


def test_stack_every_layer(small_model, trace) -> None:
    T, L = 9, small_model.config.n_layer
    expected = {"pattern": (L, 4, T, T), "q": (L, T, 4, 16), "resid_post": (L, T, 64),
                "post": (L, T, 256), "result": (L, T, 4, 64), "mask": (L, T, T)}
    for short, shape in expected.items():
        stacked = trace.stack(short)
        assert stacked.shape == shape
        for layer in range(L):
            assert torch.equal(stacked[layer], trace[short, layer])
    assert trace.stack("scale", "ln2").shape == (L, T, 1)


def test_stack_names_what_was_not_recorded(small_model) -> None:
    partial = small_model.run_with_capture([1, 2, 3], names=["blocks.0.attn.hook_pattern"])
    with pytest.raises(KeyError, match=r"1 of 2 layers were not recorded \(blocks.1.attn.hook_pattern\)"):
        partial.stack("pattern")
    with pytest.raises(KeyError, match=r"names=\['blocks.\*.mlp.hook_post'\]"):
        partial.stack("post")


def test_saved_trace_round_trips_bit_exactly(small_model, trace, tmp_path) -> None:
    path = gpt2viz.save_trace(trace, tmp_path / "t.safetensors")
    loaded = gpt2viz.load_trace(path)
    assert loaded == trace
    assert loaded.names() == trace.names() and loaded.ids == trace.ids
    assert loaded.config == small_model.config and loaded.model_name == small_model.name
    assert loaded["mask", 0].dtype == torch.bool
    assert torch.equal(loaded.stack("pattern"), trace.stack("pattern"))
    # A generation step's trace keeps its start position over the cache.
    step = list(gpt2viz.generate(small_model, gpt2viz.load_tokenizer(), "A b c", max_new_tokens=3))[-1]
    again = gpt2viz.load_trace(gpt2viz.save_trace(step.trace, tmp_path / "step.safetensors"))
    assert again == step.trace and again.start == step.trace.start > 0
    # Equality really compares the numbers.
    other = small_model.run_with_capture(list(range(31, 40)), names=small_model.hook_names())
    assert other != trace


def test_a_small_recording_round_trips_too(small_model, tmp_path) -> None:
    # no logits, a float16 pattern and scores rebuilt at read time: saved as read, loaded equal
    from gpt2viz.viz.attention import HALF_PATTERNS

    names = [gpt2viz.act_name(short, 1) for short in ("q", "k", "attn_scores", "pattern")]
    trace = small_model.run_with_capture(list(range(40, 52)), names=names, record_as=HALF_PATTERNS,
                                         with_logits=False)
    loaded = gpt2viz.load_trace(gpt2viz.save_trace(trace, tmp_path / "small.safetensors"))
    assert loaded == trace and loaded.logits is None
    assert loaded["pattern", 1].dtype == torch.float16
    assert torch.equal(loaded["attn_scores", 1], trace["attn_scores", 1])
    with pytest.raises(KeyError, match="record_as names no hook point"):
        small_model.run_with_capture([1, 2], names=names,
                                     record_as={"blocks.*.attn.hook_nothing": torch.Tensor.half})


def test_load_trace_refuses_what_is_not_a_trace(small_model, tmp_path) -> None:
    weights = gpt2viz.save_model(small_model, tmp_path / "model") / "model.safetensors"
    with pytest.raises(gpt2viz.LoadError, match="not a gpt2viz trace"):
        gpt2viz.load_trace(weights)
    plain = tmp_path / "plain.safetensors"
    save_file({"x": torch.zeros(2)}, str(plain))
    with pytest.raises(gpt2viz.LoadError, match="not a gpt2viz trace"):
        gpt2viz.load_trace(plain)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x80\x04 this is a pickle, not safetensors")
    with pytest.raises(gpt2viz.LoadError, match="not a gpt2viz trace file"):
        gpt2viz.load_trace(junk)
    with pytest.raises(gpt2viz.LoadError, match="No trace file"):
        gpt2viz.load_trace(tmp_path / "missing.safetensors")

