"""Transcript tables at their real size: finding them and reading them lazily with polars.

A CosMx or Xenium sample holds 10⁸–10⁹ transcript rows, more than fits in memory as a pandas
table. :func:`open_transcripts` finds the table of a source and returns a
:class:`TranscriptTable` whose :meth:`~TranscriptTable.parts` are polars LazyFrames, read in
batches by polars' streaming engine (:func:`~tario_clinical.expression_qc.bin_transcripts` sums
them onto the prediction grid without ever holding the table). Sources:

- a file: CSV, TSV (``.tsv``, ``.txt``), either gzipped (``.gz``), or Parquet (``.parquet``,
  ``.pq``); a folder of Parquet parts;
- a **Xenium** output folder: ``transcripts.parquet``, else ``transcripts.csv.gz`` /
  ``transcripts.csv`` (µm columns ``x_location, y_location``, gene ``feature_name`` — stored as
  bytes by some Xenium versions, read as text here — and ``qv``);
- a **CosMx** export folder: the one ``*tx_file.csv.gz`` / ``*tx_file.csv`` (coordinates in
  pixels, ``x_global_px, y_global_px``; gene ``target``);
- a **SpatialData** zarr store (``spatialdata`` itself is not needed): the Parquet files of a
  points element, ``points/<name>/points.parquet``, with the element's ``feature_key`` as the
  gene column; coordinates are the element's own ``x, y`` (its coordinate transformations are not
  applied: give the registration as ``affine``);
- a SpatialData object in memory (``spatialdata.SpatialData``, e.g. from ``spatialdata_io.xenium``):
  read from its zarr store when it is backed by one, else one dask partition of its points
  element at a time;
- a polars DataFrame or LazyFrame.

Rows are numbered from 1 (the first data row; a CSV header is not counted) in error messages.
polars is imported only when a table is opened, so ``import tario_clinical`` stays light.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import SchemaError

if TYPE_CHECKING:  # pragma: no cover
    import polars as pl

__all__ = ["TranscriptTable", "open_transcripts", "PARQUET_SUFFIXES", "CSV_SUFFIXES"]

#: file endings read as Parquet
PARQUET_SUFFIXES = (".parquet", ".pq")
#: file endings read as delimited text (optionally gzipped); ``.tsv`` / ``.txt`` are tab-separated
CSV_SUFFIXES = (".csv", ".csv.gz", ".tsv", ".tsv.gz", ".txt", ".txt.gz")

_XENIUM_FILES = ("transcripts.parquet", "transcripts.csv.gz", "transcripts.csv")
_COSMX_PATTERNS = ("*tx_file.csv.gz", "*tx_file.csv", "*tx_file.parquet")
_COSMX_NOTE = (
    "CosMx tx files give coordinates in pixels (x_global_px, y_global_px): pass "
    "x='x_global_px', y='y_global_px' and an affine that scales pixels to µm (the pixel size of "
    "your instrument, e.g. 0.12028 µm/px) and registers them to the slide"
)


@dataclass(frozen=True, eq=False)
class TranscriptTable:
    """A transcript table opened lazily (see :func:`open_transcripts`).

    Parameters
    ----------
    label
        What error messages call the table (its file or folder, or ``<polars DataFrame>``).
    layout
        ``"table"``, ``"xenium"``, ``"cosmx"``, ``"spatialdata"`` or ``"frame"``.
    columns
        Column names of the table.
    gene_column
        The gene column the layout names (SpatialData's ``feature_key``), or ``None``.
    note
        A hint added to missing-column errors (e.g. CosMx pixel coordinates).
    opener
        ``opener(dtypes)`` yields the LazyFrames of :meth:`parts`.
    chunked
        ``True`` when the rows come in several parts (dask partitions).
    """

    label: str
    layout: str
    columns: tuple[str, ...]
    gene_column: str | None
    note: str
    opener: Callable[[Mapping[str, Any]], Iterator[pl.LazyFrame]] = field(repr=False)
    chunked: bool = False

    def parts(self, dtypes: Mapping[str, Any]) -> Iterator[pl.LazyFrame]:
        """LazyFrames of the table's rows in order (one for a file or frame; one per partition
        of an in-memory dask points element), with the columns of ``dtypes`` (name → polars
        dtype) read or cast strictly to those types and no other column."""
        return self.opener(dtypes)

    def first_bad_number(self, column: str) -> tuple[int, str] | None:
        """``(row, value)`` of the first non-empty value of ``column`` that is not a number
        (rows from 1), or ``None``."""
        import polars as pl

        s = pl.col(column)
        bad = (
            s.is_not_null()
            & (s.str.strip_chars() != "")
            & s.cast(pl.Float64, strict=False).is_null()
        )
        return self._first(column, pl.String, bad)

    def first_missing(self, column: str) -> int | None:
        """Row (from 1) of the first missing (null) value of ``column``, or ``None``."""
        import polars as pl

        hit = self._first(column, pl.String, pl.col(column).is_null())
        return None if hit is None else hit[0]

    def _first(self, column: str, dtype: Any, cond: Any) -> tuple[int, str] | None:
        import polars as pl

        offset = 0
        for lf in self.parts({column: dtype}):
            lf = lf.with_row_index("__row")
            hit = lf.filter(cond).head(1).collect(engine="streaming")
            if hit.height:
                return offset + int(hit["__row"][0]) + 1, str(hit[column][0])
            if not self.chunked:
                return None
            offset += int(lf.select(pl.len()).collect(engine="streaming").item())
        return None


def _casts(lf: pl.LazyFrame, dtypes: Mapping[str, Any]) -> pl.LazyFrame:
    import polars as pl

    return lf.select([pl.col(name).cast(dt, strict=True) for name, dt in dtypes.items()])


def _csv_opener(path: Path) -> Callable[[Mapping[str, Any]], Iterator[pl.LazyFrame]]:
    sep = "\t" if path.name.lower().removesuffix(".gz").endswith((".tsv", ".txt")) else ","

    def parts(dtypes: Mapping[str, Any]) -> Iterator[pl.LazyFrame]:
        import polars as pl

        lf = pl.scan_csv(path, separator=sep, schema_overrides=dict(dtypes))
        yield lf.select(list(dtypes))

    return parts


def _parquet_opener(source: str | Path) -> Callable[[Mapping[str, Any]], Iterator[pl.LazyFrame]]:
    def parts(dtypes: Mapping[str, Any]) -> Iterator[pl.LazyFrame]:
        import polars as pl

        yield _casts(pl.scan_parquet(source), dtypes)

    return parts


def _frame_opener(lf: pl.LazyFrame) -> Callable[[Mapping[str, Any]], Iterator[pl.LazyFrame]]:
    def parts(dtypes: Mapping[str, Any]) -> Iterator[pl.LazyFrame]:
        yield _casts(lf, dtypes)

    return parts


def _schema_names(lf: pl.LazyFrame, label: str) -> tuple[str, ...]:
    import polars as pl

    try:
        return tuple(lf.collect_schema().names())
    except (pl.exceptions.PolarsError, OSError) as err:
        raise SchemaError(f"{label}: cannot read the transcript table: {err}") from err


def _open_file(
    path: Path, layout: str = "table", note: str = "", gene: str | None = None
) -> TranscriptTable:
    import polars as pl

    name = path.name.lower()
    if name.endswith(PARQUET_SUFFIXES):
        names = _schema_names(pl.scan_parquet(path), str(path))
        opener = _parquet_opener(path)
    elif name.endswith(CSV_SUFFIXES):
        opener = _csv_opener(path)
        sep = "\t" if name.removesuffix(".gz").endswith((".tsv", ".txt")) else ","
        names = _schema_names(pl.scan_csv(path, separator=sep, infer_schema=False), str(path))
    else:
        raise SchemaError(
            f"{path}: unknown transcript table format; allowed endings {list(PARQUET_SUFFIXES)} "
            f"(Parquet) and {list(CSV_SUFFIXES)} (delimited text), or a Xenium / CosMx output "
            "folder or a SpatialData .zarr store"
        )
    return TranscriptTable(str(path), layout, names, gene, note, opener)


def _open_parquet_dir(folder: Path, layout: str, gene: str | None) -> TranscriptTable:
    import polars as pl

    files = sorted(folder.glob("*.parquet"))
    if not files:
        raise SchemaError(f"{folder}: folder holds no .parquet files")
    pattern = str(folder / "*.parquet")
    names = _schema_names(pl.scan_parquet(pattern), str(folder))
    return TranscriptTable(str(folder), layout, names, gene, "", _parquet_opener(pattern))


def _zarr_attrs(folder: Path) -> dict[str, Any]:
    for name in (".zattrs", "zarr.json"):
        f = folder / name
        if f.is_file():
            try:
                d = json.loads(f.read_text())
            except (OSError, ValueError) as err:
                raise SchemaError(f"{f}: not readable as JSON: {err}") from err
            return d.get("attributes", d) if name == "zarr.json" else d
    return {}


def _open_spatialdata_store(store: Path, points: str | None) -> TranscriptTable:
    pdir = store / "points"
    keys = sorted(p.name for p in pdir.iterdir() if p.is_dir()) if pdir.is_dir() else []
    if not keys:
        raise SchemaError(f"{store}: SpatialData store has no points element (no {pdir}/<name>)")
    if points is None:
        if len(keys) > 1:
            raise SchemaError(
                f"{store}: SpatialData store has {len(keys)} points elements {keys}; pass points= "
                "to choose one"
            )
        points = keys[0]
    elif points not in keys:
        raise SchemaError(f"{store}: no points element {points!r}; the store has {keys}")
    elem = pdir / points
    attrs = _zarr_attrs(elem).get("spatialdata_attrs", {})
    gene = attrs.get("feature_key") if isinstance(attrs, Mapping) else None
    pq = elem / "points.parquet"
    if pq.is_dir():
        table = _open_parquet_dir(pq, "spatialdata", gene)
    elif pq.is_file():
        table = _open_file(pq, "spatialdata", gene=gene)
    else:
        raise SchemaError(f"{elem}: points element has no points.parquet")
    label = f"{store} (points {points!r})"
    return TranscriptTable(label, "spatialdata", table.columns, gene, "", table.opener)


def _open_folder(folder: Path, points: str | None) -> TranscriptTable:
    if (folder / "points").is_dir() and any(
        (folder / n).is_file() for n in (".zattrs", "zarr.json", ".zgroup")
    ):
        return _open_spatialdata_store(folder, points)
    for name in _XENIUM_FILES:
        if (folder / name).is_file():
            return _open_file(folder / name, "xenium")
    hits = sorted({p for pat in _COSMX_PATTERNS for p in folder.glob(pat)})
    if len(hits) > 1:
        raise SchemaError(
            f"{folder}: {len(hits)} CosMx transcript files {[p.name for p in hits]}; give one file"
        )
    if hits:
        return _open_file(hits[0], "cosmx", _COSMX_NOTE)
    if any(folder.glob("*.parquet")):
        return _open_parquet_dir(folder, "table", None)
    raise SchemaError(
        f"{folder}: no transcript table found; looked for a SpatialData store (points/), a Xenium "
        f"folder ({', '.join(_XENIUM_FILES)}), a CosMx folder ({', '.join(_COSMX_PATTERNS)}) and "
        "Parquet parts (*.parquet)"
    )


def _open_spatialdata_object(sdata: Any, points: str | None) -> TranscriptTable:
    keys = sorted(getattr(sdata, "points", {}).keys())
    if not keys:
        raise SchemaError("SpatialData object has no points element")
    if points is None:
        if len(keys) > 1:
            raise SchemaError(
                f"SpatialData object has {len(keys)} points elements {keys}; pass points= to "
                "choose one"
            )
        points = keys[0]
    elif points not in keys:
        raise SchemaError(f"SpatialData object has no points element {points!r}; it has {keys}")
    backed = getattr(sdata, "path", None)
    if backed is not None and (Path(backed) / "points" / points).is_dir():
        return _open_spatialdata_store(Path(backed), points)
    ddf = sdata.points[points]
    attrs = getattr(ddf, "attrs", {}).get("spatialdata_attrs", {})
    gene = attrs.get("feature_key") if isinstance(attrs, Mapping) else None
    label = f"SpatialData points {points!r} (in memory)"

    def parts(dtypes: Mapping[str, Any]) -> Iterator[pl.LazyFrame]:
        import polars as pl

        cols = list(dtypes)
        for i in range(ddf.npartitions):  # one partition in memory at a time
            pdf = ddf.get_partition(i)[cols].compute()
            mixed = [c for c in cols if pdf[c].dtype == object]  # e.g. numbers and text
            pdf = pdf.astype(dict.fromkeys(mixed, "string")) if mixed else pdf
            yield _casts(pl.from_pandas(pdf, include_index=False).lazy(), dtypes)

    names = tuple(str(c) for c in ddf.columns)
    return TranscriptTable(label, "spatialdata", names, gene, "", parts, chunked=True)


def open_transcripts(
    source: str | os.PathLike[str] | Any, *, points: str | None = None
) -> TranscriptTable:
    """Find and open a transcript table lazily (nothing but its schema is read).

    Parameters
    ----------
    source
        A file (CSV / TSV, gzipped or not, Parquet), a folder (Xenium output, CosMx export,
        SpatialData ``.zarr`` store, Parquet parts), a SpatialData object or a polars
        DataFrame / LazyFrame; see :mod:`tario_clinical.expression_qc.transcripts`.
    points
        Name of the points element of a SpatialData store / object holding more than one.

    Returns
    -------
    TranscriptTable

    Raises
    ------
    SchemaError
        If the source does not exist, is of an unknown format or layout, or names a points
        element it does not hold.
    """
    mod = type(source).__module__
    if mod.startswith("polars"):
        lf = source.lazy()
        label = "<polars DataFrame>" if hasattr(source, "height") else "<polars LazyFrame>"
        return TranscriptTable(
            label, "frame", _schema_names(lf, label), None, "", _frame_opener(lf)
        )
    if hasattr(source, "points") and not isinstance(source, (str, os.PathLike)):
        return _open_spatialdata_object(source, points)
    if not isinstance(source, (str, os.PathLike)):
        raise SchemaError(
            "transcripts must be a DataFrame (pandas or polars), a polars LazyFrame, a file or "
            f"folder path, or a SpatialData object; got {type(source).__name__}"
        )
    path = Path(source)
    if path.is_dir():
        if path.name == "points.parquet":
            return _open_parquet_dir(path, "spatialdata", None)
        return _open_folder(path, points)
    if not path.is_file():
        raise SchemaError(f"transcript table {path} not found")
    return _open_file(path)
