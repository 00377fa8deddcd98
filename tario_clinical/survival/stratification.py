"""Treatment x biomarker interaction and score stratification (private; re-exported by
:mod:`tario_clinical.survival`)."""

from __future__ import annotations

import html
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import AnalysisError, SchemaError
from . import (
    _CUTOFFS,
    CoxModel,
    CutoffKind,
    KaplanMeier,
    _as_pandas,
    _check_choice,
    _check_conf_level,
    _design,
    _design_terms,
    _html_table,
    _levels,
    _nan_to_none,
    _norm_ppf,
    _records,
    _require_columns,
    _survival_arrays,
    concordance,
    cox_fit,
    km,
    logrank,
    rmst,
)
from . import kernels as core

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

    from .plots import KMDisplay

logger = logging.getLogger("tario_clinical.survival")

GROUP_COLUMN = "risk_group"


# =============================================================================== interaction
@dataclass(frozen=True, eq=False)
class InteractionResult:
    """Cox model with an arm x biomarker interaction.

    Attributes
    ----------
    table : DataFrame
        Terms of the interaction model (same columns as :func:`~tario_clinical.survival.cox`).
    subgroups : DataFrame
        Treatment HR within each biomarker level from the interaction model:
        ``variable, level, n, events, hr, hr_low, hr_high, p_value``.
    forest : DataFrame
        Treatment HR from separate Cox fits in all patients, each biomarker level, each level
        of the subgroup columns and categorical covariates (same columns; NaN where a fit is
        impossible, with the reason in ``note``).
    interaction_test : DataFrame
        Indexed by ``test`` (``likelihood-ratio``, ``wald``): ``statistic, df, p_value``.
    interaction_p_value : float
        Likelihood-ratio p-value of the interaction term(s).
    model : CoxModel
    arm, experimental, control, biomarker : str / Any
    notes : tuple of str
    """

    table: pd.DataFrame
    subgroups: pd.DataFrame
    forest: pd.DataFrame
    interaction_test: pd.DataFrame
    interaction_p_value: float
    model: CoxModel = field(repr=False)
    arm: str = "arm"
    experimental: Any = None
    control: Any = None
    biomarker: str = ""
    notes: tuple[str, ...] = ()

    def plot_forest(self, *, ax: Axes | None = None) -> Axes:
        """Forest plot of the treatment HR over all patients and subgroups; returns the Axes."""
        from .plots import plot_forest

        title = f"HR {self.experimental} vs {self.control}; interaction p = {self.interaction_p_value:.3g}"
        return plot_forest(self.forest, ax=ax, title=title)

    def to_dict(self) -> dict[str, Any]:
        """Every number as JSON-safe Python types."""
        return {
            "arm": self.arm,
            "experimental": _nan_to_none(self.experimental),
            "control": _nan_to_none(self.control),
            "biomarker": self.biomarker,
            "table": _records(self.table),
            "subgroups": _records(self.subgroups),
            "forest": _records(self.forest),
            "interaction_test": _records(self.interaction_test),
            "interaction_p_value": _nan_to_none(self.interaction_p_value),
            "n": self.model.n,
            "events": self.model.events,
            "notes": list(self.notes),
        }

    def _repr_html_(self) -> str:
        return (
            f"<p>Interaction {html.escape(self.arm)} x {html.escape(self.biomarker)}: "
            f"p = {self.interaction_p_value:.3g} (likelihood ratio)</p>"
            + _html_table(self.table, "Interaction model")
            + _html_table(self.subgroups, "Treatment effect by biomarker level")
        )


def _arm_levels(df: pd.DataFrame, arm: str, reference_arm: Any | None) -> tuple[Any, Any]:
    _require_columns(df, [arm])
    miss = df[arm].isna().to_numpy()
    if miss.any():
        raise SchemaError(f"column {arm!r}: {int(miss.sum())} missing arm value(s)")
    levels = _levels(df[arm])
    if len(levels) != 2:
        raise AnalysisError(
            f"treatment comparison needs exactly two arms in column {arm!r}; found "
            f"{len(levels)}: {levels}"
        )
    if reference_arm is None:
        lowered = [str(lv).lower() for lv in levels]
        ref = next(
            (levels[i] for i, lv in enumerate(lowered) if lv in ("control", "placebo", "standard")),
            levels[0],
        )
    else:
        if reference_arm not in levels:
            raise ValueError(f"reference_arm={reference_arm!r} not among arms {levels}")
        ref = reference_arm
    exp = levels[1] if ref == levels[0] else levels[0]
    return ref, exp


def _arm_only_hr(
    sub: pd.DataFrame,
    time: str,
    event: str,
    ind: np.ndarray,
    conf_level: float,
    strata: str | None,
) -> tuple[float, float, float, float, str]:
    try:
        m = cox_fit(
            sub,
            time,
            event,
            ["_arm"],
            strata=strata,
            conf_level=conf_level,
            _design_override=(ind[:, None], ["_arm"]),
        )
    except AnalysisError as err:
        return (np.nan, np.nan, np.nan, np.nan, str(err).split(";")[0])
    r = m.table.iloc[0]
    return (r["hr"], r["hr_low"], r["hr_high"], r["p_value"], "")


def treatment_interaction(
    df: pd.DataFrame,
    time: str,
    event: str,
    arm: str,
    biomarker: str,
    covariates: Sequence[str] = (),
    *,
    strata: str | None = None,
    reference_arm: Any | None = None,
    reference_level: Any | None = None,
    subgroups: Sequence[str] = ("cancer_type",),
    conf_level: float = 0.95,
) -> InteractionResult:
    """Cox model with an arm x biomarker interaction: is the treatment effect different
    across biomarker levels (a predictive biomarker)?

    Parameters
    ----------
    df : DataFrame
    time, event : str
        Survival columns.
    arm : str
        Column with exactly two arms; the control is ``reference_arm`` or an arm called
        control/placebo/standard, else the first in sorted order.
    biomarker : str
        Categorical (text/categorical/bool) or numeric column. A numeric column with exactly
        two distinct values (e.g. 0/1) is binary, like ``"neg"``/``"pos"``: it gets the same
        model and the treatment HR within each level (reference: the smaller value). Other
        numeric columns are continuous (linear), without level subgroups.
    covariates : sequence of str
        Adjustment covariates (main effects).
    strata : str, optional
        Stratification column (separate baseline hazards).
    reference_level : optional
        Reference biomarker level (default first level).
    subgroups : sequence of str
        Columns whose levels get a row in the forest plot (skipped when absent).
    conf_level : float

    Returns
    -------
    InteractionResult

    Raises
    ------
    AnalysisError
        One arm only, no events, or a model that cannot be fitted.
    """
    _check_conf_level(conf_level)
    df = _as_pandas(df).reset_index(drop=True)
    covariates = [covariates] if isinstance(covariates, str) else list(covariates)
    _require_columns(df, [biomarker, *covariates])
    _survival_arrays(df, time, event)
    ref_arm, exp_arm = _arm_levels(df, arm, reference_arm)
    a = (df[arm] == exp_arm).to_numpy(dtype=float)
    bm = df[biomarker]
    if bm.isna().any():
        raise SchemaError(
            f"column {biomarker!r}: {int(bm.isna().sum())} missing biomarker value(s)"
        )
    categorical = (
        not pd.api.types.is_numeric_dtype(bm)
        or pd.api.types.is_bool_dtype(bm)
        or bm.nunique() == 2  # 0/1 (or any two-valued) coding is a binary biomarker
    )
    arm_name = f"{arm}[{exp_arm}]"
    if categorical:
        levels = _levels(bm)
        ref_lv = levels[0] if reference_level is None else reference_level
        if ref_lv not in levels:
            raise ValueError(f"reference_level={ref_lv!r} not among {biomarker!r} levels {levels}")
        others = [lv for lv in levels if lv != ref_lv]
        if not others:
            raise AnalysisError(
                f"biomarker {biomarker!r} has a single level {levels}; no interaction"
            )
        b_cols = [(bm == lv).to_numpy(dtype=float) for lv in others]
        b_names = [f"{biomarker}[{lv}]" for lv in others]
    else:
        levels, ref_lv, others = [], None, []
        b_cols = [pd.to_numeric(bm).to_numpy(dtype=float)]
        b_names = [biomarker]
    cx, cnames = _design(df, covariates, None)
    i_cols = [a * b for b in b_cols]
    i_names = [f"{arm_name}:{n}" for n in b_names]
    x_full = (
        np.column_stack([a, *b_cols, *i_cols, cx])
        if cx.size
        else np.column_stack([a, *b_cols, *i_cols])
    )
    names_full = [arm_name, *b_names, *i_names, *cnames]
    x_red = np.column_stack([a, *b_cols, cx]) if cx.size else np.column_stack([a, *b_cols])
    names_red = [arm_name, *b_names, *cnames]
    full = cox_fit(
        df,
        time,
        event,
        [],
        strata=strata,
        conf_level=conf_level,
        _design_override=(
            x_full,
            names_full,
            (
                arm_name,
                *[biomarker] * len(b_names),
                *[f"{arm_name}:{biomarker}"] * len(i_names),
                *_design_terms(covariates, cnames),
            ),
        ),
    )
    red = cox_fit(
        df,
        time,
        event,
        [],
        strata=strata,
        conf_level=conf_level,
        _design_override=(x_red, names_red),
    )
    lr = max(0.0, 2.0 * (full.loglik - red.loglik))
    k = len(i_names)
    bi = full.table.loc[i_names, "coef"].to_numpy()
    vi = full.covariance.loc[i_names, i_names].to_numpy()
    wald = float(bi @ np.linalg.solve(vi, bi))
    itest = pd.DataFrame(
        {
            "statistic": [lr, wald],
            "df": [k, k],
            "p_value": [stats.chi2.sf(lr, k), stats.chi2.sf(wald, k)],
        },
        index=pd.Index(["likelihood-ratio", "wald"], name="test"),
    )
    q = _norm_ppf(conf_level)
    t_arr, e_arr = _survival_arrays(df, time, event)
    notes: list[str] = []
    sub_rows = []
    if categorical:
        cov = full.covariance
        for lv in levels:
            m = (bm == lv).to_numpy()
            if lv == ref_lv:
                est = full.table.loc[arm_name, "coef"]
                var = cov.loc[arm_name, arm_name]
            else:
                iname = f"{arm_name}:{biomarker}[{lv}]"
                est = full.table.loc[arm_name, "coef"] + full.table.loc[iname, "coef"]
                var = (
                    cov.loc[arm_name, arm_name]
                    + cov.loc[iname, iname]
                    + 2 * cov.loc[arm_name, iname]
                )
            se = math.sqrt(var)
            sub_rows.append(
                {
                    "variable": biomarker,
                    "level": lv,
                    "n": int(m.sum()),
                    "events": int(e_arr[m].sum()),
                    "hr": math.exp(est),
                    "hr_low": math.exp(est - q * se),
                    "hr_high": math.exp(est + q * se),
                    "p_value": 2 * stats.norm.sf(abs(est / se)),
                }
            )
    else:
        notes.append(
            f"continuous biomarker {biomarker!r}: the HR of {arm_name} is per unit of "
            "the biomarker through the interaction term; no level subgroups"
        )
    sub_df = pd.DataFrame(
        sub_rows, columns=["variable", "level", "n", "events", "hr", "hr_low", "hr_high", "p_value"]
    )
    # forest: separate fits
    work = df.copy()
    work["_arm"] = a
    forest_specs: list[tuple[str, Any, np.ndarray]] = [
        ("All patients", "all", np.ones(len(df), bool))
    ]
    seen = set()
    for col in (
        ([biomarker] if categorical else [])
        + [c for c in subgroups if c in df.columns]
        + [c for c in covariates if not pd.api.types.is_numeric_dtype(df[c])]
    ):
        if col in seen:
            continue
        seen.add(col)
        for lv in _levels(df[col]):
            forest_specs.append((col, lv, (df[col] == lv).to_numpy()))
    frows = []
    for var, lv, m in forest_specs:
        sub = work.loc[m].reset_index(drop=True)
        hr, lo, hi, p, note = _arm_only_hr(sub, time, event, a[m], conf_level, strata)
        if note:
            notes.append(f"forest {var}={lv}: {note}")
        frows.append(
            {
                "variable": var,
                "level": lv,
                "n": int(m.sum()),
                "events": int(e_arr[m].sum()),
                "hr": hr,
                "hr_low": lo,
                "hr_high": hi,
                "p_value": p,
                "note": note,
            }
        )
    forest = pd.DataFrame(frows)
    return InteractionResult(
        table=full.table,
        subgroups=sub_df,
        forest=forest,
        interaction_test=itest,
        interaction_p_value=float(itest.loc["likelihood-ratio", "p_value"]),
        model=full,
        arm=arm,
        experimental=exp_arm,
        control=ref_arm,
        biomarker=biomarker,
        notes=tuple(notes),
    )


# =============================================================================== optimal cut
def _lausen_schumacher(b: float, min_prop: float) -> float:
    """Lausen & Schumacher (1992) approximation of P(max |standardised statistic| > b)."""
    e1, e2 = min_prop, 1.0 - min_prop
    phi = stats.norm.pdf(b)
    p = 4 * phi / b + phi * (b - 1 / b) * math.log(e2 * (1 - e1) / ((1 - e2) * e1))
    return float(min(1.0, max(p, 0.0)))


def maxstat_cutpoint(
    df: pd.DataFrame, time: str, event: str, score: str, *, min_prop: float = 0.1
) -> pd.DataFrame:
    """EXPLORATORY optimal cut-point by the maximally selected log-rank statistic.

    Every distinct score leaving at least ``min_prop`` of patients on each side is tried;
    the largest absolute standardised log-rank statistic is selected. Its naive p-value is
    wrong (the cut-point was chosen to minimise it); ``p_value`` is the Lausen & Schumacher
    (1992) approximation to the distribution of the maximum, which corrects for the search.

    Parameters
    ----------
    df : DataFrame
        One row per patient (pandas or polars).
    time, event : str
        Column names: follow-up time (>= 0) and event indicator (1 event, 0 censored).
    score : str
        Column of the continuous score (finite for every patient).
    min_prop : float, default 0.1
        Minimum fraction of patients on each side of a candidate cut-off, in (0, 0.5).

    Returns
    -------
    DataFrame
        One row: ``cutoff, statistic, p_value, p_value_naive, n_low, n_high, n_candidates,
        min_prop`` (high = score > cutoff).
    """
    if not (0.0 < min_prop < 0.5):
        raise ValueError(f"min_prop must be in (0, 0.5); got {min_prop}")
    df = _as_pandas(df)
    t, e = _survival_arrays(df, time, event)
    s = pd.to_numeric(df[score], errors="coerce").to_numpy(dtype=float)
    if not np.all(np.isfinite(s)):
        raise SchemaError(f"column {score!r}: missing or non-finite scores")
    n = s.size
    us = np.unique(s)
    frac_le = np.searchsorted(np.sort(s), us, side="right") / n
    cand = us[(frac_le >= min_prop) & (frac_le <= 1 - min_prop)]
    if cand.size == 0 or e.sum() == 0:
        raise AnalysisError(
            f"optimal cut-point: no candidate split leaves {min_prop:.0%} of {n} patients on each "
            f"side, or no events ({int(e.sum())})"
        )
    high = s[:, None] > cand[None, :]
    oe, v = core.logrank_two_group_scan(t, e, high)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(v > 0, oe / np.sqrt(v), 0.0)
    j = int(np.argmax(np.abs(z)))
    b = float(abs(z[j]))
    naive = float(2 * stats.norm.sf(b))
    return pd.DataFrame(
        [
            {
                "cutoff": float(cand[j]),
                "statistic": b,
                "p_value": max(_lausen_schumacher(b, min_prop), naive) if b > 0 else 1.0,
                "p_value_naive": naive,
                "n_low": int((~high[:, j]).sum()),
                "n_high": int(high[:, j].sum()),
                "n_candidates": int(cand.size),
                "min_prop": float(min_prop),
            }
        ]
    )


# =============================================================================== stratify
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
            "parameters": _nan_to_none(self.parameters),
            "cutoffs": _records(self.cutoffs),
            "km": _records(self.km.summary),
            "logrank": _records(self.logrank),
            "cox_unadjusted": _records(self.cox_unadjusted),
            "cox_adjusted": _records(self.cox_adjusted),
            "ph_test": _records(self.ph_test),
            "rmst": _records(self.rmst),
            "concordance": _records(self.concordance),
            "interaction": None if self.interaction is None else self.interaction.to_dict(),
            "optimal": _records(self.optimal),
            "exclusions": _records(self.exclusions),
            "notes": list(self.notes),
        }

    def _repr_html_(self) -> str:
        head = (
            f"<p><b>Stratification</b> of {html.escape(self.time)} by {html.escape(self.cutoff_method)} "
            f"cut-off{' — EXPLORATORY' if self.exploratory else ' (cross-fitted)' if self.cutoff_method in _CROSS else ''}: "
            f"{self.n} patients, {len(self.exclusions)} excluded</p>"
        )
        parts = [
            head,
            _html_table(self.km.summary, "Kaplan–Meier"),
            _html_table(self.logrank, "Log-rank"),
            _html_table(self.cox_unadjusted, "Cox (unadjusted)"),
            _html_table(self.cox_adjusted, "Cox (adjusted)"),
            _html_table(self.ph_test, "Proportional hazards (cox.zph)"),
            _html_table(self.rmst, "RMST"),
            _html_table(self.concordance, "Concordance of the score"),
            _html_table(
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
                _html_table(self.exclusions.head(20), f"Exclusions ({len(self.exclusions)})")
            )
        return "".join(parts)


_CROSS = ("median", "tertiles", "quantile", "prevalence")


def _scores_series(scores: Any, *, target: str | None = None, column: str = "score") -> pd.Series:
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


def _cut_groups(score: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    """Group index = number of cut-offs strictly below the score (high = score > cutoff)."""
    return (score[:, None] > cuts).sum(axis=1)


def stratify(
    cohort_or_df: Any,
    scores: Any,
    time: str = "os_time",
    event: str = "os_event",
    *,
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
    conf_level: float = 0.95,
    target: str | None = None,
    time_unit: str | None = None,
) -> StratificationResult:
    """Risk groups from decoder scores at cut-offs never tuned on the patients they evaluate.

    Parameters
    ----------
    cohort_or_df : Cohort or DataFrame
        A :class:`~tario_clinical.cohort.Cohort` (its ``clinical`` table is used and
        exclusions are appended to ``cohort.exclusions``) or a clinical DataFrame with a
        ``patient_id`` column.
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
    conf_level : float
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
    _check_conf_level(conf_level)
    if not isinstance(cutoff, (int, float)) or isinstance(cutoff, bool):
        _check_choice("cutoff", cutoff, _CUTOFFS)
    cohort = None
    if hasattr(cohort_or_df, "clinical") and hasattr(cohort_or_df, "exclude"):
        cohort = cohort_or_df
        clinical = cohort.clinical
        if time_unit is None:
            time_unit = getattr(cohort, "time_unit", None)
    else:
        clinical = _as_pandas(cohort_or_df, "cohort_or_df")
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
    _require_columns(clinical, [time, event, *([arm] if arm else []), *covariates])
    clin = clinical.copy()
    clin["patient_id"] = clin["patient_id"].astype(str)
    if clin["patient_id"].duplicated().any():
        raise SchemaError(
            f"clinical table: duplicate patient_id(s) {clin['patient_id'][clin['patient_id'].duplicated()].head().tolist()}"
        )
    sc = _scores_series(
        scores, target=target, column="probability" if cutoff == "probability" else "score"
    )
    analysis = f"survival.stratify({time})"
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
    _survival_arrays(data, time, event)  # validates values (negative times, bad codes)
    n = len(data)
    if n < 4:
        raise AnalysisError(
            f"stratify: only {n} patients with score, {time} and {event}; need >= 4"
        )
    s = data["score"].to_numpy(dtype=float)
    notes: list[str] = []
    # ------------------------------------------------------------------ cut-offs
    if isinstance(cutoff, (int, float)) and not isinstance(cutoff, bool):
        method, qs, fixed = f"fixed ({float(cutoff):g})", None, np.array([float(cutoff)])
    elif cutoff == "probability":
        if not (0 < probability < 1):
            raise ValueError(f"probability must be in (0, 1); got {probability}")
        if s.min() < 0 or s.max() > 1:
            raise SchemaError(
                f"cutoff='probability' needs scores in [0, 1]; got range {s.min():g}..{s.max():g}"
            )
        method, qs, fixed = f"probability ({probability:g})", None, np.array([float(probability)])
    elif cutoff == "optimal":
        method, qs, fixed = "optimal", None, None
    else:
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
                raise ValueError(
                    f"cutoff='prevalence' needs prevalence in (0, 1); got {prevalence!r}"
                )
            qs = np.array([1.0 - float(prevalence)])
        method, fixed = str(cutoff), None
    optimal = None
    if qs is not None:
        if folds is not None:
            f = pd.Series(folds)
            f.index = f.index.astype(str)
            lab = data["patient_id"].map(f)
            if lab.isna().any():
                raise SchemaError(
                    f"folds: no fold for patient(s) {data.loc[lab.isna(), 'patient_id'].head().tolist()}"
                )
            fold = pd.factorize(lab, sort=True)[0]
        else:
            if n_folds < 2:
                raise ValueError(f"n_folds must be >= 2; got {n_folds}")
            rng = np.random.default_rng(np.random.SeedSequence(seed))
            order = np.argsort(data["patient_id"].to_numpy(), kind="mergesort")
            perm = rng.permutation(n)
            fold = np.empty(n, dtype=int)
            fold[order[perm]] = np.arange(n) % min(n_folds, n)
        k = int(fold.max()) + 1
        if k < 2:
            raise AnalysisError("stratify: cross-fitting needs at least two folds")
        cut_rows, cut_of = [], np.zeros((n, qs.size))
        for j in range(k):
            others = s[fold != j]
            cuts = np.quantile(others, qs)
            cut_of[fold == j] = cuts
            for qq, c in zip(qs, cuts, strict=True):
                cut_rows.append({"fold": j, "quantile": float(qq), "cutoff": float(c)})
        gidx = (s[:, None] > cut_of).sum(axis=1)
        cutoffs = pd.DataFrame(cut_rows)
        applied = cut_of[:, -1]
    else:
        fold = np.full(n, -1)
        if fixed is None:
            optimal = maxstat_cutpoint(data, time, event, "score", min_prop=min_prop)
            fixed = np.array([float(optimal["cutoff"].iloc[0])])
            notes.append(
                "EXPLORATORY: the optimal cut-point was chosen on the same patients it is evaluated "
                "on; only the corrected p-value of the maximally selected statistic is valid (the "
                "log-rank p shown); Cox, RMST and interaction p-values and HRs at this cut-point "
                "are not corrected for the search and are optimistic"
            )
        gidx = _cut_groups(s, fixed)
        cutoffs = pd.DataFrame(
            {"fold": [-1] * fixed.size, "quantile": [np.nan] * fixed.size, "cutoff": fixed}
        )
        applied = np.full(n, fixed[-1])
    labels = ("low", "middle", "high") if (qs is not None and qs.size == 2) else ("low", "high")
    present = [labels[i] for i in sorted(set(gidx.tolist()))]
    if len(present) < 2:
        raise AnalysisError(
            f"stratify: all {n} patients fall in risk group {present}; the scores do not separate "
            f"at the {method} cut-off (score range {s.min():g}..{s.max():g})"
        )
    data[GROUP_COLUMN] = pd.Categorical(
        [labels[i] for i in gidx], categories=list(present), ordered=True
    )
    assign_cols = ["patient_id", "score"]
    data["fold"] = fold
    data["cutoff"] = applied
    assignments = data[
        ["patient_id", "score", "fold", "cutoff", GROUP_COLUMN, time, event]
        + ([arm] if arm else [])
    ].rename(columns={time: "time", event: "event"})
    del assign_cols
    # ------------------------------------------------------------------ analyses
    kmr = km(data, time, event, GROUP_COLUMN, conf_level=conf_level)
    for _, r in kmr.summary.iterrows():
        if r["events"] < 10:
            notes.append(
                f"risk group {r['group']}: only {r['events']} events; estimates are unstable"
            )

    def _try(what: str, fn: Any) -> Any:
        try:
            return fn()
        except AnalysisError as err:
            notes.append(f"{what} not available: {err}")
            logger.info("%s not available: %s", what, err)
            return None

    lr = _try("log-rank", lambda: logrank(data, time, event, GROUP_COLUMN))
    if optimal is not None and lr is not None:
        lr = _search_corrected_logrank(lr, optimal)
    models: dict[str, Any] = {}
    mu = _try(
        "Cox (unadjusted)",
        lambda: cox_fit(data, time, event, [GROUP_COLUMN], conf_level=conf_level),
    )
    cu = None if mu is None else mu.table
    models["unadjusted"] = mu
    ca = None
    if covariates:
        miss = data[list(covariates)].isna().any(axis=1).to_numpy()
        if miss.any():
            for p, row in zip(
                data.loc[miss, "patient_id"],
                data.loc[miss, list(covariates)].itertuples(index=False),
                strict=True,
            ):
                cols = [c for c, v in zip(covariates, row, strict=True) if pd.isna(v)]
                excl_rows.append(
                    {
                        "patient_id": p,
                        "analysis": f"{analysis}:cox_adjusted",
                        "reason": f"missing covariate(s) {', '.join(cols)} (adjusted Cox model only)",
                    }
                )
        sub = data.loc[~miss].reset_index(drop=True)
        ma = _try(
            "Cox (adjusted)",
            lambda: cox_fit(sub, time, event, [GROUP_COLUMN, *covariates], conf_level=conf_level),
        )
        ca = None if ma is None else ma.table
        models["adjusted"] = ma
    rm = _try("RMST", lambda: rmst(data, time, event, GROUP_COLUMN, tau=tau, conf_level=conf_level))
    cc = _try("concordance", lambda: concordance(data, time, event, "score", conf_level=conf_level))
    inter = None
    if arm:
        inter = _try(
            "interaction",
            lambda: treatment_interaction(
                data, time, event, arm, GROUP_COLUMN, subgroups=subgroups, conf_level=conf_level
            ),
        )
        if inter is not None:
            notes.extend(inter.notes)
            models["interaction"] = inter.model
    ph = _ph_tests(models, notes)
    if optimal is not None:
        optimal = optimal.assign(exploratory=True)
    exclusions = pd.DataFrame(excl_rows, columns=["patient_id", "analysis", "reason"])
    if cohort is not None and len(exclusions):
        for (an, why), grp in exclusions.groupby(["analysis", "reason"], sort=False):
            ids = [p for p in grp["patient_id"] if p not in not_in_clin]
            if ids:
                cohort.exclude(ids, reason=why, analysis=an)
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
        "conf_level": conf_level,
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
        km=kmr,
        logrank=lr,
        cox_unadjusted=cu,
        cox_adjusted=ca,
        rmst=rm,
        concordance=cc,
        interaction=inter,
        optimal=optimal,
        exclusions=exclusions,
        notes=tuple(notes),
        parameters=params,
        ph_test=ph,
        time_unit=time_unit or "months",
    )


def _search_corrected_logrank(lr: pd.DataFrame, optimal: pd.DataFrame) -> pd.DataFrame:
    """Log-rank table at the optimal cut-point with the p-value corrected for the search.

    The two-group log-rank chi-square at the selected cut-point is the square of the maximally
    selected statistic, so its valid p-value is the Lausen–Schumacher one of
    :func:`maxstat_cutpoint`; the chi-square p-value is kept, labelled uncorrected.
    """
    row = optimal.iloc[0]
    out = lr.copy()
    out["p_value_uncorrected"] = out["p_value"]
    out.loc["log-rank", "p_value"] = float(row["p_value"])
    out["p_value_method"] = (
        "Lausen-Schumacher (1992) for the maximally selected log-rank statistic over "
        f"{int(row['n_candidates'])} cut-points (min_prop={float(row['min_prop']):g}); "
        "p_value_uncorrected treats the cut-point as fixed in advance and is not valid"
    )
    return out


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


__all__ = [
    "InteractionResult",
    "StratificationResult",
    "maxstat_cutpoint",
    "stratify",
    "treatment_interaction",
]

_ = (Mapping, _records)
