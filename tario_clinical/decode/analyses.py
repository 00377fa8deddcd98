"""The decoding analyses reported in the TARIO-2 and M-Optimus-1 write-ups.

(a) :func:`learning_curve` — pooled out-of-fold AUROC vs fraction of training patients;
(b) :func:`generalist_vs_specialist` — pan-cancer vs one-cancer-type decoders scored on the same
    held-out patients, paired DeLong;
(c) :func:`leave_one_group_out` — transfer to an unseen cancer type / site;
(d) :func:`representation_comparison` — the same decoders on two representations of the same
    patients, paired DeLong per target.

Every analysis keeps the patient as the unit of CV, chooses C by inner CV inside training folds
only, pools *fold-standardised* out-of-fold scores (each fold model's linear predictor scaled by
its training rows' mean and SD, as :func:`tario_clinical.decode` does) before computing AUROC and
seeds every random choice.

Inference. Pooled out-of-fold scores are dependent (the fold models share training patients), so
DeLong on them is anti-conservative, also for paired differences. Every AUROC and difference
computed from pooled OOF scores gets a grouped-jackknife interval instead: the whole analysis is
re-run ``n_jackknife`` times, each time without one stratified group of patients, with every
other patient's outer and inner folds unchanged (logit scale and ``t_{G-1}`` for an AUROC,
AUROC scale for a difference; the difference's two-sided p-value is the jackknife t-test).
AUROCs of one model on an independent held-out group (the per-group rows of
:func:`leave_one_group_out`) keep DeLong, which is valid there. The ``ci_method`` column names
the method of every row.

Modules: this one holds (a) and (b); :mod:`.transfer_analyses` holds (c) and (d);
:mod:`.analysis_base` the result type and the shared core.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..errors import AnalysisError, SchemaError
from .analysis_base import (
    JACKKNIFE_METHOD,
    AnalysisDesign,
    AnalysisResult,
    auroc_jack,
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
from .transfer_analyses import leave_one_group_out, representation_comparison

__all__ = [
    "AnalysisResult",
    "learning_curve",
    "generalist_vs_specialist",
    "leave_one_group_out",
    "representation_comparison",
]


# ------------------------------------------------------------------------------ (a)
def learning_curve(
    representations: Any,
    cohort: Any,
    *,
    targets: list[str],
    fractions: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0),
    n_splits: int = 5,
    n_inner_splits: int = 3,
    n_c: int = 10,
    Cs: Any = None,
    class_weight: str | None = None,
    pca: int | None = None,
    level: float = 0.95,
    n_jackknife: int = 10,
    seed: int = 0,
) -> AnalysisResult:
    """AUROC vs fraction of training patients (test folds unchanged, pooled over folds).

    In every outer fold a seeded, stratified subsample of ``fraction`` of the training patients
    is used for fitting (C chosen by inner CV on the subsample); the held-out fold is scored
    in full, so all fractions are evaluated on the same patients.

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
    fractions : tuple of float, default (0.1, 0.25, 0.5, 1.0)
        Fractions of each outer training fold used for fitting, each in (0, 1]; a fraction below
        1 keeps one of ``round(1 / fraction)`` stratified parts.
    n_splits : int, default 5
        Outer stratified folds (the same for every fraction).

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
        Seeds the outer folds, the subsamples and the inner folds via ``SeedSequence(seed)``.

    Returns
    -------
    AnalysisResult with columns ``target, fraction, n_train, n, n_positive, auroc, low, high``.
    """
    fr = tuple(float(f) for f in fractions)
    if not fr or any(not (0 < f <= 1) for f in fr):
        raise SchemaError(f"fractions must lie in (0, 1]; got {fractions!r}.")
    data = prepare_analysis(representations, cohort, targets)
    X, Y = data.X, data.labels.to_numpy(float)
    grid = c_grid(Cs, n_c, X)
    seeds = np.random.SeedSequence(seed).spawn(len(fr) + 2)
    # the same outer (and inner) folds for every fraction
    design = AnalysisDesign(Y, n_splits, n_inner_splits, seeds[-2])
    subs: dict[tuple[int, int], np.ndarray] = {}
    for i, f in enumerate(fr):
        sub_rng = np.random.default_rng(seeds[i])
        for k in range(n_splits):
            train = np.flatnonzero(design.folds != k)
            if f >= 1.0:
                subs[(i, k)] = train
            else:
                part = assign_folds(Y[train], max(2, int(round(1 / f))), sub_rng)
                subs[(i, k)] = np.sort(train[part == 0])

    def stat(i: int, keep: np.ndarray) -> np.ndarray:
        S = np.full(Y.shape, np.nan)
        for k in range(n_splits):
            test = np.flatnonzero(design.folds == k)
            tr = subs[(i, k)]
            S[test] = fit_score(
                X,
                Y,
                tr,
                test,
                grid,
                design.inner(k, i, tr),
                class_weight=class_weight,
                pca=pca,
                keep=keep,
            )
        return np.array([pooled_auroc(Y[:, j], S[:, j], keep) for j in range(Y.shape[1])])

    groups = jackknife_groups(Y, n_jackknife, seeds[-1])
    everyone = np.ones(Y.shape[0], dtype=bool)
    rows = []
    desc = JACKKNIFE_METHOD.format(G=n_jackknife)
    for i, f in enumerate(fr):
        full = stat(i, everyone)
        reps = jack_stats(lambda keep, i=i: stat(i, keep), groups, n_jackknife)
        n_train = int(np.mean([subs[(i, k)].size for k in range(n_splits)]))
        for j, t in enumerate(targets):
            lo, hi = auroc_jack(full[j], reps[:, j], level)
            rows.append(
                {
                    "target": t,
                    "fraction": f,
                    "n_train": n_train,
                    **class_counts(Y[:, j]),
                    "auroc": full[j],
                    "low": lo,
                    "high": hi,
                    "ci_method": desc,
                }
            )
    return AnalysisResult(
        pd.DataFrame(rows),
        "learning_curve",
        {
            "fractions": list(fr),
            "n_splits": n_splits,
            "n_jackknife": n_jackknife,
            "seed": seed,
            "Cs": grid.tolist(),
        },
        exclusions=data.exclusions,
    )


# ------------------------------------------------------------------------------ (b)
def generalist_vs_specialist(
    representations: Any,
    cohort: Any,
    *,
    targets: list[str],
    cancer_type: str,
    group_column: str = "cancer_type",
    n_splits: int = 5,
    n_inner_splits: int = 3,
    n_c: int = 10,
    Cs: Any = None,
    class_weight: str | None = None,
    pca: int | None = None,
    level: float = 0.95,
    n_jackknife: int = 10,
    seed: int = 0,
) -> AnalysisResult:
    """Pan-cancer (generalist) vs one-cancer-type (specialist) decoder on the same held-out patients.

    Folds are made over patients of ``cancer_type``; in each fold the specialist trains on the
    training patients of ``cancer_type`` only and the generalist on those plus *all* patients of
    other cancer types; both score the held-out ``cancer_type`` patients; the paired difference per target
    has a grouped-jackknife interval and p-value.

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
    cancer_type : str
        Value of ``group_column`` whose patients are split into folds and scored (at least
        ``2 * n_splits`` patients).
    group_column : str, default "cancer_type"
        Clinical column holding the cancer type.
    n_splits : int, default 5
        Folds over the ``cancer_type`` patients.

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
        Seeds the folds and the inner folds via ``SeedSequence(seed)``.

    Returns
    -------
    AnalysisResult with rows per target and model (``generalist``, ``specialist``,
    ``difference``): columns ``target, model, n, n_positive, auroc, low, high, estimate,
    p_value``.
    """
    data = prepare_analysis(representations, cohort, targets)
    if group_column not in data.clinical.columns:
        raise SchemaError(f"column {group_column!r} not in the clinical table.")
    X, Y = data.X, data.labels.to_numpy(float)
    grp = data.clinical[group_column].astype(str).to_numpy()
    inside = np.flatnonzero(grp == str(cancer_type))
    outside = np.flatnonzero(grp != str(cancer_type))
    if inside.size < 2 * n_splits:
        raise AnalysisError(
            f"{inside.size} patients with {group_column}={cancer_type!r}; too few for {n_splits} folds."
        )
    grid = c_grid(Cs, n_c, X)
    s_design, s_jack = np.random.SeedSequence(seed).spawn(2)
    design = AnalysisDesign(Y[inside], n_splits, n_inner_splits, s_design)
    Yin = Y[inside]
    full_inner: dict[tuple[int, int], np.ndarray] = {}
    trains: dict[tuple[int, int], np.ndarray] = {}
    for k in range(n_splits):
        tr_in = inside[design.folds != k]
        trains[(k, 0)] = tr_in  # specialist
        trains[(k, 1)] = np.sort(np.r_[tr_in, outside])  # generalist
        for slot in (0, 1):
            tr = trains[(k, slot)]
            child = np.random.SeedSequence(
                s_design.entropy, spawn_key=(*s_design.spawn_key, k, slot)
            )
            v = np.full(Y.shape[0], -1, dtype=np.int64)
            v[tr] = assign_folds(Y[tr], n_inner_splits, np.random.default_rng(child))
            full_inner[(k, slot)] = v

    def stat(keep: np.ndarray) -> np.ndarray:
        out = np.full((2, len(targets)), np.nan)
        for slot, row in ((1, 0), (0, 1)):  # row 0 = generalist, row 1 = specialist
            S = np.full(Yin.shape, np.nan)
            for k in range(n_splits):
                te = inside[design.folds == k]
                S[design.folds == k] = fit_score(
                    X,
                    Y,
                    trains[(k, slot)],
                    te,
                    grid,
                    full_inner[(k, slot)],
                    class_weight=class_weight,
                    pca=pca,
                    keep=keep,
                )
            kin = keep[inside]
            out[row] = [pooled_auroc(Yin[:, j], S[:, j], kin) for j in range(len(targets))]
        return out

    groups = jackknife_groups(Y, n_jackknife, s_jack)
    rows = paired_rows(
        targets, Y, stat, groups, n_jackknife, "model", ("generalist", "specialist"), level, inside
    )
    return AnalysisResult(
        pd.DataFrame(rows),
        "generalist_vs_specialist",
        {
            "cancer_type": cancer_type,
            "group_column": group_column,
            "n_splits": n_splits,
            "n_jackknife": n_jackknife,
            "seed": seed,
            "Cs": grid.tolist(),
        },
        exclusions=data.exclusions,
    )


# ------------------------------------------------------------------------------ (c)
