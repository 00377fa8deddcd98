"""Every table for a person: human titles and columns, units, rounded numbers, provenance once,
figures with alt text and captions, a colour-blind-safe style and a print stylesheet."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

import tario_clinical as tc  # noqa: E402
from tario_clinical.report import _format as fmt  # noqa: E402

MARKER = "unique-config-marker-7f3a"


class _Page(HTMLParser):
    """Tables (caption, rows, whether inside a closed <details>), images with their figure."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: list[dict] = []
        self.images: list[dict] = []
        self._stack: list[dict] = []
        self._details = 0
        self._cell: list[str] | None = None
        self._caption = False
        self._figure: dict | None = None
        self._figcaption = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "details":
            self._details += 1
        elif tag == "table":
            self._stack.append({"caption": "", "rows": [], "collapsed": self._details > 0})
        elif tag == "tr" and self._stack:
            self._stack[-1]["rows"].append([])
        elif tag in ("td", "th") and self._stack:
            self._cell = []
        elif tag == "caption":
            self._caption = True
        elif tag == "figure":
            self._figure = {"alt": None, "caption": ""}
        elif tag == "img":
            img = {"alt": a.get("alt"), "in_figure": self._figure is not None}
            self.images.append(img)
            if self._figure is not None:
                self._figure["img"] = img
        elif tag == "figcaption":
            self._figcaption = True

    def handle_endtag(self, tag):
        if tag == "details":
            self._details -= 1
        elif tag == "table" and self._stack:
            self.tables.append(self._stack.pop())
        elif tag in ("td", "th") and self._cell is not None and self._stack:
            self._stack[-1]["rows"][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "caption":
            self._caption = False
        elif tag == "figcaption":
            self._figcaption = False
        elif tag == "figure" and self._figure is not None:
            if "img" in self._figure:
                self._figure["img"]["caption"] = self._figure["caption"].strip()
            self._figure = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        elif self._caption and self._stack:
            self._stack[-1]["caption"] += data
        elif self._figcaption and self._figure is not None:
            self._figure["caption"] += data


def _page(text: str) -> _Page:
    p = _Page()
    p.feed(text)
    return p


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A report built as the pipeline builds it: run provenance with the config and the input
    hashes inside, representations with a model card."""
    trial = tc.simulate_trial(120, seed=1, n_genes=50, compute_attainable=False)
    cohort = trial.cohort()
    clinical = tmp_path_factory.mktemp("inputs") / "clinical.csv"
    cohort.clinical.to_csv(clinical, index=False)
    reps = trial.representations.copy()
    reps.uns["tario_clinical"] = {
        **dict(reps.uns.get("tario_clinical", {})),
        "model_card": {
            "name": "test-encoder",
            "version": "2",
            "licence": "MIT",
            "weights": "w.safetensors",
            "input": {"tile_px": 224, "mpp": 0.5},
        },
        "weights_sha256": "ab" * 32,
    }
    dec = tc.decode(
        trial.representations, cohort, targets=["EGFR", "KRAS", "responder"], n_repeats=1, seed=0
    )
    strat = tc.survival.stratify(
        cohort, dec.oof_scores("responder"), arm="arm", covariates=["age"], seed=0
    )
    # the cohort's owner records the results' exclusions (the analyses leave it unchanged)
    cohort.record_exclusions(dec.exclusions)
    cohort.record_exclusions(strat.exclusions, patients_only=True)
    design = tc.design.compare_designs(
        prevalence=0.5,
        hr_positive=0.6,
        hr_negative=0.95,
        median_control=12,
        accrual=24,
        follow_up=12,
    )
    config = {
        "seed": 0,
        "survival": {"endpoint": "os", "score_target": "responder", "covariates": ["age"]},
        "design": {"hr_positive": 0.6, "prevalence": 0.5},
        "report": {"title": "Layout test", "note": MARKER},
    }
    prov = tc.provenance.provenance_record(
        kind="results", seed=0, parameters=config, inputs={"clinical": clinical}, include_time=False
    )
    rep = tc.report.build_report(
        cohort=cohort,
        decode=dec,
        stratification=strat,
        design=design,
        representations=reps,
        embedding=tc.embedding_maps.representation_maps(reps, cohort, seed=0),
        provenance=prov,
        config=config,
        seed=0,
    )
    return rep, rep.to_html()


def test_titles_and_columns_are_words_not_keys(built):
    _, text = built
    for key in (
        "cox_unadjusted",
        "interaction: forest",
        "analysis: parameters",
        "analysis: cutoffs",
    ):
        assert key not in text
    visible = [t for t in _page(text).tables if not t["collapsed"]]
    assert len(visible) >= 8
    for t in visible:
        caption, header = t["caption"], t["rows"][0]
        assert "_" not in caption, caption
        for h in header:
            assert not re.search(r"\w_\w", h), (caption, h)


def test_units_and_rounding(built):
    rep, text = built
    tables = {t["caption"].split(" (")[0]: t for t in _page(text).tables if not t["collapsed"]}
    km = next(t for c, t in tables.items() if c.startswith("Overall survival"))
    assert km["rows"][0][3] == "Median OS, months (95 % CI)"
    km_json = rep.results["survival"]["details"]["km"]
    assert km["rows"][1][3] == fmt.est_ci(
        km_json[0]["median"], km_json[0]["median_low"], km_json[0]["median_high"], 1
    )
    assert re.fullmatch(r"\d+\.\d \(\d+\.\d–\d+\.\d\)", km["rows"][1][3])
    design = next(t for c, t in tables.items() if c.startswith("Events, patients randomised"))
    assert design["rows"][0][-1] == "Duration (months)"
    # no reader has to parse 12 digits: numbers in the analysis tables have at most 4 decimals
    for caption, t in tables.items():
        if caption.startswith(("Software versions", "Input and model hashes", "Model card")):
            continue
        for row in t["rows"][1:]:
            for c in row:
                assert not re.search(r"\d\.\d{5,}", c), (caption, c)


def test_decoder_table_is_one_short_row_per_target(built):
    rep, text = built
    page = _page(text)
    main = next(t for t in page.tables if t["caption"].startswith("Out-of-fold discrimination"))
    assert not main["collapsed"] and len(main["rows"][0]) == 8
    assert len(main["rows"]) == 1 + len(rep.results["decode"]["summary"])
    extra = next(t for t in page.tables if t["caption"].startswith("Further out-of-fold metrics"))
    assert extra["collapsed"]
    assert "Median regularisation C over folds" in extra["rows"][0]


def test_concordance_oriented_and_in_results(built):
    rep, text = built
    d = rep.results["survival"]["details"]
    oc = d["concordance_oriented"]
    raw = {r["method"]: r for r in d["concordance"]}
    for r in oc["rows"]:
        c = raw[r["method"]]["estimate"]
        assert r["estimate_as_computed"] == c
        assert r["estimate"] == pytest.approx(1 - c if oc["reflected"] else c, abs=1e-11)
    assert oc["direction"] in text
    prog = next(t for t in _page(text).tables if t["caption"].startswith("Is the responder score"))
    harrell = next(row for row in prog["rows"] if row[0].startswith("Harrell's C"))
    h = next(r for r in oc["rows"] if r["method"] == "harrell")
    assert harrell[1] == fmt.est_ci(h["estimate"], h["low"], h["high"], ref=0.5)
    assert h["estimate"] >= 0.5  # read in the direction in which the score orders risk


def test_provenance_condensed(built):
    rep, text = built
    page = _page(text)
    deps = [t for t in page.tables if t["caption"].startswith("Software versions")]
    assert len(deps) == 1 and not deps[0]["collapsed"]
    cells = [c for row in deps[0]["rows"][1:] for c in row]
    assert cells.count("numpy") == 1
    assert text.count(">numpy<") == 1  # the versions are listed once on the whole page
    # the configuration once, collapsed; the run record's copy of it is not repeated
    assert text.count(MARKER) == 1
    cfg = [t for t in page.tables if t["caption"] == "Study configuration"]
    assert len(cfg) == 1 and cfg[0]["collapsed"]
    hashes = next(t for t in page.tables if t["caption"].startswith("Input and model hashes"))
    assert not hashes["collapsed"]
    firsts = [r[0] for r in hashes["rows"][1:]]
    assert "Model weights" in firsts and "Clinical" in firsts
    assert ["Model weights", "w.safetensors", "ab" * 32] in hashes["rows"]
    model = next(t for t in page.tables if t["caption"].startswith("Model card"))
    assert not model["collapsed"] and ["Name", "test-encoder"] in model["rows"]
    # the checklists are collapsed with their counts in the summary line
    assert re.search(r"<summary>REMARK [^<]*: \d+ [a-z ]+", text)


def test_every_figure_has_alt_text_and_a_caption(built):
    rep, text = built
    images = _page(text).images
    assert len(images) == len(rep.figures) >= 7
    for img in images:
        assert img["in_figure"] and img["alt"] and img["caption"], img
    alts = [img["alt"] for img in images]
    for row in rep.results["decode"]["summary"]:
        assert any(f"{row['target']} AUROC {fmt.est(row['auroc'])}" in a for a in alts)
    km = rep.results["survival"]["details"]["km"]
    assert any(f"median {fmt.time(km[0]['median'])} months" in a and "log-rank" in a for a in alts)
    assert "figcaption::before" in text  # numbered "Figure n."


def test_figures_use_the_okabe_ito_cycle():
    from tario_clinical.report._figures import OKABE_ITO, Figures, new_figure

    seen = {}

    def draw():
        fig = new_figure(3, 2)
        ax = fig.add_subplot(1, 1, 1)
        lines = [ax.plot([0, 1], [0, i])[0] for i in range(3)]
        seen["colours"] = [matplotlib.colors.to_hex(line.get_color()).upper() for line in lines]
        return fig

    notes: list[str] = []
    figs = Figures()
    figs.attempt("x", "A test figure.", draw, notes)
    assert notes == [] and figs.uris["x"].startswith("data:image/png;base64,")
    assert seen["colours"] == [c.upper() for c in OKABE_ITO[:3]]
    # the style does not leak out of the report
    first = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"][0]
    assert matplotlib.colors.to_hex(first).upper() != OKABE_ITO[0].upper()


def test_print_stylesheet(built):
    _, text = built
    css = text[text.index("<style>") : text.index("</style>")]
    assert "@page" in css and "@media print" in css
    printed = css[css.index("@media print") :]
    for rule in ("break-before: page", "overflow: visible", "break-inside: avoid", "width: 100%"):
        assert rule in printed, rule


def test_sensitivity_table_at_the_interval_bounds(built, tmp_path):
    """A design recomputed upstream at the bounds of the HR interval is shown, not computed."""
    rep0, _ = built
    kw = dict(prevalence=0.5, hr_negative=0.95, median_control=12, accrual=24, follow_up=12)
    comparison = tc.design.compare_designs(hr_positive=0.6, **kw)
    rows = []
    for scenario, hr in (("lower 95 % bound", 0.35), ("upper 95 % bound", 0.9)):
        t = tc.design.compare_designs(hr_positive=hr, **kw).table
        rows.append(t.assign(scenario=scenario, hr_positive=hr))
    sens = pd.concat(rows, ignore_index=True)
    trial = tc.simulate_trial(60, seed=2, n_genes=20, compute_attainable=False)
    rep = tc.report.build_report(
        cohort=trial.cohort(), design={"comparison": comparison, "sensitivity": sens}
    )
    tc.report.validate_results(rep.results)
    tables = rep.results["design"]["tables"]
    assert set(tables) == {"designs", "sensitivity"} and len(tables["sensitivity"]) == len(sens)
    assert rep.results["design"]["parameters"]["parameters"]["hr_positive"] == 0.6
    text = rep.to_html()
    t = next(t for t in _page(text).tables if t["caption"].startswith("Sensitivity: the designs"))
    enriched = [r for r in t["rows"][1:] if r[1].startswith("Enriched")]
    exp = sens[sens["design"] == "enriched"]
    assert [r[4] for r in enriched] == [str(int(n)) for n in exp["n_patients"]]
    assert "At the bounds of the hazard ratio" in text
    json.dumps(rep.results)  # JSON-safe
    assert "power" in rep.figures or "design_power" in rep.figures


def test_table_one_human_variable_names(built):
    _, text = built
    t1 = next(t for t in _page(text).tables if t["caption"].startswith("Table 1."))
    first_col = [row[0] for row in t1["rows"][1:] if row[0]]
    assert "Cancer type" in first_col and "Best response (RECIST)" in first_col
    assert "cancer_type" not in first_col


def test_rounding_helpers():
    assert fmt.est_ci(0.59, 0.37, 0.9961, ref=1.0) == "0.59 (0.37–0.996)"  # never "–1.00"
    assert fmt.est_ci(0.7, 0.5004, 0.8, ref=0.5) == "0.70 (0.5004–0.80)"
    assert fmt.pval(0.0496) == "0.0496" and fmt.pval(0.0264) == "0.026"
    assert fmt.pval(1e-25) == "<0.001" and fmt.p_text(1e-25) == "p < 0.001"
    assert fmt.pval(0.99999) == "1" and fmt.pval(None) == "–"
    assert fmt.est(0.0123) == "0.012" and fmt.est(13.371) == "13.37"
    assert fmt.time(24.0) == "24" and fmt.time(13.371) == "13.4"
    assert fmt.pct(0.509) == "51 %" and fmt.pct(np.float64(0.8)) == "80 %"


def test_expression_qc_section_from_its_dict():
    """The expression-QC section (given as the dict of ``expression_qc.report_section``): its
    tables with words for columns, the plotted curve points collapsed, figures captioned."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3, 2))
    fig.add_subplot(1, 1, 1).plot([1, 2, 3], [0.2, 0.3, 0.35])
    qc = {
        "title": "Predicted vs measured expression",
        "description": "Measured spatial transcriptomics binned onto the prediction grid.",
        "parameters": {"kind": "rook", "n_samples": 2},
        "tables": {
            "summary": [{"cancer_type": "LUAD", "n_samples": 2, "mean_spatial_r": 0.31234567}],
            "spatial_curve": [{"cancer_type": "LUAD", "k": 1, "mean_spatial_r": 0.2}],
        },
        "figures": {"spatial_correlation_curve": fig},
    }
    trial = tc.simulate_trial(60, seed=2, n_genes=20, compute_attainable=False)
    rep = tc.report.build_report(cohort=trial.cohort(), expression_qc=qc)
    tc.report.validate_results(rep.results)
    text = rep.to_html()
    page = _page(text)
    summary = next(t for t in page.tables if t["caption"] == "Summary")
    assert not summary["collapsed"]
    assert summary["rows"] == [
        ["Cancer type", "N samples", "Mean spatial r"],
        ["LUAD", "2", "0.312"],
    ]
    curve = next(t for t in page.tables if t["caption"] == "Spatial curve")
    assert curve["collapsed"]
    (img,) = page.images
    assert img["alt"] and img["caption"].startswith("Spatial correlation curve")
