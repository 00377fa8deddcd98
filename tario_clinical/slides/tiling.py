"""Tile grid at a target resolution, read from the best pyramid level.

A tile of ``tile_px`` pixels at ``mpp`` µm/px covers ``tile_px * mpp / slide.mpp`` level-0
pixels. Tiles are read from the coarsest level that is still at least as fine as the target
(:meth:`Slide.best_level_for_downsample`) and resized to ``tile_px``; coordinates are level-0
pixels (top-left and centre) and µm (centre).
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..errors import SlideError
from ..palette import OKABE_ITO
from .tissue import TissueMask, detect_tissue

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

    from ._readers import Slide

__all__ = ["TileGrid", "tile_grid", "read_tile", "TILE_COLUMNS"]

#: columns of :attr:`TileGrid.tiles`
TILE_COLUMNS = (
    "tile_index",
    "x",
    "y",
    "x_center_px",
    "y_center_px",
    "x_um",
    "y_um",
    "tissue_fraction",
)


@dataclass(frozen=True)
class TileGrid:
    """Tiles of one slide at a target resolution.

    Attributes
    ----------
    slide_id : str
    tiles : pandas.DataFrame
        One row per kept tile, columns :data:`TILE_COLUMNS`; ``x, y`` are the top-left corner in
        level-0 px, ``x_center_px, y_center_px`` the centre in level-0 px, ``x_um, y_um`` the
        centre in µm.
    tile_px : int
        Output tile side in pixels.
    mpp : float
        Target µm/px of the tiles.
    slide_mpp : float
        µm per level-0 pixel of the slide.
    level : int
        Pyramid level read.
    read_px : int
        Side of the region read at ``level`` (resized to ``tile_px``).
    footprint_px : float
        Tile side in level-0 pixels.
    min_tissue : float
        Minimum tissue fraction of a kept tile.
    n_candidates : int
        Tiles in the full grid before the tissue filter.
    dimensions : (int, int)
        Level-0 ``(width, height)`` of the slide.
    """

    slide_id: str
    tiles: pd.DataFrame
    tile_px: int
    mpp: float
    slide_mpp: float
    level: int
    read_px: int
    footprint_px: float
    min_tissue: float
    n_candidates: int
    dimensions: tuple[int, int] = (0, 0)
    step_um: float | None = None

    def __len__(self) -> int:
        return len(self.tiles)

    def params(self) -> dict[str, float | int]:
        """Tiling parameters for provenance."""
        return {
            "tile_px": int(self.tile_px),
            "mpp": float(self.mpp),
            "slide_mpp": float(self.slide_mpp),
            "level": int(self.level),
            "read_px": int(self.read_px),
            "footprint_px": float(self.footprint_px),
            "min_tissue": float(self.min_tissue),
            **({"step_um": float(self.step_um)} if self.step_um is not None else {}),
        }

    def plot_tiles(self, *, thumbnail: np.ndarray | None = None, ax: Axes | None = None) -> Axes:
        """Draw tile outlines (on a thumbnail when given, in level-0 px); returns the Axes."""
        import matplotlib.pyplot as plt
        from matplotlib.collections import PolyCollection

        if ax is None:
            _, ax = plt.subplots(figsize=(5, 5))
        fp = self.footprint_px
        W, H = self.dimensions
        if thumbnail is not None:
            ax.imshow(thumbnail, extent=(0, W, H, 0))
        x = self.tiles["x"].to_numpy(float)
        y = self.tiles["y"].to_numpy(float)
        polys = [[(a, b), (a + fp, b), (a + fp, b + fp), (a, b + fp)] for a, b in zip(x, y)]
        ax.add_collection(PolyCollection(polys, facecolors="none", edgecolors=OKABE_ITO[0], lw=0.4))
        ax.set_xlim(0, W)
        ax.set_ylim(H, 0)
        ax.set_title(f"{self.slide_id}: {len(self)} tiles")
        ax.set_aspect("equal")
        return ax

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
            for k, v in {"slide": self.slide_id, "tiles": len(self), **self.params()}.items()
        )
        return f"<table>{rows}</table>"


def _tissue_fraction(mask: TissueMask, x: np.ndarray, y: np.ndarray, fp: float) -> np.ndarray:
    """Mean mask value over each tile footprint, via a summed-area table."""
    m = mask.mask.astype(np.float64)
    H, W = m.shape
    sat = np.zeros((H + 1, W + 1))
    sat[1:, 1:] = m.cumsum(0).cumsum(1)
    dx, dy = mask.downsample
    x0 = np.clip(np.floor(x / dx).astype(int), 0, W)
    y0 = np.clip(np.floor(y / dy).astype(int), 0, H)
    x1 = np.clip(np.ceil((x + fp) / dx).astype(int), 0, W)
    y1 = np.clip(np.ceil((y + fp) / dy).astype(int), 0, H)
    x1 = np.maximum(x1, np.minimum(x0 + 1, W))
    y1 = np.maximum(y1, np.minimum(y0 + 1, H))
    area = np.maximum((x1 - x0) * (y1 - y0), 1)
    s = sat[y1, x1] - sat[y0, x1] - sat[y1, x0] + sat[y0, x0]
    return s / area


def tile_grid(
    slide: Slide,
    *,
    tile_px: int = 224,
    mpp: float = 0.5,
    min_tissue: float = 0.5,
    mask: TissueMask | None = None,
    step_um: float | None = None,
) -> TileGrid:
    """Lay a tile grid over the tissue of ``slide`` (non-overlapping unless ``step_um``).

    Parameters
    ----------
    slide : Slide
        Open slide.
    tile_px : int
        Tile side in pixels after resizing.
    mpp : float
        Target µm/px of the tiles (the encoder's input resolution).
    min_tissue : float
        Keep tiles whose tissue fraction (from the mask) is at least this (0-1).
    mask : TissueMask, optional
        Precomputed mask; computed with :func:`detect_tissue` when omitted.
    step_um : float, optional
        Distance in µm between neighbouring tile centres (a prediction grid, e.g. 18 or 35 µm
        bins: each tile is the model's field of view centred on its bin, so tiles overlap when
        ``step_um`` is below the tile's side). Default: the tile's side (non-overlapping).

    Returns
    -------
    TileGrid

    Raises
    ------
    SlideError
        If the parameters are invalid or the slide is smaller than one tile.

    Examples
    --------
    >>> grid = tile_grid(slide, tile_px=224, mpp=0.5)  # doctest: +SKIP
    >>> grid.tiles[["x_um", "y_um"]].head()  # doctest: +SKIP
    """
    if not isinstance(tile_px, int | np.integer) or tile_px < 8:
        raise SlideError(f"tile_px must be an integer >= 8; got {tile_px!r}")
    if not (np.isfinite(mpp) and mpp > 0):
        raise SlideError(f"mpp must be a positive number of µm/px; got {mpp!r}")
    if not 0.0 <= min_tissue <= 1.0:
        raise SlideError(f"min_tissue must be in [0, 1]; got {min_tissue!r}")
    target_ds = float(mpp) / slide.mpp
    fp = tile_px * target_ds
    level = slide.best_level_for_downsample(target_ds)
    read_px = max(1, int(round(fp / slide.level_downsamples[level])))
    W, H = slide.dimensions
    if step_um is not None and not (np.isfinite(step_um) and step_um > 0):
        raise SlideError(f"step_um must be a positive number of µm; got {step_um!r}")
    step = fp if step_um is None else float(step_um) / slide.mpp  # level-0 px between tiles
    nx = int(np.floor((W - fp) / step + 1e-9)) + 1 if W >= fp - 1e-9 else 0
    ny = int(np.floor((H - fp) / step + 1e-9)) + 1 if H >= fp - 1e-9 else 0
    if nx < 1 or ny < 1:
        raise SlideError(
            f"slide {slide.slide_id!r} ({W}x{H} px at {slide.mpp:.4g} µm/px) is smaller than one "
            f"tile of {tile_px} px at {mpp} µm/px ({fp:.0f} level-0 px)"
        )
    if mask is None:
        mask = detect_tissue(slide)
    gx, gy = np.meshgrid(np.arange(nx), np.arange(ny))
    x = np.round(gx.ravel() * step).astype(np.int64)
    y = np.round(gy.ravel() * step).astype(np.int64)
    frac = _tissue_fraction(mask, x.astype(float), y.astype(float), fp)
    keep = frac >= min_tissue - 1e-12
    if min_tissue == 0.0:
        keep = frac > 0
    x, y, frac = x[keep], y[keep], frac[keep]
    cx = x + fp / 2.0
    cy = y + fp / 2.0
    tiles = pd.DataFrame(
        {
            "tile_index": np.arange(len(x), dtype=np.int64),
            "x": x,
            "y": y,
            "x_center_px": cx,
            "y_center_px": cy,
            "x_um": cx * slide.mpp,
            "y_um": cy * slide.mpp,
            "tissue_fraction": frac,
        }
    )
    return TileGrid(
        slide_id=slide.slide_id,
        tiles=tiles,
        tile_px=int(tile_px),
        mpp=float(mpp),
        slide_mpp=float(slide.mpp),
        level=int(level),
        read_px=int(read_px),
        footprint_px=float(fp),
        min_tissue=float(min_tissue),
        n_candidates=int(nx * ny),
        dimensions=(int(W), int(H)),
        step_um=None if step_um is None else float(step_um),
    )


def read_tile(slide: Slide, grid: TileGrid, i: int) -> np.ndarray:
    """Read tile ``i`` (a row position of ``grid.tiles``) as ``tile_px x tile_px x 3`` uint8.

    Parameters
    ----------
    slide : Slide
        The open slide the grid was laid over.
    grid : TileGrid
        Output of :func:`tile_grid` for ``slide``.
    i : int
        Row position in ``grid.tiles`` (not its index label).

    Returns
    -------
    numpy.ndarray
        ``(tile_px, tile_px, 3)`` uint8 RGB.

    Raises
    ------
    SlideError
        If the backend cannot read the region.
    """
    row = grid.tiles.iloc[i]
    return read_tile_at(slide, int(row["x"]), int(row["y"]), grid.level, grid.read_px, grid.tile_px)


def read_tile_at(
    slide: Slide, x: int, y: int, level: int, read_px: int, tile_px: int
) -> np.ndarray:
    """Read a ``read_px`` square at ``level`` from level-0 ``(x, y)`` and resize to ``tile_px``.

    Parameters
    ----------
    slide : Slide
        The open slide.
    x, y : int
        Top-left corner in level-0 pixels.
    level : int
        Pyramid level read.
    read_px : int
        Side of the square read, in pixels of ``level``.
    tile_px : int
        Side of the returned tile in pixels (box filter when shrinking, bilinear when enlarging).

    Returns
    -------
    numpy.ndarray
        ``(tile_px, tile_px, 3)`` uint8 RGB.

    Raises
    ------
    SlideError
        If the backend cannot read the region.
    """
    return resize_tile(slide.read_region((x, y), level, (read_px, read_px)), tile_px)


def resize_tile(region: np.ndarray, tile_px: int) -> np.ndarray:
    """Resize a square RGB ``region`` to ``tile_px`` (box filter when shrinking, bilinear when
    enlarging); returned unchanged (made contiguous) when it already has that size."""
    if region.shape[0] == tile_px and region.shape[1] == tile_px:
        return np.ascontiguousarray(region)
    from PIL import Image

    resample = Image.Resampling.BOX if region.shape[1] > tile_px else Image.Resampling.BILINEAR
    image = Image.fromarray(np.ascontiguousarray(region))
    return np.asarray(image.resize((tile_px, tile_px), resample), dtype=np.uint8)
