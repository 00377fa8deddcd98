"""One JSON-safe converter (tario_clinical._json) and one table reader with one error type
(tario_clinical.tables), used by every module that had its own (issue 13 item 2)."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tario_clinical import _json
from tario_clinical._json import canonical_json, json_safe, records
from tario_clinical.errors import CohortError, SchemaError, TableError, TarioClinicalError
from tario_clinical.tables import read_table


def test_json_safe_converts_numpy_pandas_and_missing_values():
    doc = {
        "f": np.float32(0.5),
        "i": np.int64(7),
        "b": np.bool_(False),
        "nan": float("nan"),
        "inf": np.inf,
        "na": pd.NA,
        "nat": pd.NaT,
        "dt64nat": np.datetime64("NaT"),
        2: (1, 2),
        "arr": np.array([1.0, np.nan]),
        "series": pd.Series([1, 2], index=["a", "b"]),
        "set": {"b", "a"},
        "path": Path("x") / "y",
        "date": dt.date(2026, 1, 2),
        "obj": object,
    }
    out = json_safe(doc)
    assert out["f"] == 0.5 and type(out["f"]) is float
    assert out["i"] == 7 and type(out["i"]) is int
    assert out["b"] is False
    assert out["nan"] is None and out["inf"] is None and out["na"] is None
    assert out["nat"] is None and out["dt64nat"] is None
    assert out["2"] == [1, 2] and out["arr"] == [1.0, None] and out["series"] == [1, 2]
    assert out["set"] == ["a", "b"] and out["path"] == str(Path("x") / "y")
    assert out["date"] == "2026-01-02" and out["obj"] == str(object)
    json.dumps(out, allow_nan=False)


def test_json_safe_rounds_only_when_asked():
    x = 0.1 + 0.2
    assert json_safe(x) == x
    assert json_safe(x, digits=12) == 0.3
    assert math.copysign(1, json_safe(-0.0, digits=3)) == 1  # no "-0.0" after rounding


def test_records_index_policy_and_none():
    df = pd.DataFrame({"hr": [0.5, np.nan]}, index=pd.Index(["a", "b"], name="arm"))
    assert records(df) == [{"hr": 0.5}, {"hr": None}]
    assert records(df, index="named") == [{"arm": "a", "hr": 0.5}, {"arm": "b", "hr": None}]
    assert records(df.reset_index(drop=True), index="named") == [{"hr": 0.5}, {"hr": None}]
    assert records(df.reset_index(drop=True), index=True)[0] == {"index": 0, "hr": 0.5}
    assert records(None) is None


def test_canonical_json_is_deterministic():
    a = canonical_json({"b": np.float64(1 / 3), "a": [np.nan]})
    assert a == canonical_json({"a": [None], "b": 1 / 3})
    assert a.endswith("\n") and a.index('"a"') < a.index('"b"')
    assert json.loads(a)["b"] == 1 / 3  # full precision round-trips
    assert json.loads(canonical_json({"b": 1 / 3}, digits=3))["b"] == 0.333


def test_every_converter_is_the_shared_one():
    """The modules that had their own converter now hand over to _json (same results)."""
    from tario_clinical.biomarker import _common
    from tario_clinical.decode import result
    from tario_clinical.report import _jsonsafe
    from tario_clinical.survival import formatting

    assert result.json_safe is _json.json_safe
    assert _common.json_safe is _json.json_safe and _common.records is _json.records
    assert formatting.json_safe is _json.json_safe
    x = {"a": np.float64(0.1 + 0.2), "b": pd.DataFrame({"x": [np.nan]})}
    assert _jsonsafe.jsonable(x) == json_safe(x, digits=12)
    named = pd.DataFrame({"x": [1]}, index=pd.Index(["p"], name="id"))
    assert formatting.records(named) == [{"id": "p", "x": 1}]


# ---- tables -------------------------------------------------------------------------------


def test_read_table_formats_keep_text_and_duplicate_headers(tmp_path):
    (tmp_path / "a.csv").write_text("\ufeffid,x,x\n007,NA,\n", encoding="utf-8")
    df = read_table(tmp_path / "a.csv")
    assert list(df.columns) == ["id", "x", "x"]
    assert df.iloc[0].tolist() == ["007", "NA", ""]
    (tmp_path / "a.tsv").write_text("id\tx\n1\t2\n")
    assert read_table(tmp_path / "a.tsv").to_dict("records") == [{"id": "1", "x": "2"}]
    pd.DataFrame({" id ": ["1"]}).to_parquet(tmp_path / "a.parquet")
    assert list(read_table(tmp_path / "a.parquet").columns) == ["id"]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.csv", None, "file not found"),
        ("t.json", "{}", "unsupported table format '.json'"),
        ("latin.csv", "id\ncontr\xf4le\n".encode("latin-1"), "not UTF-8"),
        ("empty.csv", "", "no columns"),
        ("bad.parquet", b"PAR1garbage", "cannot be read as a parquet table"),
    ],
)
def test_read_table_raises_one_error_type_naming_the_file(tmp_path, name, content, message):
    p = tmp_path / name
    if isinstance(content, bytes):
        p.write_bytes(content)
    elif content is not None:
        p.write_text(content)
    with pytest.raises(TableError, match=message) as info:
        read_table(p, what="clinical table")
    assert str(info.value).startswith(f"clinical table {p}: ")
    assert isinstance(info.value, CohortError) and isinstance(info.value, SchemaError)
    assert isinstance(info.value, TarioClinicalError) and info.value.exit_code == 2


def test_clinical_table_and_slide_manifest_raise_the_same_error(tmp_path):
    """The same unreadable file gives the same error type from the cohort and slide readers."""
    from tario_clinical import load_cohort
    from tario_clinical.slides import read_slide_manifest

    p = tmp_path / "table.json"
    p.write_text("{}")
    with pytest.raises(TableError, match="unsupported table format") as a:
        load_cohort(p)
    with pytest.raises(TableError, match="unsupported table format") as b:
        read_slide_manifest(p)
    assert type(a.value) is type(b.value) is TableError
    with pytest.raises(TableError, match="slide manifest .*file not found"):
        read_slide_manifest(tmp_path / "nope.csv")


def test_slide_manifest_with_a_duplicated_header_is_refused(tmp_path):
    from tario_clinical.slides import read_slide_manifest

    (tmp_path / "slides.csv").write_text("slide_id,patient_id,path,path\na,P1,a.tiff,b.tiff\n")
    with pytest.raises(SchemaError, match=r"\['path'\] appear more than once") as info:
        read_slide_manifest(tmp_path / "slides.csv")
    assert info.value.violations["rule"].tolist() == ["column appears more than once"]
