"""HTML report, results.json and out-of-fold CSV."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

import tario_clinical as tc  # noqa: E402
from tario_clinical.report import model as report_model  # noqa: E402

XSS_SCRIPT = "<script>alert(1)</script>"
XSS_IMG = '"><img src=x onerror=alert(1)>'
CSP_META = (
    '<meta http-equiv="Content-Security-Policy" content="default-src &#39;none&#39;; '
    'img-src data:; style-src &#39;unsafe-inline&#39;">'
)


class _Tags(HTMLParser):
    """Every start tag with its attributes."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def _tags(html_text: str) -> list[tuple[str, dict[str, str | None]]]:
    p = _Tags()
    p.feed(html_text)
    return p.tags


def _assert_self_contained(html_text: str) -> None:
    """No script, no event handler, every URL-bearing attribute local (data: or #anchor)."""
    tags = _tags(html_text)
    assert tags, "no HTML parsed"
    for tag, attrs in tags:
        assert tag not in ("script", "iframe", "object", "embed", "link", "base", "form"), tag
        for name, value in attrs.items():
            assert not name.startswith("on"), f"event handler {name} on <{tag}>"
            if name in ("src", "href", "srcset", "action", "poster", "data", "background"):
                v = (value or "").strip()
                assert v.startswith(("data:image/png;base64,", "#")), f"<{tag} {name}={v[:60]}>"
                assert "//" not in v.split(",", 1)[0] if v.startswith("data:") else "//" not in v
    for pattern in (r"url\(", r"@import", r"\bsrc\s*=\s*[\"']?(?:https?:)?//"):
        assert not re.search(pattern, html_text, flags=re.I), pattern


@pytest.fixture(scope="module")
def trial():
    return tc.simulate_trial(120, seed=0, n_genes=50, compute_attainable=False)


@pytest.fixture(scope="module")
def analyses(trial):
    """Cohort, decoders (EGFR, KRAS), stratification by the KRAS score with the arm, design."""
    cohort = trial.cohort()
    dec = tc.decode(
        trial.representations,
        cohort,
        targets=["EGFR", "KRAS"],
        n_repeats=1,
        n_permutations=19,  # the default inference, with fewer permutations to stay fast
        seed=0,
    )
    strat = tc.survival.stratify(cohort, dec.oof_scores("KRAS"), arm="arm", seed=0)
    # the cohort's owner records the results' exclusions (the analyses leave it unchanged)
    cohort.record_exclusions(dec.exclusions)
    cohort.record_exclusions(strat.exclusions, patients_only=True)
    design = tc.design.compare_designs(
        prevalence=0.3,
        hr_positive=0.6,
        hr_negative=1.0,
        median_control=12,
        accrual=24,
        follow_up=12,
    )
    return {"cohort": cohort, "decode": dec, "stratification": strat, "design": design}


def _build(trial, analyses, representations=None, **kw):
    reps = trial.representations if representations is None else representations
    return tc.report.build_report(
        **analyses,
        representations=reps,
        embedding=tc.embedding_maps.representation_maps(reps, analyses["cohort"], seed=0),
        provenance={"kind": "results", "created_utc": "2031-02-03T04:05:06+00:00"},
        config={"seed": 0, "report": {"title": "Test study"}},
        seed=0,
        **kw,
    )


@pytest.fixture(scope="module")
def written(trial, analyses, tmp_path_factory):
    rep = _build(trial, analyses)
    out = tmp_path_factory.mktemp("report")
    paths = rep.write(out)
    return rep, paths


def test_files_written_and_schema_valid(written, analyses):
    import jsonschema

    rep, paths = written
    assert set(paths) == {"report", "results", "oof_scores"}
    assert all(p.is_file() for p in paths.values())
    assert not [p for p in paths["report"].parent.iterdir() if p.name.startswith(".")]
    results = json.loads(paths["results"].read_text(encoding="utf-8"))
    schema = json.loads(
        (Path(__file__).parents[1] / "data_schemas" / "results.schema.json").read_text()
    )
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(results)
    assert results == rep.to_dict()
    assert [s["id"] for s in results["sections"] if not s["present"]] == ["expression_qc"]
    # the OOF CSV is the decoder's table
    oof = pd.read_csv(paths["oof_scores"])
    ref = analyses["decode"].oof
    assert list(oof.columns) == list(ref.columns) and len(oof) == len(ref)
    np.testing.assert_allclose(oof["score"], ref["score"], rtol=1e-9)


def test_schema_rejects_wrong_results(written):
    rep, _ = written
    bad = rep.to_dict()
    bad["decode"]["summary"][0]["auroc"] = 1.7
    with pytest.raises(tc.OutputError, match=r"decode\.summary\.0\.auroc"):
        tc.report.validate_results(bad)
    bad = rep.to_dict()
    bad["provenance"]["report"]["created_utc"] = "2031-01-01T00:00:00"
    with pytest.raises(tc.OutputError, match=r"provenance\.report.*2031-01-01"):
        tc.report.validate_results(bad)


def test_html_self_contained_with_csp(written):
    _, paths = written
    text = paths["report"].read_text(encoding="utf-8")
    assert text.count(CSP_META) == 1
    assert text.index(CSP_META) < text.index("<title>")
    _assert_self_contained(text)
    assert "http://" not in text and "https://" not in text
    imgs = [a for t, a in _tags(text) if t == "img"]
    assert len(imgs) >= 6  # ROC, calibration, PCA, t-SNE, co-occurrence, KM, forest, power


def test_harness_catches_external_urls():
    """The self-containment check fails on the things it must catch."""
    for bad in (
        '<img src="https://example.org/x.png">',
        '<img src="//example.org/x.png">',
        '<a href="http://example.org">x</a>',
        "<script>alert(1)</script>",
        '<div onclick="x()">',
        '<div style="background: url(http://example.org/x.png)">',
    ):
        with pytest.raises(AssertionError):
            _assert_self_contained(f"<html><body>{bad}</body></html>")


class _Tables(HTMLParser):
    """Every table of a page: caption text and rows of cell texts (header row first)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: list[dict] = []
        self._stack: list[dict] = []
        self._cell: list[str] | None = None
        self._in_caption = False

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self._stack.append({"caption": "", "rows": []})
        elif tag == "tr" and self._stack:
            self._stack[-1]["rows"].append([])
        elif tag in ("td", "th") and self._stack:
            self._cell = []
        elif tag == "caption":
            self._in_caption = True

    def handle_endtag(self, tag):
        if tag == "table" and self._stack:
            self.tables.append(self._stack.pop())
        elif tag in ("td", "th") and self._cell is not None and self._stack:
            self._stack[-1]["rows"][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "caption":
            self._in_caption = False

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        elif self._in_caption and self._stack:
            self._stack[-1]["caption"] += data


def html_tables(html_text: str) -> list[dict]:
    """``[{"caption": str, "rows": [[cell, ...], ...]}]`` of every table in the page."""
    p = _Tables()
    p.feed(html_text)
    return p.tables


def table_by_caption(html_text: str, start: str) -> dict:
    found = [t for t in html_tables(html_text) if t["caption"].strip().startswith(start)]
    assert found, f"no table whose caption starts with {start!r}"
    return found[0]


def _close(text: str, exact: float) -> bool:
    """A rounded display number is the exact value rounded at its shown precision."""
    text = text.replace("<", "").strip()
    decimals = len(text.split(".")[1]) if "." in text else 0
    return abs(float(text) - exact) <= 0.5 * 10**-decimals + 1e-12


def test_every_table_number_is_in_results(written):
    """The rounded numbers of the decoder, survival, design and co-occurrence tables are the
    values of results.json rounded at the precision shown."""
    from tario_clinical.report import _format as fmt

    rep, paths = written
    text = paths["report"].read_text(encoding="utf-8")
    r = rep.results
    dec = table_by_caption(text, "Out-of-fold discrimination of each target")
    head, *rows = dec["rows"]
    assert head[:6] == ["Target", "Patients", "Positives", "AUROC (95 % CI)", "p", "q"]
    by_target = {row[0]: row for row in rows}
    for s in r["decode"]["summary"]:
        row = by_target[s["target"]]
        assert row[1] == str(s["n"]) and row[2] == str(s["n_positive"])
        assert row[3] == fmt.est_ci(s["auroc"], s["low"], s["high"], ref=0.5)
        auc, ci = row[3].split(" (")
        low, high = ci.rstrip(")").split("–")
        assert _close(auc, s["auroc"]) and _close(low, s["low"]) and _close(high, s["high"])
        assert row[4] == fmt.pval(s["p_value"]) and row[5] == fmt.pval(s["q_value"])
    surv = r["survival"]["details"]
    prog = table_by_caption(text, "Is the score prognostic?")
    cells = {row[0]: row for row in prog["rows"][1:]}
    lr = next(v for k, v in cells.items() if k.startswith("Log-rank"))
    assert lr[2] == fmt.pval(surv["logrank"][0]["p_value"])
    cox = next(v for k, v in cells.items() if k.startswith("Cox HR") and "unadjusted" in k)
    c0 = surv["cox_unadjusted"][0]
    assert cox[1] == fmt.est_ci(c0["hr"], c0["hr_low"], c0["hr_high"], ref=1.0)
    treat = table_by_caption(text, "Treatment effect on OS")
    shown = [row[4] for row in treat["rows"][1:]]
    for row in surv["interaction"]["forest"]:
        assert fmt.est_ci(row["hr"], row["hr_low"], row["hr_high"], ref=1.0) in shown
    design = table_by_caption(text, "Events, patients randomised and patients screened")
    for row, d in zip(design["rows"][1:], r["design"]["tables"]["designs"], strict=True):
        assert row[2:5] == [str(d["events"]), str(d["n_patients"]), str(d["n_screened"])]
    cooc = table_by_caption(text, "Genotype co-occurrence of each gene pair")
    for row, c in zip(cooc["rows"][1:], r["embedding"]["cooccurrence"], strict=True):
        assert row[0] == f"{c['gene_a']} – {c['gene_b']}"
        assert row[7] == fmt.pval(c["p_value"])
    t1 = table_by_caption(text, "Table 1.")
    assert t1["rows"][1][-1] == str(r["cohort"]["n_patients"])  # patients, All
    assert r["flow"]["analyses"], "decode/survival exclusions appear in the flow"


def test_results_json_byte_identical(trial, analyses, written, tmp_path):
    _, paths = written
    # same inputs, but representations re-encoded at another time: the file must not change
    reps = trial.representations.copy()
    reps.uns["tario_clinical"] = {
        **reps.uns["tario_clinical"],
        "created_utc": "2032-05-06T07:08:09",
    }
    rep2 = _build(trial, analyses, representations=reps)
    p2 = rep2.write(tmp_path)
    assert p2["results"].read_bytes() == paths["results"].read_bytes()
    text = paths["results"].read_text(encoding="utf-8")
    # wall-clock times (run, representations) only reach the HTML
    assert re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d", text) is None
    assert "2031-02-03T04:05:06+00:00" in paths["report"].read_text(encoding="utf-8")
    assert "2032-05-06T07:08:09" in p2["report"].read_text(encoding="utf-8")


def test_patient_ids_hidden_by_default(trial, analyses, written, tmp_path):
    _, paths = written
    ids = list(trial.representations.obs_names)
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, ids)) + r")\b")
    for name in ("report", "results"):
        found = pattern.findall(paths[name].read_text(encoding="utf-8"))
        assert not found, (name, found[:5])
    # asked for: the excluded patients are listed by id (in the HTML and in results.json)
    rep = tc.report.build_report(cohort=analyses["cohort"], show_patient_ids=True)
    excluded = set(analyses["cohort"].exclusions["patient_id"].dropna())
    assert excluded
    html_text = rep.to_html()
    assert all(p in html_text for p in excluded)
    flat = json.dumps(rep.results["flow"]["excluded_ids"])
    assert all(p in flat for p in excluded)


def test_sections_omitted_with_notes_and_checklist(trial):
    cohort = trial.cohort()
    rep = tc.report.build_report(cohort=cohort)
    present = {s["id"]: s for s in rep.results["sections"]}
    assert not present["decode"]["present"] and "decode=" in present["decode"]["note"]
    for key in ("decode", "embedding", "survival", "design", "expression_qc"):
        assert rep.results[key] is None
    text = rep.to_html()
    assert "Not in this report: no decoder result given (decode=)." in text
    tc.report.validate_results(rep.results)
    items = {i["topic"]: i["status"] for i in rep.results["checklist"]["tripod_ai"]}
    assert items["performance"] == "not in report"
    assert items["participants"] == "answered"
    assert items["limitations"] == "author to report"
    assert rep.oof is None
    assert '<div class="tc-report">' in rep._repr_html_()
    assert "<html" not in rep._repr_html_()


def test_checklist_answers_with_full_report(written):
    rep, _ = written
    remark = {i["topic"]: i for i in rep.results["checklist"]["remark"]}
    assert remark["interaction"]["status"] == "answered"  # an arm was given
    assert remark["multivariable"]["status"] == "partly"  # no adjusted Cox model was fitted
    assert remark["flow"]["section"] == "flow"


def test_table_one_against_pandas(trial):
    cohort = trial.cohort()
    t1 = tc.report.table_one(cohort)
    clin = cohort.clinical
    tab = pd.crosstab(clin["cancer_type"], clin["arm"])
    sub = t1[t1["variable"] == "cancer_type"]
    for (level, arm), n in tab.stack().items():
        row = sub[(sub["level"] == level) & (sub["group"] == arm)].iloc[0]
        assert row["n"] == n
        assert row["percent"] == pytest.approx(100 * n / (clin["arm"] == arm).sum())
    age = t1[(t1["variable"] == "age") & (t1["group"] == "All")].iloc[0]
    assert age["median"] == pytest.approx(np.median(clin["age"]))
    assert (age["q1"], age["q3"]) == pytest.approx(tuple(np.percentile(clin["age"], [25, 75])))
    # genotype: mutant + wild-type + missing = group size, for every gene and group
    for g in cohort.genotype_columns:
        s = t1[t1["variable"] == g].groupby("group")["n"].sum()
        assert s["All"] == len(clin)
        assert s["control"] == (clin["arm"] == "control").sum()
    miss = t1[(t1["variable"] == "EGFR") & (t1["level"] == "missing") & (t1["group"] == "All")]
    assert int(miss["n"].iloc[0]) == int(clin["EGFR"].isna().sum())
    recist = t1[(t1["variable"] == "best_response") & (t1["group"] == "All")]["level"].tolist()
    assert recist == ["CR", "PR", "SD", "PD", "NE"]


def test_consort_flow_counts(trial):
    cohort = trial.cohort()
    cohort.exclude(["P0001", "P0002"], reason="no slide", analysis="encode")
    cohort.exclude(["P0002", "P0003"], reason="slide failed QC", analysis="encode")
    flow = tc.report.consort_flow(cohort, trial.representations[:100])
    assert flow["representations"] == {
        "n": 100,
        "matched": 100,
        "clinical_without": 20,
        "without_clinical": 0,
    }
    (enc,) = flow["analyses"]
    assert enc["n_excluded"] == 3 and enc["n_analysed"] == 117
    assert enc["reasons"] == [{"reason": "no slide", "n": 2}, {"reason": "slide failed QC", "n": 2}]


def test_jsonable_canonical_numbers():
    out = tc.report.jsonable(
        {"a": np.float32(0.1), "b": float("nan"), "c": -0.0, "d": np.int64(3), 1: [np.inf]}
    )
    assert out == {"a": 0.100000001490, "b": None, "c": 0.0, "d": 3, "1": [None]}
    assert tc.report.canonical_json({"b": 1, "a": 0.1 + 0.2}) == '{\n  "a": 0.3,\n  "b": 1\n}\n'


def test_redaction_collapses_records():
    ids = frozenset({"P1", "P2"})
    data = {
        "exclusions": [
            {"patient_id": "P1", "reason": "no score"},
            {"patient_id": "P2", "reason": "no score"},
        ],
        "note": "P1",
        "kept": "P10",
    }
    assert report_model._redact(data, ids) == {
        "exclusions": [{"reason": "no score", "n": 2}],
        "note": "[redacted]",
        "kept": "P10",
    }


@pytest.fixture(scope="module")
def xss_cohort():
    """A cohort whose patient id, cancer type and an extra column carry HTML/JS."""
    n = 40
    rng = np.random.default_rng(0)
    ids = [f"X{i:03d}" for i in range(n)]
    ids[0] = XSS_SCRIPT
    ids[1] = XSS_IMG
    clinical = pd.DataFrame(
        {
            "patient_id": ids,
            "arm": np.where(np.arange(n) % 2, "experimental", "control"),
            "cancer_type": [XSS_SCRIPT if i % 3 == 0 else "LUAD" for i in range(n)],
            "histology": [XSS_IMG if i % 4 == 0 else "acinar" for i in range(n)],
            "EGFR": rng.choice(["mut", "wt"], n),
            "KRAS": rng.choice(["mut", "wt"], n),
            XSS_IMG: rng.choice(["a", "b"], n),
            "best_response": rng.choice(["PR", "SD", "PD"], n),
        }
    )
    cohort = tc.load_cohort(clinical)
    cohort.exclude([XSS_SCRIPT, XSS_IMG], reason=XSS_IMG, analysis=XSS_SCRIPT)
    reps = pd.DataFrame(rng.normal(size=(n, 8)), index=pd.Index(ids, name="patient_id"))
    return cohort, reps


@pytest.mark.parametrize("show_ids", [False, True])
def test_html_js_strings_render_as_text(xss_cohort, show_ids, tmp_path):
    cohort, reps = xss_cohort
    rep = tc.report.build_report(
        cohort=cohort,
        representations=reps,
        embedding=tc.embedding_maps.representation_maps(reps, cohort),
        config={"note": XSS_SCRIPT, XSS_IMG: 1},
        table1_columns=[XSS_IMG],
        show_patient_ids=show_ids,
        title=XSS_SCRIPT,
    )
    text = rep.write(tmp_path)["report"].read_text(encoding="utf-8")
    assert XSS_SCRIPT not in text and "<img src=x" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in text
    _assert_self_contained(text)
    # the escaped strings are shown as text where they belong
    t1 = rep.results["cohort"]["table1"]
    assert any(r["variable"] == XSS_IMG for r in t1)
    assert any(r["level"] == XSS_SCRIPT for r in t1)
    assert rep.results["flow"]["analyses"][0]["analysis"] == XSS_SCRIPT
    parsed_text = text.replace("&lt;", "<").replace("&gt;", ">")
    assert (XSS_SCRIPT in parsed_text) is True  # it is there, as text
    if show_ids:
        assert rep.results["flow"]["excluded_ids"][XSS_SCRIPT][XSS_IMG] == sorted(
            [XSS_SCRIPT, XSS_IMG]
        )
    else:
        assert "excluded_ids" not in rep.results["flow"]


def test_figure_failure_becomes_a_note(trial):
    class BrokenDecode:
        oof = pd.DataFrame({"patient_id": ["P0000"], "target": ["EGFR"], "score": [0.1]})

        def summary(self):
            return pd.DataFrame(
                {
                    "target": ["EGFR"],
                    "auroc": [0.7],
                    "low": [0.6],
                    "high": [0.8],
                    "p_value": [0.01],
                    "q_value": [0.01],
                }
            )

        def plot_roc(self, ax=None):
            raise RuntimeError("no curve")

    rep = tc.report.build_report(cohort=trial.cohort(), decode=BrokenDecode())
    notes = rep.results["decode"]["notes"]
    assert any("RuntimeError: no curve" in n for n in notes)
    assert any("plot_calibration" in n for n in notes)
    assert rep.results["decode"]["summary"][0]["auroc"] == 0.7
