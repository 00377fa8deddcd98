"""Results of :func:`~tario_clinical.biomarker.validate_biomarker`: tidy tables, JSON, figures."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..errors import AnalysisError
from ._common import html_table, json_safe, records

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

    from .shift import ShiftResult

__all__ = ["ValidationResult", "BiomarkerSurvival", "RESULT_KIND"]

#: ``kind`` of :meth:`ValidationResult.to_dict`
RESULT_KIND = "tario_clinical.biomarker_validation"

_OKABE_ITO = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9")


@dataclass(frozen=True, eq=False)
class BiomarkerSurvival:
    """Survival of the validation cohort by the locked cut-off(s).

    Attributes
    ----------
    endpoint, time, event, time_unit : str
    groups : tuple of str
        Locked groups present (``negative``/``positive``, or ``low``/``middle``/``high``).
    n, events : int
    km : KaplanMeier or None
        :func:`tario_clinical.survival.km` by locked group.
    logrank : DataFrame or None
        Indexed by ``test``: ``statistic, df, p_value`` (trend test with three groups or more).
    cox_unadjusted, cox_adjusted : DataFrame or None
        HR of each group against the lowest (``hr, hr_low, hr_high, p_value``); adjusted for
        ``covariates``.
    rmst : DataFrame or None
        Restricted mean survival time per group and differences.
    concordance : DataFrame or None
        Harrell's and Uno's C of the continuous locked score (higher score = higher risk; a C
        below 0.5 means higher scores live longer).
    interaction : InteractionResult or None
        Arm x locked-group interaction (two arms only).
    notes : tuple of str
    """

    endpoint: str
    time: str
    event: str
    time_unit: str
    groups: tuple[str, ...]
    n: int
    events: int
    km: Any = None
    logrank: pd.DataFrame | None = None
    cox_unadjusted: pd.DataFrame | None = None
    cox_adjusted: pd.DataFrame | None = None
    rmst: pd.DataFrame | None = None
    concordance: pd.DataFrame | None = None
    interaction: Any = None
    covariates: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Every number as JSON-safe Python."""

        def tab(df: pd.DataFrame | None) -> Any:
            return None if df is None else records(df.reset_index())

        return json_safe(
            {
                "endpoint": self.endpoint,
                "time": self.time,
                "event": self.event,
                "time_unit": self.time_unit,
                "groups": list(self.groups),
                "n": self.n,
                "events": self.events,
                "km": None if self.km is None else records(self.km.summary),
                "logrank": tab(self.logrank),
                "cox_unadjusted": tab(self.cox_unadjusted),
                "cox_adjusted": tab(self.cox_adjusted),
                "covariates": list(self.covariates),
                "rmst": records(self.rmst),
                "concordance": tab(self.concordance),
                "interaction": None if self.interaction is None else self.interaction.to_dict(),
                "notes": list(self.notes),
            }
        )

    def plot_km(self, ax: Axes | None = None, **kwargs: Any) -> Any:
        """KM curves by locked group with the log-rank p and a number-at-risk table.

        Returns the display of :meth:`tario_clinical.survival.KaplanMeier.plot` (``ax_``,
        ``figure_``).
        """
        if self.km is None:
            raise AnalysisError("no Kaplan-Meier estimate (see notes)")
        p = None if self.logrank is None else float(self.logrank.loc["log-rank", "p_value"])
        kwargs.setdefault("title", f"{self.time} by the locked cut-off (validation)")
        kwargs.setdefault("time_unit", self.time_unit)
        return self.km.plot(ax=ax, p_value=p, **kwargs)

    def plot_forest(self, ax: Axes | None = None) -> Axes:
        """Forest plot of the treatment effect by locked group (two-arm trials)."""
        if self.interaction is None:
            raise AnalysisError("no arm x biomarker interaction (single-arm trial or no arm)")
        return self.interaction.plot_forest(ax=ax)


@dataclass(frozen=True, eq=False)
class ValidationResult:
    """A locked biomarker applied to an independent cohort, nothing refitted.

    Attributes
    ----------
    target : str
    artefact_sha256 : str
        SHA-256 of the locked artefact used.
    artefact : dict
        Its name, cut-offs, required representation and development record (no arrays).
    representation_check : DataFrame
        ``field, required, found, match, must_match``; ``encoder_overridden`` says whether a
        mismatch was accepted with ``allow_encoder_mismatch``.
    features : dict
        ``n_required, n_given, n_extra`` (features are matched by name; extra ones ignored).
    flow : DataFrame
        Patient flow of the validation cohort: ``step, n, n_excluded, reason``.
    exclusions : DataFrame
        ``patient_id, analysis, reason`` of every patient left out of an analysis.
    scores : DataFrame
        ``patient_id, score, probability, group, y_true`` (+ ``probability_recalibrated``).
    discrimination : DataFrame
        ``metric`` (``auroc``, ``auprc``): ``estimate, se, low, high, method, n, n_positive``.
        The AUROC's SE is DeLong's, valid here because the locked model is fixed and the
        validation patients are independent of its fit; the interval is Wald on the logit
        scale (see :func:`~tario_clinical.biomarker.validate.auroc_logit_interval`).
    calibration : DataFrame
        ``metric, estimate, se, low, high, p_value, null_value, method``: observed prevalence,
        mean predicted, O/E, calibration intercept (in the large), calibration slope, Brier,
        null and scaled Brier.
    calibration_curve, calibration_smooth : DataFrame
        Binned (``bin, n, mean_predicted, observed, low, high``) and lowess (``predicted,
        observed``) calibration.
    decision_curve : DataFrame
        ``threshold, net_benefit, treat_all, treat_none`` (+ ``net_benefit_recalibrated``).
    recalibration : DataFrame or None
        Logistic recalibration fitted on the validation cohort, reported separately from the
        locked performance: ``method, intercept, intercept_low, intercept_high, slope,
        slope_low, slope_high, brier``.
    classification : DataFrame
        At each locked cut-off: ``cutoff, cutoff_score, metric, estimate, low, high, k, n``.
    survival : BiomarkerSurvival or None
    shift : ShiftResult or None
    comparison : DataFrame
        Development vs validation side by side (``metric, development, development_low,
        development_high, development_basis, validation, validation_low, validation_high,
        difference``; ``difference`` = development - validation, the optimism).
    roc : DataFrame
        ``fpr, tpr`` of the validation ROC curve.
    notes : tuple of str
    params : dict
    """

    target: str
    artefact_sha256: str
    artefact: dict[str, Any]
    representation_check: pd.DataFrame
    encoder_overridden: bool
    features: dict[str, int]
    flow: pd.DataFrame
    exclusions: pd.DataFrame
    scores: pd.DataFrame
    discrimination: pd.DataFrame
    calibration: pd.DataFrame
    calibration_curve: pd.DataFrame
    calibration_smooth: pd.DataFrame
    decision_curve: pd.DataFrame
    recalibration: pd.DataFrame | None
    classification: pd.DataFrame
    survival: BiomarkerSurvival | None
    shift: ShiftResult | None
    comparison: pd.DataFrame
    roc: pd.DataFrame
    notes: tuple[str, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)

    # --------------------------------------------------------------------- tables
    def summary(self) -> pd.DataFrame:
        """Headline numbers, one per row: ``section, metric, estimate, low, high, p_value``."""
        rows: list[dict[str, Any]] = []

        def add(
            section: str, metric: str, est: Any, lo: Any = np.nan, hi: Any = np.nan, p: Any = np.nan
        ) -> None:
            rows.append(
                {
                    "section": section,
                    "metric": metric,
                    "estimate": est,
                    "low": lo,
                    "high": hi,
                    "p_value": p,
                }
            )

        for r in self.discrimination.itertuples():
            add("discrimination", r.metric, r.estimate, r.low, r.high)
        for r in self.calibration.itertuples():
            add("calibration", r.metric, r.estimate, r.low, r.high, r.p_value)
        first = self.classification["cutoff"].iloc[0] if len(self.classification) else None
        for r in self.classification[self.classification["cutoff"] == first].itertuples():
            add("classification", f"{r.metric}[{r.cutoff}]", r.estimate, r.low, r.high)
        s = self.survival
        if s is not None:
            if s.cox_unadjusted is not None:
                for term, r in s.cox_unadjusted.iterrows():
                    add(
                        "survival",
                        f"hr_unadjusted[{term}]",
                        r["hr"],
                        r["hr_low"],
                        r["hr_high"],
                        r["p_value"],
                    )
            if s.cox_adjusted is not None:
                for term, r in s.cox_adjusted.iterrows():
                    if str(term).startswith("biomarker"):
                        add(
                            "survival",
                            f"hr_adjusted[{term}]",
                            r["hr"],
                            r["hr_low"],
                            r["hr_high"],
                            r["p_value"],
                        )
            if s.logrank is not None:
                add(
                    "survival",
                    "logrank",
                    s.logrank.loc["log-rank", "statistic"],
                    p=s.logrank.loc["log-rank", "p_value"],
                )
            if s.concordance is not None:
                for method, r in s.concordance.iterrows():
                    add("survival", f"c_index[{method}]", r["estimate"], r["low"], r["high"])
            if s.interaction is not None:
                add("survival", "interaction_p_value", np.nan, p=s.interaction.interaction_p_value)
        if self.shift is not None:
            for r in self.shift.summary().itertuples():
                add("shift", r.metric, r.estimate, r.low, r.high, r.p_value)
        return pd.DataFrame(
            rows, columns=["section", "metric", "estimate", "low", "high", "p_value"]
        )

    def to_dict(self, *, include_patient_ids: bool = False) -> dict[str, Any]:
        """Every number as JSON-safe Python (for ``results.json``).

        Parameters
        ----------
        include_patient_ids : bool, default False
            Add per-patient scores and excluded patient ids (off: only counts per reason).
        """
        excl = (
            self.exclusions.groupby(["analysis", "reason"], sort=True).size().reset_index(name="n")
            if len(self.exclusions)
            else pd.DataFrame(columns=["analysis", "reason", "n"])
        )
        out = {
            "kind": RESULT_KIND,
            "target": self.target,
            "artefact_sha256": self.artefact_sha256,
            "artefact": self.artefact,
            "representation_check": records(self.representation_check),
            "encoder_overridden": self.encoder_overridden,
            "features": self.features,
            "flow": records(self.flow),
            "exclusions": records(excl),
            "summary": records(self.summary()),
            "discrimination": records(self.discrimination),
            "calibration": records(self.calibration),
            "calibration_curve": records(self.calibration_curve),
            "calibration_smooth": records(self.calibration_smooth),
            "decision_curve": records(self.decision_curve),
            "recalibration": records(self.recalibration),
            "classification": records(self.classification),
            "survival": None if self.survival is None else self.survival.to_dict(),
            "shift": None if self.shift is None else self.shift.to_dict(),
            "comparison": records(self.comparison),
            "roc": records(self.roc),
            "notes": list(self.notes),
            "params": self.params,
        }
        if include_patient_ids:
            out["scores"] = records(self.scores)
            out["excluded_patients"] = records(self.exclusions)
        return json_safe(out)

    # ---------------------------------------------------------------------- plots
    def plot_roc(self, ax: Axes | None = None) -> Axes:
        """Validation ROC curve of the locked score, AUROC with its interval in the legend."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(4.5, 4.5))
        d = self.discrimination.set_index("metric").loc["auroc"]
        ax.plot(
            self.roc["fpr"],
            self.roc["tpr"],
            color=_OKABE_ITO[0],
            label=f"locked {self.target} (AUROC {d['estimate']:.2f}, {d['low']:.2f}-{d['high']:.2f}, n={int(d['n'])})",
        )
        ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=0.8)
        ax.set_xlabel("1 - specificity")
        ax.set_ylabel("sensitivity")
        ax.set_title("Validation ROC (locked model)")
        ax.legend(fontsize=7, loc="lower right")
        return ax

    def plot_calibration(self, ax: Axes | None = None) -> Axes:
        """Calibration plot: binned observed rate (Wilson intervals), lowess curve, diagonal."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(4.5, 4.5))
        c = self.calibration_curve
        ax.errorbar(
            c["mean_predicted"],
            c["observed"],
            yerr=np.clip([c["observed"] - c["low"], c["high"] - c["observed"]], 0.0, None),
            fmt="o",
            ms=3,
            color=_OKABE_ITO[0],
            label="deciles of predicted risk",
        )
        sm = self.calibration_smooth
        if len(sm):
            ax.plot(sm["predicted"], sm["observed"], color=_OKABE_ITO[1], label="lowess")
        top = float(max(c["high"].max(), c["mean_predicted"].max(), 0.05)) if len(c) else 1.0
        ax.plot([0, top], [0, top], ls="--", color="grey", lw=0.8)
        cal = self.calibration.set_index("metric")
        ax.set_title(
            f"Calibration: intercept {cal.loc['calibration_intercept', 'estimate']:.2f}, "
            f"slope {cal.loc['calibration_slope', 'estimate']:.2f}",
            fontsize=9,
        )
        ax.set_xlabel("predicted probability (locked)")
        ax.set_ylabel("observed fraction")
        ax.legend(fontsize=7, loc="upper left")
        return ax

    def plot_decision_curve(
        self, ax: Axes | None = None, *, max_threshold: float | None = None
    ) -> Axes:
        """Net benefit of the locked model against treat-all and treat-none."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(5, 3.5))
        d = self.decision_curve
        if max_threshold is not None:
            d = d[d["threshold"] <= max_threshold]
        ax.plot(d["threshold"], d["net_benefit"], color=_OKABE_ITO[0], label="locked model")
        if "net_benefit_recalibrated" in d.columns:
            ax.plot(
                d["threshold"],
                d["net_benefit_recalibrated"],
                color=_OKABE_ITO[2],
                ls="-.",
                label="recalibrated (apparent)",
            )
        ax.plot(d["threshold"], d["treat_all"], color=_OKABE_ITO[1], ls="--", label="test all")
        ax.plot(d["threshold"], d["treat_none"], color="grey", ls=":", label="test none")
        lo = min(-0.02, float(np.nanmin(d["net_benefit"])) if len(d) else 0.0)
        hi = float(np.nanmax(d[["net_benefit", "treat_all"]].to_numpy())) if len(d) else 1.0
        ax.set_ylim(max(lo, -0.1), hi * 1.1 + 0.01)
        ax.set_xlabel("threshold probability")
        ax.set_ylabel("net benefit")
        ax.set_title("Decision curve (validation)")
        ax.legend(fontsize=7)
        return ax

    def plot_km(self, ax: Axes | None = None, **kwargs: Any) -> Any:
        """KM curves by the locked cut-off (see :meth:`BiomarkerSurvival.plot_km`)."""
        if self.survival is None:
            raise AnalysisError("no survival analysis in this validation (see notes)")
        return self.survival.plot_km(ax=ax, **kwargs)

    def plot_forest(self, ax: Axes | None = None) -> Axes:
        """Treatment effect by locked group (see :meth:`BiomarkerSurvival.plot_forest`)."""
        if self.survival is None:
            raise AnalysisError("no survival analysis in this validation (see notes)")
        return self.survival.plot_forest(ax=ax)

    def plot_score_distribution(self, ax: Axes | None = None) -> Axes:
        """Locked score in development and validation (see :class:`ShiftResult`)."""
        if self.shift is None:
            raise AnalysisError("no shift diagnostics in this validation")
        return self.shift.plot_score_distribution(ax=ax)

    # ---------------------------------------------------------------------- write
    def write(
        self, out_dir: str | Path, *, include_patient_ids: bool = False, figures: bool = True
    ) -> dict[str, Path]:
        """Write the result into ``out_dir`` (atomically): JSON, tables and figures.

        Parameters
        ----------
        out_dir : str or Path
            Folder (created if needed).
        include_patient_ids : bool, default False
            Put per-patient scores and excluded ids into ``validation.json`` too.
        figures : bool, default True
            Also write PNG figures (ROC, calibration, decision curve, KM, forest, locked score
            distribution; those that apply).

        Returns
        -------
        dict
            Name -> path: ``validation`` (JSON), ``summary, comparison, flow, calibration,
            classification`` (CSV), ``validation_scores`` (CSV with patient ids, for checking
            each score) and the figures (``<name>_figure``: ``roc, calibration, decision_curve,
            km, forest, score_distribution`` PNGs).
        """
        import json

        from ..provenance import atomic_write, atomic_write_text, ensure_output_dir

        out = ensure_output_dir(out_dir)
        text = json.dumps(
            self.to_dict(include_patient_ids=include_patient_ids),
            indent=1,
            sort_keys=True,
            allow_nan=False,
        )
        written = {"validation": atomic_write_text(out / "validation.json", text + "\n")}
        tables = {
            "summary": self.summary(),
            "comparison": self.comparison,
            "flow": self.flow,
            "calibration": self.calibration,
            "classification": self.classification,
            "validation_scores": self.scores,
        }
        for key, df in tables.items():
            written[key] = atomic_write(
                out / f"{key}.csv",
                lambda p, d=df: d.to_csv(p, index=False, float_format="%.17g", lineterminator="\n"),
            )
        if not figures:
            return written
        import matplotlib.pyplot as plt

        plots: dict[str, Any] = {
            "roc": self.plot_roc,
            "calibration": self.plot_calibration,
            "decision_curve": self.plot_decision_curve,
        }
        if self.survival is not None and self.survival.km is not None:
            plots["km"] = self.plot_km
        if self.survival is not None and self.survival.interaction is not None:
            plots["forest"] = self.plot_forest
        if self.shift is not None and self.shift.score_distribution is not None:
            plots["score_distribution"] = self.plot_score_distribution
        for key, fn in plots.items():
            obj = fn()
            fig = getattr(obj, "figure_", None) or obj.figure
            written[f"{key}_figure"] = atomic_write(
                out / f"{key}.png",
                lambda p, f=fig: f.savefig(p, format="png", dpi=120, bbox_inches="tight"),
            )
            plt.close(fig)
        return written

    # ----------------------------------------------------------------------- html
    def _repr_html_(self) -> str:
        over = " — <b>encoder mismatch overridden</b>" if self.encoder_overridden else ""
        head = (
            f"<p><b>Validation of the locked {html.escape(self.target)} biomarker</b> (artefact "
            f"<code>{self.artefact_sha256[:16]}…</code>){over}</p>"
        )
        parts = [
            head,
            html_table(self.summary(), "Summary"),
            html_table(self.comparison, "Development vs validation"),
            html_table(self.flow, "Patient flow (validation)"),
        ]
        if self.notes:
            parts.append(
                "<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in self.notes) + "</ul>"
            )
        return "".join(parts)

    def __repr__(self) -> str:
        d = self.discrimination.set_index("metric")
        a = d.loc["auroc", "estimate"] if "auroc" in d.index else float("nan")
        return (
            f"ValidationResult({self.target!r}, n={int(self.flow['n'].iloc[0])}, auroc={a:.3f}, "
            f"artefact={self.artefact_sha256[:12]})"
        )
