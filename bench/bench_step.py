"""Time the Inside-a-step page as a user meets it, in-process with streamlit's AppTest:

- the first view of the page after a generation (records the sequence's residual stream, keys
  and values once);
- selecting another generation step → the page drawn again (one token re-run over the cache and
  a logit-lens window);
- moving the page's temperature (the sampling chain redrawn from the step's logits). AppTest
  reruns the whole page; in the browser only the chain's fragment reruns, so its own work
  (stages, the draw, the figure and its JSON) is timed too.

Models: the bundled gpt2viz-mini (context 512) and gpt2-small sized random weights, at a short
and a long sequence (prompt + 2 generated tokens). Targets (this 2-core CPU, gpt2-small, ~1,000
tokens): step selection under 1 s, temperature change under 150 ms.
Usage: .venv/bin/python bench/bench_step.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402
import torch  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402

import gpt2viz  # noqa: E402
from gpt2viz.loading import MODEL_ENV  # noqa: E402
from gpt2viz.sampling import draw, sampling_stages  # noqa: E402
from gpt2viz.viz.sampling import chain_data, sampling_chain_figure  # noqa: E402
from tests.app_support import session_generation  # noqa: E402

TEXT = ("I love the color black, I hope someday to have a cat like that. It would sleep all day "
        "in the sun by the window, and at night it would sit on the roof and watch the street. ")
STEP_PAGE = "app/pages/inside_step.py"


def prompt_of(n_tokens: int) -> list[int]:
    tok = gpt2viz.load_tokenizer()
    ids = tok.encode(TEXT * (n_tokens // 20 + 1))[:n_tokens]
    assert len(ids) == n_tokens
    return ids


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def bench(source: str, tokens: int, repeats: int) -> dict[str, float]:
    os.environ[MODEL_ENV] = source
    tok = gpt2viz.load_tokenizer()
    prompt = tok.decode(prompt_of(tokens - 2))
    out: dict[str, list[float]] = {"first view": [], "step change": [], "temperature": []}
    for i in range(repeats):
        st.cache_resource.clear()
        at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=900)
        at.run()
        at.text_area(key="prompt").input(prompt)
        at.number_input(key="max_new_tokens").set_value(2)
        at.button[1].click().run()
        assert len(session_generation(at).steps) == 2, at.exception
        at.switch_page(STEP_PAGE)
        out["first view"].append(timed(at.run))
        at.select_slider(key="step").set_value(0)
        out["step change"].append(timed(at.run))
        at.slider(key="step_temperature").set_value(0.5 + 0.1 * i)
        out["temperature"].append(timed(at.run))
        assert not at.exception, at.exception
    model = gpt2viz.load_model(source, device="cpu")
    logits = model.run_with_capture(prompt_of(tokens - 2), names=[]).logits[-1]
    temperatures = [0.5 + 0.1 * i for i in range(repeats)]
    out["fragment"] = [timed(lambda t=t: chain_fragment_work(logits, t)) for t in temperatures]
    return {k: statistics.median(v) for k, v in out.items()}


def chain_fragment_work(logits: torch.Tensor, temperature: float) -> None:
    """What app.step_sampling.sampling_chain computes when a control moves, up to the JSON sent."""
    tok = gpt2viz.load_tokenizer()
    stages = sampling_stages(logits, temperature, None, None)
    tok.token_text(draw(stages.probs, 0, 1))
    sampling_chain_figure(chain_data(stages, tok, int(logits.argmax())), "chain").to_json()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; median of {args.repeats} runs\n")
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        small = str(gpt2viz.save_model(gpt2viz.GPT2(gpt2viz.GPT2Config()), Path(tmp) / "gpt2-small"))
        cases = [(f"{gpt2viz.BUNDLED_NAME} (bundled)", gpt2viz.BUNDLED_NAME, (20, 500)),
                 ("gpt2-small shape, random weights", small, (20, 1000))]
        verdicts = []
        for name, source, lengths in cases:
            for tokens in lengths:
                r = bench(source, tokens, args.repeats)
                if source == small and tokens == 1000:  # the case the targets are set for
                    verdicts = [("step change < 1 s", r["step change"] < 1.0),
                                ("temperature (the fragment) < 0.15 s", r["fragment"] < 0.15)]
                print(f"{name}, {tokens} tokens")
                print(f"  first view of the page       {r['first view']:7.3f} s")
                print(f"  another step selected        {r['step change']:7.3f} s")
                print(f"  temperature moved            {r['temperature']:7.3f} s (whole page, AppTest)")
                print(f"    the chain fragment alone   {r['fragment']:7.3f} s (the browser's rerun)\n")
    print("targets, gpt2-small at 1,000 tokens: "
          + "; ".join(f"{what}: {'met' if ok else 'MISSED'}" for what, ok in verdicts))


if __name__ == "__main__":
    main()
