"""Endpoint decoders from the study YAML and the CLI (issue 14 item 5): categorical, continuous,
time-to-event and treatment-benefit decoders next to the binary ones, results.json's
``endpoints`` key, the report's "Endpoint decoders" section, and bad input (a categorical
target with one level, a continuous target with text, negative times, a one-arm benefit
analysis) refused with exit 2, a message naming the column, and nothing written."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from threadpoolctl import threadpool_limits

import tario_clinical as tc
from tario_clinical.cli import cli
from tario_clinical.config import config_from_dict
from tario_clinical.decode.endpoint_result import SUMMARY_COLUMNS
from tario_clinical.errors import ConfigError, SchemaError
from tario_clinical.pipeline import prepare
from tario_clinical.report import validate_results
from tario_clinical.schemas import read_representations

CV = """  n_splits: 3
  n_repeats: 1
  n_inner_splits: 2
  p_method: jackknife
  n_jackknife: 5
  n_jobs: 1
"""

ENDPOINT_YAML = (
    """seed: 0
cohort: {clinical: data/clinical.csv}
representations: data/representations.h5ad
decode:
  targets: [EGFR, histology, age]
  target_types: {histology: categorical, age: continuous}
  survival: {endpoint: os}
  benefit: {arm: arm, endpoint: os}
"""
    + CV
    + """survival: {score_target: os, arm: arm}
design: null
analyses: {effect_curve: null}
"""
)


@pytest.fixture(scope="module")
def trial_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("endpoints")
    with threadpool_limits(1):
        trial = tc.simulate_trial(120, seed=3, n_genes=60)
    trial.write(root / "data")
    return root


@pytest.fixture(scope="module")
def study(trial_dir):
    (trial_dir / "study.yaml").write_text(ENDPOINT_YAML)
    out = trial_dir / "out"
    with threadpool_limits(1):
        r = CliRunner().invoke(
            cli,
            ["run", "--config", str(trial_dir / "study.yaml"), "--out", str(out), "--no-progress"],
        )
    assert r.exit_code == 0, r.output
    return {"out": out, "output": r.output, "root": trial_dir}


def _bad_clinical(trial_dir: Path, name: str, **changes) -> Path:
    """A copy of the trial's folder whose clinical table has ``changes`` (column -> values)."""
    root = trial_dir / name
    (root / "data").mkdir(parents=True)
    clin = pd.read_csv(trial_dir / "data" / "clinical.csv", dtype=str, keep_default_na=False)
    for col, values in changes.items():
        clin[col] = values(clin) if callable(values) else values
    clin.to_csv(root / "data" / "clinical.csv", index=False)
    (root / "data" / "representations.h5ad").write_bytes(
        (trial_dir / "data" / "representations.h5ad").read_bytes()
    )
    return root


def _run_bad(root: Path, decode_block: str) -> tuple[int, str, Path]:
    yaml_text = (
        "cohort: {clinical: data/clinical.csv}\nrepresentations: data/representations.h5ad\n"
        "decode:\n" + decode_block + CV + "survival: null\ndesign: null\n"
    )
    (root / "study.yaml").write_text(yaml_text)
    out = root / "out"
    r = CliRunner().invoke(cli, ["run", "--config", str(root / "study.yaml"), "--out", str(out)])
    return r.exit_code, r.output, out


# ----------------------------------------------------------------------------- the full run
def test_results_json_has_every_kind_in_one_table(study):
    results = json.loads((study["out"] / "results.json").read_text())
    validate_results(results)
    ep = results["endpoints"]
    kinds = {t["target"]: t["kind"] for t in ep["target_types"]}
    assert kinds == {
        "EGFR": "binary",
        "histology": "categorical",
        "age": "continuous",
        "os": "survival",
        "benefit:os_time": "benefit",
    }
    reasons = {t["target"]: t["reason"] for t in ep["target_types"]}
    assert reasons["histology"] == "given in decode.target_types"
    assert "binary unless decode.target_types" in reasons["EGFR"]
    assert ep["columns"] == SUMMARY_COLUMNS
    assert all(list(row) == sorted(SUMMARY_COLUMNS) for row in ep["summary"])
    by_kind = {}
    for row in ep["summary"]:
        by_kind.setdefault(row["kind"], set()).add(row["metric"])
    assert {"auroc"} <= by_kind["binary"]
    assert {"macro_auroc", "balanced_accuracy"} <= by_kind["categorical"]
    assert {"r2", "spearman_rho"} <= by_kind["continuous"]
    assert {"harrell_c", "uno_c"} <= by_kind["survival"]
    assert {"c_for_benefit", "log_hr_difference_high_vs_low"} <= by_kind["benefit"]
    (hist,) = [r for r in ep["results"] if r["target"] == "histology"]
    assert "confusion" in hist["tables"] and hist["n"] == 120
    # the binary rows are the binary decoder's own numbers, not a second fit
    (auroc,) = [r for r in ep["summary"] if r["target"] == "EGFR" and r["metric"] == "auroc"]
    (binary,) = [r for r in results["decode"]["summary"] if r["target"] == "EGFR"]
    assert auroc["estimate"] == pytest.approx(binary["auroc"], abs=1e-12)


def test_patients_are_stratified_by_the_survival_decoders_risk_score(study):
    """survival.score_target may name a survival decoder: its cross-validated risk score feeds
    the stratification as a decoded target's score does."""
    results = json.loads((study["out"] / "results.json").read_text())
    assert results["survival"] is not None
    assert "stratifying os by the os score" in study["output"]
    html = (study["out"] / "report.html").read_text()
    assert "os score" in html


def test_the_choice_of_kind_is_logged(study):
    assert "target histology is categorical (given in decode.target_types)" in study["output"]
    assert "target age is continuous" in study["output"]


def test_endpoint_numbers_are_the_api_numbers(study):
    """The pipeline's survival decoder is decode_survival with the YAML's settings: same seed,
    same numbers."""
    root = study["root"]
    cohort = tc.load_cohort(root / "data" / "clinical.csv")
    reps = read_representations(root / "data" / "representations.h5ad")
    with threadpool_limits(1):
        res = tc.decode_survival(
            reps,
            cohort,
            time="os_time",
            event="os_event",
            n_splits=3,
            n_repeats=1,
            n_inner_splits=2,
            p_method="jackknife",
            n_jackknife=5,
            seed=0,
        )
    table = pd.read_csv(study["out"] / "endpoint_summary.csv")
    assert list(table.columns) == SUMMARY_COLUMNS
    got = table[(table["target"] == "os")].set_index("metric")
    want = res.summary().set_index("metric")
    np.testing.assert_allclose(got.loc[want.index, "estimate"], want["estimate"], rtol=1e-9)
    np.testing.assert_allclose(got.loc[want.index, "low"], want["low"], rtol=1e-9)
    oof = pd.read_csv(study["out"] / "endpoint_oof.csv")
    assert set(oof["target"]) == {"histology", "age", "os", "benefit:os_time"}


def test_report_has_the_endpoint_section_without_patient_ids(study):
    html = (study["out"] / "report.html").read_text()
    assert '<section id="endpoints">' in html and "Endpoint decoders" in html
    assert 'href="#endpoints"' in html  # listed in the table of contents
    section = html[html.index('<section id="endpoints">') :]
    section = section[: section.index("</section>")]
    for words in ("How each target", "Harrell", "C-for-benefit", "macro AUROC", "R²"):
        assert words in section, words
    assert section.count("<img") >= 3  # confusion, calibration at the horizon, benefit curve
    assert re.search(r'<img src="data:image/png;base64,[^"]+" alt="[^"]{20,}"', section)
    results_text = (study["out"] / "results.json").read_text()
    ids = pd.read_csv(study["root"] / "data" / "clinical.csv")["patient_id"]
    endpoints_text = json.dumps(json.loads(results_text)["endpoints"])
    assert not any(f'"{p}"' in endpoints_text for p in ids)
    assert "P0001" not in section


def test_same_seed_same_endpoint_numbers(study, tmp_path):
    out = tmp_path / "again"
    with threadpool_limits(1):
        r = CliRunner().invoke(
            cli, ["run", "--config", str(study["root"] / "study.yaml"), "--out", str(out),
                  "--no-progress"],
        )  # fmt: skip
    assert r.exit_code == 0, r.output
    a = json.loads((study["out"] / "results.json").read_text())["endpoints"]
    b = json.loads((out / "results.json").read_text())["endpoints"]
    assert a == b


# ----------------------------------------------------------------------------- the decode command
def test_decode_command_runs_every_kind(trial_dir, tmp_path):
    out = tmp_path / "dec"
    args = [
        "decode",
        "--clinical", str(trial_dir / "data" / "clinical.csv"),
        "--representations", str(trial_dir / "data" / "representations.h5ad"),
        "--targets", "EGFR,histology,age",
        "--target-types", "histology=categorical,age=continuous",
        "--survival", "os",
        "--benefit", "os",
        "--n-splits", "3", "--n-repeats", "1", "--p-method", "jackknife", "--jobs", "1",
        "--no-progress", "--out", str(out),
    ]  # fmt: skip
    with threadpool_limits(1):
        r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    table = pd.read_csv(out / "endpoint_summary.csv")
    assert list(table.columns) == SUMMARY_COLUMNS
    assert set(table["kind"]) == {"binary", "categorical", "continuous", "survival", "benefit"}
    record = json.loads((out / "endpoints.json").read_text())
    assert {t["target"]: t["kind"] for t in record["target_types"]}["benefit:os_time"] == "benefit"
    for name in ("decode_summary.csv", "oof_scores.csv", "decode.json", "exclusions.csv"):
        assert (out / name).is_file(), name
    assert "harrell_c" in r.output


def test_decode_command_infers_kinds_when_asked(trial_dir):
    cfg = config_from_dict(
        {
            "cohort": {"clinical": str(trial_dir / "data" / "clinical.csv")},
            "representations": str(trial_dir / "data" / "representations.h5ad"),
            "decode": {"targets": ["EGFR", "histology", "age"], "infer_target_types": True},
            "survival": None,
        }
    )
    kinds = prepare(cfg).target_kinds
    assert {t: k for t, (k, _) in kinds.items()} == {
        "EGFR": "binary",
        "histology": "categorical",
        "age": "continuous",
    }
    assert kinds["histology"][1].startswith("inferred from the cohort: text with")


def test_bad_target_types_option_is_exit_2(trial_dir, tmp_path):
    r = CliRunner().invoke(
        cli,
        ["decode", "--clinical", str(trial_dir / "data" / "clinical.csv"),
         "--representations", str(trial_dir / "data" / "representations.h5ad"),
         "--targets", "age", "--target-types", "age=numeric", "--out", str(tmp_path / "o")],
    )  # fmt: skip
    assert r.exit_code == 2 and "--target-types" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "o").exists()


# ----------------------------------------------------------------------------- bad input
def test_categorical_target_with_one_level(trial_dir):
    root = _bad_clinical(trial_dir, "one_level", grade="G2")
    code, output, out = _run_bad(
        root, "  targets: [EGFR, grade]\n  target_types: {grade: categorical}\n"
    )
    assert code == 2, output
    assert "column 'grade'" in output and "'G2'" in output and "clinical.csv" in output
    assert "at least two levels" in output and "Traceback" not in output
    assert not out.exists()


def test_continuous_target_with_text(trial_dir):
    def tmb(clin):
        values = [f"{v:.1f}" for v in np.linspace(1, 30, len(clin))]
        values[6] = "high"
        return values

    root = _bad_clinical(trial_dir, "text_tmb", tmb=tmb)
    code, output, out = _run_bad(root, "  targets: [tmb]\n  target_types: {tmb: continuous}\n")
    assert code == 2, output
    assert "column 'tmb'" in output and "'high'" in output and "row 7" in output
    assert "Traceback" not in output and not out.exists()


def test_negative_survival_times(trial_dir):
    def ttp(clin):
        values = [f"{v:.2f}" for v in np.linspace(1, 30, len(clin))]
        values[2] = "-3.5"
        return values

    root = _bad_clinical(
        trial_dir, "negative_time", ttp_time=ttp, ttp_event=lambda c: ["1", "0"] * (len(c) // 2)
    )
    code, output, out = _run_bad(
        root, "  targets: [EGFR]\n  survival: {time: ttp_time, event: ttp_event}\n"
    )
    assert code == 2, output
    assert "column 'ttp_time'" in output and "-3.5" in output and "row 3" in output
    assert "Traceback" not in output and not out.exists()


def test_benefit_on_a_one_arm_cohort(trial_dir):
    root = _bad_clinical(trial_dir, "one_arm", arm="experimental")
    code, output, out = _run_bad(root, "  targets: [EGFR]\n  benefit: {arm: arm, endpoint: os}\n")
    assert code == 2, output
    assert "column 'arm'" in output and "'experimental'" in output and "two-arm" in output
    assert "Traceback" not in output and not out.exists()


def test_bad_input_through_the_decode_command(trial_dir, tmp_path):
    """The decode command checks the same things first (one-arm benefit), writes nothing."""
    root = _bad_clinical(trial_dir, "one_arm_cli", arm="control")
    out = tmp_path / "dec"
    r = CliRunner().invoke(
        cli,
        ["decode", "--clinical", str(root / "data" / "clinical.csv"),
         "--representations", str(root / "data" / "representations.h5ad"),
         "--targets", "", "--benefit", "responder", "--out", str(out)],
    )  # fmt: skip
    assert r.exit_code == 2, r.output
    assert "column 'arm'" in r.output and "two-arm" in r.output and not out.exists()


def test_benefit_randomisation_test_within_strata_from_the_decode_command(trial_dir, tmp_path):
    """--p-method permutation: the benefit decoder re-randomises the arm within --benefit-strata
    and says so in the summary; the permutation count reaches results."""
    out = tmp_path / "dec"
    args = [
        "decode",
        "--clinical", str(trial_dir / "data" / "clinical.csv"),
        "--representations", str(trial_dir / "data" / "representations.h5ad"),
        "--targets", "", "--benefit", "os", "--benefit-strata", "site",
        "--n-splits", "3", "--n-repeats", "1", "--p-method", "permutation",
        "--n-permutations", "9", "--jobs", "1", "--no-progress", "--out", str(out),
    ]  # fmt: skip
    with threadpool_limits(1):
        r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    table = pd.read_csv(out / "endpoint_summary.csv")
    tested = table[(table["kind"] == "benefit") & table["p_value"].notna()]
    assert len(tested) == 3
    assert tested["p_method"].str.contains("arm re-randomised within randomisation strata").all()
    assert tested["p_method"].str.contains("B=9").all()
    assert ((tested["p_value"] * 10).round(9) % 1 == 0).all()  # (1 + k) / (1 + B)
    # their default interval: the spread of the same re-randomisations (t_{B-1})
    assert tested["ci_method"].str.startswith("SD of the permutation re-runs").all()
    assert tested["ci_method"].str.contains("within randomisation strata, B=9, t_8").all()
    within = table[(table["kind"] == "benefit") & table["p_value"].isna()]
    assert within["ci_method"].str.startswith("grouped jackknife").all()


@pytest.mark.parametrize(
    ("study", "own", "expected"),
    [
        ({}, None, "randomisation"),
        ({"ci_method": "jackknife"}, None, "jackknife"),
        ({"ci_method": "delong"}, None, "oof"),
        ({"ci_method": "jackknife"}, "randomisation", "randomisation"),
        ({}, "bootstrap", "bootstrap"),
    ],
)
def test_benefit_interval_method_from_the_config(study, own, expected):
    """decode.benefit.ci_method wins; else an explicitly set decode.ci_method; else the
    benefit decoder's default (the arm re-randomisations)."""
    from tario_clinical.config import BenefitDecoderConfig, DecodeConfig
    from tario_clinical.pipeline.endpoints import _benefit_ci

    d = DecodeConfig(targets=["EGFR"], **study)
    b = BenefitDecoderConfig(arm="arm", endpoint="os", ci_method=own)
    assert _benefit_ci(b.ci_method, d) == expected


def test_benefit_strata_column_missing_through_the_decode_command(trial_dir, tmp_path):
    out = tmp_path / "dec"
    r = CliRunner().invoke(
        cli,
        ["decode", "--clinical", str(trial_dir / "data" / "clinical.csv"),
         "--representations", str(trial_dir / "data" / "representations.h5ad"),
         "--targets", "", "--benefit", "os", "--benefit-strata", "centre", "--out", str(out)],
    )  # fmt: skip
    assert r.exit_code == 2, r.output
    assert "strata" in r.output and "'centre'" in r.output and "Traceback" not in r.output
    assert not out.exists()


def test_non_binary_target_without_a_kind_names_the_way_out(trial_dir):
    cfg = config_from_dict(
        {
            "cohort": {"clinical": str(trial_dir / "data" / "clinical.csv")},
            "representations": str(trial_dir / "data" / "representations.h5ad"),
            "decode": {"targets": ["EGFR", "histology"]},
            "survival": None,
        }
    )
    with pytest.raises(SchemaError, match="binary label") as err:
        prepare(cfg)
    assert "decode.target_types" in str(err.value) and "histology" in str(err.value)


@pytest.mark.parametrize(
    ("decode", "words"),
    [
        ({"targets": ["EGFR"], "target_types": {"age": "continuous"}}, "target_types names 'age'"),
        ({"targets": ["EGFR"], "survival": {"endpoint": "os", "time": "x"}}, "not both"),
        ({"targets": ["EGFR"], "benefit": {"arm": "arm"}}, "give one outcome"),
        ({"targets": [], "survival": None}, "at least one target"),
        ({"targets": ["os"], "survival": {"endpoint": "os"}}, "used twice"),
    ],
)
def test_config_errors_name_the_key(tmp_path, decode, words):
    with pytest.raises(ConfigError, match=re.escape(words)) as err:
        config_from_dict(
            {"cohort": {"clinical": "c.csv"}, "representations": "r.h5ad", "decode": decode},
            base=tmp_path,
        )
    assert "decode" in str(err.value)


def test_stratify_by_a_categorical_score_is_refused(trial_dir):
    base = {
        "cohort": {"clinical": str(trial_dir / "data" / "clinical.csv")},
        "representations": str(trial_dir / "data" / "representations.h5ad"),
    }
    cfg = config_from_dict(
        {
            **base,
            "decode": {"targets": ["histology"], "target_types": {"histology": "categorical"}},
            "survival": {"score_target": "histology"},
        }
    )
    with pytest.raises(ConfigError, match="is a categorical target"):
        prepare(cfg)
