"""The model card (README.md beside the weights), rendered from training.json.

The wording lives in card_template.md; this module computes the figures the template shows and
chooses which of its optional paragraphs apply to the run.
"""

from __future__ import annotations

import json
import math
import re
from functools import cache
from pathlib import Path

TEMPLATE = Path(__file__).with_name("card_template.md")
OLD_SCRIPT = "scripts/train_bundled_model.py"  # the name the first runs' commands were recorded under
PREVIOUS_TOKEN_TARGET = 0.5  # the project's bar for a previous-token head
INDUCTION_TARGET = 0.4  # and for an induction head
DEVICE_NAMES = {"cpu": "CPU", "cuda": "CUDA"}


@cache
def template_parts() -> dict[str, str]:
    """The named parts of card_template.md, each without its final newline."""
    pieces = re.split(r"^<!-- part: (\w+) -->\n", TEMPLATE.read_text(), flags=re.MULTILINE)
    return {name: text.rstrip("\n") for name, text in zip(pieces[1::2], pieces[2::2], strict=True)}


def run_chain(record: dict) -> list[dict]:
    """The runs that made the weights, oldest first: each record's `previous_run`, then itself."""
    runs, node = [], record
    while node:
        runs.insert(0, node)
        node = node.get("previous_run")
    return runs


def run_mix(h: dict) -> str:
    """What one run trained on, in words, from its hyper-parameters."""
    synthetic = h.get("synthetic_frac", 0.0)
    parts = [f"the first {h['synthetic_first']} steps synthetic"] if h.get("synthetic_first") else []
    parts += [f"{synthetic:.0%} synthetic steps"] if synthetic else []
    if synthetic < 1:
        parts.append(f"{1 - synthetic:.0%} text steps ({h['repeat_frac']:.0%} of the text windows with a "
                     "repeated span)")
    if h.get("prev_aux", 0.0):
        parts.append(f"previous-token probe weight {h['prev_aux']}")
    if h.get("induction_aux", 0.0):
        parts.append(f"induction guide weight {h['induction_aux']} on head {h['induction_head']}")
    if h.get("sinusoidal_wpe", 0.0):
        parts.append("position embedding re-initialised with sinusoids")
    return ", ".join(parts)


def curriculum_text(hparams: list[dict]) -> str:
    """The card's account of the data and objectives the runs used to make heads form."""
    t = template_parts()
    paragraphs = [t["repeated_spans"]]
    if any(h.get("synthetic_frac", 0.0) > 0 or h.get("synthetic_first", 0) > 0 for h in hparams):
        paragraphs.append(t["synthetic_steps"])
    if any(h.get("induction_aux", 0.0) > 0 for h in hparams):
        paragraphs.append(t["induction_guide"])
    if any(h.get("prev_aux", 0.0) > 0 for h in hparams):
        paragraphs.append(t["previous_token_probe"])
    return "\n\n".join(paragraphs)


def targets_text(prev_score: float, induction: float, total_tokens: int) -> str:
    """The card's statement of which head targets were missed, and why; empty when both are met."""
    missed = []
    if prev_score < PREVIOUS_TOKEN_TARGET:
        missed.append(f"a previous-token head scoring ≥ {PREVIOUS_TOKEN_TARGET} (best here {prev_score:.3f})")
    if induction < INDUCTION_TARGET:
        missed.append(f"an induction head scoring ≥ {INDUCTION_TARGET} (best here {induction:.3f})")
    if not missed:
        return ""
    return template_parts()["targets_missed"].format(missed=" and ".join(missed), tokens_m=total_tokens / 1e6)


def _cell(text: str) -> str:
    """Text as code inside one Markdown table cell."""
    return "`" + text.replace("|", "\\|").replace("\n", " ") + "`"


def render_card(r: dict, shipped_config: str | None = None) -> str:
    """The model card of training.json's record `r`. `shipped_config`: the repository path of a
    config file holding exactly the last run's hyper-parameters, which the card then names."""
    t = template_parts()
    h, c = r["hyperparameters"], r["config"]
    runs = run_chain(r)
    total_tokens = r.get("tokens_seen_total", r["tokens_seen"])
    sources = []
    for s in r["sources"]:
        line = t["source"].format(**s)
        if s.get("note"):
            line += "\n" + t["source_note"].format(note=s["note"])
        sources.append(line)
    notes = []
    if any(OLD_SCRIPT in run["command"] for run in runs):
        notes.append(t["old_script"])
    if shipped_config is not None:
        notes.append(t["shipped_config"].format(config=shipped_config))
    pt, ind = r["previous_token"]["best"], r["induction"]["best"]
    targets = targets_text(pt["score"], ind["score"], total_tokens)
    if targets:
        notes.append(targets)
    rows, notes_text = "", ""
    checks = r.get("induction_checks")
    if checks:  # evaluate.induction_checks writes all three
        frequent, known = checks["frequent"], checks["known"]
        rows += "\n" + t["induction_frequent"].format(n=len(frequent["ids"]), b=frequent["best"])
        rows += "\n" + t["induction_known"].format(ranks=known["ranks"], b=known["best"])
        rows += "\n" + t["induction_ablation"].format(a=checks["ablation"])
        notes_text = "\n\n" + t["induction_notes"]
    card = t["card"].format(
        induction_rows=rows, induction_notes=notes_text,
        r=r, h=h, c=c, pt=pt, ind=ind, vs=r["val_sample"],
        tokens_m=total_tokens / 1e6,
        total_tokens=total_tokens,
        total_steps=r.get("steps_total", r["steps"]),
        total_minutes=r.get("train_minutes_total", r["train_minutes"]),
        n_runs=len(runs),
        embedding_params=c["vocab_size"] * c["n_embd"],
        file_mb=r["file_bytes"] / 1e6,
        shape=" / ".join(str(v) for v in (c["n_layer"], c["n_head"], c["n_embd"],
                                          c["n_embd"] // c["n_head"], 4 * c["n_embd"])),
        train_ppl=math.exp(r["train_loss"]),
        samples="\n".join(t["sample"].format(prompt=_cell(p), continuation=_cell(repr(s)))
                          for p, s in r["greedy_samples"].items()),
        sources="\n".join(sources),
        curriculum=curriculum_text([run["hyperparameters"] for run in runs]),
        runs="\n".join(t["run"].format(number=i, mix=run_mix(run["hyperparameters"]), **run)
                       for i, run in enumerate(runs, 1)),
        notes="".join(f"{n}\n\n" for n in notes),
        hparams_json=json.dumps(h, indent=2),
        device=DEVICE_NAMES.get(h.get("device", "cpu"), h.get("device", "cpu")),
    ) + "\n"
    if "evaluation_rerun" in r:
        card += "\n" + t["evaluation_rerun"].format(command=r["evaluation_rerun"]["command"]) + "\n"
    return card
