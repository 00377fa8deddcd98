"""Resolution (µm/px) from slide-file metadata the backends do not read: the OME-XML
``PhysicalSizeX`` of OME-TIFFs and the TIFF resolution tags; and which TIFFs hold their pyramid
in SubIFDs (OME-TIFF), which openslide does not read."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

__all__ = ["MPP_RANGE", "TIFF_SUFFIXES", "ome_mpp", "page_resolution_mpp", "tiff_info", "valid_mpp"]

#: suffixes of files that tifffile may parse (checked for truncation, metadata, direct decoding)
TIFF_SUFFIXES = (".tif", ".tiff", ".svs", ".scn", ".bif", ".qptiff")

#: resolutions outside this range (µm/px) are not microscope scans (e.g. a 72-dpi default tag)
MPP_RANGE = (0.05, 20.0)
#: µm per unit of OME-XML ``PhysicalSizeXUnit``
OME_UNIT_UM = {"µm": 1.0, "um": 1.0, "nm": 1e-3, "pm": 1e-6, "Å": 1e-4,
                "mm": 1e3, "cm": 1e4, "m": 1e6}  # fmt: skip


def valid_mpp(value: Any) -> float | None:
    """``value`` as a float when it is a finite µm/px inside :data:`MPP_RANGE`, else None."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(v) or not (MPP_RANGE[0] <= v <= MPP_RANGE[1]):
        return None
    return v


def page_resolution_mpp(page: Any) -> float | None:
    """µm/px from a TIFF page's XResolution + ResolutionUnit (inch or centimetre), or None."""
    tags = page.tags
    xres = tags.get("XResolution")
    unit = tags.get("ResolutionUnit")
    if xres is None or unit is None:
        return None
    try:
        num, den = xres.value
        per_unit = num / den if den else 0.0
        u = int(unit.value)
    except (TypeError, ValueError):
        return None
    if per_unit > 0 and u in (2, 3):  # inch, centimetre
        return valid_mpp((25400.0 if u == 2 else 10000.0) / per_unit)
    return None


def ome_mpp(xml: str) -> float | None:
    """µm/px of the first image of an OME-XML document (``Pixels/@PhysicalSizeX`` in
    ``PhysicalSizeXUnit``, µm by default), or None."""
    import xml.etree.ElementTree as ET

    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return None
    for el in root.iter():
        if el.tag.rsplit("}", 1)[-1] == "Pixels" and "PhysicalSizeX" in el.attrib:
            factor = OME_UNIT_UM.get(el.attrib.get("PhysicalSizeXUnit", "µm").strip())
            if factor is None:
                return None
            try:
                return valid_mpp(float(el.attrib["PhysicalSizeX"]) * factor)
            except ValueError:
                return None
    return None


def tiff_info(p: Path) -> tuple[float | None, bool]:
    """``(mpp, sub_ifd_pyramid)`` of a TIFF file: µm/px from its OME-XML or its first page's
    resolution tags (None if neither), and whether it is an OME-TIFF or keeps its pyramid in
    SubIFDs (which openslide does not read). ``(None, False)`` for anything else."""
    if p.suffix.lower() not in TIFF_SUFFIXES or not p.is_file():
        return None, False
    import tifffile

    try:
        with tifffile.TiffFile(str(p)) as tf:
            page = tf.pages[0]
            ome = tf.ome_metadata if tf.is_ome else None
            mpp = ome_mpp(ome) if ome else None
            if mpp is None:
                mpp = page_resolution_mpp(page)
            return mpp, bool(ome) or bool(page.subifds)
    except Exception:  # noqa: BLE001 - not parseable as TIFF: the backends decide
        return None, False
