"""The main job end to end through the CLI: demo (simulate -> encode -> decode -> survival ->
design -> report) on a small synthetic trial, and the single-step commands on its outputs."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from tario_clinical.cli import cli
from tario_clinical.report import validate_results


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    r = CliRunner().invoke(cli, ["demo", "--out", str(out), "--n-patients", "40", "--no-progress"])
    assert r.exit_code == 0, r.output
    return out


@pytest.mark.slow
def test_demo_writes_a_complete_report(demo_out):
    for name in (
        "report.html",
        "results.json",
        "oof_scores.csv",
        "exclusions.csv",
        "encode/representations.h5ad",
    ):
        assert (demo_out / name).is_file(), name
    results = json.loads((demo_out / "results.json").read_text())
    validate_results(results)
    html = (demo_out / "report.html").read_text()
    assert "Content-Security-Policy" in html and "P0000" not in html
    targets = {row["target"] for row in results["decode"]["summary"]}
    assert targets == {"EGFR", "KRAS", "STK11", "PTEN", "responder"}


@pytest.mark.slow
def test_single_step_commands_on_demo_outputs(demo_out, tmp_path):
    r = CliRunner().invoke(
        cli,
        [
            "decode",
            "--clinical",
            str(demo_out / "data" / "clinical.csv"),
            "--representations",
            str(demo_out / "encode" / "representations.h5ad"),
            "--targets",
            "EGFR,KRAS",
            "--n-repeats",
            "1",
            "--out",
            str(tmp_path / "dec"),
        ],
    )
    assert r.exit_code == 0, r.output
    assert "EGFR" in r.output and (tmp_path / "dec" / "decode_summary.csv").is_file()
    r = CliRunner().invoke(
        cli,
        [
            "survival",
            "--clinical",
            str(demo_out / "data" / "clinical.csv"),
            "--scores",
            str(tmp_path / "dec" / "oof_scores.csv"),
            "--target",
            "EGFR",
            "--arm",
            "arm",
            "--out",
            str(tmp_path / "surv"),
        ],
    )
    assert r.exit_code == 0, r.output
    surv = json.loads((tmp_path / "surv" / "survival.json").read_text())
    assert surv and (tmp_path / "surv" / "km.png").is_file()
    r = CliRunner().invoke(
        cli,
        [
            "survival",
            "--clinical",
            str(demo_out / "data" / "clinical.csv"),
            "--scores",
            str(tmp_path / "dec" / "oof_scores.csv"),
            "--out",
            str(tmp_path / "surv2"),
        ],
    )
    assert r.exit_code == 2 and "--target" in r.output
