"""The package builds and installs: the wheel holds the library and its assets (not the app,
training, tests or benchmarks), and once installed `import gpt2viz` and the `gpt2viz` console
command work from any folder.

The wheel is built from a copy of the sources, so the checkout gets no build/ or egg-info folder.
Nothing here uses the network: `--no-build-isolation` builds with .venv's setuptools.
"""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from gpt2viz.paths import ASSETS

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ["pyproject.toml", "requirements.txt", "README.md", "gpt2viz", "assets"]
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


def test_wheel_holds_the_library_and_its_assets_only(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    [dist_info] = {n.split("/")[0] for n in names if ".dist-info/" in n}
    assert {n.split("/")[0] for n in names} == {"gpt2viz", dist_info}  # no app/, training/, ...
    for module in _files(ROOT / "gpt2viz"):  # every module of every subpackage
        assert f"gpt2viz/{module.as_posix()}" in names
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
    requires = {line.removeprefix("Requires-Dist: ") for line in metadata.splitlines()
                if line.startswith("Requires-Dist: ")}
    wanted = {line.split("#")[0].strip() for line in (ROOT / "requirements.txt").read_text().splitlines()}
    assert requires == wanted - {""}
    assert "torch==2.13.0" in requires  # any looser spec pulls gigabytes of CUDA wheels


def test_installed_wheel_works_from_another_folder(wheel: Path, tmp_path: Path) -> None:
    site, elsewhere = tmp_path / "site", tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = subprocess.run([*PIP, "install", "--no-deps", "--no-index", "--target", str(site), str(wheel)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    env = {**os.environ, "PYTHONPATH": str(site), "HF_HUB_OFFLINE": "1"}

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
