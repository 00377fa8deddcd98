"""Synthetic H&E slides whose morphology carries the latent gene programs of a simulated trial.

Images are rendered in optical density (Beer-Lambert) from two stains with Ruifrok-Johnston
colour vectors: eosin for stroma (fibrous texture) and cytoplasm, haematoxylin for nuclei; the
background is near-white glass and tissue forms a few irregular islands. Morphology follows the
patient's programs (``truth.latent``), so genotype signal reaches the pixels:

====  ===================================  =================================
prog  planted shift                        morphology
====  ===================================  =================================
P00   EGFR-mutant                          tumour nuclear density ``x exp(0.40 z)``
P01   KRAS-mutant                          nuclear radius ``x exp(0.16 z)``
P02   STK11-mutant                         haematoxylin intensity ``x exp(0.15 z)``
P03   PTEN-mutant                          stroma fibre length and contrast
P04   immune / response                    lymphocyte density ``x exp(0.50 z)``
====  ===================================  =================================

Each slide also gets nuisance variation that carries no signal (stain vectors, section
thickness, noise). Slides are written as pyramidal tiled TIFF (JPEG tiles, levels 1, 2, 4, 8) with
the resolution in the TIFF resolution tags, which openslide (``openslide.mpp-x``) and tiffslide
(``tiffslide.mpp-x``) both report.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import OutputError

__all__ = [
    "MORPHOLOGY_PROGRAMS",
    "synthesize_he",
    "write_pyramidal_tiff",
    "write_synthetic_slides",
]

logger = logging.getLogger(__name__)

#: programs that drive morphology, in the order of the table above
MORPHOLOGY_PROGRAMS = ("P00", "P01", "P02", "P03", "P04")

# Ruifrok & Johnston stain OD vectors (unit length)
_H_VEC = np.array([0.650, 0.704, 0.286])
_E_VEC = np.array([0.072, 0.990, 0.105])


def _programs_vector(programs: Mapping[str, float] | Sequence[float] | np.ndarray) -> np.ndarray:
    if isinstance(programs, Mapping):
        return np.array([float(programs.get(p, 0.0)) for p in MORPHOLOGY_PROGRAMS])
    z = np.asarray(programs, dtype=float).ravel()
    out = np.zeros(len(MORPHOLOGY_PROGRAMS))
    out[: min(len(z), len(out))] = z[: len(out)]
    return out


def _disc(radius: float, elong: float, theta: float) -> np.ndarray:
    """Soft-edged (anti-aliased) elliptical disc kernel."""
    half = int(np.ceil(radius * max(elong, 1.0))) + 1
    yy, xx = np.mgrid[-half : half + 1, -half : half + 1].astype(np.float32)
    u = xx * np.cos(theta) + yy * np.sin(theta)
    v = -xx * np.sin(theta) + yy * np.cos(theta)
    d = np.sqrt((u / elong) ** 2 + (v * elong) ** 2)
    return np.clip(radius - d + 0.5, 0.0, 1.0).astype(np.float32)


def _nuclei(
    rng: np.random.Generator,
    shape: tuple[int, int],
    *,
    density_per_px: float,
    radius_px: float,
    radius_cv: float,
    elong: float,
) -> np.ndarray:
    """Stamp soft elliptical nuclei at Poisson positions; returns coverage in [0, 1]."""
    H, W = shape
    cover = np.zeros(shape, np.float32)
    n = int(rng.poisson(density_per_px * H * W))
    if n == 0:
        return cover
    ys = rng.integers(0, H, n)
    xs = rng.integers(0, W, n)
    radii = radius_px * np.exp(rng.normal(0.0, radius_cv, n))
    # quantise radius (1/8 px) and orientation (8 bins) so kernels are computed once
    rq = np.maximum(np.round(radii * 8) / 8, 0.5)
    aq = rng.integers(0, 8, n) if elong != 1.0 else np.zeros(n, dtype=int)
    cache: dict[tuple[float, int], np.ndarray] = {}
    for y, x, r, a in zip(ys, xs, rq, aq):
        key = (float(r), int(a))
        k = cache.get(key)
        if k is None:
            k = cache[key] = _disc(float(r), elong, float(a) * np.pi / 8)
        h = k.shape[0] // 2
        y0, x0, y1, x1 = y - h, x - h, y + h + 1, x + h + 1
        ky0, kx0 = max(0, -y0), max(0, -x0)
        ky1, kx1 = k.shape[0] - max(0, y1 - H), k.shape[1] - max(0, x1 - W)
        sl = cover[max(y0, 0) : min(y1, H), max(x0, 0) : min(x1, W)]
        np.maximum(sl, k[ky0:ky1, kx0:kx1], out=sl)
    return cover


def synthesize_he(
    programs: Mapping[str, float] | Sequence[float] | np.ndarray,
    *,
    size_px: int | tuple[int, int] = 2048,
    mpp: float = 0.5,
    seed: int | np.random.SeedSequence | np.random.Generator = 0,
    islands: bool = True,
) -> np.ndarray:
    """Render one synthetic H&E image.

    Parameters
    ----------
    programs : mapping or array
        Values of the morphology programs ``P00..P04`` (missing ones are 0).
    size_px : int or (int, int)
        Image side, or ``(width, height)``, in pixels.
    mpp : float
        µm per pixel; morphology is specified in µm, so the same programs give the same tissue
        at any resolution.
    seed : int, SeedSequence or Generator
        Randomness of this image (cell positions, texture, nuisance stain variation).
    islands : bool
        Tissue islands on glass (a slide) or tissue everywhere (a tile for paired training).

    Returns
    -------
    numpy.ndarray
        ``H x W x 3`` uint8 RGB.
    """
    from scipy import ndimage

    z = _programs_vector(programs)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    if isinstance(size_px, int | np.integer):
        W = H = int(size_px)
    else:
        W, H = (int(v) for v in size_px)
    shape = (H, W)
    um2 = mpp * mpp

    # ---- tissue layout
    if islands:
        # layout drawn on a coarse 16 µm grid, then upsampled
        f = max(1, int(round(16.0 / mpp)))
        h, w = -(-H // f), -(-W // f)
        field = ndimage.gaussian_filter(rng.standard_normal((h, w)), 110.0 / (f * mpp))
        field /= field.std() + 1e-12
        yy, xx = np.mgrid[0:h, 0:w]
        r2 = ((yy - h / 2) / (0.55 * h)) ** 2 + ((xx - w / 2) / (0.55 * w)) ** 2
        field = field + 1.4 * (1.0 - r2)
        coarse = ndimage.gaussian_filter((field > np.quantile(field, 0.40)).astype(np.float32), 0.7)
        tissue_soft = np.clip(
            ndimage.zoom(coarse, f, order=1)[:H, :W].astype(np.float32) * 2.0 - 0.5, 0.0, 1.0
        )
    else:
        tissue_soft = np.ones(shape, np.float32)

    # ---- stroma (eosin) with fibres; P03 sets fibre length and contrast
    fibre_len = (5.0 * np.exp(0.35 * z[3])) / mpp
    fibre_w = 1.2 / mpp
    noise = rng.standard_normal(shape, dtype=np.float32)
    sig = (fibre_w, fibre_len) if rng.random() < 0.5 else (fibre_len, fibre_w)
    fib = ndimage.gaussian_filter(noise, sig, truncate=3.0)
    fib /= fib.std() + 1e-12
    contrast = 0.20 * np.exp(0.30 * z[3])
    eosin = 0.42 * np.exp(rng.normal(0, 0.06)) * (1.0 + contrast * fib)

    # ---- tumour nuclei: P00 density, P01 size, P02 haematoxylin intensity
    density = 0.0045 * np.exp(0.40 * z[0]) * um2
    radius = 3.0 * np.exp(0.16 * z[1]) / mpp
    cover = _nuclei(
        rng, shape, density_per_px=density, radius_px=radius, radius_cv=0.12, elong=1.25
    )
    chrom = np.clip(0.5 + 0.35 * ndimage.uniform_filter(noise[::-1], 2), 0.0, 1.0)
    h_int = 0.85 * np.exp(0.15 * z[2]) * np.exp(rng.normal(0, 0.04))
    # ---- lymphocytes: P04 density, small round dark nuclei
    lym_density = 0.0010 * np.exp(0.50 * z[4]) * um2
    lcover = _nuclei(
        rng, shape, density_per_px=lym_density, radius_px=2.0 / mpp, radius_cv=0.08, elong=1.0
    )
    haem = h_int * cover * (0.6 + 0.6 * chrom) + 1.25 * lcover
    eosin = eosin * (1.0 - 0.6 * np.maximum(cover, lcover)) + 0.05 * cover

    # ---- optical density -> RGB, nuisance stain vectors
    hv = _H_VEC + rng.normal(0, 0.02, 3)
    ev = _E_VEC + rng.normal(0, 0.02, 3)
    hv = (hv / np.linalg.norm(hv)).astype(np.float32)
    ev = (ev / np.linalg.norm(ev)).astype(np.float32)
    od = (haem[..., None] * hv + np.clip(eosin, 0, None)[..., None] * ev) * tissue_soft[..., None]
    od += 0.035  # glass / mounting medium
    od += 0.012 * rng.standard_normal(shape + (3,), dtype=np.float32)
    rgb = 255.0 * np.exp(-np.clip(od, 0, None))
    return np.clip(rgb + 0.5, 0, 255).astype(np.uint8)


def write_pyramidal_tiff(
    path: str | os.PathLike[str],
    image: np.ndarray,
    *,
    mpp: float,
    downsamples: Sequence[int] = (1, 2, 4, 8),
    tile: int = 256,
    compression: str = "jpeg",
    quality: int = 90,
) -> Path:
    """Write ``image`` as a pyramidal tiled TIFF readable by openslide and tiffslide.

    The file is written to a temporary name beside ``path`` and renamed into place, so a
    reader never sees a half-written slide.

    Parameters
    ----------
    path : path-like
        Destination ``.tiff``.
    image : numpy.ndarray
        ``H x W x 3`` uint8 RGB.
    mpp : float
        µm per level-0 pixel (stored in the resolution tags, unit centimetre).
    downsamples : sequence of int
        Pyramid levels (first must be 1).
    tile : int
        TIFF tile side (multiple of 16).
    compression : {"jpeg", "zlib", "none"}
        Tile compression.
    quality : int
        JPEG quality.

    Returns
    -------
    pathlib.Path
    """
    import tifffile
    from PIL import Image

    p = Path(path)
    tmp = p.with_name(f".{p.name}.tmp{os.getpid()}")
    comp: Any = None if compression == "none" else compression
    args: dict[str, Any] = {}
    if compression == "jpeg":
        args["compressionargs"] = {"level": quality}
    base = Image.fromarray(image)
    try:
        with tifffile.TiffWriter(tmp, bigtiff=False) as tw:
            for i, ds in enumerate(downsamples):
                if ds == 1:
                    arr = image
                else:
                    w, h = image.shape[1] // ds, image.shape[0] // ds
                    arr = np.asarray(
                        base.reduce(ds) if hasattr(base, "reduce") else base.resize((w, h))
                    )
                px_per_cm = 1e4 / (mpp * ds)
                tw.write(
                    np.ascontiguousarray(arr),
                    tile=(tile, tile),
                    photometric="rgb",
                    compression=comp,
                    resolution=(px_per_cm, px_per_cm),
                    resolutionunit="CENTIMETER",
                    subfiletype=0 if i == 0 else 1,
                    software="tario_clinical synthetic H&E",
                    metadata=None,
                    **args,
                )
        os.replace(tmp, p)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return p


def write_synthetic_slides(
    trial: Any,
    out_dir: str | os.PathLike[str],
    *,
    seed: int = 0,
    slides_per_patient: int = 1,
    size_px: int = 1024,
    mpp: float = 1.0,
    patients: Sequence[str] | None = None,
    compression: str = "jpeg",
) -> pd.DataFrame:
    """Render and write synthetic H&E slides for the patients of a simulated trial.

    Writes ``out_dir/slides/<slide_id>.tiff`` and ``out_dir/slides.csv`` (columns ``slide_id,
    patient_id, path, stain, timepoint, specimen``; ``path`` relative to ``out_dir``; no ``mpp``
    column because the files carry it). Slides are written atomically; existing slide files are
    overwritten.

    Parameters
    ----------
    trial : SimulatedTrial or DataFrame
        A :class:`~tario_clinical.simulate.SimulatedTrial` (its ``truth.latent`` is used) or a
        patients x programs DataFrame indexed by ``patient_id`` with columns ``P00..P04``.
    out_dir : path-like
        Output folder (created).
    seed : int
        Seed; slide ``i`` (manifest order) uses child ``i`` of ``SeedSequence(seed)``.
    slides_per_patient : int
        Slides per patient (independent sections of the same tumour).
    size_px : int
        Slide side in level-0 pixels.
    mpp : float
        µm per level-0 pixel.
    patients : sequence of str, optional
        Subset of patient ids (default: all, in table order).
    compression : {"jpeg", "zlib", "none"}
        TIFF tile compression.

    Returns
    -------
    pandas.DataFrame
        The manifest as written to ``slides.csv``.

    Raises
    ------
    OutputError
        If ``out_dir`` cannot be written.
    ValueError
        If the latent table lacks programs ``P00..P04`` or a requested patient.

    Examples
    --------
    >>> from tario_clinical.simulate import simulate_trial
    >>> trial = simulate_trial(40, seed=1)  # doctest: +SKIP
    >>> manifest = write_synthetic_slides(trial, "out", seed=1, size_px=1024)  # doctest: +SKIP
    """
    latent = trial if isinstance(trial, pd.DataFrame) else trial.truth.latent
    missing = [p for p in MORPHOLOGY_PROGRAMS if p not in latent.columns]
    if missing:
        raise ValueError(
            f"latent programs table lacks columns {missing}; expected {list(MORPHOLOGY_PROGRAMS)}"
        )
    if int(slides_per_patient) < 1:
        raise ValueError(f"slides_per_patient must be >= 1; got {slides_per_patient!r}")
    if compression not in ("jpeg", "zlib", "none"):
        raise ValueError(f"compression={compression!r} not allowed; allowed: jpeg, zlib, none")
    ids = list(latent.index.astype(str)) if patients is None else [str(p) for p in patients]
    unknown = [p for p in ids if p not in set(latent.index.astype(str))]
    if unknown:
        raise ValueError(f"patients not in the trial: {unknown[:5]}")
    lat = latent.copy()
    lat.index = lat.index.astype(str)
    out = Path(out_dir)
    try:
        (out / "slides").mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(f"cannot create slide folder {out / 'slides'}: {err}") from err
    n = len(ids) * int(slides_per_patient)
    children = np.random.SeedSequence(seed).spawn(n)
    rows = []
    k = 0
    for pid in ids:
        z = lat.loc[pid, list(MORPHOLOGY_PROGRAMS)].to_numpy(float)
        for j in range(int(slides_per_patient)):
            sid = f"{pid}-S{j + 1}"
            img = synthesize_he(
                z, size_px=size_px, mpp=mpp, seed=np.random.default_rng(children[k])
            )
            rel = Path("slides") / f"{sid}.tiff"
            try:
                write_pyramidal_tiff(out / rel, img, mpp=mpp, compression=compression)
            except OSError as err:
                raise OutputError(f"cannot write slide {out / rel}: {err}") from err
            rows.append(
                {
                    "slide_id": sid,
                    "patient_id": pid,
                    "path": rel.as_posix(),
                    "stain": "H&E",
                    "timepoint": "baseline",
                    "specimen": "primary",
                }
            )
            k += 1
            logger.debug("wrote synthetic slide %s", sid)
    manifest = pd.DataFrame(rows)
    tmp = out / f".slides.csv.tmp{os.getpid()}"
    try:
        manifest.to_csv(tmp, index=False)
        os.replace(tmp, out / "slides.csv")
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write {out / 'slides.csv'}: {err}") from err
    return manifest
