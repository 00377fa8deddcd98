"""CLI (`lock`, `validate-biomarker`, `demo-validation`), the study YAML's `validation:` block
and `results["validation"]` in results.json. Bad input exits 2 with a message, never a
traceback."""

from __future__ import annotations

import json
import warnings

import pytest
import yaml
from click.testing import CliRunner

import tario_clinical as tc
from tario_clinical.cli import cli
from tario_clinical.errors import ConfigError, SchemaError
from tario_clinical.provenance import atomic_write_h5ad, sha256_file


@pytest.fixture(scope="module")
def trials(tmp_path_factory):
    root = tmp_path_factory.mktemp("biomarker_cli")
    t = tc.simulate_trial(
        160,
        seed=5,
        n_genes=40,
        compute_attainable=False,
        second_trial={"n_patients": 120, "seed": 6, "site_shift": 0.5, "compute_attainable": False},
    )
    t.write(root / "dev")
    t.second_trial.write(root / "val")
    other = tc.simulate_trial(120, seed=77, n_genes=40, compute_attainable=False)
    reps = other.representations.copy()
    reps.obs_names = t.second_trial.representations.obs_names
    atomic_write_h5ad(root / "other.h5ad", reps)  # same genes and ids, another "encoder"
    atomic_write_h5ad(root / "fewer.h5ad", t.second_trial.representations[:, 3:].copy())
    return root


@pytest.fixture(scope="module")
def artefact(trials):
    out = trials / "egfr.json"
    r = CliRunner().invoke(
        cli,
        [
            "lock",
            "--clinical",
            str(trials / "dev" / "clinical.csv"),
            "--representations",
            str(trials / "dev" / "representations.h5ad"),
            "--target",
            "EGFR",
            "--cutoff",
            "median",
            "--n-repeats",
            "1",
            "--ci-method",
            "delong",
            "--p-method",
            "delong",
            "--out",
            str(out),
        ],
    )
    assert r.exit_code == 0, r.output
    assert "sha256" in r.output and "cut-off median" in r.output
    return out


def _validate(trials, artefact, out, *extra):
    return CliRunner().invoke(
        cli,
        [
            "validate-biomarker",
            "--artefact",
            str(artefact),
            "--clinical",
            str(trials / "val" / "clinical.csv"),
            "--out",
            str(out),
            *extra,
        ],
    )


def test_lock_then_validate_biomarker(trials, artefact, tmp_path):
    locked = tc.biomarker.load_locked_biomarker(artefact)
    assert locked.sha256 == sha256_file(artefact)
    r = _validate(
        trials,
        artefact,
        tmp_path / "v",
        "--representations",
        str(trials / "val" / "representations.h5ad"),
        "--development-representations",
        str(trials / "dev" / "representations.h5ad"),
        "--covariates",
        "age,ecog",
    )
    assert r.exit_code == 0, r.output
    assert "validation AUROC" in r.output and "cohort-membership AUROC" in r.output
    d = json.loads((tmp_path / "v" / "validation.json").read_text())
    assert d["artefact_sha256"] == locked.sha256
    for name in ("summary.csv", "comparison.csv", "validation_scores.csv", "exclusions.csv"):
        assert (tmp_path / "v" / name).is_file(), name
    for name in ("roc", "calibration", "decision_curve", "km", "forest", "score_distribution"):
        assert (tmp_path / "v" / f"{name}.png").is_file(), name


def _no_traceback(r):
    assert "Traceback" not in r.output
    assert "error:" in r.output or "Error:" in r.output, r.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--target", "NOPE"], "not a column"),
        (["--target", "EGFR", "--cutoff", "banana"], "median, tertiles, prevalence"),
        (["--target", "EGFR", "--cutoff", "1.5"], "quantile cut-off must lie in (0, 1)"),
        (["--target", "EGFR", "--cutoff", "0.2,0.2"], "distinct"),
    ],
)
def test_lock_bad_input_exits_2(trials, tmp_path, args, message):
    r = CliRunner().invoke(
        cli,
        [
            "lock",
            "--clinical",
            str(trials / "dev" / "clinical.csv"),
            "--representations",
            str(trials / "dev" / "representations.h5ad"),
            "--n-repeats",
            "1",
            "--ci-method",
            "delong",
            "--p-method",
            "delong",
            "--out",
            str(tmp_path / "a.json"),
            *args,
        ],
    )
    assert r.exit_code == 2, r.output
    assert message in r.output
    _no_traceback(r)
    assert not (tmp_path / "a.json").exists()


def test_lock_missing_file_exits_2(tmp_path):
    r = CliRunner().invoke(
        cli,
        [
            "lock",
            "--clinical",
            str(tmp_path / "absent.csv"),
            "--representations",
            str(tmp_path / "absent.h5ad"),
            "--target",
            "EGFR",
            "--out",
            str(tmp_path / "a.json"),
        ],
    )
    assert r.exit_code == 2 and "not found" in r.output
    _no_traceback(r)


def test_validate_bad_input_exits_2(trials, artefact, tmp_path):
    fewer = _validate(
        trials, artefact, tmp_path / "a", "--representations", str(trials / "fewer.h5ad")
    )
    assert fewer.exit_code == 2 and "lack 3 of the 40 features" in fewer.output
    for gene in tc.simulate.gene_symbols(3):
        assert gene in fewer.output
    _no_traceback(fewer)
    other = _validate(
        trials, artefact, tmp_path / "b", "--representations", str(trials / "other.h5ad")
    )
    assert other.exit_code == 2 and "--allow-encoder-mismatch" in other.output
    assert "weights_sha256" in other.output
    _no_traceback(other)
    bad = tmp_path / "bad.json"
    bad.write_text("{ not json", encoding="utf-8")
    r = _validate(
        trials,
        bad,
        tmp_path / "c",
        "--representations",
        str(trials / "val" / "representations.h5ad"),
    )
    assert r.exit_code == 2 and "not a JSON locked biomarker" in r.output
    _no_traceback(r)
    r = _validate(
        trials,
        artefact,
        tmp_path / "d",
        "--representations",
        str(trials / "val" / "representations.h5ad"),
        "--covariates",
        "bmi",
    )
    assert r.exit_code == 2 and "bmi" in r.output
    _no_traceback(r)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_validate_override_warns_and_flags(trials, artefact, tmp_path):
    r = _validate(
        trials,
        artefact,
        tmp_path / "o",
        "--representations",
        str(trials / "other.h5ad"),
        "--allow-encoder-mismatch",
        "--endpoint",
        "",
    )
    assert r.exit_code == 0, r.output
    assert "warning: applying EGFR locked biomarker to representations of another" in r.output
    assert "ENCODER MISMATCH OVERRIDDEN" in r.output
    assert json.loads((tmp_path / "o" / "validation.json").read_text())["encoder_overridden"]


# ------------------------------------------------------------------------ YAML / pipeline
def _study(trials, tmp_path, validation, name="study.yaml"):
    cfg = {
        "seed": 0,
        "cohort": {"clinical": str(trials / "dev" / "clinical.csv")},
        "representations": str(trials / "dev" / "representations.h5ad"),
        "decode": {
            "targets": ["EGFR"],
            "n_repeats": 1,
            "ci_method": "delong",
            "p_method": "delong",
        },
        "survival": None,
        "design": None,
        "validation": validation,
    }
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


def _val_block(trials, **kw):
    return {
        "cohort": {"clinical": str(trials / "val" / "clinical.csv")},
        "representations": str(trials / "val" / "representations.h5ad"),
        "covariates": ["age"],
        **kw,
    }


def test_study_yaml_validation_block_puts_results_in_results_json(trials, tmp_path):
    from tario_clinical.report import validate_results

    study = _study(trials, tmp_path, _val_block(trials, lock={"target": "EGFR"}))
    out = tmp_path / "run1"
    r = CliRunner().invoke(cli, ["-q", "run", "--config", str(study), "--out", str(out)])
    assert r.exit_code == 0, r.output
    results = json.loads((out / "results.json").read_text())
    validate_results(results)
    v = results["validation"]
    locked_path = out / "locked_biomarker.json"
    assert v["artefact_sha256"] == sha256_file(locked_path)
    assert v["kind"] == "tario_clinical.biomarker_validation" and v["target"] == "EGFR"
    assert v["shift"]["membership"]  # the development representations were compared
    assert (out / "validation" / "validation_scores.csv").is_file()
    # the same locked artefact given as a file: same biomarker, same validation numbers
    study2 = _study(
        trials, tmp_path, _val_block(trials, artefact=str(locked_path)), name="study2.yaml"
    )
    out2 = tmp_path / "run2"
    r = CliRunner().invoke(cli, ["-q", "run", "--config", str(study2), "--out", str(out2)])
    assert r.exit_code == 0, r.output
    v2 = json.loads((out2 / "results.json").read_text())["validation"]
    assert v2["artefact_sha256"] == v["artefact_sha256"]
    assert v2["discrimination"] == v["discrimination"]
    # re-running gives a byte-identical results.json (artefact locked without a wall-clock time)
    out3 = tmp_path / "run3"
    r = CliRunner().invoke(cli, ["-q", "run", "--config", str(study), "--out", str(out3)])
    assert (out3 / "results.json").read_bytes() == (out / "results.json").read_bytes()


def test_validation_block_is_checked_before_anything_runs(trials, artefact, tmp_path):
    from tario_clinical.config import load_config
    from tario_clinical.pipeline import prepare

    def prep(block):
        return prepare(load_config(_study(trials, tmp_path, block)))

    with pytest.raises(ConfigError, match="exactly one of 'artefact'"):
        prep(_val_block(trials))
    with pytest.raises(ConfigError, match="not one of decode.targets"):
        prep(_val_block(trials, lock={"target": "KRAS"}))
    with pytest.raises(ConfigError, match="validation.covariates"):
        prep(_val_block(trials, lock={"target": "EGFR"}, covariates=["bmi"]))
    fewer = _val_block(trials, artefact=str(artefact))
    fewer["representations"] = str(trials / "fewer.h5ad")
    with pytest.raises(SchemaError, match="lacks 3 of the 40 features"):
        prep(fewer)
    other = _val_block(trials, lock={"target": "EGFR"})
    other["representations"] = str(trials / "other.h5ad")
    with pytest.raises(tc.EncoderError, match="allow_encoder_mismatch"):
        prep(other)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        prepared = prep({**other, "allow_encoder_mismatch": True})
    assert prepared.validation.target == "EGFR"
    r = CliRunner().invoke(
        cli, ["run", "--config", str(_study(trials, tmp_path, fewer)), "--out", str(tmp_path / "x")]
    )
    assert r.exit_code == 2 and "lacks 3" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "x").exists()


def test_demo_validation(tmp_path):
    out = tmp_path / "demo"
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
    assert results["validation"]["target"] == "EGFR"
    truth = json.loads((out / "validation_truth.json").read_text())
    assert truth["artefact_sha256"] == results["validation"]["artefact_sha256"]
    assert 0.5 < truth["locked_truth"]["auroc"] < 1
    assert (out / "data" / "development" / "clinical.csv").is_file()
    assert (out / "data" / "validation" / "clinical.csv").is_file()
    assert (out / "validation" / "validation.json").is_file()
    assert (out / "report.html").is_file()
    bad = CliRunner().invoke(cli, ["demo-validation", "--out", str(out), "--target", "TP53"])
    assert bad.exit_code == 2 and "Traceback" not in bad.output
