"""AUROC: point estimate from mid-ranks, DeLong and bootstrap intervals, the paired DeLong test,
AUPRC, the permutation p-value of an AUROC, and one-vs-rest AUROCs of a multiclass decoder.

The DeLong variance uses the fast O(n log n) structural components (Sun & Xu, 2014); correlated
AUROCs are compared with the paired test of DeLong, DeLong & Clarke-Pearson (1988).
"""

from __future__ import annotations

import logging
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from .._checks import check_choice, check_level
from ..errors import SchemaError
from .inputs import check_binary
from .results import AUROCResult, DeLongTestResult

__all__ = [
    "auroc",
    "auroc_ci",
    "delong_test",
    "auprc",
    "permutation_pvalue",
    "multiclass_auroc",
]

logger = logging.getLogger("tario_clinical.metrics")

_CI_METHODS = ("delong", "bootstrap")


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
    y, s = check_binary(y_true, y_score)
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
    check_choice("method", method, _CI_METHODS)
    level = check_level(level)
    y, s = check_binary(y_true, y_score)
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
    level = check_level(level)
    y, a = check_binary(y_true, score_a, name="score_a")
    _, b = check_binary(y_true, score_b, name="score_b")
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
    y, s = check_binary(y_true, y_score)
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
    y, s = check_binary(y_true, y_score)
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
    alpha = 1 - check_level(level)
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
