"""Penalised Cox regression in the fold basis: batched Newton-CG on the Breslow partial likelihood.

Why this kernel exists. The survival decoder needs, for every outer fold, an L2-penalised Cox fit
for every inner fold and every penalty of the path (50-100 fits per fold, hundreds of folds per
jackknife). With ``D`` features wider than the ``n`` training rows, the L2 solution lies in the
span of the training rows, so (as for the logistic engine, :mod:`tario_clinical.decode.engine`)
every fit is a Cox ridge problem on the ``r <= n`` fold coordinates ``F`` (``F^T F = diag(s)``)
and ``||w|| = ||v||``. The objective of column ``j`` is glmnet's and scikit-survival's
``CoxnetSurvivalAnalysis`` one (Breslow ties, mean log partial likelihood)::

    -(1 / N_j) sum_i a_ij d_i [eta_ij - log sum_{l: t_l >= t_i} a_lj exp(eta_lj)]
        + (lambda_j / 2) ||v_j||^2,        eta_j = F v_j,  N_j = sum_i a_ij

with ``a_ij`` the row weights (0/1 membership of inner folds, or case weights). All columns are
solved together by a truncated Newton method: Hessian-vector products of the partial likelihood
cost O(n) per column through cumulative sums over the time-sorted rows (no ``n x n`` risk-set
matrices), conjugate gradients are preconditioned by ``lambda + s_k * mean(w)`` (``w`` the
diagonal of the likelihood Hessian in ``eta``), and a backtracking line search keeps every step a
descent step. A column stops when its largest gradient entry is below ``tol``.

The penalty of each outer fold is chosen by the cross-validated partial likelihood of Verweij &
van Houwelingen (1993) -- glmnet's ``type.measure="deviance"`` with ``grouped=TRUE``: for inner
fold ``m``, ``l(beta_{-m}) - l_{-m}(beta_{-m})`` with ``l`` the log partial likelihood of all
training rows and ``l_{-m}`` that of the rows fitted; the penalty with the largest sum over the
inner folds wins (ties: the larger penalty).

Validated against ``sksurv.linear_model.CoxnetSurvivalAnalysis`` (``tests/test_decode_endpoints_survival.py``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from ..errors import AnalysisError

__all__ = [
    "solve_cox_path",
    "breslow_loglik",
    "breslow_cumulative_hazard",
    "nested_cox_fold",
    "CoxFoldFit",
]

logger = logging.getLogger(__name__)


def _tie_index(ts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First and last position of each sorted time's tie group."""
    n = ts.size
    new = np.r_[True, ts[1:] != ts[:-1]]
    grp = np.cumsum(new) - 1
    starts = np.flatnonzero(new)
    ends = np.r_[starts[1:], n] - 1
    return starts[grp], ends[grp]


def _revcumsum(x: np.ndarray) -> np.ndarray:
    return np.cumsum(x[::-1], axis=0)[::-1]


@dataclass
class _Terms:
    """Partial-likelihood quantities of columns at ``eta`` (rows sorted by time)."""

    loglik: np.ndarray  # (J,)
    e: np.ndarray  # (n, J) a * exp(eta - c)
    S0: np.ndarray  # (n, J) risk-set sums at each row's time
    r: np.ndarray  # (n, J) a d / S0 (0 for non-events)
    Acum: np.ndarray  # (n, J) sum over event rows with t_k <= t_i of r_k
    grad_eta: np.ndarray  # (n, J) gradient of -loglik in eta


def _terms(
    eta: np.ndarray, A: np.ndarray, d: np.ndarray, first: np.ndarray, last: np.ndarray
) -> _Terms:
    member = A > 0
    c = np.where(member, eta, -np.inf).max(axis=0)
    c = np.where(np.isfinite(c), c, 0.0)
    with np.errstate(over="ignore", under="ignore"):
        e = A * np.exp(np.clip(eta - c, -700.0, 700.0))
    S0 = _revcumsum(e)[first]
    Ad = A * d[:, None]
    ev = Ad > 0
    safe = np.where(ev, S0, 1.0)
    loglik = np.sum(np.where(ev, Ad * (eta - c - np.log(safe)), 0.0), axis=0)
    r = np.where(ev, Ad / safe, 0.0)
    Acum = np.cumsum(r, axis=0)[last]
    return _Terms(loglik, e, S0, r, Acum, e * Acum - Ad)


def _hess_eta(
    t: _Terms, cols: np.ndarray, u: np.ndarray, first: np.ndarray, last: np.ndarray
) -> np.ndarray:
    """Hessian of -loglik in eta times ``u`` for the columns ``cols`` (O(n) per column)."""
    e, S0, r, Acum = t.e[:, cols], t.S0[:, cols], t.r[:, cols], t.Acum[:, cols]
    Su = _revcumsum(e * u)[first]
    with np.errstate(invalid="ignore", divide="ignore"):
        q = np.where(r > 0, r * Su / np.where(S0 > 0, S0, 1.0), 0.0)
    B = np.cumsum(q, axis=0)[last]
    return e * u * Acum - e * B


def breslow_loglik(
    eta: np.ndarray, time: np.ndarray, event: np.ndarray, A: np.ndarray | None = None
) -> np.ndarray:
    """Breslow log partial likelihood of every column of ``eta`` (rows in any order).

    Parameters
    ----------
    eta : (n,) or (n, J) linear predictors
    time, event : (n,)
    A : (n,) or (n, J) row weights, optional (default 1)

    Returns
    -------
    (J,) array (a float for 1-D ``eta``).
    """
    one = eta.ndim == 1
    eta2 = eta[:, None] if one else eta
    if A is None:
        A2 = np.ones_like(eta2)
    else:
        A2 = A[:, None] if A.ndim == 1 else A
        A2 = np.broadcast_to(A2, eta2.shape)
    o = np.argsort(time, kind="mergesort")
    first, last = _tie_index(np.asarray(time, float)[o])
    ll = _terms(eta2[o], A2[o], np.asarray(event, float)[o], first, last).loglik
    return float(ll[0]) if one else ll


def solve_cox_path(
    F: np.ndarray,
    time: np.ndarray,
    event: np.ndarray,
    A: np.ndarray,
    lam: np.ndarray,
    s: np.ndarray,
    *,
    tol: float = 1e-8,
    max_newton: int = 60,
    max_cg: int = 60,
    V0: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Solve many L2-penalised Cox problems on the same rows at once (see module docstring).

    Parameters
    ----------
    F : (n, r) coordinates with ``F^T F = diag(s)``
    time, event : (n,)
    A : (n, J) non-negative row weights (0 = row not in the problem)
    lam : (J,) penalties
    s : (r,) diagonal of ``F^T F`` (preconditioner)
    tol : float
        Stop a column when ``max |gradient| <= tol``.
    V0 : (r, J), optional
        Starting coefficients (warm start; default 0). Each problem is strictly convex, so the
        start changes the number of iterations, not the solution (beyond ``tol``).

    Returns
    -------
    V : (r, J), eta : (n, J) = F V (rows in the input order), n_iter : int
    """
    n, r = F.shape
    J = A.shape[1]
    lam = np.asarray(lam, dtype=np.float64)
    o = np.argsort(time, kind="mergesort")
    inv = np.empty_like(o)
    inv[o] = np.arange(n)
    Fs = np.ascontiguousarray(F[o], dtype=np.float64)
    As = A[o].astype(np.float64)
    d = np.asarray(event, dtype=np.float64)[o]
    first, last = _tie_index(np.asarray(time, dtype=np.float64)[o])
    N = np.maximum(As.sum(axis=0), 1e-300)
    if V0 is None:
        V = np.zeros((r, J))
        eta = np.zeros((n, J))
    else:
        V = np.array(V0, dtype=np.float64, copy=True).reshape(r, J)
        eta = Fs @ V
    terms = _terms(eta, As, d, first, last)
    obj = -terms.loglik / N
    active = (As * d[:, None]).sum(axis=0) > 0  # no events: the solution is v = 0
    it = 0
    for it in range(1, max_newton + 1):  # noqa: B007 - iteration count is returned
        cols = np.flatnonzero(active)
        if cols.size == 0:
            break
        gV = Fs.T @ terms.grad_eta[:, cols] / N[cols] + lam[cols] * V[:, cols]
        done = np.abs(gV).max(axis=0) <= tol
        if done.all():
            active[cols] = False
            break
        if done.any():
            active[cols[done]] = False
            cols, gV = cols[~done], gV[:, ~done]
        Nc, lc = N[cols], lam[cols]
        wbar = (terms.e[:, cols] * terms.Acum[:, cols]).sum(axis=0) / n
        Pinv = 1.0 / (lc[None, :] + s[:, None] * wbar[None, :] / Nc[None, :])
        dV = np.zeros_like(gV)
        Fd = np.zeros((n, cols.size))
        rV = -gV
        zV = Pinv * rV
        pV = zV.copy()
        rz = (rV * zV).sum(axis=0)
        gnorm = np.sqrt((gV * gV).sum(axis=0))
        eta_cg = np.minimum(0.5, np.sqrt(gnorm)) * gnorm
        cg_on = np.ones(cols.size, dtype=bool)
        for _ in range(max_cg):
            Fp = Fs @ pV
            HpV = Fs.T @ _hess_eta(terms, cols, Fp, first, last) / Nc + lc * pV
            pHp = (pV * HpV).sum(axis=0)
            alpha = np.where(cg_on, rz / np.maximum(pHp, 1e-300), 0.0)
            dV += alpha * pV
            Fd += alpha * Fp
            rV -= alpha * HpV
            rnorm = np.sqrt((rV * rV).sum(axis=0))
            cg_on &= rnorm > eta_cg
            if not cg_on.any():
                break
            zV = Pinv * rV
            rz_new = (rV * zV).sum(axis=0)
            beta = np.where(cg_on, rz_new / np.maximum(rz, 1e-300), 0.0)
            rz = rz_new
            pV = zV + beta * pV
        Va = V[:, cols]
        base = obj[cols] + 0.5 * lc * (Va * Va).sum(axis=0)
        slope = (gV * dV).sum(axis=0)
        t = np.ones(cols.size)
        pending = np.ones(cols.size, dtype=bool)
        new_terms = None
        for _ in range(40):
            eta_t = eta[:, cols] + t * Fd
            tt = _terms(eta_t, As[:, cols], d, first, last)
            Vt = Va + t * dV
            tot = -tt.loglik / Nc + 0.5 * lc * (Vt * Vt).sum(axis=0)
            ok = tot <= base + 1e-4 * t * slope + 1e-13 * np.abs(base)
            if new_terms is None:
                new_terms = tt
            else:
                for name in ("loglik",):
                    getattr(new_terms, name)[pending & ok] = getattr(tt, name)[pending & ok]
                for name in ("e", "S0", "r", "Acum", "grad_eta"):
                    getattr(new_terms, name)[:, pending & ok] = getattr(tt, name)[:, pending & ok]
            pending &= ~ok
            if not pending.any():
                break
            t = np.where(pending, t / 2.0, t)
        stalled = pending
        t = np.where(stalled, 0.0, t)
        V[:, cols] = Va + t * dV
        eta[:, cols] = eta[:, cols] + t * Fd
        assert new_terms is not None
        upd = ~stalled
        cu = cols[upd]
        terms.loglik[cu] = new_terms.loglik[upd]
        for name in ("e", "S0", "r", "Acum", "grad_eta"):
            getattr(terms, name)[:, cu] = getattr(new_terms, name)[:, upd]
        obj[cu] = -terms.loglik[cu] / N[cu]
        if stalled.any():
            active[cols[stalled]] = False
    else:
        if active.any():
            logger.warning(
                "%d of %d Cox problems did not reach tol=%g in %d Newton iterations",
                int(active.sum()),
                J,
                tol,
                max_newton,
            )
    if not np.all(np.isfinite(V)):
        raise AnalysisError("the penalised Cox solver diverged (non-finite coefficients).")
    return V, eta[inv], it


def breslow_cumulative_hazard(
    eta: np.ndarray,
    time: np.ndarray,
    event: np.ndarray,
    at: np.ndarray,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """Breslow cumulative baseline hazard ``H0(t)`` at times ``at`` (for ``exp(eta)`` risks).

    ``H0(t) = sum_{events t_k <= t} w_k / sum_{l: t_l >= t_k} w_l exp(eta_l)``.
    """
    w = np.ones(time.size) if weights is None else np.asarray(weights, float)
    o = np.argsort(time, kind="mergesort")
    ts, es, ws, et = time[o], event[o].astype(bool), w[o], eta[o]
    c = et.max() if et.size else 0.0
    first, _ = _tie_index(ts)
    S0 = _revcumsum(ws * np.exp(et - c))[first]
    inc = np.where(es, ws / np.maximum(S0, 1e-300), 0.0) * np.exp(-c)
    H = np.cumsum(inc)
    idx = np.searchsorted(ts, np.asarray(at, float), side="right") - 1
    return np.where(idx >= 0, H[np.clip(idx, 0, None)], 0.0)


@dataclass(frozen=True)
class CoxFoldFit:
    """Nested penalised Cox fit of one outer training fold.

    Attributes
    ----------
    best : int
        Index of the chosen penalty.
    cvpl : (L,) cross-validated partial likelihood (sum over inner folds) per penalty; ``nan``
        for the penalties the path stop left unsolved (see :func:`nested_cox_fold`)
    coef : (r,) coefficients in the fold basis at the chosen penalty (refit on all rows)
    train_eta : (n_train,) linear predictor of the training rows
    test_eta : (n_test,) linear predictor of the test rows
    """

    best: int
    cvpl: np.ndarray
    coef: np.ndarray
    train_eta: np.ndarray
    test_eta: np.ndarray


#: Default path stop of :func:`nested_cox_fold`: the path is solved from the largest penalty
#: down and stops once the cross-validated partial likelihood has been more than
#: :data:`PATH_MARGIN` below its running best for this many consecutive smaller penalties.
PATH_PATIENCE = 2
#: How far below its best (log partial-likelihood units, summed over the inner folds) the
#: criterion must fall for the path stop to count the penalty: at the heavily penalised end the
#: criterion is nearly flat and may dip by ~1e-3 before it rises (seen in 1 of 275 benefit fits).
PATH_MARGIN = 1.0


def _choose(cvpl: np.ndarray) -> int:
    """Index of the largest finite criterion; ties go to the larger penalty (the later index)."""
    top = np.nanmax(cvpl)
    ok = np.isfinite(cvpl) & (cvpl >= top - 1e-10 * max(1.0, abs(top)))
    return int(np.flatnonzero(ok)[-1])


def nested_cox_fold(
    F: np.ndarray,
    s: np.ndarray,
    G: np.ndarray,
    time: np.ndarray,
    event: np.ndarray,
    inner: np.ndarray,
    lambdas: np.ndarray,
    *,
    weights: np.ndarray | None = None,
    tol: float = 1e-8,
    patience: int | None = PATH_PATIENCE,
) -> CoxFoldFit:
    """Inner CV (Verweij-van Houwelingen) over the penalty path, then refit on all rows.

    The path is solved from the largest penalty down, one penalty at a time for all inner folds
    together, each warm-started from the fold's solution at the previous (larger) penalty. With
    ``patience`` set, it stops once the cross-validated partial likelihood has stayed more than
    :data:`PATH_MARGIN` (1 log-likelihood unit) below its best for ``patience`` consecutive
    smaller penalties (glmnet also ends its path early, when the fit saturates). The smallest penalties -- nearly unpenalised Cox in ``D >> n``, the fits that
    need by far the most Newton and CG iterations and whose criterion collapses -- are then
    never solved. The choice equals the full path's whenever the criterion has no second, higher
    peak at smaller penalties after falling that far ``patience`` times in a row (the margin keeps
    the nearly flat, heavily penalised start of the path, where the criterion may dip by
    ~1e-3 before it rises, from ending it); ``patience=None`` solves
    the whole path (every value of ``cvpl`` then finite).

    Parameters
    ----------
    F, s, G : fold basis (training coordinates, eigenvalues, test coordinates)
    time, event : (n_train,) training outcomes
    inner : (n_train,) inner fold of each training row (0..k-1)
    lambdas : (L,) penalties (ascending)
    weights : (n_train,) case weights, optional
    tol : float
        Gradient tolerance of the solver.
    patience : int or None
        Path stop (see above); ``None`` for the whole path.
    """
    n = F.shape[0]
    k = int(inner.max()) + 1
    L = lambdas.size
    if patience is not None and int(patience) < 1:
        raise AnalysisError(f"patience must be >= 1 or None; got {patience!r}")
    w = np.ones(n) if weights is None else np.asarray(weights, float)
    A = np.empty((n, k))
    for m in range(k):
        A[:, m] = w * (inner != m)
    W = np.broadcast_to(w[:, None], (n, k))
    cvpl = np.full(L, np.nan)
    V_at = np.zeros((F.shape[1], k, L))
    V_prev = None
    for j in range(L - 1, -1, -1):
        V, inner_eta, _ = solve_cox_path(
            F, time, event, A, np.full(k, lambdas[j]), s, tol=tol, V0=V_prev
        )
        cvpl[j] = float(
            np.sum(
                breslow_loglik(inner_eta, time, event, W)
                - breslow_loglik(inner_eta, time, event, A)
            )
        )
        V_at[:, :, j] = V
        V_prev = V
        if patience is not None and _choose(cvpl) - j >= int(patience):
            recent = cvpl[j : j + int(patience)]
            if np.all(recent < np.nanmax(cvpl) - PATH_MARGIN):
                break
    best = _choose(cvpl)
    V, eta, _ = solve_cox_path(
        F,
        time,
        event,
        w[:, None],
        lambdas[[best]],
        s,
        tol=tol,
        V0=V_at[:, :, best].mean(axis=1, keepdims=True),
    )
    v = V[:, 0]
    return CoxFoldFit(
        best=best,
        cvpl=cvpl,
        coef=v,
        train_eta=eta[:, 0],
        test_eta=G @ v if G.shape[0] else np.empty(0),
    )
