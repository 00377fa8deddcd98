"""Data contracts: load the JSON Schemas in ``data_schemas/`` and validate tables against them.

The schemas are JSON Schema 2020-12 documents describing one row of a table (``items``) plus a
few table-level extension keywords (``x-unique``, ``x-genotype-columns``,
``x-genotype-spellings``). Validation is vectorised per column and reports **every** violation at
once as rows of ``(file, row, column, value, rule)``.

Row numbers are 1-based data rows: row 1 is the first patient; in a CSV file with a header it is
line 2 (the message gives both).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import SchemaError

__all__ = [
    "SCHEMA_NAMES",
    "MISSING_STRINGS",
    "load_schema",
    "schema_path",
    "check_table",
    "validate_table",
    "format_violations",
    "is_missing",
    "to_pandas",
    "validate_representations",
    "read_representations",
]

SCHEMA_NAMES = ("clinical", "slide_manifest", "model_card", "representations", "results")

#: cell values read as "missing" in every table (case-insensitive, after stripping blanks)
MISSING_STRINGS = frozenset({"", "na", "n/a", "nan", "none", "null", "<na>"})

_VIOLATION_COLUMNS = ["file", "row", "column", "value", "rule"]


def _schema_dirs() -> list[Path]:
    here = Path(__file__).resolve().parent
    return [here / "data_schemas", here.parent / "data_schemas"]


def schema_path(name: str) -> Path:
    """Path of the JSON Schema called ``name`` (one of :data:`SCHEMA_NAMES`)."""
    if name not in SCHEMA_NAMES:
        raise SchemaError(f"unknown schema {name!r}; expected one of {', '.join(SCHEMA_NAMES)}")
    for folder in _schema_dirs():
        candidate = folder / f"{name}.schema.json"
        if candidate.is_file():
            return candidate
    raise SchemaError(
        f"schema file {name}.schema.json not found in {', '.join(map(str, _schema_dirs()))}; "
        "reinstall tario-clinical"
    )


@cache
def _load_schema_cached(name: str) -> str:
    return schema_path(name).read_text(encoding="utf-8")


def load_schema(name: str) -> dict[str, Any]:
    """Return the parsed JSON Schema ``name`` (a fresh copy each call).

    Examples
    --------
    >>> load_schema("clinical")["items"]["required"]
    ['patient_id']
    """
    return json.loads(_load_schema_cached(name))


def to_pandas(table: Any) -> pd.DataFrame:
    """Return ``table`` as a pandas DataFrame (accepts pandas or polars)."""
    if isinstance(table, pd.DataFrame):
        return table
    module = type(table).__module__
    if module.startswith("polars"):
        return table.to_pandas()
    raise SchemaError(
        f"expected a pandas or polars DataFrame, got {type(table).__name__}; "
        "pass a table or a path to a CSV/TSV/Parquet/Excel file"
    )


def is_missing(values: pd.Series) -> pd.Series:
    """Boolean mask of cells that count as missing (NaN/None/NA or a missing spelling)."""
    mask = values.isna()
    obj = values[~mask]
    if len(obj) and (obj.dtype == object or pd.api.types.is_string_dtype(obj)):
        lowered = obj.astype(str).str.strip().str.lower()
        mask.loc[~mask] = lowered.isin(MISSING_STRINGS).to_numpy()
    return mask


def _display(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _resolve(prop: Mapping[str, Any], schema: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = prop.get("$ref")
    if ref and ref.startswith("#/$defs/"):
        return schema["$defs"][ref.removeprefix("#/$defs/")]
    return prop


def _types(prop: Mapping[str, Any]) -> set[str]:
    t = prop.get("type", [])
    return {t} if isinstance(t, str) else set(t)


class _Collector:
    def __init__(self, source: str) -> None:
        self.source = source
        self.rows: list[tuple[str, int | None, str | None, Any, str]] = []

    def add(
        self, positions: Iterable[int] | None, column: str | None, values: Any, rule: str
    ) -> None:
        if positions is None:
            self.rows.append((self.source, None, column, values, rule))
            return
        for pos, value in zip(positions, values, strict=True):
            self.rows.append((self.source, int(pos) + 1, column, value, rule))

    def frame(self) -> pd.DataFrame:
        frame = pd.DataFrame(self.rows, columns=_VIOLATION_COLUMNS)
        order = pd.to_numeric(frame["row"], errors="coerce").fillna(0).astype(int)
        return frame.iloc[np.argsort(order.to_numpy(), kind="stable")].reset_index(drop=True)


def _coerce_numeric(values: pd.Series, missing: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Numbers from ``values``; second item marks present cells that are not numbers."""
    if pd.api.types.is_bool_dtype(values):
        numeric = values.astype(float)
    elif pd.api.types.is_numeric_dtype(values):
        numeric = values.astype(float)
    else:
        cleaned = values.where(~missing, None)
        cleaned = cleaned.map(lambda v: v.strip() if isinstance(v, str) else v)
        numeric = pd.to_numeric(cleaned, errors="coerce").astype(float)
    bad = ~missing & numeric.isna()
    numeric = numeric.where(~missing, np.nan)
    return numeric, bad


def _check_column(
    name: str,
    values: pd.Series,
    prop: Mapping[str, Any],
    out: _Collector,
) -> pd.Series:
    """Validate and coerce one column; return the coerced column."""
    types = _types(prop)
    missing = is_missing(values)
    nullable = "null" in types or not types
    raw = values.to_numpy()

    def flag(mask: pd.Series, rule: str, *, with_value: bool = True) -> None:
        """Record every row where ``mask`` holds, with its raw cell value."""
        if mask.any():
            idx = np.flatnonzero(mask.to_numpy())
            out.add(idx, name, raw[idx] if with_value else [None] * len(idx), rule)

    if not nullable:
        flag(missing, "required value is missing", with_value=False)

    if types & {"number", "integer"} and not types & {"string", "boolean"}:
        integer = "integer" in types and "number" not in types
        numeric, bad = _coerce_numeric(values, missing)
        flag(bad, f"must be {'an integer' if integer else 'a number'}")
        # JSON numbers are finite: +-inf (e.g. "inf", "Infinity" or np.inf) is rejected like a
        # value out of range, and is not checked against the range rules again
        infinite = ~numeric.isna() & np.isinf(numeric)
        flag(infinite, "must be a finite number (infinite values are not allowed)")
        present = ~numeric.isna() & ~infinite
        if integer:
            flag(present & (numeric != np.round(numeric)), "must be a whole number")
        for key, op, text in (
            ("minimum", np.less, ">="),
            ("exclusiveMinimum", np.less_equal, ">"),
            ("maximum", np.greater, "<="),
            ("exclusiveMaximum", np.greater_equal, "<"),
        ):
            if key in prop:
                flag(present & op(numeric.fillna(0.0), prop[key]), f"must be {text} {prop[key]}")
        if "enum" in prop:
            allowed = [v for v in prop["enum"] if v is not None]
            flag(present & ~numeric.isin(allowed), f"must be one of {', '.join(map(str, allowed))}")
        if integer:  # an infinite cell (already flagged) has no integer value
            return numeric.where(~infinite, np.nan).round().astype("Int64")
        return numeric

    # string-like column
    text = values.map(lambda v: v.strip() if isinstance(v, str) else v)
    text = text.where(~missing, None)
    present = ~missing
    if "enum" in prop:
        allowed = [v for v in prop["enum"] if v is not None]
        if prop.get("x-case-insensitive"):
            canon = {str(a).lower(): a for a in allowed}
            lowered = text.map(lambda v: str(v).lower() if v is not None else None)
            ok = lowered.isin(list(canon))
            text = lowered.map(lambda v: canon.get(v) if v is not None else None)
        else:
            ok = text.astype(object).isin(allowed)
        flag(present & ~ok, f"must be one of {', '.join(map(str, allowed))}")
    if "string" in types and "enum" not in prop:
        as_str = text.map(lambda v: str(v) if v is not None else None)
        if "minLength" in prop:
            flag(
                present & (as_str.str.len() < prop["minLength"]),
                f"must have at least {prop['minLength']} characters",
            )
        if "maxLength" in prop:
            flag(
                present & (as_str.str.len() > prop["maxLength"]),
                f"must have at most {prop['maxLength']} characters",
            )
        if "pattern" in prop:
            rx = re.compile(prop["pattern"])
            matches = as_str.map(lambda v: bool(rx.search(v)) if v is not None else True)
            flag(
                present & ~matches.astype(bool),
                "contains characters that are not allowed (control characters or path separators)",
            )
        text = as_str
    return text.astype(object).where(text.notna(), None)


def _genotype_lookup(schema: Mapping[str, Any]) -> dict[str, str]:
    lookup: dict[str, str] = {}
    for canon, spellings in schema.get("x-genotype-spellings", {}).items():
        for s in spellings:
            lookup[s.lower()] = canon
    return lookup


def _check_genotype(
    name: str, values: pd.Series, lookup: Mapping[str, str], out: _Collector
) -> pd.Series:
    def norm(v: Any) -> str | None:
        if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA:
            return "missing"
        if isinstance(v, bool | np.bool_):
            return "mutant" if v else "wild-type"
        if isinstance(v, int | np.integer | float | np.floating):
            key = str(float(v))
        else:
            key = str(v).strip().lower()
        return lookup.get(key)

    canon = values.map(norm)
    bad = canon.isna()
    if bad.any():
        idx = np.flatnonzero(bad.to_numpy())
        mut = ", ".join(sorted({k for k, v in lookup.items() if v == "mutant" and k})[:6])
        wt = ", ".join(sorted({k for k, v in lookup.items() if v == "wild-type" and k})[:6])
        out.add(
            idx,
            name,
            values.to_numpy()[idx],
            f"genotype must be mutant ({mut}, ...), wild-type ({wt}, ...) or missing (blank, NA, unknown)",
        )
    result = canon.map(lambda c: None if c in (None, "missing") else c)
    return result.astype(object)


def check_table(
    table: Any,
    schema: str | Mapping[str, Any],
    *,
    source: str | None = None,
    genotype_columns: Iterable[str] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Validate ``table`` against a table schema without raising.

    Parameters
    ----------
    table
        pandas or polars DataFrame, one row per record.
    schema
        Schema name (``"clinical"``, ``"slide_manifest"``) or a parsed schema dict.
    source
        Name used in the ``file`` column of violations (a file name, or ``"<DataFrame>"``).
    genotype_columns
        Extra columns to validate as genotype calls, beyond the schema's ``x-genotype-columns``.

    Returns
    -------
    coerced : DataFrame
        A copy of the table with validated columns coerced to their types (strings stripped,
        numbers as float, integers as ``Int64``, genotypes as ``"mutant"``/``"wild-type"``/None).
        Extra columns are kept unchanged.
    violations : DataFrame
        Columns ``file, row, column, value, rule``; empty when the table is valid.
    """
    sch = load_schema(schema) if isinstance(schema, str) else dict(schema)
    df = to_pandas(table).copy()
    df.columns = [str(c).strip() for c in df.columns]
    df = df.reset_index(drop=True)
    out = _Collector(source or "<DataFrame>")
    items = sch.get("items", {})
    props: Mapping[str, Any] = items.get("properties", {})

    dup_cols = pd.Index(df.columns)[pd.Index(df.columns).duplicated()].unique()
    for col in dup_cols:
        out.add(None, col, None, "column appears more than once in the header")
    if len(dup_cols):
        return df, out.frame()

    for col in items.get("required", []):
        if col not in df.columns:
            out.add(
                None,
                col,
                None,
                f"required column is missing (columns found: {', '.join(map(str, df.columns[:12]))})",
            )

    gene_set = set(sch.get("x-genotype-columns", [])) | set(genotype_columns or [])
    lookup = _genotype_lookup(sch)
    for col in df.columns:
        if col in gene_set:
            df[col] = _check_genotype(col, df[col], lookup, out)
        elif col in props:
            df[col] = _check_column(col, df[col], _resolve(props[col], sch), out)

    for col in sch.get("x-unique", []):
        if col in df.columns:
            keys = df[col]
            present = ~is_missing(keys)
            dup = present & keys.duplicated(keep=False)
            if dup.any():
                first = {}
                for pos, key in zip(np.flatnonzero(dup.to_numpy()), keys[dup], strict=True):
                    if key in first:
                        out.add(
                            [pos], col, [key], f"duplicate {col} (first at row {first[key] + 1})"
                        )
                    else:
                        first[key] = pos
    return df, out.frame()


def format_violations(violations: pd.DataFrame, *, limit: int = 50, header_lines: int = 1) -> str:
    """Human-readable lines for a violations table (file, row, column, value, rule).

    Parameters
    ----------
    violations : DataFrame
        Columns ``file, row, column, value, rule`` (as returned by :func:`check_table`).
    limit : int, default 50
        At most this many violations are listed; a final line counts the others.
    header_lines : int, default 1
        Added to ``row`` to give the line number in the file (``row N (line N + header_lines)``);
        ``0`` shows the row only.

    Returns
    -------
    str
        One indented ``- file, row ..., column ..., value ...: rule`` line per violation, joined
        by newlines.
    """
    lines = []
    for rec in violations.head(limit).itertuples(index=False):
        where = [str(rec.file)]
        if rec.row is not None and not pd.isna(rec.row):
            row = int(rec.row)
            where.append(f"row {row} (line {row + header_lines})" if header_lines else f"row {row}")
        if rec.column is not None:
            where.append(f"column {rec.column!s}")
        value = (
            ""
            if rec.value is None or (isinstance(rec.value, float) and np.isnan(rec.value))
            else f", value {_display(rec.value)}"
        )
        lines.append(f"  - {', '.join(where)}{value}: {rec.rule}")
    if len(violations) > limit:
        lines.append(f"  ... and {len(violations) - limit} more (see SchemaError.violations)")
    return "\n".join(lines)


def validate_table(
    table: Any,
    schema: str | Mapping[str, Any],
    *,
    source: str | None = None,
    genotype_columns: Iterable[str] | None = None,
) -> pd.DataFrame:
    """Validate ``table`` and return the coerced copy, or raise :class:`SchemaError` listing every problem.

    Parameters
    ----------
    table : DataFrame
        pandas or polars DataFrame, one row per record.
    schema : str or dict
        Schema name (``"clinical"``, ``"slide_manifest"``) or a parsed schema dict.
    source : str, optional
        Name used in the ``file`` column of violations and in the error message (a file name;
        default ``"<DataFrame>"``).
    genotype_columns : iterable of str, optional
        Extra columns to validate as genotype calls, beyond the schema's ``x-genotype-columns``.

    Returns
    -------
    DataFrame
        A copy of the table with validated columns coerced to their types (see
        :func:`check_table`); extra columns are kept unchanged.

    Raises
    ------
    SchemaError
        With ``.violations`` (DataFrame ``file, row, column, value, rule``) and a message
        listing each violation with its row, column and value.

    Examples
    --------
    >>> import pandas as pd
    >>> validate_table(pd.DataFrame({"patient_id": ["P1", "P2"], "os_time": ["3.5", ""]}), "clinical")["os_time"].tolist()
    [3.5, nan]
    """
    coerced, violations = check_table(
        table, schema, source=source, genotype_columns=genotype_columns
    )
    if len(violations):
        title = schema if isinstance(schema, str) else schema.get("title", "table")
        n = len(violations)
        raise SchemaError(
            f"{source or '<DataFrame>'}: {n} problem{'s' if n != 1 else ''} against the {title} schema:\n"
            + format_violations(violations),
            violations=violations,
        )
    return coerced


def validate_representations(adata: Any, *, source: str | None = None) -> Any:
    """Check an AnnData of representations against ``representations.schema.json``.

    Every problem is reported at once: duplicate or empty ids, duplicate feature names,
    non-numeric ``X``, NaN/inf values (with the first rows and features that hold them), a
    provenance record from a newer tario_clinical.

    Parameters
    ----------
    adata : AnnData
        Rows are patients or slides (``obs_names`` = ids), ``X`` the features (dense or sparse);
        ``uns["tario_clinical"]``, if present, is the provenance record.
    source : str, optional
        Name used in the violations' ``file`` column and in the message (default
        ``"<representations>"``).

    Returns
    -------
    AnnData
        The same object (unchanged).

    Raises
    ------
    SchemaError
        With ``.violations`` (``file, row, column, value, rule``); ``row`` is the 1-based obs row.
    """
    src = source or "<representations>"
    out = _Collector(src)
    obs = pd.Index(adata.obs_names.astype(str))
    var = pd.Index(adata.var_names.astype(str))
    if adata.n_obs == 0 or adata.n_vars == 0:
        out.add(
            None,
            None,
            f"shape {adata.shape}",
            "representations must have at least one row and one feature",
        )
    dup = obs.duplicated(keep="first")
    if dup.any():
        idx = np.flatnonzero(dup)
        out.add(
            idx,
            "obs_names",
            obs[idx].tolist(),
            "duplicate id (each patient or slide must appear once)",
        )
    empty = obs.str.strip() == ""
    if empty.any():
        idx = np.flatnonzero(empty)
        out.add(idx, "obs_names", obs[idx].tolist(), "empty id")
    vdup = var.duplicated(keep="first")
    if vdup.any():
        names = var[vdup].unique()[:10].tolist()
        out.add(None, "var_names", ", ".join(names), "duplicate feature names")
    x = adata.X
    if hasattr(x, "toarray") and not isinstance(x, np.ndarray):
        data = x.data
        dense_rows = None
    else:
        data = np.asarray(x)
        dense_rows = data
    if not np.issubdtype(np.asarray(data).dtype, np.number):
        out.add(None, "X", str(np.asarray(data).dtype), "X must be numeric")
    else:
        finite = np.isfinite(data)
        if not finite.all():
            if dense_rows is not None:
                bad_rows = np.flatnonzero(~np.isfinite(dense_rows).all(axis=1))
                bad_cols = np.flatnonzero(~np.isfinite(dense_rows).all(axis=0))
                feats = ", ".join(var[bad_cols[:5]].tolist()) + (
                    " ..." if len(bad_cols) > 5 else ""
                )
                for r in bad_rows[:20]:
                    out.add([r], "X", [f"id {obs[r]}"], f"NaN or inf values (features {feats})")
                if len(bad_rows) > 20:
                    out.add(None, "X", f"{len(bad_rows)} rows", "more rows with non-finite values")
            else:
                out.add(
                    None, "X", f"{int((~finite).sum())} values", "non-finite values (NaN or inf)"
                )
    prov = adata.uns.get("tario_clinical") if hasattr(adata, "uns") else None
    if isinstance(prov, Mapping):
        version = prov.get("schema_version", 1)
        try:
            newer = int(version) > 1
        except (TypeError, ValueError):
            newer = True
        if newer:
            out.add(
                None,
                "uns.tario_clinical.schema_version",
                version,
                "written by a newer tario_clinical; upgrade with `pip install -U tario-clinical`",
            )
    violations = out.frame()
    if len(violations):
        n = len(violations)
        raise SchemaError(
            f"{src}: {n} problem{'s' if n != 1 else ''} in the representations:\n"
            + format_violations(violations, header_lines=0),
            violations=violations,
        )
    return adata


def read_representations(path: str | Path) -> Any:
    """Read and validate ``representations.h5ad`` (errors name the file)."""
    import anndata as ad

    p = Path(path)
    if not p.is_file():
        raise SchemaError(f"{p}: representations file not found")
    try:
        adata = ad.read_h5ad(p)
    except Exception as err:  # h5py/anndata raise many types for a damaged file
        raise SchemaError(
            f"{p}: cannot be read as an AnnData .h5ad file ({type(err).__name__}: {err})"
        ) from err
    return validate_representations(adata, source=str(p))
