"""Calibration and clinical usefulness of predicted probabilities: Brier score, logistic
recalibration (calibration-in-the-large and slope), net benefit of decision curves."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..errors import AnalysisError, SchemaError
from .inputs import check_binary
from .results import CalibrationResult

__all__ = ["brier", "calibration", "net_benefit"]


def brier(y_true: Any, y_prob: Any) -> float:
    """Brier score: mean squared difference between predicted probability and outcome.

    Parameters
    ----------
    y_true : array-like of 0/1
        A single class is allowed.
    y_prob : array-like of probabilities in [0, 1]

    Returns
    -------
    float
        0 is perfect; lower is better.
    """
    y, p = check_binary(y_true, y_prob, name="y_prob", need_both=False)
    if np.any((p < 0) | (p > 1)):
        raise SchemaError("y_prob must lie in [0, 1]; got values outside.")
    return float(np.mean((p - y) ** 2))


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return np.log(p) - np.log1p(-p)


def _fit_logistic(
    X: np.ndarray, y: np.ndarray, offset: np.ndarray, max_iter: int = 100
) -> np.ndarray:
    """Unpenalised logistic regression by Newton–Raphson with step halving."""
    beta = np.zeros(X.shape[1])

    def nll(b: np.ndarray) -> float:
        eta = offset + X @ b
        return float(np.sum(np.logaddexp(0.0, eta) - y * eta))

    cur = nll(beta)
    for _ in range(max_iter):
        eta = offset + X @ beta
        p = 1.0 / (1.0 + np.exp(-eta))
        g = X.T @ (p - y)
        h = X.T @ (X * (p * (1 - p))[:, None])
        try:
            step = np.linalg.solve(h + 1e-12 * np.eye(h.shape[0]), g)
        except np.linalg.LinAlgError as err:
            raise AnalysisError("calibration fit failed: singular information matrix") from err
        t = 1.0
        while t > 1e-8:
            new = beta - t * step
            val = nll(new)
            if val <= cur + 1e-12:
                break
            t /= 2.0
        if abs(cur - val) < 1e-12 * max(1.0, abs(cur)) and np.max(np.abs(t * step)) < 1e-10:
            beta, cur = new, val
            break
        beta, cur = new, val
    if np.any(np.abs(beta) > 1e6):
        raise AnalysisError("calibration fit diverged (perfectly separated predictions).")
    return beta


def calibration(y_true: Any, y_prob: Any) -> CalibrationResult:
    """Calibration intercept (in-the-large) and slope of predicted probabilities.

    Parameters
    ----------
    y_true : array-like of 0/1
    y_prob : array-like of probabilities in (0, 1)

    Returns
    -------
    CalibrationResult

    Raises
    ------
    AnalysisError
        One class only, or perfectly separated predictions (slope infinite).
    """
    y, p = check_binary(y_true, y_prob, name="y_prob")
    if np.any((p < 0) | (p > 1)):
        raise SchemaError("y_prob must lie in [0, 1]; got values outside.")
    lp = _logit(p)
    if lp[y == 1].min() > lp[y == 0].max():
        raise AnalysisError(
            "calibration slope not estimable: predictions are perfectly separated by class "
            "(the maximum-likelihood slope is infinite)."
        )
    yf = y.astype(float)
    intercept = _fit_logistic(np.ones((y.size, 1)), yf, lp)[0]
    slope = _fit_logistic(np.column_stack([np.ones(y.size), lp]), yf, np.zeros(y.size))[1]
    return CalibrationResult(intercept=float(intercept), slope=float(slope), n=int(y.size))


def net_benefit(y_true: Any, y_prob: Any, *, thresholds: Any = None) -> pd.DataFrame:
    """Decision-curve net benefit (Vickers & Elkin, 2006).

    ``net_benefit = TP/n - FP/n * t / (1 - t)`` for treating patients with ``p >= t``.

    Parameters
    ----------
    y_true : array-like of 0/1
    y_prob : array-like of probabilities
    thresholds : array-like, optional
        Threshold probabilities in (0, 1); default 0.01..0.99 by 0.01.

    Returns
    -------
    DataFrame
        Columns ``threshold, net_benefit, treat_all, treat_none``.
    """
    y, p = check_binary(y_true, y_prob, name="y_prob", need_both=False)
    t = np.arange(0.01, 1.0, 0.01) if thresholds is None else np.asarray(thresholds, float)
    if np.any((t <= 0) | (t >= 1)):
        raise SchemaError("thresholds must lie strictly between 0 and 1.")
    n = y.size
    prev = y.mean()
    flag = p[None, :] >= t[:, None]
    tp = (flag & (y[None, :] == 1)).sum(axis=1)
    fp = (flag & (y[None, :] == 0)).sum(axis=1)
    odds = t / (1 - t)
    return pd.DataFrame(
        {
            "threshold": t,
            "net_benefit": tp / n - fp / n * odds,
            "treat_all": prev - (1 - prev) * odds,
            "treat_none": np.zeros_like(t),
        }
    )
