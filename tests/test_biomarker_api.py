"""The biomarker package's public names exist, are documented, and are reachable from the top."""

from __future__ import annotations

import inspect

import tario_clinical as tc
from tario_clinical import biomarker


def test_exports_are_documented_with_parameters():
    assert inspect.getdoc(biomarker)
    missing = []
    for name in biomarker.__all__:
        obj = getattr(biomarker, name)
        if inspect.isfunction(obj) or inspect.isclass(obj):
            assert inspect.getdoc(obj), name
        if inspect.isfunction(obj):
            params = [p for p in inspect.signature(obj).parameters if p not in ("self",)]
            if len(params) >= 2 and "Parameters" not in (inspect.getdoc(obj) or ""):
                missing.append(name)
    assert not missing, missing


def test_top_level_exports():
    assert tc.lock_biomarker is biomarker.lock_biomarker
    assert tc.validate_biomarker is biomarker.validate_biomarker
    assert {"lock_biomarker", "validate_biomarker", "biomarker"} <= set(tc.__all__)


def test_public_signatures_keep_options_keyword_only():
    for fn, positional in (
        (biomarker.lock_biomarker, 2),
        (biomarker.validate_biomarker, 3),
        (biomarker.shift_diagnostics, 2),
    ):
        kinds = [p.kind for p in inspect.signature(fn).parameters.values()]
        assert kinds.count(inspect.Parameter.POSITIONAL_OR_KEYWORD) == positional, fn.__name__
