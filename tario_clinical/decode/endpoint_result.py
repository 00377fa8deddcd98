"""Results of the endpoint decoders: one tidy summary shape for every kind of target.

:class:`EndpointResult` holds one target's cross-validated decoder (categorical, continuous,
time to event or treatment benefit); :class:`EndpointResults` holds several (and, from
:func:`tario_clinical.decode` with mixed targets, the binary :class:`DecodeResult` too). Their
``summary()`` tables share the columns :data:`SUMMARY_COLUMNS`::

    target, kind, n, metric, estimate, se, low, high, p_value, p_method, ci_method, note

so that binary, categorical, continuous, survival and benefit rows stack into one table.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .._json import json_safe
from ..errors import AnalysisError, SchemaError
from ..palette import OKABE_ITO
from .result import DecodeResult

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

__all__ = [
    "SUMMARY_COLUMNS",
    "LinearModel",
    "EndpointResult",
    "EndpointResults",
    "binary_summary",
]

#: columns of every endpoint summary table, in order
SUMMARY_COLUMNS = [
    "target",
    "kind",
    "n",
    "metric",
    "estimate",
    "se",
    "low",
    "high",
    "p_value",
    "p_method",
    "ci_method",
    "note",
]


@dataclass(frozen=True)
class LinearModel:
    """A linear decoder fitted on all patients (penalty chosen by inner CV on them).

    ``predict(X) = ((X - mean_) / scale_) @ coef_ + intercept_``: a value (continuous), class
    log-odds (categorical, one column per class), the log relative hazard (Cox) or the benefit
    score (benefit).

    Attributes
    ----------
    kind : str
    penalty : float
        The chosen penalty (``alpha`` of ridge, ``lambda`` of Cox, ``C`` of logistic models).
    mean_, scale_ : (D,) standardisation of the features
    coef_ : (D,) or (D, K) coefficients on the standardised scale
    intercept_ : float or (K,)
    feature_names_in_ : (D,) str
    classes_ : list of str or None
    """

    kind: str
    penalty: float
    mean_: np.ndarray
    scale_: np.ndarray
    coef_: np.ndarray
    intercept_: Any
    feature_names_in_: np.ndarray
    classes_: list[str] | None = None

    def predict(self, X: Any) -> np.ndarray:
        """Linear predictor of new rows ``X`` (array or DataFrame with the training columns)."""
        if isinstance(X, pd.DataFrame):
            X = X.set_axis(X.columns.astype(str), axis=1)
            missing = [c for c in self.feature_names_in_ if c not in X.columns]
            if missing:
                raise SchemaError(
                    f"X lacks {len(missing)} training features, e.g. {missing[:5]}; pass the "
                    "columns the decoder was trained on."
                )
            X = X[list(self.feature_names_in_)].to_numpy()
        X = np.asarray(X, dtype=float)
        if X.ndim != 2 or X.shape[1] != self.mean_.size:
            raise SchemaError(f"X must have {self.mean_.size} columns; got shape {X.shape}.")
        return ((X - self.mean_) / self.scale_) @ self.coef_ + self.intercept_

    def coefficients(self) -> pd.DataFrame:
        """Coefficients on the standardised scale, indexed by feature (one column per class)."""
        coef = self.coef_.reshape(self.mean_.size, -1)
        cols = self.classes_ if self.classes_ else ["coef"]
        return pd.DataFrame(
            coef, index=pd.Index(self.feature_names_in_, name="feature"), columns=cols
        )


@dataclass(frozen=True)
class EndpointResult:
    """Cross-validated linear decoder of one target (any kind but binary).

    Attributes
    ----------
    target : str
    kind : {"categorical", "continuous", "survival", "benefit"}
    metrics : DataFrame
        One row per metric: ``metric, estimate, se, low, high, ci_method, p_value, p_method,
        p_mc_se`` (see :mod:`tario_clinical.decode.endpoint_inference`); ``estimate`` is the
        mean over repeats of the metric of the pooled out-of-fold predictions.
    oof : DataFrame
        Out-of-fold predictions, one row per patient and repeat: ``patient_id, target, repeat,
        fold, score`` and kind-specific columns (``prediction, y_true`` for continuous targets;
        ``p_<class>, y_true, predicted`` for categorical; ``risk, time, event`` for survival;
        ``benefit, arm`` and the outcome for benefit). ``score`` is the fold model's output
        standardised on that fold's training patients (higher = higher value / risk /
        benefit), so it feeds :func:`tario_clinical.survival.stratify` like a decoded
        target's score.
    folds : DataFrame
        ``target, repeat, fold, penalty, n_train, n_test`` of every outer fold.
    exclusions : DataFrame
        ``patient_id, target, reason``.
    params : dict
        Everything needed to reproduce the run.
    tables : dict of DataFrame
        Kind-specific tables (``confusion``, ``per_class``, ``calibration``, ``td_auc``,
        ``benefit_groups``, ``effect_curve`` ...).
    resamples : dict of DataFrame
        Replicates behind the inference (one column per metric).
    final_model : LinearModel or None
    notes : tuple of str
    metric_notes : dict
        ``metric -> note`` (small classes, estimability ...).
    """

    target: str
    kind: str
    metrics: pd.DataFrame
    oof: pd.DataFrame
    folds: pd.DataFrame
    exclusions: pd.DataFrame
    params: dict[str, Any]
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    resamples: dict[str, pd.DataFrame] = field(default_factory=dict)
    final_model: LinearModel | None = None
    notes: tuple[str, ...] = ()
    metric_notes: dict[str, str] = field(default_factory=dict)

    @property
    def n(self) -> int:
        """Number of analysed patients."""
        return int(self.oof["patient_id"].nunique())

    @property
    def targets(self) -> list[str]:
        """``[target]`` (for code written against :class:`DecodeResult`)."""
        return [self.target]

    def summary(self) -> pd.DataFrame:
        """One row per metric with the columns :data:`SUMMARY_COLUMNS`."""
        m = self.metrics
        out = pd.DataFrame(
            {
                "target": self.target,
                "kind": self.kind,
                "n": self.n,
                "metric": m["metric"],
                "estimate": m["estimate"],
                "se": m["se"],
                "low": m["low"],
                "high": m["high"],
                "p_value": m["p_value"],
                "p_method": m["p_method"],
                "ci_method": m["ci_method"],
                "note": [self.metric_notes.get(x, "") for x in m["metric"]],
            }
        )
        if "open_bound" in m:
            cut = "no-signal value excluded by the exact permutation test (open bound)"
            out["note"] = [
                "; ".join(x for x in (n, cut if bool(o) else "") if x)
                for n, o in zip(out["note"], m["open_bound"].fillna(False), strict=True)
            ]
        return out[SUMMARY_COLUMNS].reset_index(drop=True)

    def estimate(self, metric: str) -> pd.Series:
        """The summary row of ``metric``."""
        s = self.summary().set_index("metric")
        if metric not in s.index:
            raise SchemaError(f"no metric {metric!r}; metrics: {s.index.tolist()}")
        return s.loc[metric]

    def oof_scores(self, target: str | None = None) -> pd.Series:
        """Mean out-of-fold ``score`` per patient over repeats, indexed by ``patient_id``."""
        if target is not None and target != self.target:
            raise SchemaError(f"target {target!r} was not decoded here; decoded: {self.target!r}")
        s = self.oof.groupby("patient_id", sort=True)["score"].mean()
        s.name = self.target
        return s

    # ------------------------------------------------------------------------ plots
    def plot_calibration(self, ax: Axes | None = None, *, n_bins: int = 10) -> Axes:
        """Observed against predicted (continuous: binned means; survival: risk at the horizon).

        Continuous: mean observed value against mean OOF prediction in quantile bins of the
        prediction (mean over repeats per patient). Survival: ``tables["calibration"]``
        (Kaplan-Meier risk against mean predicted risk at the horizon, per risk fifth).
        """
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(4.5, 4.5))
        if self.kind == "continuous":
            pp = self.oof.groupby("patient_id")[["prediction", "y_true"]].mean()
            bins = pd.qcut(
                pp["prediction"].rank(method="first"), min(n_bins, len(pp)), labels=False
            )
            g = pp.groupby(bins).mean()
            ax.plot(g["prediction"], g["y_true"], marker="o", ms=3)
            lo = float(min(g.min()))
            hi = float(max(g.max()))
            ax.set_xlabel(f"predicted {self.target}")
            ax.set_ylabel(f"observed {self.target}")
        elif self.kind == "survival" and "calibration" in self.tables:
            c = self.tables["calibration"]
            ax.errorbar(
                c["predicted_risk"],
                c["observed_risk"],
                yerr=[c["observed_risk"] - c["low"], c["high"] - c["observed_risk"]],
                marker="o",
                ms=3,
                ls="-",
            )
            lo, hi = 0.0, 1.0
            ax.set_xlabel(f"predicted risk by {self.params.get('horizon'):g}")
            ax.set_ylabel("observed risk (Kaplan-Meier)")
        else:
            raise AnalysisError(f"no calibration plot for a {self.kind} decoder.")
        ax.plot([lo, hi], [lo, hi], ls="--", color="grey", lw=0.8)
        ax.set_title(f"Calibration (out-of-fold) — {self.target}")
        return ax

    def plot_confusion(self, ax: Axes | None = None, *, normalize: bool = True) -> Axes:
        """Confusion matrix of the OOF predicted class (rows true, columns predicted)."""
        import matplotlib.pyplot as plt

        if "confusion" not in self.tables:
            raise AnalysisError(f"no confusion matrix for a {self.kind} decoder.")
        cm = self.tables["confusion"]
        vals = cm.to_numpy(dtype=float)
        if normalize:
            vals = vals / np.maximum(vals.sum(axis=1, keepdims=True), 1e-12)
        if ax is None:
            _, ax = plt.subplots(figsize=(1.0 + 0.6 * len(cm), 0.8 + 0.6 * len(cm)))
        ax.imshow(vals, cmap="Blues", vmin=0, vmax=1 if normalize else None)
        for i in range(vals.shape[0]):
            for j in range(vals.shape[1]):
                ax.text(j, i, f"{vals[i, j]:.2f}", ha="center", va="center", fontsize=7)
        ax.set_xticks(range(len(cm.columns)), [str(c) for c in cm.columns], rotation=45, ha="right")
        ax.set_yticks(range(len(cm.index)), [str(c) for c in cm.index])
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{self.target}: out-of-fold confusion" + (" (row %)" if normalize else ""))
        return ax

    def plot_benefit(self, ax: Axes | None = None) -> Axes:
        """Treatment effect (log HR or log OR) as a function of the benefit score, with 95 % band."""
        import matplotlib.pyplot as plt

        if "effect_curve" not in self.tables:
            raise AnalysisError(f"no benefit curve for a {self.kind} decoder.")
        c = self.tables["effect_curve"]
        if ax is None:
            _, ax = plt.subplots(figsize=(5, 3.5))
        ax.plot(c["score"], c["estimate"], color=OKABE_ITO[0])
        ax.fill_between(c["score"], c["low"], c["high"], color=OKABE_ITO[0], alpha=0.2)
        ax.axhline(0.0, color="grey", lw=0.8, ls="--")
        ax.set_xlabel("benefit score (out-of-fold, SD units)")
        ax.set_ylabel(str(c["effect"].iloc[0]))
        ax.set_title(f"Treatment effect by predicted benefit — {self.target}")
        return ax

    # ------------------------------------------------------------------------ export
    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict: summary rows, tables, folds, exclusion counts, parameters, notes."""
        excl = (
            self.exclusions.groupby(["target", "reason"]).size().reset_index(name="n")
            if len(self.exclusions)
            else pd.DataFrame(columns=["target", "reason", "n"])
        )
        tables = {}
        for k, v in self.tables.items():
            tables[k] = v.reset_index() if k == "confusion" else v
        return json_safe(
            {
                "target": self.target,
                "kind": self.kind,
                "summary": self.summary(),
                "tables": tables,
                "folds": self.folds,
                "exclusions": excl,
                "resamples": {
                    k: {"n": len(v), "mean": v.mean().to_dict(), "sd": v.std(ddof=1).to_dict()}
                    for k, v in self.resamples.items()
                },
                "params": self.params,
                "notes": list(self.notes),
            }
        )

    def _repr_html_(self) -> str:
        return _summary_html(self.summary(), f"{self.kind} decoder — {self.params.get('cv', '')}")

    def __repr__(self) -> str:
        return (
            f"EndpointResult(target={self.target!r}, kind={self.kind!r}, n={self.n}, "
            f"cv={self.params.get('cv')!r})"
        )


def _summary_html(s: pd.DataFrame, caption: str) -> str:
    cols = ["target", "kind", "n", "metric", "estimate", "low", "high", "p_value", "note"]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = []
    for _, r in s[cols].iterrows():
        cells = []
        for c in cols:
            v = r[c]
            if isinstance(v, float):
                txt = f"{v:.3g}" if c == "p_value" else f"{v:.3f}"
            else:
                txt = str(v)
            cells.append(f"<td>{html.escape(txt)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><caption>{html.escape(caption)}</caption><tr>{head}</tr>{''.join(body)}</table>"


def binary_summary(result: DecodeResult) -> pd.DataFrame:
    """A binary :class:`DecodeResult`'s summary in the endpoint columns (:data:`SUMMARY_COLUMNS`).

    One ``auroc`` row per target with its interval and p-value, then ``auprc``, ``brier`` and
    the calibration intercept and slope as point estimates (no interval: ``ci_method`` empty).
    """
    s = result.summary()
    rows = []
    for _, r in s.iterrows():
        base = {"target": r["target"], "kind": "binary", "n": int(r["n"])}
        rows.append(
            {
                **base,
                "metric": "auroc",
                "estimate": r["auroc"],
                "se": r["se"],
                "low": r["low"],
                "high": r["high"],
                "p_value": r["p_value"],
                "p_method": r["p_method"],
                "ci_method": r["ci_method"],
                "note": r["note"],
            }
        )
        for m in ("auprc", "brier", "calibration_intercept", "calibration_slope"):
            rows.append(
                {
                    **base,
                    "metric": m,
                    "estimate": r[m],
                    "se": np.nan,
                    "low": np.nan,
                    "high": np.nan,
                    "p_value": np.nan,
                    "p_method": "",
                    "ci_method": "",
                    "note": "point estimate on the out-of-fold probabilities",
                }
            )
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


@dataclass(frozen=True)
class EndpointResults:
    """Decoders of several targets, possibly of different kinds.

    Attributes
    ----------
    results : dict
        ``target -> EndpointResult`` for categorical / continuous targets.
    binary : DecodeResult or None
        The binary targets' result (from :func:`tario_clinical.decode` with mixed targets).
    target_types : dict
        ``target -> (kind, reason)``: how each target's kind was chosen.
    """

    results: dict[str, EndpointResult]
    binary: DecodeResult | None = None
    target_types: dict[str, tuple[str, str]] = field(default_factory=dict)

    @property
    def targets(self) -> list[str]:
        """All targets in the order given."""
        if self.target_types:
            return list(self.target_types)
        return (self.binary.targets if self.binary else []) + list(self.results)

    def __getitem__(self, target: str) -> EndpointResult | DecodeResult:
        if target in self.results:
            return self.results[target]
        if self.binary is not None and target in self.binary.targets:
            return self.binary
        raise SchemaError(f"target {target!r} was not decoded; decoded targets: {self.targets}")

    def summary(self) -> pd.DataFrame:
        """All targets' rows in the columns :data:`SUMMARY_COLUMNS` (binary first)."""
        parts = [binary_summary(self.binary)] if self.binary is not None else []
        parts += [r.summary() for r in self.results.values()]
        if not parts:
            return pd.DataFrame(columns=SUMMARY_COLUMNS)
        return pd.concat(parts, ignore_index=True)[SUMMARY_COLUMNS]

    @property
    def oof(self) -> pd.DataFrame:
        """Out-of-fold rows of every target (columns: the union; ``patient_id, target, repeat,
        fold, score`` are common)."""
        parts = [self.binary.oof] if self.binary is not None else []
        parts += [r.oof for r in self.results.values()]
        return pd.concat(parts, ignore_index=True, sort=False)

    @property
    def exclusions(self) -> pd.DataFrame:
        """Every exclusion (``patient_id, target, reason``)."""
        parts = [self.binary.exclusions] if self.binary is not None else []
        parts += [r.exclusions for r in self.results.values()]
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()

    def oof_scores(self, target: str) -> pd.Series:
        """Mean out-of-fold score per patient of ``target``."""
        return self[target].oof_scores(target)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict: the stacked summary, each result's dict and the target types."""
        return json_safe(
            {
                "summary": self.summary(),
                "target_types": {
                    t: {"kind": k, "reason": w} for t, (k, w) in self.target_types.items()
                },
                "binary": None if self.binary is None else self.binary.to_dict(),
                "results": {t: r.to_dict() for t, r in self.results.items()},
            }
        )

    def _repr_html_(self) -> str:
        return _summary_html(self.summary(), f"decoders of {len(self.targets)} targets")

    def __repr__(self) -> str:
        kinds = {t: k for t, (k, _) in self.target_types.items()}
        return f"EndpointResults(targets={kinds or self.targets})"
