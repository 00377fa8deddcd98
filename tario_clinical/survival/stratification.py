"""Risk groups from decoder scores at cut-offs never tuned on the patients they evaluate, and
their survival analysis.

:func:`stratify` runs these steps:

1. the clinical table and its patients (``_clinical_table``, ``_patient_rows``),
2. one score per patient (:func:`.risk_groups.scores_series`); patients without score, time or
   event are left out and listed (``_analysable_patients``),
3. the cut-off rule (:func:`.risk_groups.cutoff_rule`): cross-fitted quantiles
   (:func:`.risk_groups.cross_fitting_folds`, :func:`.risk_groups.cross_fitted_groups`), a fixed
   threshold, or the EXPLORATORY optimal cut-point (:func:`.cutpoint.maxstat_cutpoint`),
4. risk-group labels (:func:`.risk_groups.group_labels`),
5. the analyses of the groups (``_group_analyses``): KM, log-rank, Cox (unadjusted and
   adjusted), RMST, concordance of the score, arm x group interaction, PH tests,
6. exclusions listed in the result (``StratificationResult.exclusions``); the caller's cohort
   is never changed (its owner records them with ``Cohort.record_exclusions``).
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .._checks import positional_deprecated, renamed_parameters
from ..errors import AnalysisError, SchemaError
from .cox_model import cox_fit
from .cutpoint import maxstat_cutpoint, search_corrected_logrank
from .discrimination import concordance
from .formatting import html_table, json_safe, records
from .interaction import InteractionResult, treatment_interaction
from .nonparametric import KaplanMeier, km, logrank, rmst
from .risk_groups import (
    CROSS_FITTED,
    CUTOFFS,
    CutoffKind,
    cross_fitted_groups,
    cross_fitting_folds,
    cut_groups,
    cutoff_rule,
    group_labels,
    scores_series,
)
from .validation import as_pandas, check_choice, check_level, require_columns, survival_arrays

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

    from .plots import KMDisplay

__all__ = ["CutoffKind", "StratificationResult", "stratify", "GROUP_COLUMN"]

logger = logging.getLogger(__name__)

#: column of the risk group in the analysed table and in ``assignments``
GROUP_COLUMN = "risk_group"

_EXPLORATORY_NOTE = (
    "EXPLORATORY: the optimal cut-point was chosen on the same patients it is evaluated "
    "on; only the corrected p-value of the maximally selected statistic is valid (the "
    "log-rank p shown); Cox, RMST and interaction p-values and HRs at this cut-point "
    "are not corrected for the search and are optimistic"
)


@dataclass(frozen=True, eq=False)
class StratificationResult:
    """Risk groups from scores at cross-fitted (or fixed) cut-offs and their survival analysis.

    Attributes
    ----------
    assignments : DataFrame
        ``patient_id, score, fold, cutoff, risk_group, time, event`` (+ ``arm``) of analysed
        patients; ``cutoff`` is the (upper) cut-off applied to that patient.
    cutoffs : DataFrame
        ``fold, quantile, cutoff`` — the cut-off(s) of each fold, computed without that fold.
    km : KaplanMeier
    logrank : DataFrame
        Indexed by ``test``: ``statistic, df, p_value`` (see
        :func:`~tario_clinical.survival.logrank`). With ``cutoff="optimal"`` the ``p_value`` is
        the Lausen–Schumacher p-value corrected for the cut-point search (the same as
        ``optimal["p_value"]``), ``p_value_uncorrected`` is the chi-square p-value as if the
        cut-point had been fixed in advance (not valid: it rejects far too often under the
        null), and ``p_value_method`` says which is which.
    cox_unadjusted, cox_adjusted : DataFrame or None
        HR of each risk group against the lowest.
    ph_test : DataFrame or None
        Proportional-hazards check of the Cox models (R ``survival`` >= 3 ``cox.zph``,
        transform ``km``): ``model, term, statistic, df, p_value``, one row per term plus
        ``GLOBAL`` for each of the unadjusted, adjusted and interaction models fitted.
    rmst : DataFrame or None
    concordance : DataFrame or None
        Harrell's and Uno's C of the continuous score.
    interaction : InteractionResult or None
        With ``arm``: arm x risk group interaction.
    optimal : DataFrame or None
        With ``cutoff="optimal"``: the maximally selected statistic, its corrected ``p_value``
        and the uncorrected ``p_value_naive`` (see :func:`maxstat_cutpoint`).
    exploratory : bool
        True for the optimal cut-point (chosen on the evaluated patients).
    exclusions : DataFrame
        ``patient_id, analysis, reason`` for every patient left out (nothing silently dropped).
    notes : tuple of str
        Analyses that could not be done and why, small-sample warnings.
    time_unit : str
        Unit of the follow-up times (axis label of the KM plot).
    """

    time: str
    event: str
    cutoff_method: str
    exploratory: bool
    groups: tuple[str, ...]
    assignments: pd.DataFrame
    cutoffs: pd.DataFrame
    km: KaplanMeier
    logrank: pd.DataFrame | None
    cox_unadjusted: pd.DataFrame | None
    cox_adjusted: pd.DataFrame | None
    rmst: pd.DataFrame | None
    concordance: pd.DataFrame | None
    interaction: InteractionResult | None
    optimal: pd.DataFrame | None
    exclusions: pd.DataFrame
    notes: tuple[str, ...]
    parameters: dict[str, Any] = field(default_factory=dict)
    ph_test: pd.DataFrame | None = None
    time_unit: str = "months"

    @property
    def n(self) -> int:
        return len(self.assignments)

    def km_plot(
        self,
        *,
        ax: Axes | None = None,
        at_risk_times: Sequence[float] | None = None,
        title: str | None = None,
    ) -> KMDisplay:
        """KM curves per risk group with 95 % bands, censoring marks, log-rank p and a
        number-at-risk table under the plot. Returns a display with ``ax_``, ``table_ax_``,
        ``figure_``.

        With ``cutoff="optimal"`` the p-value shown is the Lausen–Schumacher p-value corrected
        for the cut-point search, labelled so; the uncorrected one is not shown."""
        from .plots import plot_km

        p, p_label, p_note = None, "log-rank p", None
        if self.logrank is not None:
            p = float(self.logrank.loc["log-rank", "p_value"])
            if "p_value_method" in self.logrank.columns:
                p_label = "corrected log-rank p"
                p_note = "(Lausen–Schumacher, for the cut-point search)"
        if title is None:
            title = f"{self.time} by {self.cutoff_method} cut-off" + (
                " (EXPLORATORY)" if self.exploratory else ""
            )
        return plot_km(
            self.km,
            ax=ax,
            at_risk_times=at_risk_times,
            p_value=p,
            p_label=p_label,
            p_note=p_note,
            title=title,
            time_unit=self.time_unit,
        )

    plot_km = km_plot

    def plot_forest(self, *, ax: Axes | None = None) -> Axes:
        """Forest plot of the treatment effect by subgroup (needs ``arm``)."""
        if self.interaction is None:
            raise AnalysisError("no interaction analysis: call stratify(..., arm='arm')")
        return self.interaction.plot_forest(ax=ax)

    def to_dict(self) -> dict[str, Any]:
        """Every number of the result as JSON-safe Python types (for results.json)."""
        return {
            "analysis": "survival.stratify",
            "time": self.time,
            "event": self.event,
            "cutoff_method": self.cutoff_method,
            "exploratory": self.exploratory,
            "time_unit": self.time_unit,
            "groups": list(self.groups),
            "n": self.n,
            "events": int(self.assignments["event"].sum()),
            "parameters": json_safe(self.parameters),
            "cutoffs": records(self.cutoffs),
            "km": records(self.km.summary),
            "logrank": records(self.logrank),
            "cox_unadjusted": records(self.cox_unadjusted),
            "cox_adjusted": records(self.cox_adjusted),
            "ph_test": records(self.ph_test),
            "rmst": records(self.rmst),
            "concordance": records(self.concordance),
            "interaction": None if self.interaction is None else self.interaction.to_dict(),
            "optimal": records(self.optimal),
            "exclusions": records(self.exclusions),
            "notes": list(self.notes),
        }

    def _repr_html_(self) -> str:
        head = (
            f"<p><b>Stratification</b> of {html.escape(self.time)} by {html.escape(self.cutoff_method)} "
            f"cut-off{' — EXPLORATORY' if self.exploratory else ' (cross-fitted)' if self.cutoff_method in CROSS_FITTED else ''}: "
            f"{self.n} patients, {len(self.exclusions)} excluded</p>"
        )
        parts = [
            head,
            html_table(self.km.summary, "Kaplan–Meier"),
            html_table(self.logrank, "Log-rank"),
            html_table(self.cox_unadjusted, "Cox (unadjusted)"),
            html_table(self.cox_adjusted, "Cox (adjusted)"),
            html_table(self.ph_test, "Proportional hazards (cox.zph)"),
            html_table(self.rmst, "RMST"),
            html_table(self.concordance, "Concordance of the score"),
            html_table(
                self.optimal,
                "Optimal cut-point (exploratory; p_value corrected for the search, "
                "p_value_naive uncorrected)",
            ),
        ]
        if self.interaction is not None:
            parts.append(self.interaction._repr_html_())
        if self.notes:
            parts.append(
                "<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in self.notes) + "</ul>"
            )
        if len(self.exclusions):
            parts.append(
                html_table(self.exclusions.head(20), f"Exclusions ({len(self.exclusions)})")
            )
        return "".join(parts)


@renamed_parameters(conf_level="level")
@positional_deprecated("time", "event")
def stratify(
    cohort_or_df: Any,
    scores: Any,
    *,
    time: str = "os_time",
    event: str = "os_event",
    cutoff: CutoffKind | float = "median",
    quantile: float | None = None,
    prevalence: float | None = None,
    probability: float = 0.5,
    n_folds: int = 5,
    folds: pd.Series | None = None,
    seed: int = 0,
    arm: str | None = None,
    covariates: Sequence[str] = (),
    subgroups: Sequence[str] = ("cancer_type",),
    tau: float | None = None,
    min_prop: float = 0.1,
    level: float = 0.95,
    target: str | None = None,
    time_unit: str | None = None,
) -> StratificationResult:
    """Risk groups from decoder scores at cut-offs never tuned on the patients they evaluate.

    Parameters
    ----------
    cohort_or_df : Cohort or DataFrame
        A :class:`~tario_clinical.cohort.Cohort` (its ``clinical`` table is used; the
        cohort is not changed: the patients left out are in the result's ``exclusions``,
        recorded in the cohort's log with ``cohort.record_exclusions(res.exclusions,
        patients_only=True)``) or a clinical DataFrame with a ``patient_id`` column.
    scores : Series or DataFrame
        Series indexed by ``patient_id``, or the decoder's tidy out-of-fold table with columns
        ``patient_id, repeat, score`` (averaged over repeats; with ``cutoff="probability"``
        its ``probability`` column is averaged instead when present). A ``target`` column with
        several targets needs ``target=``.
    time, event : str
        Survival columns of the clinical table.
    cutoff : {"median", "tertiles", "quantile", "prevalence", "probability", "optimal"} or float
        - ``"median"``, ``"tertiles"``, ``"quantile"`` (at ``quantile``), ``"prevalence"``
          (the top ``prevalence`` fraction is high risk): **cross-fitted** — patients are
          split into ``n_folds`` folds and each patient's cut-off is computed from the scores
          of the other folds only;
        - ``"probability"``: the fixed threshold ``probability`` on a probability score;
        - a float: that fixed cut-off;
        - ``"optimal"``: the maximally selected log-rank cut-point, chosen on the evaluated
          patients, reported as EXPLORATORY with the Lausen–Schumacher corrected p-value.
    n_folds, folds, seed : int, Series, int
        Cross-fitting folds: random balanced folds from ``seed``, or an explicit fold label
        per ``patient_id`` (for instance the decoder's CV folds).
    arm : str, optional
        Treatment arm column: adds the arm x risk-group interaction analysis and forest plot.
    covariates : sequence of str
        Adjustment covariates of the adjusted Cox model (patients missing one are left out of
        that model only, and listed).
    subgroups : sequence of str
        Extra forest-plot subgroup columns (used with ``arm``).
    tau : float, optional
        RMST horizon (default: the largest time every group reaches).
    min_prop : float
        Smallest group fraction for the optimal cut-point search.
    level : float
    target : str, optional
        Target to take from a multi-target decoder OOF table (``DecodeResult.oof``).
    time_unit : str, optional
        Unit of ``time`` shown on the KM plot; default the cohort's ``time_unit``, else
        ``"months"`` (the clinical schema's ``x-time-unit``).

    Returns
    -------
    StratificationResult
        With ``cutoff="optimal"``, ``logrank["p_value"]``, the KM plot and ``to_dict()`` give
        the corrected p-value; the uncorrected one is kept as ``p_value_uncorrected``.

    Examples
    --------
    >>> import tario_clinical as tc  # doctest: +SKIP
    >>> trial = tc.simulate_trial(n_patients=300, seed=1)  # doctest: +SKIP
    >>> cohort = trial.cohort()  # doctest: +SKIP
    >>> res = tc.decode(trial.representations, cohort, targets=["EGFR"], seed=0)  # doctest: +SKIP
    >>> strat = tc.survival.stratify(cohort, res.oof, arm="arm")  # doctest: +SKIP
    >>> strat.km_plot()  # doctest: +SKIP

    Raises
    ------
    SchemaError
        Missing columns, malformed scores.
    AnalysisError
        Fewer than two non-empty risk groups.
    """
    check_level(level)
    if not isinstance(cutoff, (int, float)) or isinstance(cutoff, bool):
        check_choice("cutoff", cutoff, CUTOFFS)
    _, clinical, time_unit = _clinical_table(cohort_or_df, time_unit)
    require_columns(clinical, [time, event, *([arm] if arm else []), *covariates])
    clin = _patient_rows(clinical)
    sc = scores_series(
        scores, target=target, column="probability" if cutoff == "probability" else "score"
    )
    analysis = f"survival.stratify({time})"
    data, excl_rows, _ = _analysable_patients(clin, sc, time, event, arm, analysis)
    n = len(data)
    s = data["score"].to_numpy(dtype=float)
    notes: list[str] = []
    method, qs, fixed = cutoff_rule(
        cutoff, quantile=quantile, prevalence=prevalence, probability=probability, score=s
    )
    optimal = None
    if qs is not None:
        fold = cross_fitting_folds(data["patient_id"], folds=folds, n_folds=n_folds, seed=seed)
        gidx, cutoffs, applied = cross_fitted_groups(s, fold, qs)
    else:
        fold = np.full(n, -1)
        if fixed is None:
            optimal = maxstat_cutpoint(
                data, time=time, event=event, score="score", min_prop=min_prop
            )
            fixed = np.array([float(optimal["cutoff"].iloc[0])])
            notes.append(_EXPLORATORY_NOTE)
        gidx = cut_groups(s, fixed)
        cutoffs = pd.DataFrame(
            {"fold": [-1] * fixed.size, "quantile": [np.nan] * fixed.size, "cutoff": fixed}
        )
        applied = np.full(n, fixed[-1])
    data[GROUP_COLUMN], present = group_labels(gidx, three=qs is not None and qs.size == 2)
    if len(present) < 2:
        raise AnalysisError(
            f"stratify: all {n} patients fall in risk group {present}; the scores do not separate "
            f"at the {method} cut-off (score range {s.min():g}..{s.max():g})"
        )
    data["fold"] = fold
    data["cutoff"] = applied
    assignments = data[
        ["patient_id", "score", "fold", "cutoff", GROUP_COLUMN, time, event]
        + ([arm] if arm else [])
    ].rename(columns={time: "time", event: "event"})
    results = _group_analyses(
        data,
        time,
        event,
        arm=arm,
        covariates=covariates,
        subgroups=subgroups,
        tau=tau,
        level=level,
        optimal=optimal,
        analysis=analysis,
        notes=notes,
        excl_rows=excl_rows,
    )
    if optimal is not None:
        optimal = optimal.assign(exploratory=True)
    exclusions = pd.DataFrame(excl_rows, columns=["patient_id", "analysis", "reason"])
    if len(exclusions):
        logger.info("stratify: %d exclusion(s) recorded", len(exclusions))
    params = {
        "cutoff": cutoff if isinstance(cutoff, str) else float(cutoff),
        "quantile": quantile,
        "prevalence": prevalence,
        "probability": probability,
        "n_folds": n_folds,
        "seed": seed,
        "arm": arm,
        "covariates": list(covariates),
        "tau": tau,
        "min_prop": min_prop,
        "level": level,
        "folds_given": folds is not None,
        "target": target,
        "time_unit": time_unit or "months",
    }
    return StratificationResult(
        time=time,
        event=event,
        cutoff_method=method,
        exploratory=cutoff == "optimal",
        groups=tuple(present),
        assignments=assignments,
        cutoffs=cutoffs,
        optimal=optimal,
        exclusions=exclusions,
        notes=tuple(notes),
        parameters=params,
        time_unit=time_unit or "months",
        **results,
    )


def _clinical_table(
    cohort_or_df: Any, time_unit: str | None
) -> tuple[Any, pd.DataFrame, str | None]:
    """``(cohort or None, clinical table with a patient_id column, time unit)``."""
    cohort = None
    if hasattr(cohort_or_df, "clinical") and hasattr(cohort_or_df, "exclude"):
        cohort = cohort_or_df
        clinical = cohort.clinical
        if time_unit is None:
            time_unit = getattr(cohort, "time_unit", None)
    else:
        clinical = as_pandas(cohort_or_df, "cohort_or_df")
        if "patient_id" not in clinical.columns:
            if clinical.index.name == "patient_id":
                clinical = clinical.reset_index()
            else:
                raise SchemaError(
                    "clinical table needs a 'patient_id' column (or index); got columns "
                    f"{list(clinical.columns)}"
                )
    if time_unit is not None and (not isinstance(time_unit, str) or not time_unit.strip()):
        raise ValueError(
            f"time_unit must be a non-empty string such as 'months'; got {time_unit!r}"
        )
    return cohort, clinical, time_unit


def _patient_rows(clinical: pd.DataFrame) -> pd.DataFrame:
    """A copy of the clinical table with text patient ids, checked unique."""
    clin = clinical.copy()
    clin["patient_id"] = clin["patient_id"].astype(str)
    dup = clin["patient_id"].duplicated()
    if dup.any():
        raise SchemaError(
            f"clinical table: duplicate patient_id(s) {clin['patient_id'][dup].head().tolist()}"
        )
    return clin


def _analysable_patients(
    clin: pd.DataFrame, sc: pd.Series, time: str, event: str, arm: str | None, analysis: str
) -> tuple[pd.DataFrame, list[dict[str, str]], list[str]]:
    """Patients with a score, time, event (and arm): ``(their rows with a ``score`` column and
    numeric time/event, exclusion rows of the others, scored ids not in the clinical table)``."""
    reasons: dict[str, list[str]] = {}

    def _add(pids: Sequence[str], why: str) -> None:
        for p in pids:
            reasons.setdefault(p, []).append(why)

    not_in_clin = sorted(set(sc.index) - set(clin["patient_id"]))
    clin["score"] = clin["patient_id"].map(sc)
    tnum = pd.to_numeric(clin[time], errors="coerce")
    enum = pd.to_numeric(
        clin[event].astype("object").where(clin[event].notna(), np.nan), errors="coerce"
    )
    _add(clin.loc[~clin["patient_id"].isin(sc.index), "patient_id"].tolist(), "no score")
    _add(
        clin.loc[clin["patient_id"].isin(sc.index) & clin["score"].isna(), "patient_id"].tolist(),
        "missing or non-finite score",
    )
    _add(clin.loc[tnum.isna(), "patient_id"].tolist(), f"missing {time}")
    _add(clin.loc[enum.isna(), "patient_id"].tolist(), f"missing {event}")
    if arm:
        _add(clin.loc[clin[arm].isna(), "patient_id"].tolist(), f"missing {arm}")
    excl_rows = [
        {"patient_id": p, "analysis": analysis, "reason": "; ".join(r)} for p, r in reasons.items()
    ]
    excl_rows += [
        {
            "patient_id": p,
            "analysis": analysis,
            "reason": "score for a patient not in the clinical table",
        }
        for p in not_in_clin
    ]
    keep = ~clin["patient_id"].isin(reasons)
    data = clin.loc[keep].reset_index(drop=True)
    data[time] = pd.to_numeric(data[time]).astype(float)
    data[event] = pd.to_numeric(data[event].astype("object")).astype(float)
    survival_arrays(data, time, event)  # validates values (negative times, bad codes)
    if len(data) < 4:
        raise AnalysisError(
            f"stratify: only {len(data)} patients with score, {time} and {event}; need >= 4"
        )
    return data, excl_rows, not_in_clin


def _group_analyses(
    data: pd.DataFrame,
    time: str,
    event: str,
    *,
    arm: str | None,
    covariates: Sequence[str],
    subgroups: Sequence[str],
    tau: float | None,
    level: float,
    optimal: pd.DataFrame | None,
    analysis: str,
    notes: list[str],
    excl_rows: list[dict[str, str]],
) -> dict[str, Any]:
    """Survival analyses of the risk groups, as the fields of :class:`StratificationResult`.

    An analysis that cannot be done becomes ``None`` and a note; patients left out of the
    adjusted Cox model only are added to ``excl_rows``.
    """

    def attempt(what: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except AnalysisError as err:
            notes.append(f"{what} not available: {err}")
            logger.info("%s not available: %s", what, err)
            return None

    kmr = km(data, time=time, event=event, group=GROUP_COLUMN, level=level)
    for _, r in kmr.summary.iterrows():
        if r["events"] < 10:
            notes.append(
                f"risk group {r['group']}: only {r['events']} events; estimates are unstable"
            )
    lr = attempt("log-rank", lambda: logrank(data, time=time, event=event, group=GROUP_COLUMN))
    if optimal is not None and lr is not None:
        lr = search_corrected_logrank(lr, optimal)
    models: dict[str, Any] = {}
    mu = attempt(
        "Cox (unadjusted)",
        lambda: cox_fit(data, time=time, event=event, covariates=[GROUP_COLUMN], level=level),
    )
    models["unadjusted"] = mu
    ca = None
    if covariates:
        sub = _covariates_complete(data, covariates, f"{analysis}:cox_adjusted", excl_rows)
        ma = attempt(
            "Cox (adjusted)",
            lambda: cox_fit(
                sub, time=time, event=event, covariates=[GROUP_COLUMN, *covariates], level=level
            ),
        )
        ca = None if ma is None else ma.table
        models["adjusted"] = ma
    rm = attempt(
        "RMST", lambda: rmst(data, time=time, event=event, group=GROUP_COLUMN, tau=tau, level=level)
    )
    cc = attempt(
        "concordance", lambda: concordance(data, time=time, event=event, score="score", level=level)
    )
    inter = None
    if arm:
        inter = attempt(
            "interaction",
            lambda: treatment_interaction(
                data,
                time=time,
                event=event,
                arm=arm,
                biomarker=GROUP_COLUMN,
                subgroups=subgroups,
                level=level,
            ),
        )
        if inter is not None:
            notes.extend(inter.notes)
            models["interaction"] = inter.model
    return {
        "km": kmr,
        "logrank": lr,
        "cox_unadjusted": None if mu is None else mu.table,
        "cox_adjusted": ca,
        "rmst": rm,
        "concordance": cc,
        "interaction": inter,
        "ph_test": _ph_tests(models, notes),
    }


def _covariates_complete(
    data: pd.DataFrame, covariates: Sequence[str], analysis: str, excl_rows: list[dict[str, str]]
) -> pd.DataFrame:
    """Rows of ``data`` with every covariate; each other patient is added to ``excl_rows``
    with the covariates it lacks."""
    miss = data[list(covariates)].isna().any(axis=1).to_numpy()
    for p, row in zip(
        data.loc[miss, "patient_id"],
        data.loc[miss, list(covariates)].itertuples(index=False),
        strict=True,
    ):
        cols = [c for c, v in zip(covariates, row, strict=True) if pd.isna(v)]
        excl_rows.append(
            {
                "patient_id": p,
                "analysis": analysis,
                "reason": f"missing covariate(s) {', '.join(cols)} (adjusted Cox model only)",
            }
        )
    return data.loc[~miss].reset_index(drop=True)


def _ph_tests(models: Mapping[str, Any], notes: list[str]) -> pd.DataFrame | None:
    """cox.zph (R survival >= 3) of each fitted model; a note where GLOBAL p < 0.05."""
    frames = []
    for name, m in models.items():
        if m is None:
            continue
        try:
            t = m.ph_test()
        except (np.linalg.LinAlgError, AnalysisError) as err:
            notes.append(f"proportional-hazards test of the {name} Cox model not available: {err}")
            continue
        frames.append(t.reset_index().assign(model=name))
        p = float(t.loc["GLOBAL", "p_value"])
        if p < 0.05:
            notes.append(
                f"{name} Cox model: proportional hazards questionable (cox.zph GLOBAL p = "
                f"{p:.3g}); hazard ratios average a time-varying effect"
            )
    if not frames:
        return None
    out = pd.concat(frames, ignore_index=True)
    return out[["model", "term", "statistic", "df", "p_value"]]
