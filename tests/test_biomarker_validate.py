"""validate_biomarker: every number against an independent computation, the patient flow, the
encoder check, recalibration kept apart, JSON and figures.

Reference values: AUROC from scikit-learn's ``roc_auc_score``; the DeLong SE from
``tario_clinical.metrics.auroc_ci`` (the interval: Wald on the logit scale, by hand); calibration intercept and slope from
``tario_clinical.metrics.calibration`` (its own Newton fit) and statsmodels GLM (R ``glm``); the
survival numbers from the public ``tario_clinical.survival`` functions (checked against R
``survival`` in ``tests/test_survival.py``) on the same patients.
"""

from __future__ import annotations

import json

import matplotlib
import numpy as np
import pandas as pd
import pytest

import tario_clinical as tc
from tario_clinical import metrics
from tario_clinical.biomarker import (
    EncoderMismatchWarning,
    ValidationResult,
    lock_biomarker,
    validate_biomarker,
)
from tario_clinical.errors import AnalysisError, CohortError, EncoderError, SchemaError

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def setup():
    trial = tc.simulate_trial(
        300,
        seed=11,
        n_genes=80,
        compute_attainable=False,
        second_trial={"n_patients": 260, "seed": 4, "compute_attainable": False},
    )
    cohort = trial.cohort()
    res = tc.decode(
        trial.representations,
        cohort,
        targets=["KRAS"],
        n_repeats=1,
        p_method="delong",
        ci_method="delong",
        seed=0,
    )
    locked = lock_biomarker(
        res, "KRAS", representations=trial.representations, cohort=cohort, include_time=False
    )
    return trial, locked


@pytest.fixture(scope="module")
def validated(setup):
    trial, locked = setup
    v = trial.second_trial
    return validate_biomarker(
        locked,
        v.representations,
        v.cohort(),
        covariates=["age", "ecog"],
        development=trial.representations,
    )


def _labelled(val):
    d = val.scores.dropna(subset=["y_true"])
    return d["y_true"].to_numpy(int), d["score"].to_numpy(), d


def test_discrimination_matches_independent_computations(validated):
    from sklearn.metrics import roc_auc_score

    y, s, _ = _labelled(validated)
    d = validated.discrimination.set_index("metric")
    assert d.loc["auroc", "estimate"] == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    ref = metrics.auroc_ci(y, s)
    assert d.loc["auroc", "se"] == pytest.approx(ref.se, abs=1e-15)
    # Wald on the logit scale with the DeLong SE (delta method), by hand
    a, se = ref.auroc, ref.se
    half = 1.959963984540054 * se / (a * (1 - a))
    lo, hi = (1 / (1 + np.exp(-(np.log(a / (1 - a)) + k * half))) for k in (-1, 1))
    assert (d.loc["auroc", "low"], d.loc["auroc", "high"]) == pytest.approx((lo, hi), abs=1e-12)
    assert lo < a < hi and 0 < lo and hi < 1
    assert (a - lo) > (hi - a)  # the logit interval leans towards 0.5
    assert d.loc["auroc", "n"] == y.size and d.loc["auroc", "n_positive"] == y.sum()
    assert d.loc["auprc", "estimate"] == pytest.approx(metrics.auprc(y, s))
    roc = validated.roc
    assert roc["fpr"].iloc[0] == 0 and roc["tpr"].iloc[-1] == 1
    assert np.trapezoid(roc["tpr"], roc["fpr"]) == pytest.approx(roc_auc_score(y, s), abs=1e-12)


def test_auroc_logit_interval_edges():
    from tario_clinical.biomarker.validate import auroc_logit_interval

    assert auroc_logit_interval(1.0, 0.0, 0.95) == (1.0, 1.0)  # perfect separation: the point
    assert auroc_logit_interval(0.7, 0.0, 0.95) == (0.7, 0.7)
    lo, hi = auroc_logit_interval(0.5, 0.05, 0.95)
    assert lo == pytest.approx(1 - hi, abs=1e-15) and lo < 0.5 < hi  # symmetric at 0.5
    lo, hi = auroc_logit_interval(0.98, 0.03, 0.95)
    assert hi < 1 and lo < 0.98 - 1.96 * 0.03 * 0.5  # inside (0, 1), wide towards 0.5
    lo90, hi90 = auroc_logit_interval(0.98, 0.03, 0.90)
    assert lo < lo90 < hi90 < hi


def test_calibration_matches_metrics_and_glm(validated):
    import statsmodels.api as sm

    y, s, d = _labelled(validated)
    p = d["probability"].to_numpy()
    c = validated.calibration.set_index("metric")
    ref = metrics.calibration(y, p)
    assert c.loc["calibration_intercept", "estimate"] == pytest.approx(ref.intercept, abs=1e-7)
    assert c.loc["calibration_slope", "estimate"] == pytest.approx(ref.slope, abs=1e-7)
    fit = sm.GLM(y, np.column_stack([np.ones(y.size), s]), family=sm.families.Binomial()).fit()
    assert c.loc["calibration_slope", "se"] == pytest.approx(fit.bse[1], rel=1e-6)
    citl = sm.GLM(y, np.ones((y.size, 1)), family=sm.families.Binomial(), offset=s).fit(
        cov_type="HC0"
    )
    assert c.loc["calibration_intercept", "se"] == pytest.approx(citl.bse[0], rel=1e-6)
    assert c.loc["brier", "estimate"] == pytest.approx(np.mean((p - y) ** 2))
    assert c.loc["observed_expected_ratio", "estimate"] == pytest.approx(y.sum() / p.sum())
    assert c.loc["observed_prevalence", "estimate"] == pytest.approx(y.mean())
    curve = validated.calibration_curve
    assert curve["n"].sum() == y.size and len(curve) == 10
    assert validated.calibration_smooth["predicted"].is_monotonic_increasing
    dc = validated.decision_curve
    ref_nb = metrics.net_benefit(y, p)
    np.testing.assert_allclose(dc["net_benefit"], ref_nb["net_benefit"])


def test_classification_at_the_locked_cutoff(validated, setup):
    _, locked = setup
    y, s, _ = _labelled(validated)
    cut = locked.cutoffs["score"].iloc[0]
    pos = s > cut
    t = validated.classification.set_index("metric")
    assert t.loc["sensitivity", "estimate"] == pytest.approx(pos[y == 1].mean())
    assert t.loc["specificity", "estimate"] == pytest.approx((~pos)[y == 0].mean())
    assert t.loc["ppv", "estimate"] == pytest.approx(y[pos].mean())
    assert t.loc["npv", "estimate"] == pytest.approx(1 - y[~pos].mean())
    assert (t["low"] <= t["estimate"]).all() and (t["estimate"] <= t["high"]).all()


def test_survival_matches_the_survival_module(validated, setup):
    trial, locked = setup
    v = trial.second_trial
    sc = validated.scores.set_index("patient_id")
    df = v.clinical.set_index("patient_id").loc[sc.index].reset_index()
    df["score"] = sc["score"].to_numpy()
    df["biomarker"] = locked.assign_groups(sc["score"]).array
    s = validated.survival
    assert s.groups == ("negative", "positive") and s.n == len(df)
    cox = tc.survival.cox(df, "os_time", "os_event", ["biomarker"])
    pd.testing.assert_frame_equal(s.cox_unadjusted, cox)
    adj = tc.survival.cox(df, "os_time", "os_event", ["biomarker", "age", "ecog"])
    pd.testing.assert_frame_equal(s.cox_adjusted, adj)
    lr = tc.survival.logrank(df, "os_time", "os_event", "biomarker")
    pd.testing.assert_frame_equal(s.logrank, lr)
    pd.testing.assert_frame_equal(
        s.concordance, tc.survival.concordance(df, "os_time", "os_event", "score")
    )
    pd.testing.assert_frame_equal(s.rmst, tc.survival.rmst(df, "os_time", "os_event", "biomarker"))
    inter = tc.survival.treatment_interaction(
        df, "os_time", "os_event", "arm", "biomarker", subgroups=()
    )
    assert s.interaction.interaction_p_value == pytest.approx(inter.interaction_p_value)
    km = tc.survival.km(df, "os_time", "os_event", "biomarker")
    pd.testing.assert_frame_equal(s.km.summary, km.summary)


def test_comparison_is_development_vs_validation(validated, setup):
    _, locked = setup
    c = validated.comparison.set_index("metric")
    perf = locked.development["performance"]
    assert c.loc["auroc", "development"] == pytest.approx(perf["auroc"])
    assert c.loc["auroc", "validation"] == pytest.approx(
        validated.discrimination.set_index("metric").loc["auroc", "estimate"]
    )
    assert c.loc["auroc", "difference"] == pytest.approx(
        c.loc["auroc", "development"] - c.loc["auroc", "validation"]
    )
    assert {"auroc_apparent", "prevalence", "calibration_slope", "brier"} <= set(c.index)
    assert "hr[biomarker[positive]]" in c.index
    assert c.loc["fraction_positive[median]", "development"] == pytest.approx(0.5)


def test_result_records_the_artefact_and_the_check(validated, setup):
    _, locked = setup
    assert validated.artefact_sha256 == locked.sha256
    assert validated.to_dict()["artefact_sha256"] == locked.sha256
    assert validated.representation_check["match"].all()
    assert not validated.encoder_overridden
    assert validated.features == {"n_required": 80, "n_given": 80, "n_extra": 0}


def test_shift_diagnostics_without_shift_look_alike(validated):
    sh = validated.shift
    assert sh.membership is not None
    assert sh.membership["auroc"].iloc[0] < 0.7
    assert sh.flags["representations_distinguishable"] is False
    dist = sh.score_distribution.set_index("cohort")
    assert set(dist.index) == {"development", "validation"}
    fd = sh.feature_differences
    assert len(fd) == 80 and fd["abs_smd"].is_monotonic_decreasing
    # contributions add up to the shift of the mean locked score (the model is linear)
    assert fd["score_contribution"].sum() == pytest.approx(
        dist.loc["validation", "mean"] - dist.loc["development", "mean"], abs=1e-8
    )


def test_recalibration_is_reported_separately(setup):
    trial, locked = setup
    v = trial.second_trial
    with_r = validate_biomarker(locked, v.representations, v.cohort(), endpoint=None)
    without = validate_biomarker(
        locked, v.representations, v.cohort(), endpoint=None, recalibrate=False
    )
    assert without.recalibration is None
    pd.testing.assert_frame_equal(with_r.calibration, without.calibration)
    r = with_r.recalibration.set_index("method")
    c = with_r.calibration.set_index("metric")
    assert r.iloc[1]["slope"] == pytest.approx(c.loc["calibration_slope", "estimate"])
    assert r.iloc[0]["intercept"] == pytest.approx(c.loc["calibration_intercept", "estimate"])
    sc = with_r.scores
    lp = np.log(sc["probability"] / (1 - sc["probability"]))
    a, b = r.iloc[1]["intercept"], r.iloc[1]["slope"]
    np.testing.assert_allclose(sc["probability_recalibrated"], 1 / (1 + np.exp(-(a + b * lp))))
    assert (r["basis"] == "fitted and evaluated on the validation cohort (apparent)").all()
    assert any("reported separately" in n for n in with_r.notes)


def test_patient_flow_logs_every_exclusion(setup):
    trial, locked = setup
    v = trial.second_trial
    clin = v.clinical.copy()
    reps = v.representations.copy()
    ids = list(clin["patient_id"])
    clin.loc[clin["patient_id"].isin(ids[:3]), "KRAS"] = None  # missing labels
    clin.loc[clin["patient_id"].isin(ids[3:5]), ["os_time", "os_event"]] = None  # no survival
    reps.X[5, 0] = np.inf  # non-finite representation
    reps = reps[[p not in ids[6:10] for p in reps.obs_names]].copy()  # no representation
    extra = v.representations[:2].copy()
    extra.obs_names = ["X1", "X2"]
    import anndata as ad

    reps = ad.concat([reps, extra], uns_merge="first")
    cohort = tc.load_cohort(clin)
    val = validate_biomarker(locked, reps, cohort, endpoint="os")
    e = val.exclusions
    reason = e.set_index("patient_id")["reason"]
    assert set(e.loc[e.reason == "missing label KRAS", "patient_id"]) >= set(ids[:3])
    assert set(e.loc[e.reason == "no representation", "patient_id"]) == set(ids[6:10])
    assert reason[ids[5]] == "non-finite representation values"
    assert set(e.loc[e.reason == "representation without clinical row", "patient_id"]) == {
        "X1",
        "X2",
    }
    assert set(e.loc[e.analysis == "validation:survival", "patient_id"]) == set(ids[3:5])
    flow = val.flow.set_index("step")
    assert flow.loc["clinical patients", "n"] == 260
    assert flow.loc["with a representation", "n_excluded"] == 4
    assert flow.loc["scored by the locked biomarker", "n"] == 255
    assert val.survival.n == 253
    # a Cohort passed in is left unchanged (like decode() and stratify()); its owner records
    # the result's exclusions
    assert not {"no representation", "missing label KRAS"} & set(cohort.exclusions["reason"])
    cohort.record_exclusions(e, patients_only=True)
    assert {"no representation", "missing label KRAS"} <= set(cohort.exclusions["reason"])
    d = val.to_dict()
    assert {r["reason"] for r in d["exclusions"]} >= {"no representation"}


def test_single_arm_trial_has_no_interaction(setup):
    trial, locked = setup
    single = trial.draw_second_trial(150, seed=21, allocation=1.0, compute_attainable=False)
    val = validate_biomarker(locked, single.representations, single.cohort())
    assert val.survival is not None and val.survival.interaction is None
    assert any("needs exactly two" in n for n in val.survival.notes)
    with pytest.raises(AnalysisError, match="interaction"):
        val.plot_forest()


def test_input_errors(setup):
    trial, locked = setup
    v = trial.second_trial
    with pytest.raises(SchemaError, match="lack 2 of the 80 features"):
        validate_biomarker(locked, v.representations[:, 2:], v.cohort())
    clin = v.clinical.drop(columns=["KRAS"])
    with pytest.raises(CohortError, match="predicts 'KRAS'"):
        validate_biomarker(locked, v.representations, clin)
    with pytest.raises(CohortError, match="covariates"):
        validate_biomarker(locked, v.representations, v.cohort(), covariates=["bmi"])
    one = v.clinical.assign(KRAS="wild-type")
    with pytest.raises(AnalysisError, match="both classes"):
        validate_biomarker(locked, v.representations, one)
    with pytest.raises(SchemaError, match="LockedBiomarker"):
        validate_biomarker({"target": "KRAS"}, v.representations, v.cohort())


def test_encoder_mismatch_refused_then_flagged_when_overridden(setup):
    trial, locked = setup
    v = trial.second_trial
    other = tc.simulate_trial(260, seed=99, n_genes=80, compute_attainable=False)
    # same gene names, another biology (another "encoder"): refused
    with pytest.raises(EncoderError, match="weights_sha256"):
        validate_biomarker(locked, other.representations, v.cohort())
    reps = other.representations.copy()
    reps.obs_names = v.representations.obs_names
    with pytest.warns(EncoderMismatchWarning):
        val = validate_biomarker(
            locked, reps, v.cohort(), endpoint=None, allow_encoder_mismatch=True
        )
    assert val.encoder_overridden
    assert val.notes[0].startswith("ENCODER MISMATCH OVERRIDDEN")
    assert val.to_dict()["encoder_overridden"] is True


def test_artefact_path_and_dataframe_cohort(tmp_path, setup):
    trial, locked = setup
    v = trial.second_trial
    path = locked.save(tmp_path / "kras.json")
    val = validate_biomarker(path, v.representations, v.clinical, endpoint=None)
    assert val.artefact_sha256 == locked.sha256
    assert val.survival is None and val.shift.membership is None
    assert any("development representations" in n for n in val.notes)


def test_to_dict_is_json_and_holds_no_patient_ids(validated, setup):
    trial, _ = setup
    d = validated.to_dict()
    text = json.dumps(d, allow_nan=False)
    ids = set(trial.second_trial.clinical["patient_id"])
    assert not any(f'"{p}"' in text for p in list(ids)[:50])
    assert d["kind"] == "tario_clinical.biomarker_validation"
    assert {"discrimination", "calibration", "survival", "shift", "comparison", "flow"} <= set(d)
    full = validated.to_dict(include_patient_ids=True)
    assert len(full["scores"]) == len(validated.scores)
    s = validated.summary()
    assert list(s.columns) == ["section", "metric", "estimate", "low", "high", "p_value"]
    assert {"discrimination", "calibration", "classification", "survival", "shift"} <= set(
        s["section"]
    )


def test_plots_and_html(validated):
    import matplotlib.pyplot as plt
    from matplotlib.axes import Axes

    for fn in (
        validated.plot_roc,
        validated.plot_calibration,
        validated.plot_decision_curve,
        validated.plot_forest,
        validated.plot_score_distribution,
        validated.shift.plot_feature_differences,
    ):
        ax = fn()
        assert isinstance(ax, Axes)
        plt.close(ax.figure)
    _, ax = plt.subplots()
    assert validated.plot_roc(ax) is ax
    disp = validated.plot_km()
    assert hasattr(disp, "figure_")
    plt.close("all")
    html = validated._repr_html_()
    assert "Development vs validation" in html and "Patient flow" in html
    assert isinstance(validated, ValidationResult) and "auroc=" in repr(validated)
