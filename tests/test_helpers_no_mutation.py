"""Analysis functions never change the caller's objects; the exclusion log records facts, not
calls (issue 13: a second decode()/stratify() on one Cohort logged every exclusion twice).

The analyses leave the Cohort they are given exactly as it was (every field deep-equal);
each result carries its own ``exclusions`` table, which the cohort's owner records with
``Cohort.record_exclusions``."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

import tario_clinical as tc
from tario_clinical import survival as sv
from tario_clinical.cohort import load_cohort
from tario_clinical.decode import analyses as da

FAST = {"n_repeats": 1, "n_splits": 3, "n_inner_splits": 2, "ci_method": "oof", "p_method": "oof"}


@pytest.fixture(scope="module")
def trial():
    return tc.simulate_trial(120, seed=0, n_genes=20, snr=3.0)


@pytest.fixture
def cohort(trial):
    """The trial's cohort with missing values in every kind of outcome, and a log entry."""
    c = trial.cohort()
    for col, rows in (("histology", [2, 6]), ("age", [1, 5]), ("os_time", [3]), ("arm", [7])):
        c.clinical.loc[rows, col] = None
    c.exclude(["P0000"], reason="slide failed QC", analysis="encode", slide_ids=["S0"])
    return c


def _snapshot(cohort):
    """A deep copy of every field of the Cohort."""
    return {f.name: _copy(getattr(cohort, f.name)) for f in dataclasses.fields(cohort)}


def _copy(v):
    if isinstance(v, pd.DataFrame | pd.Series):
        return v.copy(deep=True)
    import copy

    return copy.deepcopy(v)


def _assert_unchanged(cohort, snap):
    for name, before in snap.items():
        now = getattr(cohort, name)
        if isinstance(before, pd.DataFrame):
            pd.testing.assert_frame_equal(now, before, obj=name)
        elif before is None:
            assert now is None, name
        else:
            assert now == before, name


def test_decode_twice_changes_nothing_and_gives_the_same_result(trial, cohort):
    reps = trial.representations
    x_before, obs_before = reps.X.copy(), reps.obs.copy()
    snap = _snapshot(cohort)
    kw = dict(targets=["EGFR"], n_repeats=1, n_inner_splits=3, p_method="delong",
              ci_method="delong", seed=0)  # fmt: skip
    first = tc.decode(reps, cohort, **kw)
    assert len(first.exclusions) > 0  # the trial has missing EGFR calls: something to log
    _assert_unchanged(cohort, snap)
    second = tc.decode(reps, cohort, **kw)
    _assert_unchanged(cohort, snap)
    pd.testing.assert_frame_equal(second.oof, first.oof)
    pd.testing.assert_frame_equal(second.exclusions, first.exclusions)
    np.testing.assert_array_equal(reps.X, x_before)
    pd.testing.assert_frame_equal(reps.obs, obs_before)


@pytest.mark.parametrize(
    "decoder, kwargs",
    [
        ("decode_categorical", {"targets": ["histology"]}),
        ("decode_continuous", {"targets": ["age"]}),
        ("decode_survival", {"time": "os_time", "event": "os_event"}),
        ("decode_benefit", {"arm": "arm", "time": "os_time", "event": "os_event"}),
    ],
)
def test_endpoint_decoders_leave_the_cohort_unchanged(trial, cohort, decoder, kwargs):
    snap = _snapshot(cohort)
    res = getattr(tc, decoder)(trial.representations, cohort, seed=0, **FAST, **kwargs)
    _assert_unchanged(cohort, snap)
    results = res.results.values() if hasattr(res, "results") else [res]
    assert sum(len(r.exclusions) for r in results) > 0  # there was something to log


@pytest.mark.parametrize(
    "analysis, kwargs",
    [
        ("learning_curve", {"fractions": (0.5, 1.0)}),
        ("leave_one_group_out", {"group_column": "cancer_type"}),
    ],
)
def test_decoder_analyses_leave_the_cohort_unchanged(trial, cohort, analysis, kwargs):
    snap = _snapshot(cohort)
    res = getattr(da, analysis)(
        trial.representations, cohort, targets=["EGFR"], n_jackknife=3, seed=0, **kwargs
    )
    _assert_unchanged(cohort, snap)
    assert len(res.exclusions) > 0 and set(res.exclusions["target"]) == {"EGFR"}


def test_stratify_twice_changes_nothing_and_gives_the_same_result(trial, cohort):
    scores = pd.Series(trial.truth.latent["P00"].to_numpy(), index=trial.truth.latent.index)
    scores.iloc[:3] = np.nan
    scores_before = scores.copy()
    snap = _snapshot(cohort)
    first = sv.stratify(cohort, scores, arm="arm")
    assert len(first.exclusions) >= 3
    _assert_unchanged(cohort, snap)
    second = sv.stratify(cohort, scores, arm="arm")
    _assert_unchanged(cohort, snap)
    pd.testing.assert_frame_equal(second.exclusions, first.exclusions)
    pd.testing.assert_series_equal(scores, scores_before)


def test_recording_a_result_twice_logs_each_exclusion_once(trial, cohort):
    kw = dict(n_repeats=1, n_inner_splits=3, p_method="delong", ci_method="delong", seed=0)
    res = tc.decode(trial.representations, cohort, targets=["EGFR", "KRAS"], **kw)
    before = len(cohort.exclusions)
    cohort.record_exclusions(res.exclusions)
    once = cohort.exclusions.copy()
    assert len(once) == before + len(res.exclusions)
    assert set(once["analysis"].iloc[before:]) == {"decode:EGFR", "decode:KRAS"}
    cohort.record_exclusions(res.exclusions)
    pd.testing.assert_frame_equal(cohort.exclusions, once)


def test_record_exclusions_of_stratify_keeps_the_labels_and_skips_unknown_ids(trial, cohort):
    scores = pd.Series(trial.truth.latent["P00"].to_numpy(), index=trial.truth.latent.index)
    scores.iloc[:3] = np.nan
    scores["nobody"] = 0.0  # a score for a patient not in the clinical table
    res = sv.stratify(cohort, scores, arm="arm")
    assert "nobody" in set(res.exclusions["patient_id"])
    before = len(cohort.exclusions)
    cohort.record_exclusions(res.exclusions, patients_only=True)
    added = cohort.exclusions.iloc[before:]
    known = res.exclusions[res.exclusions["patient_id"] != "nobody"]
    assert sorted(added["patient_id"]) == sorted(known["patient_id"])
    assert set(added["analysis"]) == {"survival.stratify(os_time)"}
    assert added.set_index("patient_id")["reason"].to_dict() == (
        known.set_index("patient_id")["reason"].to_dict()
    )


def test_stratify_of_a_dataframe_leaves_it_unchanged(trial):
    df = trial.clinical.copy()
    scores = pd.Series(trial.truth.latent["P00"].to_numpy(), index=trial.truth.latent.index)
    before, scores_before = df.copy(), scores.copy()
    sv.stratify(df, scores, arm="arm")
    pd.testing.assert_frame_equal(df, before)
    pd.testing.assert_series_equal(scores, scores_before)


def test_exclusion_log_is_a_set_of_facts():
    c = load_cohort(pd.DataFrame({"patient_id": ["a", "b", "c"]}))
    c.exclude(["a", "a"], reason="missing EGFR call", analysis="decode:EGFR")
    c.exclude(["a", "b"], reason="missing EGFR call", analysis="decode:EGFR")
    c.exclude(["a"], reason="other reason", analysis="decode:EGFR")
    c.exclude(["a"], reason="missing EGFR call", analysis="decode:KRAS")
    c.exclude(["b"], reason="unreadable", analysis="encode", slide_ids=["s1"])
    c.exclude(["b"], reason="unreadable", analysis="encode", slide_ids=["s1"])
    c.exclude(["b"], reason="unreadable", analysis="encode", slide_ids=["s2"])
    got = [tuple(r) for r in c.exclusions.itertuples(index=False)]
    assert got == [
        ("a", None, "decode:EGFR", "missing EGFR call"),
        ("b", None, "decode:EGFR", "missing EGFR call"),
        ("a", None, "decode:EGFR", "other reason"),
        ("a", None, "decode:KRAS", "missing EGFR call"),
        ("b", "s1", "encode", "unreadable"),
        ("b", "s2", "encode", "unreadable"),
    ]
