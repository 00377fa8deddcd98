"""Categorical and continuous decoders and the shared inference driver (intervals that re-run
the whole nested CV). Target-type inference and dispatch: ``test_decode_endpoints_dispatch.py``.

Reference values: scikit-learn on the same folds (``Pipeline(StandardScaler(), Ridge(alpha))``,
``RidgeCV(cv=inner folds, scoring="neg_mean_squared_error")``, ``LogisticRegression``,
``roc_auc_score(multi_class="ovr")``, ``balanced_accuracy_score``, ``r2_score``) and scipy's
correlations, computed in the tests.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats
from sklearn.linear_model import LogisticRegression, Ridge, RidgeCV
from sklearn.metrics import balanced_accuracy_score, confusion_matrix, r2_score, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import tario_clinical
from tario_clinical.decode import engine
from tario_clinical.decode.endpoint_inference import cross_validate_plan
from tario_clinical.decode.multiclass import multinomial_path
from tario_clinical.decode.regression import ridge_path_fold

FAST = {"ci_method": "oof", "p_method": "oof"}


def _data(n=150, d=200, seed=0):
    rng = np.random.default_rng(seed)
    Z = rng.normal(size=(n, 4))
    X = Z @ rng.normal(size=(4, d)) + rng.normal(size=(n, d))
    ids = [f"P{i:04d}" for i in range(n)]
    clin = pd.DataFrame({"patient_id": ids})
    clin["score"] = Z[:, 0] + 0.5 * rng.normal(size=n)
    lab = np.array(["A", "B", "C", "D"])[np.argmax(Z + 0.8 * rng.normal(size=(n, 4)), axis=1)]
    lab[:7] = "E"  # a rare level
    clin["subtype"] = lab
    clin["G"] = (Z[:, 1] + rng.normal(size=n) > 0).astype(int)
    clin["sex"] = np.where(rng.random(n) < 0.5, "F", "M")
    clin["ecog"] = rng.integers(0, 3, n)
    return pd.DataFrame(X, index=ids, columns=[f"g{j}" for j in range(d)]), clin


# ------------------------------------------------------------------------------ continuous
def test_ridge_oof_predictions_equal_sklearn_ridge_on_the_same_folds():
    X, clin = _data()
    res = tario_clinical.decode_continuous(X, clin, targets="score", n_repeats=2, **FAST)
    r = res.results["score"]
    y = clin["score"].to_numpy()
    Xa = X.to_numpy()
    ids = X.index.to_numpy()
    folds = r.folds.set_index(["repeat", "fold"])
    worst = 0.0
    for (rep, k), d in r.oof.groupby(["repeat", "fold"]):
        te = np.isin(ids, d["patient_id"])
        alpha = folds.loc[(rep, k), "penalty"]
        ref = make_pipeline(StandardScaler(), Ridge(alpha=alpha)).fit(Xa[~te], y[~te])
        mine = d.set_index("patient_id").loc[ids[te], "prediction"].to_numpy()
        worst = max(worst, np.abs(ref.predict(Xa[te]) - mine).max())
    assert worst < 1e-9
    # and the metrics are scikit-learn's / scipy's on those OOF predictions (mean over repeats)
    s = r.summary().set_index("metric")
    per = r.oof.groupby("repeat")[["y_true", "prediction"]]
    np.testing.assert_allclose(
        s.loc["r2", "estimate"], per.apply(lambda d: r2_score(d.y_true, d.prediction)).mean()
    )
    np.testing.assert_allclose(
        s.loc["pearson_r", "estimate"],
        per.apply(lambda d: stats.pearsonr(d.y_true, d.prediction)[0]).mean(),
    )
    np.testing.assert_allclose(
        s.loc["spearman_rho", "estimate"],
        per.apply(lambda d: stats.spearmanr(d.y_true, d.prediction)[0]).mean(),
    )
    np.testing.assert_allclose(
        s.loc["calibration_slope", "estimate"],
        per.apply(lambda d: stats.linregress(d.prediction, d.y_true).slope).mean(),
    )


def test_ridge_alpha_choice_equals_ridgecv_with_the_same_inner_folds():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(90, 120))
    y = X[:, 0] + rng.normal(size=90)
    inner = np.arange(90) % 4
    alphas = np.logspace(-1, 4, 12)
    b = engine.fold_basis(X, np.arange(90), None)
    best, mse, _, _ = ridge_path_fold(b.F, b.s, b.G, y, inner, alphas)
    splits = [(np.flatnonzero(inner != m), np.flatnonzero(inner == m)) for m in range(4)]
    ref = make_pipeline(
        StandardScaler(), RidgeCV(alphas=alphas, cv=splits, scoring="neg_mean_squared_error")
    ).fit(X, y)
    assert alphas[best] == ref[-1].alpha_
    np.testing.assert_allclose(mse.min(), -ref[-1].best_score_, rtol=1e-9)


def test_continuous_intervals_rerun_the_nested_cv_and_permutation_null():
    X, clin = _data(n=100, d=40)
    res = tario_clinical.decode_continuous(
        X,
        clin,
        targets=["score"],
        n_repeats=1,
        n_splits=4,
        n_inner_splits=3,
        ci_method="jackknife",
        p_method="permutation",
        n_permutations=19,
        n_jackknife=5,
    )
    r = res.results["score"]
    s = r.summary().set_index("metric")
    for m in ("r2", "pearson_r", "spearman_rho", "calibration_slope"):
        assert s.loc[m, "low"] < s.loc[m, "estimate"] < s.loc[m, "high"], m
    assert s.loc["pearson_r", "p_value"] == pytest.approx(1 / 20)  # strong signal: min p
    assert np.isnan(s.loc["calibration_slope", "p_value"])
    assert r.resamples["jackknife"].shape == (5, 6)
    # null outcome: the permutation p-value is not small
    null = clin.assign(score=np.random.default_rng(7).normal(size=len(clin)))
    rn = tario_clinical.decode_continuous(
        X,
        null,
        targets="score",
        n_repeats=1,
        n_splits=4,
        n_inner_splits=3,
        ci_method="oof",
        p_method="permutation",
        n_permutations=19,
    ).results["score"]
    assert rn.estimate("pearson_r")["p_value"] > 0.05


def test_elasticnet_regression_runs():
    X, clin = _data(n=90, d=30)
    r = tario_clinical.decode_continuous(
        X, clin, targets="score", penalty="elasticnet", n_repeats=1, n_alphas=8, **FAST
    ).results["score"]
    assert r.estimate("pearson_r")["estimate"] > 0.5
    assert r.final_model is None


# ------------------------------------------------------------------------------ categorical
@pytest.mark.parametrize("multi_class", ["ovr", "multinomial"])
def test_categorical_aurocs_equal_sklearn_on_the_same_oof_scores(multi_class):
    X, clin = _data(d=60)
    n_rep = 2 if multi_class == "ovr" else 1  # multinomial L-BFGS is ~10x slower
    res = tario_clinical.decode_categorical(
        X, clin, targets="subtype", multi_class=multi_class, n_repeats=n_rep, **FAST
    )
    r = res.results["subtype"]
    cls = r.params["classes"]
    s = r.summary().set_index("metric")
    per_class, macro, bacc = [], [], []
    cm = np.zeros((len(cls), len(cls)))
    for _, d in r.oof.groupby("repeat"):
        P = d[[f"p_{c}" for c in cls]].to_numpy()
        np.testing.assert_allclose(P.sum(axis=1), 1.0)
        per_class.append(roc_auc_score(d.y_true, P, multi_class="ovr", labels=cls, average=None))
        macro.append(roc_auc_score(d.y_true, P, multi_class="ovr", labels=cls))
        bacc.append(balanced_accuracy_score(d.y_true, d.predicted))
        cm += confusion_matrix(d.y_true, d.predicted, labels=cls)
    got = [s.loc[f"auroc[{c}]", "estimate"] for c in cls]
    np.testing.assert_allclose(got, np.mean(per_class, axis=0), rtol=1e-12)
    np.testing.assert_allclose(s.loc["macro_auroc", "estimate"], np.mean(macro), rtol=1e-12)
    np.testing.assert_allclose(s.loc["balanced_accuracy", "estimate"], np.mean(bacc), rtol=1e-12)
    np.testing.assert_allclose(r.tables["confusion"].to_numpy(), cm / n_rep)
    assert s.loc["macro_auroc", "estimate"] > 0.65
    # the rare level is kept and flagged, never dropped
    assert "E" in cls
    assert "interval unreliable" in s.loc["auroc[E]", "note"]


def test_multinomial_solver_equals_sklearn_logistic_regression():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(120, 80))
    y = np.argmax(X[:, :3] + rng.normal(size=(120, 3)), axis=1)
    tr, te = np.arange(100), np.arange(100, 120)
    b = engine.fold_basis(X, tr, te)
    sc = StandardScaler().fit(X[tr])
    for C in (1e-3, 0.1):
        ((V, c0),) = multinomial_path(b.F, y[tr], np.ones(100), np.array([C]), 3, tol=1e-12)
        ref = LogisticRegression(C=C, tol=1e-12, max_iter=10_000).fit(sc.transform(X[tr]), y[tr])
        np.testing.assert_allclose(
            special.softmax(b.G @ V + c0, axis=1), ref.predict_proba(sc.transform(X[te])), atol=1e-6
        )


def test_rare_levels_merged_on_request():
    X, clin = _data(d=40)
    r = tario_clinical.decode_categorical(
        X, clin, targets="subtype", merge_rare=True, n_repeats=1, **FAST
    ).results["subtype"]
    assert r.params["merged_levels"] == ["E"]
    assert r.params["classes"][-1] == "other"
    assert any("merged" in n for n in r.notes)
    assert r.plot_confusion() is not None


def test_cross_validate_plan_drops_patients_but_keeps_the_others_folds():
    """The jackknife's re-run: deleting patients leaves every other patient in its folds."""
    X, clin = _data(n=60, d=10)
    from tario_clinical.decode.endpoint_inference import cv_design
    from tario_clinical.decode.regression import _RegressionProblem, default_alphas

    y = clin["score"].to_numpy()
    pb = _RegressionProblem(X=X.to_numpy(), alphas=default_alphas(5, 60, 10))
    design = cv_design(
        pb.strata(y),
        clin,
        cv=None,
        n_splits=3,
        n_repeats=1,
        n_inner_splits=3,
        group_by=None,
        seed=0,
    )
    keep = np.arange(60) % 7 != 0
    full = cross_validate_plan(pb, y, design.plan)
    part = cross_validate_plan(pb, y, design.plan, keep)
    np.testing.assert_array_equal(part.fold, full.fold[:, keep])
