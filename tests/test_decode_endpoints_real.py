"""Real data, same folds: the categorical and time-to-event decoders' whole nested CV against
established implementations.

Data: scikit-survival's breast-cancer cohort (Desmedt et al. 2007, 198 patients, the 76 genes of
the Wang et al. prognostic signature; shipped with the installed package, used in tests only):
the representation is the 76-gene expression, the categorical target the histological
``grade`` (3 levels, 2 "unkown" patients excluded) and the time-to-event target distant
metastasis (``t.tdm``, ``e.tdm``).

Reference, per outer fold of the decoder's own plan (outer folds read from its OOF table; inner
folds redrawn by :func:`~tario_clinical.decode.endpoint_inference.cv_design` with the decoder's
seed and checked against the OOF table):

* categorical: one ``Pipeline(StandardScaler(), LogisticRegressionCV(Cs, cv=inner folds,
  scoring="neg_log_loss"))`` per class (one vs rest), probabilities the sigmoids normalised to
  sum to one (``OneVsRestClassifier.predict_proba``); metrics by ``roc_auc_score`` and
  ``balanced_accuracy_score``;
* time to event: ``StandardScaler`` + scikit-survival's ``CoxnetSurvivalAnalysis`` (glmnet's
  coordinate descent, ridge limit ``l1_ratio = 1e-7``) on the same penalty path, the penalty
  chosen by the cross-validated partial likelihood of Verweij & van Houwelingen on the same
  inner folds, refitted on the training rows; Harrell's and Uno's C by scikit-survival.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

sksurv = pytest.importorskip("sksurv")

from sklearn.linear_model import LogisticRegressionCV  # noqa: E402
from sklearn.metrics import balanced_accuracy_score, roc_auc_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sksurv.datasets import load_breast_cancer  # noqa: E402
from sksurv.linear_model import CoxnetSurvivalAnalysis  # noqa: E402
from sksurv.metrics import concordance_index_censored, concordance_index_ipcw  # noqa: E402
from sksurv.util import Surv  # noqa: E402

import tario_clinical  # noqa: E402
from tario_clinical.decode.cox_engine import breslow_loglik  # noqa: E402
from tario_clinical.decode.endpoint_inference import cv_design  # noqa: E402

FAST = {"ci_method": "oof", "p_method": "oof"}
SEED = 3
#: Cox penalty path of the time-to-event comparison: the default path reaches 1e-3 of the mean
#: curvature, where 76 genes and ~40 events in a training fold are nearly separable and
#: scikit-survival's coordinate descent stops ("weights are too large"); our Newton solver does
#: not, but the comparison needs both
LAMBDAS = np.geomspace(0.01, 10.0, 10)
#: logistic C path of the categorical comparison: the default path reaches C ~ 1, where the
#: one-vs-rest problems (76 genes, ~125 training rows) are nearly separable and L-BFGS needs
#: minutes to reach the tight tolerance of the comparison
CS = np.geomspace(1e-6, 0.05, 8)


@pytest.fixture(scope="module")
def cohort():
    X, y = load_breast_cancer()
    genes = X.select_dtypes("number").drop(columns=["age", "size"], errors="ignore")
    genes = genes.loc[:, [c for c in genes.columns if c.startswith("X")]]
    assert genes.shape == (198, 76)
    ids = [f"BC{i:03d}" for i in range(len(X))]  # sorted = row order (the decoders sort ids)
    grade = X["grade"].astype(str).where(X["grade"].astype(str) != "unkown")
    clin = pd.DataFrame(
        {
            "patient_id": ids,
            "grade": grade.to_numpy(),
            "dm_time": y["t.tdm"],
            "dm_event": y["e.tdm"].astype(int),
        }
    )
    return pd.DataFrame(genes.to_numpy(np.float64), index=ids, columns=genes.columns), clin


def _inner_folds(strata, clin, n_inner=5):
    design = cv_design(
        strata,
        clin,
        cv=None,
        n_splits=5,
        n_repeats=1,
        n_inner_splits=n_inner,
        group_by=None,
        seed=SEED,
    )
    return design.plan


@pytest.mark.slow  # ~35 s of CPU: 765 tight-tolerance LogisticRegressionCV fits
def test_categorical_nested_cv_equals_sklearn_on_the_same_folds(cohort):
    X, clin = cohort
    r = tario_clinical.decode_categorical(
        X, clin, targets="grade", n_repeats=1, seed=SEED, Cs=CS, **FAST
    ).results["grade"]
    cls = r.params["classes"]
    keep = clin["grade"].notna().to_numpy()
    assert keep.sum() == 196 and r.exclusions.shape[0] == 2
    Xk, yk = X.to_numpy()[keep], clin.loc[keep, "grade"].to_numpy()
    codes = np.array([cls.index(v) for v in yk])
    strata = (codes[:, None] == np.arange(len(cls))[None, :]).astype(float)
    plan = _inner_folds(strata, clin.loc[keep].set_index("patient_id"))
    oof = r.oof.set_index("patient_id").loc[clin.loc[keep, "patient_id"]]
    np.testing.assert_array_equal(plan.outer[0], oof["fold"].to_numpy())
    Cs = np.asarray(r.params["Cs"], float)
    np.testing.assert_allclose(Cs, CS)
    chosen = r.folds.set_index("fold")["penalty"]
    P_ref = np.full((keep.sum(), len(cls)), np.nan)
    picked = []
    for k in range(5):
        tr, te = np.flatnonzero(plan.outer[0] != k), np.flatnonzero(plan.outer[0] == k)
        inner = np.unique(plan.inner[k][tr], return_inverse=True)[1]
        splits = [(np.flatnonzero(inner != m), np.flatnonzero(inner == m)) for m in range(5)]
        dec = np.empty((te.size, len(cls)))
        Cc = []
        for c in range(len(cls)):
            ref = make_pipeline(
                StandardScaler(),
                LogisticRegressionCV(
                    Cs=Cs, cv=splits, scoring="neg_log_loss", tol=1e-10, max_iter=100_000
                ),
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ref.fit(Xk[tr], (codes[tr] == c).astype(int))
            dec[:, c] = ref.decision_function(Xk[te])
            Cc.append(float(ref[-1].C_[0]))
        # the decoder reports the median over classes of the chosen C
        assert np.median(Cc) == pytest.approx(chosen.loc[k], rel=1e-12), f"fold {k}"
        picked += Cc
        p = 1.0 / (1.0 + np.exp(-dec))
        P_ref[te] = p / p.sum(axis=1, keepdims=True)
    # mostly interior choices (the comparison is not decided by the ends of the path)
    assert sum(CS[0] < c < CS[-1] for c in picked) >= len(picked) / 2
    P = oof[[f"p_{c}" for c in cls]].to_numpy()
    np.testing.assert_allclose(P, P_ref, atol=2e-4)
    s = r.summary().set_index("metric")
    macro = roc_auc_score(yk, P_ref, multi_class="ovr", labels=cls)
    assert s.loc["macro_auroc", "estimate"] == pytest.approx(macro, abs=2e-3)
    bacc = balanced_accuracy_score(yk, np.asarray(cls)[np.argmax(P_ref, axis=1)])
    assert s.loc["balanced_accuracy", "estimate"] == pytest.approx(bacc, abs=0.02)
    assert s.loc["macro_auroc", "estimate"] > 0.6  # grade is decodable from the 76 genes


def test_survival_nested_cv_equals_coxnet_on_the_same_folds(cohort):
    X, clin = cohort
    res = tario_clinical.decode_survival(
        X, clin, time="dm_time", event="dm_event", n_repeats=1, seed=SEED, lambdas=LAMBDAS, **FAST
    )
    Xa = X.to_numpy()
    t = clin["dm_time"].to_numpy(float)
    e = clin["dm_event"].to_numpy(float)
    plan = _inner_folds(e[:, None], clin.set_index("patient_id"))
    oof = res.oof.set_index("patient_id").loc[clin["patient_id"]]
    np.testing.assert_array_equal(plan.outer[0], oof["fold"].to_numpy())
    lams = np.asarray(res.params["lambdas"], float)
    np.testing.assert_allclose(lams, LAMBDAS)
    r1 = 1e-7
    chosen = res.folds.set_index("fold")["penalty"]
    eta_ref = np.full(t.size, np.nan)
    score_ref = np.full(t.size, np.nan)
    bests = []
    for k in range(5):
        tr, te = np.flatnonzero(plan.outer[0] != k), np.flatnonzero(plan.outer[0] == k)
        inner = np.unique(plan.inner[k][tr], return_inverse=True)[1]
        sc = StandardScaler().fit(Xa[tr])
        Z, Zt = sc.transform(Xa[tr]), sc.transform(Xa[te])
        yy = Surv.from_arrays(event=e[tr].astype(bool), time=t[tr])
        order = np.argsort(-lams)  # coordinate descent runs the path from the largest penalty
        path = dict(alphas=lams[order] / (1 - r1), l1_ratio=r1, tol=1e-10, max_iter=1_000_000)
        cvpl = np.zeros(lams.size)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for m in range(5):
                fit = inner != m
                mdl = CoxnetSurvivalAnalysis(**path).fit(Z[fit], yy[fit])
                eta = Z @ mdl.coef_[:, np.argsort(order)]
                cvpl += breslow_loglik(eta, t[tr], e[tr]) - breslow_loglik(
                    eta, t[tr], e[tr], np.broadcast_to(fit[:, None].astype(float), eta.shape)
                )
            top = cvpl.max()
            best = int(np.flatnonzero(cvpl >= top - 1e-6 * max(1.0, abs(top)))[-1])
            # refit from the largest penalty down to the chosen one (coordinate descent fails
            # numerically at the smallest penalties of the path on all training rows)
            down = lams[order][: int(np.flatnonzero(order == best)[0]) + 1]
            full = CoxnetSurvivalAnalysis(**{**path, "alphas": down / (1 - r1)}).fit(Z, yy)
        assert lams[best] == pytest.approx(chosen.loc[k], rel=1e-12), f"fold {k}"
        bests.append(best)
        coef = full.coef_[:, -1]
        eta_ref[te] = Zt @ coef
        eta_tr = Z @ coef
        score_ref[te] = (eta_ref[te] - eta_tr.mean()) / eta_tr.std()
    np.testing.assert_allclose(oof["risk"].to_numpy(), eta_ref, atol=2e-3 * np.std(eta_ref))
    np.testing.assert_allclose(oof["score"].to_numpy(), score_ref, atol=2e-3)
    s = res.summary().set_index("metric")
    y = Surv.from_arrays(event=e.astype(bool), time=t)
    harrell = concordance_index_censored(e.astype(bool), t, oof["score"].to_numpy())[0]
    assert s.loc["harrell_c", "estimate"] == pytest.approx(harrell, abs=1e-12)
    assert max(bests) < lams.size - 1  # the inner CV chose an interior penalty somewhere
    # the reference's fold-standardised scores give the same C
    ref_h = concordance_index_censored(e.astype(bool), t, score_ref)[0]
    assert harrell == pytest.approx(ref_h, abs=5e-3)
    uno = concordance_index_ipcw(y, y, oof["score"].to_numpy())[0]
    assert s.loc["uno_c", "estimate"] == pytest.approx(uno, abs=1e-10)
