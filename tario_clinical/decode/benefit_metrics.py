"""Metrics of a treatment-benefit score in a two-arm trial (the benefit decoder's statistics).

:func:`c_for_benefit` (van Klaveren et al., J Clin Epidemiol 2018), the arm x score interaction
model (logistic or Cox, :func:`interaction_model`), the treatment effect within predicted-benefit
groups (:func:`group_effect`, :func:`high_groups`) and :func:`benefit_metrics`, the five numbers
:func:`tario_clinical.decode.benefit.decode_benefit` reports for each repeat of its cross-fitting.
"""

from __future__ import annotations

import numpy as np

from ..errors import AnalysisError
from ..survival import kernels
from .endpoint_inference import MetricSpec
from .inference import weighted_auroc

__all__ = [
    "c_for_benefit",
    "benefit_metrics",
    "interaction_model",
    "group_effect",
    "high_groups",
    "metric_specs",
]


def c_for_benefit(
    score: np.ndarray, arm: np.ndarray, y: np.ndarray, event: np.ndarray | None = None
) -> float:
    """C-for-benefit of a benefit score (higher = more benefit from the experimental arm).

    Parameters
    ----------
    score : (n,) predicted benefit
    arm : (n,) 1 experimental, 0 (or -1) control
    y : (n,) binary response (1 = good) or, with ``event``, times
    event : (n,) event indicator, optional (time to event: the later event is better)

    Returns
    -------
    float
        NaN when fewer than two pairs with different observed benefit exist.
    """
    exp = np.flatnonzero(arm > 0)
    ctl = np.flatnonzero(arm <= 0)
    if exp.size == 0 or ctl.size == 0:
        return float("nan")
    exp = exp[np.argsort(score[exp], kind="mergesort")]
    ctl = ctl[np.argsort(score[ctl], kind="mergesort")]
    small, large = (exp, ctl) if exp.size <= ctl.size else (ctl, exp)
    m = small.size
    pick = np.round((np.arange(m) + 0.5) * large.size / m - 0.5).astype(int)
    large = large[np.clip(pick, 0, large.size - 1)]
    pe, pc = (small, large) if exp.size <= ctl.size else (large, small)
    pred = 0.5 * (score[pe] + score[pc])
    if event is None:
        obs = y[pe].astype(float) - y[pc].astype(float)
        keep = np.ones(m, dtype=bool)
    else:
        te, tc = y[pe], y[pc]
        ee, ec = event[pe].astype(bool), event[pc].astype(bool)
        ctrl_first = ec & (tc < te)
        exp_first = ee & (te < tc)
        obs = np.where(ctrl_first, 1.0, np.where(exp_first, -1.0, 0.0))
        keep = ctrl_first | exp_first
    pred, obs = pred[keep], obs[keep]
    levels = np.unique(obs)
    num = den = 0.0
    for i, lo in enumerate(levels):
        for hi in levels[i + 1 :]:
            sel = (obs == lo) | (obs == hi)
            n_lo, n_hi = int(np.sum(obs == lo)), int(np.sum(obs == hi))
            num += weighted_auroc(obs[sel] == hi, pred[sel]) * n_lo * n_hi
            den += n_lo * n_hi
    return float(num / den) if den > 0 else float("nan")


def _logistic(Xd: np.ndarray, y: np.ndarray, max_iter: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """Unpenalised logistic regression (Newton); NaN on separation or non-convergence."""
    beta = np.zeros(Xd.shape[1])
    nan = (np.full(Xd.shape[1], np.nan), np.full((Xd.shape[1],) * 2, np.nan))
    for _ in range(max_iter):
        p = 1.0 / (1.0 + np.exp(-(Xd @ beta)))
        H = Xd.T @ (Xd * (p * (1 - p))[:, None])
        try:
            step = np.linalg.solve(H, Xd.T @ (y - p))
        except np.linalg.LinAlgError:
            return nan
        beta = beta + step
        if not np.all(np.isfinite(beta)) or np.abs(beta).max() > 30:
            return nan
        if np.abs(step).max() < 1e-10:
            try:
                return beta, np.linalg.inv(H)
            except np.linalg.LinAlgError:
                return nan
    return nan


def _cox(x: np.ndarray, t: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Efron Cox fit (the survival kernel); NaN where it cannot be fitted."""
    o = np.argsort(t, kind="mergesort")
    try:
        fit = kernels.efron_fit(
            x[o],
            t[o],
            e[o].astype(bool),
            np.zeros(t.size, int),
            names=[f"x{j}" for j in range(x.shape[1])],
        )
    except (AnalysisError, np.linalg.LinAlgError):
        return np.full(x.shape[1], np.nan), np.full((x.shape[1],) * 2, np.nan)
    return fit.beta, fit.cov


def interaction_model(
    score: np.ndarray, a: np.ndarray, y: np.ndarray, e: np.ndarray, survival: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Coefficients (arm, score, arm x score) and covariance of the interaction model."""
    if survival:
        return _cox(np.column_stack([a, score, a * score]), y, e)
    beta, cov = _logistic(np.column_stack([np.ones(a.size), a, score, a * score]), y)
    return beta[1:], cov[1:, 1:]


def group_effect(
    a: np.ndarray, y: np.ndarray, e: np.ndarray, survival: bool
) -> tuple[float, float]:
    """Treatment effect (log HR, or response-rate difference) in a group and its SE."""
    if a.min() == a.max():
        return float("nan"), float("nan")
    if survival:
        if e.sum() == 0:
            return float("nan"), float("nan")
        b, c = _cox(a[:, None], y, e)
        return float(b[0]), float(np.sqrt(c[0, 0])) if np.isfinite(c[0, 0]) else float("nan")
    p1, p0 = y[a == 1].mean(), y[a == 0].mean()
    se = np.sqrt(p1 * (1 - p1) / (a == 1).sum() + p0 * (1 - p0) / (a == 0).sum())
    return float(p1 - p0), float(se)


def benefit_metrics(
    score: np.ndarray,
    high: np.ndarray,
    a: np.ndarray,
    y: np.ndarray,
    e: np.ndarray,
    survival: bool,
) -> np.ndarray:
    """``c_for_benefit, interaction, effect_high, effect_low, effect_difference``."""
    ok = np.isfinite(score)
    score, high, a, y, e = score[ok], high[ok], a[ok], y[ok], e[ok]
    out = np.full(5, np.nan)
    if score.size < 10:
        return out
    out[0] = c_for_benefit(score, a, y, e if survival else None)
    beta, _ = interaction_model(score, a, y, e, survival)
    out[1] = beta[2]
    out[2] = group_effect(a[high], y[high], e[high], survival)[0]
    out[3] = group_effect(a[~high], y[~high], e[~high], survival)[0]
    out[4] = out[2] - out[3]
    return out


def metric_specs(survival: bool) -> tuple[MetricSpec, ...]:
    """The five metrics of :func:`benefit_metrics`; the three benefit statistics are tested
    (one-sided, in the direction of benefit) and take the randomisation SE."""
    if survival:
        inter, high, low, diff, way = (
            "interaction_log_hr_per_sd",
            "log_hr_high_benefit",
            "log_hr_low_benefit",
            "log_hr_difference_high_vs_low",
            "less",
        )
    else:
        inter, high, low, diff, way = (
            "interaction_log_or_per_sd",
            "response_difference_high_benefit",
            "response_difference_low_benefit",
            "response_difference_high_vs_low",
            "greater",
        )
    return (
        MetricSpec("c_for_benefit", "logit", 0.5, randomisation_se=True),
        MetricSpec(inter, "identity", 0.0, way, randomisation_se=True),
        MetricSpec(high, "identity", None),
        MetricSpec(low, "identity", None),
        MetricSpec(diff, "identity", 0.0, way, randomisation_se=True),
    )


def high_groups(score: np.ndarray, fold: np.ndarray, cutoff: float | str) -> np.ndarray:
    """High-benefit indicator: fixed cut-off, or each fold's median of the other folds' scores."""
    if not isinstance(cutoff, str):
        return score > float(cutoff)
    high = np.zeros(score.size, dtype=bool)
    for k in np.unique(fold):
        te = fold == k
        ref = score[~te & np.isfinite(score)]
        cut = np.median(ref) if ref.size else np.nan
        high[te] = score[te] > cut
    return high
