"""Slide readers: pyramidal WSIs through openslide or tiffslide, DICOM WSIs through openslide >= 4
or wsidicom, plain images through Pillow/tifffile.

One :class:`Slide` type hides the backend. Regions come back as ``H x W x 3`` ``uint8`` RGB arrays
(transparent pixels composited on white), coordinates are level-0 pixels, and the resolution
(``mpp``, µm per level-0 pixel) comes from the manifest override when given, else the file's
metadata (the backend's, else for TIFF files the OME-XML ``PhysicalSizeX`` or the TIFF resolution
tags); a slide without either raises :class:`~tario_clinical.errors.SlideError` naming the slide
and the manifest column ``mpp`` that fixes it.

Formats and the reader ``"auto"`` picks:

* SVS, NDPI, MRXS, SCN, tiled TIFF pyramids (one IFD per level): openslide, else tiffslide;
* OME-TIFF and other TIFFs whose pyramid lies in SubIFDs: tiffslide first (openslide sees only
  the base level of such files), else openslide;
* DICOM WSI (a folder of instances, or one of its files): openslide >= 4, else wsidicom;
* large non-pyramidal TIFFs (tiled or striped): openslide for tiled, tiffslide for striped
  files; the tissue thumbnail is read in horizontal bands (:meth:`Slide.get_thumbnail`), so a
  single-resolution slide is never decoded whole at once;
* PNG/JPEG/BMP and small TIFF regions: Pillow/tifffile, read whole.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..errors import SlideError
from . import _dicom
from ._resolution import MPP_RANGE, TIFF_SUFFIXES, page_resolution_mpp, tiff_info, valid_mpp

__all__ = ["Slide", "open_slide", "available_backends", "slide_files", "BACKENDS"]

logger = logging.getLogger(__name__)

Backend = Literal["auto", "openslide", "tiffslide", "wsidicom", "image"]
BACKENDS: tuple[str, ...] = ("auto", "openslide", "tiffslide", "wsidicom", "image")

#: file suffixes read as plain (single-resolution) images when no WSI backend opens them
_PLAIN_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"}

#: a thumbnail is read in horizontal bands of at most this many pixels of the level read
#: (64 Mpx: ~200 MB of RGB), so a large single-resolution slide is never decoded whole
THUMBNAIL_BAND_PX = 1 << 26


def _importable(name: str) -> bool:
    try:
        __import__(name)
    except Exception:  # noqa: BLE001 - a broken native library is as good as absent
        return False
    return True


def available_backends() -> list[str]:
    """Return the WSI backends importable in this environment, preferred first.

    Returns
    -------
    list of str
        Subset of ``["openslide", "tiffslide", "wsidicom"]`` followed by ``"image"`` (always
        available).
    """
    return [n for n in ("openslide", "tiffslide", "wsidicom") if _importable(n)] + ["image"]


def slide_files(path: str | os.PathLike[str]) -> list[Path]:
    """The files that make up the slide at ``path`` (what its input hash covers).

    Parameters
    ----------
    path : str or path-like
        A slide file, or the folder (or one file) of a DICOM WSI.

    Returns
    -------
    list of pathlib.Path
        Every DICOM file of the folder for a DICOM WSI (sorted by name), else ``[path]``.
    """
    files = _dicom.dicom_files(path) if _dicom.is_dicom(path) else []
    return files or [Path(path)]


class Slide:
    """An open slide or image region with a resolution.

    Use :func:`open_slide` to create one. Supports the context-manager protocol.

    Attributes
    ----------
    slide_id : str
        Identifier used in messages and outputs.
    path : pathlib.Path
        File path.
    backend : {"openslide", "tiffslide", "image"}
        Reader in use.
    mpp : float
        µm per level-0 pixel.
    mpp_source : {"manifest", "metadata"}
        Where ``mpp`` came from.
    level_dimensions : tuple of (int, int)
        ``(width, height)`` of each pyramid level.
    level_downsamples : tuple of float
        Downsample factor of each level relative to level 0.
    direct_decoding : bool
        Decode tiled-TIFF tiles straight from the file (default ``True``; set ``False`` before
        the first read to always go through the backend). A level is read directly only after
        its first region matched the backend's pixels exactly.
    decode_threads : int
        Threads decoding the TIFF tiles of one direct read (default 1). The encoder sets it to
        torch's thread count when tiles are read in the main process between batches, when
        those cores are otherwise idle.
    """

    def __init__(
        self,
        handle: Any,
        *,
        path: Path,
        slide_id: str,
        backend: str,
        mpp: float,
        mpp_source: str,
        level_dimensions: tuple[tuple[int, int], ...],
        level_downsamples: tuple[float, ...],
        properties: dict[str, Any],
    ) -> None:
        self._handle = handle
        self.path = path
        self.slide_id = slide_id
        self.backend = backend
        self.mpp = mpp
        self.mpp_source = mpp_source
        self.level_dimensions = level_dimensions
        self.level_downsamples = level_downsamples
        self.properties = properties
        #: decode TIFF tiles directly when the pixels equal the backend's (see ``_tiffdirect``)
        self.direct_decoding = True
        #: threads decoding the TIFF tiles of one direct read
        self.decode_threads = 1
        self._direct: Any = None  # None: not tried yet; False: not applicable
        self._direct_checked: set[int] = set()

    # -- geometry -----------------------------------------------------------------------------
    @property
    def dimensions(self) -> tuple[int, int]:
        """``(width, height)`` of level 0 in pixels."""
        return self.level_dimensions[0]

    @property
    def level_count(self) -> int:
        """Number of pyramid levels."""
        return len(self.level_dimensions)

    def best_level_for_downsample(self, downsample: float) -> int:
        """Return the coarsest level whose downsample does not exceed ``downsample``.

        Reading from that level and shrinking never upsamples, so no detail is invented.
        """
        best = 0
        for i, ds in enumerate(self.level_downsamples):
            if ds <= downsample * (1 + 1e-6):
                best = i
        return best

    # -- pixels ---------------------------------------------------------------------------------
    def read_region(
        self, location: tuple[int, int], level: int, size: tuple[int, int]
    ) -> np.ndarray:
        """Read a region as an ``H x W x 3`` uint8 RGB array.

        Parameters
        ----------
        location : (int, int)
            Top-left ``(x, y)`` in level-0 pixels.
        level : int
            Pyramid level to read from.
        size : (int, int)
            ``(width, height)`` in pixels of ``level``.

        Raises
        ------
        SlideError
            If the backend fails (truncated or corrupt file).
        """
        if not 0 <= level < self.level_count:
            raise SlideError(
                f"slide {self.slide_id!r}: level {level} does not exist; "
                f"allowed 0..{self.level_count - 1}"
            )
        x, y = int(location[0]), int(location[1])
        w, h = int(size[0]), int(size[1])
        if self.backend == "image":
            return self._read_plain(x, y, level, w, h)
        direct = self._read_direct(x, y, level, w, h)
        if direct is not None:
            return direct
        return self._read_backend(x, y, level, w, h)

    def _read_backend(self, x: int, y: int, level: int, w: int, h: int) -> np.ndarray:
        try:
            region = self._handle.read_region((x, y), level, (w, h))
        except SlideError:
            raise
        except Exception as err:  # noqa: BLE001 - backend errors are library-specific
            raise SlideError(
                f"slide {self.slide_id!r} ({self.path}): cannot read region at level-0 "
                f"({x}, {y}), level {level}, size {w}x{h}: {err}"
            ) from err
        mode = getattr(region, "mode", None)
        if mode == "RGBA" and region.getextrema()[3] == (255, 255):
            region = region.convert("RGB")  # opaque: drop alpha in C
        elif mode == "RGB":
            pass
        return _to_rgb(np.asarray(region))

    def read_regions(
        self, locations: np.ndarray | Sequence[tuple[int, int]], level: int, size: tuple[int, int]
    ) -> np.ndarray:
        """Read several regions of one size as an ``n x H x W x 3`` uint8 array.

        Equal to stacking :meth:`read_region` calls; on tiled TIFF pyramids the TIFF tiles the
        regions share are decoded once.

        Parameters
        ----------
        locations : array-like of shape (n, 2)
            Top-left ``(x, y)`` of each region in level-0 pixels.
        level : int
            Pyramid level to read from.
        size : (int, int)
            ``(width, height)`` in pixels of ``level``.

        Raises
        ------
        SlideError
            If the backend fails (truncated or corrupt file).
        """
        locs = np.asarray(locations, dtype=np.int64).reshape(-1, 2)
        w, h = int(size[0]), int(size[1])
        if not len(locs):
            return np.empty((0, h, w, 3), dtype=np.uint8)
        # the first region goes through read_region (which checks a level once)
        first = self.read_region((int(locs[0, 0]), int(locs[0, 1])), level, (w, h))
        if self.backend != "image" and len(locs) > 1:
            every = self._read_direct_many(locs, level, w, h)  # the first one is cached now
            if every is not None:
                return every
        out = np.empty((len(locs), h, w, 3), dtype=np.uint8)
        out[0] = first
        for i in range(1, len(locs)):
            out[i] = self.read_region((int(locs[i, 0]), int(locs[i, 1])), level, (w, h))
        return out

    def decodes_directly(self, level: int) -> bool:
        """Whether regions of ``level`` are decoded straight from the TIFF tiles (tiled TIFF
        pyramids whose pixels match the backend's; see :meth:`read_regions`)."""
        if self.backend == "image" or not 0 <= level < self.level_count:
            return False
        dec = self._direct_decoder()
        return dec is not None and dec.supports(level)

    def jpeg_tiles(
        self, locations: np.ndarray | Sequence[tuple[int, int]], level: int, size: tuple[int, int]
    ) -> Any:
        """The undecoded JPEG tiles that regions of ``level`` cover, for decoding elsewhere
        (e.g. in batches on a GPU): a :class:`~._tiffdirect.JpegTiles`, or ``None`` when the
        level is not a JPEG-tiled TIFF level read directly or a position is not a whole pixel
        of the level (then read the pixels with :meth:`read_regions`)."""
        if self.backend == "image" or not 0 <= level < self.level_count:
            return None
        dec = self._direct_decoder()
        if dec is None or not dec.supports(level):
            return None
        lxy = self._level_xy(np.asarray(locations, dtype=np.int64).reshape(-1, 2), level)
        if lxy is None:
            return None
        return dec.jpeg_tiles(level, lxy, int(size[0]), int(size[1]))

    def tiff_tile_layout(self, level: int) -> tuple[int, int, int, int] | None:
        """``(tile_w, tile_h, n_cols, samples)`` of the TIFF tiles of ``level`` where it is
        decoded directly (see :meth:`decodes_directly`), else ``None``."""
        if self.backend == "image" or not 0 <= level < self.level_count:
            return None
        dec = self._direct_decoder()
        return None if dec is None else dec.tile_layout(level)

    def limit_tile_cache(self, max_bytes: int) -> int | None:
        """Cap the cache of decoded TIFF tiles kept for neighbouring reads at ``max_bytes``
        (never raised above the current cap); the cap in force, or ``None`` where nothing is
        decoded directly."""
        if self.backend == "image":
            return None
        dec = self._direct_decoder()
        if dec is None:
            return None
        dec.cache_bytes = min(int(dec.cache_bytes), max(0, int(max_bytes)))
        return int(dec.cache_bytes)

    def _direct_decoder(self) -> Any:
        """The slide's :class:`~._tiffdirect.TiffTileDecoder`, created on first use, or None."""
        dec = self._direct
        if dec is None:
            from ._tiffdirect import TiffTileDecoder

            if self.path.suffix.lower() in TIFF_SUFFIXES and self.direct_decoding:
                dec = TiffTileDecoder.create(self.path, self.level_dimensions)
            self._direct = dec if dec is not None else False
        if self._direct:
            self._direct.threads = max(1, int(self.decode_threads))
        return self._direct or None

    def _level_xy(self, locs: np.ndarray, level: int) -> np.ndarray | None:
        """Level-0 positions in whole pixels of ``level``, or None (sub-pixel positions)."""
        ds = float(self.level_downsamples[level])
        lxy = locs / ds
        if not np.array_equal(lxy, np.floor(lxy)):
            return None  # sub-pixel position at this level: the backend interpolates
        return lxy.astype(np.int64)

    def _decode(self, locs: np.ndarray, level: int, w: int, h: int) -> np.ndarray | None:
        """Regions decoded straight from the TIFF tiles as ``n x h x w x 3``, or None."""
        dec = self._direct_decoder()
        if dec is None or not dec.supports(level):
            return None
        lxy = self._level_xy(locs, level)
        if lxy is None:
            return None
        arr = dec.read_many(level, lxy, w, h)
        if arr is None:
            return None
        return arr if arr.shape[-1] == 3 else np.stack([_to_rgb(a) for a in arr])

    def _read_direct_many(self, locs: np.ndarray, level: int, w: int, h: int) -> np.ndarray | None:
        if level not in self._direct_checked:
            return None
        return self._decode(locs, level, w, h)

    def _read_direct(self, x: int, y: int, level: int, w: int, h: int) -> np.ndarray | None:
        """The region decoded straight from the TIFF tiles, or ``None`` (see ``_tiffdirect``).

        The first region of each level is also read through the backend and the level is read
        directly only if the pixels are identical.
        """
        many = self._decode(np.array([[x, y]], dtype=np.int64), level, w, h)
        if many is None:
            return None
        rgb = many[0]
        if level not in self._direct_checked:
            # a window of at most 512 x 512 at the centre (large reads such as thumbnails are
            # not decoded twice in full)
            ds = float(self.level_downsamples[level])
            pw, ph = min(w, 512), min(h, 512)
            ox, oy = (w - pw) // 2, (h - ph) // 2
            ref = self._read_backend(
                x + int(round(ox * ds)), y + int(round(oy * ds)), level, pw, ph
            )
            self._direct_checked.add(level)
            if not np.array_equal(ref, rgb[oy : oy + ph, ox : ox + pw]):
                logger.info(
                    "slide %s level %d: direct TIFF decoding differs from %s; using %s",
                    self.slide_id, level, self.backend, self.backend,
                )  # fmt: skip
                self._direct.disable(level)
                return self._read_backend(x, y, level, w, h)
        return rgb

    def clear_cache(self) -> None:
        """Free decoded tiles kept for neighbouring reads (the slide stays open)."""
        if self._direct:
            self._direct.clear_cache()

    def _read_plain(self, x: int, y: int, level: int, w: int, h: int) -> np.ndarray:
        img = self._handle
        H, W = img.shape[:2]
        out = np.full((h, w, 3), 255, dtype=np.uint8)
        x0, y0 = max(x, 0), max(y, 0)
        x1, y1 = min(x + w, W), min(y + h, H)
        if x1 > x0 and y1 > y0:
            out[y0 - y : y1 - y, x0 - x : x1 - x] = img[y0:y1, x0:x1]
        return out

    def get_thumbnail(self, max_size: tuple[int, int] | int) -> np.ndarray:
        """Return an RGB thumbnail that fits in ``max_size`` keeping the aspect ratio.

        Parameters
        ----------
        max_size : int or (int, int)
            Largest ``(width, height)``; an int bounds both sides.
        """
        from PIL import Image

        if isinstance(max_size, int):
            max_size = (max_size, max_size)
        W, H = self.dimensions
        scale = min(max_size[0] / W, max_size[1] / H, 1.0)
        tw, th = max(1, round(W * scale)), max(1, round(H * scale))
        level = self.best_level_for_downsample(1.0 / scale)
        lw, lh = self.level_dimensions[level]
        if lw * lh > THUMBNAIL_BAND_PX and (lw, lh) != (tw, th):
            return self._banded_thumbnail(level, tw, th)
        region = self.read_region((0, 0), level, (lw, lh))
        if (lw, lh) != (tw, th):
            region = np.asarray(
                Image.fromarray(region).resize((tw, th), Image.Resampling.BOX), dtype=np.uint8
            )
        return region

    def _banded_thumbnail(self, level: int, tw: int, th: int) -> np.ndarray:
        """A ``tw x th`` box-filtered thumbnail of ``level`` read in horizontal bands of at most
        :data:`THUMBNAIL_BAND_PX` pixels (a large single-resolution slide is never held whole).

        Each band covers whole output rows; Pillow resizes it from the band's exact fractional
        source window, so the result equals a one-piece resize except where Pillow's rounding
        of a window edge differs (measured: one row of 742 off by at most 33 grey levels).
        """
        from PIL import Image

        lw, lh = self.level_dimensions[level]
        ds = float(self.level_downsamples[level])
        sy = lh / th
        rows = max(1, int((THUMBNAIL_BAND_PX // lw) / sy) - 1)  # output rows per band
        out = np.empty((th, tw, 3), dtype=np.uint8)
        for r0 in range(0, th, rows):
            r1 = min(th, r0 + rows)
            y0, y1 = math.floor(r0 * sy), min(lh, math.ceil(r1 * sy))
            band = self.read_region((0, int(round(y0 * ds))), level, (lw, y1 - y0))
            box = (0.0, r0 * sy - y0, float(lw), min(r1 * sy, lh) - y0)
            out[r0:r1] = np.asarray(
                Image.fromarray(band).resize((tw, r1 - r0), Image.Resampling.BOX, box=box),
                dtype=np.uint8,
            )
        self.clear_cache()
        return out

    # -- lifecycle ------------------------------------------------------------------------------
    def close(self) -> None:
        """Release the file handle."""
        h, self._handle = self._handle, None
        d, self._direct = self._direct, False
        if d:
            d.close()
        if h is not None and hasattr(h, "close"):
            try:
                h.close()
            except Exception:  # noqa: BLE001 - closing a broken handle must not mask errors
                logger.debug("closing slide %s failed", self.slide_id, exc_info=True)

    def __enter__(self) -> Slide:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        W, H = self.dimensions
        return (
            f"Slide({self.slide_id!r}, backend={self.backend!r}, {W}x{H} px, "
            f"levels={self.level_count}, mpp={self.mpp:.4g} ({self.mpp_source}))"
        )


def _to_rgb(arr: np.ndarray) -> np.ndarray:
    """Convert gray/RGB/RGBA arrays to RGB uint8, compositing transparency on white."""
    if arr.dtype != np.uint8:
        if np.issubdtype(arr.dtype, np.floating) and arr.size and float(np.nanmax(arr)) <= 1.0:
            arr = arr * 255.0
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    if arr.ndim == 2:
        return np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3:
        raise SlideError(f"image has {arr.ndim} dimensions; expected 2 (gray) or 3 (colour)")
    c = arr.shape[2]
    if c == 3:
        return np.ascontiguousarray(arr)
    if c == 4:
        if int(arr[:, :, 3].min()) == 255:  # opaque (the usual case): drop alpha
            return np.ascontiguousarray(arr[:, :, :3])
        rgb = arr[:, :, :3].astype(np.uint16)
        a = arr[:, :, 3:4].astype(np.uint16)
        out = (rgb * a + 255 * (255 - a) + 127) // 255
        return out.astype(np.uint8)
    if c == 1:
        return np.repeat(arr, 3, axis=2)
    if c == 2:  # gray + alpha
        g = arr[:, :, :1].astype(np.uint16)
        a = arr[:, :, 1:2].astype(np.uint16)
        out = ((g * a + 255 * (255 - a) + 127) // 255).astype(np.uint8)
        return np.repeat(out, 3, axis=2)
    raise SlideError(
        f"image has {c} channels; expected 1 (gray), 3 (RGB) or 4 (RGBA) for H&E "
        "(multiplexed or fluorescence images are not supported)"
    )


def _open_openslide(path: Path) -> tuple[Any, dict[str, Any], float | None]:
    import openslide

    entry = _dicom.openslide_entry(path) if path.is_dir() else path
    h = openslide.OpenSlide(str(entry))
    props = dict(h.properties)
    mpp = valid_mpp(props.get("openslide.mpp-x"))
    return h, props, mpp


def _open_wsidicom(path: Path) -> tuple[Any, dict[str, Any], float | None]:
    h = _dicom.WsiDicomHandle(path)
    return h, dict(h.properties), valid_mpp(h.mpp)


def _open_tiffslide(path: Path) -> tuple[Any, dict[str, Any], float | None]:
    import tiffslide

    h = tiffslide.TiffSlide(str(path))
    props = dict(h.properties)
    mpp = valid_mpp(props.get("tiffslide.mpp-x"))
    return h, props, mpp


def _open_plain(path: Path) -> tuple[np.ndarray, dict[str, Any], float | None]:
    suffix = path.suffix.lower()
    props: dict[str, Any] = {}
    mpp: float | None = None
    if suffix in (".tif", ".tiff"):
        import tifffile

        with tifffile.TiffFile(str(path)) as tf:
            page = tf.pages[0]
            arr = page.asarray()
            if page.photometric == tifffile.PHOTOMETRIC.MINISBLACK and arr.ndim == 3:
                # planar multi-channel stack (e.g. fluorescence): channel axis first
                if arr.shape[0] < arr.shape[-1]:
                    arr = np.moveaxis(arr, 0, -1)
            mpp = page_resolution_mpp(page)
    else:
        from PIL import Image

        with Image.open(path) as im:
            im.load()
            dpi = im.info.get("dpi")
            arr = np.asarray(im.convert("RGBA") if im.mode in ("P", "LA", "PA") else im)
        if dpi:
            try:
                mpp = valid_mpp(25400.0 / float(dpi[0]))
            except (TypeError, ValueError, ZeroDivisionError):
                mpp = None
    return _to_rgb(arr), props, mpp


def open_slide(
    path: str | os.PathLike[str],
    *,
    mpp: float | None = None,
    slide_id: str | None = None,
    backend: Backend = "auto",
    verify: bool = True,
) -> Slide:
    """Open a whole-slide image or a plain image region.

    Parameters
    ----------
    path : str or path-like
        SVS, tiled TIFF, OME-TIFF, NDPI, MRXS (as far as the backend reads them), a DICOM WSI
        (its folder of instances, or one file of it), a large non-pyramidal TIFF, or a plain
        PNG/JPEG/TIFF region (see the module docstring for which reader opens what).
    mpp : float, optional
        µm per level-0 pixel; overrides the metadata (the slide manifest's ``mpp`` column).
    slide_id : str, optional
        Name used in messages; defaults to the file stem.
    backend : {"auto", "openslide", "tiffslide", "wsidicom", "image"}
        ``"auto"`` tries openslide (when importable), then tiffslide, then a plain-image reader;
        tiffslide first for OME-TIFF / SubIFD pyramids; openslide then wsidicom for DICOM.
    verify : bool, default True
        Check the file first (TIFF data beyond the end of the file, unsupported channel
        counts). ``False`` skips these checks; meant for re-opening, within one run, a slide
        that was already opened with ``verify=True`` (the encoder's tile readers do this).

    Returns
    -------
    Slide

    Raises
    ------
    SlideError
        If the file is missing or unreadable, has an unsupported channel count, or has no µm/px
        in its metadata and no ``mpp`` override.

    Examples
    --------
    >>> from tario_clinical.slides import open_slide
    >>> with open_slide("slide.svs") as s:  # doctest: +SKIP
    ...     tile = s.read_region((0, 0), 0, (256, 256))
    """
    if backend not in BACKENDS:
        raise SlideError(f"backend={backend!r} is not allowed; allowed: {', '.join(BACKENDS)}")
    p = Path(path)
    sid = slide_id if slide_id is not None else p.stem
    dicom = _dicom.is_dicom(p)
    if p.is_dir() and not dicom:
        raise SlideError(
            f"slide {sid!r}: {p} is a folder without DICOM files; the manifest 'path' must be a "
            "slide file or the folder of a DICOM WSI"
        )
    if not p.exists():
        raise SlideError(f"slide {sid!r}: file not found: {p}")
    override = None
    if mpp is not None and not (isinstance(mpp, float) and math.isnan(mpp)):
        override = valid_mpp(mpp)
        if override is None:
            raise SlideError(
                f"slide {sid!r}: manifest column 'mpp' has value {mpp!r}; expected µm/px in "
                f"[{MPP_RANGE[0]}, {MPP_RANGE[1]}] (e.g. 0.25 for 40x, 0.5 for 20x)"
            )

    tiff_mpp, sub_ifds = tiff_info(p)
    if backend == "auto":
        # only the readers of this format are imported (wsidicom pulls in pydicom)
        order = [b for b in (("openslide", "wsidicom") if dicom else ("openslide", "tiffslide"))
                 if _importable(b)]  # fmt: skip
        if not dicom:
            if sub_ifds:
                order.sort(key=lambda b: b != "tiffslide")  # tiffslide reads SubIFD levels
            if p.suffix.lower() in _PLAIN_SUFFIXES:
                order.append("image")
    else:
        order = [backend]

    if verify:
        _check_tiff_extent(p, sid)
    errors: list[str] = []
    for name in order:
        try:
            if name == "openslide":
                handle, props, meta_mpp = _open_openslide(p)
                dims = tuple(tuple(int(v) for v in d) for d in handle.level_dimensions)
                downs = tuple(float(d) for d in handle.level_downsamples)
            elif name == "tiffslide":
                handle, props, meta_mpp = _open_tiffslide(p)
                dims = tuple(tuple(int(v) for v in d) for d in handle.level_dimensions)
                downs = tuple(float(d) for d in handle.level_downsamples)
            elif name == "wsidicom":
                handle, props, meta_mpp = _open_wsidicom(p)
                dims = handle.level_dimensions
                downs = handle.level_downsamples
            else:
                handle, props, meta_mpp = _open_plain(p)
                dims = ((int(handle.shape[1]), int(handle.shape[0])),)
                downs = (1.0,)
        except SlideError as err:
            errors.append(f"{name}: {err}")
            if "channels" in str(err):
                raise SlideError(f"slide {sid!r} ({p}): {err}") from err
            continue
        except Exception as err:  # noqa: BLE001 - each backend raises its own types
            errors.append(f"{name}: {type(err).__name__}: {err}")
            continue
        if name != "image" and verify:
            _check_channels(handle, sid, p)
        if meta_mpp is None:
            meta_mpp = tiff_mpp  # OME-XML or resolution tags the backend did not read
        res = override if override is not None else meta_mpp
        if res is None:
            if hasattr(handle, "close"):
                handle.close()
            raise SlideError(
                f"slide {sid!r} ({p}): no µm/px (microns per pixel) in the file's metadata; "
                "add it in the slide manifest column 'mpp' (e.g. 0.25 for a 40x scan, 0.5 for 20x)"
            )
        return Slide(
            handle,
            path=p,
            slide_id=sid,
            backend=name,
            mpp=float(res),
            mpp_source="manifest" if override is not None else "metadata",
            level_dimensions=dims,  # type: ignore[arg-type]
            level_downsamples=downs,
            properties=props,
        )
    hint = ""
    if dicom:
        hint = (
            " (DICOM WSI needs openslide >= 4.0, e.g. pip install openslide-bin, or wsidicom: "
            "pip install 'tario-clinical[dicom]')"
        )
    raise SlideError(
        f"slide {sid!r}: cannot open {p} (truncated, corrupt or unsupported format){hint}; "
        + ("; ".join(errors) if errors else "no reader for it is installed")
    )


def _check_tiff_extent(p: Path, sid: str) -> None:
    """Refuse a TIFF whose pages or tile data lie beyond the end of the file (truncated copy).

    Backends differ here: openslide refuses such files, tiffslide may silently open the part
    that is left; checking first makes both behave the same.
    """
    if p.suffix.lower() not in TIFF_SUFFIXES:
        return
    import tifffile

    size = p.stat().st_size
    warnings: list[str] = []

    me = threading.get_ident()

    class _Catch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            # only this thread's messages: slides are opened in several threads at once
            if record.thread == me:
                warnings.append(record.getMessage())

    tlog = logging.getLogger("tifffile")
    handler = _Catch(level=logging.WARNING)
    tlog.addHandler(handler)
    try:
        try:
            tf = tifffile.TiffFile(str(p))
        except Exception:  # noqa: BLE001 - not parseable as TIFF: let the backends decide
            return
        with tf:
            pages = list(tf.pages)
            for i, page in enumerate(pages):
                offs = getattr(page, "dataoffsets", None)
                counts = getattr(page, "databytecounts", None)
                if offs is None or counts is None or not len(offs):
                    continue
                end = int(
                    np.max(np.asarray(offs, dtype=np.int64) + np.asarray(counts, dtype=np.int64))
                )
                if end > size:
                    raise SlideError(
                        f"slide {sid!r} ({p}): file is truncated or corrupt: image data of TIFF "
                        f"page {i} extends to byte {end} but the file has {size} bytes; copy the "
                        "slide again"
                    )
    finally:
        tlog.removeHandler(handler)
    bad = [w for w in warnings if "invalid page offset" in w or "corrupted" in w.lower()]
    if bad:
        raise SlideError(
            f"slide {sid!r} ({p}): file is truncated or corrupt ({bad[0]}); copy the slide again"
        )


def _check_channels(handle: Any, sid: str, p: Path) -> None:
    """Reject multi-channel (non-RGB) pyramids that the backend would silently mangle."""
    samples = None
    if p.suffix.lower() in (".tif", ".tiff", ".svs", ".ome.tif", ".ome.tiff"):
        try:
            import tifffile

            with tifffile.TiffFile(str(p)) as tf:
                page = tf.pages[0]
                samples = int(page.samplesperpixel)
                if page.photometric == tifffile.PHOTOMETRIC.MINISBLACK and page.ndim == 3:
                    samples = int(page.shape[0]) if page.planarconfig == 2 else samples
                series0 = tf.series[0] if tf.series else None
                if series0 is not None and series0.axes and series0.axes[0] in "CS":
                    if series0.shape[0] not in (1, 3, 4):
                        samples = int(series0.shape[0])
        except Exception:  # noqa: BLE001 - if tifffile cannot parse it, the backend decides
            return
    if samples is not None and samples not in (1, 3, 4):
        raise SlideError(
            f"slide {sid!r} ({p}): image has {samples} channels; expected 1 (gray), 3 (RGB) "
            "or 4 (RGBA) for H&E (multiplexed or fluorescence images are not supported)"
        )
