"""Activation and attribution patching (gpt2viz.patching) on small random models: what must hold
by construction (causality, a patch that makes the corrupted run the clean one, linearity), the
fast patched passes against full patched passes done by hand with run_with_capture edits, and the
first-order estimate against the exact grid."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from torch import nn

import gpt2viz
import gpt2viz.patching
from gpt2viz import act_name
from gpt2viz.patching import (
    MIN_DIFFERENCE,
    SITES,
    PatchingResult,
    activation_patching,
    attribution_patching,
    head_axis,
    logit_difference,
    pair_problem,
    patchable_sites,
    patching_example,
    prompt_ids,
)
from gpt2viz.paths import ASSETS
from gpt2viz.viz.patching import (
    patching_comparison,
    patching_comparison_figure,
    patching_figure,
    patching_map,
)
from tests.conftest import tiny_model

N = 12


@dataclass
class Case:
    """Two prompts and the answer tokens that tell their runs apart best."""
    model: gpt2viz.GPT2
    clean: list[int]
    corrupted: list[int]
    answer: int
    wrong: int

    def patch(self, site: str = "resid_pre", patching=activation_patching, **kwargs) -> PatchingResult:
        return patching(self.model, self.clean, self.corrupted, self.answer, self.wrong, site, **kwargs)

    def diff(self, ids: list[int], edits: dict | None = None) -> float:
        """logit(answer) − logit(wrong) at the last position, by run_with_capture."""
        logits = self.model.run_with_capture(ids, names=[], edits=edits).logits[-1]  # [vocab]
        return float(logits[self.answer] - logits[self.wrong])

    @functools.cached_property
    def ends(self) -> tuple[float, float]:
        """The clean and corrupted runs' logit differences."""
        return self.diff(self.clean), self.diff(self.corrupted)

    def normalised(self, edits: dict) -> float:
        """The corrupted run with `edits`, 0 = corrupted and 1 = clean."""
        c, k = self.ends
        return (self.diff(self.corrupted, edits) - k) / (c - k)


def case(model: gpt2viz.GPT2, *changed: int, seed: int = 0) -> Case:
    """A random clean prompt of N tokens, the corrupted one with other tokens at `changed`, and as
    answer and wrong the tokens whose logit difference the change moves most (a random model
    moves every logit only a little: a larger gap keeps rounding small beside it)."""
    clean = torch.randint(0, 50257, (N,), generator=torch.Generator().manual_seed(seed)).tolist()
    corrupted = list(clean)
    for position in changed:
        corrupted[position] = (clean[position] + 1000) % 50257
    last = [model.run_with_capture(ids, names=[]).logits[-1] for ids in (clean, corrupted)]  # [vocab] each
    moved = last[0] - last[1]  # [vocab]
    return Case(model, clean, corrupted, int(moved.argmax()), int(moved.argmin()))


@pytest.fixture(scope="module")
def model() -> gpt2viz.GPT2:
    return tiny_model(seed=1)


def by_hand(c: Case, site: str, metric=None) -> torch.Tensor:
    """The grid from full patched passes, from the embeddings on, with run_with_capture edits (of
    the logit difference, or of `metric` on the last position's logits)."""
    recorded = c.model.run_with_capture(c.clean, names=[act_name(site, "*")])
    n_layer, heads = c.model.config.n_layer, head_axis(site)
    grid = torch.zeros(n_layer, c.model.config.n_head if heads is not None else N)
    def value(ids: list[int], edits: dict | None = None) -> float:
        if metric is None:
            return c.diff(ids, edits)
        return float(metric(c.model.run_with_capture(ids, names=[], edits=edits).logits[-1]))

    clean, corrupted = value(c.clean), value(c.corrupted)
    for layer in range(n_layer):
        good = recorded[site, layer][None]  # [1, ...], as the hook sees it
        for col in range(grid.shape[1]):
            index = (slice(None),) * heads + (col,) if heads is not None else (slice(None), col)

            def edit(x: torch.Tensor, index: tuple = index, good: torch.Tensor = good) -> torch.Tensor:
                x = x.clone()
                x[index] = good[index]
                return x
            patched = value(c.corrupted, {act_name(site, layer): edit})
            grid[layer, col] = (patched - corrupted) / (clean - corrupted)
    return grid


def affine_ln_f(model: gpt2viz.GPT2) -> gpt2viz.GPT2:
    """`model` with ln_f's normalisation taken out (x · w + b): the logits become affine in the
    residual stream leaving the last block."""
    ln = model.ln_f

    class Affine(nn.Module):
        def forward(self, x: torch.Tensor, rec: object = None) -> torch.Tensor:
            return x * ln.weight + ln.bias

    model.ln_f = Affine()
    return model


def test_the_module_is_reachable_from_the_package() -> None:
    assert gpt2viz.patching.activation_patching is activation_patching
    assert "the corrupted run, with one activation taken from the clean run" in \
        activation_patching.__doc__.lower().splitlines()[0]


@pytest.mark.parametrize("site", SITES)
def test_patched_passes_equal_full_patched_passes(model, site: str) -> None:
    """Each cell reuses the corrupted run (from the patched layer, over the earlier positions' keys
    and values); a full patched pass from the embeddings gives the same number."""
    c = case(model, 3, 8)
    result = c.patch(site)
    torch.testing.assert_close(result.grid, by_hand(c, site), atol=1e-4, rtol=0)
    assert result.clean_value == pytest.approx(c.diff(c.clean), abs=1e-6)
    assert result.corrupted_value == pytest.approx(c.diff(c.corrupted), abs=1e-6)
    assert result.site == site and result.method == "exact"
    assert (result.answer, result.wrong) == (c.answer, c.wrong)


def test_shapes_and_labels(model) -> None:
    c = case(model, 5)
    result = c.patch("mlp_out")
    assert result.grid.shape == (2, N) and result.grid.dtype == torch.float32
    assert result.labels == [str(i) for i in range(N)] and result.across == "position"
    assert c.patch(labels=list("abcdefghijkl")).labels == list("abcdefghijkl")
    for patching in (activation_patching, attribution_patching):
        heads = c.patch("z", patching)
        assert heads.grid.shape == (2, 4) and heads.across == "head"
        assert heads.labels == ["H0", "H1", "H2", "H3"]


def test_layer_0_resid_pre_at_the_changed_position_is_the_clean_run(model) -> None:
    """Prompts differing at one position p: patching layer 0's resid_pre at p makes the corrupted
    run the clean one (1); every other position of layer 0 holds the same token embedding in both
    runs, so patching it changes nothing (exactly 0). Before p no layer can see the change (0)."""
    p = 6
    c = case(model, p)
    for patching in (activation_patching, attribution_patching):
        grid = c.patch("resid_pre", patching).grid
        assert torch.equal(grid[:, :p], torch.zeros(2, p))
        assert torch.equal(grid[0, p + 1:], torch.zeros(N - p - 1))
    assert c.patch().grid[0, p].item() == pytest.approx(1.0, abs=1e-5)


def test_the_last_position_restores_everything_only_when_only_it_differs(model) -> None:
    """Patching resid_pre at the last position of layer L gives the clean run when the attention
    of layers L.. reads the same keys and values from the earlier positions in both runs: when the
    prompts differ at the last position only, at every layer; otherwise not in general, and the
    cell is what a patched pass by hand gives."""
    grid = case(model, N - 1).patch().grid
    torch.testing.assert_close(grid[:, -1], torch.ones(2), atol=1e-5, rtol=0)
    assert torch.equal(grid[:, :-1], torch.zeros(2, N - 1))

    c = case(model, 2, N - 1)
    grid = c.patch().grid
    assert abs(grid[-1, -1].item() - 1.0) > 1e-3  # the earlier change still reaches the last layer
    good = model.run_with_capture(c.clean, names=[act_name("resid_pre", 1)])["resid_pre", 1][-1]

    def last(x: torch.Tensor) -> torch.Tensor:
        x = x.clone()
        x[0, -1] = good
        return x

    assert grid[-1, -1].item() == pytest.approx(c.normalised({act_name("resid_pre", 1): last}), abs=1e-4)


def test_later_attention_and_mlp_outputs_reach_only_the_last_position(model) -> None:
    """In the last layer, attn_out and mlp_out at an earlier position feed no later computation
    of the last position: 0 in both grids."""
    c = case(model, 1, 7)
    for site in ("attn_out", "mlp_out"):
        torch.testing.assert_close(c.patch(site).grid[-1, :-1], torch.zeros(N - 1), atol=1e-5, rtol=0)
        assert torch.equal(c.patch(site, attribution_patching).grid[-1, :-1], torch.zeros(N - 1))


def linear_at_the_end(seed: int, mlp: bool) -> gpt2viz.GPT2:
    """A model whose logit difference is affine in the last layer's mlp_out (ln_f made affine) and,
    with `mlp` False (the last MLP's output weights zeroed), in its attn_out and z as well."""
    model = affine_ln_f(tiny_model(seed))
    if not mlp:
        with torch.no_grad():
            model.h[-1].mlp.c_proj.weight.zero_()
    return model


def test_heads_add_up_to_the_attention_output_where_the_model_is_linear_in_them() -> None:
    """Where the logit difference is affine in the last layer's z at the last position (W_O is
    linear), each head's patch adds to the others', and together they are attn_out's patch at the
    last position."""
    c = case(linear_at_the_end(seed=3, mlp=False), 4, 9, seed=1)
    heads, attn_out = c.patch("z").grid[-1], c.patch("attn_out").grid[-1]
    assert heads.abs().max() > 0.05
    assert heads.sum().item() == pytest.approx(attn_out[-1].item(), abs=1e-4)


@pytest.mark.parametrize("site", ["attn_out", "z", "mlp_out"])
def test_attribution_is_exact_where_the_model_is_linear(site: str) -> None:
    """The first-order estimate of an affine function is the function: in the last layer of
    `linear_at_the_end`'s models the estimate is the exact grid's row."""
    c = case(linear_at_the_end(seed=4, mlp=site == "mlp_out"), 2, 10, seed=2)
    exact, estimate = c.patch(site), c.patch(site, attribution_patching)
    assert estimate.corrupted_value == pytest.approx(exact.corrupted_value, abs=1e-6)
    assert exact.grid[-1].abs().max() > 0.05  # something to compare
    torch.testing.assert_close(estimate.grid[-1], exact.grid[-1], atol=1e-5, rtol=0)
    # ...while layer 0 reaches the output through LayerNorms, softmaxes and GELUs: an estimate only
    assert (estimate.grid[0] - exact.grid[0]).abs().max() > 1e-3


@pytest.mark.parametrize("site", SITES)
def test_attribution_follows_the_exact_grid(model, site: str) -> None:
    c = case(model, 3, 8)
    exact, estimate = c.patch(site), c.patch(site, attribution_patching)
    assert estimate.method == "attribution" and estimate.grid.shape == exact.grid.shape
    assert (estimate.clean_value, estimate.corrupted_value) == pytest.approx(
        (exact.clean_value, exact.corrupted_value), abs=1e-6)
    r = np.corrcoef(exact.grid.flatten().numpy(), estimate.grid.flatten().numpy())[0, 1]
    assert r > 0.5


def test_attribution_of_heads_adds_up_to_the_attention_output(model) -> None:
    """Gradient · change is linear: summed over heads (and positions), z's estimate is attn_out's
    summed over positions, since attn_out = W_O z + b_O."""
    c = case(model, 3, 8)
    heads, attn_out = c.patch("z", attribution_patching).grid, c.patch("attn_out", attribution_patching).grid
    torch.testing.assert_close(heads.sum(1), attn_out.sum(1), atol=1e-5, rtol=1e-4)


def test_attribution_leaves_the_model_alone_and_runs_under_inference_mode(model) -> None:
    c = case(model, 3, 8)
    plain = c.patch("z", attribution_patching)
    with torch.inference_mode():
        inside = c.patch("z", attribution_patching)
    assert torch.equal(plain.grid, inside.grid)
    assert all(p.grad is None for p in model.parameters())


def test_works_on_a_loaded_checkpoint(small_model) -> None:
    """The Hugging Face checkpoint of conftest.py (random biases and LayerNorms): the fast passes
    agree with full ones there too."""
    c = case(small_model, 3, 8)
    torch.testing.assert_close(c.patch("attn_out").grid, by_hand(c, "attn_out"), atol=1e-4, rtol=0)


def test_prompts_of_different_lengths_are_refused(model) -> None:
    c = case(model, 3)
    for patching in (activation_patching, attribution_patching):
        with pytest.raises(gpt2viz.PromptError, match="clean prompt is 12 tokens and the corrupted prompt 11"
                           ):
            patching(model, c.clean, c.corrupted[:-1], c.answer, c.wrong)


@pytest.mark.parametrize("kwargs, message", [
    (dict(site="mask"), "site must be a per-layer hook point with a position or a head axis"),
    (dict(site="embed"), "site must be a per-layer hook point"),
    (dict(answer=None), "Give the answer and wrong tokens"),
    (dict(answer=50257), "answer token id 50257 is outside the vocabulary"),
    (dict(wrong=7, answer=7), "answer and wrong are the same token"),
    (dict(labels=["a"]), "1 labels for 12 positions"),
])
def test_bad_arguments_are_refused(model, kwargs: dict, message: str) -> None:
    c = case(model, 3)
    args = dict(answer=c.answer, wrong=c.wrong) | kwargs
    with pytest.raises(ValueError, match=message):
        activation_patching(model, c.clean, c.corrupted, **args)


def test_identical_runs_leave_nothing_to_normalise(model) -> None:
    c = case(model, 3)
    for patching in (activation_patching, attribution_patching):
        with pytest.raises(ValueError, match="nothing to normalise"):
            patching(model, c.clean, list(c.clean), c.answer, c.wrong)


# --- figures (gpt2viz.viz.patching) -----------------------------------------------------------

def result(grid: list[list[float]], site: str = "resid_pre", method: str = "exact") -> PatchingResult:
    g = torch.tensor(grid)
    labels = [f"H{h}" for h in range(g.shape[1])] if site == "z" else [f"t{i}" for i in range(g.shape[1])]
    return PatchingResult(g, site, 2.5, -1.25, labels, 11, 22, method)


def test_patching_map_keeps_the_grid_and_a_range_centred_at_0() -> None:
    m = patching_map(result([[0.0, 1.0, 0.25], [-0.5, 0.75, 0.0]]))
    np.testing.assert_array_equal(m.values, np.array([[0.0, 1.0, 0.25], [-0.5, 0.75, 0.0]], np.float32))
    assert m.columns == ["t0", "t1", "t2"] and m.across == "position" and m.limit == 1.0
    assert patching_map(result([[0.0, -1.75]])).limit == 1.75  # the range grows to show every cell
    assert patching_map(result([[0.0, 1.0]]), labels=["'A'", "' b'"]).columns == ["'A'", "' b'"]
    with pytest.raises(ValueError, match="3 labels for 2 positions"):
        patching_map(result([[0.0, 1.0]]), labels=["a", "b", "c"])
    assert "the corrupted run, with one activation taken from the clean run" in m.title
    assert "clean 2.50, corrupted -1.25" in m.title and m.title.startswith("Activation patching of resid_pre")


def test_patching_figure_is_a_labelled_diverging_heatmap() -> None:
    m = patching_map(result([[0.0, 1.0], [-0.504, 0.126]], site="z", method="attribution"))
    fig = patching_figure(m)
    assert isinstance(fig, go.Figure)
    (heat,) = fig.data
    assert heat.type == "heatmap" and heat.zmid == 0.0 and (heat.zmin, heat.zmax) == (-1.0, 1.0)
    assert heat.colorscale[0][1] != heat.colorscale[-1][1]  # diverging: two ends
    np.testing.assert_array_equal(np.asarray(heat.z), m.values)
    assert [list(row) for row in heat.text] == [["0.00", "1.00"], ["-0.50", "0.13"]]
    assert list(fig.layout.xaxis.ticktext) == ["H0", "H1"] and fig.layout.xaxis.title.text == "head"
    assert fig.layout.yaxis.title.text == "layer" and fig.layout.yaxis.autorange == "reversed"
    assert fig.layout.title.text.startswith("Attribution patching (first-order estimate) of z: the "
                                            "corrupted run, with one activation taken from the clean run")


def test_repeated_tokens_keep_their_own_columns() -> None:
    """Plotly merges equal category names: the columns are numbered and the labels are tick texts."""
    fig = patching_figure(patching_map(result([[0.0, 1.0, 0.5]]), labels=["' a'", "' b'", "' a'"]))
    assert list(fig.data[0].x) == [0, 1, 2] and list(fig.layout.xaxis.ticktext) == ["' a'", "' b'", "' a'"]


def test_comparison_pairs_the_cells_and_names_the_correlation() -> None:
    exact = result([[0.0, 1.0, 0.5], [0.25, 0.0, 0.75]])
    estimate = result([[0.0, 0.9, 0.6], [0.2, 0.1, 0.7]], method="attribution")
    c = patching_comparison(exact, estimate)
    np.testing.assert_array_equal(c.exact, exact.grid.flatten().numpy())
    np.testing.assert_array_equal(c.estimate, estimate.grid.flatten().numpy())
    r = np.corrcoef(exact.grid.flatten().numpy(), estimate.grid.flatten().numpy())[0, 1]
    assert c.correlation == pytest.approx(r) and f"r = {r:.3f}" in c.title
    assert c.cells[4] == "layer 1, position 1 (t1)"
    fig = patching_comparison_figure(c)
    line, points = fig.data
    assert points.mode == "markers" and list(points.text) == c.cells
    np.testing.assert_array_equal(np.asarray(points.x), c.exact)
    assert fig.layout.title.text == c.title
    assert fig.layout.xaxis.title.text.startswith("activation patching")
    assert line.mode == "lines" and list(line.x) == list(line.y)  # where the two would agree
    flat = patching_comparison(exact, result([[0.5, 0.5, 0.5], [0.5, 0.5, 0.5]], method="attribution"))
    assert np.isnan(flat.correlation) and "undefined" in flat.title
    with pytest.raises(ValueError, match="different sites"):
        patching_comparison(exact, result([[0.0, 1.0, 0.5], [0.25, 0.0, 0.75]], site="mlp_out"))


def test_figures_of_a_real_result(model) -> None:
    c = case(model, 3, 8)
    exact, estimate = c.patch("attn_out"), c.patch("attn_out", attribution_patching)
    fig = patching_figure(patching_map(exact))
    assert np.asarray(fig.data[0].z).shape == (2, N)
    c = patching_comparison(exact, estimate)
    assert len(c.cells) == 2 * N and c.correlation > 0.5


@pytest.mark.parametrize("site", ["q", "v", "pattern", "attn_scores", "ln1_normalized", "resid_mid", "post",
                                  "ln2_scale"])
def test_any_hook_point_with_a_position_or_head_axis_is_a_site(model, site: str) -> None:
    """Beyond the app's four sites: the fast passes (a position over the corrupted cache, a head
    at every position) against full patched passes by hand, for points before and inside
    attention, deferred ones (the normalised input, the neurons after GELU) included."""
    c = case(model, 3, 8)
    result = c.patch(site)
    expected = by_hand(c, site)
    scale = float(expected.abs().max())
    assert scale > 1e-5  # something to compare (a random model's queries move the output little)
    torch.testing.assert_close(result.grid, expected, atol=1e-3 * scale + 1e-6, rtol=0)
    assert result.across == ("head" if site in ("q", "v", "pattern", "attn_scores") else "position")
    estimate = c.patch(site, attribution_patching)
    assert estimate.grid.shape == result.grid.shape and estimate.across == result.across


def test_the_sites_are_the_per_layer_points_with_a_position_or_head_axis() -> None:
    sites = patchable_sites()
    assert set(SITES) <= set(sites) and "mask" not in sites and "embed" not in sites
    assert [head_axis(s) for s in ("z", "pattern", "resid_pre")] == [2, 1, None]


def test_a_metric_of_the_callers_replaces_the_logit_difference(model) -> None:
    """The answer's log-probability, by hand and by both methods; the default metric spelled out
    gives the default grid."""
    c = case(model, 3, 8)

    def log_prob(logits: torch.Tensor) -> torch.Tensor:
        return logits.float().log_softmax(-1)[c.answer]

    for site in ("resid_pre", "z"):
        result = activation_patching(model, c.clean, c.corrupted, site=site, metric=log_prob)
        torch.testing.assert_close(result.grid, by_hand(c, site, log_prob), atol=1e-4, rtol=0)
        assert result.answer is None and result.clean_value == pytest.approx(float(log_prob(
            model.run_with_capture(c.clean, names=[]).logits[-1])), abs=1e-5)
        estimate = attribution_patching(model, c.clean, c.corrupted, site=site, metric=log_prob)
        assert estimate.corrupted_value == pytest.approx(result.corrupted_value, abs=1e-5)
        assert np.corrcoef(result.grid.flatten(), estimate.grid.flatten())[0, 1] > 0.5
    spelled = activation_patching(model, c.clean, c.corrupted, metric=logit_difference(c.answer, c.wrong))
    torch.testing.assert_close(spelled.grid, c.patch().grid, atol=1e-5, rtol=0)


@pytest.mark.parametrize("clean, corrupted", [(1.0, 0.0), (0.5, -0.5), (3.9, -3.85), (MIN_DIFFERENCE, 0.0)])
def test_a_pair_the_model_tells_apart_is_usable(clean: float, corrupted: float) -> None:
    assert pair_problem(clean, corrupted) is None  # exactly MIN_DIFFERENCE is enough


@pytest.mark.parametrize("clean, corrupted, words", [
    (-3.86, -3.67, "The clean run does not prefer the answer: its logit difference answer − wrong is -3.86"),
    (0.0, -5.0, "does not prefer the answer"),  # a tie is no preference
    (1.0, 0.01, "The difference to explain is only 0.99 (clean 1.00 − corrupted 0.01); a usable pair has "
                "at least 1"),
    (2.0, 2.5, "only -0.50"),  # the corrupted run prefers the answer more
])
def test_a_pair_it_does_not_tell_apart_gets_a_reason(clean: float, corrupted: float, words: str) -> None:
    problem = pair_problem(clean, corrupted)
    assert problem is not None and words in problem and problem.rstrip().endswith(".")


def test_the_check_reads_the_default_metric_only(model) -> None:
    c = case(model, 3, 8)
    result = c.patch()
    assert result.problem == pair_problem(result.clean_value, result.corrupted_value)
    custom = activation_patching(model, c.clean, c.corrupted, metric=lambda logits: logits[c.answer] * 1e-3)
    assert custom.problem is None  # a metric of the caller's has its own scale


def test_typed_end_of_text_is_the_token_and_blank_prompts_are_refused() -> None:
    tok = gpt2viz.load_tokenizer()
    assert prompt_ids(tok, "<|endoftext|> a b") == [gpt2viz.EOT_ID, *tok.encode(" a b")]
    with pytest.raises(gpt2viz.PromptError, match="The prompt is empty"):
        prompt_ids(tok, "  ")


@functools.cache
def bundled() -> gpt2viz.GPT2:
    return gpt2viz.load_model(gpt2viz.BUNDLED_NAME, device="cpu")


MARY_JOHN = ("When Mary and John went to the store, John gave a drink to",
             "When Mary and John went to the store, Mary gave a drink to", " Mary", " John")


def patch_texts(model: gpt2viz.GPT2, clean: str, corrupted: str, answer: str, wrong: str,
                site: str = "resid_pre") -> PatchingResult:
    tok = gpt2viz.load_tokenizer()
    return activation_patching(model, prompt_ids(tok, clean), prompt_ids(tok, corrupted),
                               tok.single_token(answer, "answer"), tok.single_token(wrong, "wrong"), site)


def test_every_shipped_example_is_a_pair_of_equal_length_with_one_token_answers() -> None:
    tok = gpt2viz.load_tokenizer()
    for name in ("gpt2", "openai-community/gpt2", gpt2viz.BUNDLED_NAME):
        example = patching_example(name)
        assert example is not None and example.why
        assert len(prompt_ids(tok, example.clean)) == len(prompt_ids(tok, example.corrupted))
        assert tok.single_token(example.answer, "answer") != tok.single_token(example.wrong, "wrong")
    assert patching_example("gpt2").clean == MARY_JOHN[0]  # the app's default pair is the real GPT-2's
    assert patching_example("no-such-model") is None


@pytest.mark.skipif(not (ASSETS / gpt2viz.BUNDLED_NAME).is_dir(), reason="no bundled model")
def test_the_bundled_models_example_works_by_its_induction_head() -> None:
    """Its clean run prefers the answer and its corrupted run the wrong token, each by a clear
    margin; the difference moves from the changed word to the last position at layer 2, after the
    induction head (1.0), which carries it all."""
    example = patching_example(gpt2viz.BUNDLED_NAME)
    pair = (example.clean, example.corrupted, example.answer, example.wrong)
    result = patch_texts(bundled(), *pair)
    assert result.problem is None
    assert result.clean_value > MIN_DIFFERENCE and result.corrupted_value < -MIN_DIFFERENCE
    changed = 4  # '<|endoftext|>', ' ladder', ' camera', ' stone', ' orange'/' silver'
    grid = result.grid
    assert grid[:2, changed].min() > 0.9 and grid[2:, -1].min() > 0.9
    heads = patch_texts(bundled(), *pair, site="z").grid
    assert heads[1, 0] > 0.9 and heads[1:].flatten().topk(2).values[1] < 0.1


@pytest.mark.skipif(not (ASSETS / gpt2viz.BUNDLED_NAME).is_dir(), reason="no bundled model")
def test_the_real_gpt2s_pair_explains_noise_on_the_bundled_model() -> None:
    result = patch_texts(bundled(), *MARY_JOHN)
    assert result.clean_value < 0
    assert result.problem.startswith("The clean run does not prefer the answer")
