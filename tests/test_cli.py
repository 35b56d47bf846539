"""The command line: its output, its trace file, and exit codes for good and bad arguments."""

from __future__ import annotations

import importlib.util
import io
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import gpt2viz
from gpt2viz import cli
from gpt2viz.cli import main
from gpt2viz.patching import activation_patching, attribution_patching, patching_example
from gpt2viz.paths import ASSETS
from tests.conftest import SMALL

ROOT = Path(__file__).resolve().parent.parent


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out, err)
    return code, out.getvalue(), err.getvalue()


def test_generate_prints_each_step_and_the_text(small_dir, small_model, tok) -> None:
    code, out, err = run("generate", "The cat", "--model", str(small_dir), "--max-new-tokens", "4",
                         "--device", "cpu", "--candidates", "3")
    assert code == 0 and err == ""
    steps = list(gpt2viz.generate(small_model, tok, "The cat", max_new_tokens=4))
    lines = out.splitlines()
    assert lines[0].split() == ["step", "pos", "token", "p", "top", "candidates"]
    for step, line in zip(steps, lines[1:5], strict=True):
        top = " | ".join(f"{text!r} {p:.1%}" for _, text, p in step.top[:3])
        assert line.split()[:2] == [str(step.index + 1), str(step.position)]
        assert line.startswith(f"{step.index + 1:>5} {step.position:>5}  {step.text!r}")
        assert line.endswith(f"{step.prob:.1%}  {top}")
    assert tok.decode(tok.encode("The cat") + [s.token_id for s in steps]) in out
    assert lines[-1] == "stopped: max_new_tokens"


def test_several_prompts_are_written_together_each_as_alone(small_dir, tmp_path) -> None:
    prompts = ("The cat", "Ships sail across the stormy sea", "Hi")
    common = ("--model", str(small_dir), "--max-new-tokens", "4", "--device", "cpu", "--temperature", "0.9",
              "--seed", "5")
    code, out, err = run("generate", *prompts, *common, "--save-trace", str(tmp_path / "t.safetensors"))
    assert code == 0 and err == ""
    blocks = out.split("\n\n== ")
    assert len(blocks) == 3
    for i, (prompt, block) in enumerate(zip(prompts, blocks, strict=True)):
        header, body = block.removeprefix("== ").split("\n", 1)
        assert header == f"prompt {i + 1} of 3: {prompt!r}"
        _, alone, _ = run("generate", prompt, *common)  # the same prompt on its own
        assert body.split("trace of all")[0] == alone
        trace = gpt2viz.load_trace(tmp_path / f"t-{i + 1}.safetensors")
        assert gpt2viz.load_tokenizer().decode(trace.ids) in alone


def test_sampling_arguments_reach_the_generation(small_dir, small_model, tok) -> None:
    args = ("generate", "Hello", "--model", str(small_dir), "--max-new-tokens", "5", "--temperature",
            "1.3", "--top-k", "20", "--top-p", "0.9", "--seed", "11", "--device", "cpu")
    code, out, _ = run(*args)
    want = gpt2viz.generate(small_model, tok, "Hello", 5, temperature=1.3, top_k=20, top_p=0.9, seed=11)
    assert code == 0
    assert [line.split()[2] for line in out.splitlines()[1:6]] == [repr(s.text).split()[0] for s in want]


def test_save_trace_writes_the_whole_sequence(small_dir, small_model, tmp_path) -> None:
    path = tmp_path / "out.safetensors"
    code, out, _ = run("generate", "A trace", "--model", str(small_dir), "--max-new-tokens", "3",
                       "--device", "cpu", "--save-trace", str(path))
    assert code == 0 and f"written to {path}" in out
    trace = gpt2viz.load_trace(path)
    assert len(trace.ids) == len(gpt2viz.load_tokenizer().encode("A trace")) + 3
    assert trace == small_model.run_with_capture(trace.ids)
    torch.testing.assert_close(trace.stack("pattern").sum(-1), torch.ones(2, 4, len(trace.ids)))


def test_long_runs_show_a_progress_bar_on_stderr(small_dir) -> None:
    code, out, err = run("generate", "Go", "--model", str(small_dir), "--max-new-tokens", "40",
                         "--device", "cpu")
    assert code == 0
    assert "generating [" in err and err.endswith("] 40/40\n") and "generating" not in out


def test_hooks_lists_names_with_shapes(small_dir, small_model) -> None:
    code, out, _ = run("hooks", "--model", str(small_dir), "--device", "cpu")
    assert code == 0
    lines = out.splitlines()
    assert [line.split()[0] for line in lines[1:]] == small_model.hook_names()
    by_name = {line.split()[0]: line for line in lines[1:]}
    assert "[pos, head=4, d_head=16]" in by_name["blocks.1.attn.hook_q"]
    assert f"[pos, d_mlp={4 * SMALL['n_embd']}]" in by_name["blocks.0.mlp.hook_post"]
    assert "only when asked for" in by_name["blocks.0.attn.hook_result"]


@pytest.mark.parametrize("argv, message", [
    (["generate", "  "], "The prompt is empty"),
    (["generate", "Hi", "--temperature", "-1"], "temperature must be 0 (greedy) or positive"),
    (["generate", "Hi", "--top-p", "3"], "top_p must be in (0, 1]"),
    (["generate", "Hi", "--candidates", "0"], "--candidates must be at least 1"),
    (["generate", "Hi", "--max-new-tokens", "0"], "max_new_tokens must be at least 1"),
])
def test_bad_values_exit_1_with_one_line(small_dir, argv, message) -> None:
    code, out, err = run(*argv, "--model", str(small_dir), "--device", "cpu")
    assert code == 1 and out == "" and err.count("\n") == 1
    assert err.startswith("python -m gpt2viz: error: ") and message in err


@pytest.mark.parametrize("argv, message", [
    (["generate", "Hi", "--top-k", "many"], "argument --top-k: invalid int value: 'many'"),
    (["generate"], "the following arguments are required: prompt"),
    (["explain"], "invalid choice: 'explain'"),
])
def test_bad_arguments_exit_2_with_one_line(argv, message, capsys) -> None:
    with pytest.raises(SystemExit) as raised:
        main(argv)
    assert raised.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and err.endswith("(see --help)\n")


def test_the_module_runs_and_fails_without_a_traceback(small_dir, tmp_path) -> None:
    """Through `python -m gpt2viz`, as a user types it: argparse errors and library errors alike
    give one line on stderr."""
    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "gpt2viz", *args], cwd=ROOT, capture_output=True,
                              text=True, timeout=120)

    bad_option = cli("generate", "Hi", "--top-k", "many")
    assert bad_option.returncode == 2 and bad_option.stdout == ""
    assert bad_option.stderr == ("python -m gpt2viz generate: error: argument --top-k: invalid int "
                                 "value: 'many' (see --help)\n")
    nowhere = tmp_path / "none.safetensors"
    missing = cli("hooks", "--model", str(nowhere))
    assert missing.returncode == 1
    assert missing.stderr == f"python -m gpt2viz: error: File or folder not found: {nowhere}.\n"
    ok = cli("hooks", "--model", str(small_dir), "--device", "cpu")
    assert ok.returncode == 0 and "blocks.1.hook_resid_post" in ok.stdout


CLEAN = "When Mary and John went to the store, John gave a drink to"
CORRUPTED = "When Mary and John went to the store, Mary gave a drink to"


def test_patch_prints_the_grid_and_both_runs(small_dir, small_model, tok) -> None:
    code, out, err = run("patch", CLEAN, CORRUPTED, "--answer", " Mary", "--wrong", " John",
                         "--model", str(small_dir), "--device", "cpu")
    clean, corrupted = tok.encode(CLEAN), tok.encode(CORRUPTED)
    mary, john = tok.encode(" Mary")[0], tok.encode(" John")[0]
    want = activation_patching(small_model, clean, corrupted, mary, john)
    # a random model tells the names apart only by chance; no example is known for it
    assert code == 0 and err == ("" if want.problem is None else f"warning: {want.problem}\n")
    lines = out.splitlines()
    assert lines[0] == ("activation patching of resid_pre: the corrupted run, with one activation taken "
                        "from the clean run")
    assert lines[1] == ("logit difference ' Mary' − ' John' at the last position: clean "
                        f"{want.clean_value:.2f}, corrupted {want.corrupted_value:.2f} (in the grid, 0 = "
                        "corrupted and 1 = clean)")
    # positions across, each headed by its clean token (and the corrupted one where they differ),
    # right-aligned above its column
    labels = [repr(tok.token_text(i)) for i in clean]
    labels[9] += "/' Mary'"
    assert labels[9] == "' John'/' Mary'"  # the one position where the prompts differ
    header, ends, cursor = lines[2], [], 0
    assert header.startswith("layer ")
    for label in labels:
        cursor = header.index(label, cursor) + len(label)
        ends.append(cursor)
    assert cursor == len(header)
    rows = lines[3:]
    assert len(rows) == 2  # layers down
    for layer, line in enumerate(rows):
        cells = line.split()
        assert cells[0] == str(layer) and len(line) == len(header)
        assert [line[:end].split()[-1] for end in ends] == cells[1:]  # under their labels
        assert [float(v) for v in cells[1:]] == pytest.approx(want.grid[layer].tolist(), abs=0.005001)
        assert all(len(v.split(".")[1]) == 2 and v != "-0.00" for v in cells[1:])


def test_patch_heads_with_attribution(small_dir, small_model, tok) -> None:
    code, out, err = run("patch", CLEAN, CORRUPTED, "--answer", " Mary", "--wrong", " John", "--site", "z",
                         "--attribution", "--model", str(small_dir), "--device", "cpu")
    want = attribution_patching(small_model, tok.encode(CLEAN), tok.encode(CORRUPTED), tok.encode(" Mary")[0],
                                tok.encode(" John")[0], "z")
    assert code == 0 and err == ("" if want.problem is None else f"warning: {want.problem}\n")
    lines = out.splitlines()
    assert lines[0].startswith("attribution patching (first-order estimate) of z: the corrupted run")
    assert lines[2].split() == ["layer", "H0", "H1", "H2", "H3"]
    for layer, line in enumerate(lines[3:]):
        assert [float(v) for v in line.split()[1:]] == pytest.approx(want.grid[layer].tolist(), abs=0.005001)


@pytest.mark.parametrize("argv, message", [
    (["patch", "a b", "a b c", "--answer", " Mary", "--wrong", " John"],
     "The clean prompt is 2 tokens and the corrupted prompt 3"),
    (["patch", "a b", "a c", "--answer", " Mary Jane", "--wrong", " John"],
     "--answer ' Mary Jane' is 2 tokens [' Mary', ' Jane']; it must be exactly one token"),
    (["patch", "a b", "a c", "--answer", " Mary", "--wrong", ""], "--wrong '' is 0 tokens"),
    (["patch", "a b", "a b", "--answer", " Mary", "--wrong", " John"], "nothing to normalise"),
    (["patch", "a b", "a c", "--answer", " Mary", "--wrong", " Mary"], "answer and wrong are the same token"),
])
def test_patch_bad_values_exit_1_with_one_line(small_dir, argv, message) -> None:
    code, out, err = run(*argv, "--model", str(small_dir), "--device", "cpu")
    assert code == 1 and out == "" and err.count("\n") == 1
    assert err.startswith("python -m gpt2viz: error: ") and message in err


@pytest.mark.parametrize("argv, message", [
    (["patch", "a b", "a c", "--answer", " Mary", "--wrong", " John", "--site", "resid_post"],
     "argument --site: invalid choice: 'resid_post'"),
    (["patch", "a b", "a c", "--answer", " Mary"], "the following arguments are required: --wrong"),
])
def test_patch_bad_arguments_exit_2_with_one_line(argv, message, capsys) -> None:
    with pytest.raises(SystemExit) as raised:
        main(argv)
    assert raised.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


bundled = pytest.mark.skipif(not (ASSETS / gpt2viz.BUNDLED_NAME).is_dir(), reason="no bundled model")


def readme_patch_command() -> list[str]:
    """The `patch` example of README's "The command line", as argv after `python -m gpt2viz`."""
    section = (ROOT / "README.md").read_text().split("## The command line", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1).replace("\\\n", " ")
    [line] = [line for line in block.splitlines() if " patch " in line]
    return shlex.split(line.split(" -m gpt2viz ", 1)[1])


@bundled
def test_the_readme_patch_example_works_on_the_model_it_names(tok) -> None:
    argv = readme_patch_command()
    assert argv[argv.index("--model") + 1] == gpt2viz.BUNDLED_NAME
    example = patching_example(gpt2viz.BUNDLED_NAME)
    assert argv[1:3] == [example.clean, example.corrupted]
    code, out, err = run(*argv, "--device", "cpu")
    assert code == 0 and err == ""  # no warning: the pair works
    clean, corrupted = out.splitlines()[1].split("clean ")[1].split(" (in")[0].split(", corrupted ")
    assert float(clean) > 1 and float(corrupted) < -1


@bundled
def test_a_pair_that_explains_noise_is_warned_about_with_a_pair_that_works() -> None:
    code, out, err = run("patch", CLEAN, CORRUPTED, "--answer", " Mary", "--wrong", " John", "--model",
                         gpt2viz.BUNDLED_NAME, "--device", "cpu")
    assert code == 0 and "layer" in out  # the grid is still printed
    warning, hint = err.splitlines()
    assert warning.startswith("warning: The clean run does not prefer the answer: its logit difference "
                              "answer − wrong is -")
    prefix = f"A pair that works on {gpt2viz.BUNDLED_NAME}: python -m gpt2viz "
    assert hint.startswith(prefix)
    code, _, err = run(*shlex.split(hint.removeprefix(prefix)), "--device", "cpu")
    assert code == 0 and err == ""


@pytest.mark.parametrize("argv, warned", [
    (["--answer", "Mary", "--wrong", " John"], ["--answer 'Mary'"]),
    (["--answer", " Mary", "--wrong", "John"], ["--wrong 'John'"]),
    (["--answer", "Mary", "--wrong", "John"], ["--answer 'Mary'", "--wrong 'John'"]),
    (["--answer", " Mary", "--wrong", " John"], []),
    (["--answer", ",", "--wrong", " John"], []),  # punctuation takes no space
])
def test_an_answer_without_its_leading_space_is_warned_about(small_dir, argv, warned) -> None:
    _, _, err = run("patch", CLEAN, CORRUPTED, *argv, "--model", str(small_dir), "--device", "cpu")
    lines = [line for line in err.splitlines() if "leading space" in line]
    assert len(lines) == len(warned)
    for line, option in zip(lines, warned, strict=True):
        spaced = option.replace("'", "' ", 1)  # --answer 'Mary' → --answer ' Mary'
        assert line == (f"warning: {option} has no leading space, but after 'to' the next token usually "
                        f"starts with one: use {spaced}.")


def test_no_space_is_asked_for_where_the_prompt_ends_without_a_word(small_dir) -> None:
    _, _, err = run("patch", "The list:\n", "The line:\n", "--answer", "Mary", "--wrong", "John", "--model",
                    str(small_dir), "--device", "cpu")
    assert "leading space" not in err


def test_app_runs_streamlit_on_the_app_with_make_runs_settings(monkeypatch) -> None:
    """`app` puts `python -m streamlit run streamlit_app.py` in its place, headless as `make run`
    starts it unless told otherwise, with the other options passed on."""
    ran, environments = [], []

    def execve(path, argv, env):
        ran.append((path, argv))
        environments.append(env)

    monkeypatch.setattr(cli.os, "execve", execve)
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert cli.app_script() == ROOT / "streamlit_app.py"  # in a clone: the repository's own
    main(["app", "--server.port", "8600", "--theme.base=dark"])
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")  # one's own setting stands
    main(["app", "--server.headless=false"])
    start = [sys.executable, "-m", "streamlit", "run", str(ROOT / "streamlit_app.py")]
    assert ran == [(sys.executable, [*start, "--server.headless", "true", "--server.port", "8600",
                                     "--theme.base=dark"]),
                   (sys.executable, [*start, "--server.headless=false"])]
    assert [env["MALLOC_ARENA_MAX"] for env in environments] == ["2", "4"]
    assert environments[0]["PATH"] == cli.os.environ["PATH"]  # the rest of the environment, passed on


def test_app_without_streamlit_says_how_to_install_it(monkeypatch) -> None:
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(cli.importlib.util, "find_spec",
                        lambda name, *args: None if name == "streamlit" else find_spec(name, *args))
    code, out, err = run("app")
    assert code == 1 and out == ""
    assert err == ("python -m gpt2viz: error: the app needs Streamlit, which is not installed here: "
                   'pip install "gpt2viz[app]".\n')


def test_options_other_commands_do_not_know_are_refused(capsys) -> None:
    with pytest.raises(SystemExit) as raised:
        main(["hooks", "--server.port", "8600"])
    assert raised.value.code == 2
    assert capsys.readouterr().err == ("python -m gpt2viz: error: unrecognized arguments: --server.port 8600 "
                                       "(see --help)\n")
