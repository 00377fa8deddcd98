"""Treatment effect along a continuous biomarker: the treatment hazard ratio as a function of
the score, the picture used to judge a predictive biomarker and to discuss a cut-off.

Two estimates, each with pointwise intervals and a test of the treatment x score interaction:

- :func:`stepp` — STEPP, the subpopulation treatment effect pattern plot (Bonetti & Gelber,
  Stat Med 2000; Biostatistics 2004): overlapping subpopulations of about ``r2`` patients
  each, consecutive ones sharing about ``r1`` patients (they slide by ``r2 - r1`` patients
  along the sorted score; a window ends at a score value, so tied scores are never split), the
  treatment HR of each from a Cox model with the arm only (Efron ties) and its Wald interval.
  The interaction test permutes the score among patients (time, event and arm stay together),
  recomputes every window and compares the supremum over windows of ``|log HR(window) -
  log HR(all patients)|`` with the observed one; ``p = (1 + #{T* >= T}) / (B + 1)``, the ``B``
  permutations seeded through ``SeedSequence(seed)``. Exact for a score unrelated to outcome;
  a prognostic score is not exchangeable (size 0.07 at 0.05 in simulations, log HR 0.5/SD).
- :func:`spline_interaction` — a Cox model with ``arm + f(score) + arm x f(score)``, ``f`` a
  natural cubic spline (restricted cubic spline, Harrell's truncated-power basis) with knots at
  pre-specified quantiles of the score, linear beyond the outer knots. The log HR of treatment
  at score ``s`` is ``beta_arm + B(s) gamma`` with a pointwise delta-method band
  (``c(s)' V c(s)``); the interaction is tested by the likelihood ratio against the model
  without ``arm x f(score)`` (df = number of knots - 1). The basis spans the same space as R's
  ``splines::ns(score, knots = inner, Boundary.knots = outer)``, so the curve, band and test
  equal R ``coxph`` with that basis.

:func:`treatment_effect_curve` runs both on one table. The window fits of the permutations use
a vectorised one-covariate Efron Newton solver (all windows of many permutations at once); the
reported window HRs come from :func:`~tario_clinical.survival.cox_model.fit_cox_design`, the
solver behind :func:`~tario_clinical.survival.cox` (the two agree to 1e-9).

**A cut-off read off either curve is exploratory.** The curve is estimated on the patients it
describes; the score where the band leaves 1 is chosen by looking at the data, so the benefit
above it is overstated. A cut-off is confirmatory only when it was fixed before the analysis or
chosen on other data and then tested here.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import stats

from .._checks import deprecated_attribute, renamed_parameters
from ..errors import AnalysisError, SchemaError
from .cox_model import CoxModel, design_matrix, design_terms, fit_cox_design
from .formatting import html_table, json_safe, records
from .validation import (
    as_pandas,
    check_level,
    level_order,
    norm_ppf,
    require_columns,
    row_labels,
    survival_arrays,
)

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

__all__ = [
    "EXPLORATORY_CUTOFF",
    "SteppResult",
    "SplineEffect",
    "TreatmentEffectCurve",
    "stepp",
    "spline_interaction",
    "treatment_effect_curve",
]

#: the caution every effect-curve result carries
EXPLORATORY_CUTOFF = (
    "Any cut-off read off this curve is exploratory: it is chosen on the same patients the "
    "curve describes, so the benefit above it is overstated. Fix a cut-off before the analysis "
    "or choose it on other data, then test it here."
)
_STEPP_TEST = "permutation, supremum |log HR(window) - log HR(all)|"
_MAX_LOG_HR = 20.0  # a window estimate beyond exp(±20) is a monotone likelihood, not an HR


# =============================================================================== input
@dataclass(frozen=True)
class _Data:
    """Validated arrays of the analysed patients (rows of ``df`` in their order)."""

    df: pd.DataFrame
    score: np.ndarray
    time: np.ndarray
    event: np.ndarray
    a: np.ndarray  # 1.0 = experimental arm
    control: Any
    experimental: Any
    arm_name: str


def _data(df: Any, score: str, time: str, event: str, arm: str, reference_arm: Any | None) -> _Data:
    df = as_pandas(df).reset_index(drop=True)
    require_columns(df, [score, arm])
    t, e = survival_arrays(df, time, event)
    s = pd.to_numeric(df[score], errors="coerce").astype(float).to_numpy()
    bad = ~np.isfinite(s)
    if bad.any():
        raise SchemaError(
            f"column {score!r}: {int(bad.sum())} missing or non-numeric score(s) at rows "
            f"{row_labels(df, bad)}; the effect curve needs a score for every patient (drop "
            "them first)"
        )
    if np.unique(s).size < 10:
        raise AnalysisError(
            f"column {score!r} has {np.unique(s).size} distinct values; an effect curve needs a "
            "continuous score (use treatment_interaction for a categorical biomarker)"
        )
    miss = df[arm].isna().to_numpy()
    if miss.any():
        raise SchemaError(
            f"column {arm!r}: {int(miss.sum())} missing arm value(s) at rows {row_labels(df, miss)}"
        )
    levels = level_order(df[arm])
    if len(levels) != 2:
        raise AnalysisError(
            f"the treatment effect needs exactly two arms in column {arm!r}; found "
            f"{len(levels)}: {levels}"
        )
    if reference_arm is None:
        named = [lv for lv in levels if str(lv).lower() in ("control", "placebo", "standard")]
        control = named[0] if named else levels[0]
    elif reference_arm in levels:
        control = reference_arm
    else:
        raise ValueError(f"reference_arm={reference_arm!r} is not one of the arms {levels}")
    experimental = levels[1] if control == levels[0] else levels[0]
    a = (df[arm] == experimental).to_numpy(dtype=float)
    return _Data(df, s, t, e.astype(float), a, control, experimental, f"{arm}[{experimental}]")


# =============================================================================== STEPP windows
def _windows(score: np.ndarray, r1: int, r2: int) -> tuple[np.ndarray, np.ndarray]:
    """Membership ``(K, n)`` of the sliding windows and their ``(K, 2)`` score bounds."""
    n = score.size
    ss = np.sort(score)
    step = r2 - r1
    starts = list(range(0, n - r2 + 1, step))
    if starts[-1] != n - r2:
        starts.append(n - r2)
    bounds = np.array([(ss[i], ss[i + r2 - 1]) for i in starts])
    bounds = np.unique(bounds, axis=0)  # tied scores can make consecutive windows equal
    member = (score[None, :] >= bounds[:, :1]) & (score[None, :] <= bounds[:, 1:])
    return member, bounds


def _window_sizes(n: int, r1: int | None, r2: int | None) -> tuple[int, int]:
    if r2 is None:
        r2 = min(n, max(20, round(n / 4)))
    if r1 is None:
        r1 = round(0.75 * r2)
    r1, r2 = int(r1), int(r2)
    if not 0 <= r1 < r2 <= n:
        raise ValueError(
            f"STEPP windows need 0 <= r1 < r2 <= n patients; got r1={r1}, r2={r2}, n={n} (r2 = "
            "patients per window, r1 = patients shared by consecutive windows)"
        )
    return r1, r2


# =============================================================================== window kernel
@dataclass(frozen=True)
class _TimeOrder:
    """The fixed part of every window fit: patients sorted by time and their tie groups."""

    order: np.ndarray
    first: np.ndarray  # first sorted position of each distinct time
    ae: np.ndarray  # arm x event, time order
    e: np.ndarray
    a: np.ndarray


def _time_order(t: np.ndarray, e: np.ndarray, a: np.ndarray) -> _TimeOrder:
    order = np.argsort(t, kind="mergesort")
    _, first = np.unique(t[order], return_index=True)
    return _TimeOrder(order, first, a[order] * e[order], e[order], a[order])


def _window_log_hr(member: np.ndarray, to: _TimeOrder, tol: float = 1e-10) -> np.ndarray:
    """``(R, 2)`` log HR and standard error of the arm in each row's window (Efron ties);
    NaN where a window lacks events in an arm or its likelihood is monotone.

    All rows are solved at once by Newton–Raphson with step halving: for one binary covariate
    the risk-set sums are ``n0 + exp(b) n1`` (at-risk counts per arm), computed once per
    window, so every iteration is a few array operations on ``(R, distinct times)``.
    """
    w = member[:, to.order].astype(float)
    w1 = w * to.a
    w0 = w - w1

    def rev(x: np.ndarray) -> np.ndarray:
        return np.cumsum(x[:, ::-1], axis=1)[:, ::-1][:, to.first]

    n1, n0 = rev(w1), rev(w0)
    d1 = np.add.reduceat(w1 * to.e, to.first, axis=1)
    d0 = np.add.reduceat(w0 * to.e, to.first, axis=1)
    d = d0 + d1
    big_d1 = d1.sum(axis=1)
    ok = (big_d1 > 0) & (d0.sum(axis=1) > 0)
    max_d = int(d.max()) if d.size else 0
    safe_d = np.maximum(d, 1.0)

    def terms(b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        r = np.exp(b)[:, None]
        ll, g, h = b * big_d1, big_d1.copy(), np.zeros_like(b)
        for row in range(max_d):  # Efron: row l of a tie group of d deaths removes l/d of it
            m = d > row
            frac = np.where(m, row / safe_d, 0.0)
            num = r * (n1 - frac * d1)
            den = np.where(m, n0 - frac * d0 + num, 1.0)
            mean = np.where(m, num / den, 0.0)
            ll = ll - np.log(den).sum(axis=1)
            g = g - mean.sum(axis=1)
            h = h + (mean * (1.0 - mean)).sum(axis=1)
        return ll, g, h

    b = np.zeros(member.shape[0])
    ll, g, h = terms(b)
    done = ~ok
    for _ in range(60):
        step = np.where(done | (h <= 0), 0.0, g / np.where(h > 0, h, 1.0))
        t = np.ones_like(b)
        for _ in range(40):
            ll_new, g_new, h_new = terms(b + t * step)
            worse = ~(ll_new >= ll - 1e-12 * (1.0 + np.abs(ll)))
            if not worse.any():
                break
            t = np.where(worse, t / 2.0, t)
        b = b + t * step
        ll, g, h = ll_new, g_new, h_new
        done |= np.abs(t * step) < tol
        if done.all():
            break
    good = ok & done & (np.abs(b) < _MAX_LOG_HR) & (h > 0)
    se = np.where(good, 1.0 / np.sqrt(np.where(h > 0, h, 1.0)), np.nan)
    return np.column_stack([np.where(good, b, np.nan), se])


# =============================================================================== STEPP
def _hr(row: pd.Series, q: float) -> dict[str, float]:
    """``hr, hr_low, hr_high, p_value`` of a Cox table row (Wald interval at quantile ``q``)."""
    b, se = float(row["coef"]), float(row["se"])
    out = {"hr": np.exp(b), "hr_low": np.exp(b - q * se), "hr_high": np.exp(b + q * se)}
    return {**{k: float(v) for k, v in out.items()}, "p_value": float(row["p_value"])}


@dataclass(frozen=True, eq=False)
class SteppResult:
    """STEPP: treatment HR in overlapping subpopulations along the score.

    Attributes
    ----------
    table : DataFrame
        One row per window: ``window, n, events, score_low, score_high, score_median, hr,
        hr_low, hr_high, p_value`` (arm-only Cox fit of the window's patients, Efron ties, Wald
        interval and p).
    test : DataFrame
        Indexed by ``test``: ``statistic, n_permutations, n_degenerate, p_value`` — the
        permutation test of the interaction (``n_degenerate``: permutations in which some
        window could not be fitted; their supremum is over the other windows).
    overall : dict
        ``n, events, hr, hr_low, hr_high, p_value`` of all patients.
    r1, r2 : int
        Patients shared by consecutive windows, patients per window.
    """

    table: pd.DataFrame
    test: pd.DataFrame
    overall: dict[str, Any]
    r1: int
    r2: int
    level: float
    seed: int
    conf_level = deprecated_attribute("conf_level", "level")

    @property
    def p_value(self) -> float:
        """Permutation p-value of the interaction."""
        return float(self.test["p_value"].iloc[0])

    def to_dict(self) -> dict[str, Any]:
        """Every number as JSON-safe Python types."""
        return {
            "method": "STEPP (sliding windows)",
            "r1": self.r1,
            "r2": self.r2,
            "level": self.level,
            "seed": self.seed,
            "windows": records(self.table),
            "test": records(self.test),
            "overall": json_safe(self.overall),
        }


@renamed_parameters(conf_level="level")
def stepp(
    df: Any,
    score: str,
    *,
    time: str = "os_time",
    event: str = "os_event",
    arm: str = "arm",
    reference_arm: Any | None = None,
    r1: int | None = None,
    r2: int | None = None,
    n_permutations: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> SteppResult:
    """STEPP: the treatment HR in overlapping subpopulations along a continuous score.

    Parameters
    ----------
    df : DataFrame
        One row per patient with the score, survival and arm columns.
    score : str
        Column of the continuous score (at least 10 distinct values).
    time, event : str
        Survival columns (event 1, censored 0).
    arm : str
        Column with exactly two arms; the control is ``reference_arm`` or an arm called
        control / placebo / standard, else the first in sorted order.
    reference_arm : optional
        Control arm level.
    r1, r2 : int, optional
        Bonetti & Gelber's window parameters: ``r2`` patients per subpopulation (default
        ``max(20, n / 4)``, at most ``n``), ``r1`` patients shared by consecutive ones (default
        ``0.75 * r2``); windows slide by ``r2 - r1`` patients, the last ends at the highest
        score.
    n_permutations : int, default 1000
        Permutations of the interaction test (at least 19).
    level : float, default 0.95
        Level of the pointwise intervals.
    seed : int, default 0
        Seeds the permutations (``SeedSequence(seed)``).

    Returns
    -------
    SteppResult

    Raises
    ------
    SchemaError
        Missing scores, times, events or arms (rows named).
    AnalysisError
        Fewer than two distinct windows, or a window without events in one arm (use larger
        windows).

    Examples
    --------
    >>> import tario_clinical as tc
    >>> trial = tc.simulate_trial(200, seed=1, n_genes=10, compute_attainable=False)
    >>> df = trial.clinical.assign(score=trial.clinical["age"])
    >>> res = stepp(df, "score", n_permutations=99)
    >>> res.r2, int(res.table["n"].iloc[0])  # ages are whole years: ties widen a window
    (50, 57)
    """
    check_level(level)
    if int(n_permutations) < 19:
        raise ValueError(f"n_permutations must be at least 19; got {n_permutations!r}")
    d = _data(df, score, time, event, arm, reference_arm)
    n = d.score.size
    r1, r2 = _window_sizes(n, r1, r2)
    member, bounds = _windows(d.score, r1, r2)
    if member.shape[0] < 2:
        raise AnalysisError(
            f"STEPP: r1={r1}, r2={r2} give a single window over {n} patients; use a smaller r2"
        )
    q = norm_ppf(level)
    rows = []
    for k, m in enumerate(member):
        sub = d.df.loc[m].reset_index(drop=True)
        try:
            fit = fit_cox_design(sub, time, event, d.a[m][:, None], [d.arm_name])
        except AnalysisError as err:
            raise AnalysisError(
                f"STEPP window {k + 1} (scores {bounds[k, 0]:.4g} to {bounds[k, 1]:.4g}, "
                f"{int(m.sum())} patients, {int(d.event[m].sum())} events) cannot be fitted: "
                f"{str(err).split(';')[0]}; use larger windows (r2)"
            ) from err
        r = fit.table.iloc[0]
        where = {"score_low": bounds[k, 0], "score_high": bounds[k, 1]}
        rows.append({"window": k + 1, "n": int(m.sum()), "events": int(d.event[m].sum()), **where})
        rows[-1].update(score_median=float(np.median(d.score[m])), **_hr(r, q))
    table = pd.DataFrame(rows)
    everyone = fit_cox_design(d.df, time, event, d.a[:, None], [d.arm_name]).table.iloc[0]
    overall = {"n": n, "events": int(d.event.sum()), **_hr(everyone, q)}
    to = _time_order(d.time, d.event, d.a)
    b_all = float(everyone["coef"])
    observed = float(np.max(np.abs(_window_log_hr(member, to)[:, 0] - b_all)))
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    exceed = degenerate = 0
    k_win = member.shape[0]
    chunk = max(1, 4096 // k_win)
    remaining = int(n_permutations)
    while remaining:
        b = min(chunk, remaining)
        perms = np.stack([rng.permutation(n) for _ in range(b)])
        # patient j gets the score of patient perm[j]: window membership moves with it
        stacked = member[:, perms].transpose(1, 0, 2).reshape(b * k_win, n)
        est = _window_log_hr(stacked, to)[:, 0].reshape(b, k_win)
        dev = np.abs(est - b_all)
        degenerate += int(np.isnan(dev).any(axis=1).sum())
        sup = np.nanmax(np.where(np.isnan(dev), -np.inf, dev), axis=1)
        exceed += int((sup >= observed - 1e-12 * max(1.0, observed)).sum())
        remaining -= b
    p = (1 + exceed) / (int(n_permutations) + 1)
    cols = {"statistic": observed, "n_permutations": int(n_permutations)}
    cols.update(n_degenerate=degenerate, p_value=p)
    test = pd.DataFrame(cols, index=pd.Index([_STEPP_TEST], name="test"))
    return SteppResult(table, test, overall, r1, r2, float(level), int(seed))


# =============================================================================== spline model
def spline_basis(x: np.ndarray, knots: np.ndarray) -> np.ndarray:
    """Natural (restricted) cubic spline basis: ``(n, k - 1)`` columns for ``k`` knots.

    Harrell's truncated-power form on ``z = (x - t_1) / (t_k - t_1)``: ``z`` and ``k - 2``
    cubic terms, linear beyond the outer knots. With a constant it spans the natural cubic
    splines with these knots (the space of R's ``ns(x, knots = t[2:(k-1)], Boundary.knots =
    t[c(1, k)])``).

    Parameters
    ----------
    x : ndarray
        Values to evaluate.
    knots : ndarray
        ``k >= 3`` increasing knots.

    Returns
    -------
    ndarray
    """
    t = np.asarray(knots, dtype=float)
    k = t.size
    span = t[-1] - t[0]
    z = (np.asarray(x, dtype=float) - t[0]) / span
    tz = (t - t[0]) / span
    cols = [z]
    last = tz[-1] - tz[-2]
    for j in range(k - 2):
        cols.append(
            np.maximum(z - tz[j], 0) ** 3
            - np.maximum(z - tz[-2], 0) ** 3 * (tz[-1] - tz[j]) / last
            + np.maximum(z - tz[-1], 0) ** 3 * (tz[-2] - tz[j]) / last
        )
    return np.column_stack(cols)


@dataclass(frozen=True, eq=False)
class SplineEffect:
    """Cox model with an arm x natural-spline(score) interaction.

    Attributes
    ----------
    table : DataFrame
        The curve on a grid: ``score, log_hr, se, hr, hr_low, hr_high`` (pointwise
        delta-method interval).
    at_quantiles : DataFrame
        The same at the 10th, 25th, 50th, 75th and 90th percentile of the score
        (``quantile`` column first).
    test : DataFrame
        Indexed by ``test`` (``likelihood-ratio``): ``statistic, df, p_value`` of the
        interaction terms.
    knots : DataFrame
        ``quantile, score`` of each knot.
    model : CoxModel
        The model with the interaction (terms ``arm``, ``spline1..``, ``arm:spline1..``).
    """

    table: pd.DataFrame
    at_quantiles: pd.DataFrame
    test: pd.DataFrame
    knots: pd.DataFrame
    model: CoxModel = field(repr=False)
    level: float = 0.95
    conf_level = deprecated_attribute("conf_level", "level")

    @property
    def p_value(self) -> float:
        """Likelihood-ratio p-value of the interaction."""
        return float(self.test["p_value"].iloc[0])

    def to_dict(self) -> dict[str, Any]:
        """Every number as JSON-safe Python types."""
        return {
            "method": "Cox model, arm x natural cubic spline of the score",
            "level": self.level,
            "knots": records(self.knots),
            "test": records(self.test),
            "at_quantiles": records(self.at_quantiles),
            "curve": records(self.table),
            "model": records(self.model.table),
            "n": self.model.n,
            "events": self.model.events,
        }


@renamed_parameters(conf_level="level")
def spline_interaction(
    df: Any,
    score: str,
    *,
    time: str = "os_time",
    event: str = "os_event",
    arm: str = "arm",
    reference_arm: Any | None = None,
    knots: Sequence[float] = (0.1, 0.5, 0.9),
    covariates: Sequence[str] = (),
    grid: Sequence[float] | None = None,
    level: float = 0.95,
) -> SplineEffect:
    """The treatment log HR as a smooth function of the score: Cox model with arm x spline.

    Parameters
    ----------
    df : DataFrame
        One row per patient.
    score : str
        Column of the continuous score.
    time, event, arm, reference_arm
        As in :func:`stepp`.
    knots : sequence of float, default (0.1, 0.5, 0.9)
        Quantile levels of the knots (at least 3, in (0, 1), increasing; fix them before the
        analysis). Harrell's defaults: (0.05, 0.35, 0.65, 0.95) for 4 knots, (0.05, 0.275,
        0.5, 0.725, 0.95) for 5.
    covariates : sequence of str
        Adjustment covariates (main effects, in both models).
    grid : sequence of float, optional
        Scores at which the curve is evaluated; default 101 points from the 5th to the 95th
        percentile (beyond them the band is extrapolation).
    level : float, default 0.95

    Returns
    -------
    SplineEffect

    Raises
    ------
    SchemaError, AnalysisError
        As :func:`stepp`; knots that coincide (a score with many ties).
    """
    check_level(level)
    levels = np.asarray(knots, dtype=float)
    if levels.size < 3 or np.any(np.diff(levels) <= 0) or levels[0] <= 0 or levels[-1] >= 1:
        raise ValueError(
            f"knots must be at least 3 increasing quantile levels in (0, 1); got {list(knots)!r}"
        )
    d = _data(df, score, time, event, arm, reference_arm)
    covariates = [covariates] if isinstance(covariates, str) else list(covariates)
    require_columns(d.df, covariates)
    kn = np.quantile(d.score, levels)
    if np.any(np.diff(kn) <= 0):
        raise AnalysisError(
            f"spline knots at quantiles {levels.tolist()} of {score!r} coincide ({kn.tolist()}); "
            "use fewer knots"
        )
    basis = spline_basis(d.score, kn)
    names = [f"spline{j + 1}" for j in range(basis.shape[1])]
    i_names = [f"{d.arm_name}:{nm}" for nm in names]
    cx, cnames = design_matrix(d.df, covariates, None)
    extra = [cx] if cx.size else []
    cterms = design_terms(covariates, cnames)
    full = fit_cox_design(
        d.df,
        time,
        event,
        np.column_stack([d.a, basis, d.a[:, None] * basis, *extra]),
        [d.arm_name, *names, *i_names, *cnames],
        terms=(d.arm_name, *[score] * len(names), *[f"arm:{score}"] * len(names), *cterms),
        level=level,
    )
    reduced = fit_cox_design(
        d.df,
        time,
        event,
        np.column_stack([d.a, basis, *extra]),
        [d.arm_name, *names, *cnames],
        level=level,
    )
    lr = max(0.0, 2.0 * (full.loglik - reduced.loglik))
    df_i = len(i_names)
    test = pd.DataFrame(
        {"statistic": [lr], "df": [df_i], "p_value": [float(stats.chi2.sf(lr, df_i))]},
        index=pd.Index(["likelihood-ratio"], name="test"),
    )
    idx = [d.arm_name, *i_names]
    beta = full.table.loc[idx, "coef"].to_numpy()
    cov = full.covariance.loc[idx, idx].to_numpy()
    q = norm_ppf(level)

    def curve(x: np.ndarray) -> pd.DataFrame:
        c = np.column_stack([np.ones(x.size), spline_basis(x, kn)])
        est = c @ beta
        se = np.sqrt(np.einsum("ij,jk,ik->i", c, cov, c))
        out = {"score": x, "log_hr": est, "se": se, "hr": np.exp(est)}
        return pd.DataFrame(
            {**out, "hr_low": np.exp(est - q * se), "hr_high": np.exp(est + q * se)}
        )

    lo_hi = np.quantile(d.score, [0.05, 0.95])
    x = np.linspace(*lo_hi, 101) if grid is None else np.asarray(grid, float)
    quants = np.array([0.1, 0.25, 0.5, 0.75, 0.9])
    at_q = curve(np.quantile(d.score, quants))
    at_q.insert(0, "quantile", quants)
    return SplineEffect(
        table=curve(x),
        at_quantiles=at_q,
        test=test,
        knots=pd.DataFrame({"quantile": levels, "score": kn}),
        model=full,
        level=float(level),
    )


# =============================================================================== both
@dataclass(frozen=True, eq=False)
class TreatmentEffectCurve:
    """The treatment HR along a continuous score: STEPP windows and the spline curve.

    Attributes
    ----------
    stepp : SteppResult or None
    spline : SplineEffect or None
    score : str
        Name of the score.
    arm, experimental, control : str / Any
    n, events : int
    notes : tuple of str
        Includes :data:`EXPLORATORY_CUTOFF`.
    """

    stepp: SteppResult | None
    spline: SplineEffect | None
    score: str
    arm: str
    experimental: Any
    control: Any
    n: int
    events: int
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Every number as JSON-safe Python types."""
        return {
            "analysis": "survival.treatment_effect_curve",
            "score": self.score,
            "arm": self.arm,
            "experimental": json_safe(self.experimental),
            "control": json_safe(self.control),
            "n": self.n,
            "events": self.events,
            "stepp": None if self.stepp is None else self.stepp.to_dict(),
            "spline": None if self.spline is None else self.spline.to_dict(),
            "exploratory_cutoff": EXPLORATORY_CUTOFF,
            "notes": list(self.notes),
        }

    def plot(self, *, ax: Axes | None = None, score_label: str | None = None) -> Axes:
        """Treatment HR (log scale) against the score: the spline curve with its pointwise
        band, the STEPP windows (median score, HR and interval), HR = 1 and the overall HR;
        returns the Axes."""
        from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

        from ..palette import OKABE_ITO

        if ax is None:
            import matplotlib.pyplot as plt

            _, ax = plt.subplots(figsize=(6.4, 4.0))
        ys: list[float] = [1.0]
        if self.spline is not None:
            c = self.spline.table
            p = self.spline.p_value
            ax.fill_between(c["score"], c["hr_low"], c["hr_high"], color=OKABE_ITO[0], alpha=0.2)
            label = f"spline interaction model, 95 % band (LR p = {p:.2g})"
            ax.plot(c["score"], c["hr"], color=OKABE_ITO[0], lw=2, label=label)
            ys += [*c["hr_low"], *c["hr_high"]]
        if self.stepp is not None:
            w = self.stepp.table
            label = f"STEPP windows of {self.stepp.r2} patients (permutation p = "
            label += f"{self.stepp.p_value:.2g})"
            err = [w["hr"] - w["hr_low"], w["hr_high"] - w["hr"]]
            style = {"fmt": "s", "ms": 4, "color": OKABE_ITO[1], "capsize": 2, "lw": 1}
            ax.errorbar(w["score_median"], w["hr"], yerr=err, label=label, **style)
            ax.axhline(self.stepp.overall["hr"], color="black", ls=":", lw=1, label="all patients")
            ys += [*w["hr_low"], *w["hr_high"]]
        ax.axhline(1.0, color="grey", ls="--", lw=0.8)
        ax.set_yscale("log")
        finite = np.asarray([y for y in ys if np.isfinite(y) and y > 0])
        lo, hi = max(finite.min() / 1.15, 1e-3), min(finite.max() * 1.15, 1e3)
        ax.set_ylim(lo, hi)
        if hi / lo > 8:  # 1-2-5 ticks over a wide range, finer ones over a narrow one
            nice = [m * 10.0**e for e in range(-2, 3) for m in (1, 2, 5)]
        else:
            nice = [0.1, 0.2, 0.3, 0.5, 0.7, 1, 1.5, 2, 3, 5, 7, 10]
        ticks = [v for v in nice if lo <= v <= hi]
        ax.yaxis.set_major_locator(FixedLocator(ticks))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_locator(NullLocator())
        label = score_label or self.score
        ax.set_xlabel(label)
        ax.set_ylabel(f"HR {self.experimental} vs {self.control}")
        ax.set_title(f"Treatment effect along the {label}", fontsize=10)
        ax.legend(fontsize=7, loc="best")
        return ax

    def _repr_html_(self) -> str:
        parts = [f"<p>{html.escape(EXPLORATORY_CUTOFF)}</p>"]
        if self.stepp is not None:
            parts += [html_table(self.stepp.test, "STEPP interaction test")]
            parts += [html_table(self.stepp.table, "STEPP windows")]
        if self.spline is not None:
            parts += [html_table(self.spline.test, "Spline interaction test")]
            parts += [html_table(self.spline.at_quantiles, "Spline curve at score quantiles")]
        return "".join(parts)


@renamed_parameters(conf_level="level")
def treatment_effect_curve(
    df: Any,
    score: str,
    *,
    time: str = "os_time",
    event: str = "os_event",
    arm: str = "arm",
    reference_arm: Any | None = None,
    r1: int | None = None,
    r2: int | None = None,
    n_permutations: int = 1000,
    knots: Sequence[float] = (0.1, 0.5, 0.9),
    level: float = 0.95,
    seed: int = 0,
) -> TreatmentEffectCurve:
    """The treatment HR as a function of a continuous score: STEPP and a spline interaction.

    Runs :func:`stepp` and :func:`spline_interaction` (unadjusted) on the same patients. An
    estimate that cannot be computed (e.g. a STEPP window without events in one arm) is left
    out with the reason in ``notes``.

    Parameters
    ----------
    df : DataFrame
        One row per patient with the score, survival and arm columns.
    score : str
        Column of the continuous score.
    time, event, arm, reference_arm
        As in :func:`stepp`.
    r1, r2, n_permutations, seed
        STEPP windows and permutation test (:func:`stepp`).
    knots : sequence of float
        Quantile levels of the spline knots (:func:`spline_interaction`).
    level : float, default 0.95

    Returns
    -------
    TreatmentEffectCurve

    Raises
    ------
    SchemaError
        Missing scores, times, events or arms.
    AnalysisError
        Neither estimate could be computed.

    Examples
    --------
    >>> import tario_clinical as tc
    >>> trial = tc.simulate_trial(200, seed=1, n_genes=10, compute_attainable=False)
    >>> df = trial.clinical.assign(score=trial.clinical["age"])
    >>> curve = treatment_effect_curve(df, "score", n_permutations=99)
    >>> sorted(curve.to_dict())[:3]
    ['analysis', 'arm', 'control']
    """
    d = _data(df, score, time, event, arm, reference_arm)
    notes: list[str] = [EXPLORATORY_CUTOFF]
    common = dict(time=time, event=event, arm=arm, reference_arm=reference_arm)
    common["level"] = level
    st = sp = None
    try:
        st = stepp(df, score, **common, r1=r1, r2=r2, n_permutations=n_permutations, seed=seed)
    except AnalysisError as err:
        notes.append(f"STEPP not computed: {err}")
    try:
        sp = spline_interaction(df, score, **common, knots=knots)
    except AnalysisError as err:
        notes.append(f"spline interaction model not computed: {err}")
    if st is None and sp is None:
        raise AnalysisError("treatment effect curve: " + "; ".join(notes[1:]))
    n, events = int(d.score.size), int(d.event.sum())
    return TreatmentEffectCurve(st, sp, score, arm, d.experimental, d.control, n, events, (*notes,))
