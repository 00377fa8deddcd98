"""What made a set of representations, and whether two sets come from the same encoder/tiling.

A locked biomarker records the :func:`representation_identity` of its development
representations; it refuses to score representations whose required fields differ (another
model card, weights, head, tiling or patient pooling) unless the user overrides, and then warns
with :class:`EncoderMismatchWarning`.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from ..provenance import sha256_bytes
from ._common import json_safe

__all__ = [
    "IDENTITY_REQUIRED",
    "IDENTITY_RECORDED",
    "EncoderMismatchWarning",
    "representation_identity",
    "compare_representations",
]

#: representation fields that must match for a locked biomarker to be applied
IDENTITY_REQUIRED = (
    "source",
    "model_card_name",
    "model_card_version",
    "weights_sha256",
    "head_sha256",
    "tiling",
    "fusion",
)
#: fields recorded side by side but not required to match
IDENTITY_RECORDED = ("feature_kind", "level", "dtype", "device", "package_version")


class EncoderMismatchWarning(UserWarning):
    """A locked biomarker was applied to representations of another encoder/tiling (overridden)."""


# ------------------------------------------------------------------------ provenance
def _plain(obj: Any) -> Any:
    """h5ad-stored provenance back to plain Python (arrays -> lists, "null" -> None)."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, np.ndarray):
        return [_plain(v) for v in obj.tolist()]
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if isinstance(obj, str):
        if obj == "null":
            return None
        if obj[:1] in "[{":
            try:
                return _plain(json.loads(obj))
            except ValueError:
                return obj
        return obj
    return json_safe(obj)


def representation_identity(representations: Any) -> dict[str, Any]:
    """What made a set of representations: encoder (or simulator), weights, tiling, pooling.

    Parameters
    ----------
    representations : AnnData or DataFrame
        Provenance is read from ``uns["tario_clinical"]`` (a DataFrame carries none).

    Returns
    -------
    dict
        ``source`` (``"encoder"``, ``"simulator"`` or ``"unknown"``), ``model_card_name,
        model_card_version, weights_sha256, head_sha256, tiling, fusion`` (must match between
        development and validation) and ``feature_kind, level, dtype, device,
        package_version`` (recorded). For simulated representations the "weights" hash is the
        SHA-256 of the simulator's biology (seed, genes, programmes, snr, genotype effect), so
        two trials drawn from the same biology match.

    Examples
    --------
    >>> import pandas as pd
    >>> representation_identity(pd.DataFrame({"g": [1.0]}))["source"]
    'unknown'
    """
    uns = getattr(representations, "uns", None)
    rec = None if uns is None else uns.get("tario_clinical")
    out: dict[str, Any] = {k: None for k in (*IDENTITY_REQUIRED, *IDENTITY_RECORDED)}
    if not isinstance(rec, dict):
        out["source"] = "unknown"
        return out
    rec = _plain(rec)
    out["level"] = rec.get("level")
    out["package_version"] = rec.get("package_version")
    out["feature_kind"] = rec.get("feature_kind")
    if rec.get("kind") == "simulated":
        sim = rec.get("simulator") or {}
        biology = {
            "biology_seed": sim.get("biology_seed", sim.get("seed")),
            "n_genes": sim.get("n_genes"),
            "n_programs": sim.get("n_programs"),
            "snr": sim.get("snr"),
            "genotype_effect": sim.get("genotype_effect"),
        }
        digest = sha256_bytes(json.dumps(biology, sort_keys=True).encode())
        out.update(
            source="simulator",
            model_card_name="tario_clinical.simulate",
            model_card_version="1",
            weights_sha256=digest,
            dtype="float32",
        )
        return out
    card = rec.get("model_card") or {}
    params = rec.get("parameters") or {}
    output = card.get("output") if isinstance(card.get("output"), dict) else {}
    out.update(
        source="encoder",
        model_card_name=card.get("name"),
        model_card_version=card.get("version"),
        weights_sha256=rec.get("weights_sha256"),
        head_sha256=rec.get("head_sha256"),
        tiling=params.get("tiling"),
        fusion=params.get("fusion"),
        dtype=rec.get("dtype"),
        device=rec.get("device"),
    )
    if out["feature_kind"] is None:
        out["feature_kind"] = output.get("kind") if output else card.get("output_kind")
    return out


def compare_representations(required: dict[str, Any], found: dict[str, Any]) -> pd.DataFrame:
    """Side-by-side table of a locked biomarker's required representation and the one given.

    Parameters
    ----------
    required : dict
        The artefact's ``representation`` record (from :func:`representation_identity`).
    found : dict
        :func:`representation_identity` of the representations to score.

    Returns
    -------
    DataFrame
        ``field, required, found, match, must_match`` (values as JSON text).
    """
    rows = []
    for f in (*IDENTITY_REQUIRED, *IDENTITY_RECORDED):
        a, b = required.get(f), found.get(f)
        rows.append(
            {
                "field": f,
                "required": json.dumps(a, sort_keys=True) if a is not None else None,
                "found": json.dumps(b, sort_keys=True) if b is not None else None,
                "match": json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True),
                "must_match": f in IDENTITY_REQUIRED,
            }
        )
    return pd.DataFrame(rows)
