"""Numerical kernels of :mod:`tario_clinical.survival`: plain numpy on arrays, no pandas.

Kaplan–Meier, log-rank (k groups, and many two-group splits at once), Efron partial
likelihood with Newton–Raphson, the ``cox.zph`` score test, weighted pair concordance with an
influence-function variance, RMST. The table-level functions of the package validate input and
shape the tidy outputs; these kernels do no validation: they take finite times (>= 0), 0/1
events and integer group codes. They are public for callers that run them many times on small
arrays, where validating a DataFrame each time would dominate (the power simulation of
:mod:`tario_clinical.design`).

Why our own Efron Newton solver instead of lifelines' ``CoxPHFitter``: reference-exact work
(1e-6 relative to R ``survival``) needs a convergence criterion on the step size, which
lifelines' default tolerance does not give; R's ``cox.zph`` needs Efron-weighted Schoenfeld
residuals, which statsmodels' ``PHReg`` does not provide (it uses Breslow risk-set means);
and monotone likelihood (a group without events) must become a clear error, not a huge
coefficient. Tests check this solver against statsmodels, lifelines and a naive loop.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from .._checks import renamed_parameters
from ..errors import AnalysisError

__all__ = [
    "KMCurve",
    "kaplan_meier",
    "km_quantile",
    "logrank_arrays",
    "EfronFit",
    "efron_fit",
    "efron_terms",
    "zph_score",
    "pair_concordance",
    "censoring_survival",
    "step_at",
    "rmst_arrays",
    "logrank_chisq",
    "logrank_two_group_scan",
]


# --------------------------------------------------------------------------- Kaplan–Meier
@dataclass(frozen=True)
class KMCurve:
    """Kaplan–Meier estimate at the distinct observed times (events and censorings)."""

    time: np.ndarray
    n_risk: np.ndarray
    n_event: np.ndarray
    n_censor: np.ndarray
    survival: np.ndarray
    std_err: np.ndarray  # standard error of log S (Greenwood), R's ``std.err`` of survfit
    low: np.ndarray
    high: np.ndarray

    def at(self, t: np.ndarray | float, values: str = "survival") -> np.ndarray:
        """Right-continuous step-function value of ``values`` at time(s) ``t``."""
        arr = getattr(self, values)
        idx = np.searchsorted(self.time, np.atleast_1d(t), side="right") - 1
        start = 1.0 if values in ("survival", "low", "high") else 0.0
        out = np.where(idx >= 0, arr[np.clip(idx, 0, None)], start)
        return out


@renamed_parameters(conf_level="level")
def kaplan_meier(
    time: np.ndarray, event: np.ndarray, *, level: float = 0.95, conf_type: str = "log"
) -> KMCurve:
    """Kaplan–Meier with Greenwood variance; ``conf_type`` as R ``survfit`` (log, log-log, plain)."""
    time = np.asarray(time, dtype=float)
    event = np.asarray(event, dtype=bool)
    ut, inv = np.unique(time, return_inverse=True)
    n_event = np.bincount(inv, weights=event.astype(float), minlength=ut.size)
    n_total = np.bincount(inv, minlength=ut.size).astype(float)
    n_censor = n_total - n_event
    n_risk = n_total[::-1].cumsum()[::-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = 1.0 - n_event / n_risk
        survival = np.cumprod(factor)
        term = np.where(
            n_event > 0,
            n_event / (n_risk * (n_risk - n_event)),
            0.0,
        )
        var_log = np.cumsum(term)
        std_err = np.sqrt(var_log)
        z = stats.norm.ppf(0.5 + level / 2.0)
        if conf_type == "log":
            low = survival * np.exp(-z * std_err)
            high = survival * np.exp(z * std_err)
        elif conf_type == "log-log":
            lls = np.log(-np.log(survival))
            se_ll = std_err / np.abs(np.log(survival))
            low = np.exp(-np.exp(lls + z * se_ll))
            high = np.exp(-np.exp(lls - z * se_ll))
        else:  # plain
            low = survival - z * std_err * survival
            high = survival + z * std_err * survival
    low = np.clip(np.where(np.isfinite(low), low, np.where(survival <= 0, 0.0, np.nan)), 0, 1)
    high = np.clip(np.where(np.isfinite(high), high, np.where(survival <= 0, 0.0, np.nan)), 0, 1)
    # R: once S(t) = 0 the variance is undefined and the band collapses to 0
    zero = survival <= 0
    low[zero] = 0.0
    high[zero] = 0.0
    std_err = np.where(np.isfinite(std_err), std_err, np.nan)
    return KMCurve(ut, n_risk, n_event, n_censor, survival, std_err, low, high)


def km_quantile(time: np.ndarray, surv: np.ndarray, p: float = 0.5) -> float:
    """First time at which the step curve ``surv`` is <= 1 - p; NaN when it never is.

    A tolerance of ``sqrt(machine epsilon)`` (as R) keeps ``S = 0.5`` computed as
    ``0.4999999999`` or ``0.5000000001`` on the right side of the comparison.
    """
    target = 1.0 - p
    ok = np.flatnonzero(surv <= target + np.sqrt(np.finfo(float).eps))
    return float(time[ok[0]]) if ok.size else float("nan")


# --------------------------------------------------------------------------- log-rank
def logrank_arrays(
    time: np.ndarray,
    event: np.ndarray,
    group_codes: np.ndarray,
    n_groups: int,
    strata_codes: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Observed, expected and covariance (k x k) of the log-rank test, summed over strata.

    Hypergeometric variance with the ``(n - d) / (n - 1)`` tie correction, as R ``survdiff``.
    """
    time = np.asarray(time, dtype=float)
    event = np.asarray(event, dtype=float)
    if strata_codes is None:
        strata_codes = np.zeros(time.size, dtype=int)
    observed = np.zeros(n_groups)
    expected = np.zeros(n_groups)
    cov = np.zeros((n_groups, n_groups))
    for s in np.unique(strata_codes):
        m = strata_codes == s
        t, e, g = time[m], event[m], group_codes[m]
        ut, inv = np.unique(t, return_inverse=True)
        nt = ut.size
        d_g = np.zeros((nt, n_groups))
        c_g = np.zeros((nt, n_groups))
        np.add.at(d_g, (inv, g), e)
        np.add.at(c_g, (inv, g), 1.0)
        n_g = c_g[::-1].cumsum(axis=0)[::-1]  # at risk per group
        d = d_g.sum(axis=1)
        n = n_g.sum(axis=1)
        keep = d > 0
        d_g, n_g, d, n = d_g[keep], n_g[keep], d[keep], n[keep]
        frac = n_g / n[:, None]
        observed += d_g.sum(axis=0)
        expected += (d[:, None] * frac).sum(axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            w = np.where(n > 1, d * (n - d) / (n - 1), 0.0)
        cov += np.einsum("t,ti,tj->ij", w, frac, frac) * -1.0
        cov[np.diag_indices(n_groups)] += (w[:, None] * frac).sum(axis=0)
    return observed, expected, cov


def logrank_chisq(observed: np.ndarray, expected: np.ndarray, cov: np.ndarray) -> tuple[float, int]:
    """k-group chi-square (generalised inverse over the first k-1 groups) and its df."""
    diff = observed - expected
    k = diff.size
    sub = cov[: k - 1, : k - 1]
    stat = float(diff[: k - 1] @ np.linalg.pinv(sub) @ diff[: k - 1])
    df = int(np.linalg.matrix_rank(sub)) if k > 1 else 0
    return stat, df


def logrank_two_group_scan(
    time: np.ndarray, event: np.ndarray, high: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """O - E and variance of the 'high' group for many splits at once.

    ``high`` is an ``(n, m)`` boolean matrix, one column per candidate split.
    """
    order = np.argsort(time, kind="mergesort")
    time, event, high = time[order], event[order].astype(float), high[order].astype(float)
    ut, first = np.unique(time, return_index=True)
    inv = np.searchsorted(ut, time)
    nt = ut.size
    d = np.bincount(inv, weights=event, minlength=nt)
    n = (time.size - first).astype(float)
    # at risk in the high group at each unique time: reverse cumulative sum from first index
    csum = np.vstack([high[::-1].cumsum(axis=0)[::-1], np.zeros((1, high.shape[1]))])
    n1 = csum[first]
    d1 = np.zeros((nt, high.shape[1]))
    np.add.at(d1, inv, high * event[:, None])
    keep = d > 0
    d, n, n1, d1 = d[keep], n[keep], n1[keep], d1[keep]
    e1 = d[:, None] * n1 / n[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        w = np.where(n > 1, d * (n - d) / (n - 1), 0.0)
    v = (w[:, None] * (n1 / n[:, None]) * (1 - n1 / n[:, None])).sum(axis=0)
    return (d1 - e1).sum(axis=0), v


# --------------------------------------------------------------------------- Efron Cox
@dataclass(frozen=True)
class _EfronRows:
    """One stratum's events expanded to Efron rows (row ``l`` of a tie group of ``d`` deaths
    removes ``l / d`` of the group's risk weight), with the risk-set moments of each row."""

    idx: np.ndarray  # positions of the stratum's subjects in the (sorted) arrays
    eta: np.ndarray  # linear predictor of the stratum's subjects
    shift: float  # exp(eta - shift) was used for numerical range
    ev_rows: np.ndarray  # subject (within stratum) of each Efron row, grouped by event time
    group: np.ndarray  # event-time group of each Efron row
    n_groups: int
    d: np.ndarray  # deaths per distinct time of the stratum
    denom: np.ndarray  # Efron risk-set weight of each row
    mean: np.ndarray  # (rows, p) Efron risk-set mean of x
    second: np.ndarray | None  # (rows, p, p) Efron risk-set mean of x x^T


def _efron_rows(
    beta: np.ndarray,
    x: np.ndarray,
    time: np.ndarray,
    event: np.ndarray,
    strata: np.ndarray,
    *,
    want_second: bool,
) -> list[_EfronRows]:
    """Efron rows of every stratum with events (rows sorted by stratum, time)."""
    p = x.shape[1]
    eta_all = x @ beta
    out = []
    for s in np.unique(strata):
        idx = np.flatnonzero(strata == s)
        xs, ts, es, eta = x[idx], time[idx], event[idx], eta_all[idx]
        if not es.any():
            continue
        c = float(eta.max())
        r = np.exp(eta - c)
        rx = r[:, None] * xs
        # reverse cumulative sums: risk set of the first subject with each unique time
        ut, first, inv = np.unique(ts, return_index=True, return_inverse=True)
        s0 = r[::-1].cumsum()[::-1][first]
        s1 = rx[::-1].cumsum(axis=0)[::-1][first]
        ev = es.astype(bool)
        d = np.bincount(inv[ev], minlength=ut.size).astype(float)
        e0 = np.bincount(inv[ev], weights=r[ev], minlength=ut.size)
        e1 = np.zeros((ut.size, p))
        np.add.at(e1, inv[ev], rx[ev])
        # expand to one row per event: l = 0..d_k-1 within its tie group
        ev_idx = np.flatnonzero(ev)
        order = np.argsort(inv[ev_idx], kind="mergesort")
        rows = ev_idx[order]
        k_sorted = inv[rows]
        starts = np.searchsorted(k_sorted, k_sorted, side="left")
        frac = (np.arange(k_sorted.size) - starts) / d[k_sorted]
        denom = s0[k_sorted] - frac * e0[k_sorted]
        mean = (s1[k_sorted] - frac[:, None] * e1[k_sorted]) / denom[:, None]
        second = None
        if want_second:
            rxx = r[:, None, None] * xs[:, :, None] * xs[:, None, :]
            s2 = rxx[::-1].cumsum(axis=0)[::-1][first]
            e2 = np.zeros((ut.size, p, p))
            np.add.at(e2, inv[ev], rxx[ev])
            second = (s2[k_sorted] - frac[:, None, None] * e2[k_sorted]) / denom[:, None, None]
        out.append(_EfronRows(idx, eta, c, rows, k_sorted, ut.size, d, denom, mean, second))
    return out


def efron_terms(
    beta: np.ndarray,
    x: np.ndarray,
    time: np.ndarray,
    event: np.ndarray,
    strata: np.ndarray,
    *,
    want_hessian: bool = True,
    want_schoenfeld: bool = False,
) -> tuple[float, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Efron log partial likelihood, gradient, Hessian and Schoenfeld residuals.

    Rows must be sorted by (stratum, time). Schoenfeld residuals (one row per subject,
    NaN for censored) use the Efron-averaged risk-set mean, as R ``residuals.coxph``.
    """
    n, p = x.shape
    loglik = 0.0
    grad = np.zeros(p)
    hess = np.zeros((p, p)) if want_hessian else None
    resid = np.full((n, p), np.nan) if want_schoenfeld else None
    for st in _efron_rows(beta, x, time, event, strata, want_second=want_hessian):
        xs = x[st.idx]
        loglik += float(st.eta[st.ev_rows].sum() - (np.log(st.denom) + st.shift).sum())
        grad += xs[st.ev_rows].sum(axis=0) - st.mean.sum(axis=0)
        if hess is not None:
            assert st.second is not None
            hess -= (st.second - st.mean[:, :, None] * st.mean[:, None, :]).sum(axis=0)
        if resid is not None:
            # Efron: the expected covariate of each event at its time is the mean over l
            mean_k = np.zeros((st.n_groups, p))
            np.add.at(mean_k, st.group, st.mean)
            mean_k /= np.maximum(st.d, 1)[:, None]
            resid[st.idx[st.ev_rows]] = xs[st.ev_rows] - mean_k[st.group]
    return loglik, grad, hess, resid


def zph_score(
    beta: np.ndarray,
    x: np.ndarray,
    time: np.ndarray,
    event: np.ndarray,
    strata: np.ndarray,
    g: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Score test ingredients of R ``survival`` >= 3 ``cox.zph``.

    The Cox model extended by covariates ``x * g(t)`` (coefficients gamma) is evaluated at
    ``(beta, gamma = 0)`` with Efron ties: returns the score vector of gamma (``p``) and the
    full ``2p x 2p`` information matrix (beta block first). Rows sorted by (stratum, time);
    ``g`` holds the time transform of each row's own time.
    """
    p = x.shape[1]
    u = np.zeros(p)
    info = np.zeros((2 * p, 2 * p))
    for st in _efron_rows(beta, x, time, event, strata, want_second=True):
        assert st.second is not None
        gk = g[st.idx][st.ev_rows]
        u += (gk[:, None] * (x[st.idx][st.ev_rows] - st.mean)).sum(axis=0)
        v = st.second - st.mean[:, :, None] * st.mean[:, None, :]
        vg = np.tensordot(gk, v, axes=1)
        info[:p, :p] += v.sum(axis=0)
        info[:p, p:] += vg
        info[p:, :p] += vg
        info[p:, p:] += np.tensordot(gk * gk, v, axes=1)
    return u, info


@dataclass(frozen=True)
class EfronFit:
    """Converged Efron Cox fit on sorted arrays."""

    beta: np.ndarray
    cov: np.ndarray
    loglik: float
    loglik_null: float
    score_statistic: float
    iterations: int


def efron_fit(
    x: np.ndarray,
    time: np.ndarray,
    event: np.ndarray,
    strata: np.ndarray,
    *,
    names: list[str],
    max_iter: int = 60,
    tol: float = 1e-10,
) -> EfronFit:
    """Newton–Raphson with step halving until the largest step is below ``tol``.

    Raises
    ------
    AnalysisError
        On collinear covariates, monotone likelihood (a coefficient diverging, e.g. a group
        without events) or non-convergence.
    """
    n, p = x.shape
    beta = np.zeros(p)
    ll0, g0, h0, _ = efron_terms(beta, x, time, event, strata)
    try:
        score_stat = float(g0 @ np.linalg.solve(-h0, g0)) if p else 0.0
    except np.linalg.LinAlgError:
        score_stat = float("nan")
    if p == 0:
        return EfronFit(beta, np.zeros((0, 0)), ll0, ll0, 0.0, 0)
    sd = x.std(axis=0)
    ll, g, h = ll0, g0, h0
    converged = False
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007 - iteration count is reported
        try:
            step = np.linalg.solve(-h, g)
        except np.linalg.LinAlgError:
            break
        if not np.all(np.isfinite(step)):
            break
        t = 1.0
        while True:
            cand = beta + t * step
            ll_new, g_new, h_new, _ = efron_terms(cand, x, time, event, strata)
            if np.isfinite(ll_new) and ll_new >= ll - 1e-12 * (1.0 + abs(ll)):
                break
            t /= 2.0
            if t < 1e-10:
                break
        beta, ll, g, h = cand, ll_new, g_new, h_new
        if np.max(np.abs(t * step)) < tol:
            converged = True
            break
    diverging = np.abs(beta) * np.where(sd > 0, sd, 1.0) > 15.0
    if diverging.any() or not converged:
        bad = [names[i] for i in np.flatnonzero(diverging)] or names
        raise AnalysisError(
            "Cox model: monotone likelihood or non-convergence for term(s) "
            f"{bad} after {it} Newton steps (coefficients {np.round(beta, 3).tolist()}); "
            "a group or level probably has no events or the covariate separates events "
            "perfectly. Merge sparse levels or drop the term."
        )
    try:
        cov = np.linalg.inv(-h)
    except np.linalg.LinAlgError as err:
        raise AnalysisError(
            f"Cox model: information matrix is singular for terms {names}; covariates are "
            "collinear or constant within the analysed rows."
        ) from err
    return EfronFit(beta, cov, float(ll), float(ll0), score_stat, it)


# --------------------------------------------------------------------------- concordance
def censoring_survival(time: np.ndarray, event: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Kaplan–Meier of the censoring distribution G(t) (events at t leave before censorings).

    Returns the distinct times and G at them (right-continuous step function).
    """
    ut, inv = np.unique(time, return_inverse=True)
    d = np.bincount(inv, weights=event.astype(float), minlength=ut.size)
    tot = np.bincount(inv, minlength=ut.size).astype(float)
    cens = tot - d
    at_risk = tot[::-1].cumsum()[::-1] - d
    with np.errstate(divide="ignore", invalid="ignore"):
        fac = np.where(cens > 0, 1.0 - cens / at_risk, 1.0)
    return ut, np.cumprod(fac)


def step_at(xs: np.ndarray, ys: np.ndarray, t: np.ndarray, start: float = 1.0) -> np.ndarray:
    """Right-continuous step function through (xs, ys) evaluated at ``t``."""
    idx = np.searchsorted(xs, t, side="right") - 1
    return np.where(idx >= 0, ys[np.clip(idx, 0, None)], start)


def pair_concordance(
    time: np.ndarray,
    event: np.ndarray,
    score: np.ndarray,
    weight: np.ndarray,
    *,
    tied_tol: float = 1e-8,
    chunk: int = 512,
) -> tuple[float, float, int]:
    """Weighted concordance over comparable pairs with an influence-function SE.

    A pair (i, j) is comparable when i has an event and ``T_j > T_i`` or (``T_j == T_i``
    and j is censored); it carries weight ``weight[i]`` and is concordant when
    ``score_i > score_j`` (ties in score count 1/2). The variance of the ratio of
    U-statistics is ``sum_k (N_k - C D_k)^2 / D^2`` with ``N_k, D_k`` the concordant
    weight and pair weight involving subject k (weights treated as fixed).

    Returns (C, standard error, number of comparable pairs).
    """
    n = time.size
    ev = np.flatnonzero(event.astype(bool) & (weight > 0))
    n_k = np.zeros(n)
    d_k = np.zeros(n)
    num = den = 0.0
    n_pairs = 0
    for start in range(0, ev.size, chunk):
        i = ev[start : start + chunk]
        ti, si, wi = time[i][:, None], score[i][:, None], weight[i][:, None]
        comp = (time[None, :] > ti) | ((time[None, :] == ti) & ~event.astype(bool)[None, :])
        diff = si - score[None, :]
        conc = np.where(np.abs(diff) <= tied_tol, 0.5, (diff > 0).astype(float)) * comp
        wc = wi * conc
        wd = wi * comp
        num += wc.sum()
        den += wd.sum()
        n_pairs += int(comp.sum())
        n_k[i] += wc.sum(axis=1)
        d_k[i] += wd.sum(axis=1)
        n_k += wc.sum(axis=0)
        d_k += wd.sum(axis=0)
    if den <= 0:
        return float("nan"), float("nan"), 0
    c = num / den
    se = float(np.sqrt(np.sum((n_k - c * d_k) ** 2)) / den)
    return float(c), se, n_pairs


# --------------------------------------------------------------------------- RMST
def rmst_arrays(curve: KMCurve, tau: float) -> tuple[float, float]:
    """Area under the KM curve on [0, tau] and its Greenwood-type variance (as survRM2)."""
    t = curve.time
    keep = t <= tau
    tk = t[keep]
    sk = curve.survival[keep]
    grid = np.concatenate([[0.0], tk, [tau]])
    surv_left = np.concatenate([[1.0], sk])
    widths = np.diff(grid)
    areas = surv_left * widths
    mu = float(areas.sum())
    # A_j = integral of S from t_j to tau, for each event time t_j <= tau
    tail = np.cumsum(areas[::-1])[::-1][1:]  # area from t_j to tau
    d = curve.n_event[keep]
    nr = curve.n_risk[keep]
    with np.errstate(divide="ignore", invalid="ignore"):
        term = np.where((d > 0) & (nr > d), d / (nr * (nr - d)), 0.0)
    var = float(np.sum(tail**2 * term))
    return mu, var
