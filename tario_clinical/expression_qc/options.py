"""The options of the expression QC and their one checker.

:data:`ADJACENCY_KINDS` (lattice neighbourhood of Moran's I), :data:`BIN_SELECTIONS` (which
bins are compared) and :data:`BULK_TRANSFORMS` (measured pseudo-bulk), with the ``Literal``
types of the public signatures; :func:`check_choice` raises a :class:`SchemaError` that lists
the allowed values.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from ..errors import SchemaError

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


def check_choice(name: str, value: object, allowed: Sequence[str]) -> None:
    """Raise :class:`SchemaError` naming ``name``, ``value`` and the ``allowed`` values unless
    ``value`` is one of them."""
    if value not in allowed:
        raise SchemaError(
            f"{name}={value!r} is not allowed; choose one of {', '.join(map(repr, allowed))}"
        )
