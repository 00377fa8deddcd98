"""Slide manifest (``slides.csv``): one row per slide, paths relative to the manifest."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import SchemaError
from ..tables import read_table

__all__ = ["read_slide_manifest", "MANIFEST_REQUIRED"]

MANIFEST_REQUIRED = ("slide_id", "patient_id", "path")


def _violations(rows: list[tuple[str, int | None, str, object, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["file", "row", "column", "value", "rule"])


def read_slide_manifest(
    manifest: str | os.PathLike[str] | pd.DataFrame,
    *,
    base_dir: str | os.PathLike[str] | None = None,
    allow_outside: bool = False,
) -> pd.DataFrame:
    """Read and validate a slide manifest.

    Parameters
    ----------
    manifest : path or DataFrame
        CSV/TSV/Parquet/Excel file (read by :func:`tario_clinical.tables.read_table`), or a
        DataFrame, with columns ``slide_id``, ``patient_id``,
        ``path`` and optionally ``mpp`` (µm/px override) and any others (kept).
    base_dir : path, optional
        Folder relative paths are resolved against; defaults to the manifest's folder (or the
        working directory for a DataFrame).
    allow_outside : bool
        Allow paths that resolve outside ``base_dir`` (refused by default so that a manifest
        cannot point the pipeline at arbitrary files).

    Returns
    -------
    pandas.DataFrame
        Columns ``slide_id`` (str), ``patient_id`` (str), ``path`` (absolute str), ``mpp``
        (float, NaN when absent) then the other columns, in file order; the 1-based file row
        number is kept in ``row``.

    Raises
    ------
    TableError
        The file is missing or cannot be read (a :class:`SchemaError` too).
    SchemaError
        Listing every violation (missing column, blank or duplicate ``slide_id``, blank
        ``patient_id`` or ``path``, non-positive ``mpp``, path outside ``base_dir``), each with
        file, row, column and value.
    """
    if isinstance(manifest, pd.DataFrame):
        df = manifest.copy()
        fname = "<DataFrame>"
        base = Path(base_dir) if base_dir is not None else Path.cwd()
    else:
        p = Path(manifest)
        fname = str(p)
        df = read_table(p, what="slide manifest")
        base = Path(base_dir) if base_dir is not None else p.parent
    base = base.resolve()
    df.columns = [str(c).strip() for c in df.columns]
    twice = sorted({c for c in df.columns if list(df.columns).count(c) > 1})
    if twice:
        raise SchemaError(
            f"slide manifest {fname}: column(s) {twice} appear more than once in the header; "
            "keep one of each",
            _violations([(fname, 1, c, c, "column appears more than once") for c in twice]),
        )
    missing = [c for c in MANIFEST_REQUIRED if c not in df.columns]
    if missing:
        raise SchemaError(
            f"slide manifest {fname}: missing column(s) {missing}; required columns are "
            f"{list(MANIFEST_REQUIRED)} (optional: mpp, stain, timepoint, specimen); "
            f"found {list(df.columns)}",
            _violations([(fname, None, c, None, "required column") for c in missing]),
        )
    bad: list[tuple[str, int | None, str, object, str]] = []
    rows = np.arange(len(df)) + 2  # header is file row 1
    out = df.copy()
    for col in MANIFEST_REQUIRED:
        vals = out[col].astype("string").str.strip()
        blank = vals.isna() | (vals == "")
        for r in rows[blank.to_numpy()]:
            bad.append((fname, int(r), col, "", "must not be blank"))
        out[col] = vals
    sid = out["slide_id"]
    unsafe = sid.notna() & (sid.str.contains(r"[\x00-\x1f/\\]", regex=True) | sid.isin([".", ".."]))
    for r, v in zip(rows[unsafe.fillna(False).to_numpy(bool)], sid[unsafe.fillna(False)]):
        bad.append(
            (fname, int(r), "slide_id", v, "must not contain '/', '\\' or control characters")
        )
    dup = out["slide_id"].duplicated(keep=False) & out["slide_id"].notna() & (out["slide_id"] != "")
    for r, v in zip(rows[dup.to_numpy()], out.loc[dup, "slide_id"]):
        bad.append((fname, int(r), "slide_id", v, "must be unique"))
    if "mpp" in out.columns:
        raw = out["mpp"]
        txt = raw.astype("string").str.strip()
        num = pd.to_numeric(txt.replace("", pd.NA), errors="coerce")
        notnum = txt.notna() & (txt != "") & num.isna()
        nonpos = num.notna() & ~(num > 0)
        for r, v in zip(rows[(notnum | nonpos).to_numpy()], raw[(notnum | nonpos)]):
            bad.append((fname, int(r), "mpp", v, "must be a positive number (µm/px) or blank"))
        out["mpp"] = num.astype(float)
    else:
        out["mpp"] = np.nan
    paths = []
    for r, v in zip(rows, out["path"]):
        if v is pd.NA or v is None or v == "":
            paths.append("")
            continue
        q = Path(str(v))
        full = (q if q.is_absolute() else base / q).resolve()
        if not allow_outside and not full.is_relative_to(base):
            bad.append(
                (fname, int(r), "path", v, f"must stay inside {base} (pass allow_outside=True)")
            )
        paths.append(str(full))
    out["path"] = paths
    if bad:
        vio = _violations(bad)
        head = "; ".join(
            f"row {r}, column {c!r}: value {v!r} {rule}" for _, r, c, v, rule in bad[:5]
        )
        more = f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""
        raise SchemaError(f"slide manifest {fname}: {len(bad)} problem(s): {head}{more}", vio)
    out["slide_id"] = out["slide_id"].astype(str)
    out["patient_id"] = out["patient_id"].astype(str)
    out.insert(0, "row", rows)
    first = ["slide_id", "patient_id", "path", "mpp"]
    return out[first + [c for c in out.columns if c not in first]].reset_index(drop=True)
