"""Second trial from the same biology: shared biology, chosen prevalences, arms and site shift,
and the Monte Carlo truth of what a locked score achieves there."""

from __future__ import annotations

import numpy as np
import pytest

import tario_clinical as tc
from tario_clinical import TarioClinicalError


@pytest.fixture(scope="module")
def first():
    return tc.simulate_trial(200, seed=3, n_genes=40, compute_attainable=False)


def test_first_trial_is_unchanged_by_the_second_trial_option(first):
    pair = tc.simulate_trial(
        200, seed=3, n_genes=40, compute_attainable=False, second_trial={"n_patients": 50}
    )
    assert pair.clinical.equals(first.clinical)
    np.testing.assert_array_equal(pair.representations.X, first.representations.X)
    assert first.second_trial is None and pair.second_trial is not None


def test_second_trial_shares_the_biology_not_the_patients(first):
    v = first.draw_second_trial(120, seed=1, compute_attainable=False)
    assert v.truth.loadings.equals(first.truth.loadings)
    assert list(v.representations.var_names) == list(first.representations.var_names)
    assert v.clinical["patient_id"].iloc[0] == "V0000"
    assert set(v.clinical["study_id"]) == {"SIM-002"}
    assert set(v.clinical["site"]) <= {"V01", "V02", "V03", "V04"}
    assert not set(v.clinical["patient_id"]) & set(first.clinical["patient_id"])
    sim = v.representations.uns["tario_clinical"]["simulator"]
    assert sim["biology_seed"] == 3 and sim["seed"] == 1
    # the same seed gives the same second trial; another seed another one
    again = first.draw_second_trial(120, seed=1, compute_attainable=False)
    np.testing.assert_array_equal(again.representations.X, v.representations.X)
    other = first.draw_second_trial(120, seed=2, compute_attainable=False)
    assert not np.array_equal(other.representations.X, v.representations.X)
    # same seed number as the first trial still gives other patients
    same = first.draw_second_trial(200, seed=3, compute_attainable=False)
    assert not np.array_equal(same.truth.latent.to_numpy(), first.truth.latent.to_numpy())


def test_chosen_prevalence_mix_and_allocation(first):
    v = first.draw_second_trial(
        4000,
        seed=5,
        prevalence={"EGFR": 0.30},
        cancer_type_mix={"LUAD": 1, "LUSC": 1},
        allocation=0.25,
        compute_attainable=False,
    )
    pop = v.truth.population
    assert pop["expected_prevalence"]["EGFR"] == pytest.approx(0.30, abs=1e-6)
    assert pop["cancer_type_mix"] == {"LUAD": 0.5, "LUSC": 0.5, "COAD": 0.0, "PAAD": 0.0}
    g = v.truth.genotypes
    # binomial tolerance: 4 SD of a proportion with n = 4000
    assert abs(g["EGFR"].mean() - 0.30) < 4 * np.sqrt(0.3 * 0.7 / 4000)
    assert ((g.EGFR == 1) & (g.KRAS == 1)).sum() == 0  # dependence kept
    assert set(v.clinical["cancer_type"]) == {"LUAD", "LUSC"}
    assert (v.clinical["arm"] == "experimental").mean() == 0.25
    single = first.draw_second_trial(30, seed=5, allocation=0.0, compute_attainable=False)
    assert set(single.clinical["arm"]) == {"control"}


def test_site_shift_moves_the_representation(first):
    flat = first.draw_second_trial(300, seed=7, compute_attainable=False)
    shifted = first.draw_second_trial(300, seed=7, site_shift=2.0, compute_attainable=False)
    # same patients (same seed), shifted representation
    assert shifted.truth.latent.equals(flat.truth.latent)
    d = (shifted.representations.X - flat.representations.X).mean(axis=0)
    scale = flat.representations.X.std(axis=0)
    assert np.median(np.abs(d / scale)) > 0.5
    assert shifted.truth.population["shift"] == {"offset": 2.0, "gain": 1.0, "noise": 2.0}


def test_locked_truth_offset_changes_calibration_not_discrimination(first):
    x = first.representations.X.astype(float)
    mu, sd = x.mean(axis=0), x.std(axis=0)
    w = np.linalg.lstsq((x - mu) / sd, first.truth.genotypes["EGFR"].to_numpy() - 0.15, rcond=None)[
        0
    ]

    def predict(df):
        s = ((df.to_numpy(float) - mu) / sd) @ w * 4 - 2
        return 1 / (1 + np.exp(-s))

    base = first.draw_second_trial(20, seed=8, compute_attainable=False)
    off = first.draw_second_trial(20, seed=8, site_shift={"offset": 1.0}, compute_attainable=False)
    noisy = first.draw_second_trial(20, seed=8, site_shift=1.5, compute_attainable=False)
    tb = base.locked_truth(predict, "EGFR", n=20_000)
    to = off.locked_truth(predict, "EGFR", n=20_000)
    tn = noisy.locked_truth(predict, "EGFR", n=20_000)
    # an offset moves a linear score by a constant: the same AUROC on the same fresh patients
    # (up to ties broken differently by the float32 rounding of the shifted representation)
    assert to["auroc"] == pytest.approx(tb["auroc"], abs=1e-5)
    assert abs(to["calibration_intercept"] - tb["calibration_intercept"]) > 0.05
    assert tn["auroc"] < tb["auroc"] - 0.03  # gain and noise lower discrimination
    assert 0.1 < tb["prevalence"] < 0.2 and tb["n"] == 20_000
    assert 0 < tb["brier"] < 0.25
    with pytest.raises(TarioClinicalError, match="target must be one of"):
        base.locked_truth(predict, "TP53")
    with pytest.raises(TarioClinicalError, match="probabilities"):
        base.locked_truth(lambda df: np.full(len(df), 2.0), "EGFR", n=100)


def test_attainable_truth_reflects_the_shift(first):
    flat = first.draw_second_trial(20, seed=1)
    shifted = first.draw_second_trial(20, seed=1, site_shift=2.0)
    for g in ("EGFR", "KRAS"):
        assert shifted.truth.attainable_auroc[g] < flat.truth.attainable_auroc[g]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"site_shift": -1.0},
        {"site_shift": {"offset": 1.0, "tilt": 2.0}},
        {"site_shift": "strong"},
        {"prevalence": {"EGFR": 1.5}},
        {"prevalence": {"TP53": 0.2}},
        {"prevalence": {"EGFR": 0.999999}},
        {"cancer_type_mix": {"GBM": 1.0}},
        {"allocation": 1.5},
        {"n_sites": 0},
        {"n_patients": 5},
    ],
)
def test_bad_second_trial_options(first, kwargs):
    args = {"n_patients": 30, "compute_attainable": False} | kwargs
    with pytest.raises(TarioClinicalError):
        first.draw_second_trial(**args)


def test_simulate_trial_checks_second_trial_options():
    with pytest.raises(TarioClinicalError, match="unknown option"):
        tc.simulate_trial(30, n_genes=10, second_trial={"n_patient": 20})
    with pytest.raises(TarioClinicalError, match="mapping"):
        tc.simulate_trial(30, n_genes=10, second_trial=20)


def test_hand_built_trial_has_no_generator(first):
    from tario_clinical.simulate import SimulatedTrial

    bare = SimulatedTrial(first.clinical, first.representations, first.truth, seed=0)
    with pytest.raises(TarioClinicalError, match="no generator"):
        bare.draw_second_trial(20)
