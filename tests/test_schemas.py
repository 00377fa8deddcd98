"""Every schema rule has a failing example; schemas are valid JSON Schema 2020-12."""

from __future__ import annotations

import json

import jsonschema
import numpy as np
import pandas as pd
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tario_clinical import SchemaError
from tario_clinical.schemas import (
    SCHEMA_NAMES,
    check_table,
    load_schema,
    schema_path,
    validate_table,
)

TABLE_SCHEMAS = ("clinical", "slide_manifest")


@pytest.mark.parametrize(
    "name",
    [n for n in SCHEMA_NAMES if n not in ("results", "model_card")] + ["results", "model_card"],
)
def test_schema_files_are_valid_2020_12(name):
    try:
        path = schema_path(name)
    except SchemaError:
        pytest.skip(f"{name}.schema.json is added by its own issue")
    schema = json.loads(path.read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)


def _clinical(**cols):
    base = {"patient_id": ["P1", "P2", "P3"]}
    base.update(cols)
    return pd.DataFrame(base)


BAD_CASES = [
    # (column, values, rule fragment, bad row)
    ("patient_id", ["P1", "P1", "P3"], "duplicate patient_id", 2),
    ("patient_id", ["P1", "", "P3"], "required value is missing", 2),
    ("patient_id", ["P1", "P\x002", "P3"], "not allowed", 2),
    ("best_response", ["CR", "GREAT", "PD"], "must be one of CR, PR, SD, PD, NE", 2),
    ("os_time", ["1", "-2", "3"], "must be >= 0", 2),
    ("os_time", ["1", "soon", "3"], "must be a number", 2),
    ("os_time", ["1", "inf", "3"], "must be a finite number", 2),
    ("os_time", ["1", "-Infinity", "3"], "must be a finite number", 2),
    ("pfs_time", ["1", "Infinity", "3"], "must be a finite number", 2),
    ("ecog", ["0", "inf", "1"], "must be a finite number", 2),
    ("os_event", ["1", "inf", "0"], "must be a finite number", 2),
    ("os_event", ["1", "2", "0"], "must be one of 0, 1", 2),
    ("os_event", ["1", "0.5", "0"], "whole number", 2),
    ("age", ["50", "130", "60"], "must be <= 120", 2),
    ("sex", ["F", "X", "M"], "must be one of", 2),
    ("ecog", ["0", "7", "1"], "must be <= 5", 2),
    ("EGFR", ["mut", "maybe", "wt"], "genotype must be", 2),
]


@pytest.mark.parametrize(
    ("column", "values", "rule", "row"), BAD_CASES, ids=[c[0] + ":" + c[2][:12] for c in BAD_CASES]
)
def test_each_clinical_rule_has_a_failing_example(column, values, rule, row):
    df = _clinical() if column == "patient_id" else _clinical(**{column: values})
    if column == "patient_id":
        df["patient_id"] = values
    with pytest.raises(SchemaError) as info:
        validate_table(df, "clinical", source="clinical.csv")
    v = info.value.violations
    hit = v[(v["column"] == column) & v["rule"].str.contains(rule, regex=False)]
    assert len(hit) == 1, v
    assert int(hit["row"].iloc[0]) == row
    assert "clinical.csv" in str(info.value) and f"row {row}" in str(info.value)


def test_missing_required_column_and_duplicate_header():
    with pytest.raises(SchemaError, match="required column is missing"):
        validate_table(pd.DataFrame({"id": ["a"]}), "clinical")
    df = pd.DataFrame([["a", "b"]], columns=["patient_id", "patient_id"])
    with pytest.raises(SchemaError, match="more than once"):
        validate_table(df, "clinical")


def test_manifest_rules():
    df = pd.DataFrame(
        {
            "slide_id": ["s1", "s1", "a/b"],
            "patient_id": ["P1", "P2", "P3"],
            "path": ["x.svs", "y.svs", ""],
            "mpp": ["0.5", "0", "abc"],
        }
    )
    with pytest.raises(SchemaError) as info:
        validate_table(df, "slide_manifest", source="slides.csv")
    rules = set(zip(info.value.violations["column"], info.value.violations["row"], strict=True))
    assert ("slide_id", 2) in rules  # duplicate
    assert ("slide_id", 3) in rules  # path separator in id
    assert ("path", 3) in rules  # empty path
    assert ("mpp", 2) in rules and ("mpp", 3) in rules  # 0 and non-number


def test_all_violations_reported_at_once_and_sorted_by_row():
    df = _clinical(best_response=["GREAT", "PR", "WOW"], os_time=["-1", "2", "-3"])
    with pytest.raises(SchemaError) as info:
        validate_table(df, "clinical")
    v = info.value.violations
    assert len(v) == 4
    assert list(v["row"]) == sorted(v["row"])
    assert list(v.columns) == ["file", "row", "column", "value", "rule"]


def test_polars_and_pandas_agree():
    pdf = _clinical(os_time=["1.5", "NA", "3"], EGFR=["MUT", "wt", ""])
    a = validate_table(pdf, "clinical")
    b = validate_table(pl.from_pandas(pdf), "clinical")
    pd.testing.assert_frame_equal(a, b)
    assert a["EGFR"].tolist() == ["mutant", "wild-type", None]
    assert np.isnan(a["os_time"].iloc[1])


def test_extra_columns_are_kept_unchanged():
    df = _clinical(my_note=["a", "b", "c"], PDL1_TPS=["50", "1", "0"])
    out = validate_table(df, "clinical")
    assert out["my_note"].tolist() == ["a", "b", "c"] and out["PDL1_TPS"].tolist() == [
        "50",
        "1",
        "0",
    ]


# --- property test: our vectorised validator agrees with row-wise jsonschema on numeric rules
_row_schema = load_schema("clinical")["items"]
_numeric_props = {k: _row_schema["properties"][k] for k in ("os_time", "age", "ecog", "os_event")}


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.fixed_dictionaries(
            {
                k: st.one_of(
                    st.none(),
                    st.integers(-5, 200),
                    st.floats(-5, 200, allow_nan=False).map(lambda x: round(x, 2)),
                )
                for k in _numeric_props
            }
        ),
        min_size=1,
        max_size=8,
    )
)
def test_vectorised_validator_matches_jsonschema(rows):
    df = pd.DataFrame(rows)
    df.insert(0, "patient_id", [f"P{i}" for i in range(len(df))])
    _, v = check_table(df.astype(object), "clinical")
    ours = set(zip(v["row"].astype(int) - 1, v["column"], strict=True)) if len(v) else set()
    validator = jsonschema.Draft202012Validator({"type": "object", "properties": _numeric_props})
    theirs = set()
    for i, row in enumerate(rows):
        clean = {}
        for k, val in row.items():
            # integral floats are integers in JSON Schema 2020-12 (1.0 is an integer)
            clean[k] = val
        for err in validator.iter_errors(clean):
            theirs.add((i, err.path[0]))
    assert ours == theirs


def test_infinite_numbers_are_rejected_once_and_integer_columns_do_not_crash():
    """np.inf in a float column (a DataFrame, not a file) is a violation naming the value; an
    infinite cell of an integer column is flagged (it used to raise OverflowError)."""
    df = pd.DataFrame({"patient_id": ["P1", "P2"], "os_time": [1.0, -np.inf], "ecog": ["1", "inf"]})
    coerced, v = check_table(df, "clinical", source="t.csv")
    assert sorted(zip(v["row"], v["column"], strict=True)) == [(2, "ecog"), (2, "os_time")]
    assert v["rule"].str.contains("finite").all()
    assert coerced["ecog"].isna().tolist() == [False, True]
