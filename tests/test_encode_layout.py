"""Layout promises of the encode package (issue 13): the run-folder helpers both engines use
live in one module (``encode.run_folder``), no private name crosses a module boundary inside
the package (module-level or function-local imports), every module imports alone in a fresh
interpreter, and no module is over ~800 lines."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import tario_clinical

PKG = Path(tario_clinical.__file__).parent / "encode"
FILES = sorted(PKG.glob("*.py"))
MAX_LINES = 800


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """``(module, names)`` of every ``from X import names`` in ``path`` (any depth)."""
    tree = ast.parse(path.read_text())
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            mod = ("." * node.level) + (node.module or "")
            out.append((mod, [a.name for a in node.names]))
    return out


def test_encode_modules_are_listed():
    names = {f.stem for f in FILES}
    assert {"engine", "ray_runner", "run_folder", "head", "loaders"} <= names


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_no_module_over_800_lines(path: Path):
    n = len(path.read_text().splitlines())
    assert n <= MAX_LINES, f"{path.name} has {n} lines (limit ~{MAX_LINES})"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_no_private_name_crosses_a_module_boundary(path: Path):
    """Imports between the package's modules name only public names (dunder excepted)."""
    bad = [
        f"{mod}.{n}"
        for mod, names in _imports(path)
        if mod.startswith(".") and mod.strip(".")  # relative import of a sibling or parent
        for n in names
        if n.startswith("_") and not n.startswith("__")
    ]
    # a private module of the package may be imported whole (from . import _cli), not its names
    assert not bad, f"{path.name} imports private names {bad}"


def test_ray_runner_and_engine_share_the_run_folder_module():
    for f in ("engine.py", "ray_runner.py"):
        mods = {m for m, _ in _imports(PKG / f)}
        assert ".run_folder" in mods, f
    # the Ray runner takes nothing from the engine but its public defaults
    from_engine = [n for m, ns in _imports(PKG / "ray_runner.py") if m == ".engine" for n in ns]
    assert all(not n.startswith("_") for n in from_engine), from_engine


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_module_imports_alone_in_a_fresh_interpreter(path: Path):
    mod = "tario_clinical.encode" + ("" if path.stem == "__init__" else f".{path.stem}")
    r = subprocess.run([sys.executable, "-c", f"import {mod}"], capture_output=True, text=True)
    assert r.returncode == 0, f"import {mod} failed:\n{r.stderr[-2000:]}"
