"""Simulator statistics within tolerance across seeds; same seed -> same data."""

from __future__ import annotations

import time

import numpy as np
import pytest

from tario_clinical import TarioClinicalError, load_cohort, simulate_trial


@pytest.fixture(scope="module")
def trials():
    return [simulate_trial(1500, seed=s, n_genes=50, compute_attainable=False) for s in range(3)]


@pytest.mark.parametrize(
    ("gene", "target", "tol"),
    [("EGFR", 0.15, 0.035), ("KRAS", 0.30, 0.04), ("STK11", 0.15, 0.035), ("PTEN", 0.05, 0.02)],
)
def test_genotype_prevalences(trials, gene, target, tol):
    for t in trials:
        g = t.truth.genotypes[gene]
        assert abs(g.mean() - target) < tol, (gene, g.mean())


def test_egfr_kras_exclusive_and_stk11_enriched_in_kras(trials):
    for t in trials:
        g = t.truth.genotypes
        assert ((g.EGFR == 1) & (g.KRAS == 1)).sum() == 0
        assert g.STK11[g.KRAS == 1].mean() > 2 * g.STK11[g.KRAS == 0].mean()


def test_clinical_table_is_valid_and_complete(small_trial):
    c = load_cohort(small_trial.clinical)
    assert len(c) == 300 and c.genotype_columns == ["EGFR", "KRAS", "STK11", "PTEN"]
    assert set(c.clinical["arm"]) == {"control", "experimental"}
    assert c.clinical["cancer_type"].nunique() == 4 and c.clinical["histology"].nunique() >= 6
    assert 0.1 < c.clinical["os_event"].astype(float).mean() < 0.95  # censoring present
    ad = small_trial.representations
    assert ad.X.dtype == np.float32 and list(ad.obs_names) == c.clinical["patient_id"].tolist()
    assert ad.var_names.is_unique and ad.var_names[0] == "EGFR"
    assert ad.uns["tario_clinical"]["seed"] == 0


def test_same_seed_same_data_and_different_seed_differs():
    a = simulate_trial(100, seed=7, n_genes=30)
    b = simulate_trial(100, seed=7, n_genes=30)
    c = simulate_trial(100, seed=8, n_genes=30)
    assert a.clinical.equals(b.clinical)
    np.testing.assert_array_equal(a.representations.X, b.representations.X)
    assert a.truth.attainable_auroc == b.truth.attainable_auroc
    assert not a.clinical.equals(c.clinical)


def test_planted_signal_is_in_the_representation():
    """Genotype shifts reach X: the oracle projection on the loadings separates mutants."""
    t = simulate_trial(2000, seed=1, n_genes=300, compute_attainable=False)
    x = t.representations.X.astype(float)
    x = (x - x.mean(0)) / x.std(0)
    w = t.truth.loadings.to_numpy()
    zhat = x @ w.T
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(t.truth.genotypes["EGFR"], zhat[:, 0]) > 0.7
    null = simulate_trial(2000, seed=1, n_genes=300, genotype_effect=0.0, compute_attainable=False)
    xn = null.representations.X.astype(float)
    xn = (xn - xn.mean(0)) / xn.std(0)
    assert abs(roc_auc_score(null.truth.genotypes["EGFR"], (xn @ w.T)[:, 0]) - 0.5) < 0.05


def test_attainable_auroc_is_sane(small_trial):
    att, lin = small_trial.truth.attainable_auroc, small_trial.truth.attainable_auroc_linear
    for k in att:
        assert 0.55 < att[k] < 0.99
        assert lin[k] <= att[k] + 0.01  # Bayes is the ceiling (up to Monte Carlo error)


def test_predictive_biomarker_planted():
    t = simulate_trial(4000, seed=2, n_genes=20, compute_attainable=False)
    from lifelines import CoxPHFitter

    df = t.clinical[["os_time", "os_event"]].copy()
    df["arm"] = (t.clinical["arm"] == "experimental").astype(float)
    df["z04"] = t.truth.latent["P04"].to_numpy()
    df["arm_x_z04"] = df["arm"] * df["z04"]
    fit = CoxPHFitter().fit(df, "os_time", "os_event")
    lo, hi = fit.confidence_intervals_.loc["arm_x_z04"]
    assert lo < -0.5 < hi


def test_simulate_500_is_fast():
    simulate_trial(50, seed=0)  # warm imports
    t0 = time.perf_counter()
    simulate_trial(500, seed=0)
    assert time.perf_counter() - t0 < 5.0


@pytest.mark.parametrize(
    "kwargs", [{"n_patients": 5}, {"n_genes": 3}, {"n_programs": 4}, {"snr": 0}]
)
def test_bad_parameters(kwargs):
    args = {"n_patients": 50} | kwargs
    n = args.pop("n_patients")
    with pytest.raises(TarioClinicalError):
        simulate_trial(n, **args)


def test_fewer_genes_than_programs_is_a_clear_error_unless_attainable_is_off():
    with pytest.raises(TarioClinicalError, match="n_genes=8 < n_programs=12"):
        simulate_trial(10, seed=0, n_genes=8)
    trial = simulate_trial(10, seed=0, n_genes=8, compute_attainable=False)
    assert trial.representations.shape == (10, 8)
