"""The encoder's run folder, shared by the DataLoader engine and the Ray runner.

Both engines (:mod:`~tario_clinical.encode.engine` and :mod:`~tario_clinical.encode.ray_runner`)
prepare slides (tissue mask, tile grid, input hash), claim the output folder for one model and
tiling (``run.json`` fingerprint), resume finished slides, write each slide's sums atomically
and, at the end, pool slides to patients and write the AnnData outputs. That bookkeeping lives
here, once, so that either engine can resume the other's folder.

Output folder layout::

    run.json                     fingerprint of model + tiling (a rerun must match it)
    slides/<slide_id>.npz        per-slide result, written atomically (resume unit)
    tiles/<slide_id>.h5ad        optional tile-level output (float16, obsm["spatial"])
    slides.h5ad                  slides x features
    representations.h5ad         patients x features, provenance in uns["tario_clinical"]
    exclusions.csv               patient_id, slide_id, analysis, reason
"""

from __future__ import annotations

import dataclasses
import html
import io
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from ..errors import EncoderError, OutputError, SlideError
from ..provenance import (
    atomic_write,
    atomic_write_h5ad,
    atomic_write_text,
    provenance_record,
    sha256_bytes,
)
from ..slides import detect_tissue, open_slide, slide_files, tile_grid

__all__ = [
    "ANALYSIS",
    "EXCLUSION_COLUMNS",
    "FUSIONS",
    "EncodeResult",
    "SlideJob",
    "assemble_outputs",
    "check_manifest",
    "claim_output",
    "clean_stale_tmp",
    "exclusion",
    "finish_slide",
    "h5_safe",
    "input_sha256",
    "load_slide_result",
    "pool_patients",
    "prepare_slide",
    "prepare_slides",
    "run_fingerprint",
    "save_slide_npz",
    "slide_result_path",
    "start_run",
    "tiling_settings",
    "write_tile_outputs",
]

logger = logging.getLogger(__name__)

FUSIONS = ("early", "late")
EXCLUSION_COLUMNS = ["patient_id", "slide_id", "analysis", "reason"]
ANALYSIS = "encode"


# ------------------------------------------------------------------------------------------------
# results


@dataclass(frozen=True)
class EncodeResult:
    """What :func:`encode_slides` produced.

    Attributes
    ----------
    representations : anndata.AnnData
        Patients x features (mean predicted expression), ``layers["sd"]`` tile-level SD,
        provenance in ``uns["tario_clinical"]``.
    slides : anndata.AnnData
        Slides x features with ``obs["patient_id"]`` and ``obs["n_tiles"]``.
    exclusions : pandas.DataFrame
        ``patient_id, slide_id, analysis, reason``.
    out_dir : pathlib.Path
    n_tiles : int
        Tiles encoded in this run (0 when everything was resumed).
    seconds : float
        Wall time of the tile loop in this run.
    num_workers : int
        DataLoader worker processes used.
    batch_size : int
        Tiles per batch used.
    """

    representations: Any
    slides: Any
    exclusions: pd.DataFrame
    out_dir: Path
    n_tiles: int
    seconds: float
    num_workers: int = 0
    batch_size: int = 0

    @property
    def tiles_per_second(self) -> float:
        return self.n_tiles / self.seconds if self.seconds > 0 else float("nan")

    def _repr_html_(self) -> str:
        n_p, n_f = self.representations.shape
        rows = {
            "patients": n_p,
            "features": n_f,
            "slides": self.slides.n_obs,
            "excluded slides": len(self.exclusions),
            "tiles this run": self.n_tiles,
            "tiles/s": f"{self.tiles_per_second:.1f}",
            "output": str(self.out_dir),
        }
        body = "".join(
            f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
            for k, v in rows.items()
        )
        return f"<table>{body}</table>"


# ------------------------------------------------------------------------------------------------
# slides, run folder, per-slide results


@dataclass(frozen=True)
class SlideJob:
    pos: int
    slide_id: str
    patient_id: str
    path: str
    mpp: float | None
    level: int
    read_px: int
    tile_px: int
    xy: np.ndarray  # (n, 2) int64 level-0 top-left
    grid: pd.DataFrame
    tiling: dict[str, Any]
    input_sha256: str


def exclusion(job: SlideJob, failed: str) -> dict[str, str]:
    """The ``exclusions.csv`` row of a slide whose tiles failed to read or encode."""
    return {
        "patient_id": job.patient_id,
        "slide_id": job.slide_id,
        "analysis": ANALYSIS,
        "reason": f"slide {job.slide_id!r} ({job.path}): {failed}",
    }


def tiling_settings(
    encoder: Any, min_tissue: float, grid_um: float | str = "head"
) -> dict[str, Any]:
    """Tiling settings recorded in provenance and in the output folder's fingerprint.

    ``grid_um``: spacing of the prediction grid in µm (tiles of the model's field of view
    centred every ``grid_um``), ``"head"`` for the spacing the encoder's ExpressionHead was
    fitted on (non-overlapping tiles when it records none) or ``"tile"`` for non-overlapping
    tiles.
    """
    head = getattr(encoder, "head", None)
    head_grid = getattr(head, "grid_um_", None) if head is not None else None
    if grid_um == "head":
        step = head_grid
    elif grid_um == "tile":
        step = None
    else:
        try:
            step = float(grid_um)
        except (TypeError, ValueError):
            step = float("nan")
        if not (np.isfinite(step) and step > 0):
            raise EncoderError(
                f"grid_um={grid_um!r} is not allowed; give a positive number of µm, 'head' or "
                "'tile'"
            )
    out: dict[str, Any] = {
        "tile_px": encoder.card.tile_px,
        "mpp": encoder.card.mpp,
        "min_tissue": float(min_tissue),
        "tissue": "saturation-otsu thumbnail 8 um/px",
        "grid": "non-overlapping",
    }
    if step is not None:
        out["grid"] = f"tile centres every {step:g} um"
        out["grid_um"] = float(step)
        out["head_grid_um"] = None if head_grid is None else float(head_grid)
    return out


def claim_output(out: Path, fp: dict[str, Any]) -> None:
    """Record the run fingerprint in ``out/run.json``; refuse a folder of another model/tiling."""
    run_file = out / "run.json"
    if run_file.is_file():
        try:
            prev = json.loads(run_file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            prev = {}
        if prev.get("id") != fp["id"]:
            raise OutputError(
                f"output folder {out} holds results of a different model or tiling "
                f"(run.json id {prev.get('id')!r}, this run {fp['id']!r}); use a new --out"
            )
    else:
        atomic_write_text(run_file, json.dumps(fp, indent=1, sort_keys=True))


def run_fingerprint(encoder: Any, tiling: dict[str, Any]) -> dict[str, Any]:
    fp = {
        "weights_sha256": encoder.weights_sha256,
        "head_sha256": encoder.head_sha256,
        "features": list(encoder.feature_names),
        "model_card": encoder.card.to_dict(),
        "tiling": tiling,
    }
    fp["id"] = sha256_bytes(json.dumps(fp, sort_keys=True).encode())
    return fp


def slide_result_path(out: Path, slide_id: str) -> Path:
    return out / "slides" / f"{slide_id}.npz"


def save_slide_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write a per-slide result atomically (temporary file + rename).

    No fsync: the rename is atomic against a killed process, which is what resuming needs, and
    an fsync per slide costs more than encoding a small slide. After a power loss a damaged
    file fails to load and the slide is recomputed (see :func:`load_slide_result`).
    """
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write(path, lambda tmp: tmp.write_bytes(buf.getvalue()), fsync=False)


def load_slide_result(path: Path, run_id: str) -> dict[str, Any] | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            if meta.get("run_id") != run_id:
                return None
            return {
                "sum": z["sum"],
                "sumsq": z["sumsq"],
                "n_tiles": int(z["n_tiles"]),
                "meta": meta,
            }
    except Exception:  # noqa: BLE001 - a damaged file is recomputed
        logger.warning("per-slide result %s unreadable; recomputing", path)
        return None


def pool_patients(
    slides_adata: Any, *, fusion: Literal["early", "late"] = "late"
) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Pool slide results to patients.

    ``early``: all tiles of a patient together (mean and SD over the pooled tiles).
    ``late``: mean of slide vectors weighted by their tissue-tile counts; SD is the same
    weighted mean of the slide SDs. For the mean feature both give the same number; they differ
    in the dispersion summary.

    Parameters
    ----------
    slides_adata : AnnData
        One row per slide with ``obs["patient_id"]``, ``obs["n_tiles"]`` (tissue tiles) and
        layers ``"sum"`` and ``"sumsq"`` (per-slide feature sums and sums of squares over tiles).
    fusion : {"early", "late"}, default "late"
        How slides of one patient are combined (see above).

    Returns
    -------
    mean, sd : numpy.ndarray
        ``(n_patients, n_features)`` float64.
    obs : pandas.DataFrame
        Index ``patient_id`` with ``n_slides`` and ``n_tiles``.
    """
    if fusion not in FUSIONS:
        raise EncoderError(f"fusion={fusion!r} is not allowed; allowed: {', '.join(FUSIONS)}")
    obs = slides_adata.obs
    pids = pd.unique(obs["patient_id"].astype(str))
    S = np.asarray(slides_adata.layers["sum"], dtype=np.float64)
    Q = np.asarray(slides_adata.layers["sumsq"], dtype=np.float64)
    n = obs["n_tiles"].to_numpy(np.float64)
    mean = np.zeros((len(pids), S.shape[1]))
    sd = np.zeros_like(mean)
    rows = []
    for i, pid in enumerate(pids):
        m = (obs["patient_id"].astype(str) == pid).to_numpy()
        nt = n[m].sum()
        mean[i] = S[m].sum(0) / nt
        if fusion == "early":
            var = Q[m].sum(0) / nt - mean[i] ** 2
            sd[i] = np.sqrt(np.clip(var, 0, None) * nt / max(nt - 1, 1))
        else:
            slide_mean = S[m] / n[m][:, None]
            slide_var = np.clip(Q[m] / n[m][:, None] - slide_mean**2, 0, None)
            slide_sd = np.sqrt(slide_var * (n[m] / np.maximum(n[m] - 1, 1))[:, None])
            sd[i] = (slide_sd * n[m][:, None]).sum(0) / nt
        rows.append({"patient_id": pid, "n_slides": int(m.sum()), "n_tiles": int(nt)})
    return mean, sd, pd.DataFrame(rows).set_index("patient_id")


# ------------------------------------------------------------------------------------------------
# main entry point


def prepare_slides(
    manifest: pd.DataFrame,
    encoder: Any,
    out: Path,
    *,
    run_id: str,
    tiling_params: dict[str, Any],
    backend: str,
    threads: int = 1,
) -> tuple[list[SlideJob], dict[str, dict[str, Any]], list[dict[str, str]]]:
    """Split slides into finished (resumed), pending jobs and exclusions.

    Tissue detection, tile grids and input hashes of pending slides are computed in
    ``threads`` threads (readers, decoders, hashing and most array code release the GIL); the
    result is in manifest order whatever the number of threads.
    """
    from concurrent.futures import ThreadPoolExecutor

    done: dict[str, dict[str, Any]] = {}
    pending: list[Any] = []
    for row in manifest.itertuples(index=False):
        sid = str(row.slide_id)
        f = slide_result_path(out, sid)
        if f.is_file():
            res = load_slide_result(f, run_id)
            if res is not None:
                done[sid] = res
                continue
        pending.append(row)

    def one(row: Any) -> SlideJob | dict[str, str]:
        return prepare_slide(row, encoder, tiling_params=tiling_params, backend=backend)

    results = [one(row) for row in pending[:1]]  # first slide alone: lazy imports happen here
    if threads > 1 and len(pending) > 2:
        with ThreadPoolExecutor(max_workers=min(threads, len(pending) - 1)) as pool:
            results.extend(pool.map(one, pending[1:]))
    else:
        results.extend(one(row) for row in pending[1:])
    jobs: list[SlideJob] = []
    excluded: list[dict[str, str]] = []
    for r in results:
        if isinstance(r, SlideJob):
            jobs.append(dataclasses.replace(r, pos=len(jobs)))
        else:
            excluded.append(r)
    return jobs, done, excluded


def start_run(
    manifest: pd.DataFrame,
    encoder: Any,
    out: Path,
    min_tissue: float,
    backend: str,
    grid_um: float | str = "head",
) -> tuple[dict[str, Any], list[SlideJob], dict[str, dict[str, Any]], list[dict[str, str]]]:
    """Claim ``out`` for this model and tiling, then split the slides into pending jobs,
    finished (resumed) results and exclusions (shared by the DataLoader engine and Ray)."""
    tiling_params = tiling_settings(encoder, min_tissue, grid_um)
    fp = run_fingerprint(encoder, tiling_params)
    claim_output(out, fp)
    jobs, done, excluded = prepare_slides(
        manifest,
        encoder,
        out,
        run_id=fp["id"],
        tiling_params=tiling_params,
        backend=backend,
        threads=min(8, os.cpu_count() or 1),
    )
    return fp, jobs, done, excluded


def input_sha256(path: str) -> str:
    """SHA-256 of a slide's file; for a slide of several files (a DICOM WSI folder) the SHA-256
    of the sorted ``name<TAB>sha256`` lines of its files."""
    from ..provenance import sha256_file

    files = slide_files(path)
    if len(files) == 1:
        return sha256_file(files[0])
    lines = "".join(f"{f.name}\t{sha256_file(f)}\n" for f in files)
    return sha256_bytes(lines.encode())


def prepare_slide(
    row: Any, encoder: Any, *, tiling_params: dict[str, Any], backend: str
) -> SlideJob | dict[str, str]:
    """Tissue mask, tile grid and input hash of one slide, or its exclusion record."""
    sid, pid = str(row.slide_id), str(row.patient_id)
    mpp = None if pd.isna(row.mpp) else float(row.mpp)
    try:
        with open_slide(row.path, mpp=mpp, slide_id=sid, backend=backend) as s:  # type: ignore[arg-type]
            mask = detect_tissue(s)
            grid = tile_grid(
                s,
                tile_px=encoder.card.tile_px,
                mpp=encoder.card.mpp,
                min_tissue=tiling_params["min_tissue"],
                mask=mask,
                step_um=tiling_params.get("grid_um"),
            )
            if len(grid) == 0:
                raise SlideError(
                    f"slide {sid!r} ({row.path}): no tissue tiles (tissue fraction "
                    f"{mask.tissue_fraction:.1%} on the thumbnail, min_tissue="
                    f"{tiling_params['min_tissue']})"
                )
            return SlideJob(
                pos=-1,
                slide_id=sid,
                patient_id=pid,
                path=str(row.path),
                mpp=mpp,
                level=grid.level,
                read_px=grid.read_px,
                tile_px=grid.tile_px,
                xy=grid.tiles[["x", "y"]].to_numpy(np.int64),
                grid=grid.tiles,
                tiling={**grid.params(), "backend": s.backend, "mpp_source": s.mpp_source},
                input_sha256=input_sha256(row.path),
            )
    except SlideError as err:
        logger.warning("excluding slide %s: %s", sid, err)
        return {"patient_id": pid, "slide_id": sid, "analysis": ANALYSIS, "reason": str(err)}
    except OSError as err:
        return {
            "patient_id": pid,
            "slide_id": sid,
            "analysis": ANALYSIS,
            "reason": f"slide {sid!r}: cannot read {row.path}: {err}",
        }


def finish_slide(
    out: Path,
    job: SlideJob,
    run_id: str,
    s: np.ndarray,
    q: np.ndarray,
    tiles: list[np.ndarray] | None,
    feature_names: list[str],
) -> dict[str, Any]:
    n = len(job.xy)
    meta = {
        "run_id": run_id,
        "slide_id": job.slide_id,
        "patient_id": job.patient_id,
        "tiling": job.tiling,
        "input_sha256": job.input_sha256,
    }
    if tiles is not None:
        write_tile_outputs(
            out / "tiles" / f"{job.slide_id}.h5ad", job, np.concatenate(tiles), feature_names
        )
    save_slide_npz(
        slide_result_path(out, job.slide_id),
        {
            "sum": s,
            "sumsq": q,
            "n_tiles": np.int64(n),
            "meta": np.array(json.dumps(meta, sort_keys=True)),
        },
    )
    return {"sum": s, "sumsq": q, "n_tiles": n, "meta": meta}


def write_tile_outputs(path: Path, job: SlideJob, X: np.ndarray, feature_names: list[str]) -> None:
    import anndata as ad

    g = job.grid
    obs = pd.DataFrame(
        {
            "slide_id": job.slide_id,
            "patient_id": job.patient_id,
            "tile_index": g["tile_index"].to_numpy(),
            "x": g["x"].to_numpy(),
            "y": g["y"].to_numpy(),
            "tissue_fraction": g["tissue_fraction"].to_numpy(),
        },
        index=[f"{job.slide_id}:{i}" for i in g["tile_index"]],
    )
    a = ad.AnnData(X=X.astype(np.float16), obs=obs, var=pd.DataFrame(index=list(feature_names)))
    a.obsm["spatial"] = g[["x_center_px", "y_center_px"]].to_numpy(np.float64)
    a.obsm["spatial_um"] = g[["x_um", "y_um"]].to_numpy(np.float64)
    a.uns["tario_clinical"] = {"kind": "tile", "level": "tile", "tiling": job.tiling}
    atomic_write_h5ad(path, a, compression="gzip")


def clean_stale_tmp(out: Path) -> None:
    """Remove temporary files a killed run left behind (final names are never partial)."""
    for folder in (out, out / "slides", out / "tiles"):
        if folder.is_dir():
            for f in folder.glob(".*.tmp"):
                f.unlink(missing_ok=True)


def check_manifest(manifest: pd.DataFrame) -> None:
    if manifest.empty:
        raise EncoderError("slide manifest has no rows; nothing to encode")


def assemble_outputs(
    out: Path,
    manifest: pd.DataFrame,
    done: dict[str, dict[str, Any]],
    excluded: list[dict[str, str]],
    *,
    encoder: Any,
    fingerprint: dict[str, Any],
    fusion: Literal["early", "late"],
    seed: int,
    n_tiles: int,
    seconds: float,
    num_workers: int,
    batch_size: int,
    manifest_source: str | None,
    engine: dict[str, Any] | None = None,
) -> EncodeResult:
    """Pool the finished slides to patients and write ``exclusions.csv``, ``slides.h5ad`` and
    ``representations.h5ad``; ``engine`` (default ``{"engine": "local"}``) is recorded in the
    provenance parameters (which engine ran, with its settings)."""
    import anndata as ad

    feats = list(encoder.feature_names)
    order = [sid for sid in manifest["slide_id"] if sid in done]
    excl = pd.DataFrame(excluded, columns=EXCLUSION_COLUMNS)
    if not order:
        # nothing to pool: leave no partial outputs behind, report every reason
        if not any((out / "slides").glob("*.npz")):
            (out / "run.json").unlink(missing_ok=True)
        reasons = "; ".join(excl["reason"].head(5))
        raise EncoderError(
            f"every slide was excluded ({len(excl)} of {len(manifest)}): {reasons}"
            + (" ..." if len(excl) > 5 else "")
        )
    # patients whose every slide was excluded are listed too (nothing silently dropped)
    atomic_write(out / "exclusions.csv", lambda p: excl.to_csv(p, index=False))
    S = np.stack([done[s]["sum"] for s in order]).astype(np.float64)
    Q = np.stack([done[s]["sumsq"] for s in order]).astype(np.float64)
    n = np.array([done[s]["n_tiles"] for s in order], dtype=np.int64)
    mrow = manifest.set_index("slide_id").loc[order]
    sobs = pd.DataFrame(
        {
            "patient_id": mrow["patient_id"].astype(str).to_numpy(),
            "n_tiles": n,
            "backend": [done[s]["meta"]["tiling"]["backend"] for s in order],
            "mpp": [done[s]["meta"]["tiling"]["slide_mpp"] for s in order],
            "mpp_source": [done[s]["meta"]["tiling"]["mpp_source"] for s in order],
        },
        index=pd.Index(order, name="slide_id"),
    )
    smean = S / n[:, None]
    svar = np.clip(Q / n[:, None] - smean**2, 0, None) * (n / np.maximum(n - 1, 1))[:, None]
    slides_ad = ad.AnnData(
        X=smean.astype(np.float32),
        obs=sobs,
        var=pd.DataFrame(index=pd.Index(feats, name="feature")),
    )
    slides_ad.layers["sd"] = np.sqrt(svar).astype(np.float32)
    slides_ad.layers["sum"] = S
    slides_ad.layers["sumsq"] = Q
    pmean, psd, pobs = pool_patients(slides_ad, fusion=fusion)
    inputs = {f"slide:{s}": done[s]["meta"]["input_sha256"] for s in order}
    prov_base = provenance_record(
        kind="patient",
        seed=int(seed),
        parameters={
            "fusion": fusion,
            "tiling": fingerprint["tiling"],
            "batch_size": int(batch_size),
            "num_workers": int(num_workers),
            "run_id": fingerprint["id"],
            "n_excluded_slides": int(len(excl)),
            **(engine or {"engine": "local"}),
        },
        inputs={"manifest": manifest_source} if manifest_source else None,
        **encoder.provenance(),
    )
    prov_base["level"] = "patient"
    from ..provenance import dependency_versions

    prov_base["dependencies"].update(
        dependency_versions(("openslide-bin", "safetensors", "tifffile", "pillow", "scikit-image"))
    )
    prov_base["input_hashes"].update(inputs)
    # one JSON string: thousands of small h5 groups would make the h5ad slow to write and read
    prov_base["slide_tiling"] = json.dumps(
        {s: done[s]["meta"]["tiling"] for s in order}, sort_keys=True
    )
    prov_base = json.loads(json.dumps(prov_base, default=str))
    reps = ad.AnnData(
        X=pmean.astype(np.float32),
        obs=pobs,
        var=pd.DataFrame(index=pd.Index(feats, name="feature")),
    )
    reps.layers["sd"] = psd.astype(np.float32)
    reps.uns["tario_clinical"] = h5_safe(prov_base)
    sprov = dict(prov_base, kind="slide", level="slide")
    slides_ad.uns["tario_clinical"] = h5_safe(sprov)
    atomic_write_h5ad(out / "slides.h5ad", slides_ad)
    atomic_write_h5ad(out / "representations.h5ad", reps)
    return EncodeResult(
        representations=reps,
        slides=slides_ad,
        exclusions=excl,
        out_dir=out,
        n_tiles=n_tiles,
        seconds=seconds,
        num_workers=int(num_workers),
        batch_size=int(batch_size),
    )


def h5_safe(obj: Any) -> Any:
    """Make a provenance dict storable in h5ad ``uns`` (no None, no mixed lists)."""
    if isinstance(obj, dict):
        return {str(k): h5_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in obj) and obj:
            return np.asarray(obj)
        if all(isinstance(v, str) for v in obj) and obj:
            return np.asarray(obj, dtype=object)
        return json.dumps(obj)
    if obj is None:
        return "null"
    return obj
