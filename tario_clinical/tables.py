"""Reading tables: the one reader of clinical tables, slide manifests, score and sample tables.

:func:`read_table` reads CSV, TSV (``.tsv``, ``.tab``, ``.txt``), Parquet (``.parquet``,
``.pq``) and Excel (``.xlsx``, ``.xlsm``, ``.xls``) files, every failure as one error type,
:class:`~tario_clinical.errors.TableError`, whose message names the file and says how to fix it.
Text tables are read cell by cell as strings (a UTF-8 byte-order mark is dropped, ``NA`` stays
the string ``"NA"`` until a validator decides it is missing, leading zeros of ids survive), and
a duplicated header stays duplicated (pandas would rename the second ``x`` to ``x.1`` and hide
it) so validators can report it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from .errors import TableError

__all__ = ["read_table", "TABLE_SUFFIXES", "TableError"]

_SEPARATORS = {".csv": ",", ".tsv": "\t", ".tab": "\t", ".txt": "\t"}
_PARQUET = (".parquet", ".pq")
_EXCEL = (".xlsx", ".xlsm", ".xls")
#: file endings :func:`read_table` reads
TABLE_SUFFIXES = (*_SEPARATORS, *_PARQUET, *_EXCEL)


def _header_from_first_row(raw: pd.DataFrame) -> pd.DataFrame:
    if len(raw) == 0:
        return raw
    header = [str(c).strip() for c in raw.iloc[0].tolist()]
    body = raw.iloc[1:].reset_index(drop=True)
    body.columns = header
    return body


def read_table(path: str | os.PathLike[str], *, what: str | None = None) -> pd.DataFrame:
    """Read a CSV/TSV/Parquet/Excel table, text cells as strings, losing nothing.

    Parameters
    ----------
    path : str or PathLike
        The file; its ending picks the format (:data:`TABLE_SUFFIXES`).
    what : str, optional
        What the table is (``"slide manifest"``), put before the file name in messages.

    Returns
    -------
    pandas.DataFrame
        One column per header cell (duplicates kept, names stripped of blanks); text formats
        give ``str`` cells (empty string where blank), Parquet its own dtypes.

    Raises
    ------
    TableError
        The file does not exist or is not a file, has an unsupported ending, is not UTF-8
        text, cannot be parsed, or has no columns.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = pathlib.Path(d) / "t.csv"
    ...     _ = p.write_text("\\ufeffpatient_id,age\\n007,NA\\n", encoding="utf-8")
    ...     read_table(p).to_dict(orient="records")
    [{'patient_id': '007', 'age': 'NA'}]
    """
    p = Path(path)
    name = f"{what} {p}" if what else str(p)
    if not p.exists():
        raise TableError(f"{name}: file not found")
    if not p.is_file():
        raise TableError(f"{name}: is not a file")
    suffix = p.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise TableError(
            f"{name}: unsupported table format {suffix!r}; use .csv, .tsv, .parquet or .xlsx"
        )
    try:
        if suffix in _SEPARATORS:
            # header=None keeps a duplicated header visible (pandas would rename it "x.1")
            raw = pd.read_csv(
                p,
                sep=_SEPARATORS[suffix],
                dtype=str,
                keep_default_na=False,
                encoding="utf-8-sig",
                header=None,
            )
            df = _header_from_first_row(raw)
        elif suffix in _PARQUET:
            df = pd.read_parquet(p)
            df.columns = [str(c).strip() for c in df.columns]
        else:
            df = _header_from_first_row(
                pd.read_excel(p, dtype=str, keep_default_na=False, header=None)
            )
    except UnicodeDecodeError as err:
        raise TableError(
            f"{name}: not UTF-8 text ({err.reason} at byte {err.start}); save it as UTF-8 CSV"
        ) from err
    except pd.errors.EmptyDataError as err:
        raise TableError(f"{name}: the table has no columns (empty file?)") from err
    except Exception as err:  # pandas/pyarrow/openpyxl raise many types
        raise TableError(f"{name}: cannot be read as a {suffix.lstrip('.')} table: {err}") from err
    if df.shape[1] == 0:
        raise TableError(f"{name}: the table has no columns (empty file?)")
    return df
