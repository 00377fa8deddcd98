"""Package-level promises: light import, lazy attributes, CLI error handling."""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner

from tario_clinical.cli import cli


def test_import_is_light_and_fast():
    code = (
        "import sys, time; t=time.perf_counter(); import tario_clinical; dt=time.perf_counter()-t;"
        "heavy=[m for m in ('torch','ray','openslide','tiffslide','anndata','sklearn','lifelines') if m in sys.modules];"
        "print(dt); print(heavy)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)  # warm the caches
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout.split("\n")
    assert float(out[0]) < 1.0
    assert out[1] == "[]"


def test_lazy_attributes_resolve():
    import tario_clinical as tc

    assert callable(tc.load_cohort) and callable(tc.simulate_trial)
    with pytest.raises(AttributeError):
        tc.does_not_exist  # noqa: B018


def test_cli_validate_ok_and_bad(tmp_path):
    good = tmp_path / "ok.csv"
    good.write_text("patient_id,EGFR\nP1,mut\nP2,wt\n")
    r = CliRunner().invoke(cli, ["validate", "--clinical", str(good)])
    assert r.exit_code == 0 and "ok: 2 patients" in r.output
    bad = tmp_path / "bad.csv"
    bad.write_text("patient_id,best_response,os_time,os_event\nP1,GREAT,1,1\nP1,PR,-1,0\n")
    r = CliRunner().invoke(cli, ["validate", "--clinical", str(bad)])
    assert r.exit_code == 2
    assert "GREAT" in r.output and "duplicate patient_id" in r.output and "must be >= 0" in r.output
    assert "Traceback" not in r.output
    r = CliRunner().invoke(cli, ["validate", "--clinical", str(tmp_path / "missing.csv")])
    assert r.exit_code == 2 and "file not found" in r.output


def test_cli_simulate_writes_cohort(tmp_path):
    r = CliRunner().invoke(
        cli,
        [
            "simulate",
            "--n-patients",
            "40",
            "--n-genes",
            "30",
            "--seed",
            "3",
            "--out",
            str(tmp_path / "sim"),
        ],
    )
    assert r.exit_code == 0, r.output
    import anndata as ad

    from tario_clinical import load_cohort

    c = load_cohort(tmp_path / "sim" / "clinical.csv")
    a = ad.read_h5ad(tmp_path / "sim" / "representations.h5ad")
    assert len(c) == 40 and a.shape == (40, 30)
    assert (tmp_path / "sim" / "truth.json").exists()
    assert not list((tmp_path / "sim").glob(".*tmp"))


def test_cli_console_script_installed():
    out = subprocess.run(
        [sys.executable, "-m", "tario_clinical.cli", "--version"], capture_output=True, text=True
    )
    assert out.returncode == 0 and "0.1.0" in out.stdout
