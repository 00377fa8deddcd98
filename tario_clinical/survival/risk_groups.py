"""From scores to risk groups: one score per patient, the cut-off rule, cross-fitted folds
and cut-offs, group labels. The steps of :func:`~tario_clinical.survival.stratify` before any
survival analysis; used by :mod:`.stratification`, not re-exported by the package face.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd

from ..errors import AnalysisError, SchemaError

__all__ = [
    "CutoffKind",
    "CUTOFFS",
    "CROSS_FITTED",
    "scores_series",
    "cutoff_rule",
    "cross_fitting_folds",
    "cross_fitted_groups",
    "cut_groups",
    "group_labels",
]

CutoffKind = Literal["median", "tertiles", "quantile", "prevalence", "probability", "optimal"]

CUTOFFS = ("median", "tertiles", "quantile", "prevalence", "probability", "optimal")

#: cut-off rules computed by cross-fitting (each fold's cut-off from the other folds)
CROSS_FITTED = ("median", "tertiles", "quantile", "prevalence")


def scores_series(scores: Any, *, target: str | None = None, column: str = "score") -> pd.Series:
    """Decoder scores as one float per patient_id (mean over repeats of a tidy OOF table)."""
    if isinstance(scores, pd.Series):
        s = scores.copy()
        s.index = s.index.astype(str)
        dup = s.index.duplicated()
        if dup.any():
            raise SchemaError(
                f"scores: duplicate patient_id(s) {sorted(set(s.index[dup]))[:5]} in the Series; "
                "pass the tidy OOF table (patient_id, repeat, score) to average repeats"
            )
        val = pd.to_numeric(s, errors="coerce").astype(float)
        return val.where(np.isfinite(val))  # +-inf is excluded and listed like NaN
    if hasattr(scores, "to_pandas") and not isinstance(scores, pd.DataFrame):
        scores = scores.to_pandas()
    if isinstance(scores, pd.DataFrame):
        if "target" in scores.columns:
            targets = sorted(scores["target"].dropna().astype(str).unique())
            if target is not None:
                if target not in targets:
                    raise SchemaError(f"scores table has no target {target!r}; targets: {targets}")
                scores = scores[scores["target"].astype(str) == target]
            elif len(targets) > 1:
                raise SchemaError(
                    f"scores table holds {len(targets)} targets {targets}; pass target=... to choose one"
                )
        if column not in scores.columns:
            column = "score"
        missing = [c for c in ("patient_id", column) if c not in scores.columns]
        if missing:
            raise SchemaError(
                f"scores table lacks column(s) {missing}; expected the decoder's OOF table with "
                f"columns patient_id, repeat, score; got {list(scores.columns)}"
            )
        val = pd.to_numeric(scores[column], errors="coerce").astype(float)
        val = val.where(np.isfinite(val))
        pid = scores["patient_id"].astype(str)
        # a non-finite score in any repeat makes the patient's mean NaN (excluded and listed)
        grouped = pd.DataFrame({"patient_id": pid, "score": val}).groupby("patient_id", sort=False)[
            "score"
        ]
        return grouped.mean().where(~grouped.apply(lambda v: v.isna().any()))
    raise TypeError(
        f"scores must be a pandas Series indexed by patient_id or the OOF DataFrame "
        f"(patient_id, repeat, score); got {type(scores).__name__}"
    )


def cutoff_rule(
    cutoff: CutoffKind | float,
    *,
    quantile: float | None,
    prevalence: float | None,
    probability: float,
    score: np.ndarray,
) -> tuple[str, np.ndarray | None, np.ndarray | None]:
    """``(method label, quantiles to cross-fit or None, fixed cut-offs or None)``; both None
    for the optimal cut-point."""
    if isinstance(cutoff, (int, float)) and not isinstance(cutoff, bool):
        return f"fixed ({float(cutoff):g})", None, np.array([float(cutoff)])
    if cutoff == "probability":
        if not (0 < probability < 1):
            raise ValueError(f"probability must be in (0, 1); got {probability}")
        if score.min() < 0 or score.max() > 1:
            raise SchemaError(
                "cutoff='probability' needs scores in [0, 1]; got range "
                f"{score.min():g}..{score.max():g}"
            )
        return f"probability ({probability:g})", None, np.array([float(probability)])
    if cutoff == "optimal":
        return "optimal", None, None
    if cutoff == "median":
        qs = np.array([0.5])
    elif cutoff == "tertiles":
        qs = np.array([1 / 3, 2 / 3])
    elif cutoff == "quantile":
        if quantile is None or not (0 < quantile < 1):
            raise ValueError(f"cutoff='quantile' needs quantile in (0, 1); got {quantile!r}")
        qs = np.array([float(quantile)])
    else:  # prevalence
        if prevalence is None or not (0 < prevalence < 1):
            raise ValueError(f"cutoff='prevalence' needs prevalence in (0, 1); got {prevalence!r}")
        qs = np.array([1.0 - float(prevalence)])
    return str(cutoff), qs, None


def cross_fitting_folds(
    patient_ids: pd.Series, *, folds: pd.Series | None, n_folds: int, seed: int
) -> np.ndarray:
    """Fold of each patient: the given labels, else balanced random folds from ``seed`` (the
    same for the same patients whatever their row order)."""
    n = len(patient_ids)
    if folds is not None:
        f = pd.Series(folds)
        f.index = f.index.astype(str)
        lab = patient_ids.map(f)
        if lab.isna().any():
            raise SchemaError(
                f"folds: no fold for patient(s) {patient_ids[lab.isna()].head().tolist()}"
            )
        return pd.factorize(lab, sort=True)[0]
    if n_folds < 2:
        raise ValueError(f"n_folds must be >= 2; got {n_folds}")
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    order = np.argsort(patient_ids.to_numpy(), kind="mergesort")
    perm = rng.permutation(n)
    fold = np.empty(n, dtype=int)
    fold[order[perm]] = np.arange(n) % min(n_folds, n)
    return fold


def cross_fitted_groups(
    score: np.ndarray, fold: np.ndarray, qs: np.ndarray
) -> tuple[np.ndarray, pd.DataFrame, np.ndarray]:
    """Group index of each patient at the quantiles ``qs`` of the other folds' scores, the
    cut-offs of each fold (``fold, quantile, cutoff``) and the upper cut-off applied to each."""
    k = int(fold.max()) + 1
    if k < 2:
        raise AnalysisError("stratify: cross-fitting needs at least two folds")
    cut_rows, cut_of = [], np.zeros((score.size, qs.size))
    for j in range(k):
        cuts = np.quantile(score[fold != j], qs)
        cut_of[fold == j] = cuts
        for qq, c in zip(qs, cuts, strict=True):
            cut_rows.append({"fold": j, "quantile": float(qq), "cutoff": float(c)})
    gidx = (score[:, None] > cut_of).sum(axis=1)
    return gidx, pd.DataFrame(cut_rows), cut_of[:, -1]


def cut_groups(score: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    """Group index = number of cut-offs strictly below the score (high = score > cutoff)."""
    return (score[:, None] > cuts).sum(axis=1)


def group_labels(gidx: np.ndarray, *, three: bool) -> tuple[pd.Categorical, list[str]]:
    """Ordered risk-group labels (low/high, or low/middle/high for tertiles) and those present."""
    labels = ("low", "middle", "high") if three else ("low", "high")
    present = [labels[i] for i in sorted(set(gidx.tolist()))]
    groups = pd.Categorical([labels[i] for i in gidx], categories=list(present), ordered=True)
    return groups, present
