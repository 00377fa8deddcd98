"""How well a risk score separates patients by survival: Harrell's and Uno's concordance
(:func:`concordance`) and the cumulative/dynamic time-dependent AUC (:func:`time_dependent_auc`),
both with influence-function standard errors. A higher score means higher risk.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd

from .._checks import positional_deprecated, renamed_parameters
from ..errors import AnalysisError, SchemaError
from . import kernels
from .validation import (
    as_pandas,
    check_choice,
    check_level,
    norm_ppf,
    require_columns,
    row_labels,
    survival_arrays,
)

__all__ = ["concordance", "time_dependent_auc"]


@renamed_parameters(conf_level="level")
@positional_deprecated("time", "event", "score")
def concordance(
    df: pd.DataFrame,
    *,
    time: str,
    event: str,
    score: str,
    tau: float | None = None,
    train: pd.DataFrame | None = None,
    level: float = 0.95,
    tied_tol: float = 1e-8,
) -> pd.DataFrame:
    """Harrell's and Uno's concordance of a risk score (higher score = higher risk).

    Parameters
    ----------
    df : DataFrame
    time, event, score : str
    tau : float, optional
        Uno's C counts events before ``tau`` only; default no truncation.
    train : DataFrame, optional
        Table (with the same ``time``/``event`` columns) for the censoring distribution of
        Uno's weights; default ``df``.
    level : float
    tied_tol : float
        Scores closer than this are tied and count 1/2.

    Returns
    -------
    DataFrame
        Indexed by ``method`` (``harrell``, ``uno``): ``estimate, se, low, high, n_pairs``.

    Notes
    -----
    Comparable pairs as Harrell (and scikit-survival): the shorter time is an event; an event
    and a censoring at the same time are comparable. Uno weights pairs by ``1 / G(T_i)^2``
    with ``G`` the KM of the censoring distribution. The standard error is the
    influence-function (infinitesimal jackknife) variance of the ratio of U-statistics with
    weights held fixed; the CI is estimate ± z·se clipped to [0, 1].

    Measured by seeded simulation (``benchmarks/validation/survival_ci/``; 2,000 replicates per
    cell, n = 200/500, 30-60 % censoring): Uno's intervals cover 0.941-0.954 with SE/SD
    0.99-1.03, so holding the weights fixed does not make them too narrow. Harrell's SE is right
    too, but Harrell's C itself depends on the censoring: with 60 % censoring it exceeded the
    uncensored concordance by up to 0.008 (coverage of that value 0.931-0.937). Prefer Uno's C
    when censoring is heavy or differs between cohorts.
    """
    check_level(level)
    df = as_pandas(df)
    t, e = survival_arrays(df, time, event)
    require_columns(df, [score])
    s = pd.to_numeric(df[score], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(s)
    if bad.any():
        raise SchemaError(
            f"column {score!r}: missing or non-finite score(s) at rows {row_labels(df, bad)}"
        )
    q = norm_ppf(level)
    rows = []
    c, se, npairs = kernels.pair_concordance(t, e, s, np.ones(t.size), tied_tol=tied_tol)
    rows.append(("harrell", c, se, npairs))
    tr = df if train is None else as_pandas(train, "train")
    tt, te = survival_arrays(tr, time, event)
    gt, gv = kernels.censoring_survival(tt, te)
    g = kernels.step_at(gt, gv, t)
    if np.any((g <= 0) & e & ((t < tau) if tau is not None else True)):
        raise AnalysisError(
            "Uno's C: the censoring survival G(t) is 0 at some event times; choose tau before "
            "the last censoring time"
        )
    with np.errstate(divide="ignore"):
        w = np.where(e & (g > 0), 1.0 / g**2, 0.0)
    if tau is not None:
        w = np.where(t < tau, w, 0.0)
    c, se, npairs = kernels.pair_concordance(t, e, s, w, tied_tol=tied_tol)
    rows.append(("uno", c, se, npairs))
    out = pd.DataFrame(rows, columns=["method", "estimate", "se", "n_pairs"]).set_index("method")
    out["low"] = (out["estimate"] - q * out["se"]).clip(0, 1)
    out["high"] = (out["estimate"] + q * out["se"]).clip(0, 1)
    return out[["estimate", "se", "low", "high", "n_pairs"]]


def _expit(x: float) -> float:
    return float(1.0 / (1.0 + np.exp(-x)))


@renamed_parameters(conf_level="level")
@positional_deprecated("time", "event", "score", "times")
def time_dependent_auc(
    df: pd.DataFrame,
    *,
    time: str,
    event: str,
    score: str,
    times: Sequence[float],
    train: pd.DataFrame | None = None,
    level: float = 0.95,
    tied_tol: float = 1e-8,
    ci: Literal["logit", "plain"] = "logit",
) -> pd.DataFrame:
    """Cumulative/dynamic AUC of a risk score at horizons ``times`` with IPCW.

    Cases at horizon t: events at or before t, weighted ``1 / G(T_i)``; controls: still event
    free after t (Uno et al. 2007; the estimator of scikit-survival's
    ``cumulative_dynamic_auc``).

    Parameters
    ----------
    df : DataFrame
    time, event, score : str
    times : sequence of float
        Horizons, each inside the follow-up range.
    train : DataFrame, optional
        Table for the censoring distribution; default ``df``.
    level : float
    tied_tol : float
        Score differences up to this size count as ties (1/2).
    ci : {"logit", "plain"}
        ``"logit"`` (default): Wald interval on the logit scale, back-transformed (stays in
        (0, 1) and follows the skew of the estimate). ``"plain"``: ``auc ± z·se`` clipped to
        [0, 1], as R ``timeROC``. In a seeded simulation (2,000 replicates per cell, C ≈ 0.68,
        n = 200/500, 30 %/60 % censoring) plain intervals covered 0.911–0.954 (0.911 at a late
        horizon with 60 % censoring and n = 200, misses lopsided), logit intervals 0.934–0.959.

    Returns
    -------
    DataFrame
        ``time, auc, se, low, high, n_cases, n_controls`` (influence-function SE with the
        censoring weights held fixed).
    """
    check_level(level)
    check_choice("ci", ci, ("logit", "plain"))
    df = as_pandas(df)
    t, e = survival_arrays(df, time, event)
    require_columns(df, [score])
    s = pd.to_numeric(df[score], errors="coerce").to_numpy(dtype=float)
    if not np.all(np.isfinite(s)):
        raise SchemaError(f"column {score!r}: missing or non-finite scores")
    tr = df if train is None else as_pandas(train, "train")
    tt, te = survival_arrays(tr, time, event)
    gt, gv = kernels.censoring_survival(tt, te)
    g = kernels.step_at(gt, gv, t)
    q = norm_ppf(level)
    rows = []
    for h in np.asarray(times, dtype=float):
        case = e & (t <= h)
        ctrl = t > h
        if not case.any() or not ctrl.any():
            raise AnalysisError(
                f"time-dependent AUC at t={h:g}: {int(case.sum())} cases and "
                f"{int(ctrl.sum())} controls; choose a horizon inside the follow-up "
                f"({t.min():g} to {t.max():g})"
            )
        with np.errstate(divide="ignore"):  # G = 0 only beyond follow-up (never a case)
            wi = np.where(case, 1.0 / g, 0.0)
        cases, controls = np.flatnonzero(case), np.flatnonzero(ctrl)
        diff = s[cases][:, None] - s[controls][None, :]
        k = np.where(np.abs(diff) <= tied_tol, 0.5, (diff > 0).astype(float))
        num_i = wi[cases] * k.sum(axis=1)
        den_i = wi[cases] * controls.size
        num_j = (wi[cases][:, None] * k).sum(axis=0)
        den_j = np.full(controls.size, wi[cases].sum())
        num, den = num_i.sum(), den_i.sum()
        auc = num / den
        infl = np.concatenate([num_i - auc * den_i, num_j - auc * den_j])
        se = float(np.sqrt(np.sum(infl**2)) / den)
        if ci == "logit" and 0.0 < auc < 1.0:
            half = q * se / (auc * (1.0 - auc))
            lg = np.log(auc / (1.0 - auc))
            low, high = _expit(lg - half), _expit(lg + half)
        else:  # plain, or an AUC of exactly 0 or 1 (no logit)
            low, high = max(0.0, auc - q * se), min(1.0, auc + q * se)
        rows.append(
            {
                "time": h,
                "auc": auc,
                "se": se,
                "low": low,
                "high": high,
                "n_cases": int(case.sum()),
                "n_controls": int(ctrl.sum()),
            }
        )
    return pd.DataFrame(rows)
