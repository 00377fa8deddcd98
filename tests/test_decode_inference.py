"""Inference of cross-validated decoders: the permutation test re-runs the whole nested CV, the
jackknife / bootstrap intervals re-run it too, and every place shows the same AUROC.

The coverage and size over a grid of cells are measured in ``benchmarks/validation/decode_ci``;
these seeded tests are the small, fast versions that fail if the methods regress.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import tario_clinical
from tario_clinical.decode import cross_validation as cvmod
from tario_clinical.decode import inference as inf
from tario_clinical.errors import SchemaError

SMALL = {"n_splits": 3, "n_repeats": 1, "n_inner_splits": 3, "n_c": 10}


def _null_data(seed: int, n: int = 80, d: int = 20, n_targets: int = 25):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, d)).astype(np.float32), index=[f"P{i}" for i in range(n)])
    clin = pd.DataFrame({"patient_id": X.index})
    for k in range(n_targets):
        clin[f"T{k}"] = rng.permutation(np.r_[np.ones(n // 3), np.zeros(n - n // 3)]).astype(int)
    return X, clin, [f"T{k}" for k in range(n_targets)]


def _signal_data(seed: int, n: int = 90, d: int = 30, signal: float = 1.0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    clin = pd.DataFrame({"patient_id": [f"P{i}" for i in range(n)]})
    clin["S"] = (signal * (X[:, 0] + X[:, 1]) + rng.normal(size=n) > 0.5).astype(int)
    clin["N"] = rng.integers(0, 2, n)
    return pd.DataFrame(X.astype(np.float32), index=clin["patient_id"]), clin


def test_permutation_pvalues_uniform_under_null_and_size_holds():
    """Null labels: the whole-CV permutation p-values are uniform on {1/(B+1), ..., 1}.

    4 independent data sets x 25 null targets = 100 p-values with B = 39. The KS distance to the
    discrete uniform must be small and the rejection rate at 0.05 must stay binomially plausible
    (the audit's fixed-score permutation rejected 11.5-13 %; 13 of 100 fails this test).
    """
    ps, ps_delong = [], []
    for seed in range(4):
        X, clin, targets = _null_data(seed)
        res = tario_clinical.decode(
            X,
            clin,
            targets=targets,
            stratify_jointly=False,
            p_method="permutation",
            ci_method="delong",
            n_permutations=39,
            seed=seed,
            progress=False,
            **SMALL,
        )
        s = res.summary()
        ps.extend(s["p_value"].tolist())
        ps_delong.extend(res.inference["p_delong"].tolist())
    ps = np.array(ps)
    grid = np.arange(1, 41) / 40
    assert set(np.round(ps * 40).astype(int)) <= set(range(1, 41))
    ecdf = np.array([(ps <= g + 1e-12).mean() for g in grid])
    assert np.max(np.abs(ecdf - grid)) < 0.16  # KS 5 % critical value at n = 100 is 0.134 (+ grid)
    assert stats.binomtest(int((ps <= 0.05).sum()), ps.size, 0.05).pvalue > 0.01
    assert (ps <= 0.05).mean() <= 0.11


def test_jackknife_interval_covers_chance_under_null():
    """Under the null the estimand is exactly 0.5; the jackknife interval must cover it."""
    cover, width = [], []
    for seed in (10, 11):
        X, clin, targets = _null_data(seed, n_targets=20)
        res = tario_clinical.decode(
            X,
            clin,
            targets=targets,
            stratify_jointly=False,
            p_method="jackknife",
            ci_method="jackknife",
            seed=seed,
            progress=False,
            **SMALL,
        )
        s = res.summary()
        cover.extend(((s["low"] <= 0.5) & (0.5 <= s["high"])).tolist())
        width.extend((s["high"] - s["low"]).tolist())
    assert np.mean(cover) >= 0.85
    assert np.median(width) < 0.6  # informative, not [0, 1]


def test_cv_statistic_reproduces_summary_auroc_with_slides_and_missing_labels():
    """The re-run engine of the resampling methods computes exactly the summary's AUROC."""
    X, clin = _signal_data(3, n=60)
    clin.loc[clin.index[:5], "N"] = np.nan
    # two slides per patient
    Xs = pd.concat([X, X + np.float32(0.1)])
    import anndata as ad

    obs = pd.DataFrame(
        {"patient_id": list(X.index) * 2}, index=[f"s{i}" for i in range(2 * len(X))]
    )
    A = ad.AnnData(Xs.to_numpy(), obs=obs)
    res = tario_clinical.decode(
        A, clin, targets=["S", "N"], p_method="delong", ci_method="delong", seed=2, **SMALL
    )
    data = cvmod.prepare_data(A, clin, ["S", "N"])
    uniq, codes = np.unique(data.row_patient, return_inverse=True)
    Ypat = data.labels.reindex(uniq).to_numpy(float)
    kw = {"n_splits": 3, "n_repeats": 1, "n_inner_splits": 3, "stratify_jointly": True}
    plan = inf.make_plan(Ypat, seed_seq=np.random.SeedSequence(2), **kw)
    problem = inf.CVProblem(X=data.X, codes=codes, Cs=np.asarray(res.params["Cs"]))
    T = inf.cv_statistic(problem, Ypat, plan)
    np.testing.assert_allclose(T, res.summary()["auroc"].to_numpy(), rtol=0, atol=1e-12)


def test_one_auroc_everywhere():
    X, clin = _signal_data(5)
    res = tario_clinical.decode(
        X,
        clin,
        targets=["S", "N"],
        n_permutations=19,
        seed=1,
        progress=False,
        **{**SMALL, "n_repeats": 2},
    )
    s = res.summary().set_index("target")
    for t in ("S", "N"):
        ci = res.auroc_ci(t)
        assert ci.auroc == s.loc[t, "auroc"] == res.inference.set_index("target").loc[t, "auroc"]
        assert (ci.low, ci.high) == (s.loc[t, "low"], s.loc[t, "high"])
        # the permutation p compares the same statistic with its null re-runs
        null = res.resamples["permutation"][t].to_numpy()
        p = (1 + np.sum(null >= s.loc[t, "auroc"] - 1e-12)) / (1 + null.size)
        assert p == pytest.approx(s.loc[t, "p_value"])
    ax = res.plot_roc()
    legend = [x.get_text() for x in ax.get_legend().get_texts()]
    assert any(f"AUROC {s.loc['S', 'auroc']:.2f}" in x for x in legend)
    # the drawn mean ROC's area is the summary's AUROC (up to the plotting grid)
    xs, ys = ax.get_lines()[0].get_data()
    assert np.trapezoid(ys, xs) == pytest.approx(s.loc["S", "auroc"], abs=0.01)
    assert s.loc["S", "p_value"] <= 0.1 and s.loc["S", "low"] > 0.5
    assert "permutation" in s.loc["S", "p_method"] and "jackknife" in s.loc["S", "ci_method"]


def test_same_numbers_for_any_n_jobs():
    X, clin = _signal_data(7, n=60)
    kw = {"targets": ["S", "N"], "n_permutations": 9, "seed": 4, "progress": False, **SMALL}
    a = tario_clinical.decode(X, clin, n_jobs=1, **kw)
    b = tario_clinical.decode(X, clin, n_jobs=2, **kw)
    pd.testing.assert_frame_equal(a.inference, b.inference)
    for k in a.resamples:
        pd.testing.assert_frame_equal(a.resamples[k], b.resamples[k])
    c = tario_clinical.decode(X, clin, n_jobs=1, **{**kw, "seed": 5})
    assert not a.resamples["permutation"].equals(c.resamples["permutation"])


def test_bootstrap_interval_is_honoured_and_two_sided_option():
    X, clin = _signal_data(8, n=60)
    kw = {"targets": ["S"], "p_method": "jackknife", "seed": 0, "progress": False, **SMALL}
    jk = tario_clinical.decode(X, clin, ci_method="jackknife", **kw)
    bs = tario_clinical.decode(X, clin, ci_method="bootstrap", n_bootstrap=20, **kw)
    assert bs.params["ci_method"] == "bootstrap" and bs.resamples["bootstrap"].shape == (20, 1)
    assert "bootstrap" in bs.summary().loc[0, "ci_method"]
    assert bs.summary().loc[0, "auroc"] == jk.summary().loc[0, "auroc"]
    assert bs.summary().loc[0, "low"] != jk.summary().loc[0, "low"]
    assert bs.auroc_ci("S", method="delong").method == "delong"
    with pytest.raises(SchemaError):
        bs.auroc_ci("S", method="jackknife")
    two = tario_clinical.decode(X, clin, ci_method="jackknife", alternative="two-sided", **kw)
    p1, p2 = jk.summary().loc[0, "p_value"], two.summary().loc[0, "p_value"]
    assert p2 == pytest.approx(min(1.0, 2 * p1)) or (p1 > 0.5 and p2 <= 2 * (1 - p1) + 1e-9)


def test_permutation_blocks_respect_groups_and_missing_patterns():
    Y = np.array([[1, 0], [0, np.nan], [1, 1], [0, np.nan], [1, 0], [0, 1]], float)
    groups = np.array(["a", "a", "a", "b", "b", "b"])
    blocks = inf.permutation_blocks(Y, groups)
    for b in blocks:
        assert len(set(groups[b])) == 1
        assert len({tuple(np.isnan(Y[i])) for i in b}) == 1
    assert sorted(np.concatenate(blocks).tolist()) == list(range(6))


def test_leave_one_group_out_permutation_reuses_label_free_folds():
    X, clin = _signal_data(9, n=90, signal=3.0)
    clin["site"] = np.repeat(["s1", "s2", "s3"], 30)
    res = tario_clinical.decode(
        X,
        clin,
        targets=["S"],
        group_by="site",
        n_inner_splits=3,
        n_permutations=19,
        ci_method="delong",
        seed=0,
        progress=False,
    )
    s = res.summary().iloc[0]
    assert res.resamples["permutation"].shape == (19, 1)
    assert 0 < s["p_value"] <= 1 and s["p_value"] <= 0.1


def test_bad_inference_arguments_raise_clear_errors():
    X, clin = _signal_data(1, n=40)
    with pytest.raises(SchemaError, match="p_method"):
        tario_clinical.decode(X, clin, targets=["S"], p_method="exact")
    with pytest.raises(SchemaError, match="alternative"):
        tario_clinical.decode(X, clin, targets=["S"], alternative="less")
    with pytest.raises(SchemaError, match="n_permutations"):
        tario_clinical.decode(X, clin, targets=["S"], n_permutations=0, **SMALL)


def test_representation_comparison_difference_holds_its_size_under_equal_information():
    """Two representations carrying the same information (independent noise on one latent
    signal): the jackknife p-value of the paired difference must not reject much more than 5 %.

    The audit's paired DeLong on pooled OOF scores is the anti-conservative alternative; 20
    seeded comparisons here, at most 4 rejections (P = 0.016 at a true size of 0.05).
    """
    from tario_clinical.decode import analyses

    rejections = 0
    for seed in range(20):
        rng = np.random.default_rng(100 + seed)
        n = 90
        z = rng.normal(size=n)
        y = (z + rng.normal(size=n) > 0.3).astype(int)
        ids = [f"P{i}" for i in range(n)]
        Xa = np.c_[z + rng.normal(size=n), rng.normal(size=(n, 9))].astype(np.float32)
        Xb = np.c_[z + rng.normal(size=n), rng.normal(size=(n, 9))].astype(np.float32)
        clin = pd.DataFrame({"patient_id": ids, "Y": y})
        r = analyses.representation_comparison(
            pd.DataFrame(Xa, index=ids),
            pd.DataFrame(Xb, index=ids),
            clin,
            targets=["Y"],
            n_splits=3,
            n_inner_splits=3,
            seed=seed,
        )
        diff = r.table[r.table["representation"] == "difference"].iloc[0]
        rejections += diff["p_value"] <= 0.05
        assert "jackknife" in diff["ci_method"]
    assert rejections <= 4


def test_bootstrap_with_leave_one_group_out_resamples_groups_too():
    X, clin = _signal_data(11, n=90, signal=3.0)
    clin["site"] = np.repeat(["s1", "s2", "s3"], 30)
    res = tario_clinical.decode(
        X,
        clin,
        targets=["S"],
        group_by="site",
        n_inner_splits=3,
        ci_method="bootstrap",
        n_bootstrap=5,
        p_method="delong",
        seed=0,
        progress=False,
    )
    s = res.summary().iloc[0]
    assert res.resamples["bootstrap"].shape == (5, 1)
    assert s["low"] < s["auroc"] < s["high"]
