"""The decoder analyses, the treatment-effect curve, the design sensitivity rows and the stored
summary of findings: configured in the study YAML, computed by the pipeline, shown by the report
(issue 16 items 3 and 4; report follow-ups).

One small study (simulated trial, 120 patients, seed 5: the high-score group's treatment HR
interval spans 1, so both kinds of sensitivity row appear) runs through ``prepare`` /
``run_study`` with every analysis configured; DeLong decoder inference keeps it fast (the
analyses' own inference is the grouped jackknife, as configured by ``decode.n_jackknife``).
"""

from __future__ import annotations

import json
import re
from html import unescape
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import yaml  # noqa: E402

import tario_clinical as tc  # noqa: E402
from tario_clinical.config import load_config  # noqa: E402
from tario_clinical.errors import ConfigError  # noqa: E402
from tario_clinical.pipeline import prepare, run_study  # noqa: E402
from tario_clinical.report.findings import findings_record, summarize  # noqa: E402

KINDS = [
    "learning_curve",
    "generalist_vs_specialist",
    "leave_one_group_out",
    "representation_comparison",
]


def _study(root: Path, **over) -> dict:
    trial = tc.simulate_trial(120, seed=5, n_genes=50, compute_attainable=False)
    trial.write(root / "data")
    other = trial.representations.copy()
    noise = np.random.default_rng(0).normal(size=other.X.shape).astype("float32")
    other.X = other.X + 2 * noise
    other.write_h5ad(root / "data" / "noisy.h5ad")
    cfg = {
        "seed": 0,
        "cohort": {"clinical": "data/clinical.csv"},
        "representations": "data/representations.h5ad",
        "decode": {
            "targets": ["EGFR", "responder"],
            "n_repeats": 1,
            "ci_method": "delong",
            "p_method": "delong",
            "n_jackknife": 5,
        },
        "survival": {"endpoint": "os", "score_target": "responder", "arm": "arm"},
        "design": {},
        "analyses": {
            "learning_curve": {"targets": ["EGFR"], "fractions": [0.25, 0.5, 1.0]},
            "generalist_vs_specialist": {"cancer_type": "LUAD", "targets": ["EGFR"]},
            "leave_one_group_out": {"group_column": "cancer_type", "targets": ["EGFR"]},
            "representation_comparison": {
                "other": "data/noisy.h5ad",
                "names": ["expression", "noisy expression"],
                "targets": ["EGFR"],
            },
            "effect_curve": {"knots": [0.1, 0.5, 0.9], "n_permutations": 99},
        },
        "report": {"title": "Analyses test"},
    }
    for key, value in over.items():
        cfg[key] = value
    (root / "study.yaml").write_text(yaml.safe_dump(cfg))
    return cfg


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("analyses")
    _study(root)
    prepared = prepare(load_config(root / "study.yaml"))
    written = run_study(prepared, root / "out", progress=False)
    results = json.loads(written["results"].read_text())
    html = written["report"].read_text()
    return {"root": root, "prepared": prepared, "res": results, "html": html, "paths": written}


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


# =============================================================================== analyses
def test_results_hold_every_configured_analysis_under_the_schema(study):
    r = study["res"]
    tc.report.validate_results(r)
    assert [a["kind"] for a in r["analyses"]["analyses"]] == KINDS
    for a in r["analyses"]["analyses"]:
        assert a["table"] and all(row["ci_method"] for row in a["table"])
        assert "Cs" not in a["parameters"]
    ids = [s["id"] for s in r["sections"]]
    assert ids[:4] == ["cohort", "flow", "decode", "analyses"] and len(ids) == 10
    figures = {f["id"] for f in r["figures"]}
    assert {f"analyses_{k}" for k in KINDS} <= figures


def test_pipeline_passes_the_configured_settings(study):
    """The learning curve of results.json is the analysis run directly with the YAML's
    fractions, the decode block's folds and jackknife groups and the top-level seed."""
    from tario_clinical.decode import analyses as da

    prepared = study["prepared"]
    cohort = tc.load_cohort(study["root"] / "data" / "clinical.csv")
    direct = da.learning_curve(
        prepared.representations,
        cohort,
        targets=["EGFR"],
        fractions=(0.25, 0.5, 1.0),
        n_splits=5,
        n_jackknife=5,
        seed=0,
    )
    got = study["res"]["analyses"]["analyses"][0]["table"]
    np.testing.assert_allclose([r["auroc"] for r in got], direct.table["auroc"], rtol=1e-10)
    np.testing.assert_allclose([r["low"] for r in got], direct.table["low"], rtol=1e-10)
    assert {r["ci_method"] for r in got} == {"grouped jackknife of the whole analysis (G=5)"}


def test_html_tables_figures_and_interval_methods(study):
    text = _text(study["html"])
    for title in (
        "How the decoders scale and transfer",
        "Learning curve: AUROC against the number of training patients",
        "Generalist vs specialist decoder: LUAD patients",
        "Transfer: each cancer type left out of training in turn",
        "Representation comparison: expression vs noisy expression",
    ):
        assert title in text, title
    assert "95 % intervals: grouped jackknife of the whole analysis (G=5)." in text
    assert "DeLong (held-out group independent of the training patients)" in text
    assert "Difference generalist − specialist (95 % CI)" in text
    assert "jackknife t-test of the paired difference" in text
    alts = dict(re.findall(r'alt="([^"]*)">\s*<figcaption>([^<]*)', study["html"]))
    assert (
        len([a for a in alts if a.startswith(("Learning", "Generalist", "Transfer", "Repr"))]) == 4
    )
    lc = next(a for a in alts if a.startswith("Learning curve"))
    row = study["res"]["analyses"]["analyses"][0]["table"][-1]
    assert f"EGFR 100 % AUROC {row['auroc']:.2f}" in unescape(lc)


def test_analysis_findings_follow_the_numbers(study):
    r = study["res"]
    found = {(f["verdict"], f["subject"]) for f in r["findings"]["analyses"]}
    assert ("learning_curve", "EGFR") in found
    for item in r["analyses"]["analyses"]:
        if item["kind"] in ("generalist_vs_specialist", "representation_comparison"):
            d = next(x for x in item["table"] if x.get(_label(item["kind"])) == "difference")
            differs = d["p_value"] < 0.05 and (d["low"] > 0 or d["high"] < 0)
            kinds = {
                f["verdict"] for f in r["findings"]["analyses"] if f["text"].startswith("EGFR")
            }
            assert ("differs" in kinds) or not differs


def _label(kind: str) -> str:
    return "model" if kind == "generalist_vs_specialist" else "representation"


def test_paired_verdict_needs_p_and_an_interval_excluding_zero():
    base = {"target": "EGFR", "model": "difference", "ci_method": "x", "n": 50}
    rows = [
        {"target": "EGFR", "model": "generalist", "auroc": 0.8, "ci_method": "x"},
        {"target": "EGFR", "model": "specialist", "auroc": 0.7, "ci_method": "x"},
    ]
    results = {
        "analyses": {
            "analyses": [
                {
                    "kind": "generalist_vs_specialist",
                    "title": "t",
                    "parameters": {"cancer_type": "LUAD"},
                    "table": [*rows, {**base, "estimate": 0.1, "low": -0.01, "high": 0.2, "p_value": 0.03}],
                }
            ],
            "notes": [],
        }
    }  # fmt: skip
    (f,) = summarize(results).analyses
    assert f.verdict == "not_shown_to_differ"  # p < 0.05 but the interval includes 0
    results["analyses"]["analyses"][0]["table"][-1].update(low=0.01)
    (f,) = summarize(results).analyses
    assert f.verdict == "differs" and f.label == "generalist better"
    assert "difference generalist − specialist 0.10 (0.01–0.20), p = 0.03" in f.text


def test_exclusions_of_an_analysis_are_logged_under_its_name(study):
    """Patients an analysis leaves out (no EGFR result) are logged once, under its name."""
    from tario_clinical.pipeline import _decode_analyses

    cfg = study["prepared"].config
    cfg = cfg.model_copy(
        update={"analyses": cfg.analyses.model_copy(update={"generalist_vs_specialist": None,
                "leave_one_group_out": None, "representation_comparison": None})}
    )  # fmt: skip
    cohort = tc.load_cohort(study["root"] / "data" / "clinical.csv")
    cohort.clinical.loc[:2, "EGFR"] = None
    before = len(cohort.exclusions)
    out = _decode_analyses(cfg, cohort, study["prepared"].representations, None)
    assert set(out) == {"learning_curve"}
    new = cohort.exclusions.iloc[before:]
    assert set(new["analysis"]) == {"learning_curve"}
    missing = cohort.label("EGFR")
    assert sorted(new["patient_id"]) == sorted(missing.index[missing.isna()])
    assert {"P0000", "P0001", "P0002"} <= set(new["patient_id"])


# =============================================================================== effect curve
def test_effect_curve_in_the_survival_section(study):
    r = study["res"]
    curve = r["survival"]["effect_curve"]
    assert curve["n"] == r["survival"]["details"]["n"]
    assert curve["spline"]["test"][0]["df"] == 2
    assert curve["stepp"]["test"][0]["n_permutations"] == 99
    assert [k["quantile"] for k in curve["spline"]["knots"]] == [0.1, 0.5, 0.9]
    text = _text(study["html"])
    assert "Treatment effect along the responder score" in text
    assert curve["exploratory_cutoff"] in text
    assert "STEPP windows" in text
    assert "survival_effect_curve" in {f["id"] for f in r["figures"]}
    f = r["findings"]["effect_curve"]
    p = curve["spline"]["test"][0]["p_value"]
    assert f["verdict"] == ("varies" if p < 0.05 else "not_shown_to_vary")
    assert any(c["text"] == curve["exploratory_cutoff"] for c in r["findings"]["cautions"])


def test_effect_curve_is_the_survival_module_on_the_stratified_patients(study):
    """The same numbers as treatment_effect_curve on stratify's analysed patients."""
    _, strat = _strat(study)
    direct = tc.survival.treatment_effect_curve(
        strat.assignments, "score", time="time", event="event", n_permutations=99, seed=0
    )
    got = study["res"]["survival"]["effect_curve"]
    assert got["stepp"]["test"][0]["p_value"] == pytest.approx(direct.stepp.p_value)
    np.testing.assert_allclose(
        [w["hr"] for w in got["stepp"]["windows"]], direct.stepp.table["hr"], rtol=1e-9
    )


def test_effect_curve_off_and_errors(tmp_path):
    _study(tmp_path, analyses={"effect_curve": None})
    cfg = load_config(tmp_path / "study.yaml")
    assert cfg.analyses.effect_curve is None and cfg.analyses.learning_curve is None
    trial = tc.simulate_trial(60, seed=2, n_genes=20, compute_attainable=False)
    df = trial.clinical.assign(score=np.random.default_rng(0).normal(size=60))
    curve = tc.survival.treatment_effect_curve(df, "score", n_permutations=19)
    with pytest.raises(ValueError, match="give stratification="):
        tc.report.build_report(cohort=trial.cohort(), effect_curve=curve)


# =============================================================================== design
def test_design_sensitivity_at_the_bounds_of_the_high_group_hr(study):
    r = study["res"]
    forest = r["survival"]["details"]["interaction"]["forest"]
    top = next(x for x in forest if x["variable"] == "risk_group" and x["level"] == "high")
    sens = r["design"]["tables"]["sensitivity"]
    by = {(x["scenario"], x["design"]): x for x in sens}
    assert {s for s, _ in by} == {"lower 95 % bound", "upper 95 % bound"}
    low = [x for x in sens if x["scenario"] == "lower 95 % bound"]
    high = [x for x in sens if x["scenario"] == "upper 95 % bound"]
    assert all(x["hr_positive"] == pytest.approx(top["hr_low"]) for x in low)
    assert all(x["hr_positive"] == pytest.approx(top["hr_high"]) for x in high)
    assert top["hr_low"] < 1 <= top["hr_high"]  # the seed was chosen for both kinds of row
    p = r["design"]["parameters"]["parameters"]
    ref = tc.design.compare_designs(
        prevalence=p["prevalence"],
        hr_positive=top["hr_low"],
        hr_negative=p["hr_negative"],
        median_control=p["median_control"],
        accrual=p["accrual"],
        follow_up=p["follow_up"],
    ).table.set_index("design")
    for x in low:
        assert x["n_patients"] == ref.loc[x["design"], "n_patients"] and x["note"] == ""
    for x in high:
        assert x["n_patients"] is None and x["note"].startswith("no benefit at this HR")
    text = _text(study["html"])
    assert "Sensitivity: the designs recomputed at the bounds" in text
    assert "upper 95 % bound: HR" in text and "no trial can be powered" in text


def _strat(study):
    import pandas as pd

    oof = pd.read_csv(study["paths"]["oof_scores"])
    scores = oof[oof["target"] == "responder"].groupby("patient_id")["score"].mean()
    cohort = tc.load_cohort(study["root"] / "data" / "clinical.csv")
    return cohort, tc.survival.stratify(cohort, scores, arm="arm", seed=0)


def test_no_sensitivity_when_the_hr_is_set_or_turned_off(study):
    from tario_clinical.pipeline import _design_table

    cfg = study["prepared"].config
    cohort, strat = _strat(study)
    table = _design_table(cfg, cohort, strat)  # HR estimated from the cohort: with sensitivity
    cols = list(table["sensitivity"].columns)
    assert cols[:3] == ["scenario", "hr_positive", "design"] and cols[-1] == "note"
    for update in ({"hr_positive": 0.6}, {"sensitivity": False}):
        c = cfg.model_copy(update={"design": cfg.design.model_copy(update=update)})
        assert isinstance(_design_table(c, cohort, strat), tc.design.DesignComparison)


# =============================================================================== findings
def test_findings_are_stored_and_are_the_page_summary(study):
    r = study["res"]
    rest = {k: v for k, v in r.items() if k != "findings"}
    assert r["findings"] == json.loads(json.dumps(findings_record(summarize(rest))))
    text = _text(study["html"])
    s = r["findings"]
    for f in [*s["decode"], *s["analyses"], s["prognostic"], s["predictive"], s["effect_curve"]]:
        if f:
            assert f["text"] in text, f["text"]
    for c in s["cautions"]:
        assert c["text"] in text


def test_results_without_the_new_keys_still_validate(study):
    r = json.loads(json.dumps(study["res"]))
    for key in ("findings", "analyses"):
        r.pop(key)
    r["sections"] = [s for s in r["sections"] if s["id"] != "analyses"]
    r["survival"].pop("effect_curve")
    tc.report.validate_results(r)


def test_report_without_analyses_keeps_nine_sections():
    trial = tc.simulate_trial(60, seed=2, n_genes=20, compute_attainable=False)
    rep = tc.report.build_report(cohort=trial.cohort())
    assert len(rep.results["sections"]) == 9 and "analyses" not in rep.results
    assert rep.results["findings"]["decode"] == [] and rep.results["findings"]["design"] is None


# =============================================================================== config
def test_config_errors_name_the_key(tmp_path):
    _study(tmp_path)
    base = yaml.safe_load((tmp_path / "study.yaml").read_text())
    bad = {**base, "analyses": {"learning_curv": {"targets": ["EGFR"]}}}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    with pytest.raises(
        ConfigError, match=r"analyses\.learning_curv.*did you mean 'learning_curve'"
    ):
        load_config(tmp_path / "bad.yaml")
    bad = {**base, "analyses": {"learning_curve": {"targets": ["EGFR"], "fractions": [0, 1]}}}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    with pytest.raises(ConfigError, match=r"fractions.*\(0, 1\]"):
        load_config(tmp_path / "bad.yaml")
    for analyses, match in (
        ({"leave_one_group_out": {"targets": ["NOPE"]}}, r"leave_one_group_out\.targets.*'NOPE'"),
        (
            {"generalist_vs_specialist": {"cancer_type": "GBM", "targets": ["EGFR"]}},
            r"cancer_type.*0 patients.*values: COAD, LUAD",
        ),
        (
            {"leave_one_group_out": {"targets": ["EGFR"], "group_column": "centre"}},
            r"group_column.*'centre'",
        ),
    ):
        (tmp_path / "bad.yaml").write_text(yaml.safe_dump({**base, "analyses": analyses}))
        with pytest.raises(ConfigError, match=match):
            prepare(load_config(tmp_path / "bad.yaml"))


def test_other_representation_path_resolves_against_the_yaml(study):
    cfg = study["prepared"].config
    other = cfg.analyses.representation_comparison.other
    assert other == (study["root"] / "data" / "noisy.h5ad").resolve()
    assert study["prepared"].input_files["representations_other"] == other


# =============================================================================== browser
def test_report_with_analyses_in_headless_chromium(study, tmp_path):
    """The new section and the effect curve: nothing wider than the viewport at 1400 and
    1000 px, no console error, no network request, every figure decoded; printed, every
    table fits the page width."""
    from test_report_browser import CHROMIUM, open_page

    if CHROMIUM is None:
        pytest.skip("no chromium binary (apt-get install -y chromium or set TARIO_CHROMIUM)")
    for width in (1400, 1000):
        seen = open_page(study["paths"]["report"], tmp_path / f"profile{width}", width=width)
        assert seen["errors"] == [] and seen["requests"] == []
        n_img, n_ok = seen["images"]
        assert n_img >= 10 and n_ok == n_img
        layout = seen["layout"]
        assert layout["scrollWidth"] <= width and layout["wide"] == [], layout["wide"]
        assert layout["boxWide"] == 0
        if width == 1400:
            assert layout["overflowing"] == []
        ids = [s["id"] for s in layout["sections"]]
        assert "analyses" in ids
    printed = open_page(
        study["paths"]["report"], tmp_path / "print", width=1400, print_layout=True
    )["print_layout"]
    assert printed["wide"] == [] and printed["overflowing"] == []  # tables fit the A4 width
