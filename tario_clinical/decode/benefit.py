"""Treatment benefit in a two-arm trial: a cross-fitted linear decoder of benefit, not outcome.

The modified-covariate method (Tian, Alizadeh, Gentles & Tibshirani, JASA 2014): with the arm
coded ``T = +1`` (experimental) / ``-1`` (control) and standardised features ``z``, the working
model regresses the outcome on ``W = z T / 2`` alone (no main effects of ``z``) -- logistic for a
binary response, Cox for time to event. Under randomisation ``z' gamma`` estimates the ordering of
the treatment effect: the log odds ratio of response (binary) or minus the log hazard ratio (time
to event) of experimental vs control for a patient with features ``z``. Arms of unequal size are
weighted ``n / (2 n_arm)`` (Chen, Tian, Cai & Yu, Biometrics 2017). The L2 fit lies in the span of
the training rows, and because ``T^2 = 1`` the rows ``F T / 2`` of the fold basis keep
``(F T/2)^T (F T/2) = diag(s) / 4``: the logistic engine (:func:`engine.solve_path`) and the Cox
engine (:mod:`.cox_engine`) solve it unchanged. The penalty is chosen by inner CV (log-loss,
or the cross-validated partial likelihood) of the working model.

Cross-fitting: the benefit ``score`` of every patient comes from an outer-fold model that never
saw that patient's outcome (``n_repeats`` repeats of ``n_splits`` folds), standardised on the
fold's training patients; higher = more benefit from the experimental arm.

Honest evaluation, every metric the mean over repeats of a statistic of the pooled cross-fitted
scores, with intervals from the grouped jackknife of the *whole* cross-fitting (folds kept):

- ``c_for_benefit`` (van Klaveren et al., J Clin Epidemiol 2018): patients of the two arms are
  matched 1:1 on the rank of their benefit score (the larger arm at evenly spaced ranks); a
  pair's observed benefit is ``y_exp - y_ctrl`` (binary: -1/0/1; time to event: +1 when the
  control patient had the event first, -1 when the experimental one did, pairs whose order is
  censored are left out); C is the concordance of the pairs' mean predicted benefit with it;
- ``interaction_log_or_per_sd`` / ``interaction_log_hr_per_sd``: the arm x score interaction of
  a logistic / Cox model of the outcome on arm, score and arm x score;
- the treatment effect within the predicted-benefit groups (score above / below the cut-off:
  cross-fitted -- each fold's median of the *other* folds' scores -- or a pre-specified value on
  the score scale): response-rate difference (binary) or log HR (time to event) in the ``high``
  and ``low`` group, and their difference (the arm x benefit-group interaction).

``tables["effect_curve"]`` is the treatment effect as a function of the benefit score (the
interaction model on the per-patient mean score, model-based 95 % band); ``tables
["benefit_groups"]`` the response rates / HRs per group and arm of the mean score.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import AnalysisError, CohortError, SchemaError
from ..survival import kernels
from . import engine as _engine
from .cox_engine import nested_cox_fold
from .cross_validation import default_Cs
from .decode_data import log_exclusions
from .endpoint_data import (
    categorical_labels,
    outcome_exclusions,
    patient_data,
    survival_outcome,
)
from .endpoint_inference import (
    FoldPredictions,
    MetricSpec,
    fit_and_infer,
    renumber_inner,
)
from .endpoint_result import EndpointResult, LinearModel
from .inference import weighted_auroc
from .splitters import assign_folds
from .survival_decoder import default_lambdas

__all__ = ["decode_benefit", "c_for_benefit", "benefit_metrics"]

logger = logging.getLogger(__name__)


# ------------------------------------------------------------------------------ metrics
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


def _interaction_model(
    score: np.ndarray, a: np.ndarray, y: np.ndarray, e: np.ndarray, survival: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Coefficients (arm, score, arm x score) and covariance of the interaction model."""
    if survival:
        return _cox(np.column_stack([a, score, a * score]), y, e)
    beta, cov = _logistic(np.column_stack([np.ones(a.size), a, score, a * score]), y)
    return beta[1:], cov[1:, 1:]


def _group_effect(
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
    beta, _ = _interaction_model(score, a, y, e, survival)
    out[1] = beta[2]
    out[2] = _group_effect(a[high], y[high], e[high], survival)[0]
    out[3] = _group_effect(a[~high], y[~high], e[~high], survival)[0]
    out[4] = out[2] - out[3]
    return out


def _specs(survival: bool) -> tuple[MetricSpec, ...]:
    if survival:
        return (
            MetricSpec("c_for_benefit", "logit", 0.5),
            MetricSpec("interaction_log_hr_per_sd", "identity", 0.0, "less"),
            MetricSpec("log_hr_high_benefit", "identity", None),
            MetricSpec("log_hr_low_benefit", "identity", None),
            MetricSpec("log_hr_difference_high_vs_low", "identity", 0.0, "less"),
        )
    return (
        MetricSpec("c_for_benefit", "logit", 0.5),
        MetricSpec("interaction_log_or_per_sd", "identity", 0.0, "greater"),
        MetricSpec("response_difference_high_benefit", "identity", None),
        MetricSpec("response_difference_low_benefit", "identity", None),
        MetricSpec("response_difference_high_vs_low", "identity", 0.0, "greater"),
    )


def _high_groups(score: np.ndarray, fold: np.ndarray, cutoff: float | str) -> np.ndarray:
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


# ------------------------------------------------------------------------------ problem
@dataclass
class _BenefitProblem:
    """Label-free state of the cross-fitted modified-covariate decoder.

    ``y`` is ``(n, 3)``: outcome (response or time), event (1 for a response), arm (1/0).
    """

    X: np.ndarray
    penalties: np.ndarray
    survival: bool
    cutoff: float | str = "median"
    pca: int | None = None

    @property
    def metrics(self) -> tuple[MetricSpec, ...]:
        """See :func:`benefit_metrics`."""
        return _specs(self.survival)

    def strata(self, y: np.ndarray) -> np.ndarray:
        """Arm and outcome (response, or event)."""
        return np.column_stack([y[:, 2], y[:, 1] if self.survival else y[:, 0]]).astype(float)

    def cross_validate(
        self, rows: np.ndarray, y: np.ndarray, outer: np.ndarray, inner: list[np.ndarray]
    ) -> FoldPredictions:
        """Cross-fitted benefit scores: predictions ``score, raw benefit``."""
        R = outer.shape[0]
        nK = len(inner) // R
        pred = np.full((R, rows.size, 2), np.nan)
        info = []
        for i in range(R * nK):
            r, k = divmod(i, nK)
            train = np.flatnonzero(outer[r] != k)
            test = np.flatnonzero(outer[r] == k)
            if test.size == 0:
                continue
            inn = renumber_inner(inner[i][train])
            pen, tr_raw, te_raw = self.fit_fold(rows[train], rows[test], y[train], inn)
            sd = tr_raw.std()
            pred[r, test, 0] = (te_raw - tr_raw.mean()) / (sd if sd > 0 else 1.0)
            pred[r, test, 1] = te_raw
            info.append(
                {"repeat": r, "fold": k, "penalty": pen, "n_train": train.size, "n_test": test.size}
            )
        return FoldPredictions(pred=pred, fold=outer.copy(), penalty=info)

    def fit_fold(
        self, train: np.ndarray, test: np.ndarray, y: np.ndarray, inner: np.ndarray
    ) -> tuple[float, np.ndarray, np.ndarray]:
        """Penalty and raw benefit (training, test rows) of one outer fold."""
        b = _engine.fold_basis(self.X, train, test, n_components=self.pca)
        arm = y[:, 2]
        tsign = np.where(arm > 0, 1.0, -1.0)
        n1 = arm.sum()
        w = np.where(arm > 0, arm.size / (2 * max(n1, 1)), arm.size / (2 * max(arm.size - n1, 1)))
        Ft = b.F * (tsign / 2.0)[:, None]
        if self.survival:
            fit = nested_cox_fold(
                Ft, b.s / 4.0, b.G[:0], y[:, 0], y[:, 1], inner, self.penalties, weights=w
            )
            v, pen = -fit.coef, float(self.penalties[fit.best])
        else:
            v, pen = _modified_logistic(Ft, b.s / 4.0, y[:, 0], w, inner, self.penalties)
        return pen, b.F @ v, b.G @ v

    def statistics(self, y: np.ndarray, cv: FoldPredictions) -> np.ndarray:
        """Mean over repeats of :func:`benefit_metrics`."""
        per = []
        for r in range(cv.pred.shape[0]):
            s = cv.pred[r, :, 0]
            high = _high_groups(s, cv.fold[r], self.cutoff)
            per.append(benefit_metrics(s, high, y[:, 2], y[:, 0], y[:, 1], self.survival))
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmean(np.array(per), axis=0)


def _modified_logistic(
    Ft: np.ndarray, st: np.ndarray, y: np.ndarray, w: np.ndarray, inner: np.ndarray, Cs: np.ndarray
) -> tuple[np.ndarray, float]:
    """L2 logistic of the response on ``F T / 2`` with arm weights; C by inner log-loss."""
    n = y.size
    k = int(inner.max()) + 1
    L = Cs.size
    A = np.empty((n, (k + 1) * L))
    for m in range(k):
        A[:, m * L : (m + 1) * L] = (w * (inner != m))[:, None]
    A[:, k * L :] = w[:, None]
    Y = np.repeat(y[:, None], (k + 1) * L, axis=1)
    _, _, f, _ = _engine.solve_path(Ft, Y, A, np.tile(Cs, k + 1), st)
    loss = np.zeros(L)
    for m in range(k):
        val = inner == m
        fv = f[val, m * L : (m + 1) * L]
        loss += np.sum(w[val, None] * (np.logaddexp(0.0, fv) - y[val, None] * fv), axis=0) / max(
            w[val].sum(), 1e-300
        )
    best = int(np.argmin(loss))
    V, _, _, _ = _engine.solve_path(Ft, y[:, None], w[:, None], np.array([Cs[best]]), st)
    return V[:, 0], float(Cs[best])


# ------------------------------------------------------------------------------ API
def decode_benefit(
    representations: Any,
    cohort: Any,
    *,
    arm: str = "arm",
    experimental: Any = None,
    response: str | None = None,
    time: str | None = None,
    event: str | None = None,
    target: str | None = None,
    cutoff: float | Literal["median"] = "median",
    penalties: Any = None,
    n_penalties: int = 10,
    cv: Any = None,
    n_splits: int = 5,
    n_repeats: int = 5,
    n_inner_splits: int = 5,
    pca: int | None = None,
    ci_method: Literal["jackknife", "jackknife2", "bootstrap", "oof"] = "jackknife",
    p_method: Literal["jackknife", "oof"] = "jackknife",
    level: float = 0.95,
    n_jackknife: int = 10,
    n_bootstrap: int = 200,
    n_jobs: int | None = 1,
    progress: bool | None = None,
    seed: int = 0,
) -> EndpointResult:
    """Cross-fitted decoder of treatment benefit (modified-covariate method) and its evaluation.

    Parameters
    ----------
    representations : AnnData or DataFrame
        Patients or slides (``obs["patient_id"]``) x features; slides of a patient are averaged.
    cohort : Cohort or DataFrame
        Clinical table of a two-arm trial.
    arm : str, default "arm"
        Column with exactly two arms.
    experimental : optional
        The experimental arm's value (default: the arm not called control / placebo /
        standard, else the second in sorted order).
    response : str, optional
        Binary response column (1 = response, the good outcome). Give either ``response`` or
        ``time`` and ``event``.
    time, event : str, optional
        Time-to-event columns (event 1, censored 0).
    target : str, optional
        Name in the results (default ``benefit:<response or time>``).
    cutoff : "median" or float, default "median"
        Benefit groups: ``"median"`` cross-fitted (each fold's patients cut at the median of
        the other folds' scores), or a pre-specified value on the score scale (standardised on
        each fold's training patients: 0 is their mean).
    penalties : array-like, optional
        C path (binary; larger = weaker) or Cox penalty path (time to event); defaults scale
        with the data as the decoders' (:func:`~tario_clinical.decode.default_Cs`,
        :func:`~tario_clinical.decode.survival_decoder.default_lambdas`).
    n_penalties : int, default 10
    cv, n_splits, n_repeats, n_inner_splits, pca
        As in :func:`tario_clinical.decode`; folds are stratified on arm x outcome.
    ci_method : {"jackknife", "jackknife2", "bootstrap", "oof"}, default "jackknife"
        ``oof``: model-based intervals that treat the cross-fitted scores as fixed.
    p_method : {"jackknife", "oof"}, default "jackknife"
        Jackknife Wald tests (one-sided, in the direction of benefit) of C-for-benefit > 0.5,
        of the continuous interaction and of the group interaction. No permutation test:
        permuting outcomes or arms does not give the null of "no heterogeneity" when the
        treatment has an average effect.
    level : float, default 0.95
    n_jackknife, n_bootstrap, n_jobs, progress, seed
        As in :func:`tario_clinical.decode`.

    Returns
    -------
    EndpointResult
        Kind ``benefit``; OOF columns ``patient_id, target, repeat, fold, score, benefit,
        high_benefit, arm`` and the outcome; ``tables["effect_curve"]``,
        ``tables["benefit_groups"]``, ``tables["interaction_model"]``.

    Raises
    ------
    SchemaError, CohortError
        Neither or both outcome kinds, missing columns, not two arms.
    AnalysisError
        Fewer than 20 patients per arm or fewer than 10 events/responses.
    """
    survival = response is None
    if survival == (time is None or event is None):
        raise SchemaError(
            "decode_benefit needs either response=<binary column> or time=... and event=...; "
            f"got response={response!r}, time={time!r}, event={event!r}."
        )
    if isinstance(cutoff, str) and cutoff != "median":
        raise SchemaError(f"cutoff must be 'median' or a number; got {cutoff!r}.")
    if p_method not in ("jackknife", "oof"):
        raise SchemaError(f"p_method must be one of ['jackknife', 'oof']; got {p_method!r}.")
    outcome_name = time if survival else response
    name = target or f"benefit:{outcome_name}"
    data = patient_data(representations, cohort)
    if arm not in data.clinical.columns:
        raise CohortError(f"arm column {arm!r} is not in the clinical table.")
    arm_codes, levels = categorical_labels(data.clinical[arm], arm)
    if len(levels) != 2:
        raise AnalysisError(f"column {arm!r} must hold exactly two arms; found {levels}.")
    if experimental is None:
        ctrl = next(
            (lv for lv in levels if lv.lower() in ("control", "placebo", "standard")), levels[0]
        )
        exp_level = levels[1] if ctrl == levels[0] else levels[0]
    else:
        exp_level = str(experimental)
        if exp_level not in levels:
            raise SchemaError(f"experimental={experimental!r} is not an arm of {arm!r}: {levels}.")
        ctrl = levels[1] if exp_level == levels[0] else levels[0]
    a = np.where(
        np.isfinite(arm_codes), (arm_codes == levels.index(exp_level)).astype(float), np.nan
    )
    if survival:
        tt, ee, miss = survival_outcome(data.clinical, time, event)  # type: ignore[arg-type]
    else:
        from ..cohort import normalise_binary

        if response not in data.clinical.columns:
            raise CohortError(f"response column {response!r} is not in the clinical table.")
        tt = normalise_binary(data.clinical[response], column=str(response)).to_numpy(float)
        ee = np.ones(tt.size)
        miss = ~np.isfinite(tt)
    miss = miss | ~np.isfinite(a)
    excl = outcome_exclusions(data, name, miss, f"missing {arm} or {outcome_name}")
    log_exclusions(excl, logger)
    idx = np.flatnonzero(~miss)
    y = np.column_stack([tt[idx], ee[idx], a[idx]])
    n_arm = int(y[:, 2].sum()), int((1 - y[:, 2]).sum())
    n_out = int(y[:, 1].sum() if survival else y[:, 0].sum())
    if min(n_arm) < 20 or n_out < 10:
        raise AnalysisError(
            f"{name}: {n_arm[0]} experimental / {n_arm[1]} control patients and {n_out} "
            f"{'events' if survival else 'responses'}; need >= 20 per arm and >= 10."
        )
    X = data.X[idx]
    if penalties is not None:
        pen = np.sort(np.asarray(penalties, float))
    elif survival:
        pen = default_lambdas(n_penalties, idx.size, X.shape[1], n_out) / 4.0
    else:
        pen = default_Cs(n_penalties, idx.size, X.shape[1]) * 4.0
    problem = _BenefitProblem(X=X, penalties=pen, survival=survival, cutoff=cutoff, pca=pca)
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
            group_by=None,
            seed=seed,
        ),
        inference_kw=dict(
            ci_method=ci_method,
            p_method=p_method,
            level=level,
            n_jackknife=n_jackknife,
            n_bootstrap=n_bootstrap,
            n_permutations=0,
            seed=seed,
            n_jobs=n_jobs,
            progress=progress,
            allowed_p=("jackknife", "oof"),
        ),
        final_model=lambda: _final_model(problem, y, data.feature_names, n_inner_splits, seed),
        oof_inference=lambda run: _oof_formulas(
            np.nanmean(run.pred[:, :, 0], axis=0), run, y, survival, cutoff, level
        ),
    )
    design, run, final, table, reps = fit.design, fit.run, fit.final, fit.table, fit.reps
    mean_score = np.nanmean(run.pred[:, :, 0], axis=0)
    tables = _tables(mean_score, y, survival, level, run, cutoff)
    pids = data.patient_ids[idx]
    oof = _oof_table(name, pids, y, run, cutoff, survival, outcome_name, event)
    effect = "log HR (experimental vs control)" if survival else "response-rate difference"
    metric_notes = {
        "c_for_benefit": "pairs matched on benefit-score rank"
        + ("; pairs with censored order left out" if survival else ""),
        _specs(survival)[2].name: f"{effect} in the high-benefit group",
        _specs(survival)[3].name: f"{effect} in the low-benefit group",
        _specs(survival)[4].name: "arm x benefit-group interaction (high minus low)",
    }
    params = {
        "cv": design.description,
        "n_splits": design.plan.n_splits,
        "n_repeats": int(design.plan.outer.shape[0]),
        "n_inner_splits": n_inner_splits,
        "method": "modified covariate (Tian et al. 2014), arm-balanced weights",
        "outcome": "time to event" if survival else "binary response",
        "arm": arm,
        "experimental": exp_level,
        "control": ctrl,
        "response": response,
        "time": time,
        "event": event,
        "cutoff": cutoff if isinstance(cutoff, str) else float(cutoff),
        "cutoff_rule": "cross-fitted median of the other folds' scores"
        if isinstance(cutoff, str)
        else "pre-specified value on the fold-standardised score",
        "penalties": pen.tolist(),
        "penalty_kind": "Cox lambda" if survival else "logistic C",
        "pca": pca,
        "ci_method": ci_method,
        "p_method": p_method,
        "level": level,
        "n_jackknife": n_jackknife if "jackknife" in (ci_method, p_method) else None,
        "n_bootstrap": n_bootstrap if ci_method == "bootstrap" else None,
        "seed": seed,
        "n_patients": int(idx.size),
        "n_experimental": n_arm[0],
        "n_control": n_arm[1],
        "n_features": int(X.shape[1]),
    }
    return EndpointResult(
        target=name,
        kind="benefit",
        metrics=table,
        oof=oof,
        folds=pd.DataFrame(run.penalty).assign(target=name)[
            ["target", "repeat", "fold", "penalty", "n_train", "n_test"]
        ],
        exclusions=excl,
        params=params,
        tables=tables,
        resamples=reps,
        final_model=final,
        notes=(
            "benefit score: higher = more benefit from "
            f"{exp_level!r} over {ctrl!r}; every patient's score is cross-fitted",
        ),
        metric_notes=metric_notes,
    )


def _tables(
    s: np.ndarray, y: np.ndarray, survival: bool, level: float, run: FoldPredictions, cutoff: Any
) -> dict[str, pd.DataFrame]:
    a, out, e = y[:, 2], y[:, 0], y[:, 1]
    beta, cov = _interaction_model(s, a, out, e, survival)
    z = stats.norm.ppf(0.5 + level / 2)
    grid = np.quantile(s, np.linspace(0.05, 0.95, 19))
    est = beta[0] + beta[2] * grid
    se = np.sqrt(np.maximum(cov[0, 0] + grid**2 * cov[2, 2] + 2 * grid * cov[0, 2], 0.0))
    curve = pd.DataFrame(
        {
            "score": grid,
            "effect": "log HR (experimental vs control)"
            if survival
            else "log OR (experimental vs control)",
            "estimate": est,
            "low": est - z * se,
            "high": est + z * se,
            "ci_method": "interaction model on the mean cross-fitted score (score treated as fixed)",
        }
    )
    names = ["arm", "score", "arm x score"]
    ses = np.sqrt(np.diag(cov))
    model = pd.DataFrame(
        {
            "term": names,
            "coef": beta,
            "se": ses,
            "p_value": 2 * stats.norm.sf(np.abs(beta / ses)),
        }
    )
    high = _high_groups(s, run.fold[0], cutoff)
    rows = []
    for g, sel in (("high", high), ("low", ~high)):
        for arm_v, arm_name in ((1.0, "experimental"), (0.0, "control")):
            m = sel & (a == arm_v)
            row: dict[str, Any] = {"group": g, "arm": arm_name, "n": int(m.sum())}
            if survival:
                row["events"] = int(e[m].sum())
            else:
                row["response_rate"] = float(out[m].mean()) if m.any() else np.nan
            rows.append(row)
        eff, se_g = _group_effect(a[sel], out[sel], e[sel], survival)
        rows.append(
            {
                "group": g,
                "arm": "effect",
                "n": int(sel.sum()),
                "estimate": eff,
                "low": eff - z * se_g,
                "high": eff + z * se_g,
            }
        )
    groups = pd.DataFrame(rows)
    groups.attrs["note"] = "groups of the mean cross-fitted score, first repeat's folds"
    return {"effect_curve": curve, "interaction_model": model, "benefit_groups": groups}


def _oof_formulas(
    s: np.ndarray, run: FoldPredictions, y: np.ndarray, survival: bool, cutoff: Any, level: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Model-based SEs on the mean cross-fitted score (treats the scores as fixed)."""
    se, low, high, p = (np.full(5, np.nan) for _ in range(4))
    z = stats.norm.ppf(0.5 + level / 2)
    a, out, e = y[:, 2], y[:, 0], y[:, 1]
    beta, cov = _interaction_model(s, a, out, e, survival)
    hi = _high_groups(s, run.fold[0], cutoff)
    vals = [(beta[2], np.sqrt(cov[2, 2]))]
    vals += [_group_effect(a[m], out[m], e[m], survival) for m in (hi, ~hi)]
    vals.append((vals[1][0] - vals[2][0], np.hypot(vals[1][1], vals[2][1])))
    for j, (est, s_) in enumerate(vals, start=1):
        se[j], low[j], high[j] = s_, est - z * s_, est + z * s_
    sign = -1.0 if survival else 1.0
    p[1] = stats.norm.sf(sign * vals[0][0] / vals[0][1])
    p[4] = stats.norm.sf(sign * vals[3][0] / vals[3][1])
    return se, low, high, p


def _oof_table(
    name: str,
    pids: np.ndarray,
    y: np.ndarray,
    run: FoldPredictions,
    cutoff: Any,
    survival: bool,
    outcome: str | None,
    event: str | None,
) -> pd.DataFrame:
    parts = []
    for r in range(run.pred.shape[0]):
        d = pd.DataFrame(
            {
                "patient_id": pids,
                "target": name,
                "repeat": r,
                "fold": run.fold[r],
                "score": run.pred[r, :, 0],
                "benefit": run.pred[r, :, 1],
                "high_benefit": _high_groups(run.pred[r, :, 0], run.fold[r], cutoff),
                "arm": np.where(y[:, 2] > 0, "experimental", "control"),
            }
        )
        if survival:
            d["time"], d["event"] = y[:, 0], y[:, 1].astype(int)
        else:
            d["y_true"] = y[:, 0].astype(int)
        parts.append(d)
    return (
        pd.concat(parts, ignore_index=True)
        .sort_values(["repeat", "patient_id"], kind="mergesort")
        .reset_index(drop=True)
    )


def _final_model(
    problem: _BenefitProblem, y: np.ndarray, feature_names: np.ndarray, n_inner: int, seed: int
) -> LinearModel:
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(3)[1].spawn(1)[0])
    inner = assign_folds(problem.strata(y), n_inner, rng)
    rows = np.arange(y.shape[0])
    b = _engine.fold_basis(problem.X, rows, None, n_components=problem.pca, with_feature_map=True)
    arm = y[:, 2]
    tsign = np.where(arm > 0, 1.0, -1.0)
    n1 = arm.sum()
    w = np.where(arm > 0, arm.size / (2 * n1), arm.size / (2 * (arm.size - n1)))
    Ft = b.F * (tsign / 2.0)[:, None]
    if problem.survival:
        fit = nested_cox_fold(
            Ft, b.s / 4.0, b.G[:0], y[:, 0], y[:, 1], inner, problem.penalties, weights=w
        )
        v, pen = -fit.coef, float(problem.penalties[fit.best])
    else:
        v, pen = _modified_logistic(Ft, b.s / 4.0, y[:, 0], w, inner, problem.penalties)
    fmap = b.feature_map if b.feature_map is not None else np.zeros((problem.X.shape[1], b.s.size))
    return LinearModel(
        kind="benefit",
        penalty=pen,
        mean_=b.mean,
        scale_=b.scale,
        coef_=fmap @ v,
        intercept_=0.0,
        feature_names_in_=feature_names,
    )
