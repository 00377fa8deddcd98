"""Tests of tario_clinical.survival.

Reference values come from (a) independent, deliberately naive implementations written in
this file (loops over event times, no shared code with the package), (b) statsmodels
``PHReg`` / ``survdiff`` and lifelines (with tightened tolerance), (c) scikit-survival's
concordance / AUC estimators (GPL-3, used here as a test reference only), and (d) published
R ``survival`` output for the Veterans' lung cancer trial. Data: the Veterans'
Administration lung cancer trial and GBSG2 as shipped by scikit-survival.
"""

from __future__ import annotations

import json
import math

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from tario_clinical import survival as sv
from tario_clinical.errors import AnalysisError, SchemaError

sksurv_datasets = pytest.importorskip("sksurv.datasets")
REL = 1e-6


# ============================================================================ data
@pytest.fixture(scope="module")
def veterans() -> pd.DataFrame:
    x, y = sksurv_datasets.load_veterans_lung_cancer()
    df = x.copy()
    df["time"] = y["Survival_in_days"]
    df["event"] = y["Status"].astype(int)
    return df


@pytest.fixture(scope="module")
def gbsg2() -> pd.DataFrame:
    x, y = sksurv_datasets.load_gbsg2()
    df = x.copy()
    df["time"] = y["time"]
    df["event"] = y["cens"].astype(int)
    return df


VET_COVS = [
    "Age_in_years",
    "Celltype",
    "Karnofsky_score",
    "Months_from_Diagnosis",
    "Prior_therapy",
    "Treatment",
]
GBSG_COVS = ["age", "estrec", "horTh", "menostat", "pnodes", "progrec", "tgrade", "tsize"]


def dummies(df: pd.DataFrame, covs: list[str]) -> tuple[np.ndarray, list[str]]:
    """Treatment coding with the first (sorted / categorical) level as reference."""
    cols, names = [], []
    for c in covs:
        s = df[c]
        if pd.api.types.is_numeric_dtype(s):
            cols.append(s.to_numpy(float))
            names.append(c)
        else:
            levels = list(s.cat.categories) if hasattr(s, "cat") else sorted(s.unique())
            levels = [lv for lv in levels if lv in set(s)]
            for lv in levels[1:]:
                cols.append((s == lv).to_numpy(float))
                names.append(f"{c}[{lv}]")
    return np.column_stack(cols), names


# ============================================================================ independent refs
def naive_efron(beta, x, t, e, strata=None):
    """Loop implementation of the Efron log partial likelihood, score and information."""
    strata = np.zeros(len(t)) if strata is None else np.asarray(strata)
    p = x.shape[1]
    ll, g, info = 0.0, np.zeros(p), np.zeros((p, p))
    r = np.exp(x @ beta)
    for s in np.unique(strata):
        ms = strata == s
        for tk in np.unique(t[ms & (e == 1)]):
            risk = ms & (t >= tk)
            dead = ms & (t == tk) & (e == 1)
            d = dead.sum()
            s0, s1 = r[risk].sum(), (r[risk, None] * x[risk]).sum(0)
            s2 = (r[risk, None, None] * x[risk, :, None] * x[risk, None, :]).sum(0)
            e0, e1 = r[dead].sum(), (r[dead, None] * x[dead]).sum(0)
            e2 = (r[dead, None, None] * x[dead, :, None] * x[dead, None, :]).sum(0)
            ll += (x[dead] @ beta).sum()
            g += x[dead].sum(0)
            for ell in range(d):
                a = ell / d
                den = s0 - a * e0
                mu = (s1 - a * e1) / den
                ll -= math.log(den)
                g -= mu
                info += (s2 - a * e2) / den - np.outer(mu, mu)
    return ll, g, info


def naive_cox(x, t, e, strata=None):
    beta = np.zeros(x.shape[1])
    for _ in range(50):
        _, g, info = naive_efron(beta, x, t, e, strata)
        step = np.linalg.solve(info, g)
        beta = beta + step
        if np.abs(step).max() < 1e-12:
            break
    _, _, info = naive_efron(beta, x, t, e, strata)
    return beta, np.sqrt(np.diag(np.linalg.inv(info)))


def naive_logrank(t, e, g):
    """Direct O - E and hypergeometric covariance, loop over event times (R survdiff)."""
    levels = sorted(set(g))
    k = len(levels)
    o, ex, v = np.zeros(k), np.zeros(k), np.zeros((k, k))
    for tk in np.unique(t[e == 1]):
        at = t >= tk
        n = at.sum()
        d = ((t == tk) & (e == 1)).sum()
        nj = np.array([(at & (g == lv)).sum() for lv in levels], float)
        dj = np.array([((t == tk) & (e == 1) & (g == lv)).sum() for lv in levels], float)
        o += dj
        ex += d * nj / n
        if n > 1:
            fac = d * (n - d) / (n - 1)
            v += fac * (np.diag(nj / n) - np.outer(nj / n, nj / n))
    diff = (o - ex)[:-1]
    return float(diff @ np.linalg.solve(v[:-1, :-1], diff)), o, ex, v


def naive_km(t, e):
    out = []
    s = 1.0
    for tk in np.unique(t):
        n = (t >= tk).sum()
        d = ((t == tk) & (e == 1)).sum()
        s *= 1 - d / n
        out.append((tk, s))
    return out


def naive_median(t, e):
    for tk, s in naive_km(t, e):
        if s <= 0.5:
            return tk
    return float("nan")


# ============================================================================ Cox
def test_cox_veterans_matches_independent_and_statsmodels_and_lifelines(veterans):
    from lifelines import CoxPHFitter
    from statsmodels.duration.hazard_regression import PHReg

    tab = sv.cox(veterans, "time", "event", VET_COVS)
    x, names = dummies(veterans, VET_COVS)
    assert list(tab.index) == names
    t, e = veterans["time"].to_numpy(), veterans["event"].to_numpy()
    beta, se = naive_cox(x, t, e)
    np.testing.assert_allclose(tab["coef"], beta, rtol=REL)
    np.testing.assert_allclose(tab["se"], se, rtol=REL)
    sm = PHReg(t, x, status=e, ties="efron").fit()
    np.testing.assert_allclose(tab["coef"], sm.params, rtol=REL)
    np.testing.assert_allclose(tab["se"], sm.bse, rtol=REL)
    d = pd.DataFrame(x, columns=[f"c{i}" for i in range(x.shape[1])]).assign(time=t, event=e)
    lf = CoxPHFitter().fit(d, "time", "event", fit_options={"precision": 1e-14, "max_steps": 200})
    np.testing.assert_allclose(tab["coef"], lf.params_.to_numpy(), rtol=REL)
    np.testing.assert_allclose(tab["se"], lf.standard_errors_.to_numpy(), rtol=1e-5)
    # derived columns
    np.testing.assert_allclose(tab["hr"], np.exp(tab["coef"]))
    np.testing.assert_allclose(tab["z"], tab["coef"] / tab["se"])
    np.testing.assert_allclose(tab["hr_low"], np.exp(tab["coef"] - 1.959963984540054 * tab["se"]))
    np.testing.assert_allclose(tab["p_value"], 2 * stats.norm.sf(np.abs(tab["z"])))


def test_cox_veterans_matches_published_r_output(veterans):
    # R: coxph(Surv(time, status) ~ trt + celltype + karno + diagtime + age + prior, veteran)
    # (survival package example output; R codes prior as 0/10, celltype reference squamous).
    tab = sv.cox(veterans, "time", "event", VET_COVS, reference={"Celltype": "squamous"})
    assert tab.loc["Treatment[test]", "coef"] == pytest.approx(2.946e-01, rel=2e-4)
    assert tab.loc["Treatment[test]", "se"] == pytest.approx(2.075e-01, rel=3e-4)
    assert tab.loc["Karnofsky_score", "coef"] == pytest.approx(-3.282e-02, rel=2e-4)
    assert tab.loc["Karnofsky_score", "se"] == pytest.approx(5.508e-03, rel=2e-4)
    assert tab.loc["Celltype[smallcell]", "coef"] == pytest.approx(8.616e-01, rel=2e-4)
    assert tab.loc["Celltype[adeno]", "coef"] == pytest.approx(1.196e00, rel=5e-4)
    assert tab.loc["Prior_therapy[yes]", "coef"] / 10 == pytest.approx(7.159e-03, rel=2e-4)


def test_cox_gbsg2_and_strata(gbsg2):
    from statsmodels.duration.hazard_regression import PHReg

    m = sv.cox_fit(gbsg2, "time", "event", GBSG_COVS)
    x, names = dummies(gbsg2, GBSG_COVS)
    t, e = gbsg2["time"].to_numpy(), gbsg2["event"].to_numpy()
    beta, se = naive_cox(x, t, e)
    np.testing.assert_allclose(m.table["coef"], beta, rtol=REL)
    np.testing.assert_allclose(m.table["se"], se, rtol=REL)
    ll, _, _ = naive_efron(beta, x, t, e)
    assert m.loglik == pytest.approx(ll, rel=1e-10)
    assert m.lr_statistic == pytest.approx(
        2 * (ll - naive_efron(np.zeros(len(beta)), x, t, e)[0]), rel=1e-8
    )
    # stratified by tumour grade
    covs = ["horTh", "age", "pnodes"]
    ms = sv.cox_fit(gbsg2, "time", "event", covs, strata="tgrade")
    xs, _ = dummies(gbsg2, covs)
    strata = gbsg2["tgrade"].astype(str).to_numpy()
    b2, se2 = naive_cox(xs, t, e, strata)
    np.testing.assert_allclose(ms.table["coef"], b2, rtol=REL)
    np.testing.assert_allclose(ms.table["se"], se2, rtol=REL)
    sm = PHReg(t, xs, status=e, strata=strata, ties="efron").fit()
    np.testing.assert_allclose(ms.table["coef"], sm.params, rtol=REL)


# R >= 3.0 cox.zph tables (layout "chisq df p"), Efron ties, transform "km" unless stated.
# Sources: therneau/survival tests/Examples/survival-Ex.Rout.save (ovarian); tests/zph.R
# (closed form); knitted R output on lung (Teniola17/modeldiag, 7 digits) and veteran
# (yuchen14/survival_analysis; a blog article for the stratified model).
_OVARIAN = """59 1 72.3315 1|115 1 74.4932 1|156 1 66.4658 2|421 0 53.3644 1|431 1 50.3397 1
448 0 56.4301 2|464 1 56.9370 2|475 1 59.8548 2|477 0 64.1753 1|563 1 55.1781 2
638 1 56.7562 2|744 0 50.1096 1|769 0 59.6301 2|770 0 57.0521 1|803 0 39.2712 1
855 0 43.1233 2|1040 0 38.8932 2|1106 0 44.6000 1|1129 0 53.9068 1|1206 0 44.2055 1
1227 0 59.5890 2|268 1 74.5041 2|329 1 43.1370 1|353 1 63.2192 2|365 1 64.4247 1
377 0 58.3096 1"""


def _ovarian() -> pd.DataFrame:
    rows = [r.split() for line in _OVARIAN.splitlines() for r in line.split("|")]
    return pd.DataFrame(rows, columns=["futime", "fustat", "age", "ecog_ps"]).astype(float)


def _vet_r(veterans: pd.DataFrame) -> pd.DataFrame:
    return veterans.rename(
        columns={"Age_in_years": "age", "Karnofsky_score": "karno", "Treatment": "trt",
                 "Months_from_Diagnosis": "diagtime", "Prior_therapy": "prior",
                 "Celltype": "celltype"}
    )  # fmt: skip


def test_ph_test_exact_matches_r_survival_3(veterans):
    from lifelines.datasets import load_lung

    def check(m, expected, digits):
        got = m.ph_test()
        for term, (chisq, df) in expected.items():
            assert got.loc[term, "df"] == df, term
            assert got.loc[term, "statistic"] == pytest.approx(chisq, abs=0.5 * 10**-digits), term
            p = stats.chi2.sf(got.loc[term, "statistic"], df)
            assert got.loc[term, "p_value"] == pytest.approx(p, rel=1e-12)

    # ovarian (help-page example saved in the package's own tests): R prints 3 decimals
    ov = _ovarian()
    m = sv.cox_fit(ov, "futime", "fustat", ["age", "ecog_ps"])
    assert m.table.loc["age", "coef"] == pytest.approx(0.16150, abs=5e-6)
    check(m, {"age": (0.698, 1), "ecog_ps": (2.371, 1), "GLOBAL": (3.633, 2)}, 3)
    # lung age + sex + ph.ecog, 227 complete rows (R drops the NA in ph.ecog): 7 digits
    lung = load_lung().dropna(subset=["age", "sex", "ph.ecog"])
    m = sv.cox_fit(lung, "time", "status", ["age", "sex", "ph.ecog"])
    got = m.ph_test()
    np.testing.assert_allclose(
        got["statistic"], [0.1879877, 2.3054372, 2.0542488, 4.4636576], rtol=2e-7
    )
    np.testing.assert_allclose(
        got["p_value"], [0.6645968, 0.1289220, 0.1517821, 0.2155549], rtol=2e-6
    )
    # veteran, full model: celltype is one term with 3 df, GLOBAL has 8 df
    vet = _vet_r(veterans)
    m = sv.cox_fit(vet, "time", "event", ["trt", "celltype", "karno", "diagtime", "age", "prior"])
    check(
        m,
        {"trt": (0.2644, 1), "celltype": (15.2274, 3), "karno": (12.9352, 1),
         "diagtime": (0.0129, 1), "age": (1.8288, 1), "prior": (2.1656, 1),
         "GLOBAL": (34.5525, 8)},
        4,
    )  # fmt: skip
    m = sv.cox_fit(vet, "time", "event", ["trt", "karno", "age"])
    check(m, {"trt": (0.284, 1), "karno": (12.003, 1), "age": (2.100, 1), "GLOBAL": (19.102, 3)}, 3)
    # stratified by cell type: risk sets within strata, g(t) from the pooled KM
    m = sv.cox_fit(vet, "time", "event", ["trt", "age"], strata="celltype")
    check(m, {"trt": (1.68, 1), "age": (1.24, 1), "GLOBAL": (3.94, 2)}, 2)
    # terms=False: one row per coefficient, GLOBAL unchanged
    m = sv.cox_fit(vet, "time", "event", ["trt", "celltype", "karno"])
    per = m.ph_test(terms=False)
    assert list(per.index[:-1]) == list(m.table.index) and (per["df"].iloc[:-1] == 1).all()
    assert per.loc["GLOBAL", "statistic"] == pytest.approx(
        m.ph_test().loc["GLOBAL", "statistic"], rel=1e-12
    )


def test_ph_test_exact_closed_form_from_r_tests():
    """survival tests/zph.R: Efron ties, log transform, the row with status NA dropped; R
    asserts equality with this closed form (beta = log(2 sqrt(23/3) cos(phi/3)))."""
    d = pd.DataFrame({"time": [9, 1, 1, 6, 6, 8], "status": [1, 1, 0, 1, 1, 0],
                      "x": [0, 1, 1, 1, 0, 0]})  # fmt: skip
    m = sv.cox_fit(d, "time", "status", ["x"], tol=1e-13)
    phi = np.arccos((45 / 23) * np.sqrt(3 / 23))
    assert m.table.loc["x", "coef"] == pytest.approx(
        np.log(2 * np.sqrt(23 / 3) * np.cos(phi / 3)), rel=1e-10
    )
    got = m.ph_test(transform="log")
    assert got.loc["x", "statistic"] == pytest.approx(0.2386557176370788, rel=1e-9)


def test_ph_test_exact_is_the_score_test_of_x_times_g(veterans):
    """Each row equals the ordinary score test for adding x*g(t) as a time-varying covariate
    (what R's own tests assert), computed here by brute force: the Cox partial likelihood with
    the extra covariate evaluated at (beta_hat, 0), derivatives by finite differences."""
    vet = _vet_r(veterans)
    m = sv.cox_fit(vet, "time", "event", ["karno", "age"])
    t = vet["time"].to_numpy(float)
    e = vet["event"].to_numpy(int)
    x = vet[["karno", "age"]].to_numpy(float)
    beta = m.table["coef"].to_numpy()
    # g(t) = 1 - S(t-) from a direct product-limit computation
    times = np.unique(t[e == 1])
    surv = np.cumprod([1 - ((t == u) & (e == 1)).sum() / (t >= u).sum() for u in times])

    def g_at(tt):
        k = np.searchsorted(times, tt, side="left")
        return 1 - np.r_[1.0, surv][k]

    def loglik(theta, col):
        b, gam = theta[:2], theta[2]
        ll = 0.0
        for u in times:
            risk = t >= u
            dead = (t == u) & (e == 1)
            lp = x @ b + gam * x[:, col] * g_at(u)  # the covariate's value at time u
            rr = np.exp(lp)
            s0, d0, nd = rr[risk].sum(), rr[dead].sum(), dead.sum()
            ll += lp[dead].sum() - sum(np.log(s0 - k / nd * d0) for k in range(nd))
        return ll

    for col, name in enumerate(["karno", "age"]):
        theta = np.r_[beta, 0.0]
        h = 1e-4
        grad = np.array([(loglik(theta + h * ei, col) - loglik(theta - h * ei, col)) / (2 * h)
                         for ei in np.eye(3)])  # fmt: skip
        hess = np.array([[(loglik(theta + h * (ei + ej), col) - loglik(theta + h * (ei - ej), col)
                           - loglik(theta - h * (ei - ej), col) + loglik(theta - h * (ei + ej), col))
                          / (4 * h * h) for ej in np.eye(3)] for ei in np.eye(3)])  # fmt: skip
        u = np.r_[0.0, 0.0, grad[2]]
        brute = float(u @ np.linalg.solve(-hess, u))
        assert m.ph_test().loc[name, "statistic"] == pytest.approx(brute, rel=1e-4), name


def test_ph_test_matches_lifelines(veterans):
    from lifelines import CoxPHFitter
    from lifelines.statistics import proportional_hazard_test

    m = sv.cox_fit(veterans, "time", "event", VET_COVS)
    x, names = dummies(veterans, VET_COVS)
    d = pd.DataFrame(x, columns=names).assign(time=veterans["time"], event=veterans["event"])
    lf = CoxPHFitter().fit(d, "time", "event", fit_options={"precision": 1e-14, "max_steps": 200})
    for transform in ("identity", "log", "km"):
        ours = m.ph_test(transform=transform, method="approximate")
        ref = proportional_hazard_test(lf, d, time_transform=transform).summary
        np.testing.assert_allclose(
            ours.loc[names, "statistic"], ref.loc[names, "test_statistic"], rtol=1e-5
        )
        assert ours.loc["GLOBAL", "df"] == len(names)
        assert 0 <= ours.loc["GLOBAL", "p_value"] <= 1


# ============================================================================ log-rank / KM
def test_logrank_matches_direct_computation_lifelines_statsmodels(veterans, gbsg2):
    from lifelines.statistics import multivariate_logrank_test
    from statsmodels.duration.survfunc import survdiff

    for df, g in (
        (veterans, "Celltype"),
        (veterans, "Treatment"),
        (gbsg2, "horTh"),
        (gbsg2, "tgrade"),
    ):
        res = sv.logrank(df, "time", "event", g)
        t, e, grp = df["time"].to_numpy(), df["event"].to_numpy(), df[g].astype(str).to_numpy()
        chisq, o, ex, v = naive_logrank(t, e, grp)
        assert res.loc["log-rank", "statistic"] == pytest.approx(chisq, rel=REL)
        assert res.loc["log-rank", "df"] == len(set(grp)) - 1
        lf = multivariate_logrank_test(t, grp, e)
        assert res.loc["log-rank", "statistic"] == pytest.approx(lf.test_statistic, rel=REL)
        sm_stat, _ = survdiff(t, e, grp)
        assert res.loc["log-rank", "statistic"] == pytest.approx(sm_stat, rel=REL)
        table = sv.logrank_table(df, "time", "event", g)
        np.testing.assert_allclose(table["observed"], o)
        np.testing.assert_allclose(table["expected"], ex, rtol=1e-10)
    # published R: survdiff(Surv(time, cens) ~ horTh, GBSG2): Chisq = 8.6 on 1 df, p = 0.003
    assert sv.logrank(gbsg2, "time", "event", "horTh").loc[
        "log-rank", "statistic"
    ] == pytest.approx(8.56, abs=0.01)
    # R: survdiff(Surv(time, status) ~ celltype, veteran): Chisq = 25.4 on 3 df
    assert sv.logrank(veterans, "time", "event", "Celltype").loc[
        "log-rank", "statistic"
    ] == pytest.approx(25.4, abs=0.05)


def test_logrank_trend_direct(gbsg2):
    res = sv.logrank(gbsg2, "time", "event", "tgrade")
    t, e = gbsg2["time"].to_numpy(), gbsg2["event"].to_numpy()
    grp = gbsg2["tgrade"].astype(str).to_numpy()  # I < II < III sorts correctly
    _, o, ex, v = naive_logrank(t, e, grp)
    w = np.array([1.0, 2.0, 3.0])
    expected = (w @ (o - ex)) ** 2 / (w @ v @ w)
    assert res.loc["trend", "statistic"] == pytest.approx(expected, rel=REL)
    custom = sv.logrank(gbsg2, "time", "event", "tgrade", trend_scores={"I": 0, "II": 1, "III": 5})
    w2 = np.array([0.0, 1.0, 5.0])
    assert custom.loc["trend", "statistic"] == pytest.approx(
        (w2 @ (o - ex)) ** 2 / (w2 @ v @ w2), rel=REL
    )


def test_stratified_logrank_equals_sum_over_strata(gbsg2):
    res = sv.logrank(gbsg2, "time", "event", "horTh", strata="menostat")
    t, e = gbsg2["time"].to_numpy(), gbsg2["event"].to_numpy()
    g, s = gbsg2["horTh"].astype(str).to_numpy(), gbsg2["menostat"].astype(str).to_numpy()
    oe, var = 0.0, 0.0
    for lv in np.unique(s):
        m = s == lv
        _, o, ex, v = naive_logrank(t[m], e[m], g[m])
        oe += (o - ex)[0]
        var += v[0, 0]
    assert res.loc["log-rank", "statistic"] == pytest.approx(oe**2 / var, rel=REL)


def test_km_medians_and_survival_match_independent_and_lifelines(veterans, gbsg2):
    from lifelines import KaplanMeierFitter

    for df, g in ((veterans, "Treatment"), (veterans, "Celltype"), (gbsg2, "horTh")):
        res = sv.km(df, "time", "event", g)
        for _, row in res.summary.iterrows():
            m = (df[g] == row["group"]).to_numpy()
            t, e = df["time"].to_numpy()[m], df["event"].to_numpy()[m]
            assert row["n"] == m.sum() and row["events"] == e.sum()
            assert row["median"] == pytest.approx(naive_median(t, e), rel=REL)
            kmf = KaplanMeierFitter().fit(t, e)
            assert row["median"] == pytest.approx(kmf.median_survival_time_, rel=REL)
            tab = res.table[res.table["group"] == row["group"]]
            ref = dict(naive_km(t, e))
            np.testing.assert_allclose(tab["survival"], [ref[x] for x in tab["time"]], rtol=1e-12)
            # Greenwood / log CI (R survfit default conf.type = "log"), checked by formula
            pos = tab["survival"] > 0
            expect = np.clip(tab["survival"] * np.exp(-1.959963984540054 * tab["std_err"]), 0, 1)
            np.testing.assert_allclose(tab.loc[pos, "low"], expect[pos])
            assert (tab.loc[~pos, ["low", "high"]] == 0).all().all()  # band collapses at S = 0
    # R: survfit(Surv(time, status) ~ trt, veteran): medians 103 (standard) and 52 (test)
    vet = sv.km(veterans, "time", "event", "Treatment").summary.set_index("group")
    assert vet.loc["standard", "median"] == 103 and vet.loc["test", "median"] == 52


def test_km_median_ci_by_band_inversion(veterans):
    res = sv.km(veterans, "time", "event")
    tab = res.table
    row = res.summary.iloc[0]
    # lower limit: the lower band reaches 0.5 first; upper limit: the upper band (R survfit)
    assert row["median_low"] == tab.loc[tab["low"] <= 0.5, "time"].min()
    assert row["median_high"] == tab.loc[tab["high"] <= 0.5, "time"].min()
    assert row["median_low"] <= row["median"] <= row["median_high"]


def test_km_exact_half_and_no_median():
    d = pd.DataFrame({"t": [1.0, 2, 3, 4], "e": [1, 1, 0, 0]})
    s = sv.km(d, "t", "e").summary.iloc[0]
    assert s["median"] == 2.0  # S(2) = 0.5 exactly: first time S <= 0.5
    d2 = pd.DataFrame({"t": [1.0, 2, 3, 4], "e": [1, 0, 0, 0]})
    assert math.isnan(sv.km(d2, "t", "e").summary.iloc[0]["median"])


# ============================================================================ RMST
@pytest.mark.filterwarnings("ignore::scipy.integrate.IntegrationWarning")
def test_rmst_matches_lifelines_and_direct_variance(veterans):
    from lifelines import KaplanMeierFitter
    from lifelines.utils import restricted_mean_survival_time

    tau = 400.0
    res = sv.rmst(veterans, "time", "event", "Treatment", tau=tau).set_index("term")
    parts = {}
    for lv in ("standard", "test"):
        m = (veterans["Treatment"] == lv).to_numpy()
        t, e = veterans["time"].to_numpy()[m], veterans["event"].to_numpy()[m]
        mu, var = restricted_mean_survival_time(
            KaplanMeierFitter().fit(t, e), t=tau, return_variance=True
        )
        assert res.loc[f"rmst[{lv}]", "estimate"] == pytest.approx(mu, rel=1e-6)
        # direct variance: sum_j A_j^2 d_j / (n_j (n_j - d_j)), A_j = int_{t_j}^tau S
        steps = naive_km(t, e)
        grid = [0.0] + [x for x, _ in steps if x <= tau] + [tau]
        svals = [1.0] + [s for x, s in steps if x <= tau]
        area = [svals[i] * (grid[i + 1] - grid[i]) for i in range(len(svals))]
        v = 0.0
        for j, (tj, _) in enumerate([(x, s) for x, s in steps if x <= tau]):
            n = (t >= tj).sum()
            d = ((t == tj) & (e == 1)).sum()
            if d and n > d:
                v += sum(area[j + 1 :]) ** 2 * d / (n * (n - d))
        assert res.loc[f"rmst[{lv}]", "se"] == pytest.approx(math.sqrt(v), rel=1e-9)
        parts[lv] = (sum(area), v)
    diff = res.loc["difference[test - standard]"]
    assert diff["estimate"] == pytest.approx(parts["test"][0] - parts["standard"][0], rel=1e-9)
    assert diff["se"] == pytest.approx(math.sqrt(parts["test"][1] + parts["standard"][1]), rel=1e-9)
    assert diff["low"] < diff["estimate"] < diff["high"]
    with pytest.raises(AnalysisError, match="tau"):
        sv.rmst(veterans, "time", "event", "Treatment", tau=5000)


# ============================================================================ concordance / AUC
def test_concordance_matches_sksurv(veterans, gbsg2):
    from sksurv.metrics import concordance_index_censored, concordance_index_ipcw

    for df, col in ((veterans, "Karnofsky_score"), (gbsg2, "pnodes")):
        d = df.assign(risk=-df[col] if col == "Karnofsky_score" else df[col])
        y = np.array(
            list(zip(d["event"].astype(bool), d["time"], strict=True)),
            dtype=[("e", bool), ("t", float)],
        )
        res = sv.concordance(d, "time", "event", "risk")
        ref = concordance_index_censored(y["e"], y["t"], d["risk"].to_numpy())
        assert res.loc["harrell", "estimate"] == pytest.approx(ref[0], rel=1e-12)
        assert res.loc["harrell", "n_pairs"] == ref[1] + ref[2] + ref[3]
        tau = float(np.quantile(d["time"], 0.8))
        res_t = sv.concordance(d, "time", "event", "risk", tau=tau)
        ref_u = concordance_index_ipcw(y, y, d["risk"].to_numpy(), tau=tau)
        assert res_t.loc["uno", "estimate"] == pytest.approx(ref_u[0], rel=1e-10)
        assert (res_t["low"] < res_t["estimate"]).all() and (
            res_t["estimate"] < res_t["high"]
        ).all()


def test_time_dependent_auc_matches_sksurv(gbsg2):
    from sksurv.metrics import cumulative_dynamic_auc

    y = np.array(
        list(zip(gbsg2["event"].astype(bool), gbsg2["time"], strict=True)),
        dtype=[("e", bool), ("t", float)],
    )
    times = [365.0, 730.0, 1461.0]
    res = sv.time_dependent_auc(gbsg2, "time", "event", "pnodes", times)
    ref, _ = cumulative_dynamic_auc(y, y, gbsg2["pnodes"].to_numpy(), times)
    np.testing.assert_allclose(res["auc"], ref, rtol=1e-10)
    assert (res["se"] > 0).all() and (res["n_cases"] > 0).all()


def test_time_dependent_auc_ci_covers_the_truth():
    """Seeded simulation with a known truth: score S ~ N(0, 1), hazard 0.1 exp(0.7 S),
    exponential censoring (~60 %), n = 200, horizon 10 (few controls: the hardest cell of a
    2,000-replicate study, where the plain interval covered 0.911). True cumulative/dynamic
    AUC(10) = 0.76054 (2-D quadrature; agrees with a 200,000-patient sample)."""
    truth = 0.7605409914753791
    rng = np.random.default_rng(20261126)
    hits = {"logit": 0, "plain": 0}
    reps = 300
    for _ in range(reps):
        s = rng.standard_normal(200)
        t = rng.exponential(1.0 / (0.1 * np.exp(0.7 * s)))
        c = rng.exponential(1.0 / 0.15682483405845707, 200)
        d = pd.DataFrame({"time": np.minimum(t, c), "event": (t <= c).astype(int), "score": s})
        for kind in hits:
            r = sv.time_dependent_auc(d, "time", "event", "score", [10.0], ci=kind).iloc[0]
            hits[kind] += r["low"] <= truth <= r["high"]
            assert 0.0 < r["low"] < r["auc"] < r["high"] < 1.0
    cover = {k: v / reps for k, v in hits.items()}
    assert cover["logit"] >= 0.92, cover  # nominal 0.95; MC SE 0.013
    assert cover["logit"] >= cover["plain"], cover


def test_harrell_se_against_bootstrap(gbsg2):
    """The influence-function SE agrees with a seeded bootstrap SE within 15 %."""
    rng = np.random.default_rng(3)
    res = sv.concordance(gbsg2, "time", "event", "pnodes")
    boots = []
    for _ in range(150):
        idx = rng.integers(0, len(gbsg2), len(gbsg2))
        boots.append(
            sv.concordance(gbsg2.iloc[idx].reset_index(drop=True), "time", "event", "pnodes").loc[
                "harrell", "estimate"
            ]
        )
    assert res.loc["harrell", "se"] == pytest.approx(np.std(boots, ddof=1), rel=0.15)


# ============================================================================ simulations
def _sim(n, seed, *, hr=2.0, inter=None, cens=1.0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 2, n)
    arm = rng.integers(0, 2, n)
    lp = np.log(hr) * x
    if inter is not None:  # treatment effect only in biomarker-positive
        lp = np.log(inter[0]) * x + np.log(inter[1]) * arm + np.log(inter[2]) * arm * x
    t = rng.exponential(1.0 / (0.5 * np.exp(lp)))
    c = rng.exponential(1.0 / (0.5 * cens), n)
    return pd.DataFrame(
        {
            "patient_id": [f"S{i:04d}" for i in range(n)],
            "time": np.minimum(t, c),
            "event": (t <= c).astype(int),
            "marker": np.where(x == 1, "pos", "neg"),
            "arm": np.where(arm == 1, "experimental", "control"),
            "cancer_type": rng.choice(["LUAD", "LUSC"], n),
        }
    )


def test_planted_hr_recovered_within_ci():
    covered = 0
    for seed in range(20):
        d = _sim(400, seed, hr=2.0)
        row = sv.cox(d, "time", "event", ["marker"]).loc["marker[pos]"]
        covered += row["hr_low"] <= 2.0 <= row["hr_high"]
    # 95 % CI: P(>= 16 of 20 covered) > 0.99 for a correct CI
    assert covered >= 16
    d = _sim(3000, 99, hr=2.0)
    assert sv.cox(d, "time", "event", ["marker"]).loc["marker[pos]", "hr"] == pytest.approx(
        2.0, rel=0.1
    )


def test_planted_interaction_recovered():
    # HR(marker) = 1.5, HR(arm | neg) = 1.0, interaction 0.5 -> HR(arm | pos) = 0.5
    d = _sim(1500, 7, inter=(1.5, 1.0, 0.5))
    res = sv.treatment_interaction(d, "time", "event", "arm", "marker")
    row = res.table.loc["arm[experimental]:marker[pos]"]
    assert row["hr_low"] <= 0.5 <= row["hr_high"]
    assert res.interaction_p_value < 0.01
    sub = res.subgroups.set_index("level")
    assert sub.loc["pos", "hr_low"] <= 0.5 <= sub.loc["pos", "hr_high"]
    assert sub.loc["neg", "hr_low"] <= 1.0 <= sub.loc["neg", "hr_high"]
    # model-based subgroup HR in the reference level equals the arm main effect
    assert sub.loc["neg", "hr"] == pytest.approx(res.table.loc["arm[experimental]", "hr"])
    # LR test against a direct reduced fit
    red = sv.cox_fit(
        d.assign(a=(d["arm"] == "experimental").astype(float)), "time", "event", ["a", "marker"]
    )
    assert res.interaction_test.loc["likelihood-ratio", "statistic"] == pytest.approx(
        2 * (res.model.loglik - red.loglik), rel=1e-8
    )
    f = res.forest
    assert list(f["variable"].unique()) == ["All patients", "marker", "cancer_type"]
    ax = res.plot_forest()
    assert len(ax.get_yticklabels()) == len(f)


def test_null_interaction_not_significant_too_often():
    rej = sum(
        sv.treatment_interaction(
            _sim(300, 100 + s, inter=(1.5, 0.7, 1.0)), "time", "event", "arm", "marker"
        ).interaction_p_value
        < 0.05
        for s in range(40)
    )
    assert rej <= 6  # binomial(40, 0.05): P(X > 6) < 0.02


# ============================================================================ stratify
@pytest.fixture(scope="module")
def sim_scores():
    d = _sim(300, 11, inter=(2.0, 1.0, 0.5))
    rng = np.random.default_rng(5)
    score = (d["marker"] == "pos") * 1.0 + rng.normal(0, 0.7, len(d))
    oof = pd.concat(
        [
            pd.DataFrame(
                {
                    "patient_id": d["patient_id"],
                    "repeat": r,
                    "score": score + rng.normal(0, 0.05, len(d)),
                }
            )
            for r in range(3)
        ]
    )
    return d, oof


def test_stratify_cross_fitted_cutoffs(sim_scores):
    d, oof = sim_scores
    res = sv.stratify(d, oof, "time", "event", cutoff="median", n_folds=5, seed=1)
    a = res.assignments
    mean_score = oof.groupby("patient_id")["score"].mean()
    np.testing.assert_allclose(a["score"], mean_score.loc[a["patient_id"]].to_numpy())
    # each patient's cut-off is the median of the other folds' scores only
    for f in range(5):
        others = a.loc[a["fold"] != f, "score"]
        np.testing.assert_allclose(a.loc[a["fold"] == f, "cutoff"], np.median(others))
    assert ((a["score"] > a["cutoff"]) == (a["risk_group"] == "high")).all()
    # changing the scores of fold-0 patients leaves their own cut-off unchanged
    fold0 = set(a.loc[a["fold"] == 0, "patient_id"])
    oof2 = oof.copy()
    oof2.loc[oof2["patient_id"].isin(fold0), "score"] += 10
    res2 = sv.stratify(d, oof2, "time", "event", cutoff="median", n_folds=5, seed=1)
    a2 = res2.assignments.set_index("patient_id")
    np.testing.assert_allclose(
        a2.loc[sorted(fold0), "cutoff"], a.set_index("patient_id").loc[sorted(fold0), "cutoff"]
    )
    # same seed -> same folds; different seed -> different folds
    assert (
        res.assignments["fold"].tolist()
        == sv.stratify(d, oof, "time", "event", seed=1).assignments["fold"].tolist()
    )
    assert (
        res.assignments["fold"].tolist()
        != sv.stratify(d, oof, "time", "event", seed=2).assignments["fold"].tolist()
    )


def test_stratify_cutoff_kinds(sim_scores):
    d, oof = sim_scores
    s = oof.groupby("patient_id")["score"].mean()
    ter = sv.stratify(d, s, "time", "event", cutoff="tertiles")
    assert ter.groups == ("low", "middle", "high")
    assert "trend" in ter.logrank.index
    assert list(ter.cox_unadjusted.index) == ["risk_group[middle]", "risk_group[high]"]
    prev = sv.stratify(d, s, "time", "event", cutoff="prevalence", prevalence=0.25)
    frac_high = (prev.assignments["risk_group"] == "high").mean()
    assert 0.15 < frac_high < 0.35
    q = sv.stratify(d, s, "time", "event", cutoff="quantile", quantile=0.75)
    assert q.cutoffs["quantile"].eq(0.75).all()
    fixed = sv.stratify(d, s, "time", "event", cutoff=0.5)
    assert ((fixed.assignments["score"] > 0.5) == (fixed.assignments["risk_group"] == "high")).all()
    p = sv.stratify(d, 1 / (1 + np.exp(-s)), "time", "event", cutoff="probability", probability=0.6)
    assert p.cutoff_method == "probability (0.6)"
    with pytest.raises(ValueError, match="allowed"):
        sv.stratify(d, s, "time", "event", cutoff="best")
    with pytest.raises(SchemaError, match=r"\[0, 1\]"):
        sv.stratify(d, s * 10, "time", "event", cutoff="probability")
    folds = pd.Series(np.arange(len(d)) % 3, index=d["patient_id"])
    ex = sv.stratify(d, s, "time", "event", folds=folds)
    assert sorted(ex.assignments["fold"].unique()) == [0, 1, 2]


def test_stratify_full_result(sim_scores):
    d, oof = sim_scores
    d = d.copy()
    d["age"] = np.linspace(40, 80, len(d))
    d.loc[0, "time"] = np.nan
    d.loc[1, "age"] = np.nan
    oof = oof[oof["patient_id"] != "S0002"]
    oof = pd.concat([oof, pd.DataFrame({"patient_id": ["GHOST"], "repeat": [0], "score": [0.1]})])
    res = sv.stratify(d, oof, "time", "event", arm="arm", covariates=["age"])
    ex = res.exclusions.set_index("patient_id")
    assert "missing time" in ex.loc["S0000", "reason"]
    assert "no score" in ex.loc["S0002", "reason"]
    assert "not in the clinical table" in ex.loc["GHOST", "reason"]
    assert "adjusted Cox" in ex.loc["S0001", "reason"]
    assert res.n == len(d) - 2
    assert set(res.assignments["patient_id"]).isdisjoint({"S0000", "S0002"})
    assert res.cox_unadjusted is not None and res.cox_adjusted is not None
    assert "age" in res.cox_adjusted.index
    assert res.interaction is not None and res.interaction.interaction_p_value < 0.2
    assert set(res.concordance.index) == {"harrell", "uno"}
    assert res.rmst["term"].str.startswith("difference").sum() == 1
    blob = json.dumps(res.to_dict(), allow_nan=False)
    back = json.loads(blob)
    assert back["n"] == res.n and back["logrank"][0]["statistic"] == pytest.approx(
        res.logrank.iloc[0]["statistic"]
    )
    assert "<table" in res._repr_html_()
    disp = res.km_plot()
    assert disp.table_ax_ is not disp.ax_ and disp.figure_ is disp.ax_.figure
    shown = [int(t.get_text()) for t in disp.table_ax_.texts]
    assert shown == list(disp.at_risk_.to_numpy().ravel())
    assert disp.at_risk_.iloc[:, 0].sum() == res.n
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    disp2 = res.km_plot(ax=ax)
    assert disp2.ax_ is ax
    plt.close("all")


def test_stratify_reports_ph_tests_of_its_cox_models(sim_scores):
    """cox.zph of the unadjusted, adjusted and interaction models, each equal to the model's
    own ph_test; risk groups and the interaction are one term each (k - 1 df)."""
    d, oof = sim_scores
    d = d.assign(age=np.linspace(40, 80, len(d)))
    s = oof.groupby("patient_id")["score"].mean()
    res = sv.stratify(d, s, "time", "event", cutoff="tertiles", arm="arm", covariates=["age"])
    ph = res.ph_test
    assert list(ph["model"].unique()) == ["unadjusted", "adjusted", "interaction"]
    u = ph[ph["model"] == "unadjusted"].set_index("term")
    assert list(u.index) == ["risk_group", "GLOBAL"] and u.loc["risk_group", "df"] == 2
    a = res.assignments.rename(columns={"time": "t", "event": "e"})
    direct = sv.cox_fit(a, "t", "e", ["risk_group"]).ph_test()
    np.testing.assert_allclose(u["statistic"], direct["statistic"], rtol=1e-12)
    i = ph[ph["model"] == "interaction"].set_index("term")
    assert i.loc["risk_group", "df"] == 2 and i.loc["arm[experimental]:risk_group", "df"] == 2
    assert i.loc["GLOBAL", "df"] == 5
    assert json.loads(json.dumps(res.to_dict(), allow_nan=False))["ph_test"][0]["model"] == (
        "unadjusted"
    )


def test_stratify_flags_non_proportional_hazards():
    """Crossing hazards (the high-score group dies early, then the survivors do better): the
    GLOBAL test rejects and a note says so; under proportional hazards it rarely does."""
    rng = np.random.default_rng(3)
    n = 600
    hi = rng.integers(0, 2, n)
    early = rng.exponential(1 / np.where(hi == 1, 1.5, 0.3))
    late = 1 + rng.exponential(1 / np.where(hi == 1, 0.05, 0.3))
    t = np.where(hi == 1, np.where(rng.random(n) < 0.6, early, late), early)
    c = rng.uniform(0, 6, n)
    d = pd.DataFrame({"patient_id": [f"N{i}" for i in range(n)], "time": np.minimum(t, c),
                      "event": (t <= c).astype(int)})  # fmt: skip
    score = pd.Series(hi + rng.normal(0, 0.3, n), index=d["patient_id"].to_numpy())
    res = sv.stratify(d, score, "time", "event", cutoff=0.5)
    g = res.ph_test.set_index(["model", "term"]).loc[("unadjusted", "GLOBAL")]
    assert g["p_value"] < 1e-3
    assert any("proportional hazards questionable" in note for note in res.notes)
    rejections = 0
    for seed in range(20):
        dd = _sim(300, 500 + seed, hr=2.0)
        pos = (dd["marker"] == "pos").to_numpy(dtype=float)
        sc = pd.Series(
            pos + np.random.default_rng(seed).normal(0, 0.3, 300), index=dd["patient_id"].to_numpy()
        )
        r = sv.stratify(dd, sc, "time", "event", cutoff=0.5)
        rejections += r.ph_test.iloc[-1]["p_value"] < 0.05
    assert rejections <= 4  # binomial(20, 0.05): P(X > 4) < 0.003


def test_stratify_optimal_is_exploratory_and_corrected(sim_scores):
    d, oof = sim_scores
    res = sv.stratify(d, oof, "time", "event", cutoff="optimal")
    assert res.exploratory and any("EXPLORATORY" in n for n in res.notes)
    row = res.optimal.iloc[0]
    assert row["p_value"] >= row["p_value_naive"]
    # the selected statistic is the largest over all candidate splits (direct check)
    s = res.assignments["score"].to_numpy()
    t, e = res.assignments["time"].to_numpy(), res.assignments["event"].to_numpy()
    best = 0.0
    us = np.unique(s)
    for c in us[
        (np.searchsorted(np.sort(s), us, side="right") / len(s) >= 0.1)
        & (np.searchsorted(np.sort(s), us, side="right") / len(s) <= 0.9)
    ][::7]:
        chi, *_ = naive_logrank(t, e, (s > c).astype(int))
        best = max(best, math.sqrt(chi))
    assert row["statistic"] >= best - 1e-9


def test_maxstat_corrected_p_is_calibrated_under_null():
    rej_naive = rej = 0
    rng = np.random.default_rng(0)
    for _ in range(60):
        n = 150
        t = rng.exponential(1, n)
        c = rng.exponential(2, n)
        d = pd.DataFrame(
            {"time": np.minimum(t, c), "event": (t <= c).astype(int), "score": rng.normal(size=n)}
        )
        r = sv.maxstat_cutpoint(d, "time", "event", "score").iloc[0]
        rej += r["p_value"] < 0.05
        rej_naive += r["p_value_naive"] < 0.05
    assert rej <= 7  # nominal 5 % of 60 = 3; binomial tail
    assert rej_naive > rej  # the naive p-value of a searched cut-point is anti-conservative


def test_stratify_with_cohort_leaves_it_unchanged_and_lists_exclusions():
    tc = pytest.importorskip("tario_clinical")
    trial = tc.simulate_trial(n_patients=160, seed=3, n_genes=50)
    cohort = trial.cohort()
    pids = cohort.patient_ids
    scores = pd.Series(trial.truth.latent["P00"].to_numpy(), index=trial.truth.latent.index)
    scores.iloc[:3] = np.nan
    log_before, clinical_before = cohort.exclusions.copy(), cohort.clinical.copy()
    res = sv.stratify(cohort, scores, arm="arm")
    pd.testing.assert_frame_equal(cohort.exclusions, log_before)
    pd.testing.assert_frame_equal(cohort.clinical, clinical_before)
    assert len(res.exclusions) >= 3
    assert set(scores.index[:3]) <= set(res.exclusions["patient_id"])
    cohort.record_exclusions(res.exclusions, patients_only=True)  # the cohort's owner records
    logged = cohort.exclusions.iloc[len(log_before) :]
    assert set(res.exclusions["patient_id"]) == set(logged["patient_id"])
    assert set(logged["analysis"]) == set(res.exclusions["analysis"])
    assert res.n + len(res.exclusions) == len(pids)
    assert res.km_plot().figure_ is not None


# ============================================================================ errors
def test_errors_name_columns_and_rows(veterans):
    bad = veterans.head(20).copy()
    bad["pid"] = range(20)
    bad.loc[3, "time"] = np.nan
    with pytest.raises(SchemaError, match="'time'.*missing"):
        sv.km(bad, "time", "event")
    bad = veterans.head(20).copy()
    bad.loc[2, "event"] = 2
    with pytest.raises(SchemaError, match="'event'.*allowed"):
        sv.logrank(bad, "time", "event", "Treatment")
    with pytest.raises(SchemaError, match="not in the table"):
        sv.cox(veterans, "time", "event", ["nope"])
    with pytest.raises(ValueError, match="conf_type"):
        sv.km(veterans, "time", "event", conf_type="arcsine")
    neg = veterans.head(10).copy()
    neg.loc[0, "time"] = -1
    with pytest.raises(SchemaError, match="negative"):
        sv.km(neg, "time", "event")


def test_polars_input(veterans):
    pl = pytest.importorskip("polars")
    d = pl.from_pandas(veterans[["time", "event", "Karnofsky_score"]])
    assert sv.cox(d, "time", "event", ["Karnofsky_score"]).shape == (1, 7)


def test_oof_table_with_targets_and_probability_column(sim_scores):
    d, oof = sim_scores
    multi = pd.concat([oof.assign(target="EGFR"), oof.assign(target="KRAS", score=-oof["score"])])
    multi["probability"] = 1 / (1 + np.exp(-multi["score"]))
    with pytest.raises(SchemaError, match="target="):
        sv.stratify(d, multi, "time", "event")
    a = sv.stratify(d, multi, "time", "event", target="KRAS").assignments
    expect = -oof.groupby("patient_id")["score"].mean()
    np.testing.assert_allclose(a["score"], expect.loc[a["patient_id"]].to_numpy())
    p = sv.stratify(d, multi, "time", "event", target="EGFR", cutoff="probability").assignments
    prob = multi[multi["target"] == "EGFR"].groupby("patient_id")["probability"].mean()
    np.testing.assert_allclose(p["score"], prob.loc[p["patient_id"]].to_numpy())


@pytest.mark.slow
def test_decode_then_stratify_end_to_end():
    """The notebook flow of the issue: tc.decode -> survival.stratify -> km_plot."""
    tc = pytest.importorskip("tario_clinical")
    trial = tc.simulate_trial(n_patients=200, seed=2, n_genes=60)
    cohort = trial.cohort()
    res = tc.decode(
        trial.representations,
        cohort,
        targets=["STK11"],
        n_repeats=1,
        seed=0,
        p_method="delong",  # the decoders' inference is not what this test is about
        ci_method="delong",
    )
    strat = tc.survival.stratify(cohort, res.oof, arm="arm", covariates=["age"])
    assert strat.n + len(
        strat.exclusions[strat.exclusions["analysis"] == "survival.stratify(os_time)"]
    ) == len(cohort.clinical)
    disp = strat.km_plot()
    assert disp.at_risk_.iloc[:, 0].sum() == strat.n
    json.dumps(strat.to_dict(), allow_nan=False)
