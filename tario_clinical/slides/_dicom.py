"""DICOM whole-slide images (VL Whole Slide Microscopy): finding the files, and a reader.

A DICOM WSI is a folder of instances, one per pyramid level (plus label/overview images), or
one file of such a folder. openslide >= 4.0 reads them (given any file of the series, it finds
the others in the folder); :class:`WsiDicomHandle` reads them through ``wsidicom``
(``pip install 'tario-clinical[dicom]'``) with the subset of openslide's interface that
:class:`~tario_clinical.slides.Slide` uses, for machines without openslide 4.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["WsiDicomHandle", "dicom_files", "is_dicom", "openslide_entry"]

#: bytes 128-131 of every DICOM Part 10 file
_MAGIC = b"DICM"


def _has_magic(p: Path) -> bool:
    try:
        with p.open("rb") as fh:
            fh.seek(128)
            return fh.read(4) == _MAGIC
    except OSError:
        return False


def dicom_files(path: str | os.PathLike[str]) -> list[Path]:
    """The DICOM files of the slide at ``path`` (a folder of instances, or one of its files),
    sorted by name; ``[]`` when there are none. Files are recognised by the ``DICM`` marker,
    whatever their suffix."""
    p = Path(path)
    folder = p if p.is_dir() else p.parent
    if p.is_file() and not _has_magic(p):
        return []
    try:
        entries = sorted(f for f in folder.iterdir() if f.is_file())
    except OSError:
        return []
    return [f for f in entries if _has_magic(f)]


def is_dicom(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a DICOM file or a folder holding DICOM files."""
    p = Path(path)
    if p.is_file():
        return _has_magic(p)
    return p.is_dir() and bool(dicom_files(p))


def openslide_entry(path: str | os.PathLike[str]) -> Path:
    """The file openslide is given for the slide at ``path``: the file itself, or the largest
    DICOM file of the folder (the base level; openslide finds the rest of the series)."""
    p = Path(path)
    if p.is_file():
        return p
    files = dicom_files(p)
    return max(files, key=lambda f: (f.stat().st_size, f.name))


class WsiDicomHandle:
    """A DICOM WSI opened with ``wsidicom``, seen through openslide's interface.

    Attributes
    ----------
    level_dimensions : tuple of (int, int)
    level_downsamples : tuple of float
        ``(w0 / w + h0 / h) / 2`` per level, as openslide computes them.
    properties : dict
        ``wsidicom.mpp-x``, ``wsidicom.mpp-y`` (µm/px of level 0) when the file has them.
    mpp : float or None
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        from wsidicom import WsiDicom

        p = Path(path)
        files = dicom_files(p)
        if not files:
            raise ValueError(f"no DICOM files in {p}")
        self._wsi = WsiDicom.open(files)
        levels = list(self._wsi.levels)
        self._level_ids = [int(lv.level) for lv in levels]
        dims = tuple((int(lv.size.width), int(lv.size.height)) for lv in levels)
        w0, h0 = dims[0]
        self.level_dimensions = dims
        self.level_downsamples = tuple((w0 / w + h0 / h) / 2.0 for w, h in dims)
        mpp = getattr(self._wsi, "mpp", None)  # µm/px of the base level (a SizeMm in µm)
        self.mpp = float(mpp.width) if mpp is not None else None
        self.properties: dict[str, Any] = {"wsidicom.vendor": "dicom"}
        if mpp is not None:
            self.properties["wsidicom.mpp-x"] = float(mpp.width)
            self.properties["wsidicom.mpp-y"] = float(mpp.height)

    def read_region(self, location: tuple[int, int], level: int, size: tuple[int, int]) -> Any:
        """RGB region at level-0 ``location``; parts outside the level are white."""
        from PIL import Image

        ds = self.level_downsamples[level]
        lw, lh = self.level_dimensions[level]
        x, y = int(round(location[0] / ds)), int(round(location[1] / ds))
        w, h = int(size[0]), int(size[1])
        x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, lw), min(y + h, lh)
        if x0 == x and y0 == y and x1 == x + w and y1 == y + h:
            return self._wsi.read_region((x, y), self._level_ids[level], (w, h)).convert("RGB")
        out = np.full((h, w, 3), 255, dtype=np.uint8)
        if x1 > x0 and y1 > y0:
            part = self._wsi.read_region((x0, y0), self._level_ids[level], (x1 - x0, y1 - y0))
            out[y0 - y : y1 - y, x0 - x : x1 - x] = np.asarray(part.convert("RGB"))
        return Image.fromarray(out)

    def close(self) -> None:
        self._wsi.close()
