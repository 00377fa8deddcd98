"""Inference for the decoders of every endpoint: re-running the *whole* nested CV.

The binary decoder's rules (:mod:`tario_clinical.decode.inference`) hold for every endpoint:
out-of-fold (OOF) predictions are not independent (patient *i*'s prediction depends on patient
*j*'s outcome through the model trained on *j*), so intervals and tests that treat them as
independent are anti-conservative. Here each endpoint (categorical, continuous, time to event,
treatment benefit) supplies two functions -- ``cross_validate`` (the complete nested procedure on
given patients, folds given) and ``statistics`` (its metrics from those OOF predictions, each the
mean over repeats of the metric of the pooled OOF predictions) -- and this module re-runs them:

``ci_method="jackknife"`` (default, the house method)
    Patients are split into ``G`` groups (stratified on the endpoint's strata, seeded); the
    nested CV is re-run ``G`` times, each without one group and with every remaining patient's
    outer and inner fold unchanged. The delete-a-group jackknife variance
    ``(G - 1) / G * sum (g(T_(g)) - mean)^2`` is formed on each metric's scale ``g`` (logit for
    AUROC, C and balanced accuracy; Fisher's z for correlations; ``-log(1 - R^2)`` for R^2; log
    for ratios; identity for slopes and log hazard ratios) and the interval is
    ``g^-1(g(T) -/+ t_{G-1} se)``.
``ci_method="bootstrap"``
    Patients are resampled with replacement (stratified on the strata); copies of a patient stay
    in one fold; the whole procedure, fold assignment included, is re-run on each resample; the
    standard deviation of ``g`` over the ``B`` replicates gives ``g^-1(g(T) -/+ z se)``.
``ci_method="randomisation"`` (the benefit decoder's default)
    For the metrics whose sampling variance the problem's own permutation reproduces
    (``MetricSpec.randomisation_se``: the benefit statistics, whose arm re-randomisation keeps
    the representation, the outcome and the learning noise of the cross-fitted score), the SD
    of ``g`` over the ``B`` permutation re-runs is the SE: ``g^-1(g(T) -/+ t_{B-1} se)``. The
    other metrics get the grouped jackknife interval. Measured in
    ``benchmarks/validation/benefit_test`` (the jackknife is conservative there: the
    statistics are nearly degenerate and it over-counts their pairwise terms).
``ci_method="oof"``
    Textbook formulas on the OOF predictions (Fisher's z for a correlation, DeLong for an AUROC,
    the influence-function SE of a concordance ...): they treat the OOF predictions as
    independent and are kept by name for comparison only (anti-conservative).

``p_method="permutation"`` permutes the outcome at the patient level (within ``group_by``
groups) and re-runs the whole procedure including a new fold assignment;
``p = (1 + #{T_b >= T}) / (1 + B)`` for metrics with a "no signal" value, one-sided in the
direction of signal (exact under the null that representations and outcome are independent).
With the permutation test, the metrics whose "no signal" value is exact under independence
(AUROC, C, correlations, balanced accuracy: ``MetricSpec.exact_null``) get intervals whose
inclusion of that value is decided by the exact two-sided permutation test of ``|T - null|``
(columns ``p_chance``, ``excludes_chance``; the binary decoder's rule, see
:func:`tario_clinical.decode.intervals.chance_coherent`): cut at the null value where it
rejects at ``1 - level``, widened to reach it where it does not.
``p_method="jackknife"`` is the Wald test of the "no signal" value on the metric's scale with the
jackknife SE and ``t_{G-1}`` (approximate). ``p_method="oof"`` uses the OOF formulas
(anti-conservative). Metrics without a "no signal" value (calibration slopes ...) get no p-value.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import AnalysisError, CohortError, SchemaError
from .inference import CVPlan, make_plan, run_replicates
from .intervals import chance_coherent, chance_pvalue, jackknife2_variance, jackknife_items
from .splitters import LeaveOneGroupOut, PatientStratifiedGroupKFold, assign_folds

__all__ = [
    "MetricSpec",
    "EndpointProblem",
    "FoldPredictions",
    "CVDesign",
    "cv_design",
    "endpoint_inference",
    "EndpointFit",
    "fit_and_infer",
    "cross_validate_plan",
    "renumber_inner",
    "permute_within",
    "blas_threads",
    "CI_METHODS",
    "P_METHODS",
    "transform",
    "inverse_transform",
]

logger = logging.getLogger(__name__)

CI_METHODS = ("jackknife", "jackknife2", "bootstrap", "randomisation", "oof")
P_METHODS = ("permutation", "jackknife", "oof")
Scale = Literal["logit", "fisher", "log", "r2", "identity"]


@dataclass(frozen=True)
class MetricSpec:
    """One reported metric of an endpoint.

    Attributes
    ----------
    name : str
        Name in the ``metric`` column of the summary.
    scale : {"logit", "fisher", "log", "r2", "identity"}
        Scale of the jackknife/bootstrap interval (``r2``: ``-log(1 - R^2)``).
    null : float or None
        Value of "no signal" (AUROC 0.5, correlation 0 ...); None: no p-value.
    direction : {"greater", "less"}
        Direction of signal for the one-sided tests.
    exact_null : bool
        The metric of *any* fixed predictor equals ``null`` when the outcome is independent of
        the representation (AUROC and C 0.5, correlations 0, balanced accuracy 1/K; not R^2,
        which is negative there). Then, with the permutation test, the exact two-sided test of
        ``|T - null|`` decides whether the interval contains ``null``
        (:func:`~tario_clinical.decode.intervals.chance_coherent`).
    randomisation_se : bool
        The problem's permutation (``EndpointProblem.permute``) reproduces the metric's
        sampling variance, not just its null distribution, so ``ci_method="randomisation"``
        takes its SE from the permutation re-runs (the benefit statistics; measured).
    """

    name: str
    scale: Scale = "identity"
    null: float | None = None
    direction: Literal["greater", "less"] = "greater"
    exact_null: bool = False
    randomisation_se: bool = False


@dataclass
class FoldPredictions:
    """Out-of-fold predictions of one nested-CV run on ``n`` rows (patients or copies of them).

    Attributes
    ----------
    pred : (R, n, m) float
        Prediction of every row in every repeat (``m`` columns: class probabilities, a score
        and a raw linear predictor ...); NaN where a row was in no test fold.
    fold : (R, n) int
        Outer fold of every row in every repeat.
    penalty : list of dict
        ``repeat, fold, penalty, n_train, n_test`` of every outer fold.
    extra : dict
        Endpoint-specific per-fold quantities (e.g. baseline hazards at a horizon).
    """

    pred: np.ndarray
    fold: np.ndarray
    penalty: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


class EndpointProblem(Protocol):
    """What an endpoint gives the inference driver (label-free state + two functions).

    ``y`` is the endpoint's outcome array with patients on the first axis (class codes,
    values, ``(time, event)`` pairs ...); ``rows`` index the patient-level representations
    ``X``; ``outer`` is ``(R, n_rows)`` and ``inner`` one ``(n_rows,)`` array per design
    ``(r, k)`` (repeat-major), ``-1`` for the design's test rows.
    """

    X: np.ndarray
    metrics: tuple[MetricSpec, ...]

    def strata(self, y: np.ndarray) -> np.ndarray:
        """``(n, k)`` 0/1 columns the folds are stratified on."""

    def cross_validate(
        self, rows: np.ndarray, y: np.ndarray, outer: np.ndarray, inner: list[np.ndarray]
    ) -> FoldPredictions:
        """The complete nested procedure on ``X[rows]`` with outcomes ``y`` (indexed by row)."""

    def statistics(self, y: np.ndarray, cv: FoldPredictions) -> np.ndarray:
        """``(M,)`` metrics (mean over repeats of the pooled OOF metric) in ``metrics`` order."""

    # optional: ``permute(y, rng) -> y`` draws the outcomes of one permutation (default: the
    # rows of ``y`` permuted at the patient level, within ``group_by`` groups)


# ------------------------------------------------------------------------------ scales
def transform(x: np.ndarray, scale: str) -> np.ndarray:
    """Map a metric to the scale of its interval (see :class:`MetricSpec`)."""
    x = np.asarray(x, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        if scale == "logit":
            p = np.clip(x, 1e-6, 1 - 1e-6)
            return np.log(p / (1 - p))
        if scale == "fisher":
            return np.arctanh(np.clip(x, -1 + 1e-9, 1 - 1e-9))
        if scale == "log":
            return np.log(np.maximum(x, 1e-300))
        if scale == "r2":
            return -np.log(np.maximum(1.0 - x, 1e-300))
    return x


def inverse_transform(g: np.ndarray, scale: str) -> np.ndarray:
    """Inverse of :func:`transform`."""
    g = np.asarray(g, dtype=float)
    with np.errstate(over="ignore"):
        if scale == "logit":
            return 1.0 / (1.0 + np.exp(-g))
        if scale == "fisher":
            return np.tanh(g)
        if scale == "log":
            return np.exp(g)
        if scale == "r2":
            return 1.0 - np.exp(-g)
    return g


# ------------------------------------------------------------------------------ CV design
@dataclass(frozen=True)
class CVDesign:
    """Outer/inner folds of one endpoint and how to redraw them."""

    plan: CVPlan
    plan_kw: dict[str, Any]
    description: str
    groups: np.ndarray | None


def cv_design(
    strata: np.ndarray,
    clinical: pd.DataFrame,
    *,
    cv: Any,
    n_splits: int,
    n_repeats: int,
    n_inner_splits: int,
    group_by: str | None,
    seed: int,
) -> CVDesign:
    """Patient-level outer and inner folds, drawn as :func:`tario_clinical.decode` draws them.

    Parameters
    ----------
    strata : (n_patients, k) 0/1 array
        Columns to stratify on (one-hot classes, quantile bins, event indicator ...).
    clinical : DataFrame
        Patient rows in the order of ``strata`` (for ``group_by``).
    cv, n_splits, n_repeats, n_inner_splits, group_by, seed
        As in :func:`tario_clinical.decode`.

    Returns
    -------
    CVDesign
    """
    user_seed = None
    if isinstance(cv, int) and not isinstance(cv, bool):
        n_splits, cv = cv, None
    groups = None
    if group_by is not None:
        if group_by not in clinical.columns:
            raise CohortError(
                f"group_by column {group_by!r} is not in the clinical table; available: "
                f"{list(clinical.columns)[:30]}"
            )
        grp = clinical[group_by]
        if grp.isna().any():
            miss = grp.index[grp.isna().to_numpy()][:5].tolist()
            raise CohortError(f"group_by column {group_by!r} is missing for patients {miss}.")
        groups = grp.astype(str).to_numpy()
        desc = f"leave-one-{group_by}-out"
        n_repeats = 1
    else:
        if cv is None:
            cv = PatientStratifiedGroupKFold(n_splits, n_repeats=n_repeats)
        elif isinstance(cv, PatientStratifiedGroupKFold):
            user_seed = cv.seed
        if isinstance(cv, LeaveOneGroupOut):
            raise SchemaError("pass group_by=<column> to use leave-one-group-out.")
        if not isinstance(cv, PatientStratifiedGroupKFold):
            raise SchemaError(
                f"cv must be an int, PatientStratifiedGroupKFold or None; got {type(cv).__name__}."
            )
        n_splits, n_repeats = cv.n_splits, cv.n_repeats
        desc = f"{n_splits}-fold x {n_repeats} patient-level stratified group K-fold"
    if strata.shape[0] < max(n_splits, 2):
        raise AnalysisError(f"{strata.shape[0]} patients cannot fill {n_splits} folds.")
    plan_kw: dict[str, Any] = {
        "n_splits": n_splits,
        "n_repeats": n_repeats,
        "n_inner_splits": n_inner_splits,
        "stratify_jointly": True,
        "groups": groups,
    }
    plan = make_plan(strata, seed_seq=np.random.SeedSequence(seed), outer_seed=user_seed, **plan_kw)
    return CVDesign(plan=plan, plan_kw=plan_kw, description=desc, groups=groups)


def blas_threads(X: np.ndarray) -> Any:
    """Context limiting BLAS to one thread for small problems (thread start-up dominates
    their factorisations), as the binary decoder's replicates do."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1 if X.size < 5_000_000 else None)


def renumber_inner(inner: np.ndarray) -> np.ndarray:
    """Inner folds renumbered ``0..k'-1`` (a jackknife deletion may empty one)."""
    return np.unique(inner, return_inverse=True)[1].reshape(-1)


def cross_validate_plan(
    problem: EndpointProblem, y: np.ndarray, plan: CVPlan, keep: np.ndarray | None = None
) -> FoldPredictions:
    """Run ``problem.cross_validate`` on all patients (or the ``keep`` ones) with ``plan``."""
    n = y.shape[0]
    rows = np.arange(n) if keep is None else np.flatnonzero(keep)
    outer = plan.outer[:, rows]
    inner = [v[rows] for v in plan.inner]
    return problem.cross_validate(rows, y[rows], outer, inner)


# ------------------------------------------------------------------------------ replicates
class _JackTask:
    def __init__(self, problem: EndpointProblem, y: np.ndarray, plan: CVPlan, groups) -> None:  # noqa: ANN001
        self.problem, self.y, self.plan, self.groups = problem, y, plan, groups

    def __call__(self, g: int | tuple[int, ...]) -> np.ndarray:
        keep = ~np.isin(self.groups, np.atleast_1d(np.asarray(g)))
        return self.problem.statistics(
            self.y[keep], cross_validate_plan(self.problem, self.y, self.plan, keep)
        )


def _strata_keys(strata: np.ndarray) -> np.ndarray:
    filled = np.where(np.isnan(strata), 2, strata).astype(np.int64)
    if filled.shape[1] == 0:
        return np.zeros(filled.shape[0], dtype=np.int64)
    return np.unique(filled, axis=0, return_inverse=True)[1].reshape(-1)


class _BootTask:
    def __init__(self, problem: EndpointProblem, y: np.ndarray, plan_kw: dict[str, Any]) -> None:
        self.problem, self.y, self.plan_kw = problem, y, plan_kw

    def __call__(self, child: np.random.SeedSequence) -> np.ndarray:
        s_draw, s_plan = child.spawn(2)
        rng = np.random.default_rng(s_draw)
        n = self.y.shape[0]
        keys = _strata_keys(self.problem.strata(self.y))
        counts = np.zeros(n, dtype=np.int64)
        for v in np.unique(keys):
            members = np.flatnonzero(keys == v)
            counts += np.bincount(members[rng.integers(0, members.size, members.size)], minlength=n)
        sel = np.flatnonzero(counts > 0)
        kw = dict(self.plan_kw)
        if kw.get("groups") is not None:
            kw["groups"] = np.asarray(kw["groups"])[sel]
        plan = make_plan(self.problem.strata(self.y[sel]), seed_seq=s_plan, **kw)
        pos = np.repeat(np.arange(sel.size), counts[sel])
        rows = sel[pos]
        yb = self.y[rows]
        cv = self.problem.cross_validate(rows, yb, plan.outer[:, pos], [v[pos] for v in plan.inner])
        return self.problem.statistics(yb, cv)


class _PermTask:
    def __init__(
        self, problem: EndpointProblem, y: np.ndarray, plan_kw: dict[str, Any], blocks
    ) -> None:  # noqa: ANN001
        self.problem, self.y, self.plan_kw, self.blocks = problem, y, plan_kw, blocks

    def __call__(self, child: np.random.SeedSequence) -> np.ndarray:
        s_perm, s_plan = child.spawn(2)
        rng = np.random.default_rng(s_perm)
        permute = getattr(self.problem, "permute", None)
        if permute is not None:  # the endpoint's own null (the benefit decoder's arm draw)
            yb = permute(self.y, rng)
        else:
            yb = self.y[permute_within(self.blocks, self.y.shape[0], rng)]
        plan = make_plan(self.problem.strata(yb), seed_seq=s_plan, **self.plan_kw)
        return self.problem.statistics(yb, cross_validate_plan(self.problem, yb, plan))


def permute_within(blocks: Sequence[np.ndarray], n: int, rng: np.random.Generator) -> np.ndarray:
    """A permutation of ``range(n)`` that moves rows only within each block (row indices)."""
    perm = np.arange(n)
    for members in blocks:
        perm[members] = members[rng.permutation(members.size)]
    return perm


def _blocks(groups: np.ndarray | None, n: int) -> list[np.ndarray]:
    if groups is None:
        return [np.arange(n)]
    _, g = np.unique(np.asarray(groups).astype(str), return_inverse=True)
    return [np.flatnonzero(g == b) for b in range(int(g.max()) + 1)]


# ------------------------------------------------------------------------------ driver
def _describe_ci(ci_method: str, n_jackknife: int, n_bootstrap: int) -> str:
    if ci_method == "jackknife":
        return f"grouped jackknife of the whole nested CV (G={n_jackknife}, folds kept, t)"
    if ci_method == "jackknife2":
        return (
            "second-order-corrected grouped jackknife of the whole nested CV "
            f"(G={n_jackknife}, groups and pairs deleted, folds kept, t)"
        )
    if ci_method == "bootstrap":
        return f"patient bootstrap of the whole nested CV (B={n_bootstrap})"
    return "formula on out-of-fold predictions (treats them as independent: anti-conservative)"


#: which re-runs each interval method reads
_REPLICATES = {
    "jackknife": "jackknife",
    "jackknife2": "jackknife",
    "bootstrap": "bootstrap",
    "randomisation": "permutation",
}


def _describe_randomisation(what: str | None, n_permutations: int) -> str:
    B = int(n_permutations)
    how = f"{what}, " if what else ""
    return f"SD of the permutation re-runs of the whole nested CV ({how}B={B}, t_{B - 1})"


def endpoint_inference(
    problem: EndpointProblem,
    y: np.ndarray,
    design: CVDesign,
    T: np.ndarray,
    *,
    ci_method: str,
    p_method: str,
    level: float,
    n_jackknife: int,
    n_bootstrap: int,
    n_permutations: int,
    seed: int,
    n_jobs: int | None,
    progress: bool | None,
    oof_inference: Callable[[], tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]
    | None = None,
    allowed_p: Sequence[str] = P_METHODS,
) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """Interval and p-value of every metric from re-runs of the whole nested CV.

    Parameters
    ----------
    problem : EndpointProblem
    y : array
        Outcomes of all patients (first axis = patients, the order of the plan).
    design : CVDesign
        The folds of the observed run (kept by the jackknife).
    T : (M,) array
        The observed metrics (``problem.statistics`` of the observed run).
    ci_method : {"jackknife", "jackknife2", "bootstrap", "randomisation", "oof"}
    p_method : {"permutation", "jackknife", "oof"}
    level : float
    n_jackknife, n_bootstrap, n_permutations : int
    seed : int
        Child seeds ``SeedSequence(seed).spawn(3)[2].spawn(3)`` (as the binary decoder).
    n_jobs, progress
        As in :func:`tario_clinical.decode`.
    oof_inference : callable, optional
        Returns ``(se, low, high, p)`` from formulas on the OOF predictions (``"oof"``).
    allowed_p : sequence of str
        The p-methods this endpoint supports.

    Returns
    -------
    (DataFrame, dict)
        One row per metric: ``metric, estimate, se, low, high, ci_method, p_value, p_method,
        p_mc_se``; and the replicates (``jackknife``, ``bootstrap``, ``permutation``) as
        DataFrames with one column per metric.
    """
    if ci_method not in CI_METHODS:
        raise SchemaError(f"ci_method must be one of {list(CI_METHODS)}; got {ci_method!r}.")
    if p_method not in allowed_p:
        raise SchemaError(f"p_method must be one of {list(allowed_p)}; got {p_method!r}.")
    if not 0 < level < 1:
        raise SchemaError(f"level must be in (0, 1); got {level!r}.")
    specs = problem.metrics
    names = [m.name for m in specs]
    M = len(specs)
    s_perm, s_jack, s_boot = np.random.SeedSequence(seed).spawn(3)[2].spawn(3)
    reps: dict[str, np.ndarray] = {}
    n = y.shape[0]
    rand = np.array([ci_method == "randomisation" and m.randomisation_se for m in specs])
    # each metric's interval method (randomisation: the other metrics take the jackknife)
    hows = [
        ("randomisation" if r else "jackknife") if ci_method == "randomisation" else ci_method
        for r in rand
    ]
    if ci_method == "randomisation":
        if not rand.any():
            raise SchemaError(
                "ci_method='randomisation' needs metrics whose sampling variance the "
                "permutation reproduces (the benefit decoder's); use 'jackknife'."
            )
        if int(n_permutations) < 5:
            raise SchemaError(
                f"ci_method='randomisation' needs n_permutations >= 5; got {n_permutations!r}."
            )
    if p_method == "jackknife" or {"jackknife", "jackknife2"} & set(hows):
        if int(n_jackknife) < 3:
            raise SchemaError(f"n_jackknife must be >= 3; got {n_jackknife!r}.")
        if n < 2 * n_jackknife:
            raise AnalysisError(f"{n} patients are too few for a {n_jackknife}-group jackknife.")
        groups = assign_folds(problem.strata(y), int(n_jackknife), np.random.default_rng(s_jack))
        reps["jackknife"] = np.vstack(
            run_replicates(
                _JackTask(problem, y, design.plan, groups),
                jackknife_items(int(n_jackknife), pairs=ci_method == "jackknife2"),
                n_jobs=n_jobs,
                progress=progress,
                desc="jackknife",
            )
        )
    if ci_method == "bootstrap":
        if int(n_bootstrap) < 2:
            raise SchemaError(f"n_bootstrap must be >= 2; got {n_bootstrap!r}.")
        reps["bootstrap"] = np.vstack(
            run_replicates(
                _BootTask(problem, y, design.plan_kw),
                s_boot.spawn(int(n_bootstrap)),
                n_jobs=n_jobs,
                progress=progress,
                desc="bootstrap",
            )
        )
    if p_method == "permutation" or ci_method == "randomisation":
        if int(n_permutations) < 1:
            raise SchemaError(f"n_permutations must be >= 1; got {n_permutations!r}.")
        reps["permutation"] = np.vstack(
            run_replicates(
                _PermTask(problem, y, design.plan_kw, _blocks(design.groups, n)),
                s_perm.spawn(int(n_permutations)),
                n_jobs=n_jobs,
                progress=progress,
                desc="permutations",
            )
        )
    oof = oof_inference() if oof_inference is not None and "oof" in (ci_method, p_method) else None
    se = np.full(M, np.nan)
    low = np.full(M, np.nan)
    high = np.full(M, np.nan)
    if ci_method in ("jackknife", "jackknife2", "bootstrap", "randomisation"):
        for j, (m, how) in enumerate(zip(specs, hows)):
            r = reps[_REPLICATES[how]]
            g = transform(r[:, j], m.scale)
            ok = np.isfinite(g)
            if ok.sum() < 2 or not np.isfinite(T[j]):
                continue
            gt = transform(np.array([T[j]]), m.scale)[0]
            if how == "randomisation":
                # the permutation re-runs' spread is the statistic's sampling spread
                se_g = np.std(g[ok], ddof=1)
                q = stats.t.ppf(0.5 + level / 2.0, int(ok.sum()) - 1)
            elif how == "jackknife":
                G = g.size
                if not ok.all():
                    continue
                se_g = np.sqrt((G - 1) / G * np.sum((g - g.mean()) ** 2))
                q = stats.t.ppf(0.5 + level / 2.0, G - 1)
            elif how == "jackknife2":
                G = int(n_jackknife)
                if not ok.all():
                    continue
                var = jackknife2_variance(np.array([gt]), g[:, None], G)[0]
                se_g = float(np.sqrt(var))
                q = stats.t.ppf(0.5 + level / 2.0, G - 1)
            else:
                se_g = np.std(g[ok], ddof=1)
                q = stats.norm.ppf(0.5 + level / 2.0)
            low[j] = inverse_transform(np.array([gt - q * se_g]), m.scale)[0]
            high[j] = inverse_transform(np.array([gt + q * se_g]), m.scale)[0]
            # SE on the metric's own scale by the delta method (for display)
            eps = 1e-6 * max(1.0, abs(gt))
            d = (
                inverse_transform(np.array([gt + eps]), m.scale)[0]
                - inverse_transform(np.array([gt - eps]), m.scale)[0]
            ) / (2 * eps)
            se[j] = abs(d) * se_g
    elif oof is not None:
        se, low, high = oof[0], oof[1], oof[2]
    what = getattr(problem, "permutation_label", None)
    ci_desc = [
        _describe_randomisation(what, n_permutations)
        if how == "randomisation"
        else _describe_ci(how, n_jackknife, n_bootstrap)
        for how in hows
    ]
    p = np.full(M, np.nan)
    mc = np.full(M, np.nan)
    p_chance = np.full(M, np.nan)
    excludes = np.full(M, None, dtype=object)
    open_bound = np.zeros(M, dtype=bool)
    if p_method == "permutation":
        null = reps["permutation"]
        B = null.shape[0]
        for j, m in enumerate(specs):
            if m.null is None or not np.isfinite(T[j]):
                continue
            col = null[:, j]
            col = np.where(np.isfinite(col), col, m.null)
            if m.exact_null and ci_method != "oof" and np.isfinite(low[j]):
                # the exact test decides whether the interval contains the null value
                p_chance[j] = chance_pvalue(np.array([T[j]]), col[:, None], m.null)[0]
                lo_j, hi_j, ex_j = chance_coherent(
                    np.array([T[j]]),
                    low[j : j + 1],
                    high[j : j + 1],
                    p_chance[j : j + 1],
                    level,
                    m.null,
                )
                low[j], high[j], excludes[j] = lo_j[0], hi_j[0], bool(ex_j[0])
                open_bound[j] = bool(ex_j[0]) and m.null in (low[j], high[j])
            if m.direction == "greater":
                k = np.sum(col >= T[j] - 1e-12)
            else:
                k = np.sum(col <= T[j] + 1e-12)
            p[j] = (1 + k) / (1 + B)
            mc[j] = np.sqrt(p[j] * (1 - p[j]) / B)
        p_desc = (
            f"permutation{f' ({what})' if what else ''}, whole nested CV re-run incl. folds "
            f"(B={n_permutations}, one-sided)"
        )
    elif p_method == "jackknife":
        g_r = reps["jackknife"][: int(n_jackknife)]
        G = g_r.shape[0]
        for j, m in enumerate(specs):
            if m.null is None or not np.isfinite(T[j]):
                continue
            g = transform(g_r[:, j], m.scale)
            if not np.all(np.isfinite(g)):
                continue
            se_g = np.sqrt((G - 1) / G * np.sum((g - g.mean()) ** 2))
            if se_g <= 0:
                continue
            z = (
                transform(np.array([T[j]]), m.scale)[0] - transform(np.array([m.null]), m.scale)[0]
            ) / se_g
            p[j] = stats.t.sf(z, G - 1) if m.direction == "greater" else stats.t.cdf(z, G - 1)
        p_desc = f"jackknife Wald test on the metric's scale (G={n_jackknife}, t_{n_jackknife - 1}, one-sided)"
    else:
        if oof is not None:
            p = oof[3]
        p_desc = (
            "formula on out-of-fold predictions (treats them as independent: anti-conservative)"
        )
    table = pd.DataFrame(
        {
            "metric": names,
            "estimate": T,
            "se": se,
            "low": low,
            "high": high,
            "ci_method": ci_desc,
            "p_value": p,
            "p_method": p_desc,
            "p_mc_se": mc,
            "p_chance": p_chance,
            "excludes_chance": excludes,
            "open_bound": open_bound,
        }
    )
    no_test = [m.null is None for m in specs]
    table.loc[no_test, "p_method"] = ""
    frames = {k: pd.DataFrame(v, columns=names) for k, v in reps.items()}
    return table, frames


@dataclass(frozen=True)
class EndpointFit:
    """What :func:`fit_and_infer` computed: design, OOF run, final model, statistics, inference."""

    design: CVDesign
    run: FoldPredictions
    final: Any
    T: np.ndarray
    table: pd.DataFrame
    reps: dict[str, pd.DataFrame]


def fit_and_infer(
    problem: EndpointProblem,
    y: np.ndarray,
    X: np.ndarray,
    clinical: pd.DataFrame,
    *,
    design_kw: dict[str, Any],
    inference_kw: dict[str, Any],
    final_model: Callable[[], Any] | None = None,
    oof_inference: Callable[[FoldPredictions], Any] | None = None,
) -> EndpointFit:
    """The steps every endpoint decoder shares, in order.

    Draw the CV design (:func:`cv_design` with ``design_kw``), run the nested CV and fit the
    final model with BLAS limited for small problems (:func:`blas_threads`), compute the
    statistics, then the interval and p-value of every metric (:func:`endpoint_inference` with
    ``inference_kw``). ``oof_inference(run)`` gives the OOF-formula inference (``"oof"``).
    """
    design = cv_design(problem.strata(y), clinical, **design_kw)
    with blas_threads(X):
        run = cross_validate_plan(problem, y, design.plan)
        final = final_model() if final_model is not None else None
    T = problem.statistics(y, run)
    table, reps = endpoint_inference(
        problem,
        y,
        design,
        T,
        oof_inference=None if oof_inference is None else (lambda: oof_inference(run)),
        **inference_kw,
    )
    return EndpointFit(design=design, run=run, final=final, T=T, table=table, reps=reps)
