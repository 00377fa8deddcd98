"""Layout of the report package (issue 13): a leaf results model, no import circle (counting
imports inside functions and under ``TYPE_CHECKING``), every module importable on its own, no
file over ~800 lines, and a report that shows computed results and computes none; the table of
contents lists every section on the page (issue 16)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402

import tario_clinical as tc  # noqa: E402
from tario_clinical.report.render import table_of_contents  # noqa: E402

REPORT = Path(tc.__file__).parent / "report"
MODULES = sorted(f.stem for f in REPORT.glob("*.py") if f.stem != "__init__")
MAX_LINES = 800


def _report_imports(stem: str) -> set[str]:
    """Report modules ``stem`` imports anywhere in its file (module level, functions,
    ``TYPE_CHECKING`` blocks)."""
    tree = ast.parse((REPORT / f"{stem}.py").read_text(encoding="utf-8"))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                out.add(node.module.split(".")[0])
            else:
                out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            parts = node.module.split(".")
            if parts[:2] == ["tario_clinical", "report"] and len(parts) > 2:
                out.add(parts[2])
    return out & set(MODULES)


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        path.append(n)
        for m in sorted(graph[n]):
            if state.get(m) == 1:
                return path[path.index(m) :] + [m]
            if m not in state and (c := visit(m)):
                return c
        state[n] = 2
        path.pop()
        return None

    for n in sorted(graph):
        if n not in state and (c := visit(n)):
            return c
    return None


def test_report_imports_form_no_circle_even_inside_functions():
    graph = {m: _report_imports(m) for m in MODULES}
    assert "results_model" in graph and graph["results_model"] == set()
    assert graph["render"] >= {"results_model"} and "model" not in graph["render"]
    assert "model" in {m for m, deps in graph.items() if "render" in deps}
    assert _cycle(graph) is None, _cycle(graph)


def test_cycle_finder_finds_a_circle():
    """Negative control of the circle check."""
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_results_model_is_a_leaf():
    tree = ast.parse((REPORT / "results_model.py").read_text(encoding="utf-8"))
    imported = [
        n.module if isinstance(n, ast.ImportFrom) else n.names[0].name
        for n in ast.walk(tree)
        if isinstance(n, ast.Import | ast.ImportFrom)
    ]
    assert all(m in ("__future__", "copy", "dataclasses", "typing") for m in imported), imported


@pytest.mark.parametrize("module", MODULES)
def test_report_module_imports_alone(module):
    r = subprocess.run(
        [sys.executable, "-c", f"import tario_clinical.report.{module}"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr[-2000:]


def test_report_files_are_under_the_line_limit():
    pkg = REPORT.parent
    files = [*REPORT.glob("*.py"), pkg / "embedding_maps.py", pkg / "cooccurrence.py"]
    long = {
        f.name: n
        for f in files
        if (n := len(f.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}


def test_report_computes_no_map(monkeypatch):
    """The maps are computed once, by embedding_maps; building the report only reads them."""
    from tario_clinical import embedding_maps as em

    trial = tc.simulate_trial(60, seed=3, n_genes=20, compute_attainable=False)
    cohort = trial.cohort()
    maps = em.representation_maps(trial.representations, cohort, seed=0)

    def forbidden(*args, **kwargs):
        raise AssertionError("the report computed a map")

    for name in ("embedding_map", "pca_map", "tsne_map", "genotype_cooccurrence", "_pca"):
        monkeypatch.setattr(em, name, forbidden)
    rep = tc.report.build_report(
        cohort=cohort, representations=trial.representations, embedding=maps
    )
    emb = rep.results["embedding"]
    assert set(emb["maps"]) == {"pca", "tsne"}
    assert {"embedding_pca", "embedding_tsne", "genotype_cooccurrence"} <= set(rep.figures)
    d = maps.to_dict()
    assert emb["maps"]["pca"]["explained_variance_ratio"] == pytest.approx(
        d["maps"]["pca"]["explained_variance_ratio"], rel=1e-11
    )
    assert len(emb["cooccurrence"]) == len(maps.cooccurrence)
    # representations alone give the flow and provenance, not maps
    bare = tc.report.build_report(cohort=cohort, representations=trial.representations)
    assert bare.results["embedding"] is None
    assert "representation_maps" in next(
        s["note"] for s in bare.results["sections"] if s["id"] == "embedding"
    )
    with pytest.raises(TypeError, match="RepresentationMaps"):
        tc.report.build_report(cohort=cohort, embedding=trial.representations)


def test_table_of_contents_lists_every_section_on_the_page():
    page = (
        '<section id="summary">\n<h2>Summary of findings</h2></section>'
        '<section id="decode" class="absent-section">\n<h2>Decoders</h2></section>'
        '<section id="endpoints"><h2 class="x">Endpoint decoders &amp; more</h2></section>'
        "<section><h2>no id: not listed</h2></section>"
    )
    toc = table_of_contents(page)
    assert toc == (
        "<nav><ol>\n"
        '<li><a href="#summary">Summary of findings</a></li>\n'
        '<li><a href="#decode">Decoders</a> (not in this report)</li>\n'
        '<li><a href="#endpoints">Endpoint decoders &amp; more</a></li>\n'
        "</ol></nav>"
    )


def test_validation_section_is_in_the_table_of_contents():
    """A section rendered by its own module (here the external validation, added to the
    results as the pipeline does) is listed in the table of contents, in page order."""
    import dataclasses

    from tario_clinical.report.validation_section import SECTION_ID, SECTION_TITLE

    trial = tc.simulate_trial(60, seed=3, n_genes=20, compute_attainable=False)
    rep = tc.report.build_report(cohort=trial.cohort())
    results = dict(rep.results)
    results["validation"] = {"target": "EGFR", "metrics": [], "flow": {}}
    text = dataclasses.replace(rep, results=results).to_html()
    nav = text[text.index("<nav>") : text.index("</nav>")]
    assert f'<a href="#{SECTION_ID}">{SECTION_TITLE}</a>' in nav
    assert f'<section id="{SECTION_ID}">' in text
    ids = [chunk.split('"', 1)[0] for chunk in nav.split('href="#')[1:]]
    assert ids[:3] == ["summary", "plan", "cohort"]
    assert ids.index(SECTION_ID) == ids.index("provenance") - 1
    assert len(ids) == len(set(ids)) == text.count("<section id=")
