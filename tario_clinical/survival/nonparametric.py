"""Kaplan–Meier curves, log-rank tests and restricted mean survival time.

- :func:`km` — Kaplan–Meier per group (median by the first time S(t) <= 0.5, CI as R ``survfit``),
- :func:`logrank` — k-group and trend log-rank tests (R ``survdiff`` chi-square), with
  :func:`logrank_table` for observed and expected events per group,
- :func:`rmst` — restricted mean survival time per group and differences with CIs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from .._checks import deprecated_attribute, positional_deprecated, renamed_parameters
from ..errors import AnalysisError
from . import kernels
from .formatting import html_table
from .validation import (
    as_pandas,
    check_choice,
    check_level,
    group_codes,
    norm_ppf,
    survival_arrays,
)

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

    from .plots import KMDisplay

__all__ = ["ConfType", "KaplanMeier", "km", "logrank", "logrank_table", "rmst"]

ConfType = Literal["log", "log-log", "plain"]
_CONF_TYPES = ("log", "log-log", "plain")


@dataclass(frozen=True, eq=False)
class KaplanMeier:
    """Kaplan–Meier estimates per group.

    Attributes
    ----------
    summary : DataFrame
        One row per group: ``group, n, events, median, median_low, median_high``.
    table : DataFrame
        ``group, time, n_risk, n_event, n_censor, survival, std_err, low, high`` at every
        distinct observed time (``std_err`` is the Greenwood standard error of log S, as R).
    level, conf_type : float, str
        Confidence level of the intervals and their type (``conf_level`` is the deprecated
        name of ``level``).
    """

    summary: pd.DataFrame
    table: pd.DataFrame
    level: float
    conf_type: str
    curves: dict[Any, kernels.KMCurve] = field(repr=False)
    group: str | None = None
    conf_level = deprecated_attribute("conf_level", "level")

    def at_risk(self, times: Sequence[float]) -> pd.DataFrame:
        """Number at risk per group at ``times`` (rows: group, columns: time)."""
        times = np.asarray(times, dtype=float)
        rows = {}
        for g, c in self.curves.items():
            # at risk at t = subjects with observed time >= t
            idx = np.searchsorted(c.time, times, side="left")
            n = np.where(idx < c.time.size, c.n_risk[np.clip(idx, 0, c.time.size - 1)], 0)
            rows[g] = n.astype(int)
        out = pd.DataFrame(rows, index=times).T
        out.index.name = "group"
        out.columns.name = "time"
        return out

    def plot(self, *, ax: Axes | None = None, **kwargs: Any) -> KMDisplay:
        """KM curves with 95 % bands and a number-at-risk table (see :func:`plot_km`)."""
        from .plots import plot_km

        return plot_km(self, ax=ax, **kwargs)

    def _repr_html_(self) -> str:
        return html_table(self.summary, "Kaplan–Meier")


@renamed_parameters(conf_level="level")
@positional_deprecated("time", "event", "group")
def km(
    df: pd.DataFrame,
    *,
    time: str,
    event: str,
    group: str | None = None,
    level: float = 0.95,
    conf_type: ConfType = "log",
) -> KaplanMeier:
    """Kaplan–Meier survival per group.

    Parameters
    ----------
    df : DataFrame
        One row per patient (pandas or polars).
    time, event : str
        Column names: follow-up time (>= 0) and event indicator (1 event, 0 censored).
    group : str, optional
        Column defining the groups; ``None`` for one curve labelled ``"all"``.
    level : float
        Confidence level of the pointwise bands and of the median CI.
    conf_type : {"log", "log-log", "plain"}
        Band transform; ``"log"`` is R ``survfit``'s default.

    Returns
    -------
    KaplanMeier
        ``.summary`` (n, events, median, median_low, median_high per group) and ``.table``.

    Notes
    -----
    The median is the first time with S(t) <= 0.5 and its CI the first times at which the upper
    and lower band reach 0.5 (Brookmeyer–Crowley by inversion of the bands, as R). R takes
    the midpoint of a plateau lying exactly at 0.5; we follow the first-time rule.

    Examples
    --------
    >>> import pandas as pd
    >>> d = pd.DataFrame({"t": [1, 2, 3, 4], "e": [1, 1, 0, 1]})
    >>> float(km(d, time="t", event="e").summary["median"].iloc[0])
    2.0
    """
    check_choice("conf_type", conf_type, _CONF_TYPES)
    check_level(level)
    df = as_pandas(df)
    t, e = survival_arrays(df, time, event)
    if group is None:
        codes, levels = np.zeros(t.size, dtype=int), ["all"]
    else:
        codes, levels = group_codes(df, group)
    curves: dict[Any, kernels.KMCurve] = {}
    summ, tabs = [], []
    for i, lv in enumerate(levels):
        m = codes == i
        c = kernels.kaplan_meier(t[m], e[m], level=level, conf_type=conf_type)
        curves[lv] = c
        summ.append(
            {
                "group": lv,
                "n": int(m.sum()),
                "events": int(e[m].sum()),
                "median": kernels.km_quantile(c.time, c.survival),
                "median_low": kernels.km_quantile(c.time, c.low),
                "median_high": kernels.km_quantile(c.time, c.high),
            }
        )
        tabs.append(
            pd.DataFrame(
                {
                    "group": lv,
                    "time": c.time,
                    "n_risk": c.n_risk.astype(int),
                    "n_event": c.n_event.astype(int),
                    "n_censor": c.n_censor.astype(int),
                    "survival": c.survival,
                    "std_err": c.std_err,
                    "low": c.low,
                    "high": c.high,
                }
            )
        )
    summary = pd.DataFrame(summ)
    table = pd.concat(tabs, ignore_index=True)
    return KaplanMeier(summary, table, float(level), conf_type, curves, group)


def _trend_scores(
    df: pd.DataFrame, group: str, levels: list[Any], scores: Mapping | None
) -> np.ndarray:
    if scores is not None:
        missing = [lv for lv in levels if lv not in scores]
        if missing:
            raise ValueError(
                f"trend_scores lacks group level(s) {missing}; got keys {list(scores)}"
            )
        return np.array([float(scores[lv]) for lv in levels])
    if pd.api.types.is_numeric_dtype(df[group]) and not pd.api.types.is_bool_dtype(df[group]):
        return np.array(levels, dtype=float)
    return np.arange(1, len(levels) + 1, dtype=float)


@positional_deprecated("time", "event", "group")
def logrank(
    df: pd.DataFrame,
    *,
    time: str,
    event: str,
    group: str,
    strata: str | None = None,
    trend_scores: Mapping[Any, float] | None = None,
) -> pd.DataFrame:
    """Log-rank test across k groups, and the test for trend when k > 2.

    Parameters
    ----------
    df : DataFrame
    time, event, group : str
        Column names.
    strata : str, optional
        Column of strata for a stratified log-rank test.
    trend_scores : mapping, optional
        Score of each group level for the trend test; default: numeric levels themselves,
        else 1..k in level order (categorical order, else sorted).

    Returns
    -------
    DataFrame
        Indexed by ``test`` (``"log-rank"``, and ``"trend"`` for k > 2): ``statistic, df,
        p_value``.

    Raises
    ------
    AnalysisError
        Fewer than two groups, or no events at all.

    Notes
    -----
    The chi-square equals R ``survdiff(...)$chisq`` (hypergeometric variance with the tie
    correction). Observed and expected event counts per group are given by
    :func:`logrank_table`. The trend statistic is ``(w'(O - E))^2 / w'Vw`` on 1 df.
    """
    df = as_pandas(df)
    t, e = survival_arrays(df, time, event)
    codes, levels = group_codes(df, group)
    if len(levels) < 2:
        raise AnalysisError(
            f"log-rank test needs at least two groups in column {group!r}; found {levels}"
        )
    sc = None if strata is None else group_codes(df, strata)[0]
    obs, exp, cov = kernels.logrank_arrays(t, e.astype(float), codes, len(levels), sc)
    if obs.sum() == 0:
        raise AnalysisError(
            f"log-rank test: no events in column {event!r} among {t.size} patients (all "
            "censored); there is nothing to compare"
        )
    stat, dof = kernels.logrank_chisq(obs, exp, cov)
    rows = [{"test": "log-rank", "statistic": stat, "df": dof, "p_value": stats.chi2.sf(stat, dof)}]
    if len(levels) > 2:
        w = _trend_scores(df, group, levels, trend_scores)
        u = float(w @ (obs - exp))
        v = float(w @ cov @ w)
        tstat = u * u / v if v > 0 else float("nan")
        rows.append(
            {"test": "trend", "statistic": tstat, "df": 1, "p_value": stats.chi2.sf(tstat, 1)}
        )
    return pd.DataFrame(rows).set_index("test")


@positional_deprecated("time", "event", "group")
def logrank_table(
    df: pd.DataFrame,
    *,
    time: str,
    event: str,
    group: str,
    strata: str | None = None,
) -> pd.DataFrame:
    """Observed and expected events per group (R ``survdiff`` table): ``group, n, observed,
    expected, o_minus_e, variance``.

    Parameters
    ----------
    df : DataFrame
        One row per patient (pandas or polars).
    time, event : str
        Column names: follow-up time (>= 0) and event indicator (1 event, 0 censored).
    group : str
        Column defining the groups (no missing values).
    strata : str, optional
        Column defining strata for a stratified log-rank table (observed, expected and variance
        summed over strata).

    Returns
    -------
    DataFrame
        One row per group: ``group, n, observed, expected, o_minus_e, variance`` (``variance``: the
        diagonal of the log-rank covariance matrix).
    """
    df = as_pandas(df)
    t, e = survival_arrays(df, time, event)
    codes, levels = group_codes(df, group)
    sc = None if strata is None else group_codes(df, strata)[0]
    obs, exp, cov = kernels.logrank_arrays(t, e.astype(float), codes, len(levels), sc)
    return pd.DataFrame(
        {
            "group": levels,
            "n": np.bincount(codes, minlength=len(levels)),
            "observed": obs,
            "expected": exp,
            "o_minus_e": obs - exp,
            "variance": np.diag(cov),
        }
    )


@renamed_parameters(conf_level="level")
@positional_deprecated("time", "event", "group")
def rmst(
    df: pd.DataFrame,
    *,
    time: str,
    event: str,
    group: str | None = None,
    tau: float | None = None,
    level: float = 0.95,
) -> pd.DataFrame:
    """Restricted mean survival time up to ``tau`` per group and differences between groups.

    Parameters
    ----------
    df : DataFrame
    time, event, group : str
    tau : float, optional
        Truncation time; default the smallest of the groups' largest observed times (the
        largest ``tau`` at which every group's KM curve is defined, as ``survRM2``).
    level : float

    Returns
    -------
    DataFrame
        Columns ``term, estimate, se, low, high, p_value, tau``: one row ``rmst[level]`` per
        group, then ``difference[level - reference]`` for every other level against the first.

    Raises
    ------
    AnalysisError
        When ``tau`` exceeds a group's largest observed time.
    """
    check_level(level)
    df = as_pandas(df)
    t, e = survival_arrays(df, time, event)
    if group is None:
        codes, levels = np.zeros(t.size, dtype=int), ["all"]
    else:
        codes, levels = group_codes(df, group)
    maxes = [float(t[codes == i].max()) for i in range(len(levels))]
    if tau is None:
        tau = min(maxes)
    tau = float(tau)
    if tau <= 0:
        raise ValueError(f"tau must be > 0; got {tau}")
    too_long = [lv for lv, m in zip(levels, maxes, strict=True) if tau > m]
    if too_long:
        raise AnalysisError(
            f"RMST: tau={tau:g} is beyond the last observed time of group(s) {too_long} "
            f"(largest times {dict(zip(map(str, levels), maxes, strict=True))}); choose tau <= "
            f"{min(maxes):g}"
        )
    q = norm_ppf(level)
    rows = []
    est = {}
    for i, lv in enumerate(levels):
        m = codes == i
        mu, var = kernels.rmst_arrays(kernels.kaplan_meier(t[m], e[m]), tau)
        se = math.sqrt(var)
        est[lv] = (mu, var)
        rows.append(
            {
                "term": f"rmst[{lv}]",
                "estimate": mu,
                "se": se,
                "low": mu - q * se,
                "high": mu + q * se,
                "p_value": np.nan,
            }
        )
    ref = levels[0]
    for lv in levels[1:]:
        diff = est[lv][0] - est[ref][0]
        se = math.sqrt(est[lv][1] + est[ref][1])
        p = 2 * stats.norm.sf(abs(diff) / se) if se > 0 else np.nan
        rows.append(
            {
                "term": f"difference[{lv} - {ref}]",
                "estimate": diff,
                "se": se,
                "low": diff - q * se,
                "high": diff + q * se,
                "p_value": p,
            }
        )
    out = pd.DataFrame(rows)
    out["tau"] = tau
    return out
