"""Cohort loading: spellings, RECIST, survival pairs, slide linking, exclusion log, file formats."""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pytest

from tario_clinical import CohortError, SchemaError, load_cohort
from tario_clinical.cohort import normalise_binary


def test_done_when_one_error_names_all_three_problems(tmp_path):
    path = tmp_path / "clinical.csv"
    path.write_text(
        "patient_id,best_response,os_time,os_event\n"
        "P1,PR,10,1\n"
        "P2,GREAT,5,0\n"
        "P1,SD,3,1\n"
        "P4,PD,-2,1\n"
    )
    with pytest.raises(SchemaError) as info:
        load_cohort(path)
    msg = str(info.value)
    assert (
        "row 3 (line 4), column patient_id, value 'P1': duplicate patient_id (first at row 1)"
        in msg
    )
    assert "row 2 (line 3), column best_response, value 'GREAT'" in msg
    assert "row 4 (line 5), column os_time, value '-2': must be >= 0" in msg
    assert str(path) in msg
    assert len(info.value.violations) == 3


def test_infinite_follow_up_times_are_rejected_like_negative_ones(tmp_path):
    """'inf' / 'Infinity' / '-inf' in a file, or np.inf in a DataFrame, are not a follow-up
    time: one error names file, row, column and value of each, next to a negative time."""
    path = tmp_path / "clinical.csv"
    path.write_text(
        "patient_id,os_time,os_event,pfs_time,pfs_event\n"
        "P1,10,1,4,1\n"
        "P2,inf,0,3,1\n"
        "P3,5,1,Infinity,0\n"
        "P4,-2,1,-inf,1\n"
    )
    with pytest.raises(SchemaError) as info:
        load_cohort(path)
    msg = str(info.value)
    rule = "must be a finite number (infinite values are not allowed)"
    assert f"{path}, row 2 (line 3), column os_time, value 'inf': {rule}" in msg
    assert f"row 3 (line 4), column pfs_time, value 'Infinity': {rule}" in msg
    assert f"row 4 (line 5), column pfs_time, value '-inf': {rule}" in msg
    assert "row 4 (line 5), column os_time, value '-2': must be >= 0" in msg
    assert len(info.value.violations) == 4  # -inf is reported once, not also as < 0
    df = pd.DataFrame({"patient_id": ["a", "b"], "os_time": [1.0, np.inf], "os_event": [1, 0]})
    with pytest.raises(SchemaError, match=r"row 2 .*column os_time, value inf: must be a finite"):
        load_cohort(df)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("mut", 1.0),
        ("mutant", 1.0),
        ("MUT", 1.0),
        ("1", 1.0),
        ("True", 1.0),
        (True, 1.0),
        (1, 1.0),
        ("wt", 0.0),
        ("WT", 0.0),
        ("wild-type", 0.0),
        ("0", 0.0),
        ("False", 0.0),
        (False, 0.0),
        (0, 0.0),
        ("", np.nan),
        ("NA", np.nan),
        ("unknown", np.nan),
        (None, np.nan),
    ],
)
def test_genotype_spellings(raw, expected):
    out = normalise_binary([raw], column="EGFR").iloc[0]
    assert (np.isnan(out) and np.isnan(expected)) or out == expected


def test_bad_genotype_spelling_names_the_value_and_row():
    with pytest.raises(SchemaError, match=r"row 2 .*value 'sometimes'"):
        load_cohort(pd.DataFrame({"patient_id": ["a", "b"], "KRAS": ["mut", "sometimes"]}))


def test_responder_from_recist_and_configurable():
    df = pd.DataFrame(
        {"patient_id": list("abcde"), "best_response": ["CR", "pr", "SD", "PD", "NE"]}
    )
    c = load_cohort(df)
    assert c.clinical["responder"].tolist() == [1, 1, 0, 0, pd.NA]
    dcr = load_cohort(df, responder_map={"CR": 1, "PR": 1, "SD": 1, "PD": 0, "NE": None})
    assert dcr.clinical["responder"].tolist() == [1, 1, 1, 0, pd.NA]
    with pytest.raises(CohortError, match="responder_map"):
        load_cohort(df, responder_map={"GOOD": 1})


def test_survival_pair_must_be_complete():
    df = pd.DataFrame({"patient_id": ["a", "b"], "os_time": ["3", ""], "os_event": ["", ""]})
    with pytest.raises(SchemaError, match="os_event is missing while os_time is given"):
        load_cohort(df)
    with pytest.raises(SchemaError, match="column os_event is required with os_time"):
        load_cohort(pd.DataFrame({"patient_id": ["a"], "os_time": ["3"]}))


def test_gene_like_columns_detected_and_labels(small_trial):
    df = small_trial.clinical.copy()
    df["TP53"] = np.where(np.arange(len(df)) % 3 == 0, "mut", "wt")
    df["ECOG_X"] = "1"
    c = load_cohort(df)
    assert c.genotype_columns == ["EGFR", "KRAS", "STK11", "PTEN", "TP53"]
    lab = c.label("TP53")
    assert lab.index.name == "patient_id" and lab.sum() == (np.arange(len(df)) % 3 == 0).sum()
    with pytest.raises(CohortError, match="not a column"):
        c.label("BRCA9")


def test_file_formats_round_trip(tmp_path, small_trial):
    df = small_trial.clinical
    (tmp_path / "c.csv").write_text(df.to_csv(index=False))
    (tmp_path / "c.tsv").write_text(df.to_csv(index=False, sep="\t"))
    df.to_parquet(tmp_path / "c.parquet")
    df.to_excel(tmp_path / "c.xlsx", index=False)
    loaded = [load_cohort(tmp_path / f"c.{ext}") for ext in ("csv", "tsv", "parquet", "xlsx")]
    loaded.append(load_cohort(pl.from_pandas(df)))
    ref = loaded[0].clinical
    for c in loaded[1:]:
        assert c.clinical["patient_id"].tolist() == ref["patient_id"].tolist()
        assert c.clinical["EGFR"].tolist() == ref["EGFR"].tolist()
        np.testing.assert_allclose(c.clinical["os_time"], ref["os_time"])
    assert (
        loaded[0].sources["clinical"]["sha256"]
        and len(loaded[0].sources["clinical"]["sha256"]) == 64
    )


def test_unreadable_files_are_clear_errors(tmp_path):
    with pytest.raises(CohortError, match="file not found"):
        load_cohort(tmp_path / "nope.csv")
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(CohortError, match="unsupported table format"):
        load_cohort(tmp_path / "x.json")
    (tmp_path / "latin.csv").write_bytes("patient_id,site\nP1,M\xfcnchen\n".encode("latin-1"))
    with pytest.raises(CohortError, match="not UTF-8"):
        load_cohort(tmp_path / "latin.csv")


def test_slides_link_to_patients_and_paths_stay_inside(tmp_path):
    clin = pd.DataFrame({"patient_id": ["P1", "P2"]})
    (tmp_path / "slides").mkdir()
    manifest = tmp_path / "slides.csv"
    manifest.write_text(
        "slide_id,patient_id,path\nS1,P1,slides/a.svs\nS2,P9,slides/b.svs\nS3,P2,../../etc/passwd\n"
    )
    with pytest.raises(SchemaError) as info:
        load_cohort(clin, manifest)
    v = info.value.violations
    assert set(zip(v["row"], v["column"], strict=True)) == {(2, "patient_id"), (3, "path")}
    manifest.write_text("slide_id,patient_id,path\nS1,P1,slides/a.svs\nS2,P2,slides/b.svs\n")
    c = load_cohort(clin, manifest)
    assert c.slides["path"].iloc[0] == str((tmp_path / "slides" / "a.svs").resolve())
    with pytest.raises(SchemaError, match="file not found"):
        load_cohort(clin, manifest, check_paths=True)


def test_exclusion_log_records_everything():
    c = load_cohort(pd.DataFrame({"patient_id": ["a", "b", "c"]}))
    assert len(c.exclusions) == 0
    c.exclude(["a"], reason="missing EGFR call", analysis="decode:EGFR")
    c.exclude(["b"], reason="unreadable slide", analysis="encode", slide_ids=["s2"])
    assert c.exclusions.to_dict("records") == [
        {
            "patient_id": "a",
            "slide_id": None,
            "analysis": "decode:EGFR",
            "reason": "missing EGFR call",
        },
        {"patient_id": "b", "slide_id": "s2", "analysis": "encode", "reason": "unreadable slide"},
    ]
    assert "2 exclusions" in repr(c) and "<table>" in c._repr_html_()
