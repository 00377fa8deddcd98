"""Direct tile decoding for tiled TIFF pyramids (generic tiled TIFF, SVS, OME-TIFF levels).

Reading one model tile through openslide costs far more than decoding the JPEG data it covers
(openslide composites every region into a premultiplied ARGB surface): measured on this
project's synthetic slides, 23-47 ms per megapixel through openslide against 4.7 ms per
megapixel for libjpeg-turbo through imagecodecs. On a CPU-only machine the tile readers share
the cores with the model's forward pass, so this cost comes straight off encoding throughput.

:class:`TiffTileDecoder` reads the compressed tiles a region needs straight from the file (one
``read_segments`` call) and decodes each with tifffile's own decoder for the page (JPEG with
its tables, JPEG 2000, deflate, LZW, ... whatever tifffile + imagecodecs decode), keeping the
decoded tiles in a small LRU cache so neighbouring model tiles that share a TIFF tile decode it
once. It is only an accelerator behind :meth:`Slide.read_region`:

* it answers only regions that lie inside a level at whole-pixel positions of that level, on
  single-page levels of 8-bit contiguous RGB(A) tiles; everything else returns ``None`` and the
  slide's backend reads it;
* the first region read from each level is also read through the backend and compared pixel by
  pixel; a level whose pixels differ is never read directly again (so the fast path cannot
  change what a slide reads, only how fast);
* any decoding failure returns ``None`` (the backend then reads the region and reports the
  error in its usual words);
* a decoder created before a ``fork`` reopens its file in the child (no shared file offset).
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["JpegTiles", "TiffTileDecoder", "jpeg_stream"]

_JPEG = 7  # TIFF Compression tag value of (new-style) JPEG
_RGB, _YCBCR = 2, 6  # PhotometricInterpretation
#: APP14 "Adobe" segment with transform 0: the three components are RGB, not YCbCr
_ADOBE_RGB = b"\xff\xee\x00\x0eAdobe\x00\x64\x00\x00\x00\x00\x00"


def jpeg_stream(tile: bytes, tables: bytes | None, *, rgb: bool) -> bytes:
    """A complete JPEG stream from one TIFF JPEG tile.

    TIFF files keep the quantisation and Huffman tables shared by all tiles in the
    ``JPEGTables`` tag (an abbreviated stream: SOI, tables, EOI); each tile is an abbreviated
    image stream (SOI, frame, scan, EOI). Any JPEG decoder reads the concatenation of the
    tables and the tile without the markers between them. ``rgb``: the TIFF stores the JPEG
    components as RGB (PhotometricInterpretation 2, as Aperio SVS does): an Adobe APP14
    segment with transform 0 says so, otherwise decoders assume YCbCr.
    """
    if tile[:2] != b"\xff\xd8":
        raise ValueError("TIFF JPEG tile does not start with SOI")
    head = b"\xff\xd8"
    if rgb and b"Adobe" not in tile[:64]:
        head += _ADOBE_RGB
    if tables:
        if tables[:2] != b"\xff\xd8" or tables[-2:] != b"\xff\xd9":
            raise ValueError("JPEGTables is not an abbreviated table stream (SOI ... EOI)")
        head += tables[2:-2]
    return head + tile[2:]


@dataclass(frozen=True)
class JpegTiles:
    """The compressed JPEG tiles a set of equal-size regions of one level needs.

    Decode ``streams`` with any JPEG decoder (e.g. in batches on a GPU), then cut the regions
    out of the decoded tiles: region ``i`` covers level pixels ``xy[i]`` to ``xy[i] + (w, h)``
    and TIFF tile ``keys[s]`` (stream ``s``) covers columns ``(keys[s] % n_cols) * tile_w`` and
    rows ``(keys[s] // n_cols) * tile_h`` onwards (every TIFF tile is ``tile_w x tile_h``,
    edge tiles padded).
    """

    streams: list[bytes]
    keys: np.ndarray
    xy: np.ndarray
    w: int
    h: int
    tile_w: int
    tile_h: int
    n_cols: int


#: decoded-tile cache per open slide (bytes); enough for two rows of 256-px tiles on a
#: 100k-px-wide slide would be ~150 MB, so wide slides may decode a shared tile twice
DEFAULT_CACHE_BYTES = 48 << 20


_POOLS: dict[tuple[int, int], Any] = {}
_POOLS_LOCK = threading.Lock()


def _pool(threads: int) -> Any:
    """A shared decoding thread pool of ``threads`` workers for this process (pools do not
    survive a fork, so each process makes its own)."""
    from concurrent.futures import ThreadPoolExecutor

    key = (os.getpid(), threads)
    with _POOLS_LOCK:
        pool = _POOLS.get(key)
        if pool is None:
            pool = _POOLS[key] = ThreadPoolExecutor(threads, thread_name_prefix="tiff-decode")
        return pool


@dataclass(frozen=True)
class _Level:
    page: Any
    width: int
    height: int
    tile_w: int
    tile_h: int
    n_cols: int
    samples: int
    offsets: tuple[int, ...]
    bytecounts: tuple[int, ...]


class TiffTileDecoder:
    """Decode regions of a tiled TIFF pyramid directly from its tiles.

    Parameters
    ----------
    path : path-like
        The TIFF file.
    level_dimensions : sequence of (int, int)
        ``(width, height)`` per level as the slide backend reports them; the file's levels
        must match them exactly, otherwise :meth:`create` returns ``None``.
    cache_bytes : int
        Capacity of the decoded-tile LRU cache.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        level_dimensions: tuple[tuple[int, int], ...],
        *,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
    ) -> None:
        self.path = Path(path)
        self.level_dimensions = tuple(tuple(int(v) for v in d) for d in level_dimensions)
        self.cache_bytes = int(cache_bytes)
        #: threads decoding the TIFF tiles of one read (1: in the calling thread)
        self.threads = 1
        self._lock = threading.RLock()
        self._cache: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()
        self._cached_bytes = 0
        self._pid = -1
        self._tf: Any = None
        self._levels: list[_Level | None] = []
        self._open()

    @classmethod
    def create(
        cls,
        path: str | os.PathLike[str],
        level_dimensions: tuple[tuple[int, int], ...],
        **kwargs: Any,
    ) -> TiffTileDecoder | None:
        """A decoder for ``path``, or ``None`` when the file is not a tiled TIFF pyramid whose
        levels match ``level_dimensions`` (or tifffile cannot read it)."""
        try:
            dec = cls(path, level_dimensions, **kwargs)
        except Exception as err:  # noqa: BLE001 - any failure means "not applicable"
            logger.debug("direct TIFF decoding not available for %s: %s", path, err)
            return None
        if not any(lv is not None for lv in dec._levels):
            dec.close()
            return None
        return dec

    # -- file ------------------------------------------------------------------------------------
    def _open(self) -> None:
        import tifffile

        tf = tifffile.TiffFile(str(self.path))
        try:
            levels = tf.series[0].levels
            if len(levels) != len(self.level_dimensions):
                raise ValueError(
                    f"{len(levels)} TIFF levels vs {len(self.level_dimensions)} backend levels"
                )
            self._levels = [
                self._describe(lv, dims)
                for lv, dims in zip(levels, self.level_dimensions, strict=True)
            ]
        except BaseException:
            tf.close()
            raise
        self._tf = tf
        self._pid = os.getpid()

    @staticmethod
    def _describe(series: Any, dims: tuple[int, int]) -> _Level | None:
        pages = series.pages
        if len(pages) != 1:
            return None  # z-stacks / time series: leave to the backend
        page = pages[0]
        if page is None or not hasattr(page, "dataoffsets"):
            return None
        if not page.is_tiled or page.tiledepth != 1 or page.imagedepth != 1:
            return None
        if page.dtype != np.uint8 or page.planarconfig != 1 or page.samplesperpixel not in (3, 4):
            return None
        if (int(page.imagewidth), int(page.imagelength)) != tuple(dims):
            return None
        if any(int(b) == 0 for b in page.databytecounts):
            return None  # sparse tiles: the backend decides what empty looks like
        tw, th = int(page.tilewidth), int(page.tilelength)
        return _Level(
            page=page,
            width=int(page.imagewidth),
            height=int(page.imagelength),
            tile_w=tw,
            tile_h=th,
            n_cols=-(-int(page.imagewidth) // tw),
            samples=int(page.samplesperpixel),
            offsets=tuple(int(o) for o in page.dataoffsets),
            bytecounts=tuple(int(b) for b in page.databytecounts),
        )

    def close(self) -> None:
        """Close the file and drop the cache."""
        with self._lock:
            tf, self._tf = self._tf, None
            self._cache.clear()
            self._cached_bytes = 0
            if tf is not None:
                try:
                    tf.close()
                except Exception:  # noqa: BLE001
                    logger.debug("closing %s failed", self.path, exc_info=True)

    def clear_cache(self) -> None:
        """Drop decoded tiles (memory goes back; the file stays open)."""
        with self._lock:
            self._cache.clear()
            self._cached_bytes = 0

    def tile_layout(self, level: int) -> tuple[int, int, int, int] | None:
        """``(tile_w, tile_h, n_cols, samples)`` of a level decoded directly, or ``None``."""
        if not self.supports(level):
            return None
        lv = self._levels[level]
        assert lv is not None
        return lv.tile_w, lv.tile_h, lv.n_cols, lv.samples

    def supports(self, level: int) -> bool:
        """Whether ``level`` can be read directly."""
        return 0 <= level < len(self._levels) and self._levels[level] is not None

    def disable(self, level: int) -> None:
        """Never read ``level`` directly again (its pixels differed from the backend's)."""
        if 0 <= level < len(self._levels):
            self._levels[level] = None

    # -- pixels ----------------------------------------------------------------------------------
    def read_many(self, level: int, xy: np.ndarray, w: int, h: int) -> np.ndarray | None:
        """Several ``w x h`` regions of ``level`` with top-left corners ``xy`` (``(n, 2)``, level
        pixels) as an ``(n, h, w, samples)`` uint8 array; each TIFF tile they share is decoded
        once. ``None`` when a region is not fully inside the level or decoding fails."""
        if not self.supports(level) or w <= 0 or h <= 0:
            return None
        lv = self._levels[level]
        assert lv is not None
        xy = np.asarray(xy, dtype=np.int64).reshape(-1, 2)
        xs, ys = xy[:, 0], xy[:, 1]
        if len(xy) == 0:
            return np.empty((0, h, w, lv.samples), dtype=np.uint8)
        if xs.min() < 0 or ys.min() < 0 or xs.max() + w > lv.width or ys.max() + h > lv.height:
            return None
        c0, c1 = xs // lv.tile_w, (xs + w - 1) // lv.tile_w
        r0, r1 = ys // lv.tile_h, (ys + h - 1) // lv.tile_h
        per_region = [
            [r * lv.n_cols + c for r in range(a, b + 1) for c in range(cc, cd + 1)]
            for a, b, cc, cd in zip(r0.tolist(), r1.tolist(), c0.tolist(), c1.tolist(), strict=True)
        ]
        keys = sorted({k for ks in per_region for k in ks})
        try:
            with self._lock:
                if self._pid != os.getpid():  # forked: do not share the parent's file offset
                    self._reopen()
                    lv = self._levels[level]
                    if lv is None:
                        return None
                tiles = dict(zip(keys, self._tiles(level, lv, keys), strict=True))
        except Exception as err:  # noqa: BLE001 - the backend reads it and reports errors
            logger.debug("direct decode of %s level %d failed: %s", self.path, level, err)
            return None
        out = np.empty((len(xy), h, w, lv.samples), dtype=np.uint8)
        tw, th = lv.tile_w, lv.tile_h
        # regions inside one TIFF tile (the usual case when the tile size is a multiple of the
        # model tile): one gather per TIFF tile instead of one copy per region
        inside = (c0 == c1) & (r0 == r1)
        if inside.any():
            one_key = (r0 * lv.n_cols + c0)[inside]
            rows = np.flatnonzero(inside)
            for key in np.unique(one_key):
                sel = rows[one_key == key]
                r, c = divmod(int(key), lv.n_cols)
                win = np.lib.stride_tricks.sliding_window_view(tiles[int(key)], (h, w), axis=(0, 1))
                out[sel] = np.moveaxis(win[ys[sel] - r * th, xs[sel] - c * tw], 1, -1)
        for i in np.flatnonzero(~inside).tolist():
            x, y, ks = int(xs[i]), int(ys[i]), per_region[i]
            for key in ks:
                r, c = divmod(key, lv.n_cols)
                tx, ty = c * tw, r * th
                ax0, ay0 = max(x, tx), max(y, ty)
                ax1, ay1 = min(x + w, tx + tw), min(y + h, ty + th)
                out[i, ay0 - y : ay1 - y, ax0 - x : ax1 - x] = tiles[key][
                    ay0 - ty : ay1 - ty, ax0 - tx : ax1 - tx
                ]
        return out

    def jpeg_tiles(self, level: int, xy: np.ndarray, w: int, h: int) -> JpegTiles | None:
        """The JPEG streams of the TIFF tiles that ``w x h`` regions at ``xy`` (level pixels)
        cover, undecoded; ``None`` unless ``level`` is read directly and its tiles are 3-sample
        JPEG (RGB or YCbCr), or when a region leaves the level or reading fails."""
        if not self.supports(level) or w <= 0 or h <= 0:
            return None
        lv = self._levels[level]
        assert lv is not None
        page = lv.page
        if int(page.compression) != _JPEG or lv.samples != 3:
            return None
        if int(page.photometric) not in (_RGB, _YCBCR):
            return None
        xy = np.asarray(xy, dtype=np.int64).reshape(-1, 2)
        if len(xy) == 0:
            return None
        xs, ys = xy[:, 0], xy[:, 1]
        if xs.min() < 0 or ys.min() < 0 or xs.max() + w > lv.width or ys.max() + h > lv.height:
            return None
        keys = sorted(
            {
                r * lv.n_cols + c
                for x, y in zip(xs.tolist(), ys.tolist(), strict=True)
                for r in range(y // lv.tile_h, (y + h - 1) // lv.tile_h + 1)
                for c in range(x // lv.tile_w, (x + w - 1) // lv.tile_w + 1)
            }
        )
        rgb = int(page.photometric) == _RGB
        try:
            with self._lock:
                if self._pid != os.getpid():
                    self._reopen()
                    if self._levels[level] is None:
                        return None
                segs = self._tf.filehandle.read_segments(
                    [lv.offsets[k] for k in keys],
                    [lv.bytecounts[k] for k in keys],
                    indices=keys,
                    sort=True,
                )
                data = dict((k, d) for d, k in segs)
            streams = [jpeg_stream(data[k], page.jpegtables, rgb=rgb) for k in keys]
        except Exception as err:  # noqa: BLE001 - the caller reads the pixels instead
            logger.debug("JPEG tiles of %s level %d unavailable: %s", self.path, level, err)
            return None
        return JpegTiles(
            streams=streams,
            keys=np.asarray(keys, dtype=np.int64),
            xy=xy,
            w=int(w),
            h=int(h),
            tile_w=lv.tile_w,
            tile_h=lv.tile_h,
            n_cols=lv.n_cols,
        )

    def _reopen(self) -> None:
        old = self._tf
        self._tf = None
        self._cache.clear()
        self._cached_bytes = 0
        disabled = [lv is None for lv in self._levels]
        self._open()
        for i, off in enumerate(disabled):
            if off:
                self._levels[i] = None
        del old  # the parent's handle: not closed here (it is the parent's to close)

    def _tiles(self, level: int, lv: _Level, keys: list[int]) -> list[np.ndarray]:
        found: dict[int, np.ndarray] = {}
        missing = []
        for k in keys:
            t = self._cache.get((level, k))
            if t is None:
                missing.append(k)
            else:
                self._cache.move_to_end((level, k))
                found[k] = t
        if missing:
            page = lv.page
            decode = page.decode
            tile_bytes = lv.tile_w * lv.tile_h * lv.samples
            # cache only when the region is small next to the cache (large reads such as
            # thumbnails would only flush it)
            keep = len(keys) * tile_bytes * 2 <= self.cache_bytes
            fh = self._tf.filehandle
            segments = fh.read_segments(
                [lv.offsets[k] for k in missing],
                [lv.bytecounts[k] for k in missing],
                indices=missing,
                sort=True,
            )

            def one(seg: tuple[bytes | None, int]) -> tuple[int, np.ndarray]:
                data, k = seg
                arr, _, _ = decode(data, k, jpegtables=page.jpegtables, jpegheader=page.jpegheader)
                if arr is None:
                    raise ValueError(f"empty tile {k}")
                return k, np.asarray(arr).reshape(lv.tile_h, lv.tile_w, lv.samples)

            if self.threads > 1 and len(missing) > 1:
                # the codecs release the GIL: decode in threads (the file is read above, in order)
                decoded = list(_pool(self.threads).map(one, list(segments)))
            else:
                decoded = [one(seg) for seg in segments]
            for k, t in decoded:
                found[k] = t
                if keep:
                    self._cache[(level, k)] = t
                    self._cached_bytes += t.nbytes
            while self._cached_bytes > self.cache_bytes and self._cache:
                _, old = self._cache.popitem(last=False)
                self._cached_bytes -= old.nbytes
        return [found[k] for k in keys]
