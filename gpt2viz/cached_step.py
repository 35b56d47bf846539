"""One generation step seen from inside: the new token run over the key/value cache.

A sequence is recorded once (`record_sequence`: the residual stream and every layer's keys and
values); then any step is re-run alone, as generation ran it (`cached_step`): the cache is filled
with the keys and values of the positions before the step's token, and that one token goes
through the model with every hook point recorded. Its logits are checked against the full run.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch

from .hooks import act_name
from .lens import final_logits, residual_names
from .model import GPT2
from .recording import Edit
from .trace import Trace


def sequence_names(n_layer: int) -> list[str]:
    """What `record_sequence` keeps: the residual points and every layer's keys and values."""
    return residual_names(n_layer) + [act_name("k", "*"), act_name("v", "*")]


def record_sequence(model: GPT2, ids: list[int]) -> Trace:
    """The whole sequence run at once, keeping what the step view and the logit lens read.

    - Keys and values are kept as float32 copies: a step re-run over them must give the full run's
      logits. As views they would keep each layer's fused q, k, v projection, a third more memory,
      alive.
    - The residual stream is kept in float16 at every point but the last: it is read for display
      only (norms, the logit lens), and halving it is what lets gpt2-xl at 1,024 tokens fit the
      app's recording budget. The last point stays float32: the logits come from it.
    - No logits ([pos, 50257], 206 MB at 1,024 tokens): `lens.final_logits` gives them from the
      last residual point where they are needed."""
    names = sequence_names(model.config.n_layer)
    *display_only, _last = residual_names(model.config.n_layer)
    record_as: dict[str, Edit] = {name: torch.Tensor.half for name in display_only}
    record_as |= {act_name("k", "*"): torch.Tensor.clone, act_name("v", "*"): torch.Tensor.clone}
    return model.run_with_capture(ids, names=names, record_as=record_as, with_logits=False)


@dataclass(frozen=True)
class CachedStep:
    query_position: int  # the position run by this step; its output predicts the next token
    trace: Trace  # every hook point of that one position, run over the cache (start = query_position)
    rerun_logits: torch.Tensor  # [vocab] the same position's logits from the full run

    @property
    def logits(self) -> torch.Tensor:
        """[vocab] this step's logits (for the next token)."""
        return self.trace.logits[-1]

    @property
    def max_logit_diff(self) -> float:
        """max |cached step − full re-run| over the vocabulary: computed, not assumed."""
        return float((self.logits - self.rerun_logits).abs().max())


@torch.inference_mode()
def step_over_cache(model: GPT2, key_values: Trace, query_position: int, token: int,
                    names: Iterable[str] | None = None) -> Trace:
    """Position `query_position`, holding `token`, run alone over a cache of the keys and values of
    every position before it, read from `key_values` (a trace of every layer's `k` and `v` from
    position 0: `record_sequence`, `Generation.key_values`). The hook points in `names` (all when
    None) of that one position are recorded (trace start = query_position), its logits too."""
    if key_values.start != 0 or not 0 <= query_position <= len(key_values.ids):
        raise ValueError(f"The keys and values cover positions {key_values.positions}: position "
                         f"{query_position} needs every position before it.")
    layers = range(model.config.n_layer)
    cache = model.new_cache(capacity=query_position + 1)
    cache.fill([key_values["k", layer][:query_position].to(model.device, model.dtype) for layer in layers],
               [key_values["v", layer][:query_position].to(model.device, model.dtype) for layer in layers])
    return model.run_with_capture([token], names=names, cache=cache)


def cached_step(model: GPT2, sequence: Trace, query_position: int) -> CachedStep:
    """Re-run position `query_position` of `sequence` (from `record_sequence`) over a cache
    holding the keys and values of every position before it, recording every hook point. The
    cache held `sequence`'s keys and values of positions < query_position (read them there)."""
    if not 0 <= query_position < len(sequence.ids):
        raise ValueError(f"query_position must lie in 0..{len(sequence.ids) - 1}, not {query_position}.")
    trace = step_over_cache(model, sequence, query_position, sequence.ids[query_position])
    return CachedStep(query_position, trace, final_logits(model, sequence, query_position))
