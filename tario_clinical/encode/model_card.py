"""Model cards: a JSON description of a frozen tile encoder (``data_schemas/model_card.schema.json``).

A card either describes the model in full or names a built-in preset
(:mod:`tario_clinical.encode.presets`) and the local weights: ``{"schema_version": 1,
"preset": "uni2-h", "weights": "UNI2-h/"}``. Such a card is expanded into the preset's full card
before use; the full card (with ``preset`` kept) is what provenance records.
"""

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
    def preset(self) -> str | None:
        """Name of the built-in preset the card was expanded from, if any."""
        p = self.data.get("preset")
        return str(p) if p else None

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
        if self.preset:
            rows["preset"] = self.preset
        body = "".join(
            f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
            for k, v in rows.items()
        )
        return f"<table>{body}</table>"


def _expand(data: dict[str, Any], *, source: str, base_dir: Path | None,
            weights: str | os.PathLike[str] | None) -> dict[str, Any]:  # fmt: skip
    """Validate a raw card; expand one naming a preset; apply a weights override."""
    if data.get("preset") and weights is not None:
        data = {**data, "weights": str(weights)}
    if data.get("preset") and not data.get("weights"):
        from .presets import preset_card

        try:
            preset_card(str(data["preset"]), None)
        except EncoderError as err:
            raise EncoderError(f"model card {source}: {err}") from err
    validate_model_card(data, source=source)
    if data.get("preset"):
        from .presets import PRESET_CARD_KEYS, get_preset, preset_card

        extra = sorted(set(data) - set(PRESET_CARD_KEYS))
        if extra and "format" in data:
            # an already expanded card (e.g. from provenance): accepted if it is the preset's
            try:
                preset = get_preset(str(data["preset"]))
            except EncoderError as err:
                raise EncoderError(f"model card {source}: {err}") from err
            changed = [k for k in extra if k != "format" and data[k] != preset.card.get(k)]
            if not changed:
                return data if weights is None else {**data, "weights": str(weights)}
            extra = changed
        if extra:
            raise EncoderError(
                f"model card {source}: names preset {data['preset']!r} and also sets "
                f"{', '.join(extra)}, which come from the preset; a card naming a preset may set "
                f"only {', '.join(PRESET_CARD_KEYS)} (write a full card to change the rest)"
            )

        try:
            return preset_card(
                str(data["preset"]),
                weights if weights is not None else data.get("weights"),
                base_dir=base_dir,
                overrides=data,
            )
        except EncoderError as err:
            raise EncoderError(f"model card {source}: {err}") from err
    if weights is not None:
        data = copy.deepcopy(data)
        data["weights"] = str(weights)
    return data


def load_model_card(
    card: str | os.PathLike[str] | dict[str, Any] | ModelCard,
    *,
    base_dir: str | os.PathLike[str] | None = None,
    weights: str | os.PathLike[str] | None = None,
) -> ModelCard:
    """Read and validate a model card, or build one from a preset.

    Parameters
    ----------
    card : path, preset name, dict or ModelCard
        JSON file; the name of a built-in preset (``uni``, ``uni2-h``, ``virchow2``,
        ``h-optimus-0``, ``h-optimus-1``, ``prov-gigapath``, ``phikon-v2``: see
        :func:`~tario_clinical.encode.presets.list_presets`); an already-parsed dictionary; or a
        card (returned unchanged unless ``weights`` is given).
    base_dir : path, optional
        Folder relative weight paths resolve against when ``card`` is a dict or a preset name
        (default: the working directory).
    weights : path, optional
        Local weights: required for a preset name (snapshot folder or weight file); for a card,
        replaces its ``weights`` key. A relative path resolves against the working directory.

    Returns
    -------
    ModelCard

    Raises
    ------
    EncoderError
        If the file is missing, is not JSON, or violates the schema (every violation listed
        with its key); for a preset, if the weights are missing (the message says where to get
        them and which file to point at).

    Examples
    --------
    >>> card = load_model_card("my_model/card.json")  # doctest: +SKIP
    >>> card.tile_px, card.mpp  # doctest: +SKIP
    (224, 0.5)
    >>> load_model_card("uni2-h", weights="models/UNI2-h").preset  # doctest: +SKIP
    'uni2-h'
    """
    if weights is not None:
        weights = os.path.abspath(weights)
    if isinstance(card, ModelCard):
        if weights is None:
            return card
        card, base_dir = card.to_dict(), card.base_dir
    if isinstance(card, dict):
        base = Path(base_dir) if base_dir is not None else None
        data = _expand(copy.deepcopy(card), source="<model card>", base_dir=base, weights=weights)
        validate_model_card(data)
        path = base / "card.json" if base is not None else None
        return ModelCard(data, path)
    from .presets import PRESETS

    if isinstance(card, str) and card.strip().lower() in PRESETS and not Path(card).is_file():
        from .presets import preset_card

        data = preset_card(card, weights, base_dir=base_dir)
        validate_model_card(data, source=f"preset {card!r}")
        return ModelCard(data, None)
    p = Path(card)
    if not p.is_file():
        raise EncoderError(
            f"model card not found: {p} (pass a model card .json, 'demo', or a preset: "
            f"{', '.join(sorted(PRESETS))})"
        )
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise EncoderError(f"model card {p}: not valid JSON: {err}") from err
    if not isinstance(data, dict):
        raise EncoderError(
            f"model card {p}: top level must be a JSON object; got {type(data).__name__}"
        )
    data = _expand(data, source=str(p), base_dir=p.resolve().parent, weights=weights)
    validate_model_card(data, source=str(p))
    return ModelCard(data, p.resolve())
