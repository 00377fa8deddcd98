"""Transfer analyses of the decoders: (c) :func:`leave_one_group_out` — transfer to an unseen
cancer type or site — and (d) :func:`representation_comparison` — the same decoders on two
representations of the same patients, paired per target. Inference as described in
:mod:`tario_clinical.decode.analyses`."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..errors import AnalysisError, SchemaError
from .analysis_base import (
    DELONG_INDEPENDENT,
    JACKKNIFE_METHOD,
    AnalysisDesign,
    AnalysisResult,
    auroc_jack,
    auroc_row,
    c_grid,
    class_counts,
    fit_score,
    jack_stats,
    jackknife_groups,
    paired_rows,
    pooled_auroc,
    prepare_analysis,
)
from .splitters import assign_folds

__all__ = ["leave_one_group_out", "representation_comparison"]


def leave_one_group_out(
    representations: Any,
    cohort: Any,
    *,
    targets: list[str],
    group_column: str = "cancer_type",
    n_inner_splits: int = 3,
    n_c: int = 10,
    Cs: Any = None,
    class_weight: str | None = None,
    pca: int | None = None,
    level: float = 0.95,
    n_jackknife: int = 10,
    seed: int = 0,
) -> AnalysisResult:
    """Transfer: train on all other groups (cancer types / sites), test on the held-out group.

    Parameters
    ----------
    representations : AnnData or DataFrame
        One row per patient (``obs_names`` / index = patient ids; pool slides first).
    cohort : Cohort or DataFrame
        A :class:`~tario_clinical.cohort.Cohort` (not changed: the patients left out are in
        the result's ``exclusions``) or a DataFrame with ``patient_id`` and the target columns
        (0/1 or genotype spellings).
    targets : list of str
        Binary columns to decode (genotypes, ``responder`` ...).
    group_column : str, default "cancer_type"
        Clinical column defining the groups (cancer types, sites ...); at least two groups.

    n_inner_splits : int, default 3
        Inner folds (inside every training set) that choose C.
    n_c : int, default 10
        Size of the default C path (:func:`default_Cs`); ignored when ``Cs`` is given.
    Cs : array-like, optional
        Explicit C path (scikit-learn convention, larger = weaker regularisation).
    class_weight : {"balanced"} or None
        Class weighting of the logistic regression.
    pca : int, optional
        Principal components kept after standardisation (fitted inside each training set).
    level : float, default 0.95
        Confidence level of the AUROC intervals (and of the paired differences).
    n_jackknife : int, default 10
        Patient groups of the grouped jackknife that gives the intervals (the analysis is
        re-run once per group; see the module docstring).
    seed : int, default 0
        Seeds the inner folds of each held-out group via ``SeedSequence(seed)``.

    Returns
    -------
    AnalysisResult with columns ``target, group, n, n_positive, auroc, low, high`` (AUROC within
    each held-out group; NaN where the group has one class) plus a ``pooled`` row per target.
    """
    data = prepare_analysis(representations, cohort, targets)
    if group_column not in data.clinical.columns:
        raise SchemaError(f"column {group_column!r} not in the clinical table.")
    X, Y = data.X, data.labels.to_numpy(float)
    grp = data.clinical[group_column].astype(str).to_numpy()
    names = np.unique(grp)
    if names.size < 2:
        raise AnalysisError(f"column {group_column!r} has one group only; nothing to transfer to.")
    grid = c_grid(Cs, n_c, X)
    seeds = np.random.SeedSequence(seed).spawn(names.size + 1)
    inner_all = []
    for i, g in enumerate(names):
        tr = np.flatnonzero(grp != g)
        v = np.full(Y.shape[0], -1, dtype=np.int64)
        v[tr] = assign_folds(Y[tr], n_inner_splits, np.random.default_rng(seeds[i]))
        inner_all.append(v)

    def scores(keep: np.ndarray | None) -> np.ndarray:
        S = np.full(Y.shape, np.nan)
        for i, g in enumerate(names):
            te = np.flatnonzero(grp == g)
            S[te] = fit_score(
                X,
                Y,
                np.flatnonzero(grp != g),
                te,
                grid,
                inner_all[i],
                class_weight=class_weight,
                pca=pca,
                keep=keep,
            )
        return S

    S = scores(None)
    groups = jackknife_groups(Y, n_jackknife, seeds[-1])

    def pooled_stat(keep: np.ndarray) -> np.ndarray:
        sc = scores(keep)
        return np.array([pooled_auroc(Y[:, j], sc[:, j], keep) for j in range(len(targets))])

    reps = jack_stats(pooled_stat, groups, n_jackknife)
    rows = []
    for j, t in enumerate(targets):
        for g in names:
            m = grp == g
            rows.append(
                {
                    "target": t,
                    "group": g,
                    **auroc_row(Y[m, j], S[m, j], level),
                    "ci_method": DELONG_INDEPENDENT,
                }
            )
        pooled = pooled_auroc(Y[:, j], S[:, j])
        lo, hi = auroc_jack(pooled, reps[:, j], level)
        rows.append(
            {
                "target": t,
                "group": "pooled",
                **class_counts(Y[:, j]),
                "auroc": pooled,
                "low": lo,
                "high": hi,
                "ci_method": JACKKNIFE_METHOD.format(G=n_jackknife),
            }
        )
    return AnalysisResult(
        pd.DataFrame(rows),
        "leave_one_group_out",
        {
            "group_column": group_column,
            "n_jackknife": n_jackknife,
            "seed": seed,
            "Cs": grid.tolist(),
        },
        exclusions=data.exclusions,
    )


# ------------------------------------------------------------------------------ (d)
def representation_comparison(
    representation_a: Any,
    representation_b: Any,
    cohort: Any,
    *,
    targets: list[str],
    names: tuple[str, str] = ("a", "b"),
    n_splits: int = 5,
    n_inner_splits: int = 3,
    n_c: int = 10,
    class_weight: str | None = None,
    pca: int | None = None,
    level: float = 0.95,
    n_jackknife: int = 10,
    seed: int = 0,
) -> AnalysisResult:
    """Same decoders, same folds, two representations of the same patients; paired jackknife difference per target.

    Only patients present in both representations are used (the others are logged as
    exclusions by the alignment). Each representation gets its own default C grid.

    Parameters
    ----------
    representation_a, representation_b : AnnData or DataFrame
        The two representations, one row per patient (``obs_names`` / index = patient ids).
    cohort : Cohort or DataFrame
        A :class:`~tario_clinical.cohort.Cohort` (not changed: the patients left out are in
        the result's ``exclusions``) or a DataFrame with ``patient_id`` and the target columns
        (0/1 or genotype spellings).
    targets : list of str
        Binary columns to decode (genotypes, ``responder`` ...).
    names : tuple of (str, str), default ("a", "b")
        Labels of the two representations in the ``representation`` column.
    n_splits : int, default 5
        Outer stratified folds (the same folds for both representations); at least
        ``2 * n_splits`` common patients are needed.

    n_inner_splits : int, default 3
        Inner folds (inside every training set) that choose C.
    n_c : int, default 10
        Size of each representation's default C path (:func:`default_Cs`).
    class_weight : {"balanced"} or None
        Class weighting of the logistic regression.
    pca : int, optional
        Principal components kept after standardisation (fitted inside each training set).
    level : float, default 0.95
        Confidence level of the AUROC intervals (and of the paired differences).
    n_jackknife : int, default 10
        Patient groups of the grouped jackknife that gives the intervals (the analysis is
        re-run once per group; see the module docstring).
    seed : int, default 0
        Seeds the folds (identical for both representations) via ``SeedSequence(seed)``.

    Returns
    -------
    AnalysisResult with rows per target and representation (``names[0]``, ``names[1]``,
    ``difference`` = a - b): ``target, representation, n, n_positive, auroc, low, high,
    estimate, p_value``.
    """
    da = prepare_analysis(representation_a, cohort, targets)
    db = prepare_analysis(representation_b, cohort, targets)
    common = np.intersect1d(da.labels.index.to_numpy(), db.labels.index.to_numpy())
    if common.size < 2 * n_splits:
        raise AnalysisError(f"only {common.size} patients are in both representations.")
    ia = pd.Index(da.labels.index).get_indexer(common)
    ib = pd.Index(db.labels.index).get_indexer(common)
    Xa, Xb = da.X[ia], db.X[ib]
    Y = da.labels.to_numpy(float)[ia]
    s_design, s_jack = np.random.SeedSequence(seed).spawn(2)
    design = AnalysisDesign(Y, n_splits, n_inner_splits, s_design)  # same folds for both
    grids = (c_grid(None, n_c, Xa), c_grid(None, n_c, Xb))

    def stat(keep: np.ndarray) -> np.ndarray:
        out = np.full((2, len(targets)), np.nan)
        for a, Xr in enumerate((Xa, Xb)):
            S = np.full(Y.shape, np.nan)
            for k in range(n_splits):
                test = np.flatnonzero(design.folds == k)
                tr = np.flatnonzero(design.folds != k)
                S[test] = fit_score(
                    Xr,
                    Y,
                    tr,
                    test,
                    grids[a],
                    design.inner(k, 0, tr),
                    class_weight=class_weight,
                    pca=pca,
                    keep=keep,
                )
            out[a] = [pooled_auroc(Y[:, j], S[:, j], keep) for j in range(len(targets))]
        return out

    groups = jackknife_groups(Y, n_jackknife, s_jack)
    rows = paired_rows(
        targets,
        Y,
        stat,
        groups,
        n_jackknife,
        "representation",
        tuple(names),
        level,
        np.arange(Y.shape[0]),
    )
    return AnalysisResult(
        pd.DataFrame(rows),
        "representation_comparison",
        {"names": list(names), "n_splits": n_splits, "n_jackknife": n_jackknife, "seed": seed},
        exclusions=pd.concat([da.exclusions, db.exclusions], ignore_index=True),
    )
