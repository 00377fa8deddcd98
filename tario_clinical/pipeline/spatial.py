"""Spatial-transcriptomics inputs of the ``expression_qc:`` block: the sample table, read lazily."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..config import StudyConfig
from ..errors import SchemaError

__all__ = ["read_spatial_samples", "iter_spatial_samples", "expression_qc_result"]

log = logging.getLogger("tario_clinical")


def read_spatial_samples(
    path: str | Path, *, tile_um: float | None = None, mpp: float | None = None
) -> list[Any]:
    """Read a spatial-transcriptomics sample table into lazily loaded ``SpatialSample`` specs.

    Validates the whole table first (columns, unique ids, files exist, affine numbers) and raises
    one :class:`SchemaError` naming every bad row; the AnnData/tables are opened one sample at a
    time by :func:`iter_spatial_samples`.

    Parameters
    ----------
    path : str or Path
        Sample table (any format :func:`~tario_clinical.cohort.read_table` reads) with columns
        ``sample_id``, ``predicted``, ``measured`` and optionally ``affine`` (6 or 9 numbers,
        row-major 2 × 3 or 3 × 3) and ``cancer_type``; file paths are relative to the table's
        folder and may not leave it.
    tile_um, mpp : float, optional
        Passed to every ``SpatialSample`` (used when the prediction grid is inferred from the
        tiles).

    Returns
    -------
    list of dict
        One spec per row: ``sample_id, cancer_type, affine, predicted, measured, tile_um, mpp``.

    Raises
    ------
    SchemaError
        Listing every bad row of the table.
    """
    from ..cohort import read_table
    from ..schemas import format_violations

    p = Path(path)
    table = read_table(p)
    rows: list[tuple[str, int | None, str | None, Any, str]] = []
    for col in ("sample_id", "predicted", "measured"):
        if col not in table.columns:
            rows.append(
                (
                    str(p),
                    None,
                    col,
                    None,
                    f"required column is missing (columns found: {', '.join(table.columns)})",
                )
            )
    if rows:
        v = pd.DataFrame(rows, columns=["file", "row", "column", "value", "rule"])
        raise SchemaError(f"{p}: spatial sample table:\n" + format_violations(v), violations=v)
    base = p.resolve().parent
    specs = []
    seen: dict[str, int] = {}
    for i, rec in enumerate(table.to_dict("records"), start=1):
        sid = str(rec["sample_id"]).strip()
        if not sid:
            rows.append((str(p), i, "sample_id", rec["sample_id"], "required value is missing"))
        elif sid in seen:
            rows.append(
                (str(p), i, "sample_id", sid, f"duplicate sample_id (first at row {seen[sid]})")
            )
        seen.setdefault(sid, i)
        files = {}
        for col in ("predicted", "measured"):
            raw = str(rec[col]).strip()
            full = (base / raw).resolve()
            found = full.exists() if col == "measured" else full.is_file()  # Xenium/CosMx folders
            if not raw or not found:
                rows.append((str(p), i, col, raw, f"file not found ({full})"))
            elif not full.is_relative_to(base):
                rows.append((str(p), i, col, raw, f"path leaves the table's folder {base}"))
            files[col] = full
        affine = None
        text = str(rec.get("affine", "") or "").strip()
        if text and text.lower() not in ("na", "nan", "none"):
            try:
                nums = [float(t) for t in text.replace(",", " ").split()]
            except ValueError:
                nums = []
            if len(nums) not in (6, 9):
                rows.append(
                    (
                        str(p),
                        i,
                        "affine",
                        text,
                        "affine must be 6 or 9 numbers (row-major 2x3 or 3x3)",
                    )
                )
            else:
                affine = np.asarray(nums).reshape(-1, 3)
        ctype = rec.get("cancer_type")
        specs.append(
            {
                "sample_id": sid,
                "cancer_type": None if ctype in (None, "") else str(ctype),
                "affine": affine,
                **files,
            }
        )
    if rows:
        v = pd.DataFrame(rows, columns=["file", "row", "column", "value", "rule"])
        raise SchemaError(
            f"{p}: {len(rows)} problem(s) in the spatial sample table:\n" + format_violations(v),
            violations=v,
        )
    return [dict(s, tile_um=tile_um, mpp=mpp) for s in specs]


def iter_spatial_samples(specs: list[dict[str, Any]]) -> Any:
    """Yield ``SpatialSample`` objects, reading each sample's files only when it is reached."""
    import anndata as ad

    from ..expression_qc import SpatialSample

    for spec in specs:
        predicted = ad.read_h5ad(spec["predicted"])
        mpath = spec["measured"]
        # a transcript table (file, Xenium / CosMx folder, SpatialData .zarr) stays a path:
        # bin_transcripts streams it instead of reading 10^8 rows into memory
        measured = ad.read_h5ad(mpath) if mpath.suffix.lower() == ".h5ad" else mpath
        yield SpatialSample(
            sample_id=spec["sample_id"],
            predicted=predicted,
            measured=measured,
            cancer_type=spec["cancer_type"],
            affine=spec["affine"],
            tile_um=spec["tile_um"],
            mpp=spec["mpp"],
        )


def expression_qc_result(cfg: StudyConfig) -> Any:
    from .. import expression_qc

    q = cfg.expression_qc
    if q is None:
        return None
    specs = read_spatial_samples(q.samples, tile_um=q.tile_um, mpp=q.mpp)
    log.info("expression QC over %d spatial samples", len(specs))
    return expression_qc.evaluate_expression(iter_spatial_samples(specs), kind=q.adjacency)
