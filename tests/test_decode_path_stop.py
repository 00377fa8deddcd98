"""The C-path stop of the logistic engine (``engine.nested_fold``, ``patience``) against the whole
path: the same chosen C per target, the same inner criterion where solved, and the same scores
(to the solver's tolerance), on real data (scikit-learn's breast-cancer table, D < n) and on a
simulated trial with D > n and five genotype targets, one of them with missing labels."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer

import tario_clinical as tc
from tario_clinical.decode import engine
from tario_clinical.decode.cross_validation import default_Cs
from tario_clinical.errors import AnalysisError


def _cases():
    X, y = load_breast_cancer(return_X_y=True)
    yield "breast_cancer", X, y[:, None].astype(float)
    trial = tc.simulate_trial(160, seed=4, n_genes=400, compute_attainable=False)
    cols = ["EGFR", "KRAS", "STK11", "PTEN"]
    Y = np.column_stack(
        [trial.clinical[c].map({"mutant": 1.0, "wild-type": 0.0}).to_numpy(float) for c in cols]
    )
    yield "simulated_d400", np.asarray(trial.representations.X, float), Y


@pytest.mark.parametrize("case", list(_cases()), ids=lambda c: c[0])
@pytest.mark.parametrize("class_weight", [None, "balanced"])
def test_path_stop_gives_the_whole_paths_choice_and_scores(case, class_weight):
    name, X, Y = case
    n = X.shape[0]
    rng = np.random.default_rng(7)
    train = np.sort(rng.permutation(n)[: int(0.8 * n)])
    test = np.setdiff1d(np.arange(n), train)
    b = engine.fold_basis(X, train, test)
    inner = rng.permutation(train.size) % 5
    Cs = default_Cs(12, train.size, X.shape[1])
    kw = {"class_weight": class_weight, "tol": 1e-9}
    whole = engine.nested_fold(b, Y[train], inner, Cs, patience=None, **kw)
    stop = engine.nested_fold(b, Y[train], inner, Cs, **kw)
    np.testing.assert_array_equal(stop.best_C, whole.best_C)
    solved = np.isfinite(stop.inner_scores)
    assert np.isfinite(whole.inner_scores).all()
    if name == "simulated_d400":  # weak genotype signal: the criterion falls well before C_max
        assert not solved.all(), "the stop should have skipped the largest C of some target"
    for t in range(Y.shape[1]):
        j = int(np.flatnonzero(Cs == whole.best_C[t])[0])
        assert solved[t, : j + 1].all()
    np.testing.assert_allclose(stop.inner_scores[solved], whole.inner_scores[solved], atol=1e-7)
    np.testing.assert_allclose(stop.test_std, whole.test_std, atol=1e-5)
    np.testing.assert_allclose(stop.inner_oof, whole.inner_oof, atol=1e-5, equal_nan=True)


def test_one_class_target_and_bad_patience():
    X, y = load_breast_cancer(return_X_y=True)
    b = engine.fold_basis(X, np.arange(200), np.arange(200, 260))
    Y = np.column_stack([y[:200], np.ones(200)]).astype(float)
    inner = np.arange(200) % 5
    Cs = default_Cs(6, 200, X.shape[1])
    whole = engine.nested_fold(b, Y, inner, Cs, patience=None)
    stop = engine.nested_fold(b, Y, inner, Cs)
    assert np.isnan(stop.best_C[1]) and np.isnan(whole.best_C[1])
    np.testing.assert_array_equal(stop.test_scores[:, 1], whole.test_scores[:, 1])
    with pytest.raises(AnalysisError, match="patience"):
        engine.nested_fold(b, Y, inner, Cs, patience=0)
