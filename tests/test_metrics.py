"""Tests of tario_clinical/metrics.py against reference implementations and simulations."""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score
from statsmodels.stats.proportion import proportion_confint

from tario_clinical import metrics as M
from tario_clinical.errors import AnalysisError, SchemaError


def _data(n=300, shift=0.8, seed=0, ties=False):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    s = rng.normal(size=n) + shift * y
    if ties:
        s = np.round(s, 1)
    return y, s


# ------------------------------------------------------------ independent O(n^2) DeLong
def _psi(x, y):
    return (x[:, None] > y[None, :]) + 0.5 * (x[:, None] == y[None, :])


def _delong_slow(y, scores):
    """DeLong et al. (1988) written from the paper with explicit pairwise kernels (O(n^2))."""
    pos, neg = scores[:, y == 1], scores[:, y == 0]
    m, n = pos.shape[1], neg.shape[1]
    k = scores.shape[0]
    v10 = np.array([_psi(pos[r], neg[r]).mean(axis=1) for r in range(k)])
    v01 = np.array([_psi(pos[r], neg[r]).mean(axis=0) for r in range(k)])
    auc = v10.mean(axis=1)
    s10 = np.array(
        [
            [np.sum((v10[a] - auc[a]) * (v10[b] - auc[b])) / (m - 1) for b in range(k)]
            for a in range(k)
        ]
    )
    s01 = np.array(
        [
            [np.sum((v01[a] - auc[a]) * (v01[b] - auc[b])) / (n - 1) for b in range(k)]
            for a in range(k)
        ]
    )
    return auc, s10 / m + s01 / n


@pytest.mark.parametrize("ties", [False, True])
def test_delong_matches_quadratic_reference(ties):
    y, s = _data(400, ties=ties, seed=3)
    rng = np.random.default_rng(5)
    s2 = s + rng.normal(size=s.size)
    if ties:
        s2 = np.round(s2, 1)
    auc, cov = _delong_slow(y, np.vstack([s, s2]))
    r = M.auroc_ci(y, s)
    assert abs(r.auroc - auc[0]) < 1e-12
    assert abs(r.se**2 - cov[0, 0]) < 1e-9
    z = stats.norm.ppf(0.975)
    assert abs(r.low - (auc[0] - z * np.sqrt(cov[0, 0]))) < 1e-9
    t = M.delong_test(y, s, s2)
    var = cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]
    assert abs(t.statistic - (auc[0] - auc[1]) / np.sqrt(var)) < 1e-9
    assert abs(t.p_value - 2 * stats.norm.sf(abs(t.statistic))) < 1e-12


def test_auroc_matches_sklearn_with_ties():
    y, s = _data(500, ties=True, seed=1)
    assert M.auroc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)


def test_bootstrap_agrees_with_delong_for_large_n_and_is_seeded():
    y, s = _data(3000, shift=1.0, seed=2)
    d = M.auroc_ci(y, s)
    b = M.auroc_ci(y, s, method="bootstrap", n_bootstrap=1000, seed=7)
    # Monte-Carlo error of 1000 bootstrap quantiles ~0.002; large-n normal theory agrees
    assert abs(d.low - b.low) < 0.006 and abs(d.high - b.high) < 0.006
    assert abs(d.se - b.se) / d.se < 0.1
    assert M.auroc_ci(y, s, method="bootstrap", n_bootstrap=1000, seed=7) == b
    assert M.auroc_ci(y, s, method="bootstrap", n_bootstrap=1000, seed=8) != b


def test_delong_ci_covers_truth_in_simulation():
    # binormal model: true AUROC = Phi(shift / sqrt(2))
    truth = stats.norm.cdf(1.0 / np.sqrt(2))
    hits = 0
    for seed in range(200):
        y, s = _data(120, shift=1.0, seed=seed)
        r = M.auroc_ci(y, s)
        hits += r.low <= truth <= r.high
    assert 0.90 <= hits / 200 <= 0.99  # nominal 0.95; binomial sd over 200 sims ~0.015


def test_auprc_brier_match_sklearn():
    y, s = _data(400, ties=True, seed=4)
    assert M.auprc(y, s) == pytest.approx(average_precision_score(y, s), abs=1e-12)
    p = 1 / (1 + np.exp(-s))
    assert M.brier(y, p) == pytest.approx(brier_score_loss(y, p), abs=1e-12)


def test_calibration_matches_statsmodels_glm():
    y, s = _data(600, seed=6)
    p = 1 / (1 + np.exp(-(0.3 + 1.7 * s)))
    lp = np.log(p / (1 - p))
    ref_slope = sm.GLM(y, sm.add_constant(lp), family=sm.families.Binomial()).fit().params[1]
    ref_int = sm.GLM(y, np.ones_like(lp), family=sm.families.Binomial(), offset=lp).fit().params[0]
    c = M.calibration(y, p)
    assert c.slope == pytest.approx(ref_slope, abs=1e-7)
    assert c.intercept == pytest.approx(ref_int, abs=1e-7)


def test_calibration_of_true_probabilities_is_ideal():
    rng = np.random.default_rng(0)
    p = rng.uniform(0.05, 0.95, 20000)
    y = (rng.random(p.size) < p).astype(int)
    c = M.calibration(y, p)
    assert abs(c.intercept) < 0.05 and abs(c.slope - 1) < 0.06


def test_net_benefit_hand_computed():
    y = np.array([1, 1, 0, 0, 0])
    p = np.array([0.9, 0.4, 0.6, 0.1, 0.2])
    nb = M.net_benefit(y, p, thresholds=[0.5])
    # treat p >= 0.5: TP=1, FP=1 -> 1/5 - 1/5 * 1 = 0; treat all: 2/5 - 3/5 = -0.2
    assert nb.loc[0, "net_benefit"] == pytest.approx(0.0)
    assert nb.loc[0, "treat_all"] == pytest.approx(-0.2)


def test_permutation_pvalue():
    y, s = _data(200, shift=1.5, seed=1)
    assert M.permutation_pvalue(y, s, n_permutations=999, seed=0) == pytest.approx(0.001)
    # under the null the p-value is uniform: check the rejection rate at 0.1
    rej = 0
    for seed in range(100):
        y0, s0 = _data(60, shift=0.0, seed=100 + seed)
        rej += M.permutation_pvalue(y0, s0, n_permutations=199, seed=seed) <= 0.1
    assert rej <= 20  # expected 10; binomial(100, 0.1) upper 0.999 quantile ~20
    assert M.permutation_pvalue(y, s, seed=3) == M.permutation_pvalue(y, s, seed=3)


def test_multiclass_matches_sklearn_ovr():
    rng = np.random.default_rng(0)
    lab = rng.integers(0, 3, 300)
    sc = rng.random((300, 3)) + np.eye(3)[lab] * 0.3
    sc = sc / sc.sum(1, keepdims=True)
    tab = M.multiclass_auroc(lab, sc)
    per = roc_auc_score(lab, sc, multi_class="ovr", average=None)
    np.testing.assert_allclose(tab["auroc"].to_numpy()[:3], per, atol=1e-12)
    assert tab.iloc[-1]["class"] == "macro"
    assert tab.iloc[-1]["auroc"] == pytest.approx(
        roc_auc_score(lab, sc, multi_class="ovr", average="macro")
    )
    assert tab.iloc[-1]["low"] < tab.iloc[-1]["auroc"] < tab.iloc[-1]["high"]


def test_wilson_matches_statsmodels():
    for k, n in [(0, 10), (3, 10), (45, 120), (120, 120)]:
        lo, hi = M.wilson_ci(k, n)
        rlo, rhi = proportion_confint(k, n, method="wilson")
        assert lo == pytest.approx(rlo, abs=1e-12) and hi == pytest.approx(rhi, abs=1e-12)


def test_triage_threshold_meets_target_on_training_and_summary():
    y, s = _data(500, shift=1.2, seed=9)
    t = M.triage_threshold(y, s, sensitivity=0.9)
    sens = np.mean(s[y == 1] >= t)
    assert sens >= 0.9
    # the highest such threshold: one step higher would violate the target
    higher = np.unique(s)[np.unique(s) > t]
    assert np.mean(s[y == 1] >= higher[0]) < 0.9
    t2 = M.triage_threshold(y, s, npv=0.9)
    out = s < t2
    assert np.mean(y[out] == 0) >= 0.9
    tab = M.triage_summary(y, s, t).set_index("metric")
    assert tab.loc["tests_avoided", "estimate"] == pytest.approx(np.mean(s < t))
    assert tab.loc["sensitivity", "estimate"] == pytest.approx(sens)
    assert tab.loc["npv", "low"] <= tab.loc["npv", "estimate"] <= tab.loc["npv", "high"]


def test_errors_name_the_problem():
    with pytest.raises(AnalysisError, match="both classes"):
        M.auroc_ci([1, 1, 1], [0.1, 0.2, 0.3])
    with pytest.raises(SchemaError, match="NaN"):
        M.auroc_ci([0, 1, 1], [0.1, np.nan, 0.3])
    with pytest.raises(SchemaError, match=r"only 0 and 1.*\[2\]"):
        M.auroc_ci([0, 1, 2], [0.1, 0.2, 0.3])
    with pytest.raises(SchemaError, match=r"method must be one of \['delong', 'bootstrap'\]"):
        M.auroc_ci([0, 1], [0.1, 0.2], method="wald")
    with pytest.raises(SchemaError, match="exactly one"):
        M.triage_threshold([0, 1], [0.1, 0.2])


def test_perfect_separation_documented_behaviour():
    y = np.r_[np.zeros(20), np.ones(20)].astype(int)
    s = np.r_[np.arange(20), 100 + np.arange(20)].astype(float)
    r = M.auroc_ci(y, s)
    assert r.auroc == 1.0 and r.low == r.high == 1.0 and r.se == 0.0
    with pytest.raises(AnalysisError, match="separated"):
        M.calibration(y, 1 / (1 + np.exp(-(s - 60))))
