"""Inference for cross-validated decoders: resampling that re-runs the *whole* nested CV.

Out-of-fold (OOF) scores are not independent: patient *i*'s score depends on patient *j*'s label
through the model trained on *j*, and the reverse. Intervals and tests that treat the OOF scores as
independent (DeLong on OOF scores, a Mann-Whitney permutation of labels against fixed OOF scores)
ignore that dependence and are anti-conservative. Everything here therefore recomputes the whole
procedure -- outer folds, standardisation, factorisation, inner CV choosing C, refit, pooling of
fold-standardised scores -- on resampled or permuted data.

The statistic
    ``T`` = mean over the outer repeats of the AUROC of the pooled, fold-standardised OOF scores
    (slides of a patient averaged), exactly the ``auroc`` of :meth:`DecodeResult.summary`.

The estimand of the intervals
    The expected AUROC, on new patients from the same population, of the pooled out-of-fold
    decoders that this procedure (same folds, C path, penalty ...) fits to ``n (k - 1) / k``
    patients -- "the AUROC of the procedure trained on data of this size" (the unconditional
    error of Bates, Hastie & Tibshirani, JASA 2023), not the AUROC of the one final model.

Permutation test (``p_method="permutation"``)
    Labels are permuted at the patient level -- whole label rows, so all targets are tested by
    one re-run -- within blocks of patients sharing the same pattern of missing labels (and the
    same ``group_by`` group when given); the complete nested procedure is then re-run on the
    permuted labels *including a new fold assignment* (the folds are stratified on the labels,
    so they are redrawn from a child seed for every permutation). The one-sided p-value for
    "better than chance" is ``(1 + #{T_b >= T}) / (1 + B)``; two-sided is
    ``min(1, 2 min(p_greater, p_less))``. The test is exact (its size is at most the nominal
    level for any B) under the null hypothesis that the representations are independent of the
    labels within blocks, because observed and permuted data sets are exchangeable under that
    null and each is analysed by the identical randomised procedure. What is reused: nothing
    that depends on labels. With stratified K-fold the training sets change with every
    permutation, so the standardisation and factorisation are recomputed; with a label-free
    outer partition (``group_by``: leave-one-group-out, permutation within groups) the outer
    folds do not change and each fold's standardisation and Gram/eigen factorisation are
    computed once and reused by every permutation (inner folds are redrawn, they only change
    row weights). The Monte Carlo standard error of ``p`` is ``sqrt(p (1 - p) / B)``.

Grouped jackknife interval (``ci_method="jackknife"``, the default)
    Patients are split into ``G`` groups (stratified on the labels, seeded); the whole CV is
    re-run ``G`` times, each time without one group and *with every remaining patient's outer
    and inner fold unchanged*, so the replicates differ only by the deleted patients. The
    delete-a-group jackknife standard error ``se = sqrt((G - 1) / G * sum (T_(g) - mean)^2)``
    gives ``T -/+ t_{G-1} * se`` on the AUROC scale, clipped to [0, 1]. Cost: ``G`` re-runs.
    ``ci_method="jackknife_logit"`` forms the same interval on the logit scale
    (``expit(logit T -/+ t_{G-1} * se_logit)``, the default before 2026-12-01); in the decode_ci
    study it is the more conservative of the two (0.977-0.981 against 0.964-0.968 by signal
    group), so the AUROC scale became the default.

Chance level is decided by the exact test
    With the permutation test (``p_method="permutation"``, the default) the interval is made
    coherent with the exact two-sided permutation test of ``|T - 0.5|``
    (:func:`~tario_clinical.decode.intervals.chance_pvalue`, column ``p_chance``): where that
    test rejects at ``1 - level`` the interval is cut at 0.5 on the far side from ``T`` (it
    excludes 0.5; ``excludes_chance`` is True and the bound 0.5 is open); where it does not,
    the interval is widened to reach 0.5. At chance level the jackknife is most conservative
    (a cross-validated AUROC is a degenerate statistic there: its first-order terms vanish and
    the delete-a-group jackknife counts the remaining pairwise terms about 2.25 times), while
    the permutation test is exact; so the interval covers 0.5 with probability ``1 - `` the
    test's size (``level`` up to the resolution ``1 / (B + 1)``). An estimand on the same side
    of 0.5 as ``T`` is covered exactly when the jackknife interval covers it or the widening
    reaches it. The rule applies to every resampling interval (``jackknife``, ``jackknife_logit``,
    ``jackknife2``, ``bootstrap``) when permutations were run, not to ``delong``. With fewer than
    ``1 / (1 - level) - 1`` permutations (19 at 95 %) the test cannot reject and the interval
    always reaches 0.5.

Second-order-corrected jackknife (``ci_method="jackknife2"``)
    The delete-a-group jackknife over-estimates the variance of a statistic with interaction
    terms (Efron & Stein, Ann. Statist. 1981): at the group level, a ``k``-th order term of the
    Hoeffding decomposition is counted ``k (G - 1) / (G - k)`` times (2.25 for pairs at
    G = 10), and a CV statistic is far from additive (every patient's score depends on the
    training rows through the fitted model). The same ``G`` groups are also deleted in pairs
    (``C(G, 2)`` more re-runs); the double differences ``T - T_(g) - T_(h) + T_(gh)`` isolate
    the pairwise interactions, and ``lambda_1 v1 + lambda_2 mean(I^2)`` (weights computed
    exactly for ``G``, :func:`jackknife2_weights`) is unbiased when third- and higher-order
    terms vanish; kept between "all interaction" and the plain jackknife. Higher-order terms
    remain over-counted, so it is still conservative where they matter (e.g. noise-fitting
    under the null), and no estimator of the variance of K-fold CV is unbiased in general
    (Bengio & Grandvalet, JMLR 2004). Cost: ``G + G (G - 1) / 2`` re-runs (55 at G = 10).
    Measured (decode_ci study, ``--j2`` pass): the correction removes about half of the
    jackknife's excess variance but the interval then *under*-covers where there is signal
    (about 0.90 at n = 100): with signal it subtracts more than the excess. A continuous
    inner-CV choice of C changes neither jackknife (``explore_smooth_c.py`` in the study), so
    the discrete C grid is not the cause; it is kept for comparison, not as the default.

Bootstrap interval (``ci_method="bootstrap"``)
    Patients are resampled with replacement (stratified on the first target's labels, seeded);
    copies of one patient stay in one fold; the whole procedure (fold assignment included) is
    re-run on each resample, scored with each patient weighted by its multiplicity. The
    standard deviation of the ``B`` replicates on the logit scale gives
    ``expit(logit T -/+ z * se)``. Cost: ``B`` re-runs.

``ci_method="delong"`` is DeLong's interval on the OOF scores of each repeat, averaged over
repeats: it treats the OOF scores as independent and is kept by name only for comparison.
See ``benchmarks/validation/decode_ci/`` for the measured coverage and size of every method.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from ..errors import AnalysisError, SchemaError
from . import engine as _engine
from .intervals import (
    chance_coherent,
    chance_pvalue,
    jackknife_items,
    jackknife_wald_pvalue,
    permutation_pvalue,
    resampling_interval,
    wald_pvalue,
)
from .sklearn_fold import fit_sklearn_fold
from .splitters import PatientStratifiedGroupKFold, assign_folds

__all__ = [
    "CVPlan",
    "CVProblem",
    "make_plan",
    "cv_statistic",
    "fold_designs",
    "permutation_null",
    "jackknife_replicates",
    "bootstrap_replicates",
    "weighted_auroc",
    "run_replicates",
    "CI_METHODS",
    "P_METHODS",
]

logger = logging.getLogger(__name__)

CI_METHODS = ("jackknife", "jackknife_logit", "jackknife2", "bootstrap", "delong")
P_METHODS = ("permutation", "jackknife", "delong")


# ------------------------------------------------------------------------------ the plan
@dataclass(frozen=True)
class CVPlan:
    """Patient-level fold assignment of one nested CV run.

    Attributes
    ----------
    outer : (R, n_patients) int
        Outer fold of every patient in every repeat.
    inner : list of (n_patients,) int arrays
        One per design ``(r, k)`` in repeat-major order: the inner fold of every training
        patient of that design (-1 for its test patients).
    n_splits : int
        Outer folds per repeat (the designs are ``(r, k)`` for ``k < n_splits``).
    """

    outer: np.ndarray
    inner: list[np.ndarray]
    n_splits: int

    @property
    def designs(self) -> list[tuple[int, int]]:
        """``(repeat, fold)`` pairs, repeat-major."""
        return [(r, k) for r in range(self.outer.shape[0]) for k in range(self.n_splits)]


def make_plan(
    Ypat: np.ndarray,
    *,
    n_splits: int,
    n_repeats: int,
    n_inner_splits: int,
    seed_seq: np.random.SeedSequence,
    stratify_jointly: bool = True,
    groups: np.ndarray | None = None,
    outer_seed: Any = None,
) -> CVPlan:
    """Draw outer and inner patient-level folds exactly as :func:`tario_clinical.decode` does.

    Parameters
    ----------
    Ypat : (n_patients, T) labels 0/1/NaN
    n_splits, n_repeats, n_inner_splits : int
    seed_seq : numpy.random.SeedSequence
        Spawns the outer folds' seed and the inner folds' generators.
    stratify_jointly : bool
        Stratify on all targets (else on the first).
    groups : (n_patients,) array, optional
        Leave-one-group-out outer folds (``n_repeats`` is then 1).
    outer_seed : int, optional
        Seed of the outer splitter (default: drawn from ``seed_seq``).
    """
    seeds = seed_seq.spawn(3)
    strat = Ypat if stratify_jointly else Ypat[:, :1]
    n_pat = Ypat.shape[0]
    if groups is not None:
        _, g = np.unique(np.asarray(groups).astype(str), return_inverse=True)
        outer = g.reshape(1, -1).astype(np.int64)
        n_splits = int(outer.max()) + 1
    else:
        if n_pat < n_splits:
            raise AnalysisError(f"{n_pat} patients cannot fill {n_splits} folds.")
        cv = PatientStratifiedGroupKFold(
            n_splits,
            n_repeats=n_repeats,
            seed=int(seeds[0].generate_state(1)[0]) if outer_seed is None else outer_seed,
        )
        outer = cv.patient_folds(np.arange(n_pat), strat, None)
    n_designs = outer.shape[0] * n_splits
    rngs = [np.random.default_rng(s) for s in seeds[1].spawn(n_designs + 1)]
    inner = []
    i = 0
    for r in range(outer.shape[0]):
        for k in range(n_splits):
            tr = np.flatnonzero(outer[r] != k)
            if tr.size < n_inner_splits:
                raise AnalysisError(
                    f"a training fold has {tr.size} patients; cannot make {n_inner_splits} "
                    "inner folds."
                )
            v = np.full(n_pat, -1, dtype=np.int64)
            v[tr] = assign_folds(strat[tr], n_inner_splits, rngs[i])
            inner.append(v)
            i += 1
    return CVPlan(outer=outer, inner=inner, n_splits=int(n_splits))


# ------------------------------------------------------------------------------ one CV run
@dataclass
class CVProblem:
    """What a CV run needs besides the labels and the plan (label-free, shared by replicates).

    Attributes
    ----------
    X : (n_rows, D) representations (rows = patients or slides)
    codes : (n_rows,) patient index (0..n_patients-1) of every row
    Cs : (L,) C path
    pca : int or None
    class_weight : None or "balanced"
    scoring : inner-CV criterion
    engine : "fast" or "sklearn"
    penalty, l1_ratio, seed : for the sklearn engine
    feature_map : bool
        Also compute each fold's map to feature weights (for ``fold_hook`` users).
    """

    X: np.ndarray
    codes: np.ndarray
    Cs: np.ndarray
    pca: int | None = None
    class_weight: str | None = None
    scoring: str = "neg_log_loss"
    engine: str = "fast"
    penalty: str = "l2"
    l1_ratio: float = 0.5
    seed: int = 0
    feature_map: bool = False

    @property
    def n_patients(self) -> int:
        """Number of patients."""
        return int(self.codes.max()) + 1


def weighted_auroc(y: np.ndarray, s: np.ndarray, w: np.ndarray | None = None) -> float:
    """AUROC (ties count 1/2) with optional non-negative patient weights (bootstrap multiplicity)."""
    y = np.asarray(y).astype(bool)
    s = np.asarray(s, dtype=np.float64)
    w = np.ones(y.size) if w is None else np.asarray(w, dtype=np.float64)
    w1, w0 = w[y].sum(), w[~y].sum()
    if w1 <= 0 or w0 <= 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ss, ys, ws = s[order], y[order], w[order]
    # cumulative negative weight strictly below, and within ties
    uniq, start = np.unique(ss, return_index=True)
    grp = np.searchsorted(uniq, ss)
    neg = np.where(~ys, ws, 0.0)
    neg_tie = np.bincount(grp, weights=neg, minlength=uniq.size)
    below = np.concatenate([[0.0], np.cumsum(neg_tie)[:-1]])
    contrib = below[grp] + 0.5 * neg_tie[grp]
    return float(np.sum(np.where(ys, ws * contrib, 0.0)) / (w1 * w0))


def _pooled_auroc_by_repeat(
    std_rows: np.ndarray,
    rep_rows: np.ndarray,
    codes_rows: np.ndarray,
    Ypat: np.ndarray,
    n_repeats: int,
    weights: np.ndarray | None,
) -> np.ndarray:
    """(R, T) AUROC of the pooled per-patient mean fold-standardised scores of every repeat."""
    n_pat, T = Ypat.shape
    out = np.full((n_repeats, T), np.nan)
    for r in range(n_repeats):
        m = rep_rows == r
        c = codes_rows[m]
        cnt = np.bincount(c, minlength=n_pat)
        have = cnt > 0
        for t in range(T):
            sums = np.bincount(c, weights=std_rows[m, t], minlength=n_pat)
            ok = have & ~np.isnan(Ypat[:, t])
            score = sums[ok] / cnt[ok]
            w = None if weights is None else weights[ok]
            out[r, t] = weighted_auroc(Ypat[ok, t] == 1, score, w)
    return out


def fold_designs(
    plan: CVPlan, codes: np.ndarray, keep: np.ndarray | None = None
) -> list[tuple[int, int, np.ndarray, np.ndarray, np.ndarray]]:
    """``(repeat, fold, train_rows, test_rows, inner)`` of every outer fold of ``plan``.

    Rows map to patients through ``codes``; patients outside ``keep`` (jackknife deletions)
    leave every fold, folds left without test rows are skipped, and the inner folds of the
    remaining training rows are renumbered ``0..k'-1`` (a deletion may empty one).
    """
    n_pat = int(plan.outer.shape[1])
    pat_keep = np.ones(n_pat, dtype=bool) if keep is None else np.asarray(keep, bool)
    row_keep = pat_keep[codes]
    out = []
    for i, (r, k) in enumerate(plan.designs):
        fold_of_row = plan.outer[r][codes]
        train = np.flatnonzero((fold_of_row != k) & row_keep)
        test = np.flatnonzero((fold_of_row == k) & row_keep)
        if test.size == 0:
            continue
        _, inner = np.unique(plan.inner[i][codes[train]], return_inverse=True)
        out.append((r, k, train, test, inner))
    return out


def cv_statistic(
    problem: CVProblem,
    Ypat: np.ndarray,
    plan: CVPlan,
    *,
    keep: np.ndarray | None = None,
    weights: np.ndarray | None = None,
    basis_cache: dict | None = None,
    fold_hook: Any = None,
) -> np.ndarray:
    """Re-run the nested CV and return ``T`` per target (mean over repeats of pooled AUROC).

    Parameters
    ----------
    problem : CVProblem
    Ypat : (n_patients, T) labels 0/1/NaN (permuted or resampled as the caller wishes)
    plan : CVPlan
    keep : (n_patients,) bool, optional
        Patients that take part (jackknife); the others are removed from every fold.
    weights : (n_patients,) float, optional
        Patient weights in the AUROC (bootstrap multiplicities; the rows are already repeated).
    basis_cache : dict, optional
        Reuse fold factorisations across calls whose outer partition is identical (label-free
        outer folds only: the caller guarantees it by passing the same dict only then).
    fold_hook : callable, optional
        ``fold_hook(r, k, train_rows, test_rows, basis, fold_fit)`` after every fast-engine fold
        (validation studies read the fold models through it).

    Returns
    -------
    (T,) array.
    """
    codes = problem.codes
    Yrow = Ypat[codes]
    R = plan.outer.shape[0]
    folds = fold_designs(plan, codes, keep)

    def one_fold(fold: tuple) -> np.ndarray:
        r, k, train, test, inner = fold
        if problem.engine != "fast":
            return fit_sklearn_fold(
                problem.X,
                Yrow[train],
                inner,
                train,
                test,
                problem.Cs,
                penalty=problem.penalty,
                l1_ratio=problem.l1_ratio,
                pca=problem.pca,
                class_weight=problem.class_weight,
                seed=problem.seed,
                scoring=problem.scoring,
            )[2]
        basis = None if basis_cache is None else basis_cache.get((r, k))
        if basis is None:
            basis = _engine.fold_basis(
                problem.X,
                train,
                test,
                n_components=problem.pca,
                with_feature_map=problem.feature_map,
            )
            if basis_cache is not None:
                basis_cache[(r, k)] = basis
        ff = _engine.nested_fold(
            basis,
            Yrow[train],
            inner,
            problem.Cs,
            class_weight=problem.class_weight,
            scoring=problem.scoring,
        )
        if fold_hook is not None:
            fold_hook(r, k, train, test, basis, ff)
        return ff.test_std

    # fast engine: the folds in threads, one BLAS thread each (identical numbers for any
    # number of threads); a fold_hook sees the folds one at a time, in design order
    threads = (
        1
        if fold_hook is not None or problem.engine != "fast"
        else _engine.fold_threads(len(folds), problem.X.size)
    )
    std_parts = _engine.run_folds(one_fold, folds, threads=threads)
    rep_parts = [np.full(f[3].size, f[0]) for f in folds]
    code_parts = [codes[f[3]] for f in folds]
    std_rows = np.concatenate(std_parts)
    rep_rows = np.concatenate(rep_parts)
    code_rows = np.concatenate(code_parts)
    aucs = _pooled_auroc_by_repeat(std_rows, rep_rows, code_rows, Ypat, R, weights)
    with np.errstate(all="ignore"):
        return np.nanmean(aucs, axis=0) if np.isfinite(aucs).any() else aucs[0]


# ------------------------------------------------------------------------------ replicates
def _run_replicates(
    fn: Any, tasks: list[Any], *, n_jobs: int | None, progress: bool, desc: str
) -> list[Any]:
    """Run ``fn(task)`` for every task (in order), in processes when ``n_jobs != 1``."""
    from threadpoolctl import threadpool_limits

    from ..progress import progress_iter

    n_jobs = 1 if n_jobs is None else int(n_jobs)
    t0 = time.perf_counter()
    if n_jobs == 1 or len(tasks) <= 1:
        # small factorisations run faster on one BLAS thread (thread start-up dominates)
        small = getattr(fn, "problem", None) is not None and fn.problem.X.size < 5_000_000
        with threadpool_limits(1 if small else None):
            it = progress_iter(tasks, total=len(tasks), desc=desc, enabled=progress)
            out = [fn(t) for t in it]
    else:
        from joblib import Parallel, delayed

        par = Parallel(n_jobs=n_jobs, backend="loky", return_as="generator", batch_size="auto")
        gen = par(delayed(_limited)(fn, t) for t in tasks)
        out = list(progress_iter(gen, total=len(tasks), desc=desc, enabled=progress))
    logger.info(
        "%s: %d re-runs of the nested CV in %.1f s", desc, len(tasks), time.perf_counter() - t0
    )
    return out


def run_replicates(
    fn: Any, tasks: list[Any], *, n_jobs: int | None = 1, progress: bool | None = False, desc: str
) -> list[Any]:
    """Run ``fn(task)`` for every task, in order; in processes when ``n_jobs != 1``.

    The driver behind every re-run of a nested CV here (permutations, jackknife, bootstrap), for
    other decoders' replicates too (:mod:`tario_clinical.decode.endpoint_inference`).

    Parameters
    ----------
    fn : callable
        Picklable ``fn(task)`` (a small class instance when ``n_jobs != 1``); an attribute
        ``fn.problem.X`` lets small problems run on one BLAS thread.
    tasks : list
        One item per replicate (seed sequences, group numbers ...).
    n_jobs : int or None, default 1
        Worker processes (``-1``: all cores); the results do not depend on it.
    progress : bool or None
        Progress bar on stderr.
    desc : str
        Name of the replicates in the progress bar and the log.

    Returns
    -------
    list
        ``fn(task)`` of every task, in the order of ``tasks``.
    """
    return _run_replicates(fn, tasks, n_jobs=n_jobs, progress=progress, desc=desc)


def _limited(fn: Any, task: Any) -> Any:
    """Run one replicate in a worker process with one BLAS thread (the processes share cores)."""
    from threadpoolctl import threadpool_limits

    _engine.set_fold_threads(1)  # the worker processes already share the cores
    with threadpool_limits(1):
        return fn(task)


class _PermTask:
    """Picklable callable: one permutation replicate."""

    def __init__(self, problem, Ypat, blocks, plan_kw, reuse_outer) -> None:  # noqa: ANN001
        self.problem, self.Ypat, self.blocks = problem, Ypat, blocks
        self.plan_kw, self.reuse_outer = plan_kw, reuse_outer
        self.cache: dict | None = {} if reuse_outer else None

    def __call__(self, child: np.random.SeedSequence) -> np.ndarray:
        s_perm, s_plan = child.spawn(2)
        rng = np.random.default_rng(s_perm)
        perm = np.arange(self.Ypat.shape[0])
        for members in self.blocks:
            perm[members] = members[rng.permutation(members.size)]
        Yb = self.Ypat[perm]
        plan = make_plan(Yb, seed_seq=s_plan, **self.plan_kw)
        return cv_statistic(self.problem, Yb, plan, basis_cache=self.cache)


def permutation_blocks(Ypat: np.ndarray, groups: np.ndarray | None) -> list[np.ndarray]:
    """Blocks of exchangeable patients: same missing-label pattern (and same group)."""
    key = np.isnan(Ypat).astype(np.int64)
    if groups is not None:
        _, g = np.unique(np.asarray(groups).astype(str), return_inverse=True)
        key = np.column_stack([key, g])
    if key.shape[1] == 0:
        return [np.arange(Ypat.shape[0])]
    _, inv = np.unique(key, axis=0, return_inverse=True)
    inv = inv.reshape(-1)
    return [np.flatnonzero(inv == b) for b in range(int(inv.max()) + 1)]


def permutation_null(
    problem: CVProblem,
    Ypat: np.ndarray,
    plan_kw: dict[str, Any],
    *,
    n_permutations: int,
    seed_seq: np.random.SeedSequence,
    groups: np.ndarray | None = None,
    n_jobs: int | None = 1,
    progress: bool = False,
) -> np.ndarray:
    """``(B, T)`` statistics of the whole procedure re-run on patient-level permuted labels.

    ``plan_kw`` are the keyword arguments of :func:`make_plan` (without ``seed_seq``); with
    ``groups`` (leave-one-group-out) labels are permuted within groups and the label-free outer
    folds' factorisations are reused.
    """
    if int(n_permutations) < 1:
        raise SchemaError(f"n_permutations must be >= 1; got {n_permutations!r}.")
    blocks = permutation_blocks(Ypat, groups)
    task = _PermTask(problem, Ypat, blocks, plan_kw, reuse_outer=groups is not None)
    children = seed_seq.spawn(int(n_permutations))
    out = _run_replicates(task, children, n_jobs=n_jobs, progress=progress, desc="permutations")
    return np.vstack(out)


class _JackTask:
    def __init__(self, problem, Ypat, plan, groups) -> None:  # noqa: ANN001
        self.problem, self.Ypat, self.plan, self.groups = problem, Ypat, plan, groups

    def __call__(self, g: int | tuple[int, ...]) -> np.ndarray:
        drop = np.isin(self.groups, np.atleast_1d(np.asarray(g)))
        return cv_statistic(self.problem, self.Ypat, self.plan, keep=~drop)


def jackknife_replicates(
    problem: CVProblem,
    Ypat: np.ndarray,
    plan: CVPlan,
    *,
    n_groups: int,
    seed_seq: np.random.SeedSequence,
    n_jobs: int | None = 1,
    progress: bool = False,
    pairs: bool = False,
) -> np.ndarray:
    """Statistics of the CV re-run without each of ``G`` stratified patient groups.

    Every remaining patient keeps its outer and inner folds of ``plan``. Returns ``(G, T)``;
    with ``pairs=True`` the ``G (G - 1) / 2`` re-runs without each pair of groups follow, in
    the order of ``itertools.combinations(range(G), 2)`` -- ``(G + G (G - 1) / 2, T)`` rows,
    the input of :func:`jackknife2_interval`.
    """
    if int(n_groups) < 3:
        raise SchemaError(f"n_jackknife must be >= 3; got {n_groups!r}.")
    if Ypat.shape[0] < 2 * n_groups:
        raise AnalysisError(
            f"{Ypat.shape[0]} patients are too few for a {n_groups}-group jackknife."
        )
    groups = assign_folds(Ypat, int(n_groups), np.random.default_rng(seed_seq))
    task = _JackTask(problem, Ypat, plan, groups)
    items = jackknife_items(int(n_groups), pairs=pairs)
    out = _run_replicates(task, items, n_jobs=n_jobs, progress=progress, desc="jackknife")
    return np.vstack(out)


class _BootTask:
    def __init__(self, problem, Ypat, plan_kw) -> None:  # noqa: ANN001
        self.problem, self.Ypat, self.plan_kw = problem, Ypat, plan_kw

    def __call__(self, child: np.random.SeedSequence) -> np.ndarray:
        s_draw, s_plan = child.spawn(2)
        rng = np.random.default_rng(s_draw)
        Y = self.Ypat
        n = Y.shape[0]
        strat = np.where(np.isnan(Y[:, 0]), 2, Y[:, 0]).astype(int)
        counts = np.zeros(n)
        for v in np.unique(strat):
            members = np.flatnonzero(strat == v)
            counts += np.bincount(members[rng.integers(0, members.size, members.size)], minlength=n)
        sel = np.flatnonzero(counts > 0)
        mult = counts[sel]
        pb = self.problem
        # rows of the selected patients, each repeated by its patient's multiplicity
        new_code = np.full(n, -1)
        new_code[sel] = np.arange(sel.size)
        row_sel = np.flatnonzero(new_code[pb.codes] >= 0)
        reps = mult[new_code[pb.codes[row_sel]]].astype(int)
        rows = np.repeat(row_sel, reps)
        sub = CVProblem(
            X=pb.X[rows],
            codes=new_code[pb.codes[rows]],
            Cs=pb.Cs,
            pca=pb.pca,
            class_weight=pb.class_weight,
            scoring=pb.scoring,
            engine=pb.engine,
            penalty=pb.penalty,
            l1_ratio=pb.l1_ratio,
            seed=pb.seed,
        )
        Yb = Y[sel]
        kw = dict(self.plan_kw)
        if kw.get("groups") is not None:  # leave-one-group-out: the resampled patients' groups
            kw["groups"] = np.asarray(kw["groups"])[sel]
        plan = make_plan(Yb, seed_seq=s_plan, **kw)
        return cv_statistic(sub, Yb, plan, weights=mult)


def bootstrap_replicates(
    problem: CVProblem,
    Ypat: np.ndarray,
    plan_kw: dict[str, Any],
    *,
    n_bootstrap: int,
    seed_seq: np.random.SeedSequence,
    n_jobs: int | None = 1,
    progress: bool = False,
) -> np.ndarray:
    """``(B, T)`` statistics of the whole procedure re-run on patient-level bootstrap resamples."""
    if int(n_bootstrap) < 2:
        raise SchemaError(f"n_bootstrap must be >= 2; got {n_bootstrap!r}.")
    task = _BootTask(problem, Ypat, plan_kw)
    children = seed_seq.spawn(int(n_bootstrap))
    return np.vstack(
        _run_replicates(task, children, n_jobs=n_jobs, progress=progress, desc="bootstrap")
    )


# ------------------------------------------------------------------------------ summaries


# ------------------------------------------------------------------------------ driver
def observed_statistic(oof: Any, targets: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """``T`` and the mean DeLong SE of the repeats, from a decode OOF table.

    ``T`` is the mean over repeats of the AUROC of the repeat's pooled (patient-level) scores.
    """
    from .. import metrics

    T = np.full(len(targets), np.nan)
    se = np.full(len(targets), np.nan)
    for j, t in enumerate(targets):
        d = oof[oof["target"] == t]
        aucs, ses = [], []
        for _, dr in d.groupby("repeat", sort=True):
            y = dr["y_true"].to_numpy(int)
            if y.min() == y.max():
                continue
            r = metrics.auroc_ci(y, dr["score"].to_numpy())
            aucs.append(r.auroc)
            ses.append(r.se)
        if aucs:
            T[j], se[j] = float(np.mean(aucs)), float(np.mean(ses))
    return T, se


def infer(
    problem: CVProblem,
    Ypat: np.ndarray,
    plan: CVPlan,
    plan_kw: dict[str, Any],
    targets: list[str],
    oof: Any,
    *,
    ci_method: str,
    p_method: str,
    alternative: str,
    level: float,
    n_permutations: int,
    n_jackknife: int,
    n_bootstrap: int,
    seed: int,
    n_jobs: int | None,
    progress: bool | None,
) -> tuple[Any, dict[str, Any]]:
    """Inference table (one row per target) and the resampling replicates behind it."""
    import pandas as pd

    T, se_delong = observed_statistic(oof, targets)
    z = stats.norm.ppf(0.5 + level / 2.0)
    s_perm, s_jack, s_boot = np.random.SeedSequence(seed).spawn(3)[2].spawn(3)
    reps: dict[str, Any] = {}
    if p_method == "permutation":
        reps["permutation"] = permutation_null(
            problem,
            Ypat,
            plan_kw,
            n_permutations=n_permutations,
            seed_seq=s_perm,
            groups=plan_kw.get("groups"),
            n_jobs=n_jobs,
            progress=progress,
        )
    if ci_method.startswith("jackknife") or p_method == "jackknife":
        reps["jackknife"] = jackknife_replicates(
            problem,
            Ypat,
            plan,
            n_groups=n_jackknife,
            seed_seq=s_jack,
            n_jobs=n_jobs,
            progress=progress,
            pairs=ci_method == "jackknife2",
        )
    if ci_method == "bootstrap":
        reps["bootstrap"] = bootstrap_replicates(
            problem,
            Ypat,
            plan_kw,
            n_bootstrap=n_bootstrap,
            seed_seq=s_boot,
            n_jobs=n_jobs,
            progress=progress,
        )
    # DeLong on OOF scores (comparison only)
    lo_d = np.clip(T - z * se_delong, 0, 1)
    hi_d = np.clip(T + z * se_delong, 0, 1)
    p_d = wald_pvalue(T, se_delong, alternative)
    low, high, se, ci_desc = resampling_interval(
        ci_method, T, reps, level, n_jackknife=n_jackknife, n_bootstrap=n_bootstrap
    )
    if ci_method == "delong":
        low, high, se = lo_d, hi_d, se_delong
    mc_se = np.full(len(targets), np.nan)
    p_chance = np.full(len(targets), np.nan)
    if p_method == "permutation":
        p_chance = chance_pvalue(T, reps["permutation"])
    if ci_method != "delong":
        # the exact permutation test decides whether the interval contains chance level
        low, high, excludes = chance_coherent(T, low, high, p_chance, level)
        if p_method == "permutation":
            ci_desc += "; contains 0.5 unless the two-sided permutation test rejects"
    else:
        excludes = (low > 0.5) | (high < 0.5)
    if p_method == "permutation":
        p = permutation_pvalue(T, reps["permutation"], alternative)
        mc_se = np.sqrt(p * (1 - p) / n_permutations)
        p_desc = (
            f"permutation, whole nested CV re-run incl. folds (B={n_permutations}, "
            f"{'one-sided: AUROC > 0.5' if alternative == 'greater' else 'two-sided'})"
        )
    elif p_method == "jackknife":
        p = jackknife_wald_pvalue(T, reps["jackknife"][:n_jackknife], alternative)
        p_desc = f"jackknife Wald test on the AUROC scale (G={n_jackknife}, t_{n_jackknife - 1})"
    else:
        p = p_d
        p_desc = "DeLong on out-of-fold scores (treats them as independent: anti-conservative)"
    table = pd.DataFrame(
        {
            "target": targets,
            "auroc": T,
            "se": se,
            "low": low,
            "high": high,
            "ci_method": ci_desc,
            "p_value": p,
            "p_method": p_desc,
            "p_mc_se": mc_se,
            "alternative": alternative,
            "p_chance": p_chance,
            "excludes_chance": excludes,
            "se_delong": se_delong,
            "low_delong": lo_d,
            "high_delong": hi_d,
            "p_delong": p_d,
        }
    )
    frames = {k: pd.DataFrame(v, columns=targets) for k, v in reps.items()}
    return table, frames
