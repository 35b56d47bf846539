"""The package builds and installs: the wheel holds the library and its assets, and the app
laid out as in the repository under gpt2viz_app/ (not training, tests or benchmarks); once
installed, `import gpt2viz`, the `gpt2viz` console command and `gpt2viz app` work from any folder.

The wheel is built from a copy of the sources, so the checkout gets no build/ or egg-info folder.
Nothing here uses the network: `--no-build-isolation` builds with .venv's setuptools, and the
wheel is installed without its dependencies (.venv has them).
"""

from __future__ import annotations

import configparser
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest
import tomllib

from bench.local_servers import stop
from gpt2viz.paths import ASSETS

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ["pyproject.toml", "requirements.txt", "README.md", "gpt2viz", "assets", "app", "streamlit_app.py",
           ".streamlit"]
APP_FILES = ["streamlit_app.py", ".streamlit/config.toml"]  # beside app/ in gpt2viz_app/
SERVER_WAIT_S = 90  # for `gpt2viz app`'s health endpoint and main page (it answers in a few seconds)
PIP = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]


def _files(folder: Path) -> list[Path]:
    return [p.relative_to(folder) for p in folder.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("src")
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, src / name)
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run([*PIP, "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                           "--wheel-dir", str(out), str(src)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    [built] = out.glob("gpt2viz-*.whl")
    return built


def test_checkout_finds_the_assets_beside_the_package() -> None:
    assert ASSETS == ROOT / "assets"


def test_wheel_holds_the_library_its_assets_and_the_app_only(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    [dist_info] = {n.split("/")[0] for n in names if ".dist-info/" in n}
    assert {n.split("/")[0] for n in names} == {"gpt2viz", "gpt2viz_app", dist_info}  # no training/, ...
    for module in _files(ROOT / "gpt2viz"):  # every module of every subpackage
        assert f"gpt2viz/{module.as_posix()}" in names
    for file in _files(ROOT / "app"):  # every module of every page and widget, and the static files
        assert f"gpt2viz_app/app/{file.as_posix()}" in names
    for file in APP_FILES:
        assert f"gpt2viz_app/{file}" in names
    inside = {n.split("/")[1] for n in names if n.startswith("gpt2viz_app/")}
    assert inside == {"app", "streamlit_app.py", ".streamlit"}
    for asset in _files(ROOT / "assets"):
        assert f"gpt2viz/assets/{asset.as_posix()}" in names
    for needed in ["gpt2_bpe/encoder.json", "gpt2_bpe/vocab.bpe", "gpt2viz-mini/model.safetensors",
                   "gpt2viz-mini/config.json"]:
        assert f"gpt2viz/assets/{needed}" in names


def test_wheel_declares_the_console_script_and_the_requirements(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        dist_info = next(n.split("/")[0] for n in zf.namelist() if ".dist-info/" in n)
        entry_points = zf.read(f"{dist_info}/entry_points.txt").decode()
        metadata = zf.read(f"{dist_info}/METADATA").decode()
    parser = configparser.ConfigParser()
    parser.read_string(entry_points)
    assert parser["console_scripts"]["gpt2viz"] == "gpt2viz.cli:main"
    declared = [line.removeprefix("Requires-Dist: ") for line in metadata.splitlines()
                if line.startswith("Requires-Dist: ")]
    requires = {line for line in declared if ";" not in line}
    extra = {line.removesuffix('; extra == "app"') for line in declared if ";" in line}
    wanted = {line.split("#")[0].strip() for line in (ROOT / "requirements.txt").read_text().splitlines()}
    assert requires == extra == wanted - {""}  # `pip install "gpt2viz[app]"` names an extra that exists
    assert "Provides-Extra: app" in metadata.splitlines()
    assert "torch==2.13.0" in requires  # any looser spec pulls gigabytes of CUDA wheels


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel installed into a folder of its own (put on PYTHONPATH); .venv has its dependencies."""
    site = tmp_path_factory.mktemp("site")
    done = subprocess.run([*PIP, "install", "--no-deps", "--no-index", "--target", str(site), str(wheel)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    return site


def installed_env(site: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(site), "HF_HUB_OFFLINE": "1", "GPT2VIZ_MODEL": "gpt2viz-mini"}


def test_installed_wheel_works_from_another_folder(installed: Path, tmp_path: Path) -> None:
    site, elsewhere = installed, tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = installed_env(site)

    def run(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run(argv, cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120)

    code = ("import gpt2viz, gpt2viz.paths\n"
            "print(gpt2viz.__file__); print(gpt2viz.paths.ASSETS)\n"
            "print(gpt2viz.load_tokenizer().encode('Hello world'))")
    done = run(sys.executable, "-c", code)
    assert done.returncode == 0, done.stderr
    module, assets, ids = done.stdout.splitlines()
    assert Path(module).resolve().is_relative_to(site.resolve())
    assert Path(assets).resolve() == (site / "gpt2viz" / "assets").resolve()
    assert ids == "[15496, 995]"

    script = site / "bin" / "gpt2viz"
    done = run(str(script), "hooks", "--model", "gpt2viz-mini")
    assert done.returncode == 0, done.stderr
    assert "blocks.0.attn.hook_pattern" in done.stdout
    done = run(str(script), "hooks", "--model", str(tmp_path / "missing"))
    assert done.returncode == 1, done.stderr  # main's exit code is the command's
    assert done.stderr.startswith("gpt2viz: error: "), done.stderr  # the command names itself


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def answer(url: str) -> tuple[int, str] | None:
    """The status and body `url` answers with, or None while nothing listens."""
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except OSError:
        return None


def test_gpt2viz_app_serves_the_installed_app_from_another_folder(installed: Path, tmp_path: Path) -> None:
    """`gpt2viz app` from a folder outside the repository: within SERVER_WAIT_S its health endpoint
    says ok and its main page serves Streamlit's page; then it stops on SIGTERM (Streamlit is the
    command's own process: it took its place)."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    port = free_port()
    log = tmp_path / "server.log"
    with log.open("w") as out:
        server = subprocess.Popen([str(installed / "bin" / "gpt2viz"), "app", "--server.headless", "true",
                                   "--server.port", str(port), "--server.address", "127.0.0.1"],
                                  cwd=elsewhere, env=installed_env(installed), stdout=out,
                                  stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + SERVER_WAIT_S
        health = page = None
        while time.monotonic() < deadline and server.poll() is None and not (health and page):
            health = health or answer(base + "/_stcore/health")
            page = page or (health and answer(base + "/"))
            time.sleep(0.2)
        assert health == (200, "ok"), log.read_text()
        assert page[0] == 200 and "<title>Streamlit</title>" in page[1], log.read_text()
        assert str(installed / "gpt2viz_app" / "streamlit_app.py") in " ".join(
            Path(f"/proc/{server.pid}/cmdline").read_text().split("\0"))
    finally:
        stop(server, 20)


def test_the_installed_app_has_the_repositorys_streamlit_settings(installed: Path, tmp_path: Path) -> None:
    """Streamlit, running the installed script from another folder, reads every setting of the
    repository's .streamlit/config.toml (the copy beside the script), as `make run` does in the clone."""
    code = ("import json, sys\n"
            "from streamlit import config\n"
            "config._main_script_path = sys.argv[1]  # as `streamlit run` sets it\n"
            "config.get_config_options(force_reparse=True)\n"
            "print(json.dumps({k: config.get_option(k) for k in sys.argv[2:]}))")
    settings = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    wanted = {f"{section}.{key}": value for section, values in settings.items()
              for key, value in values.items()}
    assert wanted  # the repository's settings, whatever they are now
    script = installed / "gpt2viz_app" / "streamlit_app.py"
    done = subprocess.run([sys.executable, "-c", code, str(script), *wanted], cwd=tmp_path,
                          env=installed_env(installed), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == wanted


def test_the_installed_app_runs_its_pages_from_another_folder(installed: Path, tmp_path: Path) -> None:
    """The installed streamlit_app.py runs (AppTest, from another folder): its `import app` finds
    the app beside it, its pages are found by their paths, and the Patching page opens on the
    bundled model's example, read from the installed assets."""
    code = ("import sys\n"
            "from streamlit.testing.v1 import AppTest\n"
            "at = AppTest.from_file(sys.argv[1], default_timeout=120).run()\n"
            "assert not at.exception, at.exception\n"
            "at.switch_page('app/pages/patching.py').run()\n"
            "assert not at.exception, at.exception\n"
            "import app, gpt2viz\n"
            "print(app.__file__); print(gpt2viz.__file__)\n"
            "print([t.value for t in at.title]); print(at.text_input(key='patch_answer').value)\n"
            "print([w.value for w in at.warning])")
    script = installed / "gpt2viz_app" / "streamlit_app.py"
    done = subprocess.run([sys.executable, "-c", code, str(script)], cwd=tmp_path,
                          env=installed_env(installed), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    app_module, library, titles, answer, warnings = done.stdout.splitlines()[-5:]
    assert Path(app_module).is_relative_to(installed / "gpt2viz_app" / "app")
    assert Path(library).is_relative_to(installed / "gpt2viz")
    assert titles == "['Patching']" and answer == " orange" and warnings == "[]"
