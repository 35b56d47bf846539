"""Each session key has one owner module that writes it (app.state.OWNERS), read from the source:
`state.put`, `state.choose`, `state.fit_choice`, `state.follow`, a widget drawn with `key=`,
`st.session_state[...] =`, `del`, `.pop` and `.setdefault`. The link is the one other writer of
the keys it names (app.share puts a link's values in place before any widget is drawn), and
app.state itself, which holds the mechanism (a widget's kept copy, the person's choices)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from app import state

ROOT = Path(__file__).resolve().parent.parent
# state's functions whose first argument is written
WRITERS = ("put", "choose", "fit_choice", "follow", "reset")
# Functions that write the keys their caller passes them (the caller is the writer).
KEY_PARAMETERS = {"sampling_widgets"}
# Where a key that is not a constant may be written: the link writes the keys it names.
ANY_LINKED_KEY = {"app.share"}
STATE_KEYS = {name: value for name, value in vars(state).items() if name.isupper() and isinstance(value, str)}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def app_files() -> list[Path]:
    files = [path for path in sorted((ROOT / "app").rglob("*.py")) if path.name != "state.py"]
    return files + [ROOT / "streamlit_app.py"]


def is_session_state(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "session_state"


def key_of(node: ast.AST) -> str | None:
    """The key a node names: `state.NAME` (or a string constant), else None (not a constant)."""
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "state":
        return STATE_KEYS.get(node.attr, f"state.{node.attr}")
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def writes(source: str) -> list[tuple[str | None, int]]:
    """(key written, line) for every write in `source`; None for a key that is not a constant."""
    found: list[tuple[str | None, int]] = []
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            on_state = isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and \
                func.value.id == "state"
            if on_state and name in WRITERS and node.args:
                found.append((key_of(node.args[0]), node.lineno))
            on_session_state = isinstance(func, ast.Attribute) and is_session_state(func.value)
            if on_session_state and name in ("pop", "setdefault"):
                found.append((key_of(node.args[0]), node.lineno))
            if name in KEY_PARAMETERS:
                found += [(key_of(arg), node.lineno) for arg in node.args]
            # A widget (or a chart with a selection) under an app.state key; a `key=` that passes a
            # parameter on is written where the caller names the key.
            for keyword in node.keywords:
                if keyword.arg == "key" and isinstance(keyword.value, ast.Attribute) and \
                        key_of(keyword.value) is not None:
                    found.append((key_of(keyword.value), node.lineno))
        targets = node.targets if isinstance(node, ast.Assign) else \
            [node.target] if isinstance(node, ast.AugAssign) else \
            node.targets if isinstance(node, ast.Delete) else []
        for target in targets:
            if isinstance(target, ast.Subscript) and is_session_state(target.value):
                found.append((key_of(target.slice), node.lineno))
    return found


def all_writes() -> dict[str, list[tuple[str | None, int]]]:
    return {module_name(path): writes(path.read_text()) for path in app_files()}


def strangers(found_by_module: dict[str, list[tuple[str | None, int]]]) -> list[str]:
    """Every write by a module that does not own the key, as "module:line writes …"."""
    found = []
    for module, writes_found in found_by_module.items():
        for key, line in writes_found:
            if key is None:
                if module not in ANY_LINKED_KEY:
                    found.append(f"{module}:{line} writes a key that is not a constant")
                continue
            owner = state.OWNERS.get(key)
            if owner is None:
                found.append(f"{module}:{line} writes {key!r}, which has no owner in app.state.OWNERS")
            elif owner != module:
                found.append(f"{module}:{line} writes {key!r}, owned by {owner}")
    return found


def test_every_key_written_has_one_owner_and_only_it_writes_the_key() -> None:
    assert not strangers(all_writes()), "\n".join(strangers(all_writes()))


def test_every_owner_writes_its_keys() -> None:
    written = {(module, key) for module, found in all_writes().items() for key, _ in found}
    for key, owner in state.OWNERS.items():
        assert (owner, key) in written or key in state.INTERNAL, f"{owner} owns {key!r} but never writes it"
        assert (ROOT / Path(*owner.split("."))).with_suffix(".py").exists(), owner


@pytest.mark.parametrize("source, expected", [
    ("state.put(state.STEP, 1)", ["step"]),
    ("st.session_state[state.SHARE] = x", ["share"]),
    ("del st.session_state[state.SHARE]", ["share"]),
    ("st.session_state.pop(state.GENERATION, None)", ["generation"]),
    ("state.widget(st.toggle, 'Presenter view', key=state.PRESENTER)", ["presenter"]),
    ("where.selectbox('x', [], key=state.ZOOM_FOUND)", ["zoom_found"]),
    ("sampling_widgets(state.TEMPERATURE, state.TOP_K, state.TOP_P)", ["temperature", "top_k", "top_p"]),
    ("state.put(KEYS[param], 1)", [None]),
    ("state.follow(state.QUERY_STEP, 1, 2)", ["query_step"]),
    ("state.get(state.STEP)", []),
])
def test_the_writes_it_finds(source: str, expected: list[str | None]) -> None:
    assert [key for key, _ in writes(source)] == expected


def test_a_second_writer_is_caught() -> None:
    """As pickers once wrote the selected step, and the Why page a layer through a variable."""
    second = ("from . import state\n\ndef f(name):\n"
              "    state.put(state.STEP, 0)\n    state.put(SELECTION[name], 1)\n")
    assert strangers({"app.pickers": writes(second)}) == [
        "app.pickers:4 writes 'step', owned by app.session",
        "app.pickers:5 writes a key that is not a constant",
    ]
    assert strangers({"app.session": writes("state.put(state.STEP, 0)")}) == []
