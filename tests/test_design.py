"""Tests of tario_clinical.design: closed-form numbers against independent computations
(textbook Schoenfeld values, numerical integration) and the formula's power against a
seeded Monte-Carlo simulation of the log-rank test."""

from __future__ import annotations

import json
import math

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from scipy import integrate, stats

from tario_clinical import design as dz


def test_schoenfeld_events_textbook_values():
    # 1:1, two-sided 5 %, 80 % power: HR 0.7 -> 247 events, HR 0.75 -> 380 (Schoenfeld 1983 tables)
    assert math.ceil(dz.schoenfeld_events(0.7)) == 247
    assert math.ceil(dz.schoenfeld_events(0.75)) == 380
    z = stats.norm.ppf(0.975) + stats.norm.ppf(0.9)
    assert dz.schoenfeld_events(0.6, power=0.9, allocation=2 / 3) == pytest.approx(
        z**2 / ((2 / 9) * math.log(0.6) ** 2), rel=1e-12
    )
    # symmetric in HR <-> 1/HR and inverse of power_from_events
    assert dz.schoenfeld_events(0.5) == pytest.approx(dz.schoenfeld_events(2.0))
    assert dz.power_from_events(dz.schoenfeld_events(0.7, power=0.85), 0.7) == pytest.approx(
        0.85, rel=1e-10
    )
    with pytest.raises(ValueError, match="no treatment effect"):
        dz.schoenfeld_events(1.0)
    with pytest.raises(ValueError, match="alpha"):
        dz.schoenfeld_events(0.7, alpha=1.5)


def test_event_probability_by_numerical_integration():
    med, hr, a, f = 12.0, 0.6, 24.0, 12.0
    lam0 = math.log(2) / med

    def p(lam):  # entry uniform on [0, a]; event before the analysis at a + f
        return integrate.quad(lambda u: 1 - math.exp(-lam * (a + f - u)), 0, a)[0] / a

    expect = 0.5 * p(lam0) + 0.5 * p(lam0 * hr)
    assert dz.event_probability(med, hr, accrual=a, follow_up=f) == pytest.approx(expect, rel=1e-9)
    # no accrual period: all enter at 0
    assert dz.event_probability(med, 1.0, accrual=0, follow_up=12) == pytest.approx(0.5, rel=1e-12)


def test_compare_designs_structure_and_numbers():
    c = dz.compare_designs(
        prevalence=0.3,
        hr_positive=0.6,
        hr_negative=1.0,
        median_control=12,
        accrual=24,
        follow_up=12,
    )
    t = c.table.set_index("design")
    assert list(t.index) == ["enriched", "all-comers", "all-comers (biomarker-positive test)"]
    d_pos = math.ceil(dz.schoenfeld_events(0.6))
    p_pos = dz.event_probability(12, 0.6, accrual=24, follow_up=12)
    assert t.loc["enriched", "events"] == d_pos
    assert t.loc["enriched", "n_patients"] == math.ceil(d_pos / p_pos)
    assert t.loc["enriched", "n_screened"] == math.ceil(t.loc["enriched", "n_patients"] / 0.3)
    # the all-comers HR is diluted towards 1 by biomarker-negative patients
    assert 0.6 < t.loc["all-comers", "hr"] < 1.0
    assert t.loc["all-comers", "events"] > t.loc["enriched", "events"]
    assert (t["power"] >= 0.8 - 1e-9).all()
    json.dumps(c.to_dict(), allow_nan=False)
    assert "<table" in c._repr_html_()
    # homogeneous effect: all-comers HR equals the common HR and needs no screening
    h = dz.compare_designs(
        prevalence=0.5,
        hr_positive=0.7,
        hr_negative=0.7,
        median_control=10,
        accrual=18,
        follow_up=12,
    )
    th = h.table.set_index("design")
    assert th.loc["all-comers", "hr"] == pytest.approx(0.7)
    assert th.loc["all-comers", "n_screened"] == th.loc["all-comers", "n_patients"]
    assert dz.number_to_screen(100, 0.25, assay_success=0.8) == 500


def test_power_curves_monotone_and_plot():
    c = dz.compare_designs(
        prevalence=0.4,
        hr_positive=0.65,
        hr_negative=0.9,
        median_control=12,
        accrual=24,
        follow_up=12,
    )
    curves = dz.power_curves(c)
    for _, g in curves.groupby("design"):
        assert np.all(np.diff(g["power"].to_numpy()) >= -1e-12)
    ax = c.plot_power()
    assert len(ax.get_lines()) == 4  # three designs + target line
    with pytest.raises(ValueError, match="allowed"):
        dz.plot_power_curves(curves, x="years")


def test_formula_power_agrees_with_simulation_homogeneous():
    """Proportional hazards holds: Schoenfeld's power should be within Monte-Carlo error
    (Wilson 95 % interval, widened by 0.03 for the formula's own approximation)."""
    c = dz.compare_designs(
        prevalence=0.5,
        hr_positive=0.7,
        hr_negative=0.7,
        median_control=10,
        accrual=18,
        follow_up=12,
    )
    for design in ("enriched", "all-comers"):
        r = dz.simulate_power(c, design=design, n_simulations=300, seed=11).iloc[0]
        assert r["low"] - 0.03 <= r["power_formula"] <= r["high"] + 0.03, r.to_dict()
    # with half the patients the power drops accordingly in both formula and simulation
    half = dz.simulate_power(
        c,
        design="enriched",
        n_patients=int(c.table["n_patients"].iloc[0] / 2),
        n_simulations=300,
        seed=12,
    ).iloc[0]
    assert half["low"] - 0.03 <= half["power_formula"] <= half["high"] + 0.03
    assert half["power_simulated"] < 0.7


def test_simulation_enriched_heterogeneous_and_deterministic():
    c = dz.compare_designs(
        prevalence=0.3,
        hr_positive=0.6,
        hr_negative=1.0,
        median_control=12,
        accrual=24,
        follow_up=12,
    )
    a = dz.simulate_power(c, design="enriched", n_simulations=200, seed=3)
    b = dz.simulate_power(c, design="enriched", n_simulations=200, seed=3)
    assert a.equals(b)
    r = a.iloc[0]
    assert r["low"] - 0.03 <= r["power_formula"] <= r["high"] + 0.03
    # the expected number of events matches the event-probability model
    assert r["mean_events"] == pytest.approx(
        r["n_patients"] * c.table["event_probability"].iloc[0], rel=0.05
    )
    with pytest.raises(ValueError, match="allowed"):
        dz.simulate_power(c, design="basket")


@pytest.mark.parametrize(
    "scenario",
    [
        {"prevalence": 0.3, "hr_positive": 0.6, "hr_negative": 1.0, "median_control": 12,
         "accrual": 24, "follow_up": 12},
        {"prevalence": 0.2, "hr_positive": 0.4, "hr_negative": 0.95, "median_control": 8,
         "accrual": 24, "follow_up": 6},
        {"prevalence": 0.5, "hr_positive": 0.6, "hr_negative": 0.9, "median_control": 10,
         "accrual": 18, "follow_up": 12, "median_control_negative": 20},
    ],
)  # fmt: skip
def test_all_comers_power_under_non_proportional_hazards_agrees_with_simulation(scenario):
    """Different HRs (or control medians) per stratum make the all-comers hazards
    non-proportional. The expected log-rank statistic of the mixture gives the power the
    simulated log-rank test has (within Monte-Carlo error); the event-weighted-HR Schoenfeld
    shortcut used before said 0.80 where the simulation gave 0.86-0.87 (too many patients)."""
    c = dz.compare_designs(**scenario)
    row = c.table.set_index("design").loc["all-comers"]
    assert row["power"] == pytest.approx(0.8, abs=0.01)  # sized for the target power
    r = dz.simulate_power(c, design="all-comers", n_simulations=500, seed=21).iloc[0]
    assert r["power_formula"] == pytest.approx(row["power"], abs=1e-9)
    assert r["low"] - 0.01 <= r["power_formula"] <= r["high"] + 0.01, r.to_dict()
    # the power curve passes through the same point
    curves = dz.power_curves(c, n_patients=[row["n_patients"]])
    pc = curves.set_index("design").loc["all-comers", "power"]
    assert pc == pytest.approx(row["power"], abs=1e-9)
    # half the patients: formula and simulation drop together
    half = dz.simulate_power(
        c, design="all-comers", n_patients=int(row["n_patients"] // 2), n_simulations=500, seed=22
    ).iloc[0]
    assert half["low"] - 0.01 <= half["power_formula"] <= half["high"] + 0.01, half.to_dict()


def test_logrank_drift_reduces_to_schoenfeld_under_proportional_hazards():
    """Equal HRs and medians in both strata: the mixture drift gives Schoenfeld's power."""
    c = dz.compare_designs(
        prevalence=0.4, hr_positive=0.75, hr_negative=0.75, median_control=10, accrual=18,
        follow_up=12,
    )  # fmt: skip
    p = dict(c.parameters)
    e, v = dz._logrank_drift(p)
    row = c.table.set_index("design").loc["all-comers"]
    n = row["n_patients"]
    assert float(dz._drift_power(n, e, v, 0.05)) == pytest.approx(row["power"], abs=0.01)


def test_biomarker_positive_test_row_accounts_for_assay_failures():
    """All-comers enrolment, log-rank test in the biomarker-positive subgroup: only enrolled
    patients with an evaluable positive assay are tested, so the trial enrols
    ``events / (prevalence * assay_success * P(event | positive))`` patients, and the event
    probability is that of the tested (positive) patients. Before the fix the row ignored
    ``assay_success`` and showed the all-comers event probability."""
    kw = {"prevalence": 0.3, "hr_positive": 0.6, "hr_negative": 1.0, "median_control": 12,
          "accrual": 24, "follow_up": 12}  # fmt: skip
    c = dz.compare_designs(**kw, assay_success=0.8)
    c1 = dz.compare_designs(**kw)
    t, t1 = c.table.set_index("design"), c1.table.set_index("design")
    name = "all-comers (biomarker-positive test)"
    row = t.loc[name]
    d_pos = math.ceil(dz.schoenfeld_events(0.6))
    p_pos = dz.event_probability(12, 0.6, accrual=24, follow_up=12)
    assert row["events"] == d_pos
    assert row["n_patients"] == math.ceil(d_pos / (0.3 * 0.8 * p_pos))
    assert row["n_screened"] == row["n_patients"]  # all-comers: every enrolled patient is tested
    assert row["n_tested"] == pytest.approx(row["n_patients"] * 0.3 * 0.8)
    assert row["event_probability"] == pytest.approx(p_pos, rel=1e-12)
    assert row["power"] == pytest.approx(
        dz.power_from_events(row["n_tested"] * p_pos, 0.6), rel=1e-12
    )
    assert row["power"] >= 0.8
    # assay failures cost 1/0.8 times the patients, as they cost the enriched design screening
    assert row["n_patients"] / t1.loc[name, "n_patients"] == pytest.approx(1 / 0.8, rel=0.01)
    assert t.loc["enriched", "n_screened"] == dz.number_to_screen(
        t.loc["enriched", "n_patients"], 0.3, assay_success=0.8
    )
    # both designs need the same biomarker-positive evaluable patients: enrolled here = screened
    # there, up to rounding
    assert abs(row["n_patients"] - t.loc["enriched", "n_screened"]) <= 1 / (0.3 * 0.8) + 1
    # the overall all-comers test does not need the assay
    pd_cols = ["events", "n_patients", "n_screened", "power"]
    assert t.loc["all-comers", pd_cols].tolist() == t1.loc["all-comers", pd_cols].tolist()
    # every row: events ≈ patients tested x their event probability
    for design, r in t.iterrows():
        expected = r["n_tested"] * r["event_probability"]
        assert expected >= r["events"] - 1 and expected <= r["events"] + 1 / 0.24, design
    # power curve at the row's enrolment gives the row's power
    pc = dz.power_curves(c, n_patients=[row["n_patients"]]).set_index("design")
    assert pc.loc[name, "power"] == pytest.approx(row["power"], abs=1e-12)
    assert pc.loc[name, "events"] == pytest.approx(row["n_tested"] * p_pos)


def test_biomarker_positive_test_simulation_with_assay_failures():
    """The simulated subgroup test drops assay failures: its power and events agree with the
    row (Wilson 95 % interval widened by 0.03 for Schoenfeld's approximation)."""
    c = dz.compare_designs(
        prevalence=0.4, hr_positive=0.6, hr_negative=1.0, median_control=12, accrual=24,
        follow_up=12, assay_success=0.7,
    )  # fmt: skip
    name = "all-comers (biomarker-positive test)"
    row = c.table.set_index("design").loc[name]
    r = dz.simulate_power(c, design=name, n_simulations=300, seed=5).iloc[0]
    assert r["power_formula"] == pytest.approx(row["power"], rel=1e-12)
    assert r["low"] - 0.03 <= r["power_formula"] <= r["high"] + 0.03, r.to_dict()
    assert r["mean_events"] == pytest.approx(row["n_tested"] * row["event_probability"], rel=0.05)
    # the other designs' simulations do not depend on assay_success (same random streams)
    c1 = dz.compare_designs(
        prevalence=0.4, hr_positive=0.6, hr_negative=1.0, median_control=12, accrual=24,
        follow_up=12,
    )  # fmt: skip
    a = dz.simulate_power(c, design="all-comers", n_patients=300, n_simulations=20, seed=1)
    b = dz.simulate_power(c1, design="all-comers", n_patients=300, n_simulations=20, seed=1)
    assert a["power_simulated"].equals(b["power_simulated"])
    assert a["mean_events"].equals(b["mean_events"])
    with pytest.raises(ValueError, match="assay_success"):
        dz.compare_designs(
            prevalence=0.4, hr_positive=0.6, hr_negative=1.0, median_control=12, accrual=24,
            follow_up=12, assay_success=0.0,
        )  # fmt: skip


def test_power_plot_shows_both_coinciding_curves():
    """Against patients screened the enriched and the biomarker-positive-test curves coincide;
    each design has its own colour (Okabe–Ito), line style and marker so both stay visible."""
    from tario_clinical.palette import OKABE_ITO

    c = dz.compare_designs(
        prevalence=0.3, hr_positive=0.6, hr_negative=1.0, median_control=12, accrual=24,
        follow_up=12, assay_success=0.9,
    )  # fmt: skip
    ax = c.plot_power()
    lines = {ln.get_label(): ln for ln in ax.get_lines() if not ln.get_label().startswith("_")}
    enr, bm = lines["enriched"], lines["all-comers (biomarker-positive test)"]
    # the reason: same power per patient screened (within rounding of the screened numbers)
    bx, by = np.asarray(bm.get_xdata()), np.asarray(bm.get_ydata())
    inside = bx >= np.min(enr.get_xdata())
    np.testing.assert_allclose(
        np.interp(bx[inside], enr.get_xdata(), enr.get_ydata()), by[inside], atol=0.02
    )
    styles = [(ln.get_linestyle(), ln.get_marker(), ln.get_color()) for ln in lines.values()]
    assert len(lines) == 3
    for i in range(3):  # every pair differs in line style, marker and colour
        assert len({s[i] for s in styles}) == 3, styles
    assert all(matplotlib.colors.to_hex(s[2]) in {h.lower() for h in OKABE_ITO} for s in styles)
    assert all(ln.get_marker() not in ("None", "", None) for ln in lines.values())
    import matplotlib.pyplot as plt

    plt.close("all")
