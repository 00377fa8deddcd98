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


def _assert_no_circle(graph: dict[str, set[str]], modules: list[str]) -> None:
    """Depth-first search of the import graph; an AssertionError names the first circle."""
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                raise AssertionError("import circle: " + " -> ".join([*path, m, d]))
            if d not in state:
                visit(d, [*path, m])
        state[m] = 2

    for m in modules:
        if m not in state:
            visit(m, [])


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
    _assert_no_circle(graph, MODULES)


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


# ---- the same promises for the packages split later (metrics, design, decode) --------------

SPLIT_PACKAGES = ("metrics", "design", "decode")
#: modules that still break a promise, each fixed by the change that owns it (may only shrink)
SPLIT_EXCEPTIONS: dict[str, str] = {}


def _package_modules(pkg: str) -> list[str]:
    return [
        f"tario_clinical.{pkg}" if f.stem == "__init__" else f"tario_clinical.{pkg}.{f.stem}"
        for f in sorted((ROOT / pkg).glob("*.py"))
    ]


SPLIT_MODULES = [m for pkg in SPLIT_PACKAGES for m in _package_modules(pkg)]
NEW_MODULES = [
    *_package_modules("metrics"),
    *_package_modules("design"),
    *(
        f"tario_clinical.decode.{m}"
        for m in (
            "analyses",
            "analysis_base",
            "transfer_analyses",
            "cross_validation",
            "decode_data",
            "sklearn_fold",
        )
    ),  # fmt: skip
    *(f"tario_clinical.{m}" for m in ("_json", "_checks", "_lock", "tables", "provenance")),
]


def test_split_module_lists_are_complete():
    assert "tario_clinical.metrics.auroc" in SPLIT_MODULES
    assert "tario_clinical.design.simulation" in SPLIT_MODULES
    assert set(SPLIT_EXCEPTIONS) <= set(SPLIT_MODULES)
    assert not (ROOT / "metrics.py").exists() and not (ROOT / "design.py").exists()


@pytest.mark.parametrize("module", NEW_MODULES)
def test_split_module_imports_alone_in_a_fresh_interpreter(module):
    r = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True)
    assert r.returncode == 0, f"import {module} failed:\n{r.stderr[-2000:]}"


@pytest.mark.parametrize("pkg", SPLIT_PACKAGES)
def test_split_package_has_no_circle_and_no_module_imports_its_face(pkg):
    modules = _package_modules(pkg)
    face = f"tario_clinical.{pkg}"
    graph: dict[str, set[str]] = {}
    for m in modules:
        deps = set()
        for target, names in _top_level_imports(m):
            deps |= {f"{target}.{n}" for n in names} & set(modules)
            if target in modules and target != face:
                deps.add(target)
            if (
                target == face
                and m != face
                and not {f"{target}.{n}" for n in names} <= set(modules)
            ):
                raise AssertionError(f"{m} imports names from its package face {face}")
        deps.discard(m)
        graph[m] = deps
    for m, deps in graph.items():
        assert m == face or face not in deps, f"{m} imports its package face"
    _assert_no_circle(graph, modules)


@pytest.mark.parametrize("module", [m for m in SPLIT_MODULES if m not in SPLIT_EXCEPTIONS])
def test_split_module_is_small_and_imports_no_private_name(module):
    n = len(_path(module).read_text().splitlines())
    assert n <= MAX_LINES, f"{module} has {n} lines (limit ~{MAX_LINES})"
    tree = ast.parse(_path(module).read_text())
    crossing = [
        f"{node.module}.{a.name}"
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module != "__future__"
        for a in node.names
        if a.name.startswith("_")
    ]
    assert not crossing, f"{module} imports private names {crossing}"


def test_every_design_module_uses_only_the_public_survival_api():
    """Each design module imports the survival face or its documented kernel module, and no
    private name of them."""
    allowed = {"survival", "survival.kernels"}
    for f in (ROOT / "design").glob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and "survival" in node.module:
                names = [a.name for a in node.names]
                assert node.module.lstrip(".") in allowed, f"{f.name}: from {node.module}"
                assert not [n for n in names if n.startswith("_")], f"{f.name}: {names}"


def test_provenance_does_not_import_the_package_root():
    tree = ast.parse((ROOT / "provenance.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            assert not (node.level == 1 and node.module is None), "provenance imports the root"
