"""Layout promises of the survival and expression-QC packages (issue 13, "one room per job"):
every module imports on its own in a fresh interpreter, the package-internal imports form no
circle, no private name crosses a module boundary, and no module is over ~800 lines."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import tario_clinical

ROOT = Path(tario_clinical.__file__).parent
PACKAGES = ("survival", "expression_qc")
MAX_LINES = 800


def _modules() -> list[str]:
    out = []
    for pkg in PACKAGES:
        for f in sorted((ROOT / pkg).glob("*.py")):
            name = pkg if f.stem == "__init__" else f"{pkg}.{f.stem}"
            out.append(f"tario_clinical.{name}")
    return out


MODULES = _modules()


def _path(module: str) -> Path:
    parts = module.split(".")[1:]
    p = ROOT.joinpath(*parts)
    return p / "__init__.py" if p.is_dir() else p.with_suffix(".py")


def _top_level_imports(module: str) -> list[tuple[str, list[str]]]:
    """``(imported module, names)`` of the module-level imports of ``module`` inside
    tario_clinical (not under ``if TYPE_CHECKING:``, not inside functions)."""
    tree = ast.parse(_path(module).read_text())
    package = module if _path(module).name == "__init__.py" else module.rsplit(".", 1)[0]
    out = []
    for node in tree.body:  # module level only: function-local imports are lazy by design
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("tario_clinical"):
                out.append((target, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names if a.name.startswith("tario_clinical")]
    return out


def test_the_module_list_covers_both_packages():
    assert "tario_clinical.survival.stratification" in MODULES
    assert "tario_clinical.expression_qc.spatial_stats" in MODULES
    assert len(MODULES) > 20


@pytest.mark.parametrize("module", MODULES)
def test_module_imports_alone_in_a_fresh_interpreter(module):
    r = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True)
    assert r.returncode == 0, f"import {module} failed:\n{r.stderr[-2000:]}"


def test_no_import_circle_between_modules():
    """Module-level imports between the modules of each package form a DAG (the package face
    imports its modules; no module imports the face or closes a loop)."""
    graph: dict[str, set[str]] = {}
    for m in MODULES:
        deps = set()
        for target, names in _top_level_imports(m):
            submodules = {f"{target}.{n}" for n in names} & set(MODULES)
            deps |= submodules
            if len(submodules) < max(len(names), 1) and target in MODULES:
                deps.add(target)  # names taken from the module ``target`` itself
        deps.discard(m)
        graph[m] = deps
    faces = {f"tario_clinical.{p}" for p in PACKAGES}
    for m, deps in graph.items():
        if m not in faces:
            assert not deps & faces, f"{m} imports its package face {deps & faces}"
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                raise AssertionError("import circle: " + " -> ".join([*path, m, d]))
            if d not in state:
                visit(d, [*path, m])
        state[m] = 2

    for m in MODULES:
        if m not in state:
            visit(m, [])


def test_no_private_name_crosses_a_module_boundary():
    crossing = []
    for m in MODULES:
        for target, names in _top_level_imports(m):
            crossing += [f"{m} imports {target}.{n}" for n in names if n.startswith("_")]
        tree = ast.parse(_path(m).read_text())
        for node in ast.walk(tree):  # also lazy imports inside functions
            if isinstance(node, ast.ImportFrom) and node.module != "__future__":
                names = [a.name for a in node.names if a.name.startswith("_")]
                crossing += [f"{m} imports {node.module}.{n} (lazily)" for n in names]
    assert not crossing, crossing


@pytest.mark.parametrize("module", MODULES)
def test_module_is_not_a_god_module(module):
    n = len(_path(module).read_text().splitlines())
    assert n <= MAX_LINES, f"{module} has {n} lines (limit ~{MAX_LINES})"


def test_design_uses_only_the_public_survival_api():
    """design.py imports the survival package face or its documented kernel module only."""
    allowed = {"tario_clinical.survival", "tario_clinical.survival.kernels"}
    used = {t for t, _ in _top_level_imports("tario_clinical.design") if "survival" in t}
    tree = ast.parse(_path("tario_clinical.design").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and "survival" in node.module:
            used.add("tario_clinical." + node.module.lstrip("."))
    assert used <= allowed, used - allowed


def test_simulate_does_not_import_analysis_modules():
    """The simulator produces data; it does not depend on the analyses that consume it."""
    for f in (ROOT / "simulate").glob("*.py"):
        tree = ast.parse(f.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.lstrip(".").startswith(("expression_qc", "survival")), (
                    f"{f.name} imports {node.module}"
                )
