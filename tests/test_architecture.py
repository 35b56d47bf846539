"""The import rules of docs/ARCHITECTURE.md, read from the source: layers import only downwards,
no import circle, no import of the project deferred into a function, and the library free of
Streamlit and of the app."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# docs/ARCHITECTURE.md, "Layers and what each may import": a module imports only from its own
# layer or a lower one (a higher number is a higher layer).
APP_LAYERS = {
    # pure and state: no model, no threads, no drawing
    "app.state": 1, "app.navigation": 1, "app.link_params": 1, "app.settings": 1, "app.class_settings": 1,
    "app.server_log": 1, "app.stylesheet": 1, "app.class_store": 1,
    # the model and the process: loading, the model's turn, the step worker, computations
    "app.models": 2, "app.model_turn": 2, "app.step_worker": 2, "app.live_redraw": 2, "app.computations": 2,
    "app.lesson": 2, "app.lesson.content": 2, "app.class_watcher": 2,
    # the session's logic
    "app.session": 3, "app.share": 3, "app.chosen_model": 3,
    # widgets and the views they draw
    "app.sidebar": 4, "app.pickers": 4, "app.zoom": 4, "app.step_sampling": 4, "app.why_sections": 4,
    "app.charts": 4, "app.compare_models": 4, "app.presenter": 4, "app.layout": 4, "app.memory": 4,
    "app.sampling_controls": 4, "app.lesson.views": 4, "app.live_class": 4, "app.class_rounds": 4,
}
PAGE_LAYER = 5  # app.pages.* and streamlit_app


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_files() -> list[Path]:
    files = sorted((ROOT / "gpt2viz").rglob("*.py")) + sorted((ROOT / "app").rglob("*.py"))
    return files + [ROOT / "streamlit_app.py"]


def resolve(module: str, node: ast.ImportFrom) -> list[str]:
    """The modules an import statement names (for `from x import y`, x.y when that is a module)."""
    if node.level:
        package = module.split(".")
        if not module_is_package(module):
            package = package[:-1]
        base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
    else:
        base = node.module or ""
    names = [f"{base}.{alias.name}" for alias in node.names]
    return [name for name in names if name in MODULES] or [base]


def module_is_package(module: str) -> bool:
    return (ROOT / Path(*module.split(".")) / "__init__.py").exists()


MODULES = {module_name(path) for path in project_files()}


def imports(path: Path) -> list[tuple[str, int, bool]]:
    """(imported module, line, inside a function) for every import in `path`."""
    module = module_name(path)
    tree = ast.parse(path.read_text(encoding="utf-8"))
    functions = [node for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]
    deferred = {id(sub) for function in functions for sub in ast.walk(function)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = resolve(module, node)
        else:
            continue
        found += [(name, node.lineno, id(node) in deferred) for name in names]
    return found


def project_imports() -> dict[str, list[tuple[str, int, bool]]]:
    """module → the project modules it imports."""
    graph = {}
    for path in project_files():
        found = [(name, line, inner) for name, line, inner in imports(path)
                 if name.split(".")[0] in ("gpt2viz", "app")]
        graph[module_name(path)] = [(closest_module(name), line, inner) for name, line, inner in found]
    return graph


def closest_module(name: str) -> str:
    """`name`, or the longest prefix of it that is a module (an imported function's module)."""
    parts = name.split(".")
    while parts and ".".join(parts) not in MODULES:
        parts.pop()
    return ".".join(parts) or name


def layer(module: str) -> int:
    if module.startswith("app.pages") or module == "streamlit_app":
        return PAGE_LAYER
    if module.startswith("gpt2viz"):
        return 0
    return APP_LAYERS[module]


def test_every_app_module_has_a_layer() -> None:
    app_modules = {m for m in MODULES if m.startswith("app.") and not m.startswith("app.pages")}
    assert app_modules - {"app"} <= APP_LAYERS.keys(), "add new modules to APP_LAYERS and ARCHITECTURE.md"
    assert set(APP_LAYERS) <= MODULES, "APP_LAYERS names a module that no longer exists"


def test_imports_run_downwards_only() -> None:
    wrong = [f"{module}:{line} imports {name} (layer {layer(name)} above {layer(module)})"
             for module, found in project_imports().items() for name, line, _ in found
             if name in MODULES and name != "app" and layer(name) > layer(module)]
    assert not wrong, "\n".join(wrong)


def test_the_library_never_imports_streamlit_or_the_app() -> None:
    for path in sorted((ROOT / "gpt2viz").rglob("*.py")):
        roots = {name.split(".")[0] for name, _, _ in imports(path)}
        assert not roots & {"streamlit", "app"}, path


def test_analyses_do_not_read_the_figure_modules() -> None:
    wrong = [f"{module} imports {name}" for module, found in project_imports().items()
             if module.startswith("gpt2viz") and not module.startswith("gpt2viz.viz")
             for name, _, _ in found if name.startswith("gpt2viz.viz")]
    assert not wrong, wrong


def test_no_project_import_is_deferred_into_a_function() -> None:
    deferred = [f"{module}:{line} {name}" for module, found in project_imports().items()
                for name, line, inner in found if inner]
    assert not deferred, deferred


def test_no_import_circle() -> None:
    graph = {module: {name for name, _, _ in found if name in MODULES and name != module}
             for module, found in project_imports().items()}
    # A package's __init__ importing its own submodules is not a circle through them.
    for module in graph:
        graph[module] = {name for name in graph[module] if not module.startswith(name + ".")}
    visiting, done, circle = set(), set(), []

    def visit(module: str, path: list[str]) -> None:
        if module in done or circle:
            return
        if module in visiting:
            circle.extend(path[path.index(module):] + [module])
            return
        visiting.add(module)
        for name in sorted(graph.get(module, ())):
            visit(name, path + [name])
        visiting.discard(module)
        done.add(module)

    for module in sorted(graph):
        visit(module, [module])
    assert not circle, " → ".join(circle)


@pytest.mark.parametrize(("source", "inner"), [
    ("from app import session\n", False), ("import app.session\n", False),
    ("from .session import keep\n", False), ("def f():\n    from . import session\n", True),
])
def test_the_checker_sees_each_form_of_import(monkeypatch, source: str, inner: bool) -> None:
    """The rules above are only as good as the import reader: each form names app.session."""
    monkeypatch.setattr(Path, "read_text", lambda self, encoding=None: source)
    found = imports(ROOT / "app" / "pickers.py")
    assert [(closest_module(name), deferred) for name, _, deferred in found] == [("app.session", inner)]


def test_pure_and_state_modules_sit_below_the_model_and_the_process() -> None:
    """So a pure module that imports the model's turn or a computation fails the layer test."""
    pure = ["app.state", "app.link_params", "app.settings", "app.class_settings", "app.navigation"]
    process = ["app.models", "app.model_turn", "app.step_worker", "app.computations", "app.lesson.content"]
    assert max(map(layer, pure)) < min(map(layer, process))
    assert max(map(layer, process)) < layer("app.session") < layer("app.sidebar") < PAGE_LAYER
