"""The prediction grid and coordinate frames.

:class:`PredictionGrid` is the lattice of a slide's prediction tiles in slide µm;
:func:`tile_centres_um` finds tile (or cell) centres in µm in an AnnData; :func:`apply_affine`
maps the measured (SpT) frame onto the slide frame. Conventions: see
:mod:`tario_clinical.expression_qc`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import SchemaError

if TYPE_CHECKING:  # pragma: no cover
    import anndata as ad

__all__ = ["PredictionGrid", "tile_centres_um", "apply_affine"]


@dataclass(frozen=True)
class PredictionGrid:
    """The lattice of a slide's prediction tiles (one bin per tile), in slide µm.

    Parameters
    ----------
    origin_um
        ``(x, y)`` of the top-left corner of bin ``(0, 0)``.
    tile_um
        Bin edge length (the tile stride) in µm.
    shape
        ``(n_rows, n_cols)``; rows run along ``y``, columns along ``x``.
    """

    origin_um: tuple[float, float]
    tile_um: float
    shape: tuple[int, int]

    def __post_init__(self) -> None:
        if not (np.isfinite(self.tile_um) and self.tile_um > 0):
            raise SchemaError(f"tile_um must be a positive finite number; got {self.tile_um!r}")
        if len(self.shape) != 2 or min(self.shape) < 1:
            raise SchemaError(f"grid shape must be (n_rows, n_cols) >= 1; got {self.shape!r}")

    @property
    def n_bins(self) -> int:
        """Number of bins of the full grid."""
        return int(self.shape[0] * self.shape[1])

    def locate(self, xy_um: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Flat bin index of points and a mask of those inside the grid.

        Parameters
        ----------
        xy_um
            ``(n, 2)`` points in slide µm.

        Returns
        -------
        bins, inside
            ``bins`` (int64, ``-1`` outside) and the boolean ``inside`` mask.
        """
        xy = np.asarray(xy_um, dtype=np.float64)
        col = np.floor((xy[:, 0] - self.origin_um[0]) / self.tile_um)
        row = np.floor((xy[:, 1] - self.origin_um[1]) / self.tile_um)
        inside = (col >= 0) & (col < self.shape[1]) & (row >= 0) & (row < self.shape[0])
        inside &= np.isfinite(col) & np.isfinite(row)
        bins = np.full(xy.shape[0], -1, dtype=np.int64)
        bins[inside] = row[inside].astype(np.int64) * self.shape[1] + col[inside].astype(np.int64)
        return bins, inside

    def centres_um(self, bins: np.ndarray | None = None) -> np.ndarray:
        """``(n, 2)`` centres in µm of the given flat bins (all bins when ``None``)."""
        b = np.arange(self.n_bins) if bins is None else np.asarray(bins, dtype=np.int64)
        row, col = np.divmod(b, self.shape[1])
        return np.column_stack(
            [
                self.origin_um[0] + (col + 0.5) * self.tile_um,
                self.origin_um[1] + (row + 0.5) * self.tile_um,
            ]
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe description (stored in ``uns["expression_qc"]["grid"]``)."""
        return {
            "origin_um": [float(self.origin_um[0]), float(self.origin_um[1])],
            "tile_um": float(self.tile_um),
            "shape": [int(self.shape[0]), int(self.shape[1])],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PredictionGrid:
        """Inverse of :meth:`to_dict`."""
        try:
            return cls(
                origin_um=(float(d["origin_um"][0]), float(d["origin_um"][1])),
                tile_um=float(d["tile_um"]),
                shape=(int(d["shape"][0]), int(d["shape"][1])),
            )
        except (KeyError, TypeError, IndexError) as err:
            raise SchemaError(
                f"grid description {dict(d)!r} needs keys origin_um [x, y], tile_um, shape [rows, cols]"
            ) from err

    @classmethod
    def from_tiles(
        cls,
        tiles: ad.AnnData | np.ndarray,
        *,
        tile_um: float | None = None,
        mpp: float | None = None,
    ) -> PredictionGrid:
        """Infer the grid from tile centres lying on a regular lattice.

        Parameters
        ----------
        tiles
            Tile-level AnnData or an ``(n, 2)`` array of centres in µm (see
            :func:`tile_centres_um`).
        tile_um
            Tile stride in µm; inferred as the smallest spacing between distinct centre
            coordinates when ``None``.
        mpp
            µm per level-0 pixel, for AnnData whose ``obsm["spatial"]`` holds pixels.

        Raises
        ------
        SchemaError
            If the centres are not on a lattice of the given stride or the stride cannot be
            inferred.
        """
        xy = tile_centres_um(tiles, mpp=mpp)
        if xy.shape[0] == 0:
            raise SchemaError("no tile centres given; a prediction grid needs at least one tile")
        if tile_um is None:
            spacings = []
            for k in range(2):
                u = np.unique(np.round(xy[:, k], 6))
                if u.size > 1:
                    spacings.append(np.diff(u).min())
            if not spacings:
                raise SchemaError("cannot infer tile_um from a single tile; pass tile_um=")
            tile_um = float(min(spacings))
        origin = xy.min(axis=0) - tile_um / 2.0
        pos = (xy - origin) / tile_um - 0.5
        rc = np.rint(pos)
        off = np.abs(pos - rc).max()
        if off > 0.05:
            bad = int(np.argmax(np.abs(pos - rc).max(axis=1)))
            raise SchemaError(
                f"tile centres are not on a lattice of stride {tile_um:g} µm: tile {bad} at "
                f"{xy[bad].tolist()} is {off:.2f} tiles off; pass the right tile_um"
            )
        shape = (int(rc[:, 1].max()) + 1, int(rc[:, 0].max()) + 1)
        return cls(origin_um=(float(origin[0]), float(origin[1])), tile_um=tile_um, shape=shape)


def _uns_mpp(adata: ad.AnnData) -> float | None:
    prov = adata.uns.get("tario_clinical") if hasattr(adata, "uns") else None
    if isinstance(prov, Mapping):
        for d in (prov, prov.get("tiling")):
            if isinstance(d, Mapping) and d.get("mpp") is not None:
                return float(d["mpp"])
    return None


def tile_centres_um(
    data: ad.AnnData | np.ndarray,
    *,
    mpp: float | None = None,
    spatial_key: str = "spatial",
) -> np.ndarray:
    """Centres in µm of tiles (or cells) of an AnnData or an ``(n, 2)`` µm array.

    Lookup order for AnnData: ``obsm["spatial_um"]``; ``obs[["x_um", "y_um"]]``;
    ``obsm[spatial_key]`` with 4 columns ``(x_px, y_px, x_um, y_um)``; ``obsm[spatial_key]``
    with 2 columns in level-0 pixels times ``mpp`` (argument, else
    ``uns["tario_clinical"]["mpp"]`` or ``["tiling"]["mpp"]``), or in µm when no ``mpp`` is known.

    Parameters
    ----------
    data : AnnData or numpy.ndarray
        Tiles (or cells) AnnData, or an ``(n, 2)`` array already in µm (returned as float64).
    mpp : float, optional
        µm per level-0 pixel, applied to 2-column pixel coordinates in ``obsm[spatial_key]``;
        default from ``uns`` (see above).
    spatial_key : str, default "spatial"
        ``obsm`` key of the coordinates.

    Returns
    -------
    numpy.ndarray
        ``(n, 2)`` float64 centres ``(x, y)`` in µm.

    Raises
    ------
    SchemaError
        If no coordinates are found or they have the wrong shape.
    """
    if isinstance(data, np.ndarray) or not hasattr(data, "obsm"):
        xy = np.asarray(data, dtype=np.float64)
        if xy.ndim != 2 or xy.shape[1] != 2:
            raise SchemaError(f"coordinates must be an (n, 2) array in µm; got shape {xy.shape}")
        return xy
    if "spatial_um" in data.obsm:
        xy = np.asarray(data.obsm["spatial_um"], dtype=np.float64)
    elif {"x_um", "y_um"} <= set(data.obs.columns):
        xy = data.obs[["x_um", "y_um"]].to_numpy(dtype=np.float64)
    elif spatial_key in data.obsm:
        s = np.asarray(data.obsm[spatial_key], dtype=np.float64)
        if s.ndim == 2 and s.shape[1] == 4:
            xy = s[:, 2:4]
        elif s.ndim == 2 and s.shape[1] == 2:
            scale = mpp if mpp is not None else _uns_mpp(data)
            xy = s * scale if scale is not None else s
        else:
            raise SchemaError(
                f'obsm["{spatial_key}"] must have 2 (x, y) or 4 (x_px, y_px, x_um, y_um) '
                f"columns; got shape {s.shape}"
            )
    else:
        raise SchemaError(
            f'no coordinates: expected obsm["spatial_um"], obs columns x_um/y_um or '
            f'obsm["{spatial_key}"]; found obsm keys {list(data.obsm.keys())}'
        )
    if xy.ndim != 2 or xy.shape[1] != 2 or xy.shape[0] != data.n_obs:
        raise SchemaError(f"coordinates must be (n_obs, 2) = ({data.n_obs}, 2); got {xy.shape}")
    return xy


def affine_matrix(affine: np.ndarray | Sequence[Sequence[float]] | None) -> np.ndarray | None:
    """``affine`` checked as a 2 × 3 float64 matrix (``None`` stays ``None``); see
    :func:`apply_affine` for what is allowed."""
    if affine is None:
        return None
    a = np.asarray(affine, dtype=np.float64)
    if a.shape == (3, 3):
        if not np.allclose(a[2], [0.0, 0.0, 1.0]):
            raise SchemaError(f"a 3x3 affine must have last row [0, 0, 1]; got {a[2].tolist()}")
        a = a[:2]
    if a.shape != (2, 3):
        raise SchemaError(f"affine must be a 2x3 or 3x3 matrix; got shape {a.shape}")
    if not np.isfinite(a).all() or abs(np.linalg.det(a[:, :2])) < 1e-12:
        raise SchemaError(f"affine must be finite and invertible; got {a.tolist()}")
    return a


def apply_affine(
    xy: np.ndarray, affine: np.ndarray | Sequence[Sequence[float]] | None
) -> np.ndarray:
    """Map ``(n, 2)`` points with a 2 × 3 or 3 × 3 affine: ``xy' = A[:2, :2] @ xy + A[:2, 2]``.

    ``affine`` maps the measured (SpT) frame onto the slide frame, both in µm; ``None`` is the
    identity.

    Parameters
    ----------
    xy : array-like
        ``(n, 2)`` points ``(x, y)`` in µm.
    affine : array-like or None
        2 × 3 or 3 × 3 matrix (a 3 × 3 one must have last row ``[0, 0, 1]``), finite and
        invertible; ``None`` for the identity.

    Returns
    -------
    numpy.ndarray
        ``(n, 2)`` float64 mapped points.

    Raises
    ------
    SchemaError
        If ``affine`` has the wrong shape or is not finite and invertible.
    """
    a = affine_matrix(affine)
    xy = np.asarray(xy, dtype=np.float64)
    if a is None:
        return xy
    # elementwise, not a matrix product: BLAS may fuse multiply-adds, and the streaming binner
    # (polars) must put a point on a bin edge into the same bin as this in-memory path
    x, y = xy[:, 0], xy[:, 1]
    return np.column_stack(
        [x * a[0, 0] + y * a[0, 1] + a[0, 2], x * a[1, 0] + y * a[1, 1] + a[1, 2]]
    )
