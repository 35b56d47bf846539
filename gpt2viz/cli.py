"""The command line: `python -m gpt2viz generate "The cat" ...`, `python -m gpt2viz hooks`,
`python -m gpt2viz patch CLEAN CORRUPTED --answer A --wrong W` and `python -m gpt2viz app`.

Every expected failure (a bad argument, a prompt that cannot run, a model that cannot load)
ends with one line on stderr and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shlex
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NoReturn, TextIO

from .errors import LoadError, PromptError
from .generation import Generation, Step, advance_together
from .hooks import point_of
from .loading import load_default_model, load_model
from .model import GPT2
from .patching import (
    SITES,
    PatchingResult,
    activation_patching,
    attribution_patching,
    patching_example,
    prompt_ids,
)
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
    patch.add_argument("clean", help="the prompt the patched activations come from (<|endoftext|> in it is "
                                     "the end-of-text token)")
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
    commands.add_parser("app", help="start the app in Streamlit, as `make run` does; any other option goes "
                                    "to `streamlit run`, e.g. --server.port 8600")
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


def _space_warning(option: str, token: str, prompt: str, tok: GPT2Tokenizer) -> str | None:
    """A warning when `token` (the text of --answer or --wrong) has no leading space where the
    prompt's next token would usually have one: after a word, a number or punctuation that a
    space follows ("to" + "Mary" is "toMary"). It names the spaced form, when that is one token."""
    last = prompt[-1:]
    after_word = last.isalnum() or (last != "" and last in ",.;:!?")
    if not (after_word and token[:1].isalnum()) or len(tok.encode(" " + token)) != 1:
        return None
    return (f"warning: {option} {token!r} has no leading space, but after {prompt.split()[-1]!r} the next "
            f"token usually starts with one: use {option} {' ' + token!r}.\n")


def _example_hint(model: GPT2) -> str:
    """The command that patches the pair known to work on `model`, or "" when none is known."""
    example = patching_example(model.name)
    if example is None:
        return ""
    command = shlex.join(["patch", example.clean, example.corrupted, "--answer", example.answer,
                          "--wrong", example.wrong, "--model", model.name])
    return f"A pair that works on {model.name}: {_prog()} {command}\n"


def _patch(args: argparse.Namespace, out: TextIO, err: TextIO) -> None:
    tok = load_tokenizer()
    answer, wrong = tok.single_token(args.answer, "--answer"), tok.single_token(args.wrong, "--wrong")
    clean, corrupted = prompt_ids(tok, args.clean), prompt_ids(tok, args.corrupted)
    for option, token, prompt in (("--answer", args.answer, args.clean),
                                  ("--wrong", args.wrong, args.corrupted)):
        err.write(_space_warning(option, token, prompt, tok) or "")
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
    if result.problem:
        err.write(f"warning: {result.problem}\n{_example_hint(model)}")
    out.write(patching_table(result))


def app_script() -> Path:
    """The app's streamlit_app.py: in gpt2viz_app/ beside the package once installed from a wheel,
    or beside the package in a clone (and `pip install -e .`). Its .streamlit/config.toml lies
    beside it, where Streamlit reads a script's own settings whatever the working folder."""
    package = Path(__file__).resolve().parent
    folders = (package.parent / "gpt2viz_app", package.parent)
    for folder in folders:
        if (folder / "streamlit_app.py").is_file() and (folder / "app").is_dir():
            return folder / "streamlit_app.py"
    raise FileNotFoundError(f"The app is not installed with this gpt2viz (no streamlit_app.py and app/ in "
                            f"{' or '.join(map(str, folders))}): reinstall it with "
                            "pip install \"gpt2viz[app]\".")


def app_command(extra: Sequence[str]) -> list[str]:
    """`python -m streamlit run <the app> ...` with `make run`'s settings: headless (no browser
    opened on the server, no first-run question), unless `extra` (passed on, last) sets it."""
    given = {arg.split("=")[0] for arg in extra}
    headless = [] if "--server.headless" in given else ["--server.headless", "true"]
    return [sys.executable, "-m", "streamlit", "run", str(app_script()), *headless, *extra]


# glibc's malloc arenas, at most this many (instead of 8 a core): a class's server runs a thread per
# session, and memory freed in one arena is not reused by another; with 2, 320 sessions in waves
# grew the server's RSS by +75 and +90 MB where it grew by +115 MB without (bench/README.md, soak.py).
# glibc reads it as the process starts, so every launcher puts it in the environment.
MALLOC_ARENAS = "2"


def app_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """`environ` with MALLOC_ARENA_MAX set to MALLOC_ARENAS unless it sets it itself."""
    return {"MALLOC_ARENA_MAX": MALLOC_ARENAS, **environ}


def _app(extra: Sequence[str], err: TextIO) -> int:
    """Start the app in Streamlit's own command, which takes this process's place (its output,
    Ctrl-C and exit code are the command's): the library never imports Streamlit."""
    if importlib.util.find_spec("streamlit") is None:
        err.write(f"{_prog()}: error: the app needs Streamlit, which is not installed here: "
                  "pip install \"gpt2viz[app]\".\n")
        return 1
    command = app_command(extra)
    os.execve(command[0], command, app_environment(os.environ))


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Run the command line; returns the exit code (`app` does not return: Streamlit runs instead)."""
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "app":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        if args.command == "app":
            return _app(extra, err)
        {"generate": _generate, "hooks": _hooks, "patch": _patch}[args.command](args, out, err)
    except (PromptError, LoadError, ValueError, OSError) as error:
        err.write(f"{_prog()}: error: {error}\n")
        return 1
    except KeyboardInterrupt:
        err.write("\ninterrupted\n")
        return 130
    return 0
