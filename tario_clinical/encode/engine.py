"""Batched inference engine: slides -> tiles -> frozen encoder -> streamed per-slide pooling.

For each slide the tissue mask and tile grid are computed on a thumbnail; DataLoader workers
read and decode tiles (each worker keeps its own slide handles), batches are pinned on CUDA and
copied asynchronously, and the encoder output is folded into running sums (float64) so memory
does not grow with slide size. A batch never spans two slides, so a slide's result does not
depend on which other slides are processed in the same run: a rerun that skips finished slides
gives bit-identical results.

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
import hashlib
import html
import io
import json
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Sequence
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
    ensure_output_dir,
    provenance_record,
)
from ..slides import detect_tissue, open_slide, read_slide_manifest, slide_files, tile_grid
from ..slides.tiling import read_tile_at, resize_tile

__all__ = [
    "EncodeResult",
    "encode_slides",
    "FUSIONS",
    "pool_patients",
    "default_batch_size",
    "default_num_workers",
]

logger = logging.getLogger(__name__)

FUSIONS = ("early", "late")
_EXCLUSION_COLUMNS = ["patient_id", "slide_id", "analysis", "reason"]
_ANALYSIS = "encode"


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
# tile dataset read in DataLoader workers


@dataclass(frozen=True)
class _SlideJob:
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


class _TileDataset:
    """Map-style dataset over (slide job, tile) pairs; opens slides lazily per worker."""

    def __init__(
        self,
        jobs: Sequence[_SlideJob],
        backend: str,
        *,
        max_open: int = 4,
        decode_threads: int = 1,
    ) -> None:
        self.jobs = list(jobs)
        self.backend = backend
        self.decode_threads = decode_threads
        self.offsets = np.cumsum([0] + [len(j.xy) for j in self.jobs])
        self.max_open = max_open
        self._open: OrderedDict[int, Any] = OrderedDict()

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def _slide(self, j: int) -> Any:
        s = self._open.get(j)
        if self._open and next(reversed(self._open)) != j:
            # another slide becomes current: free the decoded tiles kept for the previous one
            self._open[next(reversed(self._open))].clear_cache()
        if s is None:
            job = self.jobs[j]
            # verified when the run prepared it (tissue detection); not parsed twice
            s = open_slide(
                job.path,
                mpp=job.mpp,
                slide_id=job.slide_id,
                backend=self.backend,  # type: ignore[arg-type]
                verify=False,
            )
            s.decode_threads = self.decode_threads
            self._open[j] = s
            while len(self._open) > self.max_open:
                _, old = self._open.popitem(last=False)
                old.close()
        else:
            self._open.move_to_end(j)
        return s

    def __getitem__(self, i: int) -> tuple[np.ndarray, int, int, str]:
        j = int(np.searchsorted(self.offsets, i, side="right") - 1)
        k = int(i - self.offsets[j])
        job = self.jobs[j]
        try:
            x, y = job.xy[k]
            tile = read_tile_at(self._slide(j), int(x), int(y), job.level, job.read_px, job.tile_px)
            return tile, j, k, ""
        except Exception as err:  # noqa: BLE001 - any read failure excludes the slide
            self._open.pop(j, None)
            return np.zeros((job.tile_px, job.tile_px, 3), np.uint8), j, k, f"{err}"

    def __getitems__(self, indices: Sequence[int]) -> list[tuple[np.ndarray, int, int, str]]:
        """A batch of one slide read as horizontal strips: the tiles of one grid row that lie
        side by side come from a single ``read_region`` call (fewer decoder and backend calls
        per tile). Pixels are identical to per-tile reads: strips are used only where tile
        offsets are whole pixels of the read level; anything else is read tile by tile."""
        idx = [int(i) for i in indices]
        if not idx:
            return []
        js = np.searchsorted(self.offsets, idx, side="right") - 1
        if (js != js[0]).any():
            return [self[i] for i in idx]
        j = int(js[0])
        job = self.jobs[j]
        ks = np.asarray(idx) - int(self.offsets[j])
        try:
            slide = self._slide(j)
            ds = float(slide.level_downsamples[job.level])
        except Exception:  # noqa: BLE001 - let the per-tile path report the failure
            return [self[i] for i in idx]
        xy = job.xy[ks]
        if slide.decodes_directly(job.level):
            # tiled TIFF: the TIFF tiles this batch shares are decoded once
            try:
                regions = slide.read_regions(xy, job.level, (job.read_px, job.read_px))
            except Exception:  # noqa: BLE001 - the per-tile path reports the failure
                return [self[i] for i in idx]
            if job.read_px != job.tile_px:
                regions = np.stack([resize_tile(r, job.tile_px) for r in regions])
            return _Batch(regions, j, np.asarray(ks, dtype=np.int64))  # type: ignore[return-value]
        out: dict[int, tuple[np.ndarray, int, int, str]] = {}
        step = job.read_px * ds
        whole_ds = float(ds).is_integer()
        for y in np.unique(xy[:, 1]):
            row = np.flatnonzero(xy[:, 1] == y)
            row = row[np.argsort(xy[row, 0], kind="stable")]
            # runs of side-by-side tiles (tissue holes split a grid row into several runs)
            gaps = np.flatnonzero(~np.isclose(np.diff(xy[row, 0]), step)) + 1
            for run in np.split(row, gaps):
                x0 = int(xy[run[0], 0])
                offs = (xy[run, 0] - x0) / ds
                if len(run) < 2 or not (whole_ds and np.allclose(offs, np.round(offs))):
                    for r in run:
                        out[r] = self[idx[r]]
                    continue
                width = int(round(offs[-1])) + job.read_px
                try:
                    strip = slide.read_region((x0, int(y)), job.level, (width, job.read_px))
                except Exception:  # noqa: BLE001 - fall back to single tiles (they report errors)
                    for r in run:
                        out[r] = self[idx[r]]
                    continue
                for r, off in zip(run, np.round(offs).astype(int), strict=True):
                    region = strip[:, off : off + job.read_px]
                    out[r] = (resize_tile(region, job.tile_px), j, int(ks[r]), "")
        return [out[r] for r in range(len(idx))]

    def close(self) -> None:
        """Close the slides this process opened."""
        while self._open:
            _, s = self._open.popitem()
            s.close()

    def batches(self, batch_size: int) -> list[list[int]]:
        """Batches of flat indices that never cross a slide boundary."""
        out = []
        for j in range(len(self.jobs)):
            a, b = int(self.offsets[j]), int(self.offsets[j + 1])
            out.extend(list(range(s, min(s + batch_size, b))) for s in range(a, b, batch_size))
        return out


@dataclass(frozen=True)
class _Batch:
    """A whole batch of one slide read at once: tiles already stacked (no per-tile copies);
    :func:`_collate` passes it on as it is."""

    tiles: np.ndarray
    job: int
    ks: np.ndarray


def _collate(
    items: list[tuple[np.ndarray, int, int, str]] | _Batch,
) -> tuple[Any, int, Any, list[str]]:
    import torch

    if isinstance(items, _Batch):
        return torch.from_numpy(items.tiles), items.job, torch.from_numpy(items.ks), []
    tiles = torch.from_numpy(np.stack([t[0] for t in items]))
    job = items[0][1]
    idx = torch.tensor([t[2] for t in items], dtype=torch.int64)
    errs = [t[3] for t in items if t[3]]
    return tiles, job, idx, errs


# ------------------------------------------------------------------------------------------------
# helpers


def default_batch_size(device: str, tile_px: int) -> int:
    """Batch size for ``device``: 64 on CPU; on CUDA scaled by tile area and free memory.

    Parameters
    ----------
    device : str
        Torch device string (``"cpu"``, ``"cuda"``, ``"cuda:1"`` ...); anything not starting with
        ``"cuda"`` gets 64.
    tile_px : int
        Tile side in pixels.

    Returns
    -------
    int
        On CUDA ``256 * (224 / tile_px) ** 2``, limited by free GPU memory (about 40 MB per
        224-px tile) and to [16, 1024].
    """
    if not device.startswith("cuda"):
        return 64
    import torch

    try:
        free, _ = torch.cuda.mem_get_info()
    except Exception:  # noqa: BLE001
        free = 8 << 30
    scale = (224 / tile_px) ** 2
    by_mem = int(free / (40 << 20) * scale)  # ~40 MB activations per 224-px tile, generous
    return int(max(16, min(1024, 256 * scale, by_mem)))


def default_num_workers(device: str) -> int:
    """DataLoader workers reading tiles for ``device``.

    On CPU the model's forward pass keeps every core busy (torch's intra-op threads), and
    reader processes compete with it for the same cores. Reading in the main process between
    batches was faster on 2 cores (end to end 0.96 vs 0.53 of pure-forward throughput for a
    224-px CNN, 0.72 vs 0.39 for the tiny demo model, ``benchmarks/results/encode_cpu.json``)
    and about as fast on 16 cores (0.62 vs 0.65 with 2 workers for the CNN, 0.40 vs 0.32 for
    the demo model; short runs, ``encode_cpu_16core.json``); for backbones heavier than these
    the share of reading only shrinks. So CPU gets 0 workers. If workers are asked for on
    CPU, :func:`encode_slides` lowers torch's thread count by the number of workers during the
    tile loop. On CUDA the cores are free while the GPU computes and decoding JPEG tiles is
    the bottleneck: up to 8 workers, one core left for the main process.

    Parameters
    ----------
    device : str
        Torch device string.

    Returns
    -------
    int
    """
    if not device.startswith("cuda"):
        return 0
    return max(1, min(8, (os.cpu_count() or 2) - 1))


def _tiling_params(encoder: Any, min_tissue: float) -> dict[str, Any]:
    """Tiling settings recorded in provenance and in the output folder's fingerprint."""
    return {
        "tile_px": encoder.card.tile_px,
        "mpp": encoder.card.mpp,
        "min_tissue": float(min_tissue),
        "tissue": "saturation-otsu thumbnail 8 um/px",
        "grid": "non-overlapping",
    }


def _claim_output(out: Path, fp: dict[str, Any]) -> None:
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


def _fingerprint(encoder: Any, tiling: dict[str, Any]) -> dict[str, Any]:
    fp = {
        "weights_sha256": encoder.weights_sha256,
        "head_sha256": encoder.head_sha256,
        "features": list(encoder.feature_names),
        "model_card": encoder.card.to_dict(),
        "tiling": tiling,
    }
    fp["id"] = hashlib.sha256(json.dumps(fp, sort_keys=True).encode()).hexdigest()
    return fp


def _slide_file(out: Path, slide_id: str) -> Path:
    return out / "slides" / f"{slide_id}.npz"


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write a per-slide result atomically (temporary file + rename).

    No fsync: the rename is atomic against a killed process, which is what resuming needs, and
    an fsync per slide costs more than encoding a small slide. After a power loss a damaged
    file fails to load and the slide is recomputed (see :func:`_load_slide_result`).
    """
    from ..provenance import atomic_write

    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write(path, lambda tmp: tmp.write_bytes(buf.getvalue()), fsync=False)


def _load_slide_result(path: Path, run_id: str) -> dict[str, Any] | None:
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


def _prepare(
    manifest: pd.DataFrame,
    encoder: Any,
    out: Path,
    *,
    run_id: str,
    tiling_params: dict[str, Any],
    backend: str,
    threads: int = 1,
) -> tuple[list[_SlideJob], dict[str, dict[str, Any]], list[dict[str, str]]]:
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
        f = _slide_file(out, sid)
        if f.is_file():
            res = _load_slide_result(f, run_id)
            if res is not None:
                done[sid] = res
                continue
        pending.append(row)

    def one(row: Any) -> _SlideJob | dict[str, str]:
        return _prepare_slide(row, encoder, tiling_params=tiling_params, backend=backend)

    results = [one(row) for row in pending[:1]]  # first slide alone: lazy imports happen here
    if threads > 1 and len(pending) > 2:
        with ThreadPoolExecutor(max_workers=min(threads, len(pending) - 1)) as pool:
            results.extend(pool.map(one, pending[1:]))
    else:
        results.extend(one(row) for row in pending[1:])
    jobs: list[_SlideJob] = []
    excluded: list[dict[str, str]] = []
    for r in results:
        if isinstance(r, _SlideJob):
            jobs.append(dataclasses.replace(r, pos=len(jobs)))
        else:
            excluded.append(r)
    return jobs, done, excluded


def _start_run(
    manifest: pd.DataFrame, encoder: Any, out: Path, min_tissue: float, backend: str
) -> tuple[dict[str, Any], list[_SlideJob], dict[str, dict[str, Any]], list[dict[str, str]]]:
    """Claim ``out`` for this model and tiling, then split the slides into pending jobs,
    finished (resumed) results and exclusions (shared by the DataLoader engine and Ray)."""
    tiling_params = _tiling_params(encoder, min_tissue)
    fp = _fingerprint(encoder, tiling_params)
    _claim_output(out, fp)
    jobs, done, excluded = _prepare(
        manifest,
        encoder,
        out,
        run_id=fp["id"],
        tiling_params=tiling_params,
        backend=backend,
        threads=min(8, os.cpu_count() or 1),
    )
    return fp, jobs, done, excluded


def _input_sha256(path: str) -> str:
    """SHA-256 of a slide's file; for a slide of several files (a DICOM WSI folder) the SHA-256
    of the sorted ``name<TAB>sha256`` lines of its files."""
    from ..provenance import sha256_file

    files = slide_files(path)
    if len(files) == 1:
        return sha256_file(files[0])
    lines = "".join(f"{f.name}\t{sha256_file(f)}\n" for f in files)
    return hashlib.sha256(lines.encode()).hexdigest()


def _prepare_slide(
    row: Any, encoder: Any, *, tiling_params: dict[str, Any], backend: str
) -> _SlideJob | dict[str, str]:
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
            )
            if len(grid) == 0:
                raise SlideError(
                    f"slide {sid!r} ({row.path}): no tissue tiles (tissue fraction "
                    f"{mask.tissue_fraction:.1%} on the thumbnail, min_tissue="
                    f"{tiling_params['min_tissue']})"
                )
            return _SlideJob(
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
                input_sha256=_input_sha256(row.path),
            )
    except SlideError as err:
        logger.warning("excluding slide %s: %s", sid, err)
        return {"patient_id": pid, "slide_id": sid, "analysis": _ANALYSIS, "reason": str(err)}
    except OSError as err:
        return {
            "patient_id": pid,
            "slide_id": sid,
            "analysis": _ANALYSIS,
            "reason": f"slide {sid!r}: cannot read {row.path}: {err}",
        }


def _finish_slide(
    out: Path,
    job: _SlideJob,
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
        _write_tiles(
            out / "tiles" / f"{job.slide_id}.h5ad", job, np.concatenate(tiles), feature_names
        )
    _save_npz(
        _slide_file(out, job.slide_id),
        {
            "sum": s,
            "sumsq": q,
            "n_tiles": np.int64(n),
            "meta": np.array(json.dumps(meta, sort_keys=True)),
        },
    )
    return {"sum": s, "sumsq": q, "n_tiles": n, "meta": meta}


def _write_tiles(path: Path, job: _SlideJob, X: np.ndarray, feature_names: list[str]) -> None:
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


def _clean_stale_tmp(out: Path) -> None:
    """Remove temporary files a killed run left behind (final names are never partial)."""
    for folder in (out, out / "slides", out / "tiles"):
        if folder.is_dir():
            for f in folder.glob(".*.tmp"):
                f.unlink(missing_ok=True)


def _check_manifest_unique(manifest: pd.DataFrame) -> None:
    if manifest.empty:
        raise EncoderError("slide manifest has no rows; nothing to encode")


def encode_slides(
    slides: str | os.PathLike[str] | pd.DataFrame,
    model: Any,
    out_dir: str | os.PathLike[str],
    *,
    device: str = "auto",
    batch_size: int | None = None,
    num_workers: int | None = None,
    seed: int = 0,
    progress: bool = True,
    tile_output: bool = False,
    fusion: Literal["early", "late"] = "late",
    min_tissue: float = 0.5,
    backend: Literal["auto", "openslide", "tiffslide", "wsidicom", "image"] = "auto",
    allow_outside: bool = False,
    weights: str | os.PathLike[str] | None = None,
) -> EncodeResult:
    """Encode slides with a frozen model and pool to patients; resumable.

    Parameters
    ----------
    slides : path or DataFrame
        Slide manifest (``slide_id, patient_id, path[, mpp]``).
    model : "demo", preset name, model card path, ModelCard or FrozenEncoder
        A preset (``uni``, ``uni2-h``, ``virchow2``, ...) needs ``weights``.
    out_dir : path-like
        Output folder (see the module docstring for the layout). Finished slides already in it
        (same model and tiling) are skipped.
    device : {"auto", "cpu", "cuda"}
    batch_size : int, optional
        Tiles per batch; default from the model card or :func:`default_batch_size`.
    num_workers : int, optional
        DataLoader worker processes reading tiles; default :func:`default_num_workers`
        (0 on CPU: tiles are read in the main process between batches; up to 8 on CUDA).
    seed : int
        Recorded in provenance (inference is deterministic; the seed covers any stochastic
        choice a future option may add).
    progress : bool
        Show a tqdm progress bar with tiles/s.
    tile_output : bool
        Also write tile-level AnnData per slide (float16, ``obsm["spatial"]``).
    fusion : {"early", "late"}
        Slide -> patient pooling, see :func:`pool_patients`.
    min_tissue : float
        Minimum tissue fraction of a tile.
    backend : {"auto", "openslide", "tiffslide", "wsidicom", "image"}
        Slide reader.
    allow_outside : bool
        Allow manifest paths outside the manifest's folder.
    weights : path, optional
        Local weights for a preset (Hugging Face snapshot folder or weight file), or a
        replacement for a model card's ``weights`` (see :func:`load_encoder`).

    Returns
    -------
    EncodeResult

    Raises
    ------
    OutputError
        If ``out_dir`` is not writable, or holds results of a different model/tiling.
    EncoderError
        If the model cannot be loaded or every slide is excluded.
    SchemaError
        If the manifest is invalid.

    Notes
    -----
    Unreadable slides (missing, truncated, no µm/px, no tissue, wrong channel count) are
    written to ``exclusions.csv`` and the run continues.

    Examples
    --------
    >>> res = encode_slides("slides.csv", "demo", "encoded", device="cpu")  # doctest: +SKIP
    >>> res.representations  # doctest: +SKIP
    """
    import torch
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    from .loaders import load_encoder

    if fusion not in FUSIONS:
        raise EncoderError(f"fusion={fusion!r} is not allowed; allowed: {', '.join(FUSIONS)}")
    # inputs are validated before anything is written
    manifest = read_slide_manifest(slides, allow_outside=allow_outside)
    _check_manifest_unique(manifest)
    encoder = load_encoder(model, device=device, weights=weights)
    bs = int(
        batch_size
        or encoder.card.data.get("batch_size")
        or default_batch_size(encoder.device, encoder.card.tile_px)
    )
    if bs < 1:
        raise EncoderError(f"batch_size must be >= 1; got {bs}")
    if num_workers is None:
        num_workers = default_num_workers(encoder.device)
    if num_workers < 0:
        raise EncoderError(f"num_workers must be >= 0; got {num_workers}")
    out = ensure_output_dir(out_dir)
    _clean_stale_tmp(out)
    fp, jobs, done, excluded = _start_run(manifest, encoder, out, min_tissue, backend)
    # read in the main process (no workers): the model's threads are idle while a batch is
    # read, so its TIFF tiles are decoded in as many threads
    ds = _TileDataset(
        jobs, backend, decode_threads=torch.get_num_threads() if num_workers == 0 else 1
    )
    n_total = len(ds)
    t0 = time.perf_counter()
    n_done = 0
    is_cuda = encoder.device.startswith("cuda")
    torch_threads = torch.get_num_threads()
    if n_total:
        loader = DataLoader(
            ds,  # type: ignore[arg-type]
            batch_sampler=ds.batches(bs),
            num_workers=num_workers,
            collate_fn=_collate,
            pin_memory=is_cuda,
            prefetch_factor=4 if num_workers else None,
            persistent_workers=False,
        )
        nf = len(encoder.feature_names)
        dev = torch.device(encoder.device)
        acc_dtype = torch.float64
        cur = -1
        s = q = None
        tiles_buf: list[np.ndarray] | None = None
        failed: str | None = None
        bar = tqdm(total=n_total, unit="tile", disable=not progress, desc="encode", smoothing=0.1)
        try:
            if not is_cuda and num_workers > 0:
                # reader processes get cores of their own instead of preempting the model's
                # threads (restored below)
                torch.set_num_threads(max(1, torch_threads - num_workers))
            for tiles, j, idx, errs in loader:
                job = jobs[j]
                if j != cur:
                    cur = j
                    s = torch.zeros(nf, dtype=acc_dtype, device=dev)
                    q = torch.zeros(nf, dtype=acc_dtype, device=dev)
                    tiles_buf = [] if tile_output else None
                    failed = None
                    nonfinite = torch.zeros((), dtype=torch.bool, device=dev)
                if errs and failed is None:
                    failed = errs[0]
                if failed is None:
                    feats = encoder(tiles)
                    # checked once per slide: a per-batch check would synchronise the GPU
                    nonfinite |= ~torch.isfinite(feats).all()
                    f64 = feats.to(acc_dtype)
                    s += f64.sum(0)
                    q += f64.square().sum(0)
                    if tiles_buf is not None:
                        tiles_buf.append(feats.half().cpu().numpy())
                n_done += len(idx)
                bar.update(len(idx))
                if int(idx[-1]) == len(job.xy) - 1:  # last batch of this slide
                    if failed is None and bool(nonfinite):
                        failed = f"model produced non-finite features for slide {job.slide_id!r}"
                    if failed is not None:
                        excluded.append(
                            {
                                "patient_id": job.patient_id,
                                "slide_id": job.slide_id,
                                "analysis": _ANALYSIS,
                                "reason": f"slide {job.slide_id!r} ({job.path}): {failed}",
                            }
                        )
                        logger.warning("excluding slide %s: %s", job.slide_id, failed)
                    else:
                        done[job.slide_id] = _finish_slide(
                            out,
                            job,
                            fp["id"],
                            s.cpu().numpy(),  # type: ignore[union-attr]
                            q.cpu().numpy(),  # type: ignore[union-attr]
                            tiles_buf,
                            list(encoder.feature_names),
                        )
        finally:
            bar.close()
            ds.close()
            torch.set_num_threads(torch_threads)
    seconds = time.perf_counter() - t0
    return _assemble(
        out,
        manifest,
        done,
        excluded,
        encoder=encoder,
        fingerprint=fp,
        fusion=fusion,
        seed=seed,
        n_tiles=n_done,
        seconds=seconds,
        num_workers=num_workers,
        batch_size=bs,
        manifest_source=None if isinstance(slides, pd.DataFrame) else str(slides),
    )


def _assemble(
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
    excl = pd.DataFrame(excluded, columns=_EXCLUSION_COLUMNS)
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
    reps.uns["tario_clinical"] = _h5_safe(prov_base)
    sprov = dict(prov_base, kind="slide", level="slide")
    slides_ad.uns["tario_clinical"] = _h5_safe(sprov)
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


def _h5_safe(obj: Any) -> Any:
    """Make a provenance dict storable in h5ad ``uns`` (no None, no mixed lists)."""
    if isinstance(obj, dict):
        return {str(k): _h5_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in obj) and obj:
            return np.asarray(obj)
        if all(isinstance(v, str) for v in obj) and obj:
            return np.asarray(obj, dtype=object)
        return json.dumps(obj)
    if obj is None:
        return "null"
    return obj
