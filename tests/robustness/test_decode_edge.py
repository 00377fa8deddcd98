"""Statistical edge cases of decode/metrics with documented behaviour (issue 8, item 3)."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

import tario_clinical
from tario_clinical import metrics
from tario_clinical.errors import AnalysisError


def _data(n=80, d=15, seed=0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        rng.normal(size=(n, d)).astype(np.float32), index=[f"P{i:03d}" for i in range(n)]
    )
    return X, pd.DataFrame({"patient_id": X.index})


def test_fewer_than_10_positives_is_flagged_not_hidden(caplog):
    X, clin = _data()
    clin["RARE"] = 0
    clin.loc[:5, "RARE"] = 1  # 6 positives
    with caplog.at_level(logging.WARNING):
        res = tario_clinical.decode(X, clin, targets=["RARE"], n_repeats=1, n_inner_splits=3)
    s = res.summary().iloc[0]
    assert s["n_positive"] == 6
    assert "fewer than 10 positives" in s["note"]
    assert s["low"] <= s["auroc"] <= s["high"]
    assert "fewer than 10" in caplog.text


def test_outer_fold_with_one_class_is_pooled_not_dropped():
    X, clin = _data()
    clin["R"] = 0
    clin.loc[:2, "R"] = 1  # 3 positives over 5 folds: at least two test folds have none
    res = tario_clinical.decode(X, clin, targets=["R"], n_repeats=1, n_inner_splits=3)
    assert len(res.oof) == 80  # every patient scored; AUROC pooled over folds
    assert np.isfinite(res.summary().iloc[0]["auroc"])


def test_training_fold_with_one_class_gets_constant_score():
    from tario_clinical.decode import engine

    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 5))
    y = np.zeros(30)
    y[0] = 1  # the only positive; in the fold that tests it, training has one class
    train, test = np.arange(1, 30), np.arange(0, 1)
    basis = engine.fold_basis(X, train, test)
    ff = engine.nested_fold(basis, y[train, None], np.arange(29) % 3, np.logspace(-3, 1, 10))
    assert np.isnan(ff.best_C[0]) and ff.test_std[0, 0] == 0.0


def test_target_with_one_class_raises_clear_error():
    X, clin = _data()
    clin["ALL"] = 1
    with pytest.raises(AnalysisError, match="'ALL' has 80 positives among 80"):
        tario_clinical.decode(X, clin, targets=["ALL"])


def test_perfect_separation_fits_and_is_reported():
    X, clin = _data(60, 5)
    clin["SEP"] = (X[0] > 0).astype(int).to_numpy()
    X.iloc[:, 0] = np.where(clin["SEP"] == 1, 5.0, -5.0) + X.iloc[:, 0].to_numpy() * 0.01
    res = tario_clinical.decode(X, clin, targets=["SEP"], n_repeats=1, n_inner_splits=3)
    s = res.summary().iloc[0]
    assert s["auroc"] == 1.0
    # zero DeLong variance -> degenerate interval, flagged; calibration not estimable -> NaN + note
    assert s["low"] == s["high"] == 1.0
    assert "perfect separation" in s["note"]
    assert np.isnan(s["calibration_slope"]) and "calibration not estimable" in s["note"]


def test_heavy_ties_in_scores():
    y = np.r_[np.zeros(50), np.ones(50)].astype(int)
    s = np.r_[np.zeros(40), np.ones(10), np.zeros(10), np.ones(40)].astype(float)
    r = metrics.auroc_ci(y, s)
    # P(pos > neg) + 0.5 P(tie) = 0.8*0.8 + 0.5*(0.8*0.2 + 0.2*0.8)... computed directly:
    expected = np.mean(
        (s[y == 1][:, None] > s[y == 0][None, :]) + 0.5 * (s[y == 1][:, None] == s[y == 0][None, :])
    )
    assert r.auroc == pytest.approx(expected)
    assert r.low < r.auroc < r.high
