"""Every name a module exports exists and is documented (numpydoc docstrings are checked by
reading; the Examples sections run as doctests through pytest's --doctest-modules)."""

from __future__ import annotations

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
