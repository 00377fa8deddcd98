"""Treatment effect along a continuous score (survival/effect_curve.py): STEPP windows and the
arm x natural-spline Cox model.

References: the window HRs are checked against :func:`tario_clinical.survival.cox` on each
window's patients and, with the spline curve, band and likelihood-ratio test, against R
``survival::coxph`` (Efron ties) with ``splines::ns`` (skipped without ``Rscript``) and against
statsmodels ``PHReg`` on the same design matrix. Simulations are seeded; their tolerances are
stated where they are used.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

import tario_clinical as tc  # noqa: E402
from tario_clinical.errors import AnalysisError, SchemaError  # noqa: E402
from tario_clinical.survival import effect_curve as ec  # noqa: E402

RSCRIPT = shutil.which("Rscript")


def simulate(seed: int, n: int = 200, *, slope: float = 0.0, prog: float = 0.5, hr: float = 0.7):
    """Two-arm trial, score ~ N(0, 1): log hazard = prog * score + arm * (log hr + slope * score);
    exponential times (control median about 8 at score 0), uniform censoring on [12, 36]."""
    rng = np.random.default_rng(seed)
    s = rng.normal(size=n)
    a = rng.integers(0, 2, n)
    lh = prog * s + a * (np.log(hr) + slope * s)
    t = rng.exponential(12 / np.exp(lh))
    c = rng.uniform(12, 36, n)
    return pd.DataFrame(
        {
            "patient_id": [f"P{i:04d}" for i in range(n)],
            "score": s,
            "arm": np.where(a == 1, "experimental", "control"),
            "os_time": np.minimum(t, c),
            "os_event": (t <= c).astype(int),
        }
    )


@pytest.fixture(scope="module")
def tied():
    """300 patients, times rounded to 0.1 (over 100 tied event times: Efron matters)."""
    df = simulate(3, 300, slope=-0.6)
    return df.assign(os_time=df["os_time"].round(1))


# =============================================================================== STEPP
def test_windows_follow_r1_and_r2():
    df = simulate(0, 200)
    res = ec.stepp(df, "score", r1=40, r2=50, n_permutations=19)
    w = res.table
    assert (w["n"] == 50).all()  # continuous scores: no ties, every window has r2 patients
    s = np.sort(df["score"].to_numpy())
    assert w["score_low"].iloc[0] == s[0] and w["score_high"].iloc[-1] == s[-1]
    shared = [
        int(((df["score"] >= lo1) & (df["score"] <= hi1) & (df["score"] >= lo2)).sum())
        for lo1, hi1, lo2 in zip(w["score_low"], w["score_high"], w["score_low"].iloc[1:])
    ]
    assert shared[:-1] == [40] * (len(shared) - 1)  # slide by r2 - r1 = 10 patients
    assert shared[-1] >= 40  # the last window is anchored at the highest score
    assert len(w) == 16 and res.r1 == 40 and res.r2 == 50


def test_window_hrs_equal_cox_on_the_window_patients(tied):
    """Each window's HR, interval and p are those of tc.survival.cox on its patients."""
    res = ec.stepp(tied, "score", n_permutations=19)
    for r in res.table.itertuples():
        sub = tied[(tied["score"] >= r.score_low) & (tied["score"] <= r.score_high)]
        sub = sub.assign(exp=(sub["arm"] == "experimental").astype(float))
        ref = tc.survival.cox(sub, "os_time", "os_event", ["exp"]).loc["exp"]
        assert r.n == len(sub) and r.events == int(sub["os_event"].sum())
        np.testing.assert_allclose(
            [r.hr, r.hr_low, r.hr_high, r.p_value],
            ref[["hr", "hr_low", "hr_high", "p_value"]].to_numpy(float),
            rtol=1e-12,
        )
    all_ = tc.survival.cox(
        tied.assign(exp=(tied["arm"] == "experimental").astype(float)),
        "os_time",
        "os_event",
        ["exp"],
    ).loc["exp"]
    assert res.overall["hr"] == pytest.approx(all_["hr"], rel=1e-12)


def test_permutation_kernel_matches_the_cox_solver(tied):
    """The vectorised Newton solver of the permutations gives the public solver's log HR and
    SE on the observed and on permuted windows (1e-9: both stop at steps below 1e-10)."""
    d = ec._data(tied, "score", "os_time", "os_event", "arm", None)
    member, _ = ec._windows(d.score, 60, 80)
    rng = np.random.default_rng(0)
    perm = rng.permutation(d.score.size)
    rows = np.vstack([member, member[:, perm]])
    fast = ec._window_log_hr(rows, ec._time_order(d.time, d.event, d.a))
    for m, (b, se) in zip(rows, fast):
        sub = tied[m].assign(exp=d.a[m])
        ref = tc.survival.cox(sub, "os_time", "os_event", ["exp"]).loc["exp"]
        assert b == pytest.approx(ref["coef"], abs=1e-9)
        assert se == pytest.approx(ref["se"], rel=1e-9)


def test_kernel_marks_windows_without_events_in_an_arm():
    df = simulate(1, 60)
    d = ec._data(df, "score", "os_time", "os_event", "arm", None)
    no_exp_events = (d.a == 0) | (d.event == 0)
    res = ec._window_log_hr(no_exp_events[None, :], ec._time_order(d.time, d.event, d.a))
    assert np.isnan(res).all()


def test_window_without_events_in_an_arm_is_an_error_with_a_remedy():
    df = simulate(2, 80)
    low = df["score"] < df["score"].quantile(0.3)
    df.loc[low & (df["arm"] == "experimental"), "os_event"] = 0
    with pytest.raises(AnalysisError, match=r"STEPP window 1 .*use larger windows \(r2\)"):
        ec.stepp(df, "score", r1=15, r2=20, n_permutations=19)


def test_permutation_p_is_seeded():
    df = simulate(4, 150, slope=-0.3)
    a = ec.stepp(df, "score", n_permutations=99, seed=5)
    b = ec.stepp(df, "score", n_permutations=99, seed=5)
    c = ec.stepp(df, "score", n_permutations=99, seed=6)
    assert a.p_value == b.p_value
    assert a.test["statistic"].iloc[0] == c.test["statistic"].iloc[0]
    assert 0 < a.p_value <= 1 and (a.p_value * 100) == pytest.approx(round(a.p_value * 100))


# =============================================================================== spline
def test_spline_basis_is_natural_linear_beyond_the_outer_knots():
    knots = np.array([-1.0, 0.0, 0.5, 1.5])
    x = np.linspace(2.0, 5.0, 7)
    b = ec.spline_basis(x, knots)
    assert np.allclose(np.diff(b, n=2, axis=0), 0, atol=1e-12)  # linear beyond t_k
    assert np.allclose(ec.spline_basis(np.array([-3.0, -2.0]), knots)[:, 1:], 0)


def test_spline_curve_is_invariant_to_rescaling_the_score(tied):
    a = ec.spline_interaction(tied, "score")
    b = ec.spline_interaction(tied.assign(score=3 * tied["score"] + 7), "score")
    np.testing.assert_allclose(a.table["log_hr"], b.table["log_hr"], rtol=1e-8, atol=1e-10)
    assert a.test["statistic"].iloc[0] == pytest.approx(b.test["statistic"].iloc[0], rel=1e-8)


def test_spline_matches_statsmodels_phreg_on_the_same_design(tied):
    """statsmodels PHReg (Efron ties) on our design matrix: coefficients, log-likelihood and
    the interaction LR statistic."""
    from statsmodels.duration.hazard_regression import PHReg

    sp = ec.spline_interaction(tied, "score", knots=(0.05, 0.35, 0.65, 0.95))
    kn = sp.knots["score"].to_numpy()
    a = (tied["arm"] == "experimental").to_numpy(float)
    basis = ec.spline_basis(tied["score"].to_numpy(), kn)
    t, e = tied["os_time"].to_numpy(), tied["os_event"].to_numpy()
    fits = []
    for x in (np.column_stack([a, basis, a[:, None] * basis]), np.column_stack([a, basis])):
        fits.append(PHReg(t, x, status=e, ties="efron").fit(tol=1e-12, maxiter=200))
    np.testing.assert_allclose(sp.model.table["coef"].to_numpy(), fits[0].params, atol=1e-6)
    assert sp.model.loglik == pytest.approx(fits[0].llf, rel=1e-10)
    lr = 2 * (fits[0].llf - fits[1].llf)
    assert sp.test["statistic"].iloc[0] == pytest.approx(lr, rel=1e-7)
    assert sp.test["df"].iloc[0] == 3


_R = r"""
suppressMessages({library(survival); library(splines)})
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1]); kn <- read.csv(args[2])$v; g <- read.csv(args[3])$v
win <- read.csv(args[4])
nk <- length(kn)
B <- ns(d$score, knots = kn[2:(nk - 1)], Boundary.knots = kn[c(1, nk)])
d$a <- as.numeric(d$arm == "experimental"); a <- d$a
ctl <- coxph.control(eps = 1e-12, iter.max = 200, toler.chol = 1e-14)
full <- coxph(Surv(os_time, os_event) ~ a + B + I(a * B), data = d, ties = "efron", control = ctl)
red <- coxph(Surv(os_time, os_event) ~ a + B, data = d, ties = "efron", control = ctl)
p <- ncol(B); idx <- c(1, (p + 2):(2 * p + 1))
C <- cbind(1, predict(B, g))
out <- function(k, v) cat(k, format(v, digits = 17), "\n")
out("lr", 2 * (full$loglik[2] - red$loglik[2])); out("df", p)
out("est", C %*% coef(full)[idx]); out("se", sqrt(rowSums((C %*% vcov(full)[idx, idx]) * C)))
for (i in seq_len(nrow(win))) {
  m <- d$score >= win$score_low[i] & d$score <= win$score_high[i]
  f <- coxph(Surv(os_time, os_event) ~ a, data = d[m, ], ties = "efron", control = ctl)
  out(paste0("w", i), c(sum(m), coef(f), sqrt(vcov(f)[1, 1])))
}
"""


@pytest.mark.skipif(
    RSCRIPT is None,
    reason="R reference skipped: no Rscript (apt-get install -y --no-install-recommends "
    "r-base-core r-cran-survival); the statsmodels PHReg reference still runs",
)
def test_against_r_coxph_with_ns(tied, tmp_path):
    """R survival::coxph (Efron) with splines::ns on the same knots: the treatment log HR curve
    and its delta-method SE (1e-9), the interaction LR statistic and df, and every STEPP
    window's log HR and SE (1e-9)."""
    sp = ec.spline_interaction(
        tied, "score", knots=(0.05, 0.35, 0.65, 0.95), grid=np.linspace(-1.5, 1.5, 7)
    )
    st = ec.stepp(tied, "score", n_permutations=19)
    tied.to_csv(tmp_path / "d.csv", index=False)
    pd.DataFrame({"v": sp.knots["score"]}).to_csv(tmp_path / "k.csv", index=False)
    pd.DataFrame({"v": sp.table["score"]}).to_csv(tmp_path / "g.csv", index=False)
    st.table[["score_low", "score_high"]].to_csv(tmp_path / "w.csv", index=False)
    (tmp_path / "ref.R").write_text(_R)
    r = subprocess.run(
        [RSCRIPT, str(tmp_path / "ref.R")]
        + [str(tmp_path / f) for f in ("d.csv", "k.csv", "g.csv", "w.csv")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    ref = {ln.split()[0]: np.array(ln.split()[1:], float) for ln in r.stdout.strip().splitlines()}
    np.testing.assert_allclose(sp.table["log_hr"], ref["est"], atol=1e-9)
    np.testing.assert_allclose(sp.table["se"], ref["se"], rtol=1e-9)
    assert sp.test["statistic"].iloc[0] == pytest.approx(ref["lr"][0], rel=1e-9)
    assert sp.test["df"].iloc[0] == int(ref["df"][0])
    w = np.array([ref[f"w{i + 1}"] for i in range(len(st.table))])
    assert (st.table["n"].to_numpy() == w[:, 0]).all()
    np.testing.assert_allclose(np.log(st.table["hr"]), w[:, 1], atol=1e-9)


# =============================================================================== simulations
def test_planted_benefit_rising_with_the_score():
    """log HR = log 0.7 - 0.8 * score: the benefit grows with the score, so the HR curve
    falls; both interaction tests reject (seeded; at n = 300 the power is near 1)."""
    df = simulate(11, 300, slope=-0.8)
    curve = tc.survival.treatment_effect_curve(df, "score", n_permutations=199, seed=0)
    q = curve.spline.at_quantiles
    assert q["log_hr"].is_monotonic_decreasing
    assert q["hr"].iloc[-1] < 0.5 < 1 < q["hr"].iloc[0] * 1.6
    assert curve.spline.p_value < 1e-3
    assert curve.stepp.p_value <= 0.01
    w = curve.stepp.table
    assert w["hr"].iloc[-1] < w["hr"].iloc[0]
    assert np.corrcoef(w["score_median"], np.log(w["hr"]))[0, 1] < -0.8


def test_planted_harm_rising_with_the_score_gives_a_rising_curve():
    df = simulate(12, 300, slope=0.8, hr=1.0)
    curve = tc.survival.treatment_effect_curve(df, "score", n_permutations=199, seed=0)
    assert curve.spline.at_quantiles["log_hr"].is_monotonic_increasing
    assert curve.spline.p_value < 1e-3 and curve.stepp.p_value <= 0.01


def test_no_interaction_gives_a_flat_curve():
    df = simulate(13, 400, slope=0.0)
    curve = tc.survival.treatment_effect_curve(df, "score", n_permutations=199, seed=0)
    q = curve.spline.at_quantiles
    assert (q["hr_low"] < 0.7).all() and (q["hr_high"] > 0.7).all()  # every band covers 0.7
    assert np.ptp(q["log_hr"]) < 0.5


@pytest.mark.slow
def test_size_of_both_interaction_tests_over_100_null_trials():
    """A prognostic score (log HR 0.5 per SD) and a constant treatment HR of 0.7: 100 seeded
    trials of 200 patients, 99 permutations each. Under the null each rejection count is
    Binomial(100, 0.05): the 99.9 % range is 0..13; the p-values should be roughly uniform
    (each half holds 50 +- 16, the 99.9 % range)."""
    p_stepp, p_spline = [], []
    for seed in range(100):
        df = simulate(seed, 200)
        p_stepp.append(ec.stepp(df, "score", n_permutations=99, seed=seed).p_value)
        p_spline.append(ec.spline_interaction(df, "score").p_value)
    for p in (np.array(p_stepp), np.array(p_spline)):
        assert (p <= 0.05).sum() <= 13
        assert 34 <= (p < 0.5).sum() <= 66


# =============================================================================== face
def test_treatment_effect_curve_result(tied):
    curve = tc.survival.treatment_effect_curve(tied, "score", n_permutations=19)
    assert curve.experimental == "experimental" and curve.control == "control"
    assert curve.n == len(tied) and curve.notes[0] == ec.EXPLORATORY_CUTOFF
    d = curve.to_dict()
    json.dumps(d, allow_nan=False)
    assert d["stepp"]["r2"] == 75 and d["spline"]["test"][0]["df"] == 2
    assert "exploratory" in d["exploratory_cutoff"]
    ax = curve.plot()
    assert ax.get_yscale() == "log" and len(ax.get_legend().get_texts()) == 3
    assert "STEPP" in curve._repr_html_()


def test_a_failing_estimate_becomes_a_note():
    df = simulate(2, 80)
    low = df["score"] < df["score"].quantile(0.3)
    df.loc[low & (df["arm"] == "experimental"), "os_event"] = 0
    curve = tc.survival.treatment_effect_curve(df, "score", r1=15, r2=20, n_permutations=19)
    assert curve.stepp is None and curve.spline is not None
    assert any(n.startswith("STEPP not computed: STEPP window 1") for n in curve.notes)


def test_input_errors_name_the_problem():
    df = simulate(5, 100)
    bad = df.copy()
    bad.loc[3, "score"] = np.nan
    with pytest.raises(SchemaError, match=r"'score': 1 missing .* P0003"):
        ec.stepp(bad, "score")
    with pytest.raises(AnalysisError, match="continuous score"):
        ec.spline_interaction(df.assign(score=df.index % 3), "score")
    with pytest.raises(AnalysisError, match="exactly two arms"):
        ec.stepp(df.assign(arm="control"), "score")
    with pytest.raises(ValueError, match="0 <= r1 < r2 <= n"):
        ec.stepp(df, "score", r1=30, r2=30)
    with pytest.raises(ValueError, match="n_permutations"):
        ec.stepp(df, "score", n_permutations=5)
    with pytest.raises(ValueError, match="knots"):
        ec.spline_interaction(df, "score", knots=(0.5, 0.9))
    with pytest.raises(ValueError, match="reference_arm"):
        ec.stepp(df, "score", reference_arm="placebo")
