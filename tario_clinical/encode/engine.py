"""Batched inference engine: slides -> tiles -> frozen encoder -> streamed per-slide pooling.

For each slide the tissue mask and tile grid are computed on a thumbnail; DataLoader workers
read and decode tiles (each worker keeps its own slide handles), batches are pinned on CUDA and
copied asynchronously, and the encoder output is folded into running sums (float64) so memory
does not grow with slide size. A batch never spans two slides, so a slide's result does not
depend on which other slides are processed in the same run: a rerun that skips finished slides
gives bit-identical results. The output folder (layout, resume, pooling) is
:mod:`~tario_clinical.encode.run_folder`'s, shared with the Ray runner.
"""

from __future__ import annotations

import logging
import os
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from .._checks import renamed_parameters
from ..errors import EncoderError
from ..provenance import ensure_output_dir
from ..slides import open_slide, read_slide_manifest
from ..slides.tiling import read_tile_at, resize_tile
from .run_folder import (
    FUSIONS,
    EncodeResult,
    SlideJob,
    assemble_outputs,
    check_manifest,
    clean_stale_tmp,
    exclusion,
    finish_slide,
    pool_patients,
    start_run,
)

__all__ = [
    "GPU_DECODE",
    "EncodeResult",
    "encode_slides",
    "FUSIONS",
    "pool_patients",
    "default_batch_size",
    "default_num_workers",
]

logger = logging.getLogger(__name__)

GPU_DECODE = ("auto", "on", "off")


class _TileDataset:
    """Map-style dataset over (slide job, tile) pairs; opens slides lazily per worker."""

    def __init__(
        self,
        jobs: Sequence[SlideJob],
        backend: str,
        *,
        max_open: int = 4,
        decode_threads: int = 1,
        jpeg: bool = False,
    ) -> None:
        self.jobs = list(jobs)
        self.backend = backend
        self.decode_threads = decode_threads
        #: hand over the compressed JPEG tiles of a batch (decoded on the model's device)
        #: where the slide level allows it, instead of pixels
        self.jpeg = jpeg
        self.offsets = np.cumsum([0] + [len(j.xy) for j in self.jobs])
        self.max_open = max_open
        #: tiles per read (set by :meth:`batches`); bounds each slide's decoded-tile cache
        self.batch_size = 1
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
            _bound_tile_cache(s, job, self.batch_size)
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
        if self.jpeg and job.read_px == job.tile_px:
            jt = slide.jpeg_tiles(xy, job.level, (job.read_px, job.read_px))
            if jt is not None:
                return _Batch(jt, j, np.asarray(ks, dtype=np.int64))  # type: ignore[return-value]
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

    def read_pixels(self, j: int, ks: Any) -> tuple[Any, list[str]]:
        """Tiles ``ks`` of slide ``j`` read as pixels in this process (no JPEG hand-over):
        a uint8 ``(n, px, px, 3)`` tensor and the read errors."""
        jpeg, self.jpeg = self.jpeg, False
        try:
            tiles, _, _, errs = _collate(self.__getitems__([int(self.offsets[j] + k) for k in ks]))
        finally:
            self.jpeg = jpeg
        return tiles, errs

    def close(self) -> None:
        """Close the slides this process opened."""
        while self._open:
            _, s = self._open.popitem()
            s.close()

    def batches(self, batch_size: int) -> list[list[int]]:
        """Batches of flat indices that never cross a slide boundary."""
        self.batch_size = int(batch_size)
        out = []
        for j in range(len(self.jobs)):
            a, b = int(self.offsets[j]), int(self.offsets[j + 1])
            out.extend(list(range(s, min(s + batch_size, b))) for s in range(a, b, batch_size))
        return out


#: the most a slide's decoded-TIFF-tile cache may hold in the tile loop (see _bound_tile_cache)
TILE_CACHE_MAX_BYTES = 16 << 20


def _bound_tile_cache(slide: Any, job: SlideJob, batch_size: int) -> int | None:
    """Bound the decoded-TIFF-tile cache of ``slide`` by the reads of the tile loop, not the slide.

    Tiles are read in raster order, ``batch_size`` at a time; a read decodes the TIFF tiles
    its tiles share once, and the next read of the same grid row starts in the TIFF column the
    last one ended in. The cache is bounded to twice the TIFF tiles of the largest read (the
    decoder keeps a read's tiles only when they fill at most half of the cache): enough for
    that reuse, and the same for any slide size. Where that exceeds
    :data:`TILE_CACHE_MAX_BYTES` (e.g. batches of 64 tiles of 224 px on 256-px TIFF tiles,
    ~114 TIFF tiles a read) the cache holds only twice the TIFF tiles of one tile (the first
    tile of a batch is read alone first): whole reads are not kept, and the TIFF column a read
    shares with the next one is decoded twice.

    TIFF tiles shared by two grid rows are decoded again: keeping them would take one row of
    TIFF tiles across the slide, which the 48 MB default could not hold for slides wider than
    ~120 TIFF tiles (~30k px) either (an LRU cache smaller than a row keeps none of it in a
    raster scan). On smaller slides the default kept every decoded tile, and peak RSS grew
    with the slide (issue 17: ViT-S/16, batch 8, +18 % from ~25 to ~275 tiles per slide;
    bounding by one row plus two reads still gave +14 % at ~1,100 tiles, glibc keeping the
    heap that long-lived cached tiles pin; ``benchmarks/results/encode_cpu.json``). The bound
    decides only which TIFF tiles are decoded again: pixels are unchanged.

    Uses the slide's TIFF tile layout (``Slide.tiff_tile_layout``) and sets the cap with
    ``Slide.limit_tile_cache``; returns the bound in bytes, or ``None`` where the level is not
    decoded directly (nothing is cached then).
    """
    layout = getattr(slide, "tiff_tile_layout", None)
    lay = layout(job.level) if layout is not None else None
    if lay is None or len(job.xy) == 0:
        return None
    lv = _TileLayout(*lay)
    ds = float(slide.level_downsamples[job.level])
    lxy = np.floor(np.asarray(job.xy, dtype=np.float64) / ds).astype(np.int64)
    px = int(job.read_px)
    c0, c1 = lxy[:, 0] // lv.tile_w, (lxy[:, 0] + px - 1) // lv.tile_w
    r0, r1 = lxy[:, 1] // lv.tile_h, (lxy[:, 1] + px - 1) // lv.tile_h
    bs = max(1, int(batch_size))
    if int((c1 - c0).max()) <= 1 and int((r1 - r0).max()) <= 1:
        # every tile within 2 x 2 TIFF tiles: the exact TIFF tiles of each batch
        keys = r0[:, None] * lv.n_cols + c0[:, None] + np.array([0, 1, lv.n_cols, lv.n_cols + 1])
        one = np.ones(len(c0), dtype=bool)
        valid = np.stack([one, c1 > c0, r1 > r0, (c1 > c0) & (r1 > r0)], axis=1)
        keys = np.where(valid, keys, -1)
        per_read = max(
            int((np.unique(keys[a : a + bs]) >= 0).sum()) for a in range(0, len(keys), bs)
        )
    else:  # tiles larger than a TIFF tile: a bound, not the exact union
        per_read = int(((r1 - r0 + 1) * (c1 - c0 + 1)).max()) * bs
    tile_bytes = lv.tile_w * lv.tile_h * lv.samples
    bound = 2 * per_read * tile_bytes
    if bound > TILE_CACHE_MAX_BYTES:
        bound = 2 * int(((r1 - r0 + 1) * (c1 - c0 + 1)).max()) * tile_bytes
    return slide.limit_tile_cache(bound)


@dataclass(frozen=True)
class _TileLayout:
    """TIFF tile geometry of one slide level (``Slide.tiff_tile_layout``)."""

    tile_w: int
    tile_h: int
    n_cols: int
    samples: int


@dataclass(frozen=True)
class _Batch:
    """A whole batch of one slide read at once: tiles already stacked (no per-tile copies), or
    the slide's compressed JPEG tiles (:class:`~tario_clinical.slides._tiffdirect.JpegTiles`)
    for decoding on the model's device; :func:`_collate` passes it on as it is."""

    tiles: Any
    job: int
    ks: np.ndarray


def _collate(
    items: list[tuple[np.ndarray, int, int, str]] | _Batch,
) -> tuple[Any, int, Any, list[str]]:
    import torch

    if isinstance(items, _Batch):
        tiles = items.tiles
        if isinstance(tiles, np.ndarray):
            tiles = torch.from_numpy(tiles)
        return tiles, items.job, torch.from_numpy(items.ks), []
    tiles = torch.from_numpy(np.stack([t[0] for t in items]))
    job = items[0][1]
    idx = torch.tensor([t[2] for t in items], dtype=torch.int64)
    errs = [t[3] for t in items if t[3]]
    return tiles, job, idx, errs


class _DeviceTiles:
    """Turns the JPEG hand-overs of the tile loader into tiles on the model's device.

    The first batch of every slide is checked: its first tile, decoded on the device, is
    compared with the same tile read by the slide reader on the CPU. A slide whose tile differs
    by more than ``tolerance`` grey levels on average (a decoder reading the colour space
    differently would differ by tens), or whose JPEG tiles fail to decode, is read as pixels
    from then on (in this process), so decoding on the device cannot change which colours a
    slide has; the differences seen are recorded in provenance.
    """

    def __init__(self, decoder: Any, ds: _TileDataset, *, tolerance: float = 1.0) -> None:
        self.decoder = decoder
        self.ds = ds
        self.tolerance = float(tolerance)
        self.checked: set[int] = set()
        self.fallback: dict[int, str] = {}
        self.max_abs_diff = 0
        self.mean_abs_diff = 0.0
        self.n_tiles = 0

    def __call__(self, jt: Any, j: int, idx: Any) -> tuple[Any, list[str]]:
        if j in self.fallback:
            return self.ds.read_pixels(j, idx.tolist())
        try:
            tiles = self.decoder.regions(jt)
        except Exception as err:  # noqa: BLE001 - read the slide's pixels instead
            self.fallback[j] = f"decoding failed: {err}"
            logger.warning("slide %s: JPEG decoding on the device failed (%s); reading pixels",
                           self.ds.jobs[j].slide_id, err)  # fmt: skip
            return self.ds.read_pixels(j, idx.tolist())
        if j not in self.checked:
            self.checked.add(j)
            job = self.ds.jobs[j]
            x, y = job.xy[int(idx[0])]
            try:
                ref = read_tile_at(
                    self.ds._slide(j), int(x), int(y), job.level, job.read_px, job.tile_px
                )
            except Exception as err:  # noqa: BLE001 - the pixel path reports the read error
                self.fallback[j] = f"reference read failed: {err}"
                return self.ds.read_pixels(j, idx.tolist())
            diff = np.abs(tiles[0].cpu().numpy().astype(np.int16) - ref.astype(np.int16))
            mad = float(diff.mean())
            self.max_abs_diff = max(self.max_abs_diff, int(diff.max()))
            self.mean_abs_diff = max(self.mean_abs_diff, mad)
            if mad > self.tolerance:
                self.fallback[j] = f"mean |difference| {mad:.2f} > {self.tolerance}"
                logger.warning("slide %s: JPEG tiles decoded on the device differ from the "
                               "reader's (mean |diff| %.2f); reading pixels", job.slide_id, mad)  # fmt: skip
                return self.ds.read_pixels(j, idx.tolist())
        self.n_tiles += len(idx)
        return tiles, []

    def record(self) -> dict[str, Any]:
        """What happened, for provenance."""
        return {
            "decoder": f"{self.decoder.decoder} on {self.decoder.device}",
            "tiles_decoded_on_device": int(self.n_tiles),
            "slides_checked": len(self.checked),
            "check_max_abs_diff": int(self.max_abs_diff),
            "check_mean_abs_diff": round(self.mean_abs_diff, 4),
            "slides_read_as_pixels": {
                self.ds.jobs[j].slide_id: r for j, r in self.fallback.items()
            },
        }


def _device_decoder(mode: str, device: str) -> tuple[Any, str]:
    """The JPEG decoder on ``device`` for ``gpu_decode=mode`` (or None) and a description."""
    from . import jpeg_decode

    if mode not in GPU_DECODE:
        raise EncoderError(f"gpu_decode={mode!r} is not allowed; allowed: {', '.join(GPU_DECODE)}")
    if mode == "off":
        return None, "off"
    name = jpeg_decode.DEFAULT_DECODER
    if mode == "auto":
        if not device.startswith("cuda"):
            return None, "off (auto: not on CUDA)"
        why = jpeg_decode.gpu_decode_unavailable() if name == "torchvision" else None
        if why:
            logger.info("JPEG tiles are decoded on the CPU: %s", why)
            return None, f"off (auto: {why})"
    return jpeg_decode.JpegBatchDecoder(device, decoder=name), "on"


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


@renamed_parameters(num_workers="n_jobs")
def encode_slides(
    slides: str | os.PathLike[str] | pd.DataFrame,
    model: Any,
    out_dir: str | os.PathLike[str],
    *,
    device: str = "auto",
    batch_size: int | None = None,
    n_jobs: int | None = None,
    seed: int = 0,
    progress: bool = True,
    tile_output: bool = False,
    fusion: Literal["early", "late"] = "late",
    min_tissue: float = 0.5,
    backend: Literal["auto", "openslide", "tiffslide", "wsidicom", "image"] = "auto",
    allow_outside: bool = False,
    weights: str | os.PathLike[str] | None = None,
    gpu_decode: Literal["auto", "on", "off"] = "auto",
    precision: Literal["auto", "float32", "bfloat16"] = "auto",
    compile: bool | str = False,  # noqa: A002 - torch's word for it
    grid_um: float | Literal["head", "tile"] = "head",
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
    n_jobs : int, optional
        DataLoader worker processes reading tiles (``num_workers`` of PyTorch's DataLoader;
        the old keyword ``num_workers=`` is accepted for one release with a
        :class:`DeprecationWarning`); default :func:`default_num_workers`
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
    gpu_decode : {"auto", "on", "off"}
        Decode the slides' JPEG tiles on the model's device in batches
        (``torchvision.io.decode_jpeg``; see :mod:`~tario_clinical.encode.jpeg_decode`): the
        readers only fetch compressed tiles. ``auto``: on CUDA when torchvision is importable.
        ``on``: also on CPU (torchvision's libjpeg-turbo decoder). Used where a slide level
        stores JPEG tiles read at the model's size; other slides are read as pixels. The first
        tile of every slide is compared with the CPU reader's (see provenance
        ``parameters.gpu_decode_check``).
    precision : {"auto", "float32", "bfloat16"}
        Compute dtype of the model (see :func:`load_encoder`); ``auto``: bf16 autocast on CUDA.
    compile : bool or str
        ``torch.compile`` the model (a string names the compile backend); falls back to eager
        execution, with a warning, where compiling fails (see :func:`load_encoder`).
    grid_um : float, "head" or "tile"
        Prediction grid: tiles of the model's field of view centred every ``grid_um`` µm
        (e.g. 18 or 35 µm bins; tiles overlap when this is below the tile's side).
        ``"head"``: the spacing the model's ExpressionHead was fitted on, non-overlapping
        tiles when it records none; ``"tile"``: non-overlapping tiles. Recorded in provenance
        (``parameters.tiling.grid_um`` and ``head_grid_um``) and in the folder's fingerprint.

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
    check_manifest(manifest)
    encoder = load_encoder(
        model, device=device, weights=weights, precision=precision, compile=compile
    )
    decoder, decode_mode = _device_decoder(gpu_decode, encoder.device)
    bs = int(
        batch_size
        or encoder.card.data.get("batch_size")
        or default_batch_size(encoder.device, encoder.card.tile_px)
    )
    if bs < 1:
        raise EncoderError(f"batch_size must be >= 1; got {bs}")
    num_workers = default_num_workers(encoder.device) if n_jobs is None else n_jobs
    if num_workers < 0:
        raise EncoderError(f"n_jobs must be >= 0; got {num_workers}")
    out = ensure_output_dir(out_dir)
    clean_stale_tmp(out)
    fp, jobs, done, excluded = start_run(manifest, encoder, out, min_tissue, backend, grid_um)
    # read in the main process (no workers): the model's threads are idle while a batch is
    # read, so its TIFF tiles are decoded in as many threads
    ds = _TileDataset(
        jobs,
        backend,
        decode_threads=torch.get_num_threads() if num_workers == 0 else 1,
        jpeg=decoder is not None,
    )
    device_tiles = _DeviceTiles(decoder, ds) if decoder is not None else None
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
                if device_tiles is not None and not isinstance(tiles, torch.Tensor):
                    tiles, errs = device_tiles(tiles, j, idx)  # JPEG tiles -> device tiles
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
                        excluded.append(exclusion(job, failed))
                        logger.warning("excluding slide %s: %s", job.slide_id, failed)
                    else:
                        done[job.slide_id] = finish_slide(
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
    return assemble_outputs(
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
        engine={
            "engine": "local",
            "gpu_decode": decode_mode,
            **({"gpu_decode_check": device_tiles.record()} if device_tiles else {}),
        },
    )
