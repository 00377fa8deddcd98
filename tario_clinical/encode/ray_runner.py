"""Scale-out runner: the same encoder code under Ray Data (``pip install tario-clinical[ray]``).

Tile reading and model inference run as Ray Data ``map_batches`` stages (reader actors on CPU
workers, the model in GPU or CPU actors), so one command scales from a laptop to many GPUs and
nodes: ``tario-clinical encode --engine ray [--ray-address ADDRESS]`` or ``encode: {engine:
ray}`` in the study YAML. Tissue detection, tiling, the output folder's fingerprint, per-slide
atomic outputs, resuming, exclusions and patient pooling are those of
:func:`~tario_clinical.encode.encode_slides`, so either engine can resume the other's folder.

Same representations as the single-machine engine: the rows of the Ray dataset are the
engine's batches (a batch never spans two slides, at most ``batch_size`` tiles), each actor
encodes one such batch at a time and reduces it to float64 sums with the engine's operations,
and the driver adds the batch sums of a slide in batch order, whatever order the batches come
back in. On the same device and torch build the results are bit-identical (tested on CPU with
several worker processes); across different GPUs they agree to the GPUs' arithmetic.

On a multi-node cluster every node must see the slide files and the model weights at the
same paths (a shared file system), and have tario-clinical installed.
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
from .engine import default_batch_size
from .run_folder import (
    FUSIONS,
    EncodeResult,
    assemble_outputs,
    check_manifest,
    clean_stale_tmp,
    exclusion,
    finish_slide,
    start_run,
)

__all__ = ["encode_slides_ray"]


class _Reader:
    """Ray Data stage reading tiles; keeps a few slide handles open.

    Called on tile rows (``job``, ``k``) it returns one row per tile; on batch rows (``job``,
    ``start``, ``stop``: the engine's batches) one row per batch holding its stacked tiles.
    """

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

    def _read(self, j: int, ks: np.ndarray) -> tuple[np.ndarray, list[str]]:
        """Tiles ``ks`` of slide ``j`` and one error string per tile (``""``: read)."""
        job = self.jobs[j]
        tile_px = job["tile_px"]
        tiles = np.zeros((len(ks), tile_px, tile_px, 3), np.uint8)
        errors = [""] * len(ks)
        try:  # the tiles of one slide together: shared TIFF tiles are decoded once
            regions = self._slide(j).read_regions(
                job["xy"][ks], job["level"], (job["read_px"], job["read_px"])
            )
            for r, region in enumerate(regions):
                tiles[r] = resize_tile(region, tile_px)
            return tiles, errors
        except Exception:  # noqa: BLE001 - read tile by tile to record each failure
            self.open.pop(j, None)
        for r, k in enumerate(ks.tolist()):
            try:
                x, y = job["xy"][k]
                tiles[r] = read_tile_at(
                    self._slide(j), int(x), int(y), job["level"], job["read_px"], tile_px
                )
            except Exception as err:  # noqa: BLE001 - the slide is excluded downstream
                errors[r] = str(err)
                self.open.pop(j, None)
        return tiles, errors

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if "start" in batch:
            return self._batches(batch)
        js, ks = batch["job"], batch["k"]
        tile_px = self.jobs[int(js[0])]["tile_px"]
        tiles = np.zeros((len(js), tile_px, tile_px, 3), np.uint8)
        errors = np.array([""] * len(js), dtype=object)
        for j in np.unique(js).tolist():
            rows = np.flatnonzero(js == j)
            tiles[rows], errs = self._read(j, ks[rows])
            errors[rows] = errs
        return {"job": js, "k": ks, "tiles": tiles, "error": errors}

    def _batches(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        out: dict[str, list[Any]] = {"job": [], "start": [], "tiles": [], "error": []}
        for j, a, b in zip(batch["job"].tolist(), batch["start"].tolist(), batch["stop"].tolist()):
            tiles, errs = self._read(j, np.arange(a, b))
            out["job"].append(j)
            out["start"].append(a)
            out["tiles"].append(tiles)
            out["error"].append(next((e for e in errs if e), ""))
        return {
            "job": np.asarray(out["job"], dtype=np.int64),
            "start": np.asarray(out["start"], dtype=np.int64),
            "tiles": _stack(out["tiles"]),
            "error": np.asarray(out["error"], dtype=object),
        }


def _stack(arrays: list[np.ndarray]) -> np.ndarray:
    """One row per array: a regular array when the shapes agree, else an object array (Ray
    Data stores it as a variable-shaped tensor column)."""
    if len({a.shape for a in arrays}) == 1:
        return np.stack(arrays)
    out = np.empty(len(arrays), dtype=object)
    out[:] = arrays
    return out


class _Predictor:
    """Ray Data stage: one batch of uint8 tiles -> its float64 feature sums (and float16 tile
    features when tile-level outputs are written) with the frozen encoder."""

    def __init__(self, model: Any, device: str, tile_output: bool = False) -> None:
        from .loaders import load_encoder

        self.encoder = load_encoder(model, device=device)
        self.tile_output = tile_output

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if "start" not in batch:  # tile rows: features per tile
            feats = self.encoder.encode_array(batch["tiles"]).astype(np.float32)
            return {
                "job": batch["job"],
                "k": batch["k"],
                "features": feats,
                "error": batch["error"],
            }
        import torch

        nf = len(self.encoder.feature_names)
        out: dict[str, list[Any]] = {k: [] for k in ("sum", "sumsq", "finite", "n", "features")}
        for tiles, err in zip(batch["tiles"], batch["error"]):
            tiles = np.ascontiguousarray(np.asarray(tiles))
            out["n"].append(len(tiles))
            if err:  # the slide is excluded: do not spend the model on it
                out["sum"].append(np.zeros(nf))
                out["sumsq"].append(np.zeros(nf))
                out["finite"].append(True)
                out["features"].append(np.zeros((len(tiles), nf), np.float16))
                continue
            # the operations of encode_slides' loop, so that the sums are bit-identical
            feats = self.encoder(torch.from_numpy(tiles))
            f64 = feats.to(torch.float64)
            out["sum"].append(f64.sum(0).cpu().numpy())
            out["sumsq"].append(f64.square().sum(0).cpu().numpy())
            out["finite"].append(bool(torch.isfinite(feats).all()))
            out["features"].append(feats.half().cpu().numpy() if self.tile_output else None)
        res = {
            "job": batch["job"],
            "start": batch["start"],
            "error": batch["error"],
            "n": np.asarray(out["n"], dtype=np.int64),
            "sum": np.stack(out["sum"]),
            "sumsq": np.stack(out["sumsq"]),
            "finite": np.asarray(out["finite"], dtype=bool),
        }
        if self.tile_output:
            res["features"] = _stack(out["features"])
        return res


def _batch_rows(jobs: list[Any], batch_size: int) -> pd.DataFrame:
    """The engine's batches (see ``_TileDataset.batches``) as ``job, start, stop`` rows."""
    rows = [
        (j, a, min(a + batch_size, len(job.xy)))
        for j, job in enumerate(jobs)
        for a in range(0, len(job.xy), batch_size)
    ]
    return pd.DataFrame(rows, columns=["job", "start", "stop"])


def _plan(
    ray: Any,
    device: str,
    concurrency: int | None,
    read_concurrency: int | None,
    num_gpus_per_actor: float | None,
) -> tuple[str, int, int, float]:
    """Device, inference actors, reader actors and GPUs per actor for the connected cluster."""
    resources = ray.cluster_resources()
    gpus = float(resources.get("GPU", 0.0))
    cpus = float(resources.get("CPU", 1.0))
    if device not in ("auto", "cpu", "cuda"):
        raise EncoderError(f"device={device!r} is not allowed; allowed: auto, cpu, cuda")
    if device == "cuda" and gpus <= 0 and not num_gpus_per_actor:
        raise EncoderError(
            "device 'cuda' was asked for but the Ray cluster has no GPU "
            f"(resources: {int(cpus)} CPU); use --device cpu or a cluster with GPUs"
        )
    actor_device = "cuda" if device == "cuda" or (device == "auto" and gpus > 0) else "cpu"
    if num_gpus_per_actor is None:
        num_gpus_per_actor = 1.0 if actor_device == "cuda" else 0.0
    if concurrency is None:
        concurrency = max(1, int(gpus // num_gpus_per_actor)) if num_gpus_per_actor else 1
    if read_concurrency is None:
        read_concurrency = max(1, min(16, int(cpus) - int(concurrency)))
    if concurrency < 1 or read_concurrency < 1:
        raise EncoderError(
            f"Ray actors must be >= 1; got {concurrency} inference and {read_concurrency} reader "
            "actors"
        )
    return actor_device, int(concurrency), int(read_concurrency), float(num_gpus_per_actor)


def encode_slides_ray(
    slides: str | os.PathLike[str] | pd.DataFrame,
    model: Any,
    out_dir: str | os.PathLike[str],
    *,
    device: str = "auto",
    batch_size: int | None = None,
    concurrency: int | None = None,
    read_concurrency: int | None = None,
    num_gpus_per_actor: float | None = None,
    seed: int = 0,
    fusion: Literal["early", "late"] = "late",
    min_tissue: float = 0.5,
    backend: Literal["auto", "openslide", "tiffslide", "wsidicom", "image"] = "auto",
    allow_outside: bool = False,
    tile_output: bool = False,
    weights: str | os.PathLike[str] | None = None,
    address: str | None = None,
    ray_init: dict[str, Any] | None = None,
    progress: bool = True,
    grid_um: float | Literal["head", "tile"] = "head",
) -> EncodeResult:
    """Encode slides under Ray Data; same outputs, resume and representations as
    :func:`~tario_clinical.encode.encode_slides`.

    Parameters
    ----------
    slides, out_dir, seed, fusion, min_tissue, backend, allow_outside, tile_output, weights, grid_um
        As in :func:`~tario_clinical.encode.encode_slides`.
    model : "demo", preset name, model card path, dict, ModelCard or FrozenEncoder
        As in :func:`~tario_clinical.encode.encode_slides`; each Ray actor loads its own frozen
        copy from the (validated) model card, so weight files must be at the same path on
        every node.
    device : {"auto", "cpu", "cuda"}
        Device of the inference actors; ``"auto"`` uses GPUs when the cluster has any.
    batch_size : int, optional
        Tiles per batch (default from the model card, else :func:`default_batch_size` of the
        actors' device: 64 on CPU, as the single-machine engine).
    concurrency : int, optional
        Inference actors (default: one per GPU of the cluster, else 1).
    read_concurrency : int, optional
        Tile-reading actors (default: the cluster's CPUs less the inference actors, 1 to 16).
    num_gpus_per_actor : float, optional
        GPUs reserved by each inference actor (default 1 on GPU clusters, 0 on CPU).
    address : str, optional
        Address of a running Ray cluster (``"auto"``, ``"host:6379"``, ``"ray://host:10001"``);
        default: start a Ray instance on this machine (shut down again at the end). Ignored
        when Ray is already initialised in this process.
    ray_init : dict, optional
        Further keyword arguments for ``ray.init`` (e.g. ``{"num_cpus": 2}``).
    progress : bool
        Show a tqdm progress bar with tiles/s.

    Returns
    -------
    EncodeResult
        ``num_workers`` is the number of reader actors.

    Raises
    ------
    EncoderError
        If Ray is not installed, the cluster cannot be reached or has no GPU for
        ``device="cuda"``, the model cannot be loaded, or every slide is excluded.
    OutputError, SchemaError
        As in :func:`~tario_clinical.encode.encode_slides`.
    """
    try:
        import ray
    except ImportError as err:
        raise EncoderError("the Ray engine needs ray: pip install 'tario-clinical[ray]'") from err
    from tqdm.auto import tqdm

    from .loaders import load_encoder

    if fusion not in FUSIONS:
        raise EncoderError(f"fusion={fusion!r} is not allowed; allowed: {', '.join(FUSIONS)}")
    manifest = read_slide_manifest(slides, allow_outside=allow_outside)
    check_manifest(manifest)
    # driver copy on CPU: validates the card and weights, gives hashes and feature names
    encoder = load_encoder(model, device="cpu", weights=weights)
    if batch_size is not None and batch_size < 1:
        raise EncoderError(f"batch_size must be >= 1; got {batch_size}")
    out = ensure_output_dir(out_dir)
    clean_stale_tmp(out)
    fp, jobs, done, excluded = start_run(manifest, encoder, out, min_tissue, backend, grid_um)
    n_total = sum(len(j.xy) for j in jobs)
    t0 = time.perf_counter()
    plan: tuple[str, int, int, float] = ("cpu", 0, 0, 0.0)
    bs = int(batch_size or encoder.card.data.get("batch_size") or 64)
    started = False
    if n_total:
        if not ray.is_initialized():
            kwargs = {"include_dashboard": False, "log_to_driver": False, **(ray_init or {})}
            if address is not None:
                kwargs["address"] = address
            try:
                ray.init(**kwargs)
            except Exception as err:  # noqa: BLE001 - connection errors vary by Ray version
                where = f"at {address!r}" if address else "on this machine"
                raise EncoderError(f"cannot start or reach a Ray cluster {where}: {err}") from err
            started = True
        try:
            plan = _plan(ray, device, concurrency, read_concurrency, num_gpus_per_actor)
            # the engine's default for the actors' device (on CUDA without measuring the GPU's
            # free memory, which the driver cannot see)
            bs = int(
                batch_size
                or encoder.card.data.get("batch_size")
                or default_batch_size(plan[0], encoder.card.tile_px)
            )
            _run(ray, jobs, done, excluded, out, fp["id"], encoder, plan, bs, backend,
                 tile_output, progress, tqdm)  # fmt: skip
        finally:
            if started:
                ray.shutdown()
    actor_device, actors, readers, gpus = plan
    engine = {
        "engine": "ray",
        "ray_version": str(ray.__version__),
        "ray_address": address or ("local" if started else "existing"),
        "ray_actors": actors,
        "ray_readers": readers,
        "ray_gpus_per_actor": gpus,
        "ray_device": actor_device,
    }
    return assemble_outputs(
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
        num_workers=readers,
        batch_size=bs,
        manifest_source=None if isinstance(slides, pd.DataFrame) else str(slides),
        engine=engine,
    )


def _run(
    ray: Any,
    jobs: list[Any],
    done: dict[str, dict[str, Any]],
    excluded: list[dict[str, str]],
    out: Any,
    run_id: str,
    encoder: Any,
    plan: tuple[str, int, int, float],
    bs: int,
    backend: str,
    tile_output: bool,
    progress: bool,
    tqdm: Any,
) -> None:
    """The tile loop under Ray Data: finished slides go to ``done`` (and their per-slide files),
    failed ones to ``excluded``."""
    actor_device, actors, readers, gpus = plan
    ctx = ray.data.DataContext.get_current()
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
    rows = _batch_rows(jobs, bs)
    # several blocks per reader actor, so that every actor has work (one block per frame: a
    # repartition would need CPU for its tasks while the actors hold every CPU)
    n_blocks = min(len(rows), max(8 * readers, 2 * actors))
    ds = ray.data.from_pandas(
        [rows.iloc[ix] for ix in np.array_split(np.arange(len(rows)), n_blocks)]
    )
    ds = ds.map_batches(
        _Reader,
        fn_constructor_kwargs={"jobs": specs, "backend": backend},
        batch_size=1,
        compute=ray.data.ActorPoolStrategy(size=readers),
    )
    ds = ds.map_batches(
        _Predictor,
        fn_constructor_kwargs={
            "model": encoder.card,
            "device": actor_device,
            "tile_output": tile_output,
        },
        batch_size=1,  # one row = one of the engine's batches
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_gpus=gpus or None,
    )
    # per slide: batch start -> (sum, sumsq, finite, error, features)
    parts: dict[int, dict[int, tuple[Any, ...]]] = {j: {} for j in range(len(jobs))}
    counts = dict.fromkeys(range(len(jobs)), 0)
    features = list(encoder.feature_names)
    bar = tqdm(
        total=sum(len(j.xy) for j in jobs), unit="tile", disable=not progress, desc="encode (ray)"
    )
    try:
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            feats = batch.get("features")
            for i, (j, a) in enumerate(zip(batch["job"].tolist(), batch["start"].tolist())):
                n = int(batch["n"][i])
                parts[j][a] = (
                    batch["sum"][i],
                    batch["sumsq"][i],
                    bool(batch["finite"][i]),
                    str(batch["error"][i] or ""),
                    None if feats is None else np.asarray(feats[i]),
                )
                counts[j] += n
                bar.update(n)
                if counts[j] == len(jobs[j].xy):
                    _finish(
                        jobs[j], parts.pop(j), done, excluded, out, run_id, features, tile_output
                    )
    finally:
        bar.close()


def _finish(
    job: Any,
    parts: dict[int, tuple[Any, ...]],
    done: dict[str, dict[str, Any]],
    excluded: list[dict[str, str]],
    out: Any,
    run_id: str,
    features: list[str],
    tile_output: bool,
) -> None:
    """Add a slide's batch sums in batch order (as the engine does) and write its result, or
    record its exclusion."""
    nf = len(features)
    s = np.zeros(nf, dtype=np.float64)
    q = np.zeros(nf, dtype=np.float64)
    failed: str | None = None
    finite = True
    tiles: list[np.ndarray] | None = [] if tile_output else None
    for a in sorted(parts):
        bsum, bsq, ok, err, feats = parts[a]
        if err and failed is None:
            failed = err
        if failed is None:
            s += bsum
            q += bsq
            finite &= ok
            if tiles is not None:
                tiles.append(feats)
    if failed is None and not finite:
        failed = f"model produced non-finite features for slide {job.slide_id!r}"
    if failed is not None:
        excluded.append(exclusion(job, failed))
        return
    done[job.slide_id] = finish_slide(out, job, run_id, s, q, tiles, features)
