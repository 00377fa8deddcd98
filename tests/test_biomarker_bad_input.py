"""Bad input to ``validate-biomarker`` (and a study YAML's ``validation:`` block): an artefact
from a newer layout, representations from another model (simulator biology, encoder, tiling),
missing features, a validation cohort without the endpoint or the target. Each exits 2 with a
message naming the file, column or features, prints no traceback and writes nothing to the
output folder (neither creating it nor touching an existing one)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

import tario_clinical as tc
from tario_clinical.cli import cli
from tario_clinical.provenance import atomic_write_h5ad


def _encoded(adata, *, model="demo-encoder", weights="a" * 64, tile_px=224):
    """Representations as if made by an encoder (the provenance ``tc.encode`` records)."""
    out = adata.copy()
    out.uns["tario_clinical"] = {
        "kind": "patient",
        "level": "patient",
        "model_card": {"name": model, "version": "1.0"},
        "weights_sha256": weights,
        "head_sha256": "b" * 64,
        "parameters": {
            "tiling": {"tile_px": tile_px, "mpp": 0.5, "min_tissue": 0.25},
            "fusion": "late",
        },
        "dtype": "float32",
    }
    return out


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Two simulated trials on disk, artefacts locked on simulated and on "encoded" features,
    and the bad inputs."""
    root = tmp_path_factory.mktemp("biomarker_bad_input")
    t = tc.simulate_trial(
        160,
        seed=11,
        n_genes=30,
        compute_attainable=False,
        second_trial={"n_patients": 100, "seed": 12, "compute_attainable": False},
    )
    t.write(root / "dev")
    v = t.second_trial
    v.write(root / "val")
    res = tc.decode(
        t.representations,
        t.cohort(),
        targets=["EGFR"],
        n_repeats=1,
        ci_method="delong",
        p_method="delong",
        progress=False,
    )
    tc.lock_biomarker(
        res,
        "EGFR",
        representations=t.representations,
        cohort=t.cohort(),
        path=root / "egfr.json",
        include_time=False,
    )
    tc.lock_biomarker(
        res,
        "EGFR",
        representations=_encoded(t.representations),
        endpoint=None,
        path=root / "egfr_encoded.json",
        include_time=False,
    )
    # an artefact of a future layout (otherwise valid)
    doc = json.loads((root / "egfr.json").read_text(encoding="utf-8"))
    doc["schema_version"] = tc.biomarker.ARTEFACT_VERSION + 1
    (root / "egfr_v_next.json").write_text(json.dumps(doc), encoding="utf-8")
    # representations from another model: another simulated biology with the same genes and ids,
    # the right encoder with another tiling, another encoder with the same tiling
    other = tc.simulate_trial(100, seed=99, n_genes=30, compute_attainable=False).representations
    other.obs_names = v.representations.obs_names
    atomic_write_h5ad(root / "other_biology.h5ad", other)
    atomic_write_h5ad(root / "encoded.h5ad", _encoded(v.representations))
    atomic_write_h5ad(root / "other_tiling.h5ad", _encoded(v.representations, tile_px=256))
    atomic_write_h5ad(root / "other_encoder.h5ad", _encoded(v.representations, model="uni-2h"))
    # features missing
    atomic_write_h5ad(root / "fewer.h5ad", v.representations[:, 4:].copy())
    # validation cohorts without the endpoint / without the target
    clin = pd.read_csv(root / "val" / "clinical.csv")
    clin.drop(columns=["os_time", "os_event"]).to_csv(root / "no_os.csv", index=False)
    clin.drop(columns=["EGFR"]).to_csv(root / "no_egfr.csv", index=False)
    return root


def _run(files, out, *, artefact="egfr.json", reps=None, clinical=None, extra=()):
    args = [
        "validate-biomarker",
        "--artefact",
        str(files / artefact),
        "--clinical",
        str(clinical or files / "val" / "clinical.csv"),
        "--representations",
        str(reps or files / "val" / "representations.h5ad"),
        "--out",
        str(out),
        *extra,
    ]
    return CliRunner().invoke(cli, args)


def _assert_bad_input(r, out, *needles):
    assert r.exit_code == 2, r.output
    text = r.output
    assert "Traceback" not in text and "error: " in text, text
    for needle in needles:
        assert needle in text, (needle, text)
    if out.exists():  # an existing output folder is left as it was (empty)
        assert not any(out.iterdir()), sorted(out.iterdir())


@pytest.fixture(params=["absent", "existing"])
def out(request, tmp_path):
    """The output folder: not there yet, or there and empty."""
    path = tmp_path / "out"
    if request.param == "existing":
        path.mkdir()
    yield path
    if request.param == "absent":
        assert not path.exists(), "the output folder was created"


def test_good_input_passes(files, tmp_path):
    """The fixtures are valid apart from the planted problem."""
    r = _run(files, tmp_path / "ok", extra=("--no-recalibrate",))
    assert r.exit_code == 0, r.output
    r = _run(
        files,
        tmp_path / "ok2",
        artefact="egfr_encoded.json",
        reps=files / "encoded.h5ad",
        extra=("--endpoint", ""),
    )
    assert r.exit_code == 0, r.output


def test_artefact_from_a_newer_layout(files, out):
    r = _run(files, out, artefact="egfr_v_next.json")
    nxt = tc.biomarker.ARTEFACT_VERSION + 1
    _assert_bad_input(
        r, out, "egfr_v_next.json", f"layout {nxt}", f"reads up to {nxt - 1}", "upgrade"
    )


def test_representations_of_another_simulated_biology(files, out):
    r = _run(files, out, reps=files / "other_biology.h5ad")
    _assert_bad_input(
        r, out, "other_biology.h5ad", "another model", "weights_sha256", "--allow-encoder-mismatch"
    )


@pytest.mark.parametrize(
    ("reps", "field", "value"),
    [("other_tiling.h5ad", "tiling", "256"), ("other_encoder.h5ad", "model_card_name", "uni-2h")],
)
def test_representations_of_another_encoder_or_tiling(files, out, reps, field, value):
    r = _run(files, out, artefact="egfr_encoded.json", reps=files / reps, extra=("--endpoint", ""))
    _assert_bad_input(r, out, reps, "another model", field, value, "--allow-encoder-mismatch")


def test_missing_features_are_named(files, out):
    r = _run(files, out, reps=files / "fewer.h5ad")
    genes = tc.simulate.gene_symbols(4)
    _assert_bad_input(r, out, "fewer.h5ad", "lack 4 of the 30 features", *genes)


def test_validation_cohort_without_the_endpoint(files, out):
    r = _run(files, out, clinical=files / "no_os.csv")
    _assert_bad_input(r, out, "no_os.csv", "os_time, os_event", "endpoint 'os'", "--endpoint ''")


def test_validation_cohort_without_the_requested_endpoint(files, out):
    r = _run(files, out, extra=("--endpoint", "dfs"))
    _assert_bad_input(r, out, "clinical.csv", "dfs_time, dfs_event", "endpoint 'dfs'")


def test_validation_cohort_without_the_target(files, out):
    r = _run(files, out, clinical=files / "no_egfr.csv")
    _assert_bad_input(r, out, "no_egfr.csv", "'EGFR'", "no such column")


def test_subprocess_exit_code_and_stderr(files, tmp_path):
    """The installed entry point: exit status 2, one error line on stderr, nothing on disk."""
    out = tmp_path / "sub"
    env = {**os.environ, "TARIO_CLINICAL_DEBUG": "0"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tario_clinical.cli",
            "validate-biomarker",
            "--artefact",
            str(files / "egfr_v_next.json"),
            "--clinical",
            str(files / "val" / "clinical.csv"),
            "--representations",
            str(files / "val" / "representations.h5ad"),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr
    assert "egfr_v_next.json" in proc.stderr and proc.stdout == ""
    assert not out.exists()


# --------------------------------------------------------------------- study YAML (run)
def _study(files, tmp_path, **validation):
    block = {
        "artefact": str(files / "egfr.json"),
        "cohort": {"clinical": str(files / "val" / "clinical.csv")},
        "representations": str(files / "val" / "representations.h5ad"),
        **validation,
    }
    cfg = {
        "seed": 0,
        "cohort": {"clinical": str(files / "dev" / "clinical.csv")},
        "representations": str(files / "dev" / "representations.h5ad"),
        "decode": {
            "targets": ["EGFR"],
            "n_repeats": 1,
            "ci_method": "delong",
            "p_method": "delong",
        },
        "survival": None,
        "design": None,
        "validation": block,
    }
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("validation", "needles"),
    [
        ({"artefact": "egfr_v_next.json"}, ("egfr_v_next.json", "upgrade")),
        ({"representations": "other_biology.h5ad"}, ("weights_sha256",)),
        ({"representations": "fewer.h5ad"}, ("fewer.h5ad", "lacks 4 of the 30 features")),
    ],
)
def test_study_yaml_validation_block_bad_input(files, tmp_path, validation, needles):
    block = {k: str(files / v) for k, v in validation.items()}
    out = tmp_path / "run"
    r = CliRunner().invoke(
        cli, ["run", "--config", str(_study(files, tmp_path, **block)), "--out", str(out)]
    )
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output
    for needle in needles:
        assert needle in r.output, (needle, r.output)
    assert not out.exists()


@pytest.mark.parametrize("mode", ["artefact", "lock"])
def test_study_yaml_validation_cohort_without_the_endpoint(files, tmp_path, mode):
    """Checked before anything runs: no locked_biomarker.json (or anything else) is written."""
    block: dict = {"cohort": {"clinical": str(files / "no_os.csv")}}
    if mode == "lock":
        block.update(artefact=None, lock={"target": "EGFR"})
    out = tmp_path / "run"
    r = CliRunner().invoke(
        cli, ["run", "--config", str(_study(files, tmp_path, **block)), "--out", str(out)]
    )
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output
    for needle in ("no_os.csv", "os_time, os_event", "validation.endpoint"):
        assert needle in r.output, (needle, r.output)
    assert not out.exists()
