"""Triage: the Wilson interval of a proportion, the score threshold that keeps a target
sensitivity, and what a threshold rules in and out."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from .._checks import check_level, positional_deprecated
from ..errors import SchemaError
from .inputs import check_binary

__all__ = ["wilson_ci", "triage_threshold", "triage_summary"]


def wilson_ci(k: int, n: int, *, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion ``k / n``.

    Parameters
    ----------
    k : int
        Number of successes.
    n : int
        Number of trials; ``n <= 0`` gives ``(nan, nan)``.
    level : float, default 0.95
        Confidence level, strictly between 0 and 1.

    Returns
    -------
    low, high : float
        Interval bounds, clipped to [0, 1].
    """
    if n <= 0:
        return (float("nan"), float("nan"))
    z = stats.norm.ppf(0.5 + check_level(level) / 2.0)
    p = k / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return (float(max(0.0, centre - half)), float(min(1.0, centre + half)))


def triage_threshold(
    y_true: Any,
    y_score: Any,
    *,
    sensitivity: float | None = None,
    npv: float | None = None,
) -> float:
    """Highest score threshold meeting a target sensitivity or NPV, chosen on *training* data.

    Patients with ``score >= threshold`` are sent for confirmatory (molecular) testing; the
    rest are ruled out. Use scores that are out-of-sample for the training patients (e.g. inner
    cross-validation scores) and apply the threshold to held-out patients only.

    Parameters
    ----------
    y_true, y_score : array-like
        Training labels and scores.
    sensitivity : float, optional
        Minimum fraction of positives that must be sent for testing.
    npv : float, optional
        Minimum negative predictive value among ruled-out patients. Exactly one of
        ``sensitivity`` / ``npv`` must be given.

    Returns
    -------
    float
        The threshold (``-inf`` when only testing everybody meets the target).
    """
    if (sensitivity is None) == (npv is None):
        raise SchemaError("give exactly one of sensitivity= or npv=.")
    target = float(sensitivity if sensitivity is not None else npv)  # type: ignore[arg-type]
    if not (0.0 < target <= 1.0):
        raise SchemaError(f"target sensitivity/NPV must be in (0, 1]; got {target!r}.")
    y, s = check_binary(y_true, y_score)
    cand = np.unique(s)  # ascending; threshold t -> rule out s < t
    order = np.argsort(s, kind="mergesort")
    ys, ss = y[order], s[order]
    below = np.searchsorted(ss, cand, side="left")  # number ruled out at threshold cand
    cum_pos = np.r_[0, np.cumsum(ys)]
    pos_out = cum_pos[below]
    n_pos = int(y.sum())
    if sensitivity is not None:
        ok = (n_pos - pos_out) / n_pos >= target - 1e-12
    else:
        with np.errstate(invalid="ignore", divide="ignore"):
            npv_v = np.where(below > 0, (below - pos_out) / np.maximum(below, 1), 1.0)
        ok = npv_v >= target - 1e-12
    if not ok.any():
        return float("-inf")
    # highest threshold meeting the target (monotone for sensitivity; for NPV take the largest ok)
    return float(cand[np.flatnonzero(ok)[-1]])


@positional_deprecated("threshold")
def triage_summary(
    y_true: Any, y_score: Any, *, threshold: Any, level: float = 0.95
) -> pd.DataFrame:
    """Triage performance of pre-specified thresholds on held-out patients.

    Parameters
    ----------
    y_true, y_score : array-like
        Held-out labels and scores.
    threshold : float or array-like
        One threshold, or one per patient (cross-fitted thresholds from each training fold).
    level : float
        Level of the Wilson intervals.

    Returns
    -------
    DataFrame
        Rows ``tests_avoided`` (fraction ruled out), ``sensitivity``, ``npv``,
        ``missed_positives`` (fraction of all patients who are positive and ruled out);
        columns ``metric, estimate, low, high, k, n``.
    """
    y, s = check_binary(y_true, y_score, need_both=False)
    t = np.broadcast_to(np.asarray(threshold, dtype=float), s.shape)
    out = s < t
    n = y.size
    n_out = int(out.sum())
    n_pos = int(y.sum())
    tp = int(((~out) & (y == 1)).sum())
    tn_out = int((out & (y == 0)).sum())
    missed = int((out & (y == 1)).sum())
    rows = []
    for name, k, m in (
        ("tests_avoided", n_out, n),
        ("sensitivity", tp, n_pos),
        ("npv", tn_out, n_out),
        ("missed_positives", missed, n),
    ):
        lo, hi = wilson_ci(k, m, level=level)
        rows.append(
            {
                "metric": name,
                "estimate": k / m if m else float("nan"),
                "low": lo,
                "high": hi,
                "k": k,
                "n": m,
            }
        )
    return pd.DataFrame(rows)
