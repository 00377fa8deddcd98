"""The options of the expression QC and their one checker.

:data:`ADJACENCY_KINDS` (lattice neighbourhood of Moran's I), :data:`BIN_SELECTIONS` (which
bins are compared) and :data:`BULK_TRANSFORMS` (measured pseudo-bulk), with the ``Literal``
types of the public signatures; :func:`check_choice` (the package's, from
:mod:`tario_clinical._checks`) raises a :class:`SchemaError` that lists the allowed values.
"""

from __future__ import annotations

from typing import Literal

from .._checks import check_choice

__all__ = [
    "AdjacencyKind",
    "BinSelection",
    "BulkTransform",
    "ADJACENCY_KINDS",
    "BIN_SELECTIONS",
    "BULK_TRANSFORMS",
    "check_choice",
]

AdjacencyKind = Literal["rook", "queen"]
BinSelection = Literal["both", "predicted"]
BulkTransform = Literal["log1p_cpm", "mean"]
ADJACENCY_KINDS = ("rook", "queen")
BIN_SELECTIONS = ("both", "predicted")
BULK_TRANSFORMS = ("log1p_cpm", "mean")
