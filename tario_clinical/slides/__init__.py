"""Whole-slide image access: readers, tissue detection and tile grids.

``open_slide`` reads pyramidal WSIs through openslide-python (default, when importable) or
tiffslide (pure-Python fallback; first for OME-TIFF), DICOM WSIs through openslide >= 4 or
wsidicom, large non-pyramidal TIFFs (thumbnails read in bands), and plain PNG/JPEG/TIFF regions
through Pillow/tifffile. Backends are imported on first use, so importing this package stays
light.

Examples
--------
>>> from tario_clinical.slides import open_slide, detect_tissue, tile_grid
>>> with open_slide("slide.svs", mpp=None) as s:  # doctest: +SKIP
...     grid = tile_grid(s, tile_px=224, mpp=0.5, mask=detect_tissue(s))
"""

from __future__ import annotations

from ._readers import BACKENDS, Slide, available_backends, open_slide, slide_files
from .manifest import MANIFEST_REQUIRED, read_slide_manifest
from .tiling import TILE_COLUMNS, TileGrid, read_tile, read_tile_at, tile_grid
from .tissue import TissueMask, detect_tissue, tissue_mask

__all__ = [
    "BACKENDS",
    "MANIFEST_REQUIRED",
    "TILE_COLUMNS",
    "Slide",
    "TileGrid",
    "TissueMask",
    "available_backends",
    "detect_tissue",
    "open_slide",
    "read_slide_manifest",
    "read_tile",
    "read_tile_at",
    "slide_files",
    "tile_grid",
    "tissue_mask",
]
