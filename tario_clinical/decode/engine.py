"""Fast regularisation-path engine for standardised L2-logistic decoders with nested CV.

Inside one (outer) training fold the features are standardised with the training rows' mean and
standard deviation only. When features are wider than rows (``D > n``) the fold is factorised once
through the Gram matrix ``K = Z Z^T = U S U^T`` (``n x n``); otherwise through the covariance
``Z^T Z = V S V^T``. Either way the training rows are represented by ``F`` with ``F^T F = diag(S)``
and, because the L2 solution lies in the span of the training rows, every L2-logistic problem on
any subset of these rows (inner folds), any target and any ``C`` is *exactly* a logistic ridge
problem on ``F`` (``||w|| = ||v||``). PCA is the truncation of ``F`` to its leading columns (PCA is
thus fitted on the training rows only). Test rows map through ``G = Z_test V``.

All problems of a fold (inner folds x targets x C path) are solved together by a batched truncated
Newton method (preconditioned conjugate gradients, diagonal preconditioner ``1 + s_k * mean(w)``
that is exact when the logistic weights are constant), so the expensive work is a handful of
matrix products per fold that BLAS runs near peak.

The objective of column ``j`` is the scikit-learn one::

    C * sum_i a_ij * logloss(y_ij, f_ij) + 0.5 * ||v_j||^2,   f = F v + b

with ``a_ij`` = sample (class) weight times membership of row ``i`` in the problem's training set.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from scipy import linalg
from threadpoolctl import threadpool_limits

from ..errors import AnalysisError

__all__ = [
    "FoldBasis",
    "fold_basis",
    "solve_path",
    "class_weights",
    "nested_folds",
    "fold_threads",
    "run_folds",
    "set_fold_threads",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FoldBasis:
    """Factorised training fold.

    Attributes
    ----------
    F : (n_train, r) training-row coordinates, ``F.T @ F = diag(s)``
    s : (r,) eigenvalues, descending
    G : (n_test, r) test-row coordinates (may have 0 rows)
    mean, scale : (D,) standardisation fitted on training rows (scale 1 for constant features)
    feature_map : (D, r) or None; maps ``v`` to feature weights ``w = feature_map @ v`` (on the
        standardised scale). Computed on request only (it is D x r).
    """

    F: np.ndarray
    s: np.ndarray
    G: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    feature_map: np.ndarray | None


def _column_moments(Xt: np.ndarray, *, block: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Column mean and (population) variance, accumulated in float64 over row blocks.

    Equivalent to ``Xt.mean(0, dtype=float64)`` and ``Xt.var(0, dtype=float64)`` (two-pass,
    centred) without allocating float64 copies of the whole matrix.
    """
    n = Xt.shape[0]
    mean = np.zeros(Xt.shape[1])
    for start in range(0, n, block):
        mean += Xt[start : start + block].sum(axis=0, dtype=np.float64)
    mean /= max(n, 1)
    m2 = np.zeros(Xt.shape[1])
    for start in range(0, n, block):
        d = Xt[start : start + block].astype(np.float64) - mean
        m2 += np.einsum("ij,ij->j", d, d)
    return mean, m2 / max(n, 1)


def _standardise(X: np.ndarray, train: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mean, var = _column_moments(X[train])
    return mean, _safe_scale(mean, var), var


def _safe_scale(mean: np.ndarray, var: np.ndarray) -> np.ndarray:
    scale = np.sqrt(var)
    scale[scale < 10 * np.finfo(np.float64).eps * np.maximum(1.0, np.abs(mean))] = 1.0
    return scale


def fold_basis(
    X: np.ndarray,
    train: np.ndarray,
    test: np.ndarray | None = None,
    *,
    n_components: int | None = None,
    with_feature_map: bool = False,
    rtol: float = 1e-10,
) -> FoldBasis:
    """Standardise on ``train`` rows and factorise (see module docstring).

    Parameters
    ----------
    X : (n, D) array (float32 or float64)
    train, test : row indices
    n_components : int, optional
        Keep the leading ``n_components`` principal components (PCA fitted on ``train``).
    with_feature_map : bool
        Also return the D x r map back to (standardised) feature weights.
    rtol : float
        Eigenvalues below ``rtol * max`` are dropped (null space of the centred rows).
    """
    test = np.empty(0, dtype=np.int64) if test is None else test
    work = np.float32 if X.dtype == np.float32 else np.float64
    Ztr = np.asarray(X[train], dtype=work)  # a copy: standardised in place below
    mean, var = _column_moments(Ztr)
    scale = _safe_scale(mean, var)
    inv = (1.0 / scale).astype(work)
    Ztr -= mean.astype(work)
    Ztr *= inv
    Zte = (X[test] - mean.astype(work)) * inv
    n, D = Ztr.shape
    fmap = None
    if D > n:
        # float32 input: the Gram is float32-accurate already, so factorise it in float32 too
        # (about 1.6x faster); float64 input stays float64 throughout
        K = Ztr @ Ztr.T
        K = (K + K.T) / 2.0
        s, U = linalg.eigh(K, driver="evd", check_finite=False)
        s, U = s.astype(np.float64), U.astype(np.float64)
        s, U = s[::-1], U[:, ::-1]
        keep = s > rtol * max(s[0], 1e-300)
        if n_components is not None:
            keep &= np.arange(s.size) < n_components
        s, U = s[keep], U[:, keep]
        sq = np.sqrt(s)
        F = U * sq
        # G = Zte Ztr^T U S^{-1/2}
        G = ((Zte @ Ztr.T).astype(np.float64) @ U) / sq if Zte.shape[0] else np.empty((0, s.size))
        if with_feature_map:
            fmap = (Ztr.T.astype(np.float64) @ U) / sq
    else:
        Cv = (Ztr.T @ Ztr).astype(np.float64)
        Cv = (Cv + Cv.T) / 2.0
        s, V = linalg.eigh(Cv, driver="evd", check_finite=False)
        s, V = s[::-1], V[:, ::-1]
        keep = s > rtol * max(s[0], 1e-300)
        if n_components is not None:
            keep &= np.arange(s.size) < n_components
        s, V = s[keep], V[:, keep]
        F = Ztr.astype(np.float64) @ V
        G = Zte.astype(np.float64) @ V
        if with_feature_map:
            fmap = V
    return FoldBasis(F=F, s=s, G=G, mean=mean, scale=scale, feature_map=fmap)


def class_weights(y: np.ndarray, member: np.ndarray, mode: str | None) -> np.ndarray:
    """Per-row weights: ``member`` (0/1) times balanced class weights if ``mode == "balanced"``.

    ``y`` may hold NaN (missing label): those rows get weight 0.
    """
    ok = member & ~np.isnan(y)
    a = ok.astype(np.float64)
    if mode == "balanced":
        n = ok.sum()
        n1 = np.sum(ok & (y == 1))
        n0 = n - n1
        if n1 > 0 and n0 > 0:
            a = np.where(ok & (y == 1), n / (2.0 * n1), np.where(ok, n / (2.0 * n0), 0.0))
    return a


def _loss(f: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, f) - y * f


def solve_path(
    F: np.ndarray,
    Y: np.ndarray,
    A: np.ndarray,
    C: np.ndarray,
    s: np.ndarray,
    *,
    tol: float = 1e-6,
    max_newton: int = 50,
    max_cg: int = 30,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Solve many L2-logistic problems on the same rows at once.

    Parameters
    ----------
    F : (n, r) coordinates with ``F.T F = diag(s)`` (only used through products)
    Y : (n, J) labels in {0, 1} (any value where ``A == 0``)
    A : (n, J) non-negative row weights (0 = row not in the problem)
    C : (J,) inverse regularisation strengths
    s : (r,) diagonal of ``F.T F`` (preconditioner)
    tol : float
        Stop a column when ``max|grad| / (C * sum(a)) <= tol`` (the scikit-learn gradient scale).

    Returns
    -------
    V : (r, J), b : (J,), Fv : (n, J) = F V + b, n_iter : int (Newton iterations of the slowest column)
    """
    n, r = F.shape
    J = Y.shape[1]
    C = np.asarray(C, dtype=np.float64)
    CA = A * C[None, :]
    Yz = np.where(A > 0, Y, 0.0)
    scale = np.maximum(CA.sum(axis=0), 1e-300)
    F32 = np.ascontiguousarray(F, dtype=np.float32)
    V = np.zeros((r, J))
    prior = np.clip((A * Yz).sum(0) / np.maximum(A.sum(0), 1e-300), 1e-6, 1 - 1e-6)
    b = np.log(prior / (1 - prior))
    f = np.broadcast_to(b, (n, J)).copy()
    obj = (CA * _loss(f, Yz)).sum(0)
    active = np.ones(J, dtype=bool)
    it = 0
    for it in range(1, max_newton + 1):  # noqa: B007
        cols = np.flatnonzero(active)
        if cols.size == 0:
            break
        fa = f[:, cols]
        p = 1.0 / (1.0 + np.exp(-fa))
        R = CA[:, cols] * (p - Yz[:, cols])
        gV = F.T @ R + V[:, cols]
        gb = R.sum(0)
        gmax = np.maximum(np.abs(gV).max(0), np.abs(gb)) / scale[cols]
        done = gmax <= tol
        if done.all():
            active[cols] = False
            break
        if done.any():
            active[cols[done]] = False
            keep = ~done
            cols, fa, p, gV, gb = cols[keep], fa[:, keep], p[:, keep], gV[:, keep], gb[keep]
        W = CA[:, cols] * p * (1.0 - p)
        # ---- preconditioned CG on H d = -g, batched over columns, in float32 (an inexact
        # Newton direction; gradient, line search and iterates stay float64)
        wbar = W.sum(0) / n
        Pinv = (1.0 / (1.0 + s[:, None] * wbar[None, :])).astype(np.float32)
        Pb = 1.0 / np.maximum(W.sum(0), 1e-12)
        W32 = W.astype(np.float32)
        m = cols.size
        dV = np.zeros((r, m), dtype=np.float32)
        db = np.zeros(m)
        Fd = np.zeros((n, m), dtype=np.float32)
        rV = (-gV).astype(np.float32)
        rb = -gb
        zV, zb = Pinv * rV, Pb * rb
        pV, pb = zV.copy(), zb.copy()
        rz = np.einsum("ij,ij->j", rV, zV, dtype=np.float64) + rb * zb
        gnorm = np.sqrt((gV * gV).sum(0) + gb * gb)
        eta = np.minimum(0.5, np.sqrt(gnorm / scale[cols])) * gnorm
        cg_on = np.ones(m, dtype=bool)
        for _ in range(max_cg):
            Fp = F32 @ pV
            Fp += pb.astype(np.float32)
            WFp = W32 * Fp
            HpV = F32.T @ WFp
            HpV += pV
            Hpb = WFp.sum(0, dtype=np.float64)
            pHp = np.einsum("ij,ij->j", pV, HpV, dtype=np.float64) + pb * Hpb
            alpha = np.where(cg_on, rz / np.maximum(pHp, 1e-300), 0.0)
            a32 = alpha.astype(np.float32)
            dV += a32 * pV
            db += alpha * pb
            Fd += a32 * Fp
            rV -= a32 * HpV
            rb -= alpha * Hpb
            rnorm = np.sqrt(np.einsum("ij,ij->j", rV, rV, dtype=np.float64) + rb * rb)
            cg_on &= rnorm > eta
            if not cg_on.any():
                break
            zV, zb = Pinv * rV, Pb * rb
            rz_new = np.einsum("ij,ij->j", rV, zV, dtype=np.float64) + rb * zb
            beta = np.where(cg_on, rz_new / np.maximum(rz, 1e-300), 0.0)
            rz = rz_new
            pV = zV + beta.astype(np.float32) * pV
            pb = zb + beta * pb
        dV = dV.astype(np.float64)
        Fd = Fd.astype(np.float64)
        # ---- backtracking line search (Armijo), free because F d is accumulated
        Va = V[:, cols]
        base = obj[cols] + 0.5 * (Va * Va).sum(0)
        slope = (gV * dV).sum(0) + gb * db
        t = np.ones(cols.size)
        pending = np.ones(cols.size, dtype=bool)
        new_obj = obj[cols].copy()
        for _ in range(30):
            ft = fa + t * Fd
            Vt = Va + t * dV
            lo = (CA[:, cols] * _loss(ft, Yz[:, cols])).sum(0)
            tot = lo + 0.5 * (Vt * Vt).sum(0)
            ok = tot <= base + 1e-4 * t * slope + 1e-12 * np.abs(base)
            newly = pending & ok
            new_obj[newly] = lo[newly]
            pending &= ~ok
            if not pending.any():
                break
            t = np.where(pending, t / 2.0, t)
        stalled = pending  # no decrease possible: converged to numerical precision
        t = np.where(stalled, 0.0, t)
        V[:, cols] = Va + t * dV
        b[cols] = b[cols] + t * db
        f[:, cols] = fa + t * Fd
        obj[cols] = np.where(stalled, obj[cols], new_obj)
        if stalled.any():
            active[cols[stalled]] = False
    else:
        if active.any():
            logger.warning(
                "%d of %d logistic problems did not reach tol=%g in %d Newton iterations",
                int(active.sum()),
                J,
                tol,
                max_newton,
            )
    if not np.all(np.isfinite(V)):
        raise AnalysisError("the logistic solver diverged (non-finite coefficients).")
    return V, b, f, it


def _column_aurocs(y: np.ndarray, S: np.ndarray) -> np.ndarray:
    """AUROC of every column of ``S`` against 0/1 ``y`` (NaN if one class)."""
    n1 = int(y.sum())
    n0 = y.size - n1
    if n1 == 0 or n0 == 0:
        return np.full(S.shape[1], np.nan)
    from scipy.stats import rankdata

    R = rankdata(S, axis=0)
    return (R[y == 1].sum(0) - n1 * (n1 + 1) / 2.0) / (n1 * n0)


@dataclass(frozen=True)
class FoldFit:
    """Result of nested CV inside one outer training fold.

    Attributes
    ----------
    best_C : (T,) chosen C per target (NaN when a target had one class in training)
    inner_scores : (T, L) mean inner-fold score per target and C (the ``scoring`` criterion:
        minus the log-loss by default, or AUROC)
    test_scores : (n_test, T) decision values (log-odds) of the refitted model on the test rows
    test_std : (n_test, T) the same linear predictor standardised by its mean and standard
        deviation over the training rows (label-free, training rows only), so that scores of
        folds with different C share one scale when pooled
    inner_oof : (n_train, T) inner out-of-fold scores at the chosen C, each minus its inner
        model's intercept (for cross-fitted cut-offs)
    coef : (r, T) and intercept (T,) of the refitted models in the fold basis
    n_iter : int
    """

    best_C: np.ndarray
    inner_scores: np.ndarray
    test_scores: np.ndarray
    test_std: np.ndarray
    inner_oof: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray
    n_iter: int


def nested_fold(
    basis: FoldBasis,
    Ytr: np.ndarray,
    inner: np.ndarray,
    Cs: np.ndarray,
    *,
    class_weight: str | None = None,
    scoring: str = "neg_log_loss",
    tol: float = 1e-6,
) -> FoldFit:
    """Inner CV over the C path for every target, then refit on all training rows.

    Parameters
    ----------
    basis : FoldBasis of the outer training rows
    Ytr : (n_train, T) labels 0/1/NaN of the training rows
    inner : (n_train,) inner fold of each training row (0..k-1)
    Cs : (L,) C path (ascending)
    class_weight : None or "balanced"
    scoring : {"neg_log_loss", "roc_auc"}
        Inner-fold criterion (mean over inner folds).

    Notes
    -----
    The C with the best mean inner-fold score wins (ties: the smallest C, i.e. the strongest
    regularisation, as scikit-learn's ``LogisticRegressionCV``). With ``roc_auc``, inner folds
    whose validation rows hold one class are skipped. A target with one class in the training rows gets a
    constant score (its prevalence; logged).
    """
    F, s = basis.F, basis.s
    n, T = Ytr.shape
    Cs = np.asarray(Cs, dtype=np.float64)
    L = Cs.size
    k = int(inner.max()) + 1
    M = k + 1  # inner folds + full refit
    J = M * T * L
    Y = np.empty((n, J))
    A = np.empty((n, J))
    Cj = np.empty(J)
    for m in range(M):
        member = np.ones(n, dtype=bool) if m == k else inner != m
        for t in range(T):
            a = class_weights(Ytr[:, t], member, class_weight)
            y = np.nan_to_num(Ytr[:, t], nan=0.0)
            base = (m * T + t) * L
            Y[:, base : base + L] = y[:, None]
            A[:, base : base + L] = a[:, None]
            Cj[base : base + L] = Cs
    V, b, f, n_iter = solve_path(F, Y, A, Cj, s, tol=tol)
    best_C = np.full(T, np.nan)
    inner_scores = np.full((T, L), np.nan)
    test_scores = np.empty((basis.G.shape[0], T))
    test_std = np.zeros((basis.G.shape[0], T))
    inner_oof = np.full((n, T), np.nan)
    coef = np.zeros((F.shape[1], T))
    intercept = np.zeros(T)
    for t in range(T):
        labelled = ~np.isnan(Ytr[:, t])
        per_fold = []
        for m in range(k):
            val = (inner == m) & labelled
            base = (m * T + t) * L
            if scoring == "roc_auc":
                per_fold.append(_column_aurocs(Ytr[val, t].astype(int), f[val, base : base + L]))
            else:
                per_fold.append(
                    -_loss(f[val, base : base + L], Ytr[val, t][:, None]).mean(0)
                    if val.any()
                    else np.full(L, np.nan)
                )
        sc = np.array(per_fold)
        valid = ~np.isnan(sc).any(axis=1)
        y_lab = Ytr[labelled, t]
        if y_lab.size == 0 or y_lab.min() == y_lab.max():
            prev = float(y_lab.mean()) if y_lab.size else 0.5
            logger.warning("target %d has one class in a training fold; constant score used", t)
            intercept[t] = np.log(max(prev, 1e-6) / max(1 - prev, 1e-6))
            test_scores[:, t] = intercept[t]
            continue
        if valid.any():
            mean_sc = sc[valid].mean(axis=0)
            inner_scores[t] = mean_sc
            best = int(np.argmax(mean_sc))
        else:
            logger.warning("no inner fold with both classes for target %d; using the smallest C", t)
            best = 0
        best_C[t] = Cs[best]
        full = (k * T + t) * L + best
        coef[:, t] = V[:, full]
        intercept[t] = b[full]
        test_scores[:, t] = basis.G @ V[:, full] + b[full] if basis.G.shape[0] else 0.0
        test_std[:, t] = _standardised(test_scores[:, t], f[:, full])
        for m in range(k):
            rows = inner == m
            col = (m * T + t) * L + best
            inner_oof[rows, t] = _standardised(f[rows, col], f[~rows, col])
    return FoldFit(best_C, inner_scores, test_scores, test_std, inner_oof, coef, intercept, n_iter)


def _standardised(scores: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``(scores - mean(reference)) / sd(reference)`` (sd 0 -> scores centred only)."""
    mu = float(reference.mean()) if reference.size else 0.0
    sd = float(reference.std()) if reference.size else 0.0
    return (scores - mu) / (sd if sd > 0 else 1.0)


#: most outer folds factorised and solved at once (each holds a standardised copy of its
#: training rows: n_train x D floats)
MAX_FOLD_THREADS = 8
#: below this many elements of X the folds run one at a time (threads lose to the GIL there:
#: 0.14 vs 0.18 s at 100 x 50, 0.75 vs 0.58 s at 400 x 2,000, 4.2 vs 2.7 s at 1,000 x 5,000;
#: 25 folds on 2 cores)
PARALLEL_MIN_SIZE = 500_000


_fold_threads_cap: int | None = None


def set_fold_threads(n: int | None) -> None:
    """Cap the threads of :func:`run_folds` in this process (``None``: no cap).

    Worker processes of the resampling re-runs set 1: they already share the cores.
    """
    global _fold_threads_cap
    _fold_threads_cap = None if n is None else max(1, int(n))


def fold_threads(n_folds: int, size: int | None = None) -> int:
    """Threads :func:`run_folds` uses: the usable cores, at most ``n_folds`` and 8; 1 when the
    data has fewer than ``PARALLEL_MIN_SIZE`` elements (``size``)."""
    if size is not None and size < PARALLEL_MIN_SIZE:
        return 1
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    cap = MAX_FOLD_THREADS if _fold_threads_cap is None else _fold_threads_cap
    return max(1, min(cores, n_folds, cap))


def run_folds(fn, items: list, *, threads: int | None = None) -> list:  # noqa: ANN001
    """``[fn(item) for item in items]``, in ``threads`` threads, each on one BLAS thread.

    Every item's arithmetic is single-threaded, so the results are identical for any number
    of threads (default :func:`fold_threads`). Folds, not BLAS calls, run in parallel: the
    Newton solver's element-wise work and the memory-bound half of the eigendecomposition
    then keep all cores busy too, and one BLAS thread per fold does not slow down when other
    processes share the cores, as multithreaded OpenBLAS does.
    """
    threads = fold_threads(len(items)) if threads is None else max(1, int(threads))
    with threadpool_limits(1, user_api="blas"):
        if threads == 1 or len(items) <= 1:
            return [fn(it) for it in items]
        with ThreadPoolExecutor(max_workers=threads) as pool:
            return list(pool.map(fn, items))


def nested_folds(
    X: np.ndarray,
    Y: np.ndarray,
    folds: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    Cs: np.ndarray,
    *,
    n_components: int | None = None,
    class_weight: str | None = None,
    scoring: str = "neg_log_loss",
    threads: int | None = None,
) -> list[FoldFit]:
    """:func:`fold_basis` then :func:`nested_fold` for every ``(train, test, inner)`` fold.

    The folds run through :func:`run_folds` (threads, one BLAS thread each; identical results
    for any ``threads``). At 2,545 x 18,963 on 2 cores the plain nested CV took 54 s this way
    (with the float32 CG directions) against 65 s before: one fold at a time on two BLAS
    threads, CG in float64 (median of 3 interleaved pairs, ``benchmarks/results/decode.json``).
    ``Y`` holds the labels of every row; ``inner`` the inner fold of each training row.
    """

    def one(fold: tuple[np.ndarray, np.ndarray, np.ndarray]) -> FoldFit:
        train, test, inner = fold
        basis = fold_basis(X, train, test, n_components=n_components)
        return nested_fold(basis, Y[train], inner, Cs, class_weight=class_weight, scoring=scoring)

    return run_folds(
        one, folds, threads=fold_threads(len(folds), X.size) if threads is None else threads
    )
