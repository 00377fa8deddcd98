"""Continuous targets: ridge (or elastic-net) regression with patient-level nested CV.

Ridge in the fold basis is closed form. Inside one outer training fold the standardised features
are ``Z = F V^T`` with ``F^T F = diag(s)`` (:func:`~tario_clinical.decode.engine.fold_basis`); the
ridge solution lies in the span of the training rows, so with ``y_c`` the centred outcome::

    argmin_w ||y - b - Z w||^2 + alpha ||w||^2   ->   v = diag(1 / (s + alpha)) F^T y_c,
    w = V v,  b = mean(y)

-- scikit-learn's ``Pipeline(StandardScaler(), Ridge(alpha))`` exactly. Inner folds (subsets of
the training rows, which reuse the outer fold's standardisation as ``Pipeline(StandardScaler(),
RidgeCV(cv=...))`` does) are centred and factorised once each (an SVD of ``F`` restricted to
their rows) and give the validation predictions of every ``alpha`` of the path at once. The
``alpha`` with the smallest mean inner-fold mean squared error wins (ties: the larger ``alpha``).

``penalty="elasticnet"`` fits ``Pipeline(StandardScaler(), [PCA], ElasticNetCV(l1_ratio,
cv=inner folds))`` per outer fold (scikit-learn's own path; not in the span of the rows).

Metrics of the pooled OOF predictions (mean over repeats): ``r2`` (1 - SSE / SST about the
mean of the analysed patients: scikit-learn's ``r2_score`` on the OOF predictions), Pearson's
``r``, Spearman's ``rho``, the calibration slope (regression of the outcome on the prediction:
1 is ideal, < 1 means over-fitted predictions), calibration-in-the-large (mean outcome minus
mean prediction) and the RMSE.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import AnalysisError, SchemaError
from . import engine as _engine
from .decode_data import log_exclusions
from .endpoint_data import (
    continuous_values,
    outcome_exclusions,
    patient_data,
)
from .endpoint_inference import (
    FoldPredictions,
    MetricSpec,
    fit_and_infer,
    renumber_inner,
)
from .endpoint_result import EndpointResult, EndpointResults, LinearModel
from .splitters import assign_folds

__all__ = ["decode_continuous", "default_alphas", "ridge_path_fold", "CONTINUOUS_METRICS"]

logger = logging.getLogger(__name__)

CONTINUOUS_METRICS = (
    MetricSpec("r2", "r2", 0.0),
    MetricSpec("pearson_r", "fisher", 0.0, exact_null=True),
    MetricSpec("spearman_rho", "fisher", 0.0, exact_null=True),
    MetricSpec("calibration_slope", "identity", None),
    MetricSpec("calibration_in_the_large", "identity", None),
    MetricSpec("rmse", "log", None),
)


def default_alphas(n_alphas: int, n_rows: int, n_features: int) -> np.ndarray:
    """Default ridge path: ``n_alphas`` log-spaced values over 6 decades times ``max(n, D)``.

    With standardised features the mean eigenvalue of ``Z^T Z`` is ``n D / min(n, D) =
    max(n, D)``, so ``alpha / max(n, D)`` is the dimensionless strength; the path spans
    ``1e-3 .. 1e3`` of it.

    Parameters
    ----------
    n_alphas : int
        Number of values (>= 2).
    n_rows, n_features : int
        Patients and features.

    Returns
    -------
    numpy.ndarray
        Increasing ``alpha`` values.
    """
    if int(n_alphas) < 2:
        raise SchemaError(f"n_alphas must be >= 2; got {n_alphas!r}.")
    return np.logspace(-3.0, 3.0, int(n_alphas)) * max(1, n_rows, n_features)


def ridge_path_fold(
    F: np.ndarray,
    s: np.ndarray,
    G: np.ndarray,
    y: np.ndarray,
    inner: np.ndarray,
    alphas: np.ndarray,
) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """Nested ridge in one outer fold's basis.

    Parameters
    ----------
    F, s, G : fold basis (training coordinates, eigenvalues, test coordinates)
    y : (n_train,) outcome of the training rows
    inner : (n_train,) inner fold of every training row (0..k-1)
    alphas : (L,) ascending

    Returns
    -------
    (best index, inner mean MSE per alpha (L,), coefficients v (r,), test predictions)
    """
    k = int(inner.max()) + 1
    L = alphas.size
    mse = np.full((k, L), np.nan)
    for m in range(k):
        fit, val = inner != m, inner == m
        if not val.any() or fit.sum() < 2:
            continue
        Fm = F[fit]
        mF = Fm.mean(axis=0)
        ym = y[fit]
        my = ym.mean()
        P, sig, Qt = np.linalg.svd(Fm - mF, full_matrices=False)
        u = P.T @ (ym - my)
        H = (F[val] - mF) @ Qt.T
        shrink = sig[:, None] / (sig[:, None] ** 2 + alphas[None, :])
        pred = my + H @ (shrink * u[:, None])
        mse[m] = np.mean((y[val, None] - pred) ** 2, axis=0)
    ok = ~np.isnan(mse).any(axis=1)
    score = mse[ok].mean(axis=0) if ok.any() else np.zeros(L)
    best_val = score.min()
    best = int(np.flatnonzero(score <= best_val + 1e-12 * max(abs(best_val), 1e-300))[-1])
    mu = y.mean()
    v = (F.T @ (y - mu)) / (s + alphas[best])
    return best, score, v, mu + G @ v


# ------------------------------------------------------------------------------ problem
@dataclass
class _RegressionProblem:
    """Label-free state of the nested ridge / elastic-net CV (see module docstring)."""

    X: np.ndarray
    alphas: np.ndarray
    penalty: str = "l2"
    l1_ratio: float = 0.5
    pca: int | None = None
    seed: int = 0
    metrics: tuple[MetricSpec, ...] = CONTINUOUS_METRICS

    def strata(self, y: np.ndarray) -> np.ndarray:
        """One-hot fifths of the outcome (fewer bins for small samples)."""
        n = y.shape[0]
        n_bins = int(max(2, min(5, n // 10)))
        ranks = stats.rankdata(y, method="ordinal") - 1
        code = (ranks * n_bins) // n
        return (code[:, None] == np.arange(n_bins)[None, :]).astype(float)

    def cross_validate(
        self, rows: np.ndarray, y: np.ndarray, outer: np.ndarray, inner: list[np.ndarray]
    ) -> FoldPredictions:
        """Nested CV of ``X[rows]`` against ``y``; see :class:`EndpointProblem`."""
        R = outer.shape[0]
        K = len(inner) // R
        pred = np.full((R, rows.size, 1), np.nan)
        info = []
        for i in range(R * K):
            r, k = divmod(i, K)
            train = np.flatnonzero(outer[r] != k)
            test = np.flatnonzero(outer[r] == k)
            if test.size == 0:
                continue
            inn = renumber_inner(inner[i][train])
            alpha, yhat = self._fit_fold(rows[train], rows[test], y[train], inn)
            pred[r, test, 0] = yhat
            info.append(
                {
                    "repeat": r,
                    "fold": k,
                    "penalty": alpha,
                    "n_train": train.size,
                    "n_test": test.size,
                }
            )
        return FoldPredictions(pred=pred, fold=outer.copy(), penalty=info)

    def _fit_fold(
        self, train: np.ndarray, test: np.ndarray, y: np.ndarray, inner: np.ndarray
    ) -> tuple[float, np.ndarray]:
        if self.penalty == "l2":
            b = _engine.fold_basis(self.X, train, test, n_components=self.pca)
            best, _, _, yhat = ridge_path_fold(b.F, b.s, b.G, y, inner, self.alphas)
            return float(self.alphas[best]), yhat
        return _elasticnet_fold(
            self.X,
            train,
            test,
            y,
            inner,
            l1_ratio=self.l1_ratio,
            n_alphas=self.alphas.size,
            pca=self.pca,
            seed=self.seed,
        )

    def statistics(self, y: np.ndarray, cv: FoldPredictions) -> np.ndarray:
        """Mean over repeats of the pooled-OOF metrics (:data:`CONTINUOUS_METRICS` order)."""
        per = [continuous_metrics(y, cv.pred[r, :, 0]) for r in range(cv.pred.shape[0])]
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmean(np.array(per), axis=0)


def _elasticnet_fold(
    X: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    y: np.ndarray,
    inner: np.ndarray,
    *,
    l1_ratio: float,
    n_alphas: int,
    pca: int | None,
    seed: int,
) -> tuple[float, np.ndarray]:
    from sklearn.decomposition import PCA
    from sklearn.linear_model import ElasticNetCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    splits = [(np.flatnonzero(inner != m), np.flatnonzero(inner == m)) for m in np.unique(inner)]
    steps: list[Any] = [StandardScaler()]
    if pca is not None:
        steps.append(PCA(n_components=min(pca, train.size - 1, X.shape[1]), random_state=seed))
    # scikit-learn >= 1.9 takes the path length as ``alphas=<int>`` (``n_alphas`` removed)
    import inspect

    if "n_alphas" in inspect.signature(ElasticNetCV).parameters:
        path: dict[str, Any] = {"n_alphas": n_alphas}
    else:
        path = {"alphas": n_alphas}
    steps.append(ElasticNetCV(l1_ratio=l1_ratio, cv=splits, max_iter=5000, tol=1e-6, **path))
    model = make_pipeline(*steps)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X[train], y)
    return float(model[-1].alpha_), model.predict(X[test]) if test.size else np.empty(0)


def continuous_metrics(y: np.ndarray, yhat: np.ndarray) -> np.ndarray:
    """``r2, pearson_r, spearman_rho, calibration_slope, calibration_in_the_large, rmse``."""
    ok = np.isfinite(yhat) & np.isfinite(y)
    y, yhat = y[ok], yhat[ok]
    out = np.full(len(CONTINUOUS_METRICS), np.nan)
    if y.size < 3:
        return out
    sst = np.sum((y - y.mean()) ** 2)
    sse = np.sum((y - yhat) ** 2)
    out[0] = 1.0 - sse / sst if sst > 0 else np.nan
    sy, sp = y.std(), yhat.std()
    if sy > 0 and sp > 0:
        out[1] = float(np.corrcoef(y, yhat)[0, 1])
        out[2] = float(stats.spearmanr(y, yhat).statistic)
        out[3] = float(np.cov(y, yhat, bias=True)[0, 1] / sp**2)
    out[4] = float(np.mean(y - yhat))
    out[5] = float(np.sqrt(sse / y.size))
    return out


def _oof_formulas(
    y: np.ndarray, yhat: np.ndarray, level: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Textbook intervals on the per-patient mean OOF prediction (independence assumed)."""
    M = len(CONTINUOUS_METRICS)
    se, low, high, p = (np.full(M, np.nan) for _ in range(4))
    n = y.size
    z = stats.norm.ppf(0.5 + level / 2)
    met = continuous_metrics(y, yhat)
    for j, f in ((1, 1.0), (2, 1.06)):
        if np.isfinite(met[j]) and n > 3:
            s = np.sqrt(f / (n - 3))
            zr = np.arctanh(met[j])
            low[j], high[j] = np.tanh(zr - z * s), np.tanh(zr + z * s)
            se[j] = s * (1 - met[j] ** 2)
            p[j] = stats.norm.sf(zr / s)
    if np.isfinite(met[3]):
        resid = y - (y.mean() + met[3] * (yhat - yhat.mean()))
        s = np.sqrt(np.sum(resid**2) / (n - 2) / np.sum((yhat - yhat.mean()) ** 2))
        se[3], low[3], high[3] = s, met[3] - z * s, met[3] + z * s
    s = np.std(y - yhat, ddof=1) / np.sqrt(n)
    se[4], low[4], high[4] = s, met[4] - z * s, met[4] + z * s
    return se, low, high, p


# ------------------------------------------------------------------------------ API
def decode_continuous(
    representations: Any,
    cohort: Any,
    *,
    targets: list[str] | str,
    penalty: Literal["l2", "elasticnet"] = "l2",
    l1_ratio: float = 0.5,
    alphas: Any = None,
    n_alphas: int = 13,
    cv: Any = None,
    n_splits: int = 5,
    n_repeats: int = 5,
    n_inner_splits: int = 5,
    pca: int | None = None,
    group_by: str | None = None,
    ci_method: Literal["jackknife", "jackknife2", "bootstrap", "oof"] = "jackknife",
    p_method: Literal["permutation", "jackknife", "oof"] = "permutation",
    level: float = 0.95,
    n_permutations: int = 99,
    n_jackknife: int = 10,
    n_bootstrap: int = 200,
    n_jobs: int | None = 1,
    progress: bool | None = None,
    seed: int = 0,
) -> EndpointResults:
    """Decode continuous targets (ridge / elastic-net) with nested, patient-level CV.

    Parameters
    ----------
    representations : AnnData or DataFrame
        Patients or slides (``obs["patient_id"]``) x features; slides of a patient are averaged.
    cohort : Cohort or DataFrame
        Clinical table with ``patient_id`` and the target columns (numbers; blank/NA missing).
    targets : list of str
        Numeric columns.
    penalty : {"l2", "elasticnet"}, default "l2"
        ``l2``: closed-form ridge in the fold basis; ``elasticnet``: scikit-learn's
        ``ElasticNetCV`` per outer fold (its own ``n_alphas`` path, ``l1_ratio``).
    l1_ratio : float, default 0.5
    alphas : array-like, optional
        Ridge path (scikit-learn ``Ridge(alpha)`` convention); default :func:`default_alphas`.
    n_alphas : int, default 13
    cv, n_splits, n_repeats, n_inner_splits, pca, group_by
        As in :func:`tario_clinical.decode`; folds are stratified on fifths of the outcome.
    ci_method : {"jackknife", "jackknife2", "bootstrap", "oof"}, default "jackknife"
        See :mod:`tario_clinical.decode.endpoint_inference` (``oof`` is anti-conservative).
    p_method : {"permutation", "jackknife", "oof"}, default "permutation"
        One-sided tests of R^2 > 0 and of correlations > 0.
    level : float, default 0.95
    n_permutations, n_jackknife, n_bootstrap : int
    n_jobs, progress, seed
        As in :func:`tario_clinical.decode`.

    Returns
    -------
    EndpointResults
        One :class:`EndpointResult` (kind ``continuous``) per target; OOF columns
        ``patient_id, target, repeat, fold, score, prediction, y_true`` (``score`` is the
        prediction standardised by the fold's training outcome mean and SD).

    Raises
    ------
    SchemaError, CohortError
        Non-numeric values (named), missing columns.
    AnalysisError
        Fewer than 10 patients with a value, or a constant outcome.
    """
    if penalty not in ("l2", "elasticnet"):
        raise SchemaError(f"penalty must be one of ['l2', 'elasticnet']; got {penalty!r}.")
    targets = [targets] if isinstance(targets, str) else list(targets)
    if not targets:
        raise SchemaError("targets must name at least one continuous column.")
    data = patient_data(representations, cohort)
    out: dict[str, EndpointResult] = {}
    for t in targets:
        if t not in data.clinical.columns:
            raise SchemaError(f"target {t!r} is not a column of the clinical table.")
        yall = continuous_values(data.clinical[t], t)
        have = np.isfinite(yall)
        excl = outcome_exclusions(data, t, ~have, f"missing value {t}")
        log_exclusions(excl, logger)
        idx = np.flatnonzero(have)
        y = yall[idx]
        if idx.size < 10:
            raise AnalysisError(f"target {t!r} has {idx.size} patients with a value; need >= 10.")
        if np.ptp(y) == 0:
            raise AnalysisError(f"target {t!r} is constant ({y[0]:g}); nothing to decode.")
        X = data.X[idx]
        al = (
            default_alphas(n_alphas, idx.size, X.shape[1])
            if alphas is None
            else np.sort(np.asarray(alphas, dtype=float))
        )
        if np.any(al <= 0):
            raise SchemaError("alphas must be positive.")
        problem = _RegressionProblem(
            X=X, alphas=al, penalty=penalty, l1_ratio=l1_ratio, pca=pca, seed=seed
        )
        fit = fit_and_infer(
            problem,
            y,
            X,
            data.clinical.iloc[idx],
            design_kw=dict(
                cv=cv,
                n_splits=n_splits,
                n_repeats=n_repeats,
                n_inner_splits=n_inner_splits,
                group_by=group_by,
                seed=seed,
            ),
            inference_kw=dict(
                ci_method=ci_method,
                p_method=p_method,
                level=level,
                n_jackknife=n_jackknife,
                n_bootstrap=n_bootstrap,
                n_permutations=n_permutations,
                seed=seed,
                n_jobs=n_jobs,
                progress=progress,
            ),
            final_model=(
                (
                    lambda pb=problem, y=y: _final_model(
                        pb, y, data.feature_names, n_inner_splits, seed
                    )
                )
                if penalty == "l2"
                else None
            ),
            oof_inference=lambda run, y=y: _oof_formulas(
                y, np.nanmean(run.pred[:, :, 0], axis=0), level
            ),
        )
        design, run, final, table, reps = fit.design, fit.run, fit.final, fit.table, fit.reps
        pids = data.patient_ids[idx]
        oof = _oof_table(t, pids, y, run, design)
        folds = pd.DataFrame(run.penalty).assign(target=t)
        notes = []
        if idx.size < 50:
            notes.append(f"{idx.size} patients: intervals rest on few patients")
        params = {
            "cv": design.description,
            "n_splits": design.plan.n_splits,
            "n_repeats": int(design.plan.outer.shape[0]),
            "n_inner_splits": n_inner_splits,
            "penalty": penalty,
            "l1_ratio": l1_ratio if penalty == "elasticnet" else None,
            "alphas": al.tolist() if penalty == "l2" else None,
            "inner_scoring": "neg_mean_squared_error",
            "pca": pca,
            "group_by": group_by,
            "ci_method": ci_method,
            "p_method": p_method,
            "level": level,
            "n_permutations": n_permutations if p_method == "permutation" else None,
            "n_jackknife": n_jackknife if "jackknife" in (ci_method, p_method) else None,
            "n_bootstrap": n_bootstrap if ci_method == "bootstrap" else None,
            "seed": seed,
            "n_patients": int(idx.size),
            "n_features": int(X.shape[1]),
            "estimand": "metrics on new patients of the pooled out-of-fold predictions of the "
            "procedure fitted to n(k-1)/k patients (mean over repeats)",
        }
        out[t] = EndpointResult(
            target=t,
            kind="continuous",
            metrics=table,
            oof=oof,
            folds=folds[["target", "repeat", "fold", "penalty", "n_train", "n_test"]],
            exclusions=excl,
            params=params,
            resamples=reps,
            final_model=final,
            notes=tuple(notes),
        )
    return EndpointResults(
        results=out, target_types={t: ("continuous", "decode_continuous") for t in targets}
    )


def _oof_table(
    t: str, pids: np.ndarray, y: np.ndarray, run: FoldPredictions, design: Any
) -> pd.DataFrame:
    parts = []
    R = run.pred.shape[0]
    for r in range(R):
        pred = run.pred[r, :, 0]
        score = np.empty_like(pred)
        for k in np.unique(run.fold[r]):
            te = run.fold[r] == k
            tr = ~te
            sd = y[tr].std()
            score[te] = (pred[te] - y[tr].mean()) / (sd if sd > 0 else 1.0)
        parts.append(
            pd.DataFrame(
                {
                    "patient_id": pids,
                    "target": t,
                    "repeat": r,
                    "fold": run.fold[r],
                    "score": score,
                    "prediction": pred,
                    "y_true": y,
                }
            )
        )
    return (
        pd.concat(parts, ignore_index=True)
        .sort_values(["repeat", "patient_id"], kind="mergesort")
        .reset_index(drop=True)
    )


def _final_model(
    problem: _RegressionProblem, y: np.ndarray, feature_names: np.ndarray, n_inner: int, seed: int
) -> LinearModel:
    """Ridge on all patients, alpha chosen by inner CV on them."""
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(3)[1].spawn(1)[0])
    inner = assign_folds(problem.strata(y), n_inner, rng)
    rows = np.arange(y.size)
    b = _engine.fold_basis(problem.X, rows, None, n_components=problem.pca, with_feature_map=True)
    best, _, v, _ = ridge_path_fold(b.F, b.s, b.G, y, inner, problem.alphas)
    fmap = b.feature_map if b.feature_map is not None else np.zeros((problem.X.shape[1], v.size))
    return LinearModel(
        kind="continuous",
        penalty=float(problem.alphas[best]),
        mean_=b.mean,
        scale_=b.scale,
        coef_=fmap @ v,
        intercept_=float(y.mean()),
        feature_names_in_=feature_names,
    )
