"""Spatial transcriptomics in a study run: the sample table is validated up front and the
expression-QC section reaches results.json and the HTML report."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from tario_clinical import SchemaError
from tario_clinical.cli import cli
from tario_clinical.pipeline import iter_spatial_samples, read_spatial_samples
from tario_clinical.simulate.spatial import simulate_spatial_pairs


@pytest.fixture(scope="module")
def spatial_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("spt")
    sim = simulate_spatial_pairs(3, n_genes=20, grid_shape=(12, 12), seed=0)
    rows = []
    for s in sim.samples:
        s.predicted.write_h5ad(d / f"{s.sample_id}_pred.h5ad")
        s.transcripts.to_csv(d / f"{s.sample_id}_tx.csv", index=False)
        rows.append(
            {
                "sample_id": s.sample_id,
                "predicted": f"{s.sample_id}_pred.h5ad",
                "measured": f"{s.sample_id}_tx.csv",
                "cancer_type": s.cancer_type,
                "affine": " ".join(f"{v:.12g}" for v in np.asarray(s.affine)[:2].ravel()),
            }
        )
    pd.DataFrame(rows).to_csv(d / "spatial.csv", index=False)
    return d, sim


def test_table_round_trip_matches_in_memory_evaluation(spatial_dir):
    from tario_clinical.expression_qc import evaluate_expression

    d, sim = spatial_dir
    from_files = evaluate_expression(iter_spatial_samples(read_spatial_samples(d / "spatial.csv")))
    in_memory = evaluate_expression(sim.spatial_samples("transcripts"))
    a, b = from_files.table(), in_memory.table()
    num = a.select_dtypes("number").columns
    np.testing.assert_allclose(
        a[num].to_numpy(float), b[num].to_numpy(float), rtol=1e-6, equal_nan=True
    )


def test_bad_sample_table_names_rows(spatial_dir, tmp_path):
    d, _ = spatial_dir
    t = pd.read_csv(d / "spatial.csv")
    t.loc[1, "sample_id"] = t.loc[0, "sample_id"]
    t.loc[2, "measured"] = "missing.csv"
    t.loc[0, "affine"] = "1 2 three"
    bad = d / "bad.csv"
    t.to_csv(bad, index=False)
    with pytest.raises(SchemaError) as info:
        read_spatial_samples(bad)
    msg = str(info.value)
    assert "row 2" in msg and "duplicate sample_id" in msg
    assert "row 3" in msg and "file not found" in msg
    assert "row 1" in msg and "affine" in msg


@pytest.mark.slow
def test_study_run_with_expression_qc(spatial_dir, tmp_path, small_trial):
    d, _ = spatial_dir
    small_trial.write(tmp_path)
    (tmp_path / "study.yaml").write_text(
        "cohort:\n  clinical: clinical.csv\nrepresentations: representations.h5ad\n"
        "decode:\n  targets: [EGFR]\n  n_repeats: 1\n  n_inner_splits: 3\nsurvival: null\ndesign: null\n"
        f"expression_qc:\n  samples: {d / 'spatial.csv'}\n"
    )
    r = CliRunner().invoke(
        cli, ["report", "--config", str(tmp_path / "study.yaml"), "--out", str(tmp_path / "out")]
    )
    assert r.exit_code == 0, r.output
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["expression_qc"] is not None
    sections = {s["id"]: s["present"] for s in results["sections"]}
    assert sections["expression_qc"] is True
    assert "Predicted vs measured expression" in (tmp_path / "out" / "report.html").read_text()
