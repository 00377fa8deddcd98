"""The decoding analyses reported in the TARIO-2 and M-Optimus-1 write-ups.

(a) :func:`learning_curve` — pooled out-of-fold AUROC vs fraction of training patients;
(b) :func:`generalist_vs_specialist` — pan-cancer vs one-cancer-type decoders scored on the same
    held-out patients, paired DeLong;
(c) :func:`leave_one_group_out` — transfer to an unseen cancer type / site;
(d) :func:`representation_comparison` — the same decoders on two representations of the same
    patients, paired DeLong per target.

Every analysis keeps the patient as the unit of CV, chooses C by inner CV inside training folds
only, pools out-of-fold scores before computing AUROC and seeds every random choice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .. import metrics
from ..errors import AnalysisError, SchemaError
from . import engine as _engine
from .result import json_safe
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


def _fit_score(
    X: np.ndarray,
    Y: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    Cs: np.ndarray,
    *,
    n_inner_splits: int,
    class_weight: str | None,
    pca: int | None,
    rng: np.random.Generator,
) -> np.ndarray:
    """Nested-CV fit on ``train`` rows (all targets at once), decision scores on ``test`` rows."""
    inner = assign_folds(Y[train], n_inner_splits, rng)
    basis = _engine.fold_basis(X, train, test, n_components=pca)
    return _engine.nested_fold(basis, Y[train], inner, Cs, class_weight=class_weight).test_scores


def _cv_scores(
    X: np.ndarray,
    Y: np.ndarray,
    *,
    n_splits: int,
    seed: np.random.SeedSequence,
    train_filter: Any = None,
    n_inner_splits: int,
    Cs: np.ndarray,
    class_weight: str | None,
    pca: int | None,
) -> np.ndarray:
    """Out-of-fold scores (one repeat) for rows x targets; ``train_filter(train)`` subsets training rows."""
    s_fold, s_inner = seed.spawn(2)
    folds = assign_folds(Y, n_splits, np.random.default_rng(s_fold))
    out = np.full(Y.shape, np.nan)
    rngs = [np.random.default_rng(s) for s in s_inner.spawn(n_splits)]
    for k in range(n_splits):
        test = np.flatnonzero(folds == k)
        train = np.flatnonzero(folds != k)
        if train_filter is not None:
            train = train_filter(train, k)
        out[test] = _fit_score(
            X,
            Y,
            train,
            test,
            Cs,
            n_inner_splits=n_inner_splits,
            class_weight=class_weight,
            pca=pca,
            rng=rngs[k],
        )
    return out


def _auroc_row(y: np.ndarray, s: np.ndarray, level: float) -> dict[str, Any]:
    ok = ~np.isnan(y) & ~np.isnan(s)
    yy, ss = y[ok].astype(int), s[ok]
    if yy.size == 0 or yy.min() == yy.max():
        return {
            "n": int(yy.size),
            "n_positive": int(yy.sum()),
            "auroc": np.nan,
            "low": np.nan,
            "high": np.nan,
        }
    r = metrics.auroc_ci(yy, ss, level=level)
    return {"n": r.n, "n_positive": r.n_positive, "auroc": r.auroc, "low": r.low, "high": r.high}


def _paired_rows(
    targets: Sequence[str],
    Y: np.ndarray,
    score_a: np.ndarray,
    score_b: np.ndarray,
    label: str,
    names: tuple[str, str],
    level: float,
) -> list[dict[str, Any]]:
    """AUROC of two scorings of the same patients per target, plus their paired DeLong difference."""
    rows = []
    for j, t in enumerate(targets):
        y = Y[:, j]
        rows.append({"target": t, label: names[0], **_auroc_row(y, score_a[:, j], level)})
        rows.append({"target": t, label: names[1], **_auroc_row(y, score_b[:, j], level)})
        ok = ~np.isnan(y)
        if 0 < y[ok].sum() < ok.sum():
            d = metrics.delong_test(y[ok].astype(int), score_a[ok, j], score_b[ok, j], level=level)
            rows.append(
                {
                    "target": t,
                    label: "difference",
                    "n": int(ok.sum()),
                    "n_positive": int(y[ok].sum()),
                    "estimate": d.estimate,
                    "low": d.low,
                    "high": d.high,
                    "p_value": d.p_value,
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
    rows = []
    seeds = np.random.SeedSequence(seed).spawn(len(fr) + 1)
    for i, f in enumerate(fr):
        sub_rng = np.random.default_rng(seeds[i])
        n_train_used: list[int] = []

        def subsample(
            train: np.ndarray,
            k: int,
            f: float = f,
            rng: np.random.Generator = sub_rng,
            used: list[int] = n_train_used,
        ) -> np.ndarray:
            if f >= 1.0:
                used.append(train.size)
                return train
            fold = assign_folds(Y[train], max(2, int(round(1 / f))), rng)
            pick = train[fold == 0]
            used.append(pick.size)
            return np.sort(pick)

        # the same outer folds for every fraction: the fold seed is shared
        S = _cv_scores(
            X,
            Y,
            n_splits=n_splits,
            seed=np.random.SeedSequence(seeds[-1].entropy, spawn_key=seeds[-1].spawn_key),
            train_filter=subsample,
            n_inner_splits=n_inner_splits,
            Cs=grid,
            class_weight=class_weight,
            pca=pca,
        )
        for j, t in enumerate(targets):
            rows.append(
                {
                    "target": t,
                    "fraction": f,
                    "n_train": int(np.mean(n_train_used)),
                    **_auroc_row(Y[:, j], S[:, j], level),
                }
            )
    return AnalysisResult(
        pd.DataFrame(rows),
        "learning_curve",
        {"fractions": list(fr), "n_splits": n_splits, "seed": seed, "Cs": grid.tolist()},
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
    seed: int = 0,
) -> AnalysisResult:
    """Pan-cancer (generalist) vs one-cancer-type (specialist) decoder on the same held-out patients.

    Folds are made over patients of ``cancer_type``; in each fold the specialist trains on the
    training patients of ``cancer_type`` only and the generalist on those plus *all* patients of
    other cancer types; both score the held-out ``cancer_type`` patients, compared by paired
    DeLong per target.

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
    s_fold, s_inner = np.random.SeedSequence(seed).spawn(2)
    folds = assign_folds(Y[inside], n_splits, np.random.default_rng(s_fold))
    spec = np.full((inside.size, len(targets)), np.nan)
    gen = np.full_like(spec, np.nan)
    rngs = [np.random.default_rng(s) for s in s_inner.spawn(2 * n_splits)]
    for k in range(n_splits):
        te = inside[folds == k]
        tr_in = inside[folds != k]
        spec[folds == k] = _fit_score(
            X,
            Y,
            tr_in,
            te,
            grid,
            n_inner_splits=n_inner_splits,
            class_weight=class_weight,
            pca=pca,
            rng=rngs[2 * k],
        )
        gen[folds == k] = _fit_score(
            X,
            Y,
            np.sort(np.r_[tr_in, outside]),
            te,
            grid,
            n_inner_splits=n_inner_splits,
            class_weight=class_weight,
            pca=pca,
            rng=rngs[2 * k + 1],
        )
    rows = _paired_rows(targets, Y[inside], gen, spec, "model", ("generalist", "specialist"), level)
    return AnalysisResult(
        pd.DataFrame(rows),
        "generalist_vs_specialist",
        {
            "cancer_type": cancer_type,
            "group_column": group_column,
            "n_splits": n_splits,
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
    rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(names.size)]
    S = np.full(Y.shape, np.nan)
    for i, g in enumerate(names):
        te = np.flatnonzero(grp == g)
        tr = np.flatnonzero(grp != g)
        S[te] = _fit_score(
            X,
            Y,
            tr,
            te,
            grid,
            n_inner_splits=n_inner_splits,
            class_weight=class_weight,
            pca=pca,
            rng=rngs[i],
        )
    rows = []
    for j, t in enumerate(targets):
        for g in names:
            m = grp == g
            rows.append({"target": t, "group": g, **_auroc_row(Y[m, j], S[m, j], level)})
        rows.append({"target": t, "group": "pooled", **_auroc_row(Y[:, j], S[:, j], level)})
    return AnalysisResult(
        pd.DataFrame(rows),
        "leave_one_group_out",
        {"group_column": group_column, "seed": seed, "Cs": grid.tolist()},
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
    seed: int = 0,
) -> AnalysisResult:
    """Same decoders, same folds, two representations of the same patients; paired DeLong per target.

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
    sa = _cv_scores(
        Xa,
        Y,
        n_splits=n_splits,
        seed=np.random.SeedSequence(seed),
        n_inner_splits=n_inner_splits,
        Cs=_grid(None, n_c, Xa),
        class_weight=class_weight,
        pca=pca,
    )
    sb = _cv_scores(
        Xb,
        Y,
        n_splits=n_splits,
        seed=np.random.SeedSequence(seed),
        n_inner_splits=n_inner_splits,
        Cs=_grid(None, n_c, Xb),
        class_weight=class_weight,
        pca=pca,
    )
    rows = _paired_rows(targets, Y, sa, sb, "representation", tuple(names), level)
    return AnalysisResult(
        pd.DataFrame(rows),
        "representation_comparison",
        {"names": list(names), "n_splits": n_splits, "seed": seed},
    )
