"""Time-to-event decoder: penalised Cox regression with nested, patient-level CV.

``decode_survival`` fits, in every outer training fold, an L2-penalised Cox model (Breslow ties,
glmnet / scikit-survival ``CoxnetSurvivalAnalysis`` objective) in the span of the training rows
(:mod:`tario_clinical.decode.cox_engine`), its penalty chosen by inner CV on the partial
likelihood (Verweij & van Houwelingen), and scores the held-out patients: every patient gets a
cross-validated risk score in every repeat. The path is solved from the largest penalty down with
warm starts and stops two penalties after the criterion's best
(:data:`~tario_clinical.decode.cox_engine.PATH_PATIENCE`): the nearly unpenalised fits at the
bottom of the path, by far the costliest and never chosen when the criterion has already fallen,
are skipped (22x faster per fold at 2,036 x 18,963, the same choice and risk scores to 1e-10;
``benchmarks/results/decode_survival.json``). ``penalty="elasticnet"`` uses scikit-survival's
``CoxnetSurvivalAnalysis`` per fold instead (same objective, coordinate descent, not in the span
of the rows; needs ``scikit-survival``).

Metrics of the pooled out-of-fold scores (mean over repeats): Harrell's and Uno's C (higher
score = higher risk; Uno's censoring weights from the analysed patients), the cumulative/dynamic
time-dependent AUC at ``times`` (IPCW, Uno et al. 2007, as ``sksurv.metrics.
cumulative_dynamic_auc``), the calibration slope (Cox regression of the outcome on the pooled
raw OOF linear predictor: 1 is ideal, < 1 over-fitted) and calibration at the ``horizon``: the
Kaplan-Meier risk ``1 - S(h)`` against the mean predicted risk ``1 - exp(-H0(h) exp(eta))``
(``H0`` the Breslow baseline of each fold's training patients) and their ratio (O/E).
Intervals and tests re-run the whole nested CV (:mod:`tario_clinical.decode.endpoint_inference`).

The OOF table's ``score`` (each fold's linear predictor standardised on its training patients;
higher = higher risk) feeds :func:`tario_clinical.survival.stratify` like a decoded target's.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from ..errors import AnalysisError, SchemaError
from ..survival import kernels
from . import engine as _engine
from .cox_engine import breslow_cumulative_hazard, breslow_loglik, nested_cox_fold
from .decode_data import log_exclusions
from .endpoint_data import outcome_exclusions, patient_data, survival_outcome
from .endpoint_inference import (
    FoldPredictions,
    MetricSpec,
    fit_and_infer,
    renumber_inner,
)
from .endpoint_result import EndpointResult, LinearModel
from .inference import weighted_auroc
from .splitters import assign_folds

__all__ = ["decode_survival", "default_lambdas", "survival_metrics"]

logger = logging.getLogger(__name__)


def default_lambdas(n_lambdas: int, n_rows: int, n_features: int, n_events: int) -> np.ndarray:
    """Default Cox ridge path: 6 decades around the mean curvature of the partial likelihood.

    With standardised features and the mean partial likelihood, the curvature along a fold
    coordinate with eigenvalue ``s`` is about ``s * (d / n) / n`` at ``beta = 0``, and the mean
    eigenvalue is ``max(n, D)``; the path spans ``1e-3 .. 1e3`` times ``max(n, D) d / n^2``.

    Parameters
    ----------
    n_lambdas : int
        Number of values (>= 2).
    n_rows, n_features, n_events : int

    Returns
    -------
    numpy.ndarray
        Increasing penalties (``lambda`` of glmnet, ``alpha`` of scikit-survival with
        ``l1_ratio`` -> 0).
    """
    if int(n_lambdas) < 2:
        raise SchemaError(f"n_lambdas must be >= 2; got {n_lambdas!r}.")
    ref = max(n_rows, n_features) * max(n_events, 1) / max(n_rows, 1) ** 2
    return np.logspace(-3.0, 3.0, int(n_lambdas)) * ref


# ------------------------------------------------------------------------------ metrics
def _censoring_at(t: np.ndarray, e: np.ndarray) -> np.ndarray:
    gt, gv = kernels.censoring_survival(t, e.astype(bool))
    return kernels.step_at(gt, gv, t)


def _calibration_slope(t: np.ndarray, e: np.ndarray, eta: np.ndarray) -> float:
    o = np.argsort(t, kind="mergesort")
    try:
        fit = kernels.efron_fit(
            eta[o][:, None], t[o], e[o].astype(bool), np.zeros(t.size, int), names=["lp"]
        )
    except AnalysisError:
        return float("nan")
    return float(fit.beta[0])


def survival_metrics(
    t: np.ndarray,
    e: np.ndarray,
    score: np.ndarray,
    eta: np.ndarray,
    risk_h: np.ndarray,
    horizon: float,
    times: np.ndarray,
) -> np.ndarray:
    """``harrell_c, uno_c, td_auc@times..., calibration_slope, observed/predicted risk@h, O/E``."""
    ok = np.isfinite(score)
    t, e, score, eta, risk_h = t[ok], e[ok], score[ok], eta[ok], risk_h[ok]
    eb = e.astype(bool)
    out = np.full(6 + times.size, np.nan)
    if t.size < 3 or not eb.any():
        return out
    out[0] = kernels.pair_concordance(t, eb, score, np.ones(t.size))[0]
    g = _censoring_at(t, e)
    with np.errstate(divide="ignore"):
        w = np.where(eb & (g > 0), 1.0 / g**2, 0.0)
    out[1] = kernels.pair_concordance(t, eb, score, w)[0]
    for j, h in enumerate(times):
        case = eb & (t <= h)
        ctrl = t > h
        if case.any() and ctrl.any():
            use = case | ctrl
            with np.errstate(divide="ignore"):
                wt = np.where(case, 1.0 / np.where(g > 0, g, np.inf), 1.0)
            out[2 + j] = weighted_auroc(case[use], score[use], wt[use])
    k = 2 + times.size
    out[k] = _calibration_slope(t, e, eta)
    km = kernels.kaplan_meier(t, eb)
    obs = 1.0 - float(km.at(horizon)[0])
    pred = float(np.mean(risk_h))
    out[k + 1] = obs
    out[k + 2] = pred
    out[k + 3] = obs / pred if pred > 0 else np.nan
    return out


def _metric_specs(times: np.ndarray, horizon: float) -> tuple[MetricSpec, ...]:
    return (
        MetricSpec("harrell_c", "logit", 0.5, exact_null=True),
        MetricSpec("uno_c", "logit", 0.5, exact_null=True),
        *(MetricSpec(f"td_auc@{h:g}", "logit", 0.5, exact_null=True) for h in times),
        MetricSpec("calibration_slope", "identity", None),
        MetricSpec(f"observed_risk@{horizon:g}", "logit", None),
        MetricSpec(f"predicted_risk@{horizon:g}", "logit", None),
        MetricSpec(f"oe_ratio@{horizon:g}", "log", None),
    )


# ------------------------------------------------------------------------------ problem
@dataclass
class _SurvivalProblem:
    """Label-free state of the nested penalised-Cox CV; ``y`` is ``(n, 2)`` time, event."""

    X: np.ndarray
    lambdas: np.ndarray
    horizon: float
    times: np.ndarray
    penalty: str = "l2"
    l1_ratio: float = 0.5
    pca: int | None = None
    tol: float = 1e-8

    @property
    def metrics(self) -> tuple[MetricSpec, ...]:
        """See :func:`survival_metrics`."""
        return _metric_specs(self.times, self.horizon)

    def strata(self, y: np.ndarray) -> np.ndarray:
        """The event indicator."""
        return y[:, 1:2].astype(float)

    def cross_validate(
        self, rows: np.ndarray, y: np.ndarray, outer: np.ndarray, inner: list[np.ndarray]
    ) -> FoldPredictions:
        """Nested CV of ``X[rows]``; predictions ``score, eta, risk@horizon``."""
        R = outer.shape[0]
        nK = len(inner) // R
        pred = np.full((R, rows.size, 3), np.nan)
        info = []
        t, e = y[:, 0], y[:, 1]
        for i in range(R * nK):
            r, k = divmod(i, nK)
            train = np.flatnonzero(outer[r] != k)
            test = np.flatnonzero(outer[r] == k)
            if test.size == 0:
                continue
            inn = renumber_inner(inner[i][train])
            lam, tr_eta, te_eta = self.fit_fold(rows[train], rows[test], t[train], e[train], inn)
            mu, sd = tr_eta.mean(), tr_eta.std()
            H0 = breslow_cumulative_hazard(tr_eta, t[train], e[train], np.array([self.horizon]))[0]
            pred[r, test, 0] = (te_eta - mu) / (sd if sd > 0 else 1.0)
            pred[r, test, 1] = te_eta
            pred[r, test, 2] = 1.0 - np.exp(-H0 * np.exp(te_eta))
            info.append(
                {"repeat": r, "fold": k, "penalty": lam, "n_train": train.size, "n_test": test.size}
            )
        return FoldPredictions(pred=pred, fold=outer.copy(), penalty=info)

    def fit_fold(
        self, train: np.ndarray, test: np.ndarray, t: np.ndarray, e: np.ndarray, inner: np.ndarray
    ) -> tuple[float, np.ndarray, np.ndarray]:
        """Chosen penalty, training and test linear predictors of one outer fold."""
        if self.penalty == "l2":
            b = _engine.fold_basis(self.X, train, test, n_components=self.pca)
            fit = nested_cox_fold(b.F, b.s, b.G, t, e, inner, self.lambdas, tol=self.tol)
            return float(self.lambdas[fit.best]), fit.train_eta, fit.test_eta
        return _coxnet_fold(self.X, train, test, t, e, inner, self.l1_ratio, self.lambdas.size)

    def statistics(self, y: np.ndarray, cv: FoldPredictions) -> np.ndarray:
        """Mean over repeats of :func:`survival_metrics` of the pooled OOF predictions."""
        per = np.array(
            [
                survival_metrics(
                    y[:, 0],
                    y[:, 1],
                    cv.pred[r, :, 0],
                    cv.pred[r, :, 1],
                    cv.pred[r, :, 2],
                    self.horizon,
                    self.times,
                )
                for r in range(cv.pred.shape[0])
            ]
        )
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmean(per, axis=0)


def _coxnet_fold(
    X: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    t: np.ndarray,
    e: np.ndarray,
    inner: np.ndarray,
    l1_ratio: float,
    n_alphas: int,
) -> tuple[float, np.ndarray, np.ndarray]:
    """Elastic-net Cox by scikit-survival, penalty by the same cross-validated partial likelihood."""
    try:
        from sksurv.linear_model import CoxnetSurvivalAnalysis
        from sksurv.util import Surv
    except ImportError as err:  # pragma: no cover - optional dependency
        raise AnalysisError(
            "penalty='elasticnet' for time to event needs scikit-survival "
            "(pip install scikit-survival); penalty='l2' needs nothing extra."
        ) from err
    from sklearn.preprocessing import StandardScaler

    sc = StandardScaler().fit(X[train])
    Z = sc.transform(X[train])
    Zt = sc.transform(X[test])
    yy = Surv.from_arrays(event=e.astype(bool), time=t)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        base = CoxnetSurvivalAnalysis(l1_ratio=l1_ratio, n_alphas=n_alphas, alpha_min_ratio=0.01)
        base.fit(Z, yy)
        alphas = base.alphas_
        cvpl = np.zeros(alphas.size)
        for m in np.unique(inner):
            fit = inner != m
            mdl = CoxnetSurvivalAnalysis(l1_ratio=l1_ratio, alphas=alphas).fit(Z[fit], yy[fit])
            eta = Z @ mdl.coef_
            cvpl += breslow_loglik(eta, t, e) - breslow_loglik(eta, t, e, fit.astype(float))
    best = int(np.argmax(cvpl))
    coef = base.coef_[:, best]
    return float(alphas[best]), Z @ coef, Zt @ coef


def _oof_formulas(
    y: np.ndarray, mean_score: np.ndarray, n_metrics: int, level: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Influence-function SEs of Harrell's and Uno's C on the mean OOF score (independence)."""
    from scipy import stats

    se, low, high, p = (np.full(n_metrics, np.nan) for _ in range(4))
    t, e = y[:, 0], y[:, 1].astype(bool)
    g = _censoring_at(t, y[:, 1])
    with np.errstate(divide="ignore"):
        w_uno = np.where(e & (g > 0), 1.0 / g**2, 0.0)
    z = stats.norm.ppf(0.5 + level / 2)
    for j, w in enumerate((np.ones(t.size), w_uno)):
        c, s, _ = kernels.pair_concordance(t, e, mean_score, w)
        se[j], low[j], high[j] = s, max(0.0, c - z * s), min(1.0, c + z * s)
        p[j] = stats.norm.sf((c - 0.5) / s) if s > 0 else np.nan
    return se, low, high, p


# ------------------------------------------------------------------------------ API
def decode_survival(
    representations: Any,
    cohort: Any,
    *,
    time: str = "os_time",
    event: str = "os_event",
    target: str | None = None,
    penalty: Literal["l2", "elasticnet"] = "l2",
    l1_ratio: float = 0.5,
    lambdas: Any = None,
    n_lambdas: int = 10,
    horizon: float | None = None,
    times: Any = None,
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
) -> EndpointResult:
    """Decode time to event with a penalised Cox model and nested, patient-level CV.

    Parameters
    ----------
    representations : AnnData or DataFrame
        Patients or slides (``obs["patient_id"]``) x features; slides of a patient are averaged.
    cohort : Cohort or DataFrame
        Clinical table with ``patient_id``, ``time`` and ``event``; patients missing either are
        excluded and listed.
    time, event : str, default "os_time", "os_event"
        Survival columns (event 1, censored 0).
    target : str, optional
        Name of the endpoint in the results (default ``time`` without ``_time``, e.g. ``os``).
    penalty : {"l2", "elasticnet"}, default "l2"
        ``l2``: the fast engine in the span of the training rows; ``elasticnet``:
        scikit-survival's ``CoxnetSurvivalAnalysis`` per fold (``l1_ratio``).
    l1_ratio : float, default 0.5
    lambdas : array-like, optional
        Penalty path (glmnet ``lambda``); default :func:`default_lambdas`.
    n_lambdas : int, default 10
    horizon : float, optional
        Time of the calibration (default: the median event time).
    times : array-like, optional
        Horizons of the time-dependent AUC (default: quartiles of the event times).
    cv, n_splits, n_repeats, n_inner_splits, pca, group_by
        As in :func:`tario_clinical.decode`; folds are stratified on the event indicator.
    ci_method : {"jackknife", "jackknife2", "bootstrap", "oof"}, default "jackknife"
    p_method : {"permutation", "jackknife", "oof"}, default "permutation"
        One-sided tests of C > 0.5 and td-AUC > 0.5; permutations move (time, event) pairs
        between patients.
    level : float, default 0.95
    n_permutations, n_jackknife, n_bootstrap, n_jobs, progress, seed
        As in :func:`tario_clinical.decode`.

    Returns
    -------
    EndpointResult
        Kind ``survival``; OOF columns ``patient_id, target, repeat, fold, score, risk,
        risk_at_horizon, time, event``; ``tables["calibration"]`` (per fifth of predicted risk:
        predicted and Kaplan-Meier risk at the horizon); ``final_model`` the Cox model on all
        patients.

    Raises
    ------
    SchemaError, CohortError
        Invalid times or events (named), missing columns.
    AnalysisError
        Fewer than 10 events.

    Examples
    --------
    >>> import tario_clinical as tc  # doctest: +SKIP
    >>> trial = tc.simulate_trial(300, seed=1)  # doctest: +SKIP
    >>> res = tc.decode_survival(trial.representations, trial.cohort(), time="os_time",
    ...                          event="os_event")  # doctest: +SKIP
    >>> tc.survival.stratify(trial.cohort(), res.oof, arm="arm")  # doctest: +SKIP
    """
    if penalty not in ("l2", "elasticnet"):
        raise SchemaError(f"penalty must be one of ['l2', 'elasticnet']; got {penalty!r}.")
    name = target or (time[: -len("_time")] if time.endswith("_time") else time)
    data = patient_data(representations, cohort)
    tt, ee, miss = survival_outcome(data.clinical, time, event)
    excl = outcome_exclusions(data, name, miss, f"missing {time} or {event}")
    log_exclusions(excl, logger)
    idx = np.flatnonzero(~miss)
    y = np.column_stack([tt[idx], ee[idx]])
    n_events = int(y[:, 1].sum())
    if n_events < 10:
        raise AnalysisError(
            f"{name}: {n_events} events among {idx.size} patients with representations; the "
            "survival decoder needs at least 10."
        )
    ev_times = y[y[:, 1] == 1, 0]
    times_arr = (
        np.quantile(ev_times, [0.25, 0.5, 0.75])
        if times is None
        else np.atleast_1d(np.asarray(times, float))
    )
    h = float(np.median(ev_times)) if horizon is None else float(horizon)
    if not (y[:, 0].min() < h < y[:, 0].max()):
        raise SchemaError(
            f"horizon {h:g} is outside the follow-up ({y[:, 0].min():g} to {y[:, 0].max():g})."
        )
    X = data.X[idx]
    lam = (
        default_lambdas(n_lambdas, idx.size, X.shape[1], n_events)
        if lambdas is None
        else np.sort(np.asarray(lambdas, float))
    )
    if np.any(lam <= 0):
        raise SchemaError("lambdas must be positive.")
    problem = _SurvivalProblem(
        X=X, lambdas=lam, horizon=h, times=times_arr, penalty=penalty, l1_ratio=l1_ratio, pca=pca
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
            (lambda: _final_model(problem, y, data.feature_names, n_inner_splits, seed))
            if penalty == "l2"
            else None
        ),
        oof_inference=lambda run: _oof_formulas(
            y, np.nanmean(run.pred[:, :, 0], axis=0), len(problem.metrics), level
        ),
    )
    design, run, final, table, reps = fit.design, fit.run, fit.final, fit.table, fit.reps
    pids = data.patient_ids[idx]
    oof = _oof_table(name, pids, y, run)
    notes = []
    if n_events < 50:
        notes.append(f"{n_events} events: intervals rest on few events")
    metric_notes = {
        "uno_c": "censoring weights from the analysed patients, no truncation (tau)",
        f"oe_ratio@{h:g}": "Kaplan-Meier risk / mean predicted risk at the horizon",
    }
    params = {
        "cv": design.description,
        "n_splits": design.plan.n_splits,
        "n_repeats": int(design.plan.outer.shape[0]),
        "n_inner_splits": n_inner_splits,
        "time": time,
        "event": event,
        "penalty": penalty,
        "l1_ratio": l1_ratio if penalty == "elasticnet" else None,
        "lambdas": lam.tolist() if penalty == "l2" else None,
        "ties": "breslow",
        "inner_scoring": "cross-validated partial likelihood (Verweij & van Houwelingen)",
        "horizon": h,
        "times": times_arr.tolist(),
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
        "n_events": n_events,
        "n_features": int(X.shape[1]),
    }
    return EndpointResult(
        target=name,
        kind="survival",
        metrics=table,
        oof=oof,
        folds=pd.DataFrame(run.penalty).assign(target=name)[
            ["target", "repeat", "fold", "penalty", "n_train", "n_test"]
        ],
        exclusions=excl,
        params=params,
        tables={"calibration": _calibration_table(oof, h)},
        resamples=reps,
        final_model=final,
        notes=tuple(notes),
        metric_notes=metric_notes,
    )


def _oof_table(name: str, pids: np.ndarray, y: np.ndarray, run: FoldPredictions) -> pd.DataFrame:
    parts = []
    for r in range(run.pred.shape[0]):
        parts.append(
            pd.DataFrame(
                {
                    "patient_id": pids,
                    "target": name,
                    "repeat": r,
                    "fold": run.fold[r],
                    "score": run.pred[r, :, 0],
                    "risk": run.pred[r, :, 1],
                    "risk_at_horizon": run.pred[r, :, 2],
                    "time": y[:, 0],
                    "event": y[:, 1].astype(int),
                }
            )
        )
    return (
        pd.concat(parts, ignore_index=True)
        .sort_values(["repeat", "patient_id"], kind="mergesort")
        .reset_index(drop=True)
    )


def _calibration_table(oof: pd.DataFrame, h: float, n_groups: int = 5) -> pd.DataFrame:
    pp = oof.groupby("patient_id").agg(
        risk=("risk_at_horizon", "mean"), time=("time", "first"), event=("event", "first")
    )
    g = pd.qcut(pp["risk"].rank(method="first"), n_groups, labels=False)
    rows = []
    for k in range(n_groups):
        d = pp[g == k]
        km = kernels.kaplan_meier(d["time"].to_numpy(float), d["event"].to_numpy(bool))
        s, lo, hi = (float(km.at(h, v)[0]) for v in ("survival", "low", "high"))
        rows.append(
            {
                "group": k + 1,
                "n": len(d),
                "events": int(d["event"].sum()),
                "predicted_risk": float(d["risk"].mean()),
                "observed_risk": 1.0 - s,
                "low": 1.0 - hi,
                "high": 1.0 - lo,
            }
        )
    return pd.DataFrame(rows)


def _final_model(
    problem: _SurvivalProblem, y: np.ndarray, feature_names: np.ndarray, n_inner: int, seed: int
) -> LinearModel:
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(3)[1].spawn(1)[0])
    inner = assign_folds(problem.strata(y), n_inner, rng)
    rows = np.arange(y.shape[0])
    b = _engine.fold_basis(problem.X, rows, None, n_components=problem.pca, with_feature_map=True)
    fit = nested_cox_fold(b.F, b.s, b.G, y[:, 0], y[:, 1], inner, problem.lambdas, tol=problem.tol)
    fmap = b.feature_map if b.feature_map is not None else np.zeros((problem.X.shape[1], b.s.size))
    return LinearModel(
        kind="survival",
        penalty=float(problem.lambdas[fit.best]),
        mean_=b.mean,
        scale_=b.scale,
        coef_=fmap @ fit.coef,
        intercept_=0.0,
        feature_names_in_=feature_names,
    )
