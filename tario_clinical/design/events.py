"""Events and sample sizes: Schoenfeld's events for a hazard ratio, the power of a number of
events, the probability that a patient has an event by the analysis (exponential survival,
uniform accrual, further follow-up), and the number of patients to screen."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

__all__ = [
    "schoenfeld_events",
    "power_from_events",
    "event_probability",
    "number_to_screen",
    "check_prob",
    "check_hr",
]


def check_prob(name: str, value: float, *, closed_high: bool = False) -> None:
    ok = 0.0 < value < 1.0 or (closed_high and value == 1.0)
    if not ok:
        rng = "(0, 1]" if closed_high else "(0, 1)"
        raise ValueError(f"{name} must be in {rng}; got {value!r}")


def check_hr(name: str, hr: float) -> None:
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
    check_hr("hr", hr)
    check_prob("alpha", alpha)
    check_prob("power", power)
    check_prob("allocation", allocation)
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
    check_hr("hr", hr)
    check_prob("alpha", alpha)
    check_prob("allocation", allocation)
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
    check_hr("hr", hr)
    check_prob("allocation", allocation)
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
    check_prob("prevalence", prevalence, closed_high=True)
    check_prob("assay_success", assay_success, closed_high=True)
    return int(math.ceil(n_patients / (prevalence * assay_success) - 1e-9))
