"""One sample's paired predicted and measured expression (:class:`SpatialSample`).

Producers of paired data need not import this package: :func:`as_spatial_sample` accepts any
object with ``sample_id``, ``predicted`` and ``measured`` attributes (and optionally
``cancer_type``, ``affine``, ``tile_um``, ``mpp``), such as the samples of
:func:`tario_clinical.simulate.spatial.simulate_spatial_pairs`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from ..errors import SchemaError
from .binning import UNS_KEY, bin_cells, bin_predictions, bin_transcripts
from .grid import PredictionGrid

if TYPE_CHECKING:  # pragma: no cover
    import anndata as ad

__all__ = ["SpatialSample", "as_spatial_sample"]


@dataclass(frozen=True, eq=False)
class SpatialSample:
    """Predicted and measured expression of one sample (slide / SpT section).

    Parameters
    ----------
    sample_id
        Identifier (e.g. patient or slide id).
    predicted
        Tile-level predictions (AnnData tiles × genes with tile centres, see
        :func:`tile_centres_um`) or their binned form (:func:`bin_predictions`).
    measured
        Either a binned AnnData (:func:`bin_transcripts` / :func:`bin_cells`), a transcript
        table — a DataFrame, or a file / folder / SpatialData object streamed by
        :func:`bin_transcripts` — (binned with ``affine``), or a cell/spot AnnData (binned with
        ``affine``).
    cancer_type
        Group of the sample for the per-cancer-type curves.
    affine
        Measured µm → slide µm (2 × 3 or 3 × 3), used when ``measured`` is raw.
    tile_um, mpp
        Passed to :meth:`PredictionGrid.from_tiles` when the grid is inferred from the tiles.
    """

    sample_id: str
    predicted: Any
    measured: Any
    cancer_type: str | None = None
    affine: Any = None
    tile_um: float | None = None
    mpp: float | None = None

    def binned(self) -> tuple[ad.AnnData, ad.AnnData]:
        """``(predicted, measured)`` both on the same prediction grid."""
        pred, meas = self.predicted, self.measured
        meas_binned = (
            hasattr(meas, "uns")
            and UNS_KEY in meas.uns
            and meas.uns[UNS_KEY].get("kind") == "measured"
        )
        pred_binned = (
            hasattr(pred, "uns")
            and UNS_KEY in pred.uns
            and pred.uns[UNS_KEY].get("kind") == "predicted"
        )
        if meas_binned:
            grid = PredictionGrid.from_dict(meas.uns[UNS_KEY]["grid"])
        elif pred_binned:
            grid = PredictionGrid.from_dict(pred.uns[UNS_KEY]["grid"])
        else:
            grid = PredictionGrid.from_tiles(pred, tile_um=self.tile_um, mpp=self.mpp)
        if not pred_binned:
            pred = bin_predictions(pred, grid, mpp=self.mpp)
        elif PredictionGrid.from_dict(pred.uns[UNS_KEY]["grid"]) != grid:
            raise SchemaError(
                f"sample {self.sample_id!r}: predicted and measured were binned on different grids "
                f"({pred.uns[UNS_KEY]['grid']} vs {grid.to_dict()})"
            )
        if not meas_binned:
            if hasattr(meas, "obsm"):
                meas = bin_cells(meas, grid, affine=self.affine)
            elif (
                isinstance(meas, (pd.DataFrame, str, os.PathLike))
                or type(meas).__module__.startswith("polars")
                or hasattr(meas, "points")  # SpatialData
            ):
                meas = bin_transcripts(meas, grid, affine=self.affine)
            else:
                raise SchemaError(
                    f"sample {self.sample_id!r}: measured must be a transcript table (DataFrame, "
                    "file, Xenium / CosMx folder, SpatialData) or an AnnData; got "
                    f"{type(meas).__name__}"
                )
        return pred, meas


_OPTIONAL = ("cancer_type", "affine", "tile_um", "mpp")


def as_spatial_sample(item: Any) -> SpatialSample:
    """``item`` as a :class:`SpatialSample`: itself, or one built from its attributes.

    Parameters
    ----------
    item : SpatialSample or object
        A :class:`SpatialSample`, or any object with ``sample_id``, ``predicted`` and
        ``measured`` attributes and optionally ``cancer_type``, ``affine``, ``tile_um`` and
        ``mpp`` (``None`` when absent).

    Returns
    -------
    SpatialSample

    Raises
    ------
    SchemaError
        If ``item`` lacks ``sample_id``, ``predicted`` or ``measured``.
    """
    if isinstance(item, SpatialSample):
        return item
    missing = [a for a in ("sample_id", "predicted", "measured") if not hasattr(item, a)]
    if missing:
        raise SchemaError(
            "samples must be SpatialSample items or objects with sample_id, predicted and "
            f"measured attributes; got {type(item).__name__} without {', '.join(missing)}"
        )
    return SpatialSample(
        sample_id=item.sample_id,
        predicted=item.predicted,
        measured=item.measured,
        **{a: getattr(item, a, None) for a in _OPTIONAL},
    )
