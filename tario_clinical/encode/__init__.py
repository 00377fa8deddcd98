"""Frozen-encoder pipeline: slides -> tiles -> frozen model -> pooled patient representations.

A model is described by a model card (``data_schemas/model_card.schema.json``) and loaded frozen
(:func:`load_encoder`); an :class:`ExpressionHead` stacked on any backbone turns its embedding
into predicted expression (ridge with GCV, or the HEST-Benchmark PCA + ridge protocol;
:func:`compare_expression_heads` compares them on held-out folds); :func:`encode_slides` runs the batched, resumable inference and writes
``representations.h5ad``. ``encode_slides_ray`` (in :mod:`tario_clinical.encode.ray_runner`) runs
the same model code under Ray Data. ``"demo"`` names the demo model (not a pathology model).

torch, onnxruntime and ray are imported on first use, not when this package is imported.
"""

from __future__ import annotations

from .architectures import build_architecture, register_architecture
from .engine import (
    FUSIONS,
    EncodeResult,
    default_batch_size,
    default_num_workers,
    encode_slides,
    pool_patients,
)
from .head import ExpressionHead, compare_expression_heads, fit_expression_head
from .loaders import DEVICES, FrozenEncoder, load_encoder, resolve_device
from .model_card import FORMATS, ModelCard, load_model_card, validate_model_card

__all__ = [
    "DEVICES",
    "FORMATS",
    "FUSIONS",
    "EncodeResult",
    "ExpressionHead",
    "FrozenEncoder",
    "ModelCard",
    "build_architecture",
    "compare_expression_heads",
    "default_batch_size",
    "default_num_workers",
    "encode_slides",
    "fit_expression_head",
    "load_encoder",
    "load_model_card",
    "pool_patients",
    "register_architecture",
    "resolve_device",
    "validate_model_card",
]
