"""Every name a module exports exists and is documented (numpydoc docstrings are checked by
reading; the Examples sections run as doctests through pytest's --doctest-modules)."""

from __future__ import annotations

import dataclasses
import importlib
import inspect

import pytest

MODULES = [
    "schemas",
    "cohort",
    "simulate",
    "metrics",
    "decode",
    "survival",
    "design",
    "expression_qc",
    "embedding_maps",
    "slides",
    "encode",
    "report",
    "provenance",
    "config",
    "pipeline",
    "errors",
]


@pytest.mark.parametrize("name", MODULES)
def test_exports_exist_and_are_documented(name):
    mod = importlib.import_module(f"tario_clinical.{name}")
    assert inspect.getdoc(mod), f"module {name} has no docstring"
    exported = getattr(mod, "__all__", None)
    assert exported, f"tario_clinical.{name} defines no __all__"
    for attr in exported:
        obj = getattr(mod, attr)
        if inspect.isfunction(obj) or inspect.isclass(obj):
            assert inspect.getdoc(obj), f"tario_clinical.{name}.{attr} has no docstring"


def test_public_functions_with_parameters_document_them():
    missing = []
    for name in MODULES:
        mod = importlib.import_module(f"tario_clinical.{name}")
        for attr in mod.__all__:
            obj = getattr(mod, attr)
            if not inspect.isfunction(obj):
                continue
            params = [
                p for p in inspect.signature(obj).parameters if p not in ("self", "args", "kwargs")
            ]
            if len(params) >= 2 and "Parameters" not in (inspect.getdoc(obj) or ""):
                missing.append(f"{name}.{attr}")
    assert not missing, f"numpydoc Parameters section missing: {missing}"


# ---- one name per meaning, at most two positional parameters (issue 13; scanpy-style) ------

#: the package's names: ``level`` for a confidence level, ``n_jobs`` for parallelism
OLD_NAMES = {
    "conf_level": "level",
    "confidence_level": "level",
    "ci_level": "level",
    "workers": "n_jobs",
    "n_workers": "n_jobs",
    "n_threads": "n_jobs",
    "num_threads": "n_jobs",
    "num_workers": "n_jobs",
}
#: public callables that still use an old name (owned by other changes); this list may only
#: shrink: a new use of an old name fails, and so does an entry that is no longer true
OLD_NAME_EXCEPTIONS: set[tuple[str, str]] = set()
#: scikit-learn's own signatures (fit(X, y, groups), split(X, y, groups), ...)
SKLEARN_METHODS = {
    "fit", "predict", "predict_proba", "predict_log_proba", "decision_function", "score",
    "transform", "fit_transform", "split", "get_n_splits", "set_params", "get_params",
    "patient_folds", "iter_folds",
}  # fmt: skip
#: public functions with more than two positional parameters, to be made keyword-only (with
#: ``_checks.positional_deprecated``) by the changes that own them; this list may only shrink
POSITIONAL_EXCEPTIONS = {
    # paired comparison: the labels and the two scores compared
    "tario_clinical.metrics.auroc.delong_test",
    "tario_clinical.decode.benefit_metrics.c_for_benefit",
    "tario_clinical.decode.cross_validation.default_Cs",
    "tario_clinical.decode.transfer_analyses.representation_comparison",
    "tario_clinical.slides._readers.Slide.read_region",
    "tario_clinical.slides._readers.Slide.read_regions",
    "tario_clinical.slides._readers.Slide.jpeg_tiles",
    "tario_clinical.slides.tiling.read_tile",
    "tario_clinical.slides.tiling.read_tile_at",
    "tario_clinical.encode.engine.encode_slides",
    "tario_clinical.encode.head.fit_expression_head",
    "tario_clinical.biomarker.validate.validate_biomarker",
}
API_MODULES = [*MODULES, "biomarker", "tables"]


def _public_callables():
    """(qualified name, function) of every public function, class constructor and method of
    the documented modules; dataclass constructors (result containers the package builds) and
    scikit-learn's methods are left out."""
    seen: dict[str, object] = {}
    for name in API_MODULES:
        mod = importlib.import_module(f"tario_clinical.{name}")
        for attr in mod.__all__:
            obj = getattr(mod, attr)
            if inspect.isfunction(obj):
                seen.setdefault(f"{obj.__module__}.{obj.__qualname__}", obj)
            elif inspect.isclass(obj) and obj.__module__.startswith("tario_clinical"):
                if not dataclasses.is_dataclass(obj) and "__init__" in vars(obj):
                    seen.setdefault(f"{obj.__module__}.{obj.__qualname__}", obj.__init__)
                for n, f in vars(obj).items():
                    if inspect.isfunction(f) and not n.startswith("_") and n not in SKLEARN_METHODS:
                        seen.setdefault(f"{obj.__module__}.{obj.__qualname__}.{n}", f)
    return sorted(seen.items())


def _params(func):
    return [p for p in inspect.signature(func).parameters.values() if p.name not in ("self", "cls")]


def test_the_scan_covers_the_public_api():
    names = {k for k, _ in _public_callables()}
    assert "tario_clinical.survival.nonparametric.km" in names
    assert "tario_clinical.decode.cross_validation.decode" in names
    assert "tario_clinical.metrics.auroc.auroc_ci" in names
    assert len(names) > 150


def test_parameter_names_are_the_chosen_ones():
    found = {
        (key, p.name) for key, f in _public_callables() for p in _params(f) if p.name in OLD_NAMES
    }
    new = sorted(found - OLD_NAME_EXCEPTIONS)
    assert not new, "use " + ", ".join(f"{k}({n}=) -> {OLD_NAMES[n]}=" for k, n in new)
    stale = sorted(OLD_NAME_EXCEPTIONS - found)
    assert not stale, f"fixed, remove from OLD_NAME_EXCEPTIONS: {stale}"


def test_renamed_parameters_point_at_parameters_that_exist():
    """Every deprecated alias names a parameter of the function's signature."""
    aliased = 0
    for key, f in _public_callables():
        renames = getattr(f, "__deprecated_parameters__", {})
        params = {p.name for p in _params(f)}
        for old, new in renames.items():
            aliased += 1
            assert new in params and old not in params, (key, old, new)
            assert OLD_NAMES.get(old, new) == new, (key, old, new)
    assert aliased >= 9  # survival's conf_level -> level (km, cox, rmst, stratify ...)


def test_at_most_two_positional_parameters():
    found = set()
    for key, f in _public_callables():
        kinds = [p.kind for p in _params(f)]
        if sum(k in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
               for k in kinds) > 2:  # fmt: skip
            found.add(key)
    new = sorted(found - POSITIONAL_EXCEPTIONS)
    assert not new, f"more than two positional parameters (make the rest keyword-only): {new}"
    stale = sorted(POSITIONAL_EXCEPTIONS - found)
    assert not stale, f"fixed, remove from POSITIONAL_EXCEPTIONS: {stale}"


def test_keyword_only_parameters_still_accept_old_positional_calls():
    """triage_summary's threshold became keyword-only; the old call works for one release."""
    import numpy as np
    import pandas as pd

    from tario_clinical import metrics

    y = np.array([0, 0, 1, 1, 0, 1, 1, 0])
    s = np.linspace(0, 1, 8)
    new = metrics.triage_summary(y, s, threshold=0.5)
    with pytest.warns(DeprecationWarning, match="passing threshold positionally is deprecated"):
        old = metrics.triage_summary(y, s, 0.5)
    pd.testing.assert_frame_equal(old, new)
    with pytest.raises(TypeError, match="multiple values"):
        metrics.triage_summary(y, s, 0.5, threshold=0.5)
    with pytest.raises(TypeError, match="positional arguments"):
        metrics.triage_summary(y, s, 0.5, 0.9)
