"""The fast engine's outer folds run in threads, each on one BLAS thread: identical numbers for
any number of threads, and the same as fitting the folds one by one on one BLAS thread."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from tario_clinical.decode import engine as E


def _problem(seed: int = 3, n: int = 120, d: int = 300):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 4)) @ rng.standard_normal((4, d)) + rng.standard_normal((n, d))
    X = X.astype(np.float32)
    Y = np.column_stack([(X[:, :3].sum(1) + rng.standard_normal(n) > 0), rng.random(n) < 0.3])
    Y = Y.astype(float)
    Y[rng.choice(n, 5, replace=False), 1] = np.nan  # a missing label
    folds = []
    for k in range(5):
        test = np.flatnonzero(np.arange(n) % 5 == k)
        train = np.flatnonzero(np.arange(n) % 5 != k)
        folds.append((train, test, rng.integers(0, 4, train.size)))
    return X, Y, folds, np.logspace(-4, 1, 6)


@pytest.mark.parametrize("n_components", [None, 20])
def test_nested_folds_identical_for_any_thread_count(n_components):
    X, Y, folds, Cs = _problem()
    runs = [
        E.nested_folds(X, Y, folds, Cs, n_components=n_components, threads=t) for t in (1, 2, 4)
    ]
    with threadpool_limits(1, user_api="blas"):
        seq = [
            E.nested_fold(E.fold_basis(X, tr, te, n_components=n_components), Y[tr], inn, Cs)
            for tr, te, inn in folds
        ]
    for other in runs[1:] + [seq]:
        for a, b in zip(runs[0], other, strict=True):
            np.testing.assert_array_equal(a.test_scores, b.test_scores)
            np.testing.assert_array_equal(a.test_std, b.test_std)
            np.testing.assert_array_equal(a.best_C, b.best_C)
            np.testing.assert_array_equal(a.inner_scores, b.inner_scores)


def test_fold_threads_bounds():
    assert E.fold_threads(1) == 1
    assert 1 <= E.fold_threads(25) <= E.MAX_FOLD_THREADS
    assert E.fold_threads(25, E.PARALLEL_MIN_SIZE - 1) == 1
    try:
        E.set_fold_threads(1)
        assert E.fold_threads(25, 10**9) == 1
    finally:
        E.set_fold_threads(None)


def test_cv_statistic_identical_threaded_and_sequential(monkeypatch):
    """The re-runs of the inference (cv_statistic) thread their folds too: same T as one fold
    at a time, with and without a jackknife deletion."""
    from tario_clinical.decode import inference as inf

    X, Y, _, Cs = _problem(n=150, d=200)
    n = X.shape[0]
    problem = inf.CVProblem(X=X, codes=np.arange(n), Cs=Cs)
    kw = dict(n_splits=5, n_repeats=3, n_inner_splits=4, stratify_jointly=True, groups=None)
    Yp = np.nan_to_num(Y, nan=0.0)
    plan = inf.make_plan(Yp, seed_seq=np.random.SeedSequence(5), **kw)
    keep = np.ones(n, dtype=bool)
    keep[::7] = False
    monkeypatch.setattr(E, "PARALLEL_MIN_SIZE", 0)  # threads even at this size
    assert E.fold_threads(15, X.size) > 1 or E.fold_threads(15) == 1  # 1 only on one core
    threaded = [inf.cv_statistic(problem, Yp, plan), inf.cv_statistic(problem, Yp, plan, keep=keep)]
    try:
        E.set_fold_threads(1)
        seq = [inf.cv_statistic(problem, Yp, plan), inf.cv_statistic(problem, Yp, plan, keep=keep)]
    finally:
        E.set_fold_threads(None)
    for a, b in zip(threaded, seq, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(threaded[0], threaded[1])


def test_float32_cg_matches_float64_reference():
    """The CG in float32 gives the solution of the scikit-learn objective to the solver's
    tolerance: compare with scikit-learn's lbfgs on one fold."""
    from sklearn.linear_model import LogisticRegression

    X, Y, folds, _ = _problem(n=150, d=400)
    train, test, _ = folds[0]
    basis = E.fold_basis(X, train, test)
    y = Y[train, 0]
    for C in (1e-3, 1e-1, 10.0):
        V, b, f, _ = E.solve_path(
            basis.F, y[:, None], np.ones((train.size, 1)), np.array([C]), basis.s, tol=1e-8
        )
        ref = LogisticRegression(C=C, tol=1e-12, max_iter=10_000).fit(basis.F, y)
        np.testing.assert_allclose(f[:, 0], basis.F @ ref.coef_[0] + ref.intercept_[0], atol=2e-4)
