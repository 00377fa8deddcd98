"""Time-to-event decoder: the penalised Cox engine against scikit-survival on real data, the
discrimination metrics against scikit-survival's, and the decoder end to end (stratify feed,
inference re-running the nested CV).

Reference implementation: ``sksurv.linear_model.CoxnetSurvivalAnalysis`` (a port of glmnet's
coordinate descent), objective ``-(1/n) log PL_Breslow(beta) + alpha (r |beta|_1 +
(1 - r) / 2 |beta|^2)``. Our engine is pure ridge, so the comparison uses ``r = 1e-7`` and
``lambda = alpha (1 - r)``: the L1 part then moves coefficients by about ``alpha r / curvature``
(< 1e-7 here); the rest of the difference is coordinate descent's own convergence, which is why
the tolerance is 5e-5 on coefficients up to ~1 and the objective of our solution is never worse.
"""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest

sksurv = pytest.importorskip("sksurv")

from sklearn.preprocessing import StandardScaler  # noqa: E402
from sksurv.column import encode_categorical  # noqa: E402
from sksurv.datasets import load_breast_cancer, load_gbsg2  # noqa: E402
from sksurv.linear_model import CoxnetSurvivalAnalysis  # noqa: E402
from sksurv.metrics import (  # noqa: E402
    concordance_index_censored,
    concordance_index_ipcw,
    cumulative_dynamic_auc,
)
from sksurv.util import Surv  # noqa: E402

import tario_clinical  # noqa: E402
from tario_clinical.decode import engine  # noqa: E402
from tario_clinical.decode.cox_engine import (  # noqa: E402
    breslow_cumulative_hazard,
    breslow_loglik,
    nested_cox_fold,
    solve_cox_path,
)
from tario_clinical.errors import AnalysisError, SchemaError  # noqa: E402

FAST = {"ci_method": "oof", "p_method": "oof"}


def _dataset(loader):
    X, y = loader()
    X = encode_categorical(X).to_numpy(float)
    event = y[y.dtype.names[0]].astype(float)
    time = y[y.dtype.names[1]].astype(float)
    return X, y, time, event


@pytest.mark.parametrize("loader", [load_gbsg2, load_breast_cancer], ids=["gbsg2", "breast_cancer"])
@pytest.mark.parametrize("alpha", [0.01, 0.1, 1.0])
def test_cox_engine_matches_coxnet_on_real_data(loader, alpha):
    X, y, time, event = _dataset(loader)
    n = X.shape[0]
    Z = StandardScaler().fit_transform(X)
    r = 1e-7
    ref = CoxnetSurvivalAnalysis(alphas=[alpha], l1_ratio=r, tol=1e-12, max_iter=1_000_000).fit(
        Z, y
    )
    b = engine.fold_basis(X, np.arange(n), None, with_feature_map=True)
    V, _, _ = solve_cox_path(
        b.F, time, event, np.ones((n, 1)), np.array([alpha * (1 - r)]), b.s, tol=1e-12
    )
    w = b.feature_map @ V[:, 0]
    np.testing.assert_allclose(w, ref.coef_[:, 0], atol=5e-5)

    def objective(beta):
        pen = alpha * ((1 - r) / 2 * beta @ beta + r * np.abs(beta).sum())
        return -breslow_loglik(Z @ beta, time, event) / n + pen

    assert objective(w) <= objective(ref.coef_[:, 0]) + 1e-10


def test_cox_engine_wide_data_in_the_span_of_the_rows():
    """D > n (Gram path of the fold basis): same solution as Coxnet on the standardised genes."""
    X, y, time, event = _dataset(load_breast_cancer)
    rows = np.arange(60)
    Xw = X[rows]
    Z = StandardScaler().fit_transform(Xw)
    assert Xw.shape[1] > Xw.shape[0]
    alpha, r = 0.3, 1e-7
    ref = CoxnetSurvivalAnalysis(alphas=[alpha], l1_ratio=r, tol=1e-12, max_iter=1_000_000)
    ref.fit(Z, y[rows])
    b = engine.fold_basis(Xw, np.arange(60), None, with_feature_map=True)
    V, eta, _ = solve_cox_path(
        b.F, time[rows], event[rows], np.ones((60, 1)), np.array([alpha * (1 - r)]), b.s, tol=1e-12
    )
    np.testing.assert_allclose(b.feature_map @ V[:, 0], ref.coef_[:, 0], atol=5e-5)
    np.testing.assert_allclose(eta[:, 0], Z @ ref.coef_[:, 0], atol=5e-4)


def test_batched_columns_equal_separate_fits_and_weights_equal_copies():
    X, _, time, event = _dataset(load_gbsg2)
    n = X.shape[0]
    b = engine.fold_basis(X, np.arange(n), None)
    rng = np.random.default_rng(0)
    A = np.column_stack([np.ones(n), rng.integers(0, 2, n), rng.integers(0, 3, n)]).astype(float)
    lam = np.array([0.05, 0.2, 0.1])
    V, _, _ = solve_cox_path(b.F, time, event, A, lam, b.s, tol=1e-11)
    for j in range(3):
        Vj, _, _ = solve_cox_path(b.F, time, event, A[:, [j]], lam[[j]], b.s, tol=1e-11)
        np.testing.assert_allclose(V[:, j], Vj[:, 0], atol=1e-8)
    # integer case weights == rows repeated (Breslow)
    rep = np.repeat(np.arange(n), A[:, 2].astype(int))
    Vr, _, _ = solve_cox_path(
        b.F[rep], time[rep], event[rep], np.ones((rep.size, 1)), lam[[2]], b.s, tol=1e-11
    )
    np.testing.assert_allclose(V[:, 2], Vr[:, 0], atol=1e-7)


def test_breslow_baseline_hazard_matches_nelson_aalen_at_zero_risk():
    rng = np.random.default_rng(3)
    t = rng.exponential(5, 80).round(1)
    e = (rng.random(80) < 0.7).astype(float)
    H = breslow_cumulative_hazard(np.zeros(80), t, e, np.array([2.0, 5.0]))
    ref = [
        sum(e[(t == u)].sum() / (t >= u).sum() for u in np.unique(t[(e == 1) & (t <= h)]))
        for h in (2.0, 5.0)
    ]
    np.testing.assert_allclose(H, ref, rtol=1e-12)


@pytest.mark.parametrize("loader", [load_gbsg2, load_breast_cancer], ids=["gbsg2", "breast_cancer"])
def test_path_stop_gives_the_full_paths_choice_and_fit(loader):
    # the default path stop (solve from the largest penalty down, stop after PATH_PATIENCE
    # penalties below the best) against the whole path solved: the same choice, the same
    # criterion where solved, and the same refit; unsolved penalties are nan, and only below
    # the best
    X, _, time, event = _dataset(loader)
    n = X.shape[0]
    rng = np.random.default_rng(3)
    train = rng.permutation(n)[: int(0.8 * n)]
    test = np.setdiff1d(np.arange(n), train)
    b = engine.fold_basis(X, train, test)
    inner = rng.permutation(train.size) % 5
    lambdas = np.logspace(-5, 2, 12)
    full = nested_cox_fold(b.F, b.s, b.G, time[train], event[train], inner, lambdas, patience=None)
    stop = nested_cox_fold(b.F, b.s, b.G, time[train], event[train], inner, lambdas)
    assert np.isfinite(full.cvpl).all()
    assert stop.best == full.best
    solved = np.isfinite(stop.cvpl)
    assert solved[full.best :].all()
    assert not solved.all(), "the stop should have skipped the smallest penalties here"
    assert np.flatnonzero(~solved).max() < full.best - 1
    np.testing.assert_allclose(stop.cvpl[solved], full.cvpl[solved], rtol=1e-8)
    np.testing.assert_allclose(stop.test_eta, full.test_eta, atol=1e-7)
    np.testing.assert_allclose(stop.train_eta, full.train_eta, atol=1e-7)
    with pytest.raises(AnalysisError, match="patience"):
        nested_cox_fold(b.F, b.s, b.G, time[train], event[train], inner, lambdas, patience=0)


def test_path_stop_is_not_ended_by_the_dip_at_the_heavily_penalised_end():
    # a real fold of the benefit decoder (endpoints study, ben_null_n200_d20 replicate 1, one
    # jackknife re-run; 144 rows, 20 coordinates): its criterion from the largest penalty down is
    # -468.206, -468.207, -468.209, -468.176, -467.962 (best), ... -- it dips by 0.003 before it
    # rises; a stop on any fall ended the path at the largest penalty
    from pathlib import Path

    from tario_clinical.decode import cox_engine

    z = np.load(Path(__file__).parent / "data" / "cox" / "dip_at_heavy_penalty_fold.npz")
    args = (z["F"], z["s"], z["G"], z["time"], z["event"], z["inner"], z["lambdas"])
    whole = nested_cox_fold(*args, weights=z["weights"], patience=None)
    stop = nested_cox_fold(*args, weights=z["weights"])
    assert stop.best == whole.best
    np.testing.assert_allclose(stop.test_eta, whole.test_eta, atol=1e-7)
    # without the margin the stop would have chosen the largest penalty
    old = cox_engine.PATH_MARGIN
    try:
        cox_engine.PATH_MARGIN = 0.0
        naive = nested_cox_fold(*args, weights=z["weights"])
    finally:
        cox_engine.PATH_MARGIN = old
    assert naive.best != whole.best


def test_warm_start_changes_iterations_not_the_solution():
    X, _, time, event = _dataset(load_gbsg2)
    n = X.shape[0]
    b = engine.fold_basis(X, np.arange(n), None)
    A = np.ones((n, 1))
    cold, eta_c, it_c = solve_cox_path(b.F, time, event, A, np.array([1e-3]), b.s, tol=1e-10)
    near, _, _ = solve_cox_path(b.F, time, event, A, np.array([2e-3]), b.s, tol=1e-10)
    warm, eta_w, it_w = solve_cox_path(
        b.F, time, event, A, np.array([1e-3]), b.s, tol=1e-10, V0=near
    )
    np.testing.assert_allclose(warm, cold, atol=1e-8)
    np.testing.assert_allclose(eta_w, eta_c, atol=1e-8)
    assert it_w < it_c


def test_penalty_chosen_by_cross_validated_partial_likelihood():
    X, _, time, event = _dataset(load_gbsg2)
    n = X.shape[0]
    b = engine.fold_basis(X, np.arange(n), None)
    inner = np.arange(n) % 5
    lambdas = np.logspace(-4, 1, 8)
    fit = nested_cox_fold(b.F, b.s, b.G, time, event, inner, lambdas)
    # the criterion by hand for the chosen penalty: sum_m l(beta_-m) - l_-m(beta_-m)
    j = fit.best
    total = 0.0
    for m in range(5):
        keep = (inner != m).astype(float)
        V, eta, _ = solve_cox_path(b.F, time, event, keep[:, None], lambdas[[j]], b.s)
        total += breslow_loglik(eta[:, 0], time, event) - breslow_loglik(
            eta[:, 0], time, event, keep
        )
    np.testing.assert_allclose(fit.cvpl[j], total, rtol=1e-6)
    assert 0 < j < lambdas.size - 1 or np.argmax(fit.cvpl) == j


# ------------------------------------------------------------------------------ decoder
def _survival_data(n=240, d=60, seed=0, beta=0.8):
    rng = np.random.default_rng(seed)
    Z = rng.normal(size=(n, 3))
    X = Z @ rng.normal(size=(3, d)) + rng.normal(size=(n, d))
    ids = [f"P{i:04d}" for i in range(n)]
    T = rng.exponential(12 * np.exp(-beta * Z[:, 0]))
    C = rng.uniform(3, 40, n)
    clin = pd.DataFrame(
        {
            "patient_id": ids,
            "os_time": np.minimum(T, C).round(2),
            "os_event": (T <= C).astype(int),
            "arm": rng.permutation(np.repeat(["control", "experimental"], n // 2)),
        }
    )
    return pd.DataFrame(X.astype(np.float32), index=ids), clin


@pytest.fixture(scope="module")
def surv_result():
    X, clin = _survival_data()
    return X, clin, tario_clinical.decode_survival(X, clin, n_repeats=2, seed=1, **FAST)


def test_decoder_metrics_equal_scikit_survival_on_the_oof_scores(surv_result):
    _, _, res = surv_result
    s = res.summary().set_index("metric")
    harrell, uno, td = [], [], []
    times = res.params["times"]
    for _, d in res.oof.groupby("repeat"):
        y = Surv.from_arrays(d["event"].astype(bool), d["time"])
        harrell.append(
            concordance_index_censored(d["event"].astype(bool), d["time"], d["score"])[0]
        )
        uno.append(concordance_index_ipcw(y, y, d["score"].to_numpy())[0])
        td.append(cumulative_dynamic_auc(y, y, d["score"].to_numpy(), times)[0])
    np.testing.assert_allclose(s.loc["harrell_c", "estimate"], np.mean(harrell), rtol=1e-12)
    np.testing.assert_allclose(s.loc["uno_c", "estimate"], np.mean(uno), rtol=1e-10)
    got = [s.loc[f"td_auc@{h:g}", "estimate"] for h in times]
    np.testing.assert_allclose(got, np.mean(td, axis=0), rtol=1e-10)
    assert s.loc["harrell_c", "estimate"] > 0.6  # planted signal


def test_decoder_oof_is_honest_and_feeds_stratify(surv_result):
    X, clin, res = surv_result
    oof = res.oof
    assert set(oof.columns) >= {"patient_id", "target", "repeat", "fold", "score", "risk"}
    assert oof.groupby("repeat")["patient_id"].nunique().eq(len(X)).all()
    assert res.folds["n_test"].sum() == 2 * len(X)
    strat = tario_clinical.survival.stratify(clin, res.oof, arm="arm")
    assert strat.n == len(X)
    assert strat.logrank.loc["log-rank", "p_value"] < 0.05
    # the final model scores new rows; its coefficients are on the standardised scale
    lp = res.final_model.predict(X)
    assert np.corrcoef(lp, res.oof_scores().loc[X.index])[0, 1] > 0.8
    json.dumps(res.to_dict(), allow_nan=False)
    assert res.plot_calibration() is not None
    cal = res.tables["calibration"]
    assert cal["predicted_risk"].is_monotonic_increasing


def test_jackknife_interval_reruns_the_cv_with_folds_kept():
    X, clin = _survival_data(n=160, d=30, seed=2)
    res = tario_clinical.decode_survival(
        X,
        clin,
        n_repeats=1,
        n_splits=4,
        n_inner_splits=3,
        ci_method="jackknife",
        p_method="jackknife",
        n_jackknife=5,
        seed=0,
    )
    s = res.summary().set_index("metric")
    c = s.loc["harrell_c"]
    assert c["low"] < c["estimate"] < c["high"]
    assert c["ci_method"].startswith("grouped jackknife")
    assert c["p_value"] < 0.05
    assert np.isnan(s.loc["calibration_slope", "p_value"])
    reps = res.resamples["jackknife"]
    assert reps.shape == (5, len(s))
    # one replicate by hand: the deleted group's patients leave, every other keeps its folds
    assert reps["harrell_c"].std() > 0


def test_permutation_test_is_calibrated_under_the_null():
    """Null data: the exact permutation p-value of Harrell's C is not small (single seed)."""
    X, clin = _survival_data(n=120, d=20, seed=5, beta=0.0)
    res = tario_clinical.decode_survival(
        X,
        clin,
        n_repeats=1,
        n_splits=3,
        n_inner_splits=3,
        n_lambdas=5,
        ci_method="oof",
        p_method="permutation",
        n_permutations=19,
        seed=0,
    )
    p = res.estimate("harrell_c")["p_value"]
    assert 0.05 < p <= 1.0
    assert res.resamples["permutation"].shape[0] == 19


def test_input_errors_and_exclusions():
    X, clin = _survival_data(n=80, d=10)
    clin.loc[3, "os_time"] = np.nan
    res = tario_clinical.decode_survival(X, clin, n_repeats=1, **FAST)
    assert res.exclusions["patient_id"].tolist() == ["P0003"]
    assert res.n == 79
    bad = clin.copy()
    bad.loc[5, "os_event"] = 2
    with pytest.raises(SchemaError, match="P0005"):
        tario_clinical.decode_survival(X, bad, **FAST)
    few = clin.assign(os_event=0)
    few.loc[:4, "os_event"] = 1
    with pytest.raises(AnalysisError, match="events"):
        tario_clinical.decode_survival(X, few, **FAST)


def test_elasticnet_penalty_runs_through_coxnet():
    X, clin = _survival_data(n=120, d=15, seed=4)
    res = tario_clinical.decode_survival(
        X,
        clin,
        n_repeats=1,
        n_splits=3,
        n_inner_splits=3,
        penalty="elasticnet",
        n_lambdas=6,
        **FAST,
    )
    assert res.params["penalty"] == "elasticnet"
    assert res.estimate("harrell_c")["estimate"] > 0.55
