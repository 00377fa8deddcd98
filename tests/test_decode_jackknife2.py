"""The second-order-corrected grouped jackknife: unbiased under its model, checked by simulation."""

from itertools import combinations

import numpy as np
import pytest

from tario_clinical.decode import inference as inf
from tario_clinical.decode import intervals as ivl


def _statistic(a, b, groups_left, pair_index):
    """mu + mean a_j + mean b_jl over the groups left (the model of jackknife2_weights)."""
    left = list(groups_left)
    first = a[left].mean()
    second = np.mean([b[pair_index[p]] for p in combinations(left, 2)])
    return first + second


def _replicates(a, b, G):
    pairs = list(combinations(range(G), 2))
    pidx = {p: i for i, p in enumerate(pairs)}
    full = _statistic(a, b, range(G), pidx)
    one = [_statistic(a, b, [j for j in range(G) if j != g], pidx) for g in range(G)]
    two = [_statistic(a, b, [j for j in range(G) if j not in p], pidx) for p in pairs]
    return full, np.array(one + two)


@pytest.mark.parametrize(("s1", "s2"), [(1.0, 0.0), (0.0, 1.0), (1.0, 20.0)])
def test_corrected_variance_is_unbiased_where_the_plain_jackknife_is_not(s1, s2):
    G, n_sim = 8, 3000
    rng = np.random.default_rng(20261201)
    P = G * (G - 1) // 2
    T, v_plain, v_corr = np.empty(n_sim), np.empty(n_sim), np.empty(n_sim)
    for i in range(n_sim):
        a = rng.normal(scale=np.sqrt(s1), size=G)
        b = rng.normal(scale=np.sqrt(s2), size=P)
        full, reps = _replicates(a, b, G)
        T[i] = full
        one = reps[:G]
        v_plain[i] = (G - 1) / G * np.sum((one - one.mean()) ** 2)
        lam1, lam2, _ = ivl.jackknife2_weights(G)
        pairs = list(combinations(range(G), 2))
        inter = np.array([full - one[g] - one[h] + reps[G + k] for k, (g, h) in enumerate(pairs)])
        v_corr[i] = lam1 * v_plain[i] + lam2 * np.mean(inter**2)
    true_var = s1 / G + s2 / P
    assert true_var == pytest.approx(T.var(), rel=0.08)
    assert v_corr.mean() == pytest.approx(true_var, rel=0.06)
    if s2 > 0:  # the plain jackknife counts the interactions 2 (G - 1) / (G - 2) times
        b1 = 4 / (G * (G - 2))
        assert v_plain.mean() == pytest.approx(s1 / G + b1 * s2, rel=0.06)
        assert v_plain.mean() > 1.5 * true_var


def test_weights_match_the_closed_form_of_the_plain_jackknife():
    for G in (5, 8, 10):
        lam1, lam2, b1 = ivl.jackknife2_weights(G)
        assert b1 == pytest.approx(4 / (G * (G - 2)))
        assert lam1 > 1 and lam2 < 0


def test_interval_is_clipped_between_all_interaction_and_plain():
    G = 10
    rng = np.random.default_rng(3)
    reps = 0.7 + 0.02 * rng.normal(size=(G + G * (G - 1) // 2, 1))
    T = np.array([0.7])
    lo, hi, _ = ivl.jackknife_interval_logit(T, reps[:G], 0.95)
    lo2, hi2, _ = ivl.jackknife2_interval(T, reps, 0.95, G)
    assert lo <= lo2 < T < hi2 <= hi


def _small_cohort(n=80, d=30, seed=0):
    import pandas as pd

    rng = np.random.default_rng(seed)
    Z = rng.normal(size=(n, 3))
    X = Z @ rng.normal(size=(3, d)) + rng.normal(size=(n, d))
    ids = [f"P{i:03d}" for i in range(n)]
    clin = pd.DataFrame({"patient_id": ids})
    clin["score"] = Z[:, 0] + 0.7 * rng.normal(size=n)
    clin["G"] = np.where(Z[:, 0] + rng.normal(size=n) > 0, "mutant", "wild-type")
    return pd.DataFrame(X, index=ids, columns=[f"g{j}" for j in range(d)]), clin


def test_endpoint_decoder_corrected_interval_is_inside_the_plain_one():
    import tario_clinical

    X, clin = _small_cohort()
    kw = dict(targets=["score"], n_repeats=1, n_splits=4, n_inner_splits=3, n_jackknife=5)
    kw.update(p_method="oof")
    plain = tario_clinical.decode_continuous(X, clin, ci_method="jackknife", **kw)
    corr = tario_clinical.decode_continuous(X, clin, ci_method="jackknife2", **kw)
    a = plain.results["score"].summary().set_index("metric")
    b = corr.results["score"].summary().set_index("metric")
    assert corr.results["score"].resamples["jackknife"].shape[0] == 5 + 10
    for m in ("r2", "pearson_r"):
        assert a.loc[m, "estimate"] == pytest.approx(b.loc[m, "estimate"], abs=1e-12)
        assert a.loc[m, "low"] <= b.loc[m, "low"] < b.loc[m, "estimate"]
        assert b.loc[m, "estimate"] < b.loc[m, "high"] <= a.loc[m, "high"]
        assert "second-order" in b.loc[m, "ci_method"]


def test_binary_decoder_corrected_interval_shares_the_delete_one_replicates():
    from tario_clinical.decode import default_Cs

    X, clin = _small_cohort()
    Xf = X.to_numpy(np.float32)
    y = (clin["G"] == "mutant").to_numpy(float)[:, None]
    n = Xf.shape[0]
    problem = inf.CVProblem(X=Xf, codes=np.arange(n), Cs=default_Cs(5, n, Xf.shape[1]))
    kw = dict(n_splits=4, n_repeats=1, n_inner_splits=3, stratify_jointly=True, groups=None)
    plan = inf.make_plan(y, seed_seq=np.random.SeedSequence(1), **kw)
    ss = np.random.SeedSequence(2)
    one = inf.jackknife_replicates(problem, y, plan, n_groups=5, seed_seq=ss)
    both = inf.jackknife_replicates(problem, y, plan, n_groups=5, seed_seq=ss, pairs=True)
    np.testing.assert_array_equal(one, both[:5])
    assert both.shape == (15, 1)
    T = inf.cv_statistic(problem, y, plan)
    lo, hi, _ = ivl.jackknife_interval_logit(T, one, 0.95)
    lo2, hi2, _ = ivl.jackknife2_interval(T, both, 0.95, 5)
    assert lo <= lo2 < T < hi2 <= hi


def test_decode_accepts_the_corrected_jackknife_by_name():
    import tario_clinical

    X, clin = _small_cohort(n=60, d=20)
    res = tario_clinical.decode(
        X,
        clin,
        targets=["G"],
        n_repeats=1,
        n_splits=3,
        n_inner_splits=3,
        n_c=4,
        ci_method="jackknife2",
        p_method="delong",
        n_jackknife=4,
    )
    row = res.summary().iloc[0]
    assert "second-order" in row["ci_method"]
    assert row["low"] < row["auroc"] < row["high"]
