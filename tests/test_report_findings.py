"""The summary of findings follows the numbers: the guard-rails of ``report.findings``.

Most tests feed hand-made results dictionaries (the layout of ``results.json``) so that each
rule is hit exactly at its boundary; property tests (hypothesis) check the rules over random
numbers; the last tests read the summary of a real report and check that every number in a
sentence is a value of results.json rounded at the precision shown.
"""

from __future__ import annotations

import copy
import json
import math
import re

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import tario_clinical as tc  # noqa: E402
from tario_clinical.report import findings as F  # noqa: E402
from tario_clinical.report.sections import oriented_concordance  # noqa: E402


def _row(target="EGFR", auroc=0.8, low=0.7, high=0.9, p=0.001, q=0.002, n=100, n_pos=30, **kw):
    return {
        "target": target,
        "auroc": auroc,
        "low": low,
        "high": high,
        "p_value": p,
        "q_value": q,
        "n": n,
        "n_positive": n_pos,
        "note": "",
        **kw,
    }


def _decode(*rows, params=None):
    return {"decode": {"summary": list(rows), "parameters": params or {"cv": "5-fold x 1"}}}


def _verdicts(results):
    return {f.subject: f.verdict for f in F.summarize(results).decode}


# =============================================================================== decoders
def test_interval_including_chance_is_not_decodable():
    res = _decode(
        _row("A", low=0.51),
        _row("B", low=0.50),  # bound on chance: includes 0.5
        _row("C", low=0.49, q=1e-6),  # significant q but the interval includes chance
        _row("D", low=0.3, high=0.45, auroc=0.4),
    )
    v = _verdicts(res)
    assert v == {
        "A": "decodable",
        "B": "includes_chance",
        "C": "includes_chance",
        "D": "below_chance",
    }
    texts = {c.text for c in F.summarize(res).cautions}
    assert any(t.startswith("B: the AUROC interval (0.50–0.90) includes 0.5") for t in texts)
    assert any(t.startswith("D: AUROC below chance") for t in texts)


def test_chance_decided_by_the_exact_test_is_an_open_bound():
    """``excludes_chance`` (the permutation test decided chance level) overrides the bounds:
    a lower bound of exactly 0.5 then excludes 0.5 and is written as an open bound."""
    res = _decode(
        _row("A", low=0.50, excludes_chance=True),
        _row("B", low=0.50, excludes_chance=False),
        _row("C", auroc=0.4, low=0.3, high=0.50, excludes_chance=True),
    )
    assert _verdicts(res) == {"A": "decodable", "B": "includes_chance", "C": "below_chance"}
    text = {f.subject: f.text for f in F.summarize(res).decode}
    assert "AUROC 0.80 (95 % CI >0.50–0.90)" in text["A"]
    assert "AUROC 0.80 (95 % CI 0.50–0.90)" in text["B"]


def test_q_value_few_patients_and_missing_values():
    res = _decode(
        _row("sig", q=0.049),
        _row("nonsig", q=0.05),  # q at the threshold is not below it
        _row("noq", q=None, p=0.01),  # no q-value: the p-value is used
        _row("few_pos", n=114, n_pos=6),
        _row("few_neg", n=40, n_pos=31),
        _row("none", auroc=None, low=None, high=None, p=None, q=None, note="one class only"),
    )
    v = _verdicts(res)
    assert v == {
        "sig": "decodable",
        "nonsig": "not_significant",
        "noq": "decodable",
        "few_pos": "few_patients",
        "few_neg": "few_patients",
        "none": "not_estimable",
    }
    s = F.summarize(res)
    texts = [c.text for c in s.cautions]
    assert "few_pos: only 6 positives; its AUROC interval is unreliable" in " ".join(texts)
    assert "few_neg: only 9 negatives" in " ".join(texts)
    by = {f.subject: f for f in s.decode}
    assert by["none"].text == "none: not estimable (one class only)"
    assert "p = 0.01" in by["noq"].text and "q = 0.049" in by["sig"].text


def test_method_is_named_when_the_decoder_records_it():
    res = _decode(
        _row(
            ci_method="grouped jackknife of the whole nested CV (G=10)",
            p_method="permutation (B=199)",
        ),
        params={"cv": "5-fold x 5", "level": 0.95, "estimand": "AUROC of the CV procedure"},
    )
    m = F.summarize(res).decode_method
    assert "95 % intervals: grouped jackknife of the whole nested CV (G=10)" in m
    assert "p-values: permutation (B=199)" in m
    assert "estimand: AUROC of the CV procedure" in m
    assert "5-fold x 5" in m
    m = F.summarize(_decode(_row())).decode_method
    assert "intervals: method not recorded by the decoder" in m


@settings(max_examples=300, deadline=None)
@given(
    auroc=st.floats(0, 1),
    half=st.floats(0, 0.5),
    shift=st.floats(-0.2, 0.2),
    q=st.one_of(st.none(), st.floats(0, 1)),
    p=st.one_of(st.none(), st.floats(0, 1)),
    n=st.integers(2, 400),
    frac=st.floats(0, 1),
)
def test_decodable_only_when_every_rule_holds(auroc, half, shift, q, p, n, frac):
    low = min(1.0, max(0.0, auroc - half + shift))
    high = min(1.0, max(low, auroc + half + shift))
    n_pos = int(round(frac * n))
    res = _decode(_row("T", auroc=auroc, low=low, high=high, q=q, p=p, n=n, n_pos=n_pos))
    (f,) = F.summarize(res).decode
    used = q if q is not None else p
    rule = low > 0.5 and used is not None and used < 0.05 and min(n_pos, n - n_pos) >= 10
    assert (f.verdict == "decodable") == rule
    if low <= 0.5:
        assert f.verdict != "decodable" and "decodable" not in f.label


# =============================================================================== survival
def _survival(
    *,
    hr=0.6,
    hr_low=0.4,
    hr_high=0.9,
    p=0.01,
    p_inter=0.4,
    groups=("low", "high"),
    forest_high=(0.57, 0.29, 1.15, 0.12),
    ph=(),
    exploratory=False,
    concordance=(0.437, 0.365, 0.510),
):
    top = groups[-1]
    c, lo, hi = concordance
    conc = [{"method": "harrell", "estimate": c, "low": lo, "high": hi, "se": 0.03, "n_pairs": 10}]
    return {
        "survival": {
            "details": {
                "time": "os_time",
                "event": "os_event",
                "groups": list(groups),
                "exploratory": exploratory,
                "cutoff_method": "optimal" if exploratory else "median",
                "parameters": {"covariates": []},
                "logrank": [{"test": "log-rank", "p_value": p, "statistic": 4.0, "df": 1}],
                "cox_unadjusted": [
                    {
                        "term": f"risk_group[{top}]",
                        "hr": hr,
                        "hr_low": hr_low,
                        "hr_high": hr_high,
                        "p_value": p,
                    }
                ],
                "cox_adjusted": [],
                "ph_test": [
                    {"model": m, "term": "GLOBAL", "p_value": v, "statistic": 1.0, "df": 1}
                    for m, v in ph
                ],
                "concordance": conc,
                "concordance_oriented": oriented_concordance(conc),
                "notes": [],
                "interaction": {
                    "arm": "arm",
                    "experimental": "experimental",
                    "control": "control",
                    "biomarker": "risk_group",
                    "interaction_p_value": p_inter,
                    "forest": [
                        {
                            "variable": "risk_group",
                            "level": top,
                            "hr": forest_high[0],
                            "hr_low": forest_high[1],
                            "hr_high": forest_high[2],
                            "p_value": forest_high[3],
                            "n": 50,
                            "events": 30,
                        }
                    ],
                },
            }
        }
    }


@pytest.mark.parametrize(
    "hr, low, high, p, verdict",
    [
        (0.6, 0.4, 0.9, 0.01, "prognostic"),
        (1.8, 1.2, 2.6, 0.004, "prognostic"),
        (0.6, 0.4, 1.02, 0.06, "not_prognostic"),
        (0.6, 0.4, 0.9, 0.05, "not_prognostic"),  # p at alpha is not below it
        (0.6, 0.4, 1.0, 0.049, "not_prognostic"),  # the interval touches 1
    ],
)
def test_prognostic_needs_p_and_an_interval_excluding_one(hr, low, high, p, verdict):
    s = F.summarize(_survival(hr=hr, hr_low=low, hr_high=high, p=p))
    assert s.prognostic.verdict == verdict
    if verdict == "prognostic":
        assert s.prognostic.text.startswith("Prognostic for overall survival")
        assert ("lower hazard" if hr < 1 else "higher hazard") in s.prognostic.text
    else:
        assert s.prognostic.text.startswith("Not shown to be prognostic")


@settings(max_examples=200, deadline=None)
@given(p=st.floats(0, 1), hr=st.floats(0.05, 5))
def test_non_significant_interaction_is_never_called_predictive(p, hr):
    s = F.summarize(_survival(p_inter=p, forest_high=(hr, hr / 2, hr * 2, 0.3)))
    if p >= 0.05:
        assert s.predictive.verdict == "not_predictive"
        assert s.predictive.text.startswith("Not shown to be predictive")
        assert not re.search(r"(?<!be )predictive:", s.predictive.text, flags=re.I)
    else:
        assert s.predictive.verdict == "predictive"
        assert any("confirm the predictive effect" in c.text for c in s.cautions)


def test_survival_cautions():
    s = F.summarize(
        _survival(
            ph=[("unadjusted", 0.01), ("adjusted", 0.2)],
            exploratory=True,
            forest_high=(0.57, 0.29, 1.15, 0.12),
        )
    )
    text = " | ".join(c.text for c in s.cautions)
    assert (
        "Proportional hazards rejected for the unadjusted Cox model (global cox.zph p = 0.01)"
        in text
    )
    assert "adjusted Cox model" not in text.replace("unadjusted Cox model", "")
    assert "EXPLORATORY cut-point" in text
    assert (
        "Treatment HRs within score groups that are not significant (high 0.57 (0.29–1.15), p = 0.12)"
        in text
    )
    assert "The concordance interval of the continuous score (0.49–0.64) includes 0.5" in text
    # a significant subgroup HR is not flagged
    s = F.summarize(_survival(forest_high=(0.4, 0.2, 0.8, 0.01)))
    assert not any("not significant" in c.text for c in s.cautions)


def test_concordance_is_read_in_the_risk_direction():
    conc = [
        {
            "method": "harrell",
            "estimate": 0.437245,
            "low": 0.364819,
            "high": 0.509671,
            "se": 0.037,
            "n_pairs": 4661,
        },
        {
            "method": "uno",
            "estimate": 0.424907,
            "low": 0.356386,
            "high": 0.493429,
            "se": 0.035,
            "n_pairs": 4661,
        },
    ]
    oc = oriented_concordance(conc)
    assert oc["direction"] == "higher score = lower risk" and oc["reflected"]
    for got, ref in zip(oc["rows"], conc, strict=True):
        assert got["estimate"] == pytest.approx(1 - ref["estimate"], abs=1e-12)
        assert got["low"] == pytest.approx(1 - ref["high"], abs=1e-12)
        assert got["high"] == pytest.approx(1 - ref["low"], abs=1e-12)
        assert got["estimate_as_computed"] == ref["estimate"]
        assert got["se"] == ref["se"] and got["n_pairs"] == ref["n_pairs"]
    s = F.summarize(_survival(concordance=(0.437245, 0.364819, 0.509671)))
    assert (
        "higher score = lower risk; Harrell's C in that direction 0.56 (0.49–0.64)" in s.concordance
    )
    # a score ordered like risk is left as it is
    oc = oriented_concordance([{**conc[0], "estimate": 0.6, "low": 0.55, "high": 0.65}])
    assert oc["direction"] == "higher score = higher risk" and not oc["reflected"]
    assert oc["rows"][0]["estimate"] == 0.6


def test_oriented_concordance_is_the_concordance_of_the_negated_score():
    """1 - C(score) is exactly C(-score): checked against the survival module itself."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(3)
    n = 80
    df = pd.DataFrame(
        {
            "time": rng.exponential(10, n).round(1),  # rounded: tied times
            "event": rng.integers(0, 2, n),
            "score": rng.normal(size=n).round(1),  # rounded: tied scores
        }
    )
    c = tc.survival.concordance(df, "time", "event", "score").reset_index()
    neg = tc.survival.concordance(df.assign(score=-df["score"]), "time", "event", "score")
    oc = oriented_concordance(c)
    assert oc["reflected"] == bool(c.set_index("method").loc["harrell", "estimate"] < 0.5)
    flipped = c if not oc["reflected"] else neg.reset_index()
    for got, ref in zip(oc["rows"], flipped.to_dict("records"), strict=True):
        for k in ("estimate", "low", "high"):
            assert got[k] == pytest.approx(ref[k], abs=1e-9), (got["method"], k)


# =============================================================================== design
def _design(results=None, *, hr_pos=0.574163214496, sens=None, config_estimated=True):
    res = copy.deepcopy(results) if results is not None else _survival()
    forest_hr = hr_pos if config_estimated else 0.574163214496  # the cohort's estimate
    res["survival"]["details"]["interaction"]["forest"][0].update(
        {"hr": forest_hr, "hr_low": 0.287, "hr_high": 1.149}
    )
    res["design"] = {
        "tables": {
            "designs": [
                {
                    "design": "enriched",
                    "hr": hr_pos,
                    "events": 102,
                    "n_patients": 172,
                    "n_screened": 338,
                    "power": 0.802,
                },
                {
                    "design": "all-comers",
                    "hr": 0.74,
                    "events": 325,
                    "n_patients": 509,
                    "n_screened": 509,
                    "power": 0.80,
                },
            ],
            **({"sensitivity": sens} if sens else {}),
        },
        "parameters": {
            "parameters": {
                "prevalence": 0.509,
                "hr_positive": hr_pos,
                "hr_negative": 0.93,
                "median_control": 13.371,
                "accrual": 24.0,
                "follow_up": 12.0,
                "alpha": 0.05,
                "power": 0.8,
            }
        },
        "notes": [],
    }
    res["cohort"] = {"time_unit": "months"}
    res["provenance"] = {
        "config": {
            "design": {"hr_positive": None if config_estimated else hr_pos, "prevalence": None}
        }
    }
    return res


def test_design_from_a_point_estimate_is_flagged_with_its_interval():
    s = F.summarize(_design())
    assert s.design.text.startswith(
        "An enriched trial of high score patients (51 % of those screened) would need 102 "
        "events: 172 patients randomised from 338 screened, against 509 patients (325 events)"
    )
    assert "24 months accrual and 12 months further follow-up" in s.design.text
    text = " | ".join(c.text for c in s.cautions if c.topic == "design")
    assert (
        "point estimates of this cohort: the treatment HR 0.57 in high score patients (95 % CI 0.29–1.15)"
        in text
    )
    assert "its interval includes 1 (no benefit)" in text
    assert "No sample sizes at the bounds of that interval were computed" in text
    assert s.sensitivity == ()


def test_design_sensitivity_rows_are_shown():
    sens = [
        {
            "scenario": "lower 95 % bound",
            "hr_positive": 0.287,
            "design": "enriched",
            "events": 18,
            "n_patients": 30,
            "n_screened": 59,
        },
        {
            "scenario": "upper 95 % bound",
            "hr_positive": 1.149,
            "design": "enriched",
            "events": None,
            "n_patients": None,
            "n_screened": None,
            "note": "no benefit at this HR: no trial can be powered",
        },
        {
            "scenario": "lower 95 % bound",
            "hr_positive": 0.287,
            "design": "all-comers",
            "events": 50,
            "n_patients": 80,
            "n_screened": 80,
        },
    ]
    s = F.summarize(_design(sens=sens))
    assert s.sensitivity == (
        "lower 95 % bound: HR 0.29 — 18 events, 30 patients, 59 screened",
        "upper 95 % bound: HR 1.15 — no benefit at this HR: no trial can be powered",
    )
    assert not any("No sample sizes at the bounds" in c.text for c in s.cautions)


def test_design_inputs_set_in_the_configuration_are_not_flagged():
    s = F.summarize(_design(hr_pos=0.6, config_estimated=False))
    assert not any(c.topic == "design" for c in s.cautions)


# =============================================================================== real report
@pytest.fixture(scope="module")
def parts():
    trial = tc.simulate_trial(120, seed=0, n_genes=50, compute_attainable=False)
    cohort = trial.cohort()
    dec = tc.decode(
        trial.representations, cohort, targets=["EGFR", "KRAS", "PTEN"], n_repeats=1, seed=0
    )
    strat = tc.survival.stratify(cohort, dec.oof_scores("KRAS"), arm="arm", seed=0)
    from tario_clinical.pipeline import design_inputs_from_stratification

    # the cohort's owner records the results' exclusions (the analyses leave it unchanged)
    cohort.record_exclusions(dec.exclusions)
    cohort.record_exclusions(strat.exclusions, patients_only=True)

    guess = design_inputs_from_stratification(strat, cohort)
    design = tc.design.compare_designs(
        prevalence=guess["prevalence"],
        hr_positive=0.6,
        hr_negative=1.0,
        median_control=guess["median_control"],
        accrual=24,
        follow_up=12,
    )
    return {"cohort": cohort, "decode": dec, "stratification": strat, "design": design}


@pytest.fixture(scope="module")
def report(parts):
    return tc.report.build_report(**parts, seed=0)


def test_summary_without_arm_and_with_tertiles(parts):
    """No arm: no predictive statement; three score groups: the top against the bottom."""
    cohort = parts["cohort"]
    strat = tc.survival.stratify(cohort, parts["decode"].oof_scores("KRAS"), cutoff="tertiles")
    rep = tc.report.build_report(cohort=cohort, decode=parts["decode"], stratification=strat)
    s = F.summarize(rep.results)
    assert s.predictive is None and s.design is None
    assert "high" in s.prognostic.text and "low" in s.prognostic.text
    row = next(
        r
        for r in rep.results["survival"]["details"]["cox_unadjusted"]
        if r["term"] == "risk_group[high]"
    )
    assert (
        tc.report._format.est_ci(row["hr"], row["hr_low"], row["hr_high"], ref=1.0)
        in s.prognostic.text
    )
    text = rep.to_html()
    assert "Is it predictive" not in text and "Is the score prognostic?" in text
    assert "middle score" in text  # the three groups are in the tables


def _numbers(obj):
    if isinstance(obj, bool) or obj is None:
        return
    if isinstance(obj, int | float):
        if math.isfinite(obj):
            yield float(obj)
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _numbers(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _numbers(v)


def test_every_number_in_the_summary_is_a_results_value(report):
    """No sentence of the summary carries a number that is not in results.json (rounded)."""
    results = json.loads(report.to_json())
    values = list(_numbers(results)) + [F.ALPHA, F.CHANCE, F.MIN_CLASS, 1.0]
    s = F.summarize(results)
    sentences = [f.text for f in s.decode] + [s.decode_method, s.concordance]
    sentences += [f.text for f in (s.prognostic, s.predictive, s.design) if f]
    sentences += [s.design_assumptions] + [c.text for c in s.cautions]
    checked = 0
    for sentence in sentences:
        # numbers not glued to letters (skips "5-fold", "K-fold", "x 1" is a count of repeats)
        for m in re.finditer(r"(?<![\w.])(\d+(?:\.\d+)?)(\s?%)?(?![\w])", sentence):
            text, percent = m.group(1), m.group(2)
            x = float(text) / (100 if percent else 1)
            decimals = len(text.split(".")[1]) if "." in text else 0
            tol = 0.5 * 10**-decimals / (100 if percent else 1) + 1e-12
            assert any(abs(x - v) <= tol for v in values), (text, sentence)
            checked += 1
    assert checked > 20


def test_summary_is_rendered_first_with_its_chips(report):
    text = report.to_html()
    body = text[text.index("<body>") :]
    assert body.index('id="summary"') < body.index('id="plan"') < body.index('id="cohort"')
    s = F.summarize(report.results)
    for f in s.decode:
        assert f'<span class="chip v-{f.verdict}">{f.label}</span>' in text
        if f.verdict == "decodable":
            row = next(r for r in report.results["decode"]["summary"] if r["target"] == f.subject)
            assert row["low"] > 0.5
    assert s.predictive is not None and s.prognostic is not None
    assert "How this summary reads the numbers" in text
