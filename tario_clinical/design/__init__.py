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

Modules: :mod:`.events` (events, power, event probability, screening), :mod:`.comparison`
(:class:`DesignComparison`, :func:`compare_designs`, :func:`power_curves`), :mod:`.plots`
(:func:`plot_power_curves`) and :mod:`.simulation` (:func:`simulate_power`).

Examples
--------
>>> round(schoenfeld_events(0.7, alpha=0.05, power=0.8))
247
"""

from __future__ import annotations

from . import comparison
from .comparison import DesignComparison, DesignName, compare_designs, power_curves  # noqa: F401
from .events import event_probability, number_to_screen, power_from_events, schoenfeld_events
from .plots import plot_power_curves
from .simulation import simulate_power

# the pre-split private names of the two-stratum log-rank drift (tests check the formula)
_logrank_drift = comparison.logrank_drift
_drift_power = comparison.drift_power

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
