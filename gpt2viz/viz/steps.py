"""A compact record of one generation step: the token, its candidates and its attention row.

A `Step`'s trace is dropped; only the new token's attention over the cached keys is kept
(float16, [layer, head, key]) so that a long generation stays small in memory.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from gpt2viz import Step

PATTERN_NAMES = ("blocks.*.attn.hook_pattern",)  # what `generate` must record for `from_step`


@dataclass(frozen=True)
class StepRecord:
    index: int
    position: int  # absolute position of the chosen token
    token_id: int
    text: str
    prob: float
    top: list[tuple[int, str, float]]
    stop_reason: str | None
    attention_row: np.ndarray  # [layer, head, key]: the query at position-1 over keys 0..position-1

    @property
    def query_position(self) -> int:
        """The position whose output predicted this token."""
        return self.position - 1

    @classmethod
    def from_step(cls, step: Step, n_layer: int) -> StepRecord:
        if step.trace is None:
            raise ValueError("The step has no trace: call generate() with record=True.")
        rows = [step.trace[f"blocks.{i}.attn.hook_pattern"][:, -1, :] for i in range(n_layer)]
        return cls(step.index, step.position, step.token_id, step.text, step.prob, list(step.top),
                   step.stop_reason, torch.stack(rows).to(torch.float16).numpy())
