"""Check predicted expression against measured spatial transcriptomics (TARIO-2 accuracy metrics).

Where some patients also have measured spatial transcriptomics (SpT), an encoder's predicted
expression maps are compared with the measured ones on the slide's prediction grid:

1. **Binning** — measured transcripts (a table of ``x, y`` in µm and ``gene``, as CosMx / Xenium
   export them, :func:`bin_transcripts`: a pandas table in memory, or — streamed by polars in
   batches, never held whole — a CSV / gzipped CSV / Parquet file, a Xenium or CosMx output
   folder, a SpatialData zarr store or object, a polars frame) or cell / spot-level AnnData
   (:func:`bin_cells`) are summed into the bins of the prediction grid (:class:`PredictionGrid`, one bin per tile). An
   affine registration (2 × 3 or 3 × 3 matrix) maps the measured frame onto the slide frame (µm).
2. **Metrics**, vectorised over genes: :func:`grid_adjacency`, :func:`morans_i`,
   :func:`spatial_correlation` (per gene Pearson r across bins), and, over samples,
   :func:`evaluate_expression` which ranks genes by the mean Moran's I of the *measured* data,
   builds the curve of mean spatial correlation over the top-k ranked genes (k = 1 … all, per
   cancer type) and the bulk correlation (one pseudo-bulk value per gene and sample, correlated
   across samples).
3. **Figures**: :func:`plot_spatial_correlation_curve`, :func:`plot_bulk_correlation_curve`,
   :func:`plot_expression_maps`; a tidy table (:meth:`ExpressionQCResult.table`) and
   :func:`report_section` for the HTML report.

Modules (one job each): :mod:`.grid` (prediction grid, coordinate frames), :mod:`.transcripts`
(finding and lazily opening transcript tables), :mod:`.binning`,
:mod:`.adjacency` (spatial weights), :mod:`.moments` and :mod:`.parallel` (one-pass sums and
their threading), :mod:`.spatial_stats` (Moran's I, spatial correlation), :mod:`.sample`,
:mod:`.compare` (one sample), :mod:`.result` (over samples), :mod:`.plots`, :mod:`.section`
(the report section), :mod:`.options` (option values and their checker).

Coordinates
-----------
Everything is in the slide frame, in µm, with ``x`` to the right and ``y`` down. Bin ``(row,
col)`` covers ``origin + [col, col + 1) * tile_um`` in x and ``origin + [row, row + 1) *
tile_um`` in y; its flat index is ``row * n_cols + col``.

Tile-level predictions are AnnData with one row per tile and genes as ``var_names``; tile centres
are looked up in this order (:func:`tile_centres_um`): ``obsm["spatial_um"]`` (n × 2, µm);
``obs[["x_um", "y_um"]]``; ``obsm["spatial"]`` with 4 columns ``(x_px, y_px, x_um, y_um)``;
``obsm["spatial"]`` with 2 columns — level-0 pixels multiplied by ``mpp`` when ``mpp`` is given or
recorded in ``uns["tario_clinical"]["mpp"]`` (or ``["tiling"]["mpp"]``), otherwise taken as µm.
A plain ``(n, 2)`` array is taken as µm.

Moran's I
---------
For one gene with values ``x`` over ``n`` bins, ``z = x - mean(x)`` and spatial weights ``W``,

``I = n / S0 * sum_ij W_ij z_i z_j / sum_i z_i**2``, with ``S0 = sum_ij W_ij``.

By default ``W`` is the binary adjacency *row-standardised* (each row divided by its number of
neighbours, so ``S0`` is the number of bins that have at least one neighbour; bins without a
neighbour keep a zero row and add nothing to the numerator). Under spatial randomness
``E[I] = -1 / (n - 1)``. A gene that is constant over the bins has ``I`` = NaN (0 / 0); such genes
are left out of the ranking (reported as ``n_genes_unranked``) rather than ranked arbitrarily.
The same convention holds for correlations: a constant map has r = NaN.
"""

from __future__ import annotations

from .adjacency import grid_adjacency
from .binning import CONTROL_PREFIXES as CONTROL_PREFIXES  # documented constant
from .binning import UNS_KEY as UNS_KEY  # documented constant
from .binning import bin_cells, bin_predictions, bin_transcripts
from .compare import SampleComparison, compare_sample
from .grid import PredictionGrid, apply_affine, tile_centres_um
from .options import AdjacencyKind as AdjacencyKind  # option type, for annotations
from .options import BinSelection as BinSelection  # option type, for annotations
from .options import BulkTransform as BulkTransform  # option type, for annotations
from .plots import plot_bulk_correlation_curve, plot_expression_maps, plot_spatial_correlation_curve
from .result import ALL as ALL  # name of the all-samples group
from .result import ExpressionQCResult, evaluate_expression
from .sample import SpatialSample
from .section import report_section
from .spatial_stats import morans_i, spatial_correlation

__all__ = [
    "PredictionGrid",
    "SpatialSample",
    "SampleComparison",
    "ExpressionQCResult",
    "tile_centres_um",
    "apply_affine",
    "bin_transcripts",
    "bin_cells",
    "bin_predictions",
    "grid_adjacency",
    "morans_i",
    "spatial_correlation",
    "compare_sample",
    "evaluate_expression",
    "plot_spatial_correlation_curve",
    "plot_bulk_correlation_curve",
    "plot_expression_maps",
    "report_section",
]
