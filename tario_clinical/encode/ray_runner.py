"""Scale-out runner: the same encoder code under Ray Data (``pip install tario-clinical[ray]``).

Tile reading and model inference run as Ray Data ``map_batches`` stages (readers on CPU
workers, the model in GPU or CPU actors), so one script scales from a laptop to many GPUs and
nodes. Tissue detection, tiling, per-slide atomic outputs, resuming, exclusions and patient
pooling are shared with :func:`~tario_clinical.encode.encode_slides`; results agree with it to
float32 rounding (the tile batches differ).
"""

from __future__ import annotations

import os
import time
from typing import Any, Literal

import numpy as np
import pandas as pd

from ..errors import EncoderError
from ..provenance import ensure_output_dir
from ..slides import open_slide, read_slide_manifest
from ..slides.tiling import read_tile_at, resize_tile
from .engine import (
    FUSIONS,
    EncodeResult,
    _assemble,
    _finish_slide,
    _start_run,
)

__all__ = ["encode_slides_ray"]


class _Reader:
    """Ray Data stage: (job, k) rows -> uint8 tiles; keeps a few slide handles open."""

    def __init__(self, jobs: list[dict[str, Any]], backend: str) -> None:
        self.jobs = jobs
        self.backend = backend
        self.open: dict[int, Any] = {}

    def _slide(self, j: int) -> Any:
        s = self.open.get(j)
        if s is None:
            if len(self.open) >= 4:
                self.open.pop(next(iter(self.open))).close()
            job = self.jobs[j]
            # verified by the driver when it prepared the slide (tissue detection)
            s = self.open[j] = open_slide(
                job["path"],
                mpp=job["mpp"],
                slide_id=job["slide_id"],
                backend=self.backend,  # type: ignore[arg-type]
                verify=False,
            )
        return s

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        js, ks = batch["job"], batch["k"]
        tile_px = self.jobs[int(js[0])]["tile_px"]
        tiles = np.zeros((len(js), tile_px, tile_px, 3), np.uint8)
        errors = np.array([""] * len(js), dtype=object)
        for j in np.unique(js).tolist():
            rows = np.flatnonzero(js == j)
            job = self.jobs[j]
            try:  # the tiles of one slide together: shared TIFF tiles are decoded once
                s = self._slide(j)
                regions = s.read_regions(
                    job["xy"][ks[rows]], job["level"], (job["read_px"], job["read_px"])
                )
                for r, region in zip(rows, regions, strict=True):
                    tiles[r] = resize_tile(region, tile_px)
                continue
            except Exception:  # noqa: BLE001 - read tile by tile to record each failure
                self.open.pop(j, None)
            for r in rows.tolist():
                try:
                    x, y = job["xy"][int(ks[r])]
                    tiles[r] = read_tile_at(
                        self._slide(j), int(x), int(y), job["level"], job["read_px"], tile_px
                    )
                except Exception as err:  # noqa: BLE001 - the slide is excluded downstream
                    errors[r] = str(err)
                    self.open.pop(j, None)
        return {"job": js, "k": ks, "tiles": tiles, "error": errors}


class _Predictor:
    """Ray Data stage: uint8 tiles -> float32 features with the frozen encoder."""

    def __init__(self, model: Any, device: str) -> None:
        from .loaders import load_encoder

        self.encoder = load_encoder(model, device=device)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        feats = self.encoder.encode_array(batch["tiles"]).astype(np.float32)
        return {"job": batch["job"], "k": batch["k"], "features": feats, "error": batch["error"]}


def encode_slides_ray(
    slides: str | os.PathLike[str] | pd.DataFrame,
    model: Any,
    out_dir: str | os.PathLike[str],
    *,
    device: str = "auto",
    batch_size: int | None = None,
    concurrency: int = 1,
    read_concurrency: int = 1,
    num_gpus_per_actor: float = 0.0,
    seed: int = 0,
    fusion: Literal["early", "late"] = "late",
    min_tissue: float = 0.5,
    backend: Literal["auto", "openslide", "tiffslide", "image"] = "auto",
    allow_outside: bool = False,
    tile_output: bool = False,
    ray_init: dict[str, Any] | None = None,
) -> EncodeResult:
    """Encode slides under Ray Data; outputs identical in layout to :func:`encode_slides`.

    Parameters
    ----------
    slides, out_dir, seed, fusion, min_tissue, backend, allow_outside, tile_output
        As in :func:`~tario_clinical.encode.encode_slides`.
    model : "demo", model card path or dict
        Must be serialisable: each Ray actor loads its own frozen copy.
    device : {"auto", "cpu", "cuda"}
        Device of the inference actors.
    batch_size : int, optional
        Tiles per Ray Data batch.
    concurrency : int
        Number of inference actors.
    read_concurrency : int
        Number of tile-reading actors.
    num_gpus_per_actor : float
        GPUs reserved by each inference actor (0 on CPU).
    ray_init : dict, optional
        Keyword arguments for ``ray.init`` when Ray is not yet initialised (e.g.
        ``{"num_cpus": 2}``); a running Ray instance is used as is.

    Returns
    -------
    EncodeResult

    Raises
    ------
    EncoderError
        If Ray is not installed or every slide is excluded.
    """
    try:
        import ray
    except ImportError as err:
        raise EncoderError("the Ray runner needs ray: pip install 'tario-clinical[ray]'") from err
    from .loaders import FrozenEncoder, load_encoder

    if fusion not in FUSIONS:
        raise EncoderError(f"fusion={fusion!r} is not allowed; allowed: {', '.join(FUSIONS)}")
    if isinstance(model, FrozenEncoder):
        model = model.card.path if model.card.path is not None else model.card.to_dict()
    manifest = read_slide_manifest(slides, allow_outside=allow_outside)
    encoder = load_encoder(model, device="cpu")  # driver copy: card, hashes, feature names
    out = ensure_output_dir(out_dir)
    fp, jobs, done, excluded = _start_run(manifest, encoder, out, min_tissue, backend)
    bs = int(batch_size or encoder.card.data.get("batch_size") or 64)
    n_total = sum(len(j.xy) for j in jobs)
    t0 = time.perf_counter()
    if n_total:
        if not ray.is_initialized():
            ray.init(**{"include_dashboard": False, "log_to_driver": False, **(ray_init or {})})
        ctx = ray.data.DataContext.get_current()
        ctx.execution_options.preserve_order = True
        ctx.enable_progress_bars = False
        specs = [
            {
                "path": j.path,
                "mpp": j.mpp,
                "slide_id": j.slide_id,
                "xy": j.xy,
                "level": j.level,
                "read_px": j.read_px,
                "tile_px": j.tile_px,
            }
            for j in jobs
        ]
        items = pd.DataFrame(
            {
                "job": np.concatenate([np.full(len(j.xy), i) for i, j in enumerate(jobs)]),
                "k": np.concatenate([np.arange(len(j.xy)) for j in jobs]),
            }
        )
        ds = ray.data.from_pandas(items)
        ds = ds.map_batches(
            _Reader,
            fn_constructor_kwargs={"jobs": specs, "backend": backend},
            batch_size=bs,
            concurrency=int(read_concurrency),
        )
        ds = ds.map_batches(
            _Predictor,
            fn_constructor_kwargs={"model": model, "device": device},
            batch_size=bs,
            concurrency=int(concurrency),
            num_gpus=num_gpus_per_actor or None,
        )
        nf = len(encoder.feature_names)
        acc = {
            i: [np.zeros(nf), np.zeros(nf), 0, None, [] if tile_output else None]
            for i in range(len(jobs))
        }
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            feats = batch["features"].astype(np.float64)
            for j, f, e in zip(batch["job"].tolist(), feats, batch["error"]):
                a = acc[j]
                if e and a[3] is None:
                    a[3] = str(e)
                a[0] += f
                a[1] += f * f
                a[2] += 1
                if a[4] is not None:
                    a[4].append(f.astype(np.float16)[None])
                job = jobs[j]
                if a[2] == len(job.xy):
                    if a[3] is not None or not np.isfinite(a[0]).all():
                        excluded.append(
                            {
                                "patient_id": job.patient_id,
                                "slide_id": job.slide_id,
                                "analysis": "encode",
                                "reason": f"slide {job.slide_id!r} ({job.path}): "
                                + (a[3] or "model produced non-finite features"),
                            }
                        )
                    else:
                        done[job.slide_id] = _finish_slide(
                            out, job, fp["id"], a[0], a[1], a[4], list(encoder.feature_names)
                        )
                    acc[j] = [None, None, a[2], a[3], None]
    return _assemble(
        out,
        manifest,
        done,
        excluded,
        encoder=encoder,
        fingerprint=fp,
        fusion=fusion,
        seed=seed,
        n_tiles=n_total,
        seconds=time.perf_counter() - t0,
        num_workers=int(concurrency),
        batch_size=bs,
        manifest_source=None if isinstance(slides, pd.DataFrame) else str(slides),
    )
