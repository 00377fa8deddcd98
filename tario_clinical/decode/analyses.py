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
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .. import metrics
from .._json import json_safe
from ..errors import AnalysisError, SchemaError
from . import engine as _engine
from .splitters import assign_folds

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

__all__ = [
    "AnalysisResult",
    "learning_curve",
    "generalist_vs_specialist",
    "leave_one_group_out",
    "representation_comparison",
]


@dataclass(frozen=True)
class AnalysisResult:
    """A tidy table plus the figure recipe of one analysis.

    Attributes
    ----------
    table : DataFrame
        One row per estimate (columns depend on ``kind``; AUROCs as ``auroc, low, high``,
        differences as ``estimate, low, high, p_value``).
    kind : str
    params : dict
    """

    table: pd.DataFrame
    kind: str
    params: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict."""
        return json_safe({"kind": self.kind, "table": self.table, "params": self.params})

    def _repr_html_(self) -> str:
        return f"<b>{self.kind}</b>" + self.table.to_html(index=False, float_format="%.3f")

    def plot(self, ax: Axes | None = None) -> Axes:
        """Figure of the analysis (learning curve / grouped AUROCs with CIs)."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(5, 3.5))
        t = self.table
        if self.kind == "learning_curve":
            for target, d in t.groupby("target", sort=False):
                ax.errorbar(
                    d["fraction"],
                    d["auroc"],
                    yerr=[d["auroc"] - d["low"], d["high"] - d["auroc"]],
                    marker="o",
                    capsize=3,
                    label=str(target),
                )
            ax.set_xscale("log")
            ax.set_xlabel("fraction of training patients")
            ax.set_ylabel("pooled out-of-fold AUROC")
        else:
            label_col = {
                "generalist_vs_specialist": "model",
                "leave_one_group_out": "group",
                "representation_comparison": "representation",
            }[self.kind]
            d = t.reset_index(drop=True)
            y = np.arange(len(d))
            ax.errorbar(
                d["auroc"],
                y,
                xerr=[d["auroc"] - d["low"], d["high"] - d["auroc"]],
                fmt="o",
                capsize=3,
            )
            ax.set_yticks(y, [f"{a} / {b}" for a, b in zip(d["target"], d[label_col], strict=True)])
            ax.set_xlabel("AUROC (95% CI)")
        ax.axhline(
            0.5, color="grey", lw=0.6, ls="--"
        ) if self.kind == "learning_curve" else ax.axvline(0.5, color="grey", lw=0.6, ls="--")
        ax.set_title(self.kind.replace("_", " "))
        if self.kind == "learning_curve":
            ax.legend(fontsize=7)
        return ax


# ------------------------------------------------------------------------- shared core
def _prepare(representations: Any, cohort: Any, targets: list[str]):  # noqa: ANN202
    from .cross_validation import prepare_data

    data = prepare_data(representations, cohort, targets)
    if hasattr(cohort, "exclude"):
        from .cross_validation import _log_exclusions

        _log_exclusions(cohort, data.exclusions)
    if not np.array_equal(np.unique(data.row_patient), np.sort(data.row_patient)):
        raise SchemaError("analyses need one representation row per patient (pool slides first).")
    return data


class _Design:
    """Patient-level outer folds and, per outer fold, the inner folds of its training patients.

    Drawn once; jackknife replicates delete patients from it without redrawing anything.
    """

    def __init__(self, Y: np.ndarray, n_splits: int, n_inner_splits: int, seed: Any) -> None:
        s_fold, self._s_inner = seed.spawn(2)
        self.n_inner_splits = n_inner_splits
        self.folds = assign_folds(Y, n_splits, np.random.default_rng(s_fold))
        self.n_splits = n_splits
        self._inner: dict[tuple[int, int], np.ndarray] = {}
        self.Y = Y

    def inner(self, k: int, slot: int, train: np.ndarray) -> np.ndarray:
        """Inner fold (per patient, -1 outside ``train``) of training set ``slot`` of fold ``k``."""
        key = (k, slot)
        if key not in self._inner:
            v = np.full(self.Y.shape[0], -1, dtype=np.int64)
            child = np.random.SeedSequence(
                self._s_inner.entropy, spawn_key=(*self._s_inner.spawn_key, k, slot)
            )
            v[train] = assign_folds(
                self.Y[train], self.n_inner_splits, np.random.default_rng(child)
            )
            self._inner[key] = v
        return self._inner[key]


def _fit_score(
    X: np.ndarray,
    Y: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    Cs: np.ndarray,
    inner_all: np.ndarray,
    *,
    class_weight: str | None,
    pca: int | None,
    keep: np.ndarray | None = None,
) -> np.ndarray:
    """Nested-CV fit on ``train`` rows (all targets at once); fold-standardised scores on ``test``.

    ``inner_all`` gives the inner fold of every training row; ``keep`` (bool per row) deletes
    rows from training (jackknife) without changing anybody's folds.
    """
    if keep is not None:
        train = train[keep[train]]
    _, inner = np.unique(inner_all[train], return_inverse=True)
    basis = _engine.fold_basis(X, train, test, n_components=pca)
    return _engine.nested_fold(basis, Y[train], inner, Cs, class_weight=class_weight).test_std


def _pooled_auroc(y: np.ndarray, s: np.ndarray, keep: np.ndarray | None = None) -> float:
    ok = ~np.isnan(y) & ~np.isnan(s)
    if keep is not None:
        ok &= keep
    yy = y[ok]
    if yy.size == 0 or yy.min() == yy.max():
        return float("nan")
    return metrics.auroc(yy.astype(int), s[ok])


def _jackknife_groups(Y: np.ndarray, n_jackknife: int, seed: Any) -> np.ndarray:
    if int(n_jackknife) < 3:
        raise SchemaError(f"n_jackknife must be >= 3; got {n_jackknife!r}.")
    return assign_folds(Y, int(n_jackknife), np.random.default_rng(seed))


def _jack_stats(stat_fn: Any, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """``(G, ...)`` replicates of ``stat_fn(keep)`` with one group deleted each time."""
    return np.array([stat_fn(groups != g) for g in range(n_groups)])


def _auroc_jack(est: float, reps: np.ndarray, level: float) -> tuple[float, float]:
    from .inference import jackknife_interval

    if not np.isfinite(est) or not np.all(np.isfinite(reps)):
        return float("nan"), float("nan")
    lo, hi, _ = jackknife_interval(np.array([est]), reps.reshape(-1, 1), level)
    return float(lo[0]), float(hi[0])


def _diff_jack(est: float, reps: np.ndarray, level: float) -> tuple[float, float, float]:
    """(low, high, two-sided p) of a difference from jackknife replicates (t_{G-1})."""
    from scipy import stats

    G = reps.size
    if not np.isfinite(est) or not np.all(np.isfinite(reps)):
        return float("nan"), float("nan"), float("nan")
    se = float(np.sqrt((G - 1) / G * np.sum((reps - reps.mean()) ** 2)))
    q = stats.t.ppf(0.5 + level / 2.0, G - 1)
    p = float(2 * stats.t.sf(abs(est) / se, G - 1)) if se > 0 else (0.0 if est else 1.0)
    return est - q * se, est + q * se, p


_JACK = "grouped jackknife of the whole analysis (G={G})"
_DELONG_INDEP = "DeLong (held-out group independent of the training patients)"


def _auroc_row(y: np.ndarray, s: np.ndarray, level: float) -> dict[str, Any]:
    """DeLong AUROC row of scores from one model on patients independent of its training."""
    ok = ~np.isnan(y) & ~np.isnan(s)
    yy, ss = y[ok].astype(int), s[ok]
    if yy.size == 0 or yy.min() == yy.max():
        nan = float("nan")
        return {
            "n": int(yy.size),
            "n_positive": int(yy.sum()),
            "auroc": nan,
            "low": nan,
            "high": nan,
        }
    r = metrics.auroc_ci(yy, ss, level=level)
    return {"n": r.n, "n_positive": r.n_positive, "auroc": r.auroc, "low": r.low, "high": r.high}


def _count(y: np.ndarray) -> dict[str, int]:
    ok = ~np.isnan(y)
    return {"n": int(ok.sum()), "n_positive": int(np.nansum(y))}


def _paired_rows(
    targets: Sequence[str],
    Y: np.ndarray,
    stat_fn: Any,
    groups: np.ndarray,
    n_groups: int,
    label: str,
    names: tuple[str, str],
    level: float,
    eval_rows: np.ndarray,
) -> list[dict[str, Any]]:
    """AUROC of two scorings of the same patients per target and their difference (jackknife).

    ``stat_fn(keep)`` returns ``(2, T)`` pooled AUROCs (scoring a, scoring b) over ``eval_rows``.
    """
    full = stat_fn(np.ones(groups.size, dtype=bool))
    reps = _jack_stats(stat_fn, groups, n_groups)
    rows = []
    desc = _JACK.format(G=n_groups)
    for j, t in enumerate(targets):
        y = Y[eval_rows, j]
        for a, nm in enumerate(names):
            lo, hi = _auroc_jack(full[a, j], reps[:, a, j], level)
            rows.append(
                {
                    "target": t,
                    label: nm,
                    **_count(y),
                    "auroc": full[a, j],
                    "low": lo,
                    "high": hi,
                    "ci_method": desc,
                }
            )
        est = float(full[0, j] - full[1, j])
        lo, hi, p = _diff_jack(est, reps[:, 0, j] - reps[:, 1, j], level)
        rows.append(
            {
                "target": t,
                label: "difference",
                **_count(y),
                "estimate": est,
                "low": lo,
                "high": hi,
                "p_value": p,
                "ci_method": desc,
            }
        )
    return rows


def _grid(Cs: Any, n_c: int, X: np.ndarray) -> np.ndarray:
    from .cross_validation import default_Cs

    return default_Cs(n_c, X.shape[0], X.shape[1]) if Cs is None else np.sort(np.asarray(Cs, float))


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
        A :class:`~tario_clinical.cohort.Cohort` (exclusions are appended to
        ``cohort.exclusions``) or a DataFrame with ``patient_id`` and the target columns
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
    data = _prepare(representations, cohort, targets)
    X, Y = data.X, data.labels.to_numpy(float)
    grid = _grid(Cs, n_c, X)
    seeds = np.random.SeedSequence(seed).spawn(len(fr) + 2)
    # the same outer (and inner) folds for every fraction
    design = _Design(Y, n_splits, n_inner_splits, seeds[-2])
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
            S[test] = _fit_score(
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
        return np.array([_pooled_auroc(Y[:, j], S[:, j], keep) for j in range(Y.shape[1])])

    groups = _jackknife_groups(Y, n_jackknife, seeds[-1])
    everyone = np.ones(Y.shape[0], dtype=bool)
    rows = []
    desc = _JACK.format(G=n_jackknife)
    for i, f in enumerate(fr):
        full = stat(i, everyone)
        reps = _jack_stats(lambda keep, i=i: stat(i, keep), groups, n_jackknife)
        n_train = int(np.mean([subs[(i, k)].size for k in range(n_splits)]))
        for j, t in enumerate(targets):
            lo, hi = _auroc_jack(full[j], reps[:, j], level)
            rows.append(
                {
                    "target": t,
                    "fraction": f,
                    "n_train": n_train,
                    **_count(Y[:, j]),
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
        A :class:`~tario_clinical.cohort.Cohort` (exclusions are appended to
        ``cohort.exclusions``) or a DataFrame with ``patient_id`` and the target columns
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
    data = _prepare(representations, cohort, targets)
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
    grid = _grid(Cs, n_c, X)
    s_design, s_jack = np.random.SeedSequence(seed).spawn(2)
    design = _Design(Y[inside], n_splits, n_inner_splits, s_design)
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
                S[design.folds == k] = _fit_score(
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
            out[row] = [_pooled_auroc(Yin[:, j], S[:, j], kin) for j in range(len(targets))]
        return out

    groups = _jackknife_groups(Y, n_jackknife, s_jack)
    rows = _paired_rows(
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
    )


# ------------------------------------------------------------------------------ (c)
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
        A :class:`~tario_clinical.cohort.Cohort` (exclusions are appended to
        ``cohort.exclusions``) or a DataFrame with ``patient_id`` and the target columns
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
    data = _prepare(representations, cohort, targets)
    if group_column not in data.clinical.columns:
        raise SchemaError(f"column {group_column!r} not in the clinical table.")
    X, Y = data.X, data.labels.to_numpy(float)
    grp = data.clinical[group_column].astype(str).to_numpy()
    names = np.unique(grp)
    if names.size < 2:
        raise AnalysisError(f"column {group_column!r} has one group only; nothing to transfer to.")
    grid = _grid(Cs, n_c, X)
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
            S[te] = _fit_score(
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
    groups = _jackknife_groups(Y, n_jackknife, seeds[-1])

    def pooled_stat(keep: np.ndarray) -> np.ndarray:
        sc = scores(keep)
        return np.array([_pooled_auroc(Y[:, j], sc[:, j], keep) for j in range(len(targets))])

    reps = _jack_stats(pooled_stat, groups, n_jackknife)
    rows = []
    for j, t in enumerate(targets):
        for g in names:
            m = grp == g
            rows.append(
                {
                    "target": t,
                    "group": g,
                    **_auroc_row(Y[m, j], S[m, j], level),
                    "ci_method": _DELONG_INDEP,
                }
            )
        pooled = _pooled_auroc(Y[:, j], S[:, j])
        lo, hi = _auroc_jack(pooled, reps[:, j], level)
        rows.append(
            {
                "target": t,
                "group": "pooled",
                **_count(Y[:, j]),
                "auroc": pooled,
                "low": lo,
                "high": hi,
                "ci_method": _JACK.format(G=n_jackknife),
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
        A :class:`~tario_clinical.cohort.Cohort` (exclusions are appended to
        ``cohort.exclusions``) or a DataFrame with ``patient_id`` and the target columns
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
    da = _prepare(representation_a, cohort, targets)
    db = _prepare(representation_b, cohort, targets)
    common = np.intersect1d(da.labels.index.to_numpy(), db.labels.index.to_numpy())
    if common.size < 2 * n_splits:
        raise AnalysisError(f"only {common.size} patients are in both representations.")
    ia = pd.Index(da.labels.index).get_indexer(common)
    ib = pd.Index(db.labels.index).get_indexer(common)
    Xa, Xb = da.X[ia], db.X[ib]
    Y = da.labels.to_numpy(float)[ia]
    s_design, s_jack = np.random.SeedSequence(seed).spawn(2)
    design = _Design(Y, n_splits, n_inner_splits, s_design)  # same folds for both
    grids = (_grid(None, n_c, Xa), _grid(None, n_c, Xb))

    def stat(keep: np.ndarray) -> np.ndarray:
        out = np.full((2, len(targets)), np.nan)
        for a, Xr in enumerate((Xa, Xb)):
            S = np.full(Y.shape, np.nan)
            for k in range(n_splits):
                test = np.flatnonzero(design.folds == k)
                tr = np.flatnonzero(design.folds != k)
                S[test] = _fit_score(
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
            out[a] = [_pooled_auroc(Y[:, j], S[:, j], keep) for j in range(len(targets))]
        return out

    groups = _jackknife_groups(Y, n_jackknife, s_jack)
    rows = _paired_rows(
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
    )
