"""Treatment-benefit decoder (modified-covariate method, cross-fitted): recovers a planted benefit
direction in seeded two-arm simulations and shows no benefit signal under the null.

The simulations: features from 4 latent factors; 1:1 randomisation; the first factor modifies the
treatment effect (the planted benefit direction), the second is prognostic only. Each check is
one seed: the alternative's effect sizes (log-OR 1.5 per SD, log-HR 1 per SD) are large enough
that the jackknife interval of C-for-benefit excludes 0.5 with a wide margin, and the null seed
is one where the procedure is as silent as it should be (the size of the jackknife tests over
many seeds is a validation-study question, not a unit test).
"""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest

import tario_clinical
from tario_clinical.decode import c_for_benefit
from tario_clinical.errors import AnalysisError, CohortError, SchemaError


def _trial(seed: int, *, n: int, gamma: float, kind: str, d: int = 40):
    rng = np.random.default_rng(seed)
    Z = rng.normal(size=(n, 4))
    X = Z @ rng.normal(size=(4, d)) + rng.normal(size=(n, d))
    arm = rng.permutation(np.r_[np.ones(n // 2), np.zeros(n - n // 2)])
    ids = [f"P{i:04d}" for i in range(n)]
    clin = pd.DataFrame({"patient_id": ids, "arm": np.where(arm == 1, "experimental", "control")})
    if kind == "binary":
        lp = -0.3 + 0.7 * Z[:, 1] + arm * (0.3 + gamma * Z[:, 0])
        clin["response"] = (rng.random(n) < 1 / (1 + np.exp(-lp))).astype(int)
    else:
        lp = 0.7 * Z[:, 1] - arm * (0.3 + gamma * Z[:, 0])
        T = rng.exponential(12 * np.exp(-lp))
        C = rng.uniform(6, 36, n)
        clin["pfs_time"] = np.minimum(T, C)
        clin["pfs_event"] = (T <= C).astype(int)
    return pd.DataFrame(X, index=ids), clin, Z[:, 0]


def _outcome(kind):
    return (
        {"response": "response"} if kind == "binary" else {"time": "pfs_time", "event": "pfs_event"}
    )


@pytest.mark.parametrize(
    "kind, gamma, n", [("binary", 1.5, 600), ("survival", 1.0, 400)], ids=["binary", "survival"]
)
def test_planted_benefit_direction_is_recovered(kind, gamma, n):
    X, clin, truth = _trial(0, n=n, gamma=gamma, kind=kind)
    res = tario_clinical.decode_benefit(
        X, clin, n_repeats=2, n_permutations=19, seed=0, **_outcome(kind)
    )
    s = res.summary().set_index("metric")
    c = s.loc["c_for_benefit"]
    assert c["low"] > 0.5 and c["estimate"] > 0.6
    # the benefit statistics' default interval: the spread of the arm re-randomisations
    assert c["ci_method"].startswith("SD of the permutation re-runs")
    assert "arm re-randomised" in c["ci_method"] and "t_18" in c["ci_method"]
    effect = "response_difference" if kind == "binary" else "log_hr"
    assert s.loc[f"{effect}_high_benefit", "ci_method"].startswith("grouped jackknife")
    # the default test re-randomises the arm: no permuted cohort reaches the planted signal
    inter = s.index[s.index.str.startswith("interaction")][0]
    diff = s.index[s.index.str.endswith("high_vs_low")][0]
    for m in ("c_for_benefit", inter, diff):
        assert s.loc[m, "p_value"] == pytest.approx(1 / 20)
        assert "arm re-randomised" in s.loc[m, "p_method"]
    perm = res.resamples["permutation"]
    assert perm.shape == (19, 5)
    sign = 1.0 if kind == "binary" else -1.0
    assert (sign * perm[inter] < sign * s.loc[inter, "estimate"]).all()
    # direction: the cross-fitted score follows the planted modifier
    score = res.oof_scores().loc[X.index]
    assert np.corrcoef(score, truth)[0, 1] > 0.7
    # more benefit in the high group than in the low group, on the effect's own scale
    if kind == "binary":
        assert s.loc["response_difference_high_benefit", "estimate"] > 0.15
        assert s.loc["response_difference_low_benefit", "estimate"] < 0.1
    else:
        assert s.loc["log_hr_high_benefit", "estimate"] < -0.4
        assert s.loc["log_hr_low_benefit", "estimate"] > -0.1
    curve = res.tables["effect_curve"]
    slope = np.polyfit(curve["score"], curve["estimate"], 1)[0]
    assert slope > 0 if kind == "binary" else slope < 0
    assert res.plot_benefit() is not None
    json.dumps(res.to_dict(), allow_nan=False)


@pytest.mark.parametrize("kind", ["binary", "survival"])
def test_no_benefit_signal_under_the_null(kind):
    X, clin, _ = _trial(1, n=400, gamma=0.0, kind=kind)
    res = tario_clinical.decode_benefit(
        X, clin, n_repeats=2, n_permutations=19, seed=0, **_outcome(kind)
    )
    s = res.summary().set_index("metric")
    c = s.loc["c_for_benefit"]
    assert c["low"] < 0.5 < c["high"]
    inter = s.index[s.index.str.startswith("interaction")][0]
    assert s.loc[inter, "p_value"] > 0.05
    assert s.loc[inter, "low"] < 0 < s.loc[inter, "high"]


def test_randomisation_interval_is_the_spread_of_the_arm_re_randomisations():
    """ci_method="randomisation" (default): the benefit statistics' interval is
    g^-1(g(T) -/+ t_{B-1} sd_b(g(T_b))) over the permutation re-runs (logit scale for C); the
    within-group effects keep the grouped jackknife; the other decoders refuse it."""
    from scipy import stats
    from scipy.special import expit, logit

    X, clin, _ = _trial(3, n=240, gamma=0.5, kind="survival", d=20)
    res = tario_clinical.decode_benefit(
        X, clin, n_repeats=1, n_permutations=9, seed=2, **_outcome("survival")
    )
    s = res.summary().set_index("metric")
    perm, jack = res.resamples["permutation"], res.resamples["jackknife"]
    assert perm.shape == (9, 5) and jack.shape == (10, 5)
    q = stats.t.ppf(0.975, 8)
    c = s.loc["c_for_benefit"]
    sd = np.std(logit(perm["c_for_benefit"]), ddof=1)
    assert c["low"] == pytest.approx(expit(logit(c["estimate"]) - q * sd), rel=1e-9)
    assert c["high"] == pytest.approx(expit(logit(c["estimate"]) + q * sd), rel=1e-9)
    for m in ("interaction_log_hr_per_sd", "log_hr_difference_high_vs_low"):
        sd = np.std(perm[m], ddof=1)
        assert s.loc[m, "low"] == pytest.approx(s.loc[m, "estimate"] - q * sd, rel=1e-9)
        assert s.loc[m, "high"] == pytest.approx(s.loc[m, "estimate"] + q * sd, rel=1e-9)
    g = jack["log_hr_high_benefit"].to_numpy()
    se = np.sqrt(9 / 10 * np.sum((g - g.mean()) ** 2))
    lo = s.loc["log_hr_high_benefit", "estimate"] - stats.t.ppf(0.975, 9) * se
    assert s.loc["log_hr_high_benefit", "low"] == pytest.approx(lo, rel=1e-9)
    assert res.params["ci_method"] == "randomisation" and res.params["n_jackknife"] == 10
    # the jackknife for every metric stays available by name
    old = (
        tario_clinical.decode_benefit(
            X,
            clin,
            n_repeats=1,
            n_permutations=9,
            seed=2,
            ci_method="jackknife",
            **_outcome("survival"),
        )
        .summary()
        .set_index("metric")
    )
    assert old.loc["c_for_benefit", "ci_method"].startswith("grouped jackknife")
    assert old.loc["c_for_benefit", "estimate"] == c["estimate"]
    with pytest.raises(SchemaError, match="randomisation"):
        tario_clinical.decode_survival(
            X, clin, time="pfs_time", event="pfs_event", n_repeats=1, ci_method="randomisation"
        )


def test_every_score_is_cross_fitted():
    """A fold's benefit scores do not move when the held-out patients' outcomes change, and
    every patient is scored once per repeat by a model that did not see it."""
    from tario_clinical.decode.benefit import _BenefitProblem
    from tario_clinical.decode.endpoint_inference import cross_validate_plan, cv_design

    X, clin, _ = _trial(2, n=200, gamma=1.0, kind="binary")
    y = np.column_stack(
        [clin["response"], np.ones(len(clin)), (clin["arm"] == "experimental").astype(float)]
    )
    pb = _BenefitProblem(X=X.to_numpy(), penalties=np.logspace(-4, 0, 6), survival=False)
    design = cv_design(
        pb.strata(y),
        clin,
        cv=None,
        n_splits=4,
        n_repeats=2,
        n_inner_splits=3,
        group_by=None,
        seed=0,
    )
    run = cross_validate_plan(pb, y, design.plan)
    assert np.isfinite(run.pred[:, :, 0]).all()
    test = np.flatnonzero(design.plan.outer[0] == 0)
    y2 = y.copy()
    y2[test, 0] = 1 - y2[test, 0]
    # same folds, held-out outcomes flipped: fold 0's scores are unchanged
    run2 = pb.cross_validate(np.arange(200), y2, design.plan.outer, design.plan.inner)
    np.testing.assert_array_equal(run.pred[0, test], run2.pred[0, test])
    assert not np.allclose(run.pred[0], run2.pred[0])  # the other folds did see them


def test_c_for_benefit_by_brute_force():
    rng = np.random.default_rng(4)
    n = 60
    score = rng.normal(size=n)
    arm = np.r_[np.ones(30), np.zeros(30)]
    y = (rng.random(n) < 0.5).astype(float)
    got = c_for_benefit(score, arm, y)
    e, c = np.flatnonzero(arm == 1), np.flatnonzero(arm == 0)
    e, c = e[np.argsort(score[e])], c[np.argsort(score[c])]
    pred = (score[e] + score[c]) / 2
    obs = y[e] - y[c]
    num = den = 0.0
    for i in range(30):
        for j in range(30):
            if obs[i] > obs[j]:
                den += 1
                num += 1.0 if pred[i] > pred[j] else 0.5 if pred[i] == pred[j] else 0.0
    assert got == pytest.approx(num / den, abs=1e-12)
    # deterministic world: only experimental patients with b > 0 respond, controls never do;
    # the true benefit b itself is (almost) perfectly concordant with the pairs' benefit
    b = np.linspace(-1, 1, 80)
    arm2 = np.tile([1.0, 0.0], 40)
    y2 = np.where(arm2 == 1, b > 0, False).astype(float)
    assert c_for_benefit(b, arm2, y2) > 0.95
    assert c_for_benefit(-b, arm2, y2) < 0.05


def test_inputs_are_checked():
    X, clin, _ = _trial(3, n=120, gamma=0.5, kind="binary")
    with pytest.raises(SchemaError, match="either response"):
        tario_clinical.decode_benefit(X, clin)
    three = clin.copy()
    three.loc[:9, "arm"] = "other"
    with pytest.raises(AnalysisError, match="exactly two arms"):
        tario_clinical.decode_benefit(X, three, response="response")
    clin.loc[5, "arm"] = None
    res = tario_clinical.decode_benefit(
        X, clin, response="response", n_repeats=1, ci_method="oof", p_method="oof"
    )
    assert res.exclusions["patient_id"].tolist() == ["P0005"]
    assert res.params["experimental"] == "experimental"
    with pytest.raises(SchemaError, match="p_method"):
        tario_clinical.decode_benefit(X, clin, response="response", p_method="delong")
    with pytest.raises(SchemaError, match="permutation must be"):
        tario_clinical.decode_benefit(X, clin, response="response", permutation="outcome")
    with pytest.raises(CohortError, match="strata column 'centre'"):
        tario_clinical.decode_benefit(X, clin, response="response", strata="centre")


def test_arm_permutation_keeps_strata_outcomes_and_representation():
    """A permutation draw re-randomises the arm within each randomisation stratum: every
    stratum keeps its arm counts, outcome and representation rows stay where they are; the
    ``rows`` scheme moves (outcome, arm) pairs together."""
    from tario_clinical.decode.benefit import _BenefitProblem

    rng = np.random.default_rng(0)
    n = 60
    y = np.column_stack([rng.exponential(size=n), rng.integers(0, 2, n), np.tile([1.0, 0.0], 30)])
    blocks = np.repeat([0, 1, 2], 20)
    y[blocks == 2, 2] = np.r_[np.ones(15), np.zeros(5)]  # an unequal stratum
    prob = _BenefitProblem(X=np.zeros((n, 2)), penalties=np.ones(1), survival=True, blocks=blocks)
    moved = 0
    for _ in range(20):
        yp = prob.permute(y, rng)
        np.testing.assert_array_equal(yp[:, :2], y[:, :2])
        for b in range(3):
            assert yp[blocks == b, 2].sum() == y[blocks == b, 2].sum()
        moved += int((yp[:, 2] != y[:, 2]).any())
    assert moved == 20
    prob.permutation = "rows"
    yr = prob.permute(y, rng)
    pairs = {tuple(r) for r in y.round(12)}
    assert {tuple(r) for r in yr.round(12)} == pairs and not np.array_equal(yr, y)
    assert "within randomisation strata" in prob.permutation_label


def test_strata_missing_values_are_excluded_and_logged(caplog):
    X, clin, _ = _trial(3, n=120, gamma=0.5, kind="binary")
    clin["centre"] = np.where(np.arange(120) % 2 == 0, "A", "B")
    clin.loc[7, "centre"] = None
    with caplog.at_level("INFO"):
        res = tario_clinical.decode_benefit(
            X, clin, response="response", strata="centre", n_repeats=1, n_permutations=19
        )
    assert res.exclusions["patient_id"].tolist() == ["P0007"]
    assert "centre" in res.exclusions["reason"].iloc[0]
    assert res.params["strata"] == ["centre"] and res.params["n_permutations"] == 19
    assert "within randomisation strata" in res.summary()["p_method"].iloc[0]
