"""simulate_trial's planted endpoint signals: continuous target, histological subtype, prognostic
vs predictive survival terms (issue 14), and the original outputs left unchanged."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from tario_clinical.errors import TarioClinicalError
from tario_clinical.simulate import simulate_trial

#: the clinical columns of the simulator before the planted signals were added, in order
OLD_COLUMNS = [
    "patient_id",
    "study_id",
    "site",
    "arm",
    "cancer_type",
    "histology",
    "EGFR",
    "KRAS",
    "STK11",
    "PTEN",
    "best_response",
    "os_time",
    "os_event",
    "pfs_time",
    "pfs_event",
    "age",
    "sex",
    "stage",
    "ecog",
    "smoking",
]


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def test_original_outputs_are_unchanged():
    """Checksums computed with the simulator *before* the planted signals were added."""
    t = simulate_trial(200, seed=1, n_genes=100, compute_attainable=False)
    assert list(t.clinical.columns) == [*OLD_COLUMNS, "signature_score", "histology_subtype"]
    old = t.clinical[OLD_COLUMNS].to_csv(index=False).encode()
    assert _sha(old) == "8dc26c8776bd6145ef8cbf30e6f363a0fa94eac1b74b9464b179412ac4f668d7"
    x = np.ascontiguousarray(t.representations.X)
    assert _sha(x.tobytes()) == "992c07dffaa28d2547b0a19c6f2745f40161549c008bf869e89a6e49c42787cf"
    lat = t.truth.latent.to_numpy().tobytes()
    assert _sha(lat) == "f8778c069600c6901ca8af37a3d4e70c850ff47c673ed906d86484afc6521f37"


def test_benefit_effect_zero_removes_only_the_arm_by_p04_term():
    kw = {"seed": 4, "n_genes": 30, "compute_attainable": False}
    a = simulate_trial(300, **kw)
    b = simulate_trial(300, benefit_effect=0.0, **kw)
    z4 = a.truth.latent["P04"].to_numpy()
    np.testing.assert_allclose(a.truth.benefit.to_numpy(), -0.2 - 0.5 * z4)
    np.testing.assert_allclose(b.truth.benefit.to_numpy(), -0.2)
    assert b.truth.effects["log_hr"]["arm_x_z04"] == 0.0
    assert b.truth.planted["survival"]["predictive"] == {"program": "P04", "arm_x_program": 0.0}
    assert a.truth.planted["survival"]["prognostic"] == {"STK11": 0.45, "KRAS": 0.15, "EGFR": -0.3}
    survival = ["os_time", "os_event", "pfs_time", "pfs_event"]
    rest = [c for c in a.clinical.columns if c not in survival]
    pd.testing.assert_frame_equal(a.clinical[rest], b.clinical[rest])
    assert np.array_equal(a.representations.X, b.representations.X)
    # control patients' outcomes do not depend on the treatment-effect term
    ctrl = (a.clinical["arm"] == "control").to_numpy()
    pd.testing.assert_frame_equal(a.clinical.loc[ctrl, survival], b.clinical.loc[ctrl, survival])
    assert not a.clinical.loc[~ctrl, "os_time"].equals(b.clinical.loc[~ctrl, "os_time"])
    # inherited by a second trial of the same biology
    v = b.draw_second_trial(50, seed=2, compute_attainable=False)
    assert v.truth.planted["survival"]["benefit_effect"] == 0.0
    np.testing.assert_allclose(v.truth.benefit.to_numpy(), -0.2)


@pytest.mark.parametrize(("effect", "lo", "hi"), [(-0.5, -0.7, -0.3), (0.0, -0.15, 0.15)])
def test_cox_interaction_recovers_the_planted_benefit_effect(effect, lo, hi):
    from statsmodels.duration.hazard_regression import PHReg

    t = simulate_trial(6000, seed=11, n_genes=20, compute_attainable=False, benefit_effect=effect)
    c = t.clinical
    arm = (c["arm"] == "experimental").to_numpy(float)
    z4 = t.truth.latent["P04"].to_numpy()
    g = t.truth.genotypes
    exog = np.column_stack([arm, z4, arm * z4, g["STK11"], g["KRAS"], g["EGFR"]])
    fit = PHReg(c["os_time"].to_numpy(), exog, status=c["os_event"].to_numpy()).fit()
    assert lo < fit.params[2] < hi
    # the prognostic (genotype) terms are there whatever the predictive term
    np.testing.assert_allclose(fit.params[3:], [0.45, 0.15, -0.3], atol=0.15)
    assert abs(fit.params[1]) < 0.1  # P04 is not prognostic in the control arm


def test_signature_score_r2_matches_its_truth():
    t = simulate_trial(20_000, seed=5, n_genes=48, compute_attainable=True)
    sig = t.truth.planted["signature_score"]
    y = t.clinical["signature_score"].to_numpy()
    z = t.truth.latent.to_numpy()
    a = np.zeros(z.shape[1])
    for name, v in sig["coefficients"].items():
        a[int(name[1:])] = v
    resid = y - sig["intercept"] - z @ a
    assert abs(resid.std() - sig["noise_sd"]) < 0.02
    r2_latent = 1.0 - resid.var() / y.var()
    assert abs(r2_latent - sig["r2_latent"]) < 0.015
    assert abs(y.mean() - sig["mean"]) < 0.03 and abs(y.var() / sig["variance"] - 1) < 0.04
    # the best linear function of the representation, fitted on one half, on the other half
    x = np.column_stack([np.ones(len(y)), np.asarray(t.representations.X, float)])
    h = len(y) // 2
    coef = np.linalg.lstsq(x[:h], y[:h], rcond=None)[0]
    r2_x = 1.0 - np.mean((y[h:] - x[h:] @ coef) ** 2) / y[h:].var()
    assert abs(r2_x - sig["r2_linear"]) < 0.03
    assert sig["r2_linear"] < sig["r2_latent"] - 0.1
    assert sig["r2_linear"] - 0.01 <= sig["r2_bayes"] <= sig["r2_latent"]
    assert sig["pearson_r_linear"] == pytest.approx(np.sqrt(sig["r2_linear"]), abs=1e-5)


def test_histology_subtype_follows_the_programs_within_cancer_type():
    t = simulate_trial(8000, seed=6, n_genes=30, compute_attainable=False)
    c = t.clinical
    from tario_clinical.simulate._generative import HISTOLOGY

    for ctype, levels in HISTOLOGY.items():
        sub = set(c.loc[c["cancer_type"] == ctype, "histology_subtype"])
        assert sub <= {name for name, _ in levels}
    luad = (c["cancer_type"] == "LUAD").to_numpy()
    z = t.truth.latent.loc[luad, ["P05", "P06"]]
    z = z - z.mean()
    means = z.groupby(c.loc[luad, "histology_subtype"].to_numpy()).mean()
    ref = means.loc["acinar adenocarcinoma"]
    # coefficients (P05, P06) vs acinar: papillary (1.5, 0), solid (-1, 1.5), lepidic (0, -1.5)
    assert means.loc["papillary adenocarcinoma", "P05"] - ref["P05"] > 0.5
    assert means.loc["solid adenocarcinoma", "P06"] - ref["P06"] > 0.5
    assert means.loc["solid adenocarcinoma", "P05"] - ref["P05"] < -0.3
    assert means.loc["lepidic adenocarcinoma", "P06"] - ref["P06"] < -0.5
    # the original histology column carries no such signal
    old = z.groupby(c.loc[luad, "histology"].to_numpy()).mean()
    assert float(old.abs().to_numpy().max()) < 0.15
    # squamous subtype follows P05 too (coefficient 1.5)
    lusc = (c["cancer_type"] == "LUSC").to_numpy()
    p05 = t.truth.latent.loc[lusc, "P05"]
    nk = (c.loc[lusc, "histology_subtype"] == "non-keratinising squamous").to_numpy()
    assert p05[nk].mean() - p05[~nk].mean() > 0.5
    assert t.truth.planted["histology_subtype"]["programs"] == ["P05", "P06"]


def test_planted_columns_are_seeded_and_in_second_trials():
    a = simulate_trial(80, seed=9, n_genes=20, compute_attainable=False)
    b = simulate_trial(80, seed=9, n_genes=20, compute_attainable=False)
    pd.testing.assert_frame_equal(a.clinical, b.clinical)
    v = a.draw_second_trial(60, seed=3, site_shift=0.5, compute_attainable=False)
    assert {"signature_score", "histology_subtype"} <= set(v.clinical.columns)
    assert (
        v.truth.planted["signature_score"]["r2_linear"]
        < a.truth.planted["signature_score"]["r2_linear"]
    )  # the site shift's extra noise lowers what the representation holds
    assert "r2_bayes" not in a.truth.planted["signature_score"]  # compute_attainable=False


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "strong", None])
def test_bad_benefit_effect(bad):
    with pytest.raises(TarioClinicalError, match="benefit_effect"):
        simulate_trial(20, seed=0, n_genes=10, compute_attainable=False, benefit_effect=bad)
