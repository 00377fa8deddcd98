"""The EXPLORATORY optimal cut-point of a continuous score: the maximally selected log-rank
statistic (:func:`maxstat_cutpoint`) with the Lausen–Schumacher p-value that corrects for the
search, and the log-rank table at that cut-point with the corrected p-value
(:func:`search_corrected_logrank`).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from .._checks import positional_deprecated
from ..errors import AnalysisError, SchemaError
from . import kernels
from .validation import as_pandas, survival_arrays

__all__ = ["maxstat_cutpoint", "search_corrected_logrank"]


def _lausen_schumacher(b: float, min_prop: float) -> float:
    """Lausen & Schumacher (1992) approximation of P(max |standardised statistic| > b)."""
    e1, e2 = min_prop, 1.0 - min_prop
    phi = stats.norm.pdf(b)
    p = 4 * phi / b + phi * (b - 1 / b) * math.log(e2 * (1 - e1) / ((1 - e2) * e1))
    return float(min(1.0, max(p, 0.0)))


@positional_deprecated("time", "event", "score")
def maxstat_cutpoint(
    df: pd.DataFrame,
    *,
    time: str,
    event: str,
    score: str,
    min_prop: float = 0.1,
) -> pd.DataFrame:
    """EXPLORATORY optimal cut-point by the maximally selected log-rank statistic.

    Every distinct score leaving at least ``min_prop`` of patients on each side is tried;
    the largest absolute standardised log-rank statistic is selected. Its naive p-value is
    wrong (the cut-point was chosen to minimise it); ``p_value`` is the Lausen & Schumacher
    (1992) approximation to the distribution of the maximum, which corrects for the search.

    Parameters
    ----------
    df : DataFrame
        One row per patient (pandas or polars).
    time, event : str
        Column names: follow-up time (>= 0) and event indicator (1 event, 0 censored).
    score : str
        Column of the continuous score (finite for every patient).
    min_prop : float, default 0.1
        Minimum fraction of patients on each side of a candidate cut-off, in (0, 0.5).

    Returns
    -------
    DataFrame
        One row: ``cutoff, statistic, p_value, p_value_naive, n_low, n_high, n_candidates,
        min_prop`` (high = score > cutoff).
    """
    if not (0.0 < min_prop < 0.5):
        raise ValueError(f"min_prop must be in (0, 0.5); got {min_prop}")
    df = as_pandas(df)
    t, e = survival_arrays(df, time, event)
    s = pd.to_numeric(df[score], errors="coerce").to_numpy(dtype=float)
    if not np.all(np.isfinite(s)):
        raise SchemaError(f"column {score!r}: missing or non-finite scores")
    n = s.size
    us = np.unique(s)
    frac_le = np.searchsorted(np.sort(s), us, side="right") / n
    cand = us[(frac_le >= min_prop) & (frac_le <= 1 - min_prop)]
    if cand.size == 0 or e.sum() == 0:
        raise AnalysisError(
            f"optimal cut-point: no candidate split leaves {min_prop:.0%} of {n} patients on each "
            f"side, or no events ({int(e.sum())})"
        )
    high = s[:, None] > cand[None, :]
    oe, v = kernels.logrank_two_group_scan(t, e, high)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(v > 0, oe / np.sqrt(v), 0.0)
    j = int(np.argmax(np.abs(z)))
    b = float(abs(z[j]))
    naive = float(2 * stats.norm.sf(b))
    return pd.DataFrame(
        [
            {
                "cutoff": float(cand[j]),
                "statistic": b,
                "p_value": max(_lausen_schumacher(b, min_prop), naive) if b > 0 else 1.0,
                "p_value_naive": naive,
                "n_low": int((~high[:, j]).sum()),
                "n_high": int(high[:, j].sum()),
                "n_candidates": int(cand.size),
                "min_prop": float(min_prop),
            }
        ]
    )


def search_corrected_logrank(lr: pd.DataFrame, optimal: pd.DataFrame) -> pd.DataFrame:
    """Log-rank table at the optimal cut-point with the p-value corrected for the search.

    The two-group log-rank chi-square at the selected cut-point is the square of the maximally
    selected statistic, so its valid p-value is the Lausen–Schumacher one of
    :func:`maxstat_cutpoint`; the chi-square p-value is kept, labelled uncorrected.
    """
    row = optimal.iloc[0]
    out = lr.copy()
    out["p_value_uncorrected"] = out["p_value"]
    out.loc["log-rank", "p_value"] = float(row["p_value"])
    out["p_value_method"] = (
        "Lausen-Schumacher (1992) for the maximally selected log-rank statistic over "
        f"{int(row['n_candidates'])} cut-points (min_prop={float(row['min_prop']):g}); "
        "p_value_uncorrected treats the cut-point as fixed in advance and is not valid"
    )
    return out
