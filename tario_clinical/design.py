"""Trial-design numbers for biomarker-stratified trials.

Events (Schoenfeld 1981) and sample sizes for an all-comers versus a biomarker-enriched
design, number of patients to screen, power curves, and a seeded simulation of the log-rank
test that checks the formula's power.

Model: exponential survival in each arm and biomarker stratum, uniform accrual over
``accrual`` time units and a further ``follow_up`` after the last patient enters (the
analysis is at ``accrual + follow_up``); two-sided log-rank test at level ``alpha``.
In an all-comers population with different HRs (or control medians) in biomarker-positive and
-negative patients the hazards are not proportional overall: the all-comers sample size and
power then come from the expected log-rank statistic under the two-stratum mixture, integrated
over follow-up (mean and variance of the log-rank numerator per patient), which reduces to
Schoenfeld's formula under proportional hazards; :func:`simulate_power` checks it for the
scenario at hand. The ``hr`` shown for the all-comers design is the event-weighted mean of the
stratum log-HRs, a summary only.

Examples
--------
>>> round(schoenfeld_events(0.7, alpha=0.05, power=0.8))
247
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from .errors import AnalysisError
from .palette import OKABE_ITO
from .survival import kernels

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

__all__ = [
    "schoenfeld_events",
    "power_from_events",
    "event_probability",
    "number_to_screen",
    "DesignComparison",
    "compare_designs",
    "power_curves",
    "plot_power_curves",
    "simulate_power",
]

#: (Okabe–Ito colour, line style, line width, marker) of each design's power curve: the
#: enriched and biomarker-positive-test curves coincide against patients screened, so the
#: first is wide and solid under the second, thin and dashed, in the opposite colour
_CURVE_STYLES = {
    "enriched": ("#0072B2", "-", 3.2, "o"),
    "all-comers": ("#009E73", "-.", 1.8, "^"),
    "all-comers (biomarker-positive test)": ("#D55E00", "--", 1.6, "s"),
}

DesignName = Literal["enriched", "all-comers", "all-comers (biomarker-positive test)"]
_DESIGNS = ("enriched", "all-comers", "all-comers (biomarker-positive test)")


def _check_prob(name: str, value: float, *, closed_high: bool = False) -> None:
    ok = 0.0 < value < 1.0 or (closed_high and value == 1.0)
    if not ok:
        rng = "(0, 1]" if closed_high else "(0, 1)"
        raise ValueError(f"{name} must be in {rng}; got {value!r}")


def _check_hr(name: str, hr: float) -> None:
    if not (hr > 0) or not math.isfinite(hr):
        raise ValueError(f"{name} must be a positive finite hazard ratio; got {hr!r}")


def schoenfeld_events(
    hr: float, *, alpha: float = 0.05, power: float = 0.8, allocation: float = 0.5
) -> float:
    """Number of events for a two-sided log-rank test (Schoenfeld 1981).

    ``D = (z_{1-alpha/2} + z_{power})^2 / (p (1 - p) log(hr)^2)`` with ``p`` the fraction
    allocated to the experimental arm. Not rounded.

    Parameters
    ----------
    hr : float
        Hazard ratio experimental vs control (positive, finite, not 1).
    alpha : float, default 0.05
        Two-sided significance level, in (0, 1).
    power : float, default 0.8
        Target power, in (0, 1).
    allocation : float, default 0.5
        Fraction of patients allocated to the experimental arm, in (0, 1).

    Returns
    -------
    float
        Required number of events (not rounded).

    Raises
    ------
    ValueError
        ``hr == 1`` (no effect: infinitely many events) or parameters out of range.
    """
    _check_hr("hr", hr)
    _check_prob("alpha", alpha)
    _check_prob("power", power)
    _check_prob("allocation", allocation)
    if hr == 1.0:
        raise ValueError("hr = 1 means no treatment effect; the number of events is infinite")
    z = stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)
    return float(z**2 / (allocation * (1 - allocation) * math.log(hr) ** 2))


def power_from_events(
    events: float | np.ndarray, hr: float, *, alpha: float = 0.05, allocation: float = 0.5
) -> float | np.ndarray:
    """Power of the two-sided log-rank test with ``events`` events (Schoenfeld), counting
    rejections in the direction of the effect.

    Parameters
    ----------
    events : float or numpy.ndarray
        Number of events; an array gives the power element-wise.
    hr : float
        Hazard ratio experimental vs control (positive, finite).
    alpha : float, default 0.05
        Two-sided significance level, in (0, 1).
    allocation : float, default 0.5
        Fraction of patients allocated to the experimental arm, in (0, 1).

    Returns
    -------
    float or numpy.ndarray
        Power (a float for scalar ``events``, else an array of the same shape).

    Raises
    ------
    ValueError
        Parameters out of range.
    """
    _check_hr("hr", hr)
    _check_prob("alpha", alpha)
    _check_prob("allocation", allocation)
    ev = np.asarray(events, dtype=float)
    out = stats.norm.cdf(
        np.sqrt(ev * allocation * (1 - allocation)) * abs(math.log(hr))
        - stats.norm.ppf(1 - alpha / 2)
    )
    return float(out) if np.ndim(out) == 0 else out


def event_probability(
    median_control: float,
    hr: float,
    *,
    accrual: float,
    follow_up: float,
    allocation: float = 0.5,
) -> float:
    """Probability that a randomised patient has an event by the analysis.

    Exponential survival (control median ``median_control``, experimental hazard
    ``hr`` times the control hazard), uniform entry on ``[0, accrual]``, analysis at
    ``accrual + follow_up``: ``P(λ) = 1 - (exp(-λ f) - exp(-λ (a + f))) / (λ a)``, averaged
    over arms by ``allocation``.

    Parameters
    ----------
    median_control : float
        Median survival of the control arm (> 0), in the time unit of ``accrual`` and
        ``follow_up``.
    hr : float
        Hazard ratio experimental vs control (positive, finite).
    accrual : float
        Accrual duration (>= 0; 0 = every patient enters at time 0).
    follow_up : float
        Follow-up after the end of accrual (>= 0; ``accrual + follow_up`` must be > 0).
    allocation : float, default 0.5
        Fraction of patients allocated to the experimental arm, in (0, 1).

    Returns
    -------
    float
        Probability in [0, 1].

    Raises
    ------
    ValueError
        Parameters out of range.
    """
    if median_control <= 0 or accrual < 0 or follow_up < 0 or accrual + follow_up <= 0:
        raise ValueError(
            f"need median_control > 0, accrual >= 0, follow_up >= 0 and accrual + follow_up > 0; got "
            f"median_control={median_control}, accrual={accrual}, follow_up={follow_up}"
        )
    _check_hr("hr", hr)
    _check_prob("allocation", allocation)
    lam0 = math.log(2) / median_control

    def p(lam: float) -> float:
        if accrual == 0:
            return 1 - math.exp(-lam * follow_up)
        return 1 - (math.exp(-lam * follow_up) - math.exp(-lam * (accrual + follow_up))) / (
            lam * accrual
        )

    return float((1 - allocation) * p(lam0) + allocation * p(lam0 * hr))


def number_to_screen(n_patients: float, prevalence: float, *, assay_success: float = 1.0) -> int:
    """Patients to screen to enrol ``n_patients`` biomarker-positive patients.

    Parameters
    ----------
    n_patients : float
        Biomarker-positive patients to enrol.
    prevalence : float
        Fraction of screened patients who are biomarker-positive, in (0, 1].
    assay_success : float, default 1.0
        Fraction of screened patients with an evaluable assay, in (0, 1].

    Returns
    -------
    int
        ``ceil(n_patients / (prevalence * assay_success))``.

    Raises
    ------
    ValueError
        ``prevalence`` or ``assay_success`` outside (0, 1].
    """
    _check_prob("prevalence", prevalence, closed_high=True)
    _check_prob("assay_success", assay_success, closed_high=True)
    return int(math.ceil(n_patients / (prevalence * assay_success) - 1e-9))


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


def _stratum_probs(
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


def _all_comers_hr(
    prevalence: float, hr_positive: float, hr_negative: float, p_pos: float, p_neg: float
) -> float:
    w = prevalence * p_pos / (prevalence * p_pos + (1 - prevalence) * p_neg)
    return float(math.exp(w * math.log(hr_positive) + (1 - w) * math.log(hr_negative)))


def _mixture(p: dict[str, Any]) -> bool:
    """Whether the all-comers hazards are non-proportional (the strata differ)."""
    m_neg = p["median_control_negative"]
    return p["hr_positive"] != p["hr_negative"] or (
        m_neg is not None and m_neg != p["median_control"]
    )


def _logrank_drift(p: dict[str, Any]) -> tuple[float, float]:
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


def _drift_power(n: Any, e: float, v: float, alpha: float) -> Any:
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
    _check_prob("prevalence", prevalence, closed_high=True)
    _check_prob("assay_success", assay_success, closed_high=True)
    _check_hr("hr_positive", hr_positive)
    _check_hr("hr_negative", hr_negative)
    p_pos, p_neg = _stratum_probs(
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
    hr_all = _all_comers_hr(prevalence, hr_positive, hr_negative, p_pos, p_neg)
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
    e_all, v_all = _logrank_drift(params) if _mixture(params) else (0.0, 1.0)
    if _mixture(params) and abs(e_all) > 1e-12 * math.sqrt(v_all):
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
                float(_drift_power(n_all, e_all, v_all, alpha)),
            )
        )
    elif not _mixture(params) and abs(math.log(hr_all)) > 1e-12:
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
    p_pos, p_neg = _stratum_probs(
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
    hr_all = _all_comers_hr(prev, p["hr_positive"], p["hr_negative"], p_pos, p_neg)
    rows = []
    base = comparison.table.set_index("design")["n_patients"]
    for design in _DESIGNS:
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
        if design == "all-comers" and _mixture(p):
            e_all, v_all = _logrank_drift(p)
            pw = _drift_power(grid, e_all, v_all, p["alpha"])
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


def plot_power_curves(
    curves: pd.DataFrame,
    *,
    ax: Axes | None = None,
    x: str = "n_screened",
    target: float | None = None,
) -> Axes:
    """Plot power against ``x`` (``n_screened``, ``n_patients`` or ``events``) per design.

    Parameters
    ----------
    curves : DataFrame
        Output of :func:`power_curves` (columns ``design``, ``power`` and ``x``).
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; default a new 6.5 x 4.2 inch figure.
    x : {"n_screened", "n_patients", "events"}, default "n_screened"
        Column on the horizontal axis.
    target : float, optional
        Target power, drawn as a dashed horizontal line.

    Returns
    -------
    matplotlib.axes.Axes

    Raises
    ------
    ValueError
        Unknown ``x``.

    Notes
    -----
    Against patients screened the ``enriched`` and ``all-comers (biomarker-positive test)``
    curves coincide (both test the same biomarker-positive patients per patient screened), so
    each design has its own colour (Okabe–Ito, colour-blind safe), line style, width and
    markers at different points: the enriched curve is wide and solid under the thin dashed
    one, and both stay visible where they overlap.
    """
    if x not in ("n_screened", "n_patients", "events"):
        raise ValueError(
            f"x={x!r} is not allowed; choose one of 'n_screened', 'n_patients', 'events'"
        )
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 4.2))
    for i, (design, g) in enumerate(curves.groupby("design", sort=False)):
        color, ls, lw, marker = _CURVE_STYLES.get(
            str(design), (OKABE_ITO[(i + 3) % len(OKABE_ITO)], ":", 1.8, "D")
        )
        ax.plot(
            g[x],
            g["power"],
            color=color,
            ls=ls,
            lw=lw,
            marker=marker,
            # markers every 12 % of the line's drawn length, shifted per design: the markers of
            # coinciding curves interleave instead of hiding each other
            markevery=(0.04 * i, 0.12),
            ms=6,
            mfc="white" if i else color,
            label=str(design),
            zorder=2 + i,
        )
    if target is not None:
        ax.axhline(target, color="grey", ls="--", lw=1)
    ax.set_ylim(0, 1)
    ax.set_xlabel(
        {"n_screened": "Patients screened", "n_patients": "Patients enrolled", "events": "Events"}[
            x
        ]
    )
    ax.set_ylabel("Power (two-sided log-rank)")
    ax.grid(alpha=0.25)
    ax.legend(frameon=False, fontsize=9)
    return ax


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
    if design not in _DESIGNS:
        raise ValueError(
            f"design={design!r} is not allowed; choose one of {', '.join(map(repr, _DESIGNS))}"
        )
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
    p_pos, p_neg = _stratum_probs(
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
        hr_f = _all_comers_hr(p["prevalence"], p["hr_positive"], p["hr_negative"], p_pos, p_neg)
        ev_f = n * (p["prevalence"] * p_pos + (1 - p["prevalence"]) * p_neg)
    else:
        hr_f, ev_f = p["hr_positive"], n * p["prevalence"] * p["assay_success"] * p_pos
    direction = -1.0 if hr_f < 1 else 1.0
    if design == "all-comers" and _mixture(p):
        e_all, v_all = _logrank_drift(p)
        direction = -1.0 if e_all < 0 else 1.0
        power_formula = float(_drift_power(n, e_all, v_all, alpha))
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
