"""Trial-design numbers: inputs from the configuration, else estimated from the stratification."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from ..config import StudyConfig

__all__ = ["design_inputs_from_stratification", "design_table", "top_group_hr_interval"]

log = logging.getLogger("tario_clinical")


def design_inputs_from_stratification(strat: Any, cohort: Any) -> dict[str, float] | None:
    """Design inputs estimated from a stratification with an arm.

    Biomarker-positive patients are the highest score group; HRs are experimental vs control
    within the positive and the negative (all other) patients; the control median is the KM
    median of positive control patients (falling back to all control patients). These are the
    cross-fitted groups, so no estimate comes from a cut-off tuned on the same patients.

    Parameters
    ----------
    strat : stratification result or None
        Output of :func:`~tario_clinical.survival.stratify` with an arm (its ``interaction``
        set).
    cohort : Cohort
        Supplies the arm column when the assignments lack it.

    Returns
    -------
    dict or None
        ``prevalence, hr_positive, hr_negative, median_control``; ``None`` without a
        stratification with an arm, or when a stratum lacks one arm or has fewer than 2 events.
    """
    from .. import survival

    inter = getattr(strat, "interaction", None)
    if strat is None or inter is None:
        return None
    a = strat.assignments
    arm_col = inter.arm
    if arm_col not in a.columns:
        a = a.merge(cohort.clinical[["patient_id", arm_col]], on="patient_id", how="left")
    top = strat.groups[-1]
    a = a.assign(
        _positive=(a["risk_group"] == top).astype(int),
        _exp=(a[arm_col] == inter.experimental).astype(float),
    )
    out: dict[str, float] = {"prevalence": float(a["_positive"].mean())}
    for name, part in (
        ("hr_positive", a[a["_positive"] == 1]),
        ("hr_negative", a[a["_positive"] == 0]),
    ):
        if part["_exp"].nunique() < 2 or part["event"].sum() < 2:
            return None
        table = survival.cox(part, time="time", event="event", covariates=["_exp"])
        out[name] = float(table.loc["_exp", "hr"])
    ctrl = a[(a["_exp"] == 0) & (a["_positive"] == 1)]
    median = np.nan
    if len(ctrl) and ctrl["event"].sum():
        median = float(survival.km(ctrl, time="time", event="event").summary["median"].iloc[0])
    if not np.isfinite(median):
        ctrl = a[a["_exp"] == 0]
        median = float(survival.km(ctrl, time="time", event="event").summary["median"].iloc[0])
    out["median_control"] = median
    return out


def design_table(cfg: StudyConfig, cohort: Any, strat: Any) -> Any:
    """Trial-design numbers: inputs from the config where given, else estimated from the stratification."""
    from .. import design

    d = cfg.design
    if d is None:
        return None
    guess = design_inputs_from_stratification(strat, cohort) or {}
    prevalence = d.prevalence if d.prevalence is not None else guess.get("prevalence")
    hr_pos = d.hr_positive if d.hr_positive is not None else guess.get("hr_positive")
    hr_neg = d.hr_negative if d.hr_negative is not None else guess.get("hr_negative")
    median = (
        d.control_median_months
        if d.control_median_months is not None
        else guess.get("median_control")
    )
    values = {
        "prevalence": prevalence,
        "hr_positive": hr_pos,
        "hr_negative": hr_neg,
        "median_control": median,
    }
    missing = [k for k, v in values.items() if v is None or not np.isfinite(v)]
    if missing:
        log.warning(
            "trial-design table skipped: no value for %s (set them under 'design')",
            ", ".join(missing),
        )
        return None
    if not hr_pos < 1 or not 0 < prevalence < 1:
        log.warning(
            "trial-design table skipped: estimated HR in biomarker-positive patients is %.2f (>= 1) or prevalence %.2f "
            "outside (0, 1); set design.hr_positive to plan a trial",
            hr_pos,
            prevalence,
        )
        return None
    kw = {"prevalence": float(prevalence), "hr_negative": float(hr_neg)}
    kw.update(median_control=float(median), accrual=d.accrual_months, follow_up=d.followup_months)
    kw.update(allocation=d.allocation, alpha=d.alpha, power=d.power)
    dc = design.compare_designs(hr_positive=float(hr_pos), **kw)
    if not d.sensitivity or d.hr_positive is not None:
        return dc  # an HR set in the configuration has no interval from this cohort
    bounds = top_group_hr_interval(strat, float(hr_pos))
    if bounds is None:
        return dc
    rows = []
    for scenario, hr in zip(("lower 95 % bound", "upper 95 % bound"), bounds, strict=True):
        if hr < 1:
            t = design.compare_designs(hr_positive=float(hr), **kw).table
            rows.append(t.assign(scenario=scenario, hr_positive=float(hr), note=""))
        else:
            note = "no benefit at this HR: no trial can be powered"
            t = pd.DataFrame({"design": dc.table["design"], "hr": np.nan})
            rows.append(t.assign(scenario=scenario, hr_positive=float(hr), note=note))
    sens = pd.concat(rows, ignore_index=True)
    first = ["scenario", "hr_positive"]
    sens = sens[first + [c for c in sens.columns if c not in (*first, "note")] + ["note"]]
    return {"comparison": dc, "sensitivity": sens}


def top_group_hr_interval(strat: Any, hr: float) -> tuple[float, float] | None:
    """``(hr_low, hr_high)`` of the forest row of the highest score group, when its HR is the
    design's (the same arm-only Cox fit), else None."""
    inter = getattr(strat, "interaction", None)
    if inter is None:
        return None
    f = inter.forest
    row = f[(f["variable"] == inter.biomarker) & (f["level"].astype(str) == str(strat.groups[-1]))]
    if len(row) != 1 or not abs(float(row["hr"].iloc[0]) - hr) <= 1e-9 * max(1.0, hr):
        log.warning("design sensitivity skipped: the high-score group's forest row is not the HR")
        return None
    lo, hi = float(row["hr_low"].iloc[0]), float(row["hr_high"].iloc[0])
    return (lo, hi) if np.isfinite(lo) and np.isfinite(hi) else None
