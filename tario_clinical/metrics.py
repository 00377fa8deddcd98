"""Discrimination, calibration and decision metrics for binary and multiclass decoders.

Everything here takes plain arrays (``y_true`` 0/1, ``y_score`` real) and returns floats, small
frozen dataclasses or tidy DataFrames. AUROC confidence intervals use the fast O(n log n) DeLong
variance (Sun & Xu, 2014) or a seeded stratified bootstrap; correlated AUROCs are compared with the
paired DeLong test (DeLong, DeLong & Clarke-Pearson, 1988).

Examples
--------
>>> import numpy as np
>>> from tario_clinical.metrics import auroc_ci
>>> y = np.array([0, 0, 1, 1, 0, 1])
>>> s = np.array([0.1, 0.4, 0.35, 0.8, 0.2, 0.9])
>>> r = auroc_ci(y, s)
>>> round(r.auroc, 4)
0.8889
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from .errors import AnalysisError, SchemaError

__all__ = [
    "AUROCResult",
    "DeLongTestResult",
    "CalibrationResult",
    "auroc",
    "auroc_ci",
    "delong_test",
    "auprc",
    "brier",
    "calibration",
    "net_benefit",
    "permutation_pvalue",
    "multiclass_auroc",
    "triage_threshold",
    "triage_summary",
    "wilson_ci",
]

logger = logging.getLogger(__name__)

_CI_METHODS = ("delong", "bootstrap")


# ----------------------------------------------------------------------------------- checks
def _check_binary(
    y_true: Any, y_score: Any, *, name: str = "y_score", need_both: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true)
    s = np.asarray(y_score, dtype=float)
    if y.ndim != 1 or s.ndim != 1:
        raise SchemaError(
            f"y_true and {name} must be 1-D; got shapes {y.shape} and {s.shape}. "
            "Pass one label and one score per patient."
        )
    if y.shape[0] != s.shape[0]:
        raise SchemaError(
            f"y_true has {y.shape[0]} values but {name} has {s.shape[0]}; they must match."
        )
    if y.dtype == bool:
        y = y.astype(int)
    try:
        yf = y.astype(float)
    except (TypeError, ValueError) as err:
        raise SchemaError(f"y_true must be 0/1; got values such as {y[:3].tolist()}") from err
    bad = ~np.isin(yf, (0.0, 1.0))
    if bad.any():
        raise SchemaError(
            f"y_true must hold only 0 and 1; got {np.unique(y[bad])[:5].tolist()} "
            f"at positions {np.flatnonzero(bad)[:5].tolist()}."
        )
    if not np.all(np.isfinite(s)):
        where = np.flatnonzero(~np.isfinite(s))[:5].tolist()
        raise SchemaError(f"{name} holds NaN or infinite values at positions {where}.")
    yi = yf.astype(np.int8)
    if need_both:
        n1 = int(yi.sum())
        if n1 == 0 or n1 == yi.size:
            raise AnalysisError(
                f"AUROC needs both classes; y_true has {n1} positives and {yi.size - n1} negatives."
            )
    return yi, s


def _check_level(level: float) -> float:
    if not (0.0 < float(level) < 1.0):
        raise SchemaError(f"level must be strictly between 0 and 1; got {level!r}.")
    return float(level)


# ------------------------------------------------------------------------------- results
@dataclass(frozen=True)
class AUROCResult:
    """AUROC with a confidence interval.

    Attributes
    ----------
    auroc, low, high : float
        Point estimate and interval bounds (clipped to [0, 1]).
    level : float
        Confidence level.
    method : str
        ``"delong"`` or ``"bootstrap"``.
    se : float
        Standard error (DeLong) or bootstrap standard deviation.
    n, n_positive : int
        Number of patients and of positives.
    """

    auroc: float
    low: float
    high: float
    level: float
    method: str
    se: float
    n: int
    n_positive: int

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict of every field."""
        return {
            k: (float(v) if isinstance(v, float | np.floating) else v)
            for k, v in asdict(self).items()
        }

    def _repr_html_(self) -> str:
        return (
            f"<b>AUROC</b> {self.auroc:.3f} ({self.level:.0%} CI {self.low:.3f}–{self.high:.3f}, "
            f"{self.method}; n={self.n}, positives={self.n_positive})"
        )


@dataclass(frozen=True)
class DeLongTestResult:
    """Paired DeLong comparison of two correlated AUROCs (``a`` minus ``b``)."""

    auroc_a: float
    auroc_b: float
    estimate: float
    low: float
    high: float
    statistic: float
    p_value: float
    level: float

    def to_dict(self) -> dict[str, float]:
        """Return a JSON-safe dict of every field."""
        return {k: float(v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class CalibrationResult:
    """Logistic recalibration: ``logit P(y=1) = intercept + slope * logit(p)``.

    ``intercept`` is calibration-in-the-large (fitted with the slope fixed at 1, i.e. with
    ``logit(p)`` as offset); ``slope`` comes from the two-parameter fit. Perfect calibration is
    intercept 0 and slope 1.
    """

    intercept: float
    slope: float
    n: int

    def to_dict(self) -> dict[str, float]:
        """Return a JSON-safe dict of every field."""
        return {"intercept": float(self.intercept), "slope": float(self.slope), "n": int(self.n)}


# ---------------------------------------------------------------------------------- AUROC
def _midrank(x: np.ndarray) -> np.ndarray:
    """Mid-ranks (1-based, ties averaged) in O(n log n)."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    n = xs.size
    # boundaries of tie blocks
    diff = np.empty(n, dtype=bool)
    diff[0] = True
    np.not_equal(xs[1:], xs[:-1], out=diff[1:])
    starts = np.flatnonzero(diff)
    ends = np.append(starts[1:], n)
    mid = (starts + ends + 1) / 2.0  # average of 1-based ranks start+1 .. end
    ranks_sorted = np.repeat(mid, ends - starts)
    out = np.empty(n, dtype=float)
    out[order] = ranks_sorted
    return out


def _delong_components(
    y: np.ndarray, scores: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fast DeLong structural components.

    Parameters
    ----------
    y : (n,) int array of 0/1
    scores : (k, n) array, one row per score

    Returns
    -------
    aucs : (k,) ; v10 : (k, m) over positives ; v01 : (k, n0) over negatives
    """
    pos = y == 1
    m = int(pos.sum())
    n0 = y.size - m
    k = scores.shape[0]
    aucs = np.empty(k)
    v10 = np.empty((k, m))
    v01 = np.empty((k, n0))
    for r in range(k):
        s = scores[r]
        t_all = _midrank(s)
        t_pos = _midrank(s[pos])
        t_neg = _midrank(s[~pos])
        v10[r] = (t_all[pos] - t_pos) / n0
        v01[r] = 1.0 - (t_all[~pos] - t_neg) / m
        aucs[r] = v10[r].mean()
    return aucs, v10, v01


def _delong_cov(v10: np.ndarray, v01: np.ndarray) -> np.ndarray:
    m = v10.shape[1]
    n0 = v01.shape[1]
    s10 = np.atleast_2d(np.cov(v10)) if m > 1 else np.zeros((v10.shape[0],) * 2)
    s01 = np.atleast_2d(np.cov(v01)) if n0 > 1 else np.zeros((v01.shape[0],) * 2)
    return s10 / m + s01 / n0


def auroc(y_true: Any, y_score: Any) -> float:
    """Area under the ROC curve (ties count one half), computed from mid-ranks.

    Parameters
    ----------
    y_true : array-like of 0/1
    y_score : array-like of float
        Higher means more likely positive.

    Returns
    -------
    float

    Raises
    ------
    AnalysisError
        If only one class is present.
    """
    y, s = _check_binary(y_true, y_score)
    r = _midrank(s)
    n1 = int(y.sum())
    n0 = y.size - n1
    return float((r[y == 1].sum() - n1 * (n1 + 1) / 2.0) / (n1 * n0))


def _bootstrap_aurocs(
    y: np.ndarray, s: np.ndarray, n_bootstrap: int, seed: int | np.random.SeedSequence
) -> np.ndarray:
    """Stratified bootstrap AUROCs (positives and negatives resampled separately)."""
    rng = np.random.default_rng(seed)
    pos = np.flatnonzero(y == 1)
    neg = np.flatnonzero(y == 0)
    n1, n0 = pos.size, neg.size
    out = np.empty(n_bootstrap)
    chunk = max(1, int(2_000_000 // max(y.size, 1)))
    for start in range(0, n_bootstrap, chunk):
        b = min(chunk, n_bootstrap - start)
        ip = pos[rng.integers(0, n1, size=(b, n1))]
        ineg = neg[rng.integers(0, n0, size=(b, n0))]
        sp = s[ip]
        sn = np.sort(s[ineg], axis=1)
        # for each positive: #negatives below + 0.5 * #ties, via searchsorted per row
        for j in range(b):
            lo = np.searchsorted(sn[j], sp[j], side="left")
            hi = np.searchsorted(sn[j], sp[j], side="right")
            out[start + j] = (lo.sum() + 0.5 * (hi - lo).sum()) / (n1 * n0)
    return out


def auroc_ci(
    y_true: Any,
    y_score: Any,
    *,
    level: float = 0.95,
    method: Literal["delong", "bootstrap"] = "delong",
    n_bootstrap: int = 2000,
    seed: int = 0,
) -> AUROCResult:
    """AUROC with a confidence interval.

    Parameters
    ----------
    y_true : array-like of 0/1
    y_score : array-like of float
    level : float, default 0.95
        Confidence level.
    method : {"delong", "bootstrap"}
        ``"delong"``: Wald interval from the DeLong variance (fast O(n log n) algorithm),
        clipped to [0, 1]. ``"bootstrap"``: percentile interval of a stratified bootstrap
        (positives and negatives resampled separately) seeded by ``seed``.
    n_bootstrap : int, default 2000
    seed : int, default 0
        Seed of the bootstrap (ignored by DeLong).

    Returns
    -------
    AUROCResult

    Notes
    -----
    With perfect separation the DeLong variance is 0 and the interval collapses to the point
    estimate; a warning is logged. Use ``method="bootstrap"`` or report the sample size.

    Examples
    --------
    >>> r = auroc_ci([0, 1, 0, 1, 1, 0], [0.2, 0.7, 0.4, 0.6, 0.3, 0.1])
    >>> (round(r.auroc, 3), r.method)
    (0.889, 'delong')
    """
    if method not in _CI_METHODS:
        raise SchemaError(f"method must be one of {list(_CI_METHODS)}; got {method!r}.")
    level = _check_level(level)
    y, s = _check_binary(y_true, y_score)
    n1 = int(y.sum())
    z = stats.norm.ppf(0.5 + level / 2.0)
    aucs, v10, v01 = _delong_components(y, s[None, :])
    a = float(aucs[0])
    if method == "delong":
        var = float(_delong_cov(v10, v01)[0, 0])
        se = float(np.sqrt(max(var, 0.0)))
        if se == 0.0:
            logger.warning(
                "AUROC %.3f with zero DeLong variance (perfect separation or n too small); "
                "the interval collapses to the estimate.",
                a,
            )
        low, high = max(0.0, a - z * se), min(1.0, a + z * se)
    else:
        if int(n_bootstrap) < 100:
            raise SchemaError(f"n_bootstrap must be >= 100; got {n_bootstrap!r}.")
        boots = _bootstrap_aurocs(y, s, int(n_bootstrap), seed)
        alpha = 1.0 - level
        low, high = (float(v) for v in np.quantile(boots, [alpha / 2.0, 1.0 - alpha / 2.0]))
        se = float(boots.std(ddof=1))
    return AUROCResult(
        auroc=a,
        low=float(low),
        high=float(high),
        level=level,
        method=method,
        se=se,
        n=int(y.size),
        n_positive=n1,
    )


def delong_test(
    y_true: Any, score_a: Any, score_b: Any, *, level: float = 0.95
) -> DeLongTestResult:
    """Paired DeLong test of two correlated AUROCs on the same patients.

    Parameters
    ----------
    y_true : array-like of 0/1
    score_a, score_b : array-like of float
        Two scores for the same patients, in the same order.
    level : float, default 0.95
        Level of the interval for the difference ``auroc_a - auroc_b``.

    Returns
    -------
    DeLongTestResult
        ``statistic`` is the z statistic, ``p_value`` two-sided. If the two scores give
        identical structural components (variance 0) the statistic is 0 and p = 1.
    """
    level = _check_level(level)
    y, a = _check_binary(y_true, score_a, name="score_a")
    _, b = _check_binary(y_true, score_b, name="score_b")
    aucs, v10, v01 = _delong_components(y, np.vstack([a, b]))
    cov = _delong_cov(v10, v01)
    diff = float(aucs[0] - aucs[1])
    var = float(cov[0, 0] + cov[1, 1] - 2.0 * cov[0, 1])
    se = float(np.sqrt(max(var, 0.0)))
    z = stats.norm.ppf(0.5 + level / 2.0)
    if se <= 1e-15:
        stat, p = 0.0 if diff == 0.0 else float(np.sign(diff) * np.inf), 1.0 if diff == 0.0 else 0.0
    else:
        stat = diff / se
        p = float(2.0 * stats.norm.sf(abs(stat)))
    return DeLongTestResult(
        auroc_a=float(aucs[0]),
        auroc_b=float(aucs[1]),
        estimate=diff,
        low=float(diff - z * se),
        high=float(diff + z * se),
        statistic=float(stat),
        p_value=p,
        level=level,
    )


# ------------------------------------------------------------------ other binary metrics
def auprc(y_true: Any, y_score: Any) -> float:
    """Area under the precision–recall curve as average precision (step-wise, no interpolation).

    Parameters
    ----------
    y_true : array-like of 0/1
    y_score : array-like of float
        Higher means more likely positive.

    Returns
    -------
    float

    Raises
    ------
    AnalysisError
        If only one class is present.
    """
    y, s = _check_binary(y_true, y_score)
    order = np.argsort(-s, kind="mergesort")
    ys, ss = y[order], s[order]
    # distinct thresholds: last index of each block of equal scores
    last = np.r_[np.flatnonzero(np.diff(ss) != 0), ys.size - 1]
    tp = np.cumsum(ys)[last]
    fp = (last + 1) - tp
    precision = tp / (tp + fp)
    recall = tp / tp[-1]
    recall_prev = np.r_[0.0, recall[:-1]]
    return float(np.sum((recall - recall_prev) * precision))


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
    y, p = _check_binary(y_true, y_prob, name="y_prob", need_both=False)
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
    y, p = _check_binary(y_true, y_prob, name="y_prob")
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
    y, p = _check_binary(y_true, y_prob, name="y_prob", need_both=False)
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


def permutation_pvalue(
    y_true: Any, y_score: Any, *, n_permutations: int = 1000, seed: int = 0
) -> float:
    """One-sided label-permutation p-value for ``AUROC > 0.5``.

    ``p = (1 + #{perm AUROC >= observed}) / (1 + n_permutations)``; labels are permuted with a
    generator seeded by ``seed``. Because AUROC depends on the scores only through their ranks,
    the ranks are computed once and each permutation costs O(n).

    Note: this permutes labels against *fixed* scores, so it is valid only for scores of a model
    fixed before these labels were seen (e.g. a locked biomarker on an external cohort). It is
    **not** valid for out-of-fold scores of a cross-validated decoder: those depend on the other
    patients' labels, and this test then rejects 11-13 % of null targets at 0.05 (measured). For
    cross-validated decoders use ``tario_clinical.decode(..., p_method="permutation")``, which
    re-runs the whole nested CV on every permutation.

    Parameters
    ----------
    y_true : array-like of 0/1
    y_score : array-like of float
        Higher means more likely positive.
    n_permutations : int, default 1000
        Number of label permutations (>= 1).
    seed : int, default 0
        Seed of the permutation generator.

    Returns
    -------
    float
        In ``[1 / (1 + n_permutations), 1]``.

    Raises
    ------
    AnalysisError
        If only one class is present.
    """
    y, s = _check_binary(y_true, y_score)
    if int(n_permutations) < 1:
        raise SchemaError(f"n_permutations must be >= 1; got {n_permutations!r}.")
    r = _midrank(s)
    n1 = int(y.sum())
    n0 = y.size - n1
    obs = (r[y == 1].sum() - n1 * (n1 + 1) / 2.0) / (n1 * n0)
    rng = np.random.default_rng(seed)
    count = 0
    chunk = max(1, int(1_000_000 // y.size))
    done = 0
    while done < n_permutations:
        b = min(chunk, n_permutations - done)
        keys = rng.random((b, y.size))
        idx = np.argpartition(keys, n1 - 1, axis=1)[:, :n1]
        sums = r[idx].sum(axis=1)
        perm = (sums - n1 * (n1 + 1) / 2.0) / (n1 * n0)
        count += int(np.sum(perm >= obs - 1e-12))
        done += b
    return float((1 + count) / (1 + n_permutations))


# ---------------------------------------------------------------------------- multiclass
def multiclass_auroc(
    y_true: Any,
    y_score: Any,
    *,
    classes: Any = None,
    level: float = 0.95,
    method: Literal["delong", "bootstrap"] = "delong",
    seed: int = 0,
) -> pd.DataFrame:
    """One-vs-rest AUROC per class and the macro average.

    Parameters
    ----------
    y_true : array-like of class labels, length n
    y_score : array-like (n, k)
        Score (e.g. probability) per class; columns follow ``classes``.
    classes : sequence, optional
        Column order; default the sorted unique labels.
    level, method, seed
        As in :func:`auroc_ci`.

    Returns
    -------
    DataFrame
        Columns ``class, n, n_positive, auroc, low, high``; last row ``class="macro"`` holds
        the unweighted mean of the one-vs-rest AUROCs (its interval by a seeded stratified
        bootstrap over patients, resampling within each class).
    """
    labels = np.asarray(y_true)
    s = np.asarray(y_score, dtype=float)
    cls = np.unique(labels) if classes is None else np.asarray(list(classes))
    if s.ndim != 2 or s.shape != (labels.size, cls.size):
        raise SchemaError(
            f"y_score must have shape (n, n_classes) = ({labels.size}, {cls.size}); got {s.shape}."
        )
    unknown = ~np.isin(labels, cls)
    if unknown.any():
        raise SchemaError(
            f"y_true holds labels not in classes: {np.unique(labels[unknown])[:5].tolist()}"
        )
    rows = []
    for j, c in enumerate(cls):
        yb = (labels == c).astype(int)
        r = auroc_ci(yb, s[:, j], level=level, method=method, seed=seed)
        rows.append(
            {
                "class": str(c),
                "n": r.n,
                "n_positive": r.n_positive,
                "auroc": r.auroc,
                "low": r.low,
                "high": r.high,
            }
        )
    macro = float(np.mean([row["auroc"] for row in rows]))
    rng = np.random.default_rng(seed)
    boots = []
    lookup = {v: j for j, v in enumerate(cls.tolist())}
    codes = np.array([lookup[v] for v in labels.tolist()])
    groups = [np.flatnonzero(codes == j) for j in range(cls.size)]
    for _ in range(500):
        idx = np.concatenate([g[rng.integers(0, g.size, g.size)] for g in groups])
        vals = []
        for j, c in enumerate(cls):
            yb = (labels[idx] == c).astype(int)
            vals.append(auroc(yb, s[idx, j]))
        boots.append(np.mean(vals))
    alpha = 1 - _check_level(level)
    lo, hi = np.quantile(boots, [alpha / 2, 1 - alpha / 2])
    rows.append(
        {
            "class": "macro",
            "n": int(labels.size),
            "n_positive": int(labels.size),
            "auroc": macro,
            "low": float(lo),
            "high": float(hi),
        }
    )
    return pd.DataFrame(rows)


# -------------------------------------------------------------------------------- triage
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
    z = stats.norm.ppf(0.5 + _check_level(level) / 2.0)
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
    y, s = _check_binary(y_true, y_score)
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


def triage_summary(
    y_true: Any, y_score: Any, threshold: Any, *, level: float = 0.95
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
    y, s = _check_binary(y_true, y_score, need_both=False)
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
