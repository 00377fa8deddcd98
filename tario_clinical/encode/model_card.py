"""Model cards: a JSON description of a frozen tile encoder (``data_schemas/model_card.schema.json``)."""

from __future__ import annotations

import copy
import html
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import EncoderError

__all__ = ["ModelCard", "load_model_card", "validate_model_card", "FORMATS"]

FORMATS = ("torchscript", "torch_export", "safetensors", "state_dict", "onnx")


def validate_model_card(card: dict[str, Any], *, source: str = "<model card>") -> None:
    """Validate a model card dictionary against the JSON Schema.

    Parameters
    ----------
    card : dict
        Parsed model card.
    source : str, default "<model card>"
        Name of the card (e.g. its file) used in the error message.

    Raises
    ------
    EncoderError
        Listing every violation with its key path (e.g. ``input.tile_px``), the value found
        and the rule.
    """
    import jsonschema

    from ..schemas import load_schema

    schema = load_schema("model_card")
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(card), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        lines = []
        for e in errors[:10]:
            key = ".".join(str(p) for p in e.absolute_path) or "<top level>"
            lines.append(f"key {key!r}: {e.message}")
        more = f" (and {len(errors) - 10} more)" if len(errors) > 10 else ""
        raise EncoderError(
            f"model card {source}: {len(errors)} problem(s): " + "; ".join(lines) + more
        )


@dataclass(frozen=True)
class ModelCard:
    """A validated model card.

    Attributes
    ----------
    data : dict
        The card as read (JSON-serialisable; recorded in provenance).
    path : pathlib.Path or None
        File the card came from; relative weight paths resolve against its folder.
    """

    data: dict[str, Any]
    path: Path | None = None
    _extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    # convenient accessors -------------------------------------------------------------------
    @property
    def name(self) -> str:
        return str(self.data["name"])

    @property
    def format(self) -> str:
        return str(self.data["format"])

    @property
    def tile_px(self) -> int:
        return int(self.data["input"]["tile_px"])

    @property
    def mpp(self) -> float:
        return float(self.data["input"]["mpp"])

    @property
    def mean(self) -> tuple[float, float, float]:
        return tuple(self.data["input"].get("mean", [0.0, 0.0, 0.0]))  # type: ignore[return-value]

    @property
    def std(self) -> tuple[float, float, float]:
        return tuple(self.data["input"].get("std", [1.0, 1.0, 1.0]))  # type: ignore[return-value]

    @property
    def value_scale(self) -> float:
        """Divisor applied to uint8 pixels before normalisation (255 for ``0-1``)."""
        return 255.0 if self.data["input"].get("value_range", "0-1") == "0-1" else 1.0

    @property
    def base_dir(self) -> Path:
        return self.path.parent if self.path is not None else Path.cwd()

    def resolve(self, rel: str) -> Path:
        """Resolve a path of the card (weights, head) against the card's folder."""
        p = Path(rel)
        return p if p.is_absolute() else (self.base_dir / p)

    @property
    def weights_path(self) -> Path:
        return self.resolve(self.data["weights"])

    @property
    def head_path(self) -> Path | None:
        head = self.data.get("head")
        return self.resolve(head["weights"]) if head else None

    def to_dict(self) -> dict[str, Any]:
        """A deep copy of the card (for provenance)."""
        return copy.deepcopy(self.data)

    def _repr_html_(self) -> str:
        rows = {
            "name": self.name,
            "version": self.data["version"],
            "format": self.format,
            "input": f"{self.tile_px} px at {self.mpp} µm/px",
            "output": self.data["output"]["kind"],
            "head": "ExpressionHead" if self.data.get("head") else "none",
            "licence": self.data["licence"],
        }
        body = "".join(
            f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
            for k, v in rows.items()
        )
        return f"<table>{body}</table>"


def load_model_card(
    card: str | os.PathLike[str] | dict[str, Any] | ModelCard,
    *,
    base_dir: str | os.PathLike[str] | None = None,
) -> ModelCard:
    """Read and validate a model card.

    Parameters
    ----------
    card : path, dict or ModelCard
        JSON file, an already-parsed dictionary, or a card (returned unchanged).
    base_dir : path, optional
        Folder relative weight paths resolve against when ``card`` is a dict.

    Returns
    -------
    ModelCard

    Raises
    ------
    EncoderError
        If the file is missing, is not JSON, or violates the schema (every violation listed
        with its key).

    Examples
    --------
    >>> card = load_model_card("my_model/card.json")  # doctest: +SKIP
    >>> card.tile_px, card.mpp  # doctest: +SKIP
    (224, 0.5)
    """
    if isinstance(card, ModelCard):
        return card
    if isinstance(card, dict):
        validate_model_card(card)
        path = Path(base_dir) / "card.json" if base_dir is not None else None
        return ModelCard(copy.deepcopy(card), path)
    p = Path(card)
    if not p.is_file():
        raise EncoderError(f"model card not found: {p} (pass a model card .json or 'demo')")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise EncoderError(f"model card {p}: not valid JSON: {err}") from err
    if not isinstance(data, dict):
        raise EncoderError(
            f"model card {p}: top level must be a JSON object; got {type(data).__name__}"
        )
    validate_model_card(data, source=str(p))
    return ModelCard(data, p.resolve())
