"""Analysis functions never change the caller's objects; the exclusion log records facts, not
calls (issue 13: a second decode()/stratify() on one Cohort logged every exclusion twice)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import tario_clinical as tc
from tario_clinical import survival as sv
from tario_clinical.cohort import load_cohort


@pytest.fixture(scope="module")
def trial():
    return tc.simulate_trial(120, seed=0, n_genes=20, snr=3.0)


def _snapshot(cohort):
    return cohort.clinical.copy(), cohort.exclusions.copy()


def test_decode_twice_logs_each_exclusion_once_and_changes_nothing_else(trial):
    cohort = trial.cohort()
    reps = trial.representations
    x_before, obs_before = reps.X.copy(), reps.obs.copy()
    clinical_before, log_before = _snapshot(cohort)
    kw = dict(targets=["EGFR"], n_repeats=1, n_inner_splits=3, p_method="delong",
              ci_method="delong", seed=0)  # fmt: skip
    first = tc.decode(reps, cohort, **kw)
    log_after_first = cohort.exclusions.copy()
    assert len(first.exclusions) > 0  # the trial has missing EGFR calls: something to log
    assert len(log_after_first) == len(log_before) + len(first.exclusions)
    second = tc.decode(reps, cohort, **kw)
    pd.testing.assert_frame_equal(cohort.exclusions, log_after_first)
    pd.testing.assert_frame_equal(second.oof, first.oof)
    pd.testing.assert_frame_equal(cohort.clinical, clinical_before)
    np.testing.assert_array_equal(reps.X, x_before)
    pd.testing.assert_frame_equal(reps.obs, obs_before)


def test_stratify_twice_logs_each_exclusion_once(trial):
    cohort = trial.cohort()
    scores = pd.Series(trial.truth.latent["P00"].to_numpy(), index=trial.truth.latent.index)
    scores.iloc[:3] = np.nan
    scores_before = scores.copy()
    clinical_before, log_before = _snapshot(cohort)
    first = sv.stratify(cohort, scores, arm="arm")
    log_after_first = cohort.exclusions.copy()
    assert len(log_after_first) >= len(log_before) + 3
    second = sv.stratify(cohort, scores, arm="arm")
    pd.testing.assert_frame_equal(cohort.exclusions, log_after_first)
    pd.testing.assert_frame_equal(second.exclusions, first.exclusions)
    pd.testing.assert_frame_equal(cohort.clinical, clinical_before)
    pd.testing.assert_series_equal(scores, scores_before)


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
