"""The default AUROC interval lets the exact permutation test decide whether it contains 0.5.

Rule (``intervals.chance_coherent``): where the two-sided permutation test of ``|T - 0.5|``
rejects at ``1 - level`` the interval is cut at 0.5 on the far side from ``T``; where it does
not, the interval is widened to reach 0.5. The coverage this gives over a grid of cells is
measured in ``benchmarks/validation/decode_ci`` (``--chance`` pass); these tests check the rule,
its bookkeeping and that the decoder applies it to the jackknife replicates it stores.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import tario_clinical
from tario_clinical.decode import intervals as ivl

SMALL = {"n_splits": 3, "n_repeats": 1, "n_inner_splits": 3, "n_c": 8}


def test_chance_pvalue_is_the_rank_of_the_distance_from_chance():
    null = np.array([[0.40], [0.55], [0.62], [0.47]])
    # |T - 0.5| = 0.11: beaten or tied by |0.62 - 0.5| = 0.12 only
    assert ivl.chance_pvalue(np.array([0.39]), null)[0] == pytest.approx(2 / 5)
    assert ivl.chance_pvalue(np.array([0.70]), null)[0] == pytest.approx(1 / 5)
    assert ivl.chance_pvalue(np.array([0.50]), null)[0] == pytest.approx(1.0)


def test_chance_coherent_cuts_widens_and_leaves_untested_intervals_alone():
    T = np.array([0.60, 0.60, 0.40, 0.58, 0.70, 0.56])
    low = np.array([0.45, 0.52, 0.30, 0.52, 0.60, 0.45])
    high = np.array([0.75, 0.68, 0.55, 0.64, 0.80, 0.67])
    p = np.array([0.01, 0.01, 0.02, 0.30, 0.30, np.nan])
    lo, hi, ex = ivl.chance_coherent(T, low, high, p, 0.95)
    # rejected, T above: cut at 0.5 (was 0.45) / already above 0.5 (0.52 kept)
    assert lo[0] == 0.5 and hi[0] == 0.75 and ex[0]
    assert lo[1] == 0.52 and ex[1]
    # rejected, T below: upper bound cut at 0.5
    assert hi[2] == 0.5 and lo[2] == 0.30 and ex[2]
    # not rejected: widened to reach 0.5 / already containing it
    assert lo[3] == 0.5 and hi[3] == 0.64 and not ex[3]
    assert lo[4] == 0.5 and not ex[4]
    # no test: unchanged, excludes_chance from the bounds
    assert lo[5] == 0.45 and hi[5] == 0.67 and not ex[5]


def test_jackknife_interval_is_t_on_the_auroc_scale_and_logit_is_kept_by_name():
    rng = np.random.default_rng(0)
    reps = 0.7 + 0.03 * rng.normal(size=(10, 2))
    T = np.array([0.71, 0.69])
    lo, hi, se = ivl.jackknife_interval(T, reps, 0.95)
    want = np.sqrt(0.9 * np.sum((reps - reps.mean(0)) ** 2, axis=0))
    np.testing.assert_allclose(se, want)
    np.testing.assert_allclose(hi - T, stats.t.ppf(0.975, 9) * want)
    np.testing.assert_allclose(T - lo, stats.t.ppf(0.975, 9) * want)
    llo, lhi, _ = ivl.jackknife_interval_logit(T, reps, 0.95)
    assert np.all((llo > 0) & (lhi < 1)) and not np.allclose(llo, lo)
    # clipped to [0, 1]
    lo1, hi1, _ = ivl.jackknife_interval(
        np.array([0.98]), 0.98 + 0.05 * rng.normal(size=(10, 1)), 0.95
    )
    assert hi1[0] == 1.0 and 0 <= lo1[0] < 0.98


def _data(seed: int, n: int = 90, d: int = 25, n_null: int = 12):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    clin = pd.DataFrame({"patient_id": [f"P{i}" for i in range(n)]})
    clin["S"] = (1.2 * (X[:, 0] + X[:, 1]) + rng.normal(size=n) > 0.5).astype(int)
    for k in range(n_null):
        clin[f"N{k}"] = rng.permutation(np.r_[np.ones(n // 3), np.zeros(n - n // 3)]).astype(int)
    targets = ["S", *[f"N{k}" for k in range(n_null)]]
    return pd.DataFrame(X.astype(np.float32), index=clin["patient_id"]), clin, targets


def test_decoder_interval_contains_chance_exactly_when_the_test_does_not_reject():
    X, clin, targets = _data(3)
    res = tario_clinical.decode(
        X,
        clin,
        targets=targets,
        stratify_jointly=False,
        n_permutations=19,
        n_jackknife=5,
        seed=3,
        progress=False,
        **SMALL,
    )
    inf = res.inference.set_index("target")
    s = res.summary().set_index("target")
    perm = res.resamples["permutation"]
    assert np.all(np.isfinite(inf["p_chance"]))
    rejected = inf["p_chance"] <= 0.05 + 1e-12
    np.testing.assert_array_equal(inf["excludes_chance"].to_numpy(bool), rejected.to_numpy())
    contains = (inf["low"] <= 0.5) & (0.5 <= inf["high"])
    # an excluded 0.5 is an open bound: it may equal the bound, never lie strictly inside
    strictly_inside = (inf["low"] < 0.5) & (0.5 < inf["high"])
    assert not np.any(strictly_inside & rejected)
    assert np.all(contains[~rejected])
    # the interval always contains its own estimate
    assert np.all((inf["low"] <= inf["auroc"]) & (inf["auroc"] <= inf["high"]))
    # the planted target beats every permutation; the null targets mostly do not
    assert bool(s.loc["S", "excludes_chance"]) and s.loc["S", "low"] >= 0.5
    assert rejected.drop("S").sum() <= 3
    assert "two-sided permutation" in s.loc["S", "ci_method"]
    assert perm.shape == (19, len(targets))
    # p_chance is formed from the stored permutation statistics
    T = inf.loc[targets, "auroc"].to_numpy()
    want = ivl.chance_pvalue(T, perm[targets].to_numpy())
    np.testing.assert_allclose(inf.loc[targets, "p_chance"].to_numpy(), want)


def test_logit_jackknife_by_name_has_no_chance_rule_without_permutations():
    X, clin, targets = _data(4, n_null=2)
    kw = dict(targets=targets, stratify_jointly=False, n_jackknife=5, seed=4, progress=False)
    a = tario_clinical.decode(
        X, clin, ci_method="jackknife_logit", p_method="jackknife", **kw, **SMALL
    )
    b = tario_clinical.decode(X, clin, ci_method="jackknife", p_method="jackknife", **kw, **SMALL)
    ia, ib = a.inference.set_index("target"), b.inference.set_index("target")
    assert np.all(np.isnan(ia["p_chance"])) and np.all(np.isnan(ib["p_chance"]))
    np.testing.assert_allclose(ia["auroc"], ib["auroc"])
    assert "logit scale" in ia["ci_method"].iloc[0] and "AUROC scale" in ib["ci_method"].iloc[0]
    # same replicates, two scales: the logit interval stays inside (0, 1) and differs
    assert np.all((ia["low"] > 0) & (ia["high"] < 1))
    assert not np.allclose(ia["low"], ib["low"])


def test_endpoint_decoders_apply_the_rule_to_metrics_with_an_exact_null():
    """Continuous decoder: the correlations (exact null 0) get the rule, R^2 (negative under
    independence) does not; the summary notes an open bound."""
    rng = np.random.default_rng(5)
    n, d = 80, 15
    X = rng.normal(size=(n, d))
    ids = [f"P{i:03d}" for i in range(n)]
    clin = pd.DataFrame({"patient_id": ids, "y": X[:, 0] + 0.8 * rng.normal(size=n)})
    Xd = pd.DataFrame(X.astype(np.float32), index=ids)
    res = tario_clinical.decode_continuous(
        Xd,
        clin,
        targets=["y"],
        n_repeats=1,
        n_splits=4,
        n_inner_splits=3,
        n_jackknife=5,
        n_permutations=19,
        seed=5,
        progress=False,
    )
    r = res.results["y"]
    m = r.metrics.set_index("metric")
    assert np.isfinite(m.loc["pearson_r", "p_chance"]) and np.isfinite(
        m.loc["spearman_rho", "p_chance"]
    )
    assert np.isnan(m.loc["r2", "p_chance"]) and m.loc["r2", "excludes_chance"] is None
    perm = r.resamples["permutation"]
    for k in ("pearson_r", "spearman_rho"):
        want = ivl.chance_pvalue(np.array([m.loc[k, "estimate"]]), perm[[k]].to_numpy(), 0.0)[0]
        assert m.loc[k, "p_chance"] == pytest.approx(want)
        assert bool(m.loc[k, "excludes_chance"]) == (want <= 0.05 + 1e-12)
    # the planted signal beats all 19 permutations: 0 is excluded
    assert bool(m.loc["pearson_r", "excludes_chance"]) and m.loc["pearson_r", "low"] >= 0
    s = r.summary().set_index("metric")
    if m.loc["pearson_r", "low"] == 0.0:
        assert "open bound" in s.loc["pearson_r", "note"]
