"""Comparing designs: events, patients, screening and duration of an enriched and an
all-comers trial (with the two-stratum log-rank drift when the hazards are not proportional
overall), as a :class:`DesignComparison`, and its power curves."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from .events import (
    check_hr,
    check_prob,
    event_probability,
    number_to_screen,
    power_from_events,
    schoenfeld_events,
)
from .plots import plot_power_curves

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

__all__ = [
    "DesignName",
    "DESIGNS",
    "DesignComparison",
    "compare_designs",
    "power_curves",
    "stratum_probs",
    "all_comers_hr",
    "is_mixture",
    "logrank_drift",
    "drift_power",
]

DesignName = Literal["enriched", "all-comers", "all-comers (biomarker-positive test)"]
DESIGNS = ("enriched", "all-comers", "all-comers (biomarker-positive test)")


@dataclass(frozen=True, eq=False)
class DesignComparison:
    """Events and sample sizes of the candidate designs.

    Attributes
    ----------
    table : DataFrame
        One row per design: ``design, hr, events, n_patients, n_screened, n_tested,
        event_probability, power, duration`` (events, patients and screened rounded up;
        ``power`` achieved at the sample size shown). ``events`` are the events the test needs
        in the *tested* population; ``n_tested`` is the (expected) number of patients in it:
        all enrolled patients, except in ``all-comers (biomarker-positive test)`` where only
        the enrolled patients with an evaluable biomarker-positive assay
        (``n_patients * prevalence * assay_success``) are tested. ``event_probability`` is the
        probability that a tested patient has an event by the analysis, so
        ``events ≈ n_tested * event_probability`` in every row.
    parameters : dict
        The scenario.
    """

    table: pd.DataFrame
    parameters: dict[str, Any] = field(default_factory=dict)

    def plot_power(self, *, ax: Axes | None = None, x: str = "n_screened") -> Axes:
        """Power curves of the designs (see :func:`power_curves`)."""
        return plot_power_curves(
            power_curves(self), ax=ax, x=x, target=self.parameters.get("power")
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe numbers."""
        rows = [
            {k: (v.item() if isinstance(v, np.generic) else v) for k, v in r.items()}
            for r in self.table.to_dict("records")
        ]
        return {"designs": rows, "parameters": dict(self.parameters)}

    def _repr_html_(self) -> str:
        p = ", ".join(
            f"{html.escape(str(k))}={html.escape(str(v))}" for k, v in self.parameters.items()
        )
        return f"<p>{p}</p>" + self.table.to_html(index=False, escape=True, border=0)


def stratum_probs(
    prevalence: float,
    hr_positive: float,
    hr_negative: float,
    median_control: float,
    median_control_negative: float | None,
    accrual: float,
    follow_up: float,
    allocation: float,
) -> tuple[float, float]:
    m_neg = median_control if median_control_negative is None else median_control_negative
    p_pos = event_probability(
        median_control, hr_positive, accrual=accrual, follow_up=follow_up, allocation=allocation
    )
    p_neg = event_probability(
        m_neg, hr_negative, accrual=accrual, follow_up=follow_up, allocation=allocation
    )
    return p_pos, p_neg


def all_comers_hr(
    prevalence: float, hr_positive: float, hr_negative: float, p_pos: float, p_neg: float
) -> float:
    w = prevalence * p_pos / (prevalence * p_pos + (1 - prevalence) * p_neg)
    return float(math.exp(w * math.log(hr_positive) + (1 - w) * math.log(hr_negative)))


def is_mixture(p: dict[str, Any]) -> bool:
    """Whether the all-comers hazards are non-proportional (the strata differ)."""
    m_neg = p["median_control_negative"]
    return p["hr_positive"] != p["hr_negative"] or (
        m_neg is not None and m_neg != p["median_control"]
    )


def logrank_drift(p: dict[str, Any]) -> tuple[float, float]:
    """Expected log-rank numerator and its variance per enrolled all-comers patient.

    Two strata (biomarker-positive with probability ``prevalence``), exponential survival per
    arm and stratum, uniform entry over ``accrual`` and analysis ``follow_up`` after the last
    entry. With ``y_k(t)`` the expected fraction at risk in arm k and ``h_k(t)`` the arm's
    (mixture) hazard, the numerator ``sum over events of (arm - share of arm 1 at risk)`` has
    mean ``∫ y1 y0 / (y1 + y0) (h1 - h0) dt`` and variance ``∫ y1 y0 / (y1 + y0)^2
    (y1 h1 + y0 h0) dt`` per patient (integrated numerically); the log-rank z of ``n``
    patients is then about normal with mean ``sqrt(n) e / sqrt(v)``.
    """
    lam_pos = math.log(2) / p["median_control"]
    m_neg = p["median_control_negative"] or p["median_control"]
    lam_neg = math.log(2) / m_neg
    prev, alloc = p["prevalence"], p["allocation"]
    a, f = p["accrual"], p["follow_up"]
    t = np.unique(np.r_[np.linspace(0.0, f, 4001), np.linspace(f, a + f, 4001)])
    cens = np.ones_like(t) if a <= 0 else np.clip((a + f - t) / a, 0.0, 1.0)
    ys, yh = [], []
    for share, hrs in ((1 - alloc, (1.0, 1.0)), (alloc, (p["hr_positive"], p["hr_negative"]))):
        lp, ln = lam_pos * hrs[0], lam_neg * hrs[1]
        sp, sn = prev * np.exp(-lp * t), (1 - prev) * np.exp(-ln * t)
        ys.append(share * (sp + sn))
        yh.append(share * (lp * sp + ln * sn))
    (y0, y1), (h0, h1) = ys, yh
    tot = y0 + y1
    e = float(np.trapezoid(cens * (y0 * h1 - y1 * h0) / tot, t))
    v = float(np.trapezoid(cens * y0 * y1 / tot**2 * (h0 + h1), t))
    return e, v


def drift_power(n: Any, e: float, v: float, alpha: float) -> Any:
    return stats.norm.cdf(np.sqrt(n) * abs(e) / math.sqrt(v) - stats.norm.ppf(1 - alpha / 2))


def compare_designs(
    *,
    prevalence: float,
    hr_positive: float,
    hr_negative: float,
    median_control: float,
    accrual: float,
    follow_up: float,
    median_control_negative: float | None = None,
    allocation: float = 0.5,
    alpha: float = 0.05,
    power: float = 0.8,
    assay_success: float = 1.0,
) -> DesignComparison:
    """Events, patients and patients to screen: enriched vs all-comers designs.

    Parameters
    ----------
    prevalence : float
        Fraction of biomarker-positive patients among those screened.
    hr_positive, hr_negative : float
        Treatment hazard ratios in biomarker-positive and -negative patients.
    median_control : float
        Median survival of biomarker-positive control patients (time units of ``accrual``).
    accrual, follow_up : float
        Uniform accrual period and additional follow-up after the last entry.
    median_control_negative : float, optional
        Control median of biomarker-negative patients (default ``median_control``).
    allocation : float
        Fraction randomised to the experimental arm.
    alpha, power : float
        Two-sided level and target power.
    assay_success : float
        Fraction of screened (or enrolled) patients with an evaluable biomarker assay. The
        enriched design screens ``n_patients / (prevalence * assay_success)``; the
        biomarker-positive test of an all-comers trial can only use patients whose assay
        worked, so it enrols ``1 / assay_success`` times more. The overall all-comers test
        does not need the assay.

    Returns
    -------
    DesignComparison
        Designs ``enriched`` (biomarker-positive only), ``all-comers`` (overall log-rank test)
        and ``all-comers (biomarker-positive test)`` (all-comers enrolment, powered for the
        log-rank test in the biomarker-positive subgroup; every enrolled patient is tested for
        the biomarker, so ``n_screened = n_patients``).

    Examples
    --------
    >>> c = compare_designs(prevalence=0.3, hr_positive=0.6, hr_negative=1.0,
    ...                     median_control=12, accrual=24, follow_up=12)
    >>> int(c.table.set_index("design").loc["enriched", "events"])
    121
    """
    check_prob("prevalence", prevalence, closed_high=True)
    check_prob("assay_success", assay_success, closed_high=True)
    check_hr("hr_positive", hr_positive)
    check_hr("hr_negative", hr_negative)
    p_pos, p_neg = stratum_probs(
        prevalence,
        hr_positive,
        hr_negative,
        median_control,
        median_control_negative,
        accrual,
        follow_up,
        allocation,
    )
    p_all = prevalence * p_pos + (1 - prevalence) * p_neg
    hr_all = all_comers_hr(prevalence, hr_positive, hr_negative, p_pos, p_neg)
    rows = []
    d_pos = math.ceil(
        schoenfeld_events(hr_positive, alpha=alpha, power=power, allocation=allocation)
    )
    n_enr = math.ceil(d_pos / p_pos)
    rows.append(
        (
            "enriched",
            hr_positive,
            d_pos,
            n_enr,
            number_to_screen(n_enr, prevalence, assay_success=assay_success),
            float(n_enr),
            p_pos,
            power_from_events(n_enr * p_pos, hr_positive, alpha=alpha, allocation=allocation),
        )
    )
    params = {
        "prevalence": prevalence,
        "hr_positive": hr_positive,
        "hr_negative": hr_negative,
        "median_control": median_control,
        "median_control_negative": median_control_negative,
        "accrual": accrual,
        "follow_up": follow_up,
        "allocation": allocation,
        "alpha": alpha,
        "power": power,
        "assay_success": assay_success,
    }
    e_all, v_all = logrank_drift(params) if is_mixture(params) else (0.0, 1.0)
    if is_mixture(params) and abs(e_all) > 1e-12 * math.sqrt(v_all):
        z = stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)
        n_all = math.ceil((z * math.sqrt(v_all) / abs(e_all)) ** 2)
        rows.append(
            (
                "all-comers",
                hr_all,
                math.ceil(n_all * p_all),
                n_all,
                n_all,
                float(n_all),
                p_all,
                float(drift_power(n_all, e_all, v_all, alpha)),
            )
        )
    elif not is_mixture(params) and abs(math.log(hr_all)) > 1e-12:
        d_all = math.ceil(
            schoenfeld_events(hr_all, alpha=alpha, power=power, allocation=allocation)
        )
        n_all = math.ceil(d_all / p_all)
        rows.append(
            (
                "all-comers",
                hr_all,
                d_all,
                n_all,
                n_all,
                float(n_all),
                p_all,
                power_from_events(n_all * p_all, hr_all, alpha=alpha, allocation=allocation),
            )
        )
    else:
        rows.append(("all-comers", hr_all, np.nan, np.nan, np.nan, np.nan, p_all, np.nan))
    # only enrolled patients with an evaluable, positive assay enter the subgroup test
    tested_share = prevalence * assay_success
    n_sub = math.ceil(d_pos / (tested_share * p_pos) - 1e-9)
    rows.append(
        (
            "all-comers (biomarker-positive test)",
            hr_positive,
            d_pos,
            n_sub,
            n_sub,
            n_sub * tested_share,
            p_pos,
            power_from_events(
                n_sub * tested_share * p_pos, hr_positive, alpha=alpha, allocation=allocation
            ),
        )
    )
    table = pd.DataFrame(
        rows,
        columns=[
            "design",
            "hr",
            "events",
            "n_patients",
            "n_screened",
            "n_tested",
            "event_probability",
            "power",
        ],
    )
    table["duration"] = accrual + follow_up
    return DesignComparison(table=table, parameters=params)


def power_curves(
    comparison: DesignComparison, *, n_patients: Sequence[float] | None = None
) -> pd.DataFrame:
    """Formula power of each design against the number enrolled.

    Parameters
    ----------
    comparison : DesignComparison
        Output of :func:`compare_designs` (its ``parameters`` and per-design ``table``).
    n_patients : sequence of float, optional
        Numbers enrolled at which every design is evaluated. Default: up to 60 rounded values
        from 10 to 1.5 times the largest sample size in ``comparison.table``.

    Returns
    -------
    DataFrame
        ``design, n_patients, n_screened, events, power`` (events = expected events of the
        tested population).
    """
    p = comparison.parameters
    p_pos, p_neg = stratum_probs(
        p["prevalence"],
        p["hr_positive"],
        p["hr_negative"],
        p["median_control"],
        p["median_control_negative"],
        p["accrual"],
        p["follow_up"],
        p["allocation"],
    )
    prev = p["prevalence"]
    p_all = prev * p_pos + (1 - prev) * p_neg
    hr_all = all_comers_hr(prev, p["hr_positive"], p["hr_negative"], p_pos, p_neg)
    rows = []
    base = comparison.table.set_index("design")["n_patients"]
    for design in DESIGNS:
        if n_patients is None:
            top = np.nanmax(base.to_numpy()) * 1.5
            grid = np.unique(np.linspace(10, top, 60).round())
        else:
            grid = np.asarray(n_patients, dtype=float)
        if design == "enriched":
            ev, hr, screened = (
                grid * p_pos,
                p["hr_positive"],
                np.ceil(grid / (prev * p["assay_success"])),
            )
        elif design == "all-comers":
            ev, hr, screened = grid * p_all, hr_all, grid
        else:  # biomarker-positive test: enrolled patients with a positive evaluable assay
            ev, hr, screened = (
                grid * prev * p["assay_success"] * p_pos,
                p["hr_positive"],
                grid,
            )
        if design == "all-comers" and is_mixture(p):
            e_all, v_all = logrank_drift(p)
            pw = drift_power(grid, e_all, v_all, p["alpha"])
        else:
            pw = (
                power_from_events(ev, hr, alpha=p["alpha"], allocation=p["allocation"])
                if abs(math.log(hr)) > 1e-12
                else np.full(grid.size, p["alpha"] / 2)
            )
        rows.append(
            pd.DataFrame(
                {
                    "design": design,
                    "n_patients": grid,
                    "n_screened": screened,
                    "events": ev,
                    "power": pw,
                }
            )
        )
    return pd.concat(rows, ignore_index=True)
