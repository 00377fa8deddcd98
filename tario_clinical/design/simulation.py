"""A seeded simulation of the trial's log-rank test, to check the power formula of a design."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from .._checks import check_choice
from ..errors import AnalysisError
from ..survival import kernels
from .comparison import (
    DESIGNS,
    DesignComparison,
    DesignName,
    all_comers_hr,
    drift_power,
    is_mixture,
    logrank_drift,
    stratum_probs,
)
from .events import power_from_events

__all__ = ["simulate_power"]


def simulate_power(
    comparison: DesignComparison,
    *,
    design: DesignName = "enriched",
    n_patients: int | None = None,
    n_simulations: int = 500,
    seed: int = 0,
) -> pd.DataFrame:
    """Monte-Carlo power of the log-rank test for one design, next to the formula's.

    Each simulated trial draws biomarker status (all-comers designs), randomises with the
    design's allocation, draws uniform entry times and exponential event times, censors
    administratively at ``accrual + follow_up`` and applies the two-sided log-rank test
    (rejections in the direction of the effect count); the biomarker-positive test of an
    all-comers trial analyses the positive patients whose assay succeeded (each with
    probability ``assay_success``). Child seeds come from
    ``SeedSequence(seed).spawn(n_simulations)``, so results do not depend on the order of
    evaluation.

    Parameters
    ----------
    comparison : DesignComparison
        Output of :func:`compare_designs`: the design parameters and per-design sample sizes.
    design : {"enriched", "all-comers", "all-comers (biomarker-positive test)"}, default "enriched"
        Design to simulate.
    n_patients : int, optional
        Patients enrolled per simulated trial (>= 4); default the design's ``n_patients`` in
        ``comparison.table``.
    n_simulations : int, default 500
        Number of simulated trials (>= 10).
    seed : int, default 0
        Root of the per-trial ``SeedSequence``.

    Returns
    -------
    DataFrame
        One row: ``design, n_patients, n_simulations, power_formula, power_simulated, low, high,
        mean_events`` (``low``/``high``: 95 % Wilson interval of the simulated power).
    """
    check_choice("design", design, DESIGNS)
    if n_simulations < 10:
        raise ValueError(f"n_simulations must be >= 10; got {n_simulations}")
    p = comparison.parameters
    tab = comparison.table.set_index("design")
    n = int(tab.loc[design, "n_patients"] if n_patients is None else n_patients)
    if not n >= 4:
        raise AnalysisError(f"simulate_power: design {design!r} has no finite sample size ({n})")
    lam_pos = math.log(2) / p["median_control"]
    m_neg = (
        p["median_control"]
        if p["median_control_negative"] is None
        else p["median_control_negative"]
    )
    lam_neg = math.log(2) / m_neg
    a, f, alloc, alpha = p["accrual"], p["follow_up"], p["allocation"], p["alpha"]
    zcrit = stats.norm.ppf(1 - alpha / 2)
    p_pos, p_neg = stratum_probs(
        p["prevalence"],
        p["hr_positive"],
        p["hr_negative"],
        p["median_control"],
        p["median_control_negative"],
        a,
        f,
        alloc,
    )
    if design == "enriched":
        hr_f, ev_f = p["hr_positive"], n * p_pos
    elif design == "all-comers":
        hr_f = all_comers_hr(p["prevalence"], p["hr_positive"], p["hr_negative"], p_pos, p_neg)
        ev_f = n * (p["prevalence"] * p_pos + (1 - p["prevalence"]) * p_neg)
    else:
        hr_f, ev_f = p["hr_positive"], n * p["prevalence"] * p["assay_success"] * p_pos
    direction = -1.0 if hr_f < 1 else 1.0
    if design == "all-comers" and is_mixture(p):
        e_all, v_all = logrank_drift(p)
        direction = -1.0 if e_all < 0 else 1.0
        power_formula = float(drift_power(n, e_all, v_all, alpha))
    else:
        power_formula = float(power_from_events(ev_f, hr_f, alpha=alpha, allocation=alloc))
    n_exp = int(round(n * alloc))
    rejections = 0
    events_total = 0.0
    for child in np.random.SeedSequence(seed).spawn(n_simulations):
        rng = np.random.default_rng(child)
        arm = np.zeros(n, dtype=int)
        arm[rng.permutation(n)[:n_exp]] = 1
        pos = np.ones(n, bool) if design == "enriched" else rng.random(n) < p["prevalence"]
        lam = np.where(
            pos,
            lam_pos * np.where(arm == 1, p["hr_positive"], 1.0),
            lam_neg * np.where(arm == 1, p["hr_negative"], 1.0),
        )
        entry = rng.uniform(0, a, n) if a > 0 else np.zeros(n)
        t_event = rng.exponential(1 / lam)
        horizon = a + f - entry
        time = np.minimum(t_event, horizon)
        event = (t_event <= horizon).astype(float)
        if design == "all-comers (biomarker-positive test)":
            # drawn last, so the other designs' random streams are unchanged
            tested = pos & (rng.random(n) < p["assay_success"])
            time, event, arm = time[tested], event[tested], arm[tested]
        events_total += event.sum()
        if event.sum() == 0 or arm.min() == arm.max():
            continue
        o, e, v = kernels.logrank_arrays(time, event, arm, 2)
        z = (o[1] - e[1]) / math.sqrt(v[1, 1]) if v[1, 1] > 0 else 0.0
        rejections += bool(direction * z > zcrit)
    phat = rejections / n_simulations
    zc = 1.959963984540054
    denom = 1 + zc**2 / n_simulations
    centre = (phat + zc**2 / (2 * n_simulations)) / denom
    half = (
        zc * math.sqrt(phat * (1 - phat) / n_simulations + zc**2 / (4 * n_simulations**2)) / denom
    )
    return pd.DataFrame(
        [
            {
                "design": design,
                "n_patients": n,
                "n_simulations": n_simulations,
                "power_formula": power_formula,
                "power_simulated": phat,
                "low": centre - half,
                "high": centre + half,
                "mean_events": events_total / n_simulations,
            }
        ]
    )
