"""Statistical edge cases of tario_clinical.survival with their documented behaviour
(issue 8, item 3): all-censored survival, heavy ties, a single arm, perfect separation
(monotone likelihood), few events, degenerate scores, bad values, HTML in ids, determinism,
and property tests of cross-fitting (no patient's cut-off uses its own fold)."""

from __future__ import annotations

import json
import math

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tario_clinical import survival as sv
from tario_clinical.errors import AnalysisError, SchemaError


def frame(n=40, seed=0, *, events=True):
    rng = np.random.default_rng(seed)
    t = rng.exponential(10, n).round(1) + 0.1
    return pd.DataFrame(
        {
            "patient_id": [f"P{i:03d}" for i in range(n)],
            "time": t,
            "event": (rng.random(n) < 0.7).astype(int) if events else 0,
            "arm": np.where(np.arange(n) % 2 == 0, "control", "experimental"),
            "score": rng.normal(size=n),
        }
    )


# ------------------------------------------------------------------ all censored
def test_all_censored_documented_behaviour():
    d = frame(events=False)
    k = sv.km(d, "time", "event").summary.iloc[0]
    assert k["events"] == 0 and math.isnan(k["median"])  # S(t) = 1: no median
    with pytest.raises(AnalysisError, match="no events"):
        sv.logrank(d, "time", "event", "arm")
    with pytest.raises(AnalysisError, match="no events"):
        sv.cox(d, "time", "event", ["score"])
    c = sv.concordance(d, "time", "event", "score")
    assert (c["n_pairs"] == 0).all() and c["estimate"].isna().all()  # no comparable pairs
    # stratify still returns KM and the exclusion log, and says what it could not do
    r = sv.stratify(d, d.set_index("patient_id")["score"], "time", "event", arm="arm")
    assert r.logrank is None and r.cox_unadjusted is None and r.interaction is None
    assert any("no events" in n for n in r.notes)
    json.dumps(r.to_dict(), allow_nan=False)


# ------------------------------------------------------------------ heavy ties
def naive_efron_1d(b, x, t, e):
    ll = 0.0
    for tk in np.unique(t[e == 1]):
        risk, dead = t >= tk, (t == tk) & (e == 1)
        d = dead.sum()
        s0, e0 = np.exp(b * x[risk]).sum(), np.exp(b * x[dead]).sum()
        ll += b * x[dead].sum() - sum(math.log(s0 - j / d * e0) for j in range(d))
    return ll


def test_heavy_ties_efron_is_exact():
    rng = np.random.default_rng(1)
    n = 200
    x = rng.integers(0, 2, n).astype(float)
    t = np.ceil(rng.exponential(3 / np.exp(0.7 * x)))  # ~10 distinct times for 200 patients
    e = (rng.random(n) < 0.8).astype(int)
    d = pd.DataFrame({"time": t, "event": e, "x": x})
    m = sv.cox_fit(d, "time", "event", ["x"])
    b = m.table.loc["x", "coef"]
    h = 1e-5  # the estimate maximises the naive Efron likelihood: numerical derivative ~ 0
    grad = (naive_efron_1d(b + h, x, t, e) - naive_efron_1d(b - h, x, t, e)) / (2 * h)
    assert abs(grad) < 1e-5
    assert m.loglik == pytest.approx(naive_efron_1d(b, x, t, e), rel=1e-10)
    # every event at one single time: still a valid (Efron) fit
    same = pd.DataFrame(
        {"time": 5.0, "event": [1] * 30 + [0] * 10, "x": np.r_[np.zeros(20), np.ones(20)]}
    )
    row = sv.cox(same, "time", "event", ["x"]).loc["x"]
    assert np.isfinite(row["hr"]) and row["hr"] < 1
    assert sv.logrank(same, "time", "event", "x").loc["log-rank", "statistic"] > 0


# ------------------------------------------------------------------ single arm
def test_single_arm():
    d = frame().assign(arm="control")
    with pytest.raises(AnalysisError, match=r"exactly two arms.*'arm'.*control"):
        sv.treatment_interaction(d, "time", "event", "arm", "score")
    r = sv.stratify(d, d.set_index("patient_id")["score"], "time", "event", arm="arm")
    assert r.interaction is None and any("two arms" in n for n in r.notes)
    assert r.logrank is not None  # the rest of the analysis is unaffected


# ------------------------------------------------------------------ perfect separation
def test_monotone_likelihood_is_an_error_not_a_huge_hr():
    d = pd.DataFrame({"time": np.arange(1, 41.0), "event": 1, "g": ["a"] * 20 + ["b"] * 20})
    d.loc[d["g"] == "b", "event"] = 0  # group b never has an event
    with pytest.raises(AnalysisError, match=r"monotone likelihood.*g\[b\]"):
        sv.cox(d, "time", "event", ["g"])
    # the log-rank test is still defined
    assert sv.logrank(d, "time", "event", "g").loc["log-rank", "p_value"] < 1e-4
    # in stratify the failure becomes a note and NaN-free JSON
    d["patient_id"] = [f"Q{i}" for i in range(40)]
    scores = pd.Series(
        np.r_[np.ones(20), np.zeros(20)] + np.linspace(0, 0.01, 40), index=d["patient_id"]
    )
    r = sv.stratify(d, scores, "time", "event", cutoff=0.5)
    assert r.cox_unadjusted is None and any("monotone" in n for n in r.notes)
    json.dumps(r.to_dict(), allow_nan=False)


def test_collinear_and_constant_covariates():
    d = frame()
    with pytest.raises(AnalysisError, match="constant"):
        sv.cox(d.assign(c=1.0), "time", "event", ["score", "c"])
    with pytest.raises(AnalysisError, match="collinear"):
        sv.cox(d.assign(s2=2 * d["score"]), "time", "event", ["score", "s2"])


# ------------------------------------------------------------------ few events / degenerate
def test_few_events_are_flagged():
    d = frame(60, seed=2)
    d["event"] = 0
    d.loc[:7, "event"] = 1
    r = sv.stratify(d, d.set_index("patient_id")["score"], "time", "event")
    assert any("events; estimates are unstable" in n for n in r.notes)


def test_constant_scores_and_tiny_cohorts():
    d = frame()
    with pytest.raises(AnalysisError, match="all 40 patients fall in risk group"):
        sv.stratify(d, pd.Series(0.3, index=d["patient_id"]), "time", "event")
    with pytest.raises(AnalysisError, match="only 3 patients"):
        sv.stratify(d.head(3), d.set_index("patient_id")["score"], "time", "event")


def test_bad_values_raise_and_leave_input_untouched():
    d = frame()
    d.loc[4, "time"] = -2.0
    before = d.copy()
    with pytest.raises(SchemaError, match=r"negative.*P004"):
        sv.stratify(d, d.set_index("patient_id")["score"], "time", "event")
    pd.testing.assert_frame_equal(d, before)
    d = frame()
    d["event"] = d["event"].astype(object)
    d.loc[5, "event"] = "dead"
    with pytest.raises(SchemaError, match=r"'event'.*dead"):
        sv.cox(d, "time", "event", ["score"])
    with pytest.raises(SchemaError, match="duplicate"):
        sv.stratify(frame(), pd.Series([0.1, 0.2], index=["P001", "P001"]), "time", "event")
    with pytest.raises(SchemaError, match="patient_id, repeat, score"):
        sv.stratify(frame(), pd.DataFrame({"patient_id": ["P001"], "prob": [0.2]}), "time", "event")


def test_missing_values_are_listed_never_dropped_silently():
    d = frame()
    d["event"] = d["event"].astype("Int8")
    d.loc[1, "event"] = pd.NA
    d.loc[2, "time"] = np.nan
    s = d.set_index("patient_id")["score"].copy()
    s.iloc[3] = np.inf
    r = sv.stratify(d, s, "time", "event")
    ex = r.exclusions.set_index("patient_id")["reason"]
    assert set(ex.index) == {"P001", "P002", "P003"}
    assert r.n + len(ex) == len(d)


def test_html_in_ids_is_escaped():
    d = frame()
    d.loc[0, "patient_id"] = "<script>alert(1)</script>"
    s = d.set_index("patient_id")["score"].copy()
    s.iloc[0] = np.nan  # excluded -> appears in the exclusion table of the HTML
    page = sv.stratify(d, s, "time", "event")._repr_html_()
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_determinism_same_seed_same_json():
    d = frame(80, seed=4)
    s = d.set_index("patient_id")["score"]
    a = json.dumps(sv.stratify(d, s, "time", "event", seed=7, arm="arm").to_dict(), sort_keys=True)
    b = json.dumps(
        sv.stratify(
            d.sample(frac=1, random_state=1),
            s.sample(frac=1, random_state=2),
            "time",
            "event",
            seed=7,
            arm="arm",
        ).to_dict(),
        sort_keys=True,
    )
    assert a == b  # row order of the inputs does not matter either


# ------------------------------------------------------------------ properties
@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(12, 60),
    k=st.integers(2, 6),
    seed=st.integers(0, 10_000),
    kind=st.sampled_from(["median", "tertiles", "prevalence"]),
)
def test_cross_fitting_never_uses_own_fold(n, k, seed, kind):
    rng = np.random.default_rng(seed)
    d = pd.DataFrame(
        {
            "patient_id": [f"H{i}" for i in range(n)],
            "time": rng.exponential(5, n) + 0.01,
            "event": rng.integers(0, 2, n),
        }
    )
    s = pd.Series(rng.normal(size=n), index=d["patient_id"])
    try:
        r = sv.stratify(d, s, "time", "event", cutoff=kind, prevalence=0.3, n_folds=k, seed=seed)
    except AnalysisError:
        return  # all patients in one group: documented error
    a = r.assignments
    assert len(a) == n and a["patient_id"].is_unique
    qs = {"median": [0.5], "tertiles": [1 / 3, 2 / 3], "prevalence": [0.7]}[kind]
    for f in a["fold"].unique():
        own = a["fold"] == f
        expected = np.quantile(a.loc[~own, "score"], qs)
        np.testing.assert_allclose(a.loc[own, "cutoff"], expected[-1])
        got = r.cutoffs[r.cutoffs["fold"] == f]["cutoff"].to_numpy()
        np.testing.assert_allclose(got, expected)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(5, 80))
def test_km_and_logrank_invariants(seed, n):
    rng = np.random.default_rng(seed)
    d = pd.DataFrame(
        {
            "time": rng.integers(0, 8, n).astype(float),
            "event": rng.integers(0, 2, n),
            "g": rng.choice(["x", "y"], n),
        }
    )
    tab = sv.km(d, "time", "event").table
    s = tab["survival"].to_numpy()
    assert np.all((s >= 0) & (s <= 1)) and np.all(np.diff(s) <= 1e-15)
    assert np.all(tab["low"].fillna(0) <= s + 1e-12) and np.all(s <= tab["high"].fillna(1) + 1e-12)
    if d["g"].nunique() == 2 and d["event"].sum() > 0:
        a = sv.logrank(d, "time", "event", "g").loc["log-rank", "statistic"]
        b = sv.logrank(d.assign(g=d["g"].map({"x": "y", "y": "x"})), "time", "event", "g").loc[
            "log-rank", "statistic"
        ]
        assert a == pytest.approx(b, rel=1e-9, abs=1e-12) and a >= 0
