"""The report's "External validation" section: shown from results["validation"] (the pipeline's
ValidationResult.to_dict()), numbers as in results.json, figures embedded with alt text."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import pytest
from click.testing import CliRunner

from tario_clinical.cli import cli
from tario_clinical.report import _format as fmt
from tario_clinical.report.validation_section import validation_html, validation_verdict


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.imgs: list[dict[str, str | None]] = []
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.imgs.append(a)
        for k in ("src", "href"):
            if a.get(k) and not a[k].startswith(("data:", "#")):
                self.urls.append(a[k])


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("report_validation") / "demo"
    r = CliRunner().invoke(
        cli,
        [
            "-q",
            "demo-validation",
            "--out",
            str(out),
            "--n-patients",
            "80",
            "--n-validation",
            "60",
            "--no-progress",
        ],
    )
    assert r.exit_code == 0, r.output
    results = json.loads((out / "results.json").read_text())
    return results, (out / "report.html").read_text()


def _section(text):
    m = re.search(r'<section id="validation">(.*?)</section>', text, re.S)
    assert m, "no External validation section"
    return m.group(1)


def test_section_shows_the_numbers_of_results_json(demo):
    results, text = demo
    val = results["validation"]
    sec = _section(text)
    assert "<h2>External validation</h2>" in sec
    assert val["artefact_sha256"] in sec and val["target"] in sec
    auc = next(r for r in val["discrimination"] if r["metric"] == "auroc")
    assert fmt.est_ci(auc["estimate"], auc["low"], auc["high"], ref=0.5) in sec
    assert "DeLong" in sec
    cal = {r["metric"]: r for r in val["calibration"]}
    for m in ("calibration_intercept", "calibration_slope"):
        r = cal[m]
        assert fmt.est_ci(r["estimate"], r["low"], r["high"]) in sec, m
    assert fmt.est(cal["brier"]["estimate"]) in sec
    for r in val["recalibration"]:
        assert r["method"] in sec and fmt.est(r["brier"]) in sec
    for r in val["flow"]:
        assert f"<td>{r['step']}</td><td>{r['n']}</td>" in sec
    cmp = next(r for r in val["comparison"] if r["metric"] == "auroc")
    assert fmt.est_ci(cmp["development"], cmp["development_low"], cmp["development_high"]) in sec
    surv = val["survival"]
    hr = surv["cox_unadjusted"][0]
    assert fmt.est_ci(hr["hr"], hr["hr_low"], hr["hr_high"], ref=1.0) in sec
    assert fmt.pval(surv["logrank"][0]["p_value"]) in sec
    assert f"interaction p = {fmt.pval(surv['interaction']['interaction_p_value'])}" in sec
    memb = val["shift"]["membership"][0]
    assert fmt.est_ci(memb["auroc"], memb["low"], memb["high"], ref=0.5) in sec
    assert val["shift"]["top_features"][0]["feature"] in sec
    assert validation_verdict(val)["text"].replace("'", "&#x27;") in sec


def test_figures_embedded_with_alt_text_and_no_external_url(demo):
    _, text = demo
    page = _Page()
    page.feed(_section(text))
    assert len(page.imgs) == 2
    for img in page.imgs:
        assert img["src"].startswith("data:image/png;base64,") and img.get("alt")
    assert _section(text).count("<figcaption>") == 2
    full = _Page()
    full.feed(text)
    assert full.urls == []
    assert all(i.get("alt") for i in full.imgs)


def test_verdict_is_guard_railed():
    def val(low, memb_low, flagged, npos=20, n=60):
        return {
            "discrimination": [
                {
                    "metric": "auroc",
                    "estimate": low + 0.1,
                    "low": low,
                    "high": low + 0.2,
                    "n": n,
                    "n_positive": npos,
                }
            ],
            "shift": {
                "membership": [{"auroc": memb_low + 0.1, "low": memb_low, "high": memb_low + 0.2}],
                "flags": {"representations_distinguishable": flagged},
                "params": {"membership_flag": 0.6},
            },
        }

    assert validation_verdict(val(0.6, 0.4, False))["verdict"] == "validated"
    assert validation_verdict(val(0.6, 0.8, True))["verdict"] == "validated_despite_shift"
    assert validation_verdict(val(0.4, 0.4, False))["verdict"] == "failed_validation"
    assert validation_verdict(val(0.4, 0.8, True))["verdict"] == "failed_or_site_effect"
    assert validation_verdict(val(0.6, 0.4, False, npos=5))["verdict"] == "not_estimable"
    no_shift = val(0.4, 0.4, False)
    no_shift["shift"] = None
    assert validation_verdict(no_shift)["verdict"] == "failed_shift_not_assessed"
    assert validation_html({"validation": None}) == ""
    assert "<script" not in validation_html({"validation": {"target": "<script>x</script>"}})
