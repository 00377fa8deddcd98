"""Treatment x biomarker interaction: is the treatment effect different across biomarker
levels (a predictive biomarker)?

:func:`treatment_interaction` fits the Cox model with arm, biomarker and arm x biomarker terms,
tests the interaction (likelihood ratio and Wald), derives the treatment HR within each
biomarker level from that model, and fits the treatment HR separately in each subgroup for the
forest plot.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import stats

from .._checks import positional_deprecated, renamed_parameters
from ..errors import AnalysisError, SchemaError
from .cox_model import CoxModel, design_matrix, design_terms, fit_cox_design
from .formatting import html_table, json_safe, records
from .validation import (
    as_pandas,
    check_level,
    level_order,
    norm_ppf,
    require_columns,
    survival_arrays,
)

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

__all__ = ["InteractionResult", "treatment_interaction"]

_SUBGROUP_COLUMNS = ["variable", "level", "n", "events", "hr", "hr_low", "hr_high", "p_value"]


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
            "experimental": json_safe(self.experimental),
            "control": json_safe(self.control),
            "biomarker": self.biomarker,
            "table": records(self.table),
            "subgroups": records(self.subgroups),
            "forest": records(self.forest),
            "interaction_test": records(self.interaction_test),
            "interaction_p_value": json_safe(self.interaction_p_value),
            "n": self.model.n,
            "events": self.model.events,
            "notes": list(self.notes),
        }

    def _repr_html_(self) -> str:
        return (
            f"<p>Interaction {html.escape(self.arm)} x {html.escape(self.biomarker)}: "
            f"p = {self.interaction_p_value:.3g} (likelihood ratio)</p>"
            + html_table(self.table, "Interaction model")
            + html_table(self.subgroups, "Treatment effect by biomarker level")
        )


@renamed_parameters(conf_level="level")
@positional_deprecated("time", "event", "arm", "biomarker", "covariates")
def treatment_interaction(
    df: pd.DataFrame,
    *,
    time: str,
    event: str,
    arm: str,
    biomarker: str,
    covariates: Sequence[str] = (),
    strata: str | None = None,
    reference_arm: Any | None = None,
    reference_level: Any | None = None,
    subgroups: Sequence[str] = ("cancer_type",),
    level: float = 0.95,
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
    level : float

    Returns
    -------
    InteractionResult

    Raises
    ------
    AnalysisError
        One arm only, no events, or a model that cannot be fitted.
    """
    check_level(level)
    df = as_pandas(df).reset_index(drop=True)
    covariates = [covariates] if isinstance(covariates, str) else list(covariates)
    require_columns(df, [biomarker, *covariates])
    _, events = survival_arrays(df, time, event)
    ref_arm, exp_arm = _arm_levels(df, arm, reference_arm)
    a = (df[arm] == exp_arm).to_numpy(dtype=float)
    arm_name = f"{arm}[{exp_arm}]"
    coding = _biomarker_coding(df[biomarker], biomarker, reference_level)
    full, reduced, i_names = _interaction_models(
        df, time, event, a, arm_name, biomarker, coding, covariates, strata, level
    )
    itest = _interaction_test(full, reduced, i_names)
    notes: list[str] = []
    if coding.categorical:
        sub_df = _subgroup_effects(full, arm_name, biomarker, df[biomarker], coding, events, level)
    else:
        sub_df = pd.DataFrame([], columns=_SUBGROUP_COLUMNS)
        notes.append(
            f"continuous biomarker {biomarker!r}: the HR of {arm_name} is per unit of "
            "the biomarker through the interaction term; no level subgroups"
        )
    forest_columns = (
        ([biomarker] if coding.categorical else [])
        + [c for c in subgroups if c in df.columns]
        + [c for c in covariates if not pd.api.types.is_numeric_dtype(df[c])]
    )
    forest = _forest(df, time, event, a, events, forest_columns, strata, level, notes)
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


@dataclass(frozen=True)
class _BiomarkerCoding:
    """The biomarker's columns in the model: indicators of each non-reference level
    (categorical, two-valued numeric included) or the values themselves (continuous)."""

    categorical: bool
    levels: list[Any]
    reference: Any
    columns: list[np.ndarray]
    names: list[str]


def _biomarker_coding(bm: pd.Series, biomarker: str, reference_level: Any) -> _BiomarkerCoding:
    if bm.isna().any():
        raise SchemaError(
            f"column {biomarker!r}: {int(bm.isna().sum())} missing biomarker value(s)"
        )
    categorical = (
        not pd.api.types.is_numeric_dtype(bm)
        or pd.api.types.is_bool_dtype(bm)
        or bm.nunique() == 2  # 0/1 (or any two-valued) coding is a binary biomarker
    )
    if not categorical:
        return _BiomarkerCoding(
            False, [], None, [pd.to_numeric(bm).to_numpy(dtype=float)], [biomarker]
        )
    levels = level_order(bm)
    ref_lv = levels[0] if reference_level is None else reference_level
    if ref_lv not in levels:
        raise ValueError(f"reference_level={ref_lv!r} not among {biomarker!r} levels {levels}")
    others = [lv for lv in levels if lv != ref_lv]
    if not others:
        raise AnalysisError(f"biomarker {biomarker!r} has a single level {levels}; no interaction")
    return _BiomarkerCoding(
        True,
        levels,
        ref_lv,
        [(bm == lv).to_numpy(dtype=float) for lv in others],
        [f"{biomarker}[{lv}]" for lv in others],
    )


def _interaction_models(
    df: pd.DataFrame,
    time: str,
    event: str,
    a: np.ndarray,
    arm_name: str,
    biomarker: str,
    coding: _BiomarkerCoding,
    covariates: list[str],
    strata: str | None,
    level: float,
) -> tuple[CoxModel, CoxModel, list[str]]:
    """The model with the interaction terms, the one without, and the interaction terms' names."""
    cx, cnames = design_matrix(df, covariates, None)
    covariate_cols = [cx] if cx.size else []
    i_cols = [a * b for b in coding.columns]
    i_names = [f"{arm_name}:{n}" for n in coding.names]
    full = fit_cox_design(
        df,
        time,
        event,
        np.column_stack([a, *coding.columns, *i_cols, *covariate_cols]),
        [arm_name, *coding.names, *i_names, *cnames],
        terms=(
            arm_name,
            *[biomarker] * len(coding.names),
            *[f"{arm_name}:{biomarker}"] * len(i_names),
            *design_terms(covariates, cnames),
        ),
        strata=strata,
        level=level,
    )
    reduced = fit_cox_design(
        df,
        time,
        event,
        np.column_stack([a, *coding.columns, *covariate_cols]),
        [arm_name, *coding.names, *cnames],
        strata=strata,
        level=level,
    )
    return full, reduced, i_names


def _interaction_test(full: CoxModel, reduced: CoxModel, i_names: list[str]) -> pd.DataFrame:
    """Likelihood-ratio and Wald tests of the interaction terms, indexed by ``test``."""
    lr = max(0.0, 2.0 * (full.loglik - reduced.loglik))
    k = len(i_names)
    bi = full.table.loc[i_names, "coef"].to_numpy()
    vi = full.covariance.loc[i_names, i_names].to_numpy()
    wald = float(bi @ np.linalg.solve(vi, bi))
    return pd.DataFrame(
        {
            "statistic": [lr, wald],
            "df": [k, k],
            "p_value": [stats.chi2.sf(lr, k), stats.chi2.sf(wald, k)],
        },
        index=pd.Index(["likelihood-ratio", "wald"], name="test"),
    )


def _subgroup_effects(
    full: CoxModel,
    arm_name: str,
    biomarker: str,
    bm: pd.Series,
    coding: _BiomarkerCoding,
    events: np.ndarray,
    level: float,
) -> pd.DataFrame:
    """Treatment HR within each biomarker level, from the interaction model's coefficients."""
    q = norm_ppf(level)
    cov = full.covariance
    rows = []
    for lv in coding.levels:
        m = (bm == lv).to_numpy()
        if lv == coding.reference:
            est = full.table.loc[arm_name, "coef"]
            var = cov.loc[arm_name, arm_name]
        else:
            iname = f"{arm_name}:{biomarker}[{lv}]"
            est = full.table.loc[arm_name, "coef"] + full.table.loc[iname, "coef"]
            var = cov.loc[arm_name, arm_name] + cov.loc[iname, iname] + 2 * cov.loc[arm_name, iname]
        se = math.sqrt(var)
        rows.append(
            {
                "variable": biomarker,
                "level": lv,
                "n": int(m.sum()),
                "events": int(events[m].sum()),
                "hr": math.exp(est),
                "hr_low": math.exp(est - q * se),
                "hr_high": math.exp(est + q * se),
                "p_value": 2 * stats.norm.sf(abs(est / se)),
            }
        )
    return pd.DataFrame(rows, columns=_SUBGROUP_COLUMNS)


def _forest(
    df: pd.DataFrame,
    time: str,
    event: str,
    a: np.ndarray,
    events: np.ndarray,
    columns: list[str],
    strata: str | None,
    level: float,
    notes: list[str],
) -> pd.DataFrame:
    """Treatment HR from separate Cox fits in all patients and in each level of ``columns``
    (NaN with the reason in ``note`` where a fit is impossible; the reason also goes to
    ``notes``)."""
    specs: list[tuple[str, Any, np.ndarray]] = [("All patients", "all", np.ones(len(df), bool))]
    seen = set()
    for col in columns:
        if col in seen:
            continue
        seen.add(col)
        for lv in level_order(df[col]):
            specs.append((col, lv, (df[col] == lv).to_numpy()))
    rows = []
    for var, lv, m in specs:
        sub = df.loc[m].reset_index(drop=True)
        hr, lo, hi, p, note = _arm_only_hr(sub, time, event, a[m], level, strata)
        if note:
            notes.append(f"forest {var}={lv}: {note}")
        rows.append(
            {
                "variable": var,
                "level": lv,
                "n": int(m.sum()),
                "events": int(events[m].sum()),
                "hr": hr,
                "hr_low": lo,
                "hr_high": hi,
                "p_value": p,
                "note": note,
            }
        )
    return pd.DataFrame(rows)


def _arm_only_hr(
    sub: pd.DataFrame,
    time: str,
    event: str,
    ind: np.ndarray,
    level: float,
    strata: str | None,
) -> tuple[float, float, float, float, str]:
    """HR, CI and p of the arm indicator ``ind`` alone in ``sub``; NaNs and the first clause
    of the error message when the model cannot be fitted."""
    try:
        m = fit_cox_design(sub, time, event, ind[:, None], ["_arm"], strata=strata, level=level)
    except AnalysisError as err:
        return (np.nan, np.nan, np.nan, np.nan, str(err).split(";")[0])
    r = m.table.iloc[0]
    return (r["hr"], r["hr_low"], r["hr_high"], r["p_value"], "")


def _arm_levels(df: pd.DataFrame, arm: str, reference_arm: Any | None) -> tuple[Any, Any]:
    """``(control, experimental)`` arm levels of the two in ``arm``."""
    require_columns(df, [arm])
    miss = df[arm].isna().to_numpy()
    if miss.any():
        raise SchemaError(f"column {arm!r}: {int(miss.sum())} missing arm value(s)")
    levels = level_order(df[arm])
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
