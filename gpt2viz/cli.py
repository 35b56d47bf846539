"""The command line: `python -m gpt2viz generate "The cat" ...`, `python -m gpt2viz hooks` and
`python -m gpt2viz patch CLEAN CORRUPTED --answer A --wrong W`.

Every expected failure (a bad argument, a prompt that cannot run, a model that cannot load)
ends with one line on stderr and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn, TextIO

from .errors import LoadError, PromptError
from .generation import Generation, Step, advance_together
from .hooks import point_of
from .loading import load_default_model, load_model
from .model import GPT2
from .patching import SITES, PatchingResult, activation_patching, attribution_patching
from .saved_trace import save_trace
from .tokenizer import GPT2Tokenizer, load_tokenizer

PROG = "python -m gpt2viz"  # or `gpt2viz`, the installed command: messages name the one run (`_prog`)
LONG_RUN = 32  # a progress bar on stderr from this many new tokens on


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """One line instead of argparse's usage block."""
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _prog() -> str:
    return "gpt2viz" if Path(sys.argv[0]).name == "gpt2viz" else PROG


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=_prog(), description="See inside GPT-2 while it writes.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    gen = commands.add_parser("generate", help="generate text and print each step's candidates")
    gen.add_argument("prompt", nargs="+", help="one or more prompts: several are written together, "
                                               "one forward pass per step for all of them")
    _model_arguments(gen)
    gen.add_argument("--max-new-tokens", type=int, default=20)
    gen.add_argument("--temperature", type=float, default=0.0, help="0 (the default) is greedy")
    gen.add_argument("--top-k", type=int, default=None)
    gen.add_argument("--top-p", type=float, default=None)
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--candidates", type=int, default=5, help="top candidates printed per step")
    gen.add_argument("--save-trace", metavar="PATH",
                     help="record the whole final sequence and write it as a .safetensors trace "
                          "(with several prompts: PATH-1, PATH-2, ... before the extension)")
    hooks = commands.add_parser("hooks", help="list the model's hook points with their shapes")
    _model_arguments(hooks)
    patch = commands.add_parser("patch", help="activation patching: run CORRUPTED with one activation at "
                                              "a time taken from CLEAN, and print how much each restores")
    patch.add_argument("clean", help="the prompt the patched activations come from")
    patch.add_argument("corrupted", help="the prompt that is run, patched (as many tokens as CLEAN)")
    patch.add_argument("--answer", required=True,
                       help="the token the clean prompt should be followed by, one token with its leading "
                            "space, e.g. ' Mary'")
    patch.add_argument("--wrong", required=True, help="the token the corrupted prompt should be followed by")
    patch.add_argument("--site", choices=SITES, default="resid_pre",
                       help="what is patched: one position of resid_pre, attn_out or mlp_out, or one "
                            "head's z at every position (default: resid_pre)")
    patch.add_argument("--attribution", action="store_true",
                       help="estimate every cell from one backward pass (attribution patching) instead "
                            "of one patched pass per cell")
    _model_arguments(patch)
    return parser


def _model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None,
                        help="preset, Hugging Face repo id, folder or .safetensors file "
                             "(default: $GPT2VIZ_MODEL, else gpt2, else the bundled gpt2viz-mini)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")


def _load(args: argparse.Namespace, err: TextIO) -> GPT2:
    if args.model:
        return load_model(args.model, device=args.device)
    model, fallback_reason = load_default_model(device=args.device)
    if fallback_reason:
        err.write(f"note: the real GPT-2 is not available here, so this is {model.name}, a small "
                  "model trained by the gpt2viz project. Pass --model to choose another.\n")
    return model


def _step_line(step: Step, n: int) -> str:
    top = " | ".join(f"{text!r} {p:.1%}" for _, text, p in step.top[:n])
    return f"{step.index + 1:>5} {step.position:>5}  {step.text!r:<16} {step.prob:>7.1%}  {top}"


def _progress(done: int, total: int, err: TextIO) -> None:
    filled = 30 * done // total
    err.write(f"\rgenerating [{'#' * filled}{'.' * (30 - filled)}] {done}/{total}")
    if done == total:
        err.write("\n")
    err.flush()


def _generate(args: argparse.Namespace, out: TextIO, err: TextIO) -> None:
    if args.candidates < 1:
        raise ValueError(f"--candidates must be at least 1, not {args.candidates}.")
    model, tok = _load(args, err), load_tokenizer()
    generations = [Generation(model, tok, prompt, max_new_tokens=args.max_new_tokens,
                              temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                              seed=args.seed, record=False, n_top=max(10, args.candidates))
                   for prompt in args.prompt]
    lines: list[list[str]] = [[] for _ in generations]
    total = args.max_new_tokens * len(generations)
    while not all(g.finished for g in generations):
        live = [i for i, g in enumerate(generations) if not g.finished]
        for i, step in zip(live, advance_together([generations[i] for i in live]), strict=True):
            lines[i].append(_step_line(step, args.candidates))
        if total >= LONG_RUN:
            done = sum(len(g.steps) for g in generations)
            _progress(done, total if not all(g.finished for g in generations) else done, err)
    for i, (g, steps) in enumerate(zip(generations, lines, strict=True)):
        if len(generations) > 1:
            gap = "\n" if i else ""
            out.write(f"{gap}== prompt {i + 1} of {len(generations)}: {g.prompt!r}\n")
        out.write(f"{'step':>5} {'pos':>5}  {'token':<16} {'p':>7}  top candidates\n")
        out.write("".join(line + "\n" for line in steps))
        out.write(f"\n{tok.decode(g.ids)}\n\nstopped: {g.stop_reason}\n")
        if args.save_trace:
            path = Path(args.save_trace)
            if len(generations) > 1:
                path = path.with_name(f"{path.stem}-{i + 1}{path.suffix}")
            saved = save_trace(model.run_with_capture(g.ids), path)
            out.write(f"trace of all {len(g.ids)} tokens written to {saved}\n")


def _hooks(args: argparse.Namespace, out: TextIO, err: TextIO) -> None:
    model = _load(args, err)
    c = model.config
    sizes = {"d_model": c.n_embd, "d_mlp": c.d_mlp, "d_head": c.d_head, "head": c.n_head}
    out.write(f"{model.name}: {c.n_layer} layers, {c.n_head} heads, d_model {c.n_embd}\n")
    for name in model.hook_names():
        point, _ = point_of(name)
        shape = point.shape
        for dim, size in sizes.items():
            shape = shape.replace(f"{dim},", f"{dim}={size},").replace(f"{dim}]", f"{dim}={size}]")
        out.write(f"{name:<32} {shape:<32} {point.meaning}\n")


def _position_labels(tok: GPT2Tokenizer, clean: list[int], corrupted: list[int]) -> list[str]:
    """Each position's clean token, and the corrupted one after a slash where they differ."""
    return [repr(tok.token_text(a)) + ("" if a == b else "/" + repr(tok.token_text(b)))
            for a, b in zip(clean, corrupted, strict=False)]


def patching_table(result: PatchingResult) -> str:
    """The grid with layers down and positions (or heads) across, two decimals (no "-0.00")."""
    widths = [max(5, len(label)) for label in result.labels]
    lines = ["layer " + " ".join(f"{label:>{w}}" for label, w in zip(result.labels, widths, strict=True))]
    for layer, row in enumerate(result.grid.tolist()):
        cells = (f"{round(v, 2) + 0.0:>{w}.2f}" for v, w in zip(row, widths, strict=True))
        lines.append(f"{layer:>5} " + " ".join(cells))
    return "\n".join(lines) + "\n"


def _patch(args: argparse.Namespace, out: TextIO, err: TextIO) -> None:
    tok = load_tokenizer()
    answer, wrong = tok.single_token(args.answer, "--answer"), tok.single_token(args.wrong, "--wrong")
    clean, corrupted = tok.encode(args.clean), tok.encode(args.corrupted)
    model = _load(args, err)
    patching = attribution_patching if args.attribution else activation_patching
    # Prompts of different lengths: the library's error says so before it reads the labels.
    result = patching(model, clean, corrupted, answer, wrong, args.site,
                      labels=_position_labels(tok, clean, corrupted))
    method = "attribution patching (first-order estimate)" if args.attribution else "activation patching"
    out.write(f"{method} of {args.site}: the corrupted run, with one activation taken from the clean run\n")
    out.write(f"logit difference {args.answer!r} − {args.wrong!r} at the last position: clean "
              f"{result.clean_value:.2f}, corrupted {result.corrupted_value:.2f} "
              "(in the grid, 0 = corrupted and 1 = clean)\n")
    out.write(patching_table(result))


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Run the command line; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        {"generate": _generate, "hooks": _hooks, "patch": _patch}[args.command](args, out, err)
    except (PromptError, LoadError, ValueError, OSError) as error:
        err.write(f"{_prog()}: error: {error}\n")
        return 1
    except KeyboardInterrupt:
        err.write("\ninterrupted\n")
        return 130
    return 0
