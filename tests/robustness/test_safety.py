"""Safety guards over the whole package: no unpickling of user files, YAML safe-loading only,
manifest paths confined to their folder (functional tests live next to each feature; this file
keeps the rules from regressing anywhere in the source)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "tario_clinical"
SOURCES = sorted(PACKAGE.rglob("*.py"))


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            owner = (
                func.value.id
                if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)
                else ""
            )
            yield node, owner, name


def _kw(node: ast.Call, key: str):
    for kw in node.keywords:
        if kw.arg == key and isinstance(kw.value, ast.Constant):
            return kw.value.value
    return None


@pytest.mark.parametrize("path", SOURCES, ids=[str(p.relative_to(PACKAGE)) for p in SOURCES])
def test_no_unsafe_deserialisation(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node, owner, name in _calls(tree):
        where = f"{path.name}:{node.lineno}"
        assert not (
            owner in ("pickle", "cPickle", "dill", "joblib", "cloudpickle")
            and name in ("load", "loads")
        ), where
        assert name != "read_pickle", where
        if owner == "yaml":
            assert name not in ("load", "load_all", "unsafe_load", "full_load"), (
                f"{where}: use yaml.safe_load"
            )
        if owner == "torch" and name == "load":
            assert _kw(node, "weights_only") is True, f"{where}: torch.load needs weights_only=True"
        if owner == "np" and name == "load":
            assert _kw(node, "allow_pickle") is False, f"{where}: np.load needs allow_pickle=False"


def test_planted_pickle_in_a_resume_file_is_never_unpickled(tmp_path, monkeypatch):
    """A per-slide resume file whose payload is a pickled object is treated as damaged
    (recomputed), and the object's __reduce__ never runs."""
    import numpy as np

    from tario_clinical.encode.run_folder import load_slide_result as _load_slide_result

    ran = []

    class Payload:
        def __reduce__(self):
            return (ran.append, ("unpickled!",))

    bad = tmp_path / "slide.npz"
    np.savez(
        bad,
        meta=np.array([Payload()], dtype=object),
        sum=np.zeros(3),
        sumsq=np.zeros(3),
        n_tiles=np.array(1),
    )
    assert _load_slide_result(bad, "any-run") is None
    assert ran == []
