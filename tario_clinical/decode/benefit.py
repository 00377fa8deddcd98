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
scores (intervals: see below):

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

Tests of "no benefit" (one-sided, in the direction of benefit; ``p_method="permutation"``, the
default): a randomisation test. The arm is re-randomised among the patients (within the
randomisation ``strata`` when given), representation and outcome kept, and the *whole*
cross-fitting, fold assignment included, is re-run on each of ``B`` such cohorts;
``p = (1 + #{T_b >= T}) / (1 + B)``. It is exact when the treatment has no effect on anyone;
with an overall treatment effect and no benefit the permuted cohorts lose the overall effect,
which the interaction statistics adjust for (the arm is in every interaction model), and the
study ``benchmarks/validation/benefit_test`` measured its size there. The jackknife Wald
tests (``p_method="jackknife"``) are conservative under that null: the cross-fitted statistics
are degenerate there (first-order terms vanish) and the delete-a-group jackknife over-counts
their pairwise terms.

Intervals (``ci_method="randomisation"``, the default): the three benefit statistics take their
SE from the same ``B`` re-randomised re-runs, ``g^-1(g(T) -/+ t_{B-1} sd_b)`` (logit scale for
C). Re-randomising the arm keeps what makes these statistics vary -- which patients carry which
outcome and representation, and the learning noise of a score fitted on a few hundred of them --
and in the committed study (``benchmarks/validation/benefit_test``) the variance of the re-runs
was 0.68-1.27 times the statistics' sampling variance in every cell, with and without planted
benefit, so the interval covered its estimand 0.949 pooled (0.917-0.971 per cell and
statistic; the low end: the logistic interaction at the strongest binary benefit) where the
grouped jackknife covered 0.989 (0.963-1.000). The within-group treatment effects
(first-order statistics) keep the grouped jackknife of the whole cross-fitting (folds kept),
which covered them 0.967 pooled (0.933-0.995).

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
from . import engine as _engine
from .benefit_metrics import (
    benefit_metrics,
    c_for_benefit,
    group_effect,
    high_groups,
    interaction_model,
    metric_specs,
)
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
    permute_within,
    renumber_inner,
)
from .endpoint_result import EndpointResult, LinearModel
from .splitters import assign_folds
from .survival_decoder import default_lambdas

__all__ = ["decode_benefit", "c_for_benefit", "benefit_metrics"]

_P_METHODS = ("permutation", "jackknife", "oof")

logger = logging.getLogger(__name__)


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
    permutation: str = "arm"
    blocks: np.ndarray | None = None

    @property
    def permutation_label(self) -> str:
        """How a permutation draw was made (the ``p_method`` text)."""
        within = " within randomisation strata" if self.blocks is not None else ""
        if self.permutation == "rows":
            return f"(arm, outcome) rows permuted against the representation{within}"
        return f"arm re-randomised{within}"

    def permute(self, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One permutation draw: the arm re-randomised within the randomisation strata
        (``"arm"``), or the (outcome, arm) rows permuted against the representation
        (``"rows"``)."""
        n = y.shape[0]
        codes = np.zeros(n, dtype=np.int64) if self.blocks is None else self.blocks
        perm = permute_within([np.flatnonzero(codes == b) for b in np.unique(codes)], n, rng)
        if self.permutation == "rows":
            return y[perm]
        out = y.copy()
        out[:, 2] = y[perm, 2]
        return out

    @property
    def metrics(self) -> tuple[MetricSpec, ...]:
        """See :func:`benefit_metrics`."""
        return metric_specs(self.survival)

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
            high = high_groups(s, cv.fold[r], self.cutoff)
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
    ci_method: Literal["randomisation", "jackknife", "jackknife2", "bootstrap", "oof"] = (
        "randomisation"
    ),
    p_method: Literal["permutation", "jackknife", "oof"] = "permutation",
    permutation: Literal["arm", "rows"] = "arm",
    strata: str | list[str] | None = None,
    level: float = 0.95,
    n_permutations: int = 99,
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
    ci_method : {"randomisation", "jackknife", "jackknife2", "bootstrap", "oof"}, default "randomisation"
        ``randomisation``: the three benefit statistics (C-for-benefit, the continuous and
        the group interaction) take their SE from the ``n_permutations`` re-runs of the test
        below (``g^-1(g(T) -/+ t_{B-1} sd)``, logit scale for C): re-randomising the arm keeps
        the representation, the outcome and the learning noise of the cross-fitted score, and
        the spread of those re-runs measured the statistics' sampling spread within 0.68-1.27
        (variance ratio) in every cell of ``benchmarks/validation/benefit_test``, covering
        0.949 pooled (0.917-0.971 per cell); the within-group treatment effects take the
        grouped jackknife interval. ``jackknife``: the grouped jackknife for every metric
        (valid but conservative for the benefit statistics, 0.989 pooled: they are nearly
        degenerate and it over-counts their pairwise terms). ``oof``: model-based intervals
        that treat the cross-fitted scores as fixed (anti-conservative).
    p_method : {"permutation", "jackknife", "oof"}, default "permutation"
        One-sided tests (in the direction of benefit) of C-for-benefit > 0.5, of the continuous
        interaction and of the group interaction. ``permutation``: the whole cross-fitting,
        fold assignment included, is re-run on ``n_permutations`` cohorts with the arm
        re-randomised (``p = (1 + #{T_b >= T}) / (1 + B)``); exact when the treatment has no
        effect on anyone, and with an overall treatment effect but no benefit it held its size
        in the committed study (``benchmarks/validation/benefit_test``). ``jackknife``: Wald
        tests with the jackknife SE (conservative under "no benefit": the cross-fitted
        statistics are degenerate there). ``oof``: model-based tests that treat the scores
        as fixed (anti-conservative; for comparison).
    permutation : {"arm", "rows"}, default "arm"
        What a permutation draw re-randomises: the arm (representation and outcome kept), or
        the (arm, outcome) rows against the representation (exact only when the
        representation carries no prognosis either; for comparison).
    strata : str or list of str, optional
        Randomisation strata columns: the arm is permuted within their combinations, as the
        trial randomised. Patients with a missing stratum are excluded (logged).
    level : float, default 0.95
    n_permutations : int, default 99
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
    if p_method not in _P_METHODS:
        raise SchemaError(f"p_method must be one of {list(_P_METHODS)}; got {p_method!r}.")
    if permutation not in ("arm", "rows"):
        raise SchemaError(f"permutation must be 'arm' or 'rows'; got {permutation!r}.")
    strata_cols = [strata] if isinstance(strata, str) else list(strata or [])
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
    reason = f"missing {arm} or {outcome_name}"
    for col in strata_cols:
        if col not in data.clinical.columns:
            raise CohortError(f"strata column {col!r} is not in the clinical table.")
        miss = miss | data.clinical[col].isna().to_numpy()
        reason = f"missing {arm}, {outcome_name} or a stratum ({', '.join(strata_cols)})"
    excl = outcome_exclusions(data, name, miss, reason)
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
    blocks = None
    if strata_cols:
        keys = data.clinical.iloc[idx][strata_cols].astype(str).agg("\x1f".join, axis=1)
        blocks = pd.factorize(keys)[0].astype(np.int64)
    problem = _BenefitProblem(
        X=X,
        penalties=pen,
        survival=survival,
        cutoff=cutoff,
        pca=pca,
        permutation=permutation,
        blocks=blocks,
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
            group_by=None,
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
            allowed_p=_P_METHODS,
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
        metric_specs(survival)[2].name: f"{effect} in the high-benefit group",
        metric_specs(survival)[3].name: f"{effect} in the low-benefit group",
        metric_specs(survival)[4].name: "arm x benefit-group interaction (high minus low)",
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
        # the re-runs the inference made (endpoint_inference decides which it needs)
        "permutation": permutation if "permutation" in reps else None,
        "strata": strata_cols or None,
        "n_permutations": n_permutations if "permutation" in reps else None,
        "level": level,
        "n_jackknife": n_jackknife if "jackknife" in reps else None,
        "n_bootstrap": n_bootstrap if "bootstrap" in reps else None,
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
    beta, cov = interaction_model(s, a, out, e, survival)
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
    high = high_groups(s, run.fold[0], cutoff)
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
        eff, se_g = group_effect(a[sel], out[sel], e[sel], survival)
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
    beta, cov = interaction_model(s, a, out, e, survival)
    hi = high_groups(s, run.fold[0], cutoff)
    vals = [(beta[2], np.sqrt(cov[2, 2]))]
    vals += [group_effect(a[m], out[m], e[m], survival) for m in (hi, ~hi)]
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
                "high_benefit": high_groups(run.pred[r, :, 0], run.fold[r], cutoff),
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
