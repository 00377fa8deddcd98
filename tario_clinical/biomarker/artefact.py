"""The locked-biomarker artefact: :class:`LockedBiomarker`, its JSON/npz codec and reader.

The artefact is JSON (arrays as exact float lists, or in a side ``.npz`` of float arrays read
with ``allow_pickle=False``); nothing is pickled, so loading it cannot run code. Its identity is
the SHA-256 of the JSON file's bytes (:attr:`LockedBiomarker.sha256`), which every result that
uses it records. Writes are atomic; readers refuse a newer layout with an upgrade hint and a
changed ``.npz``.

The score is the locked model's linear predictor, ``logit P(target = 1)``, computed with the
same operations, in the same order and dtype, as :class:`~tario_clinical.decode.LinearDecoder`
(``(x - mean) / scale``, optional PCA projection, ``z @ coef.T + intercept``), so applied to the
development representations it reproduces the final model's ``decision_function`` bit for bit.
A patient with several representation rows (slides) gets the mean of the rows' scores.
"""

from __future__ import annotations

import copy
import html
import json
import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from ..errors import EncoderError, SchemaError
from ._common import (
    align_features,
    as_matrix,
    canonical_json_bytes,
    html_table,
    patient_means,
    sigmoid,
)
from .identity import EncoderMismatchWarning, compare_representations, representation_identity

__all__ = [
    "ARTEFACT_FORMAT",
    "ARTEFACT_VERSION",
    "ARRAY_PATHS",
    "LockedBiomarker",
    "load_locked_biomarker",
    "encode_array",
    "decode_array",
    "validate_document",
    "artefact_from_document",
    "artefact_in_memory",
    "assign_groups",
]

logger = logging.getLogger(__name__)

#: ``format`` of every locked-biomarker artefact
ARTEFACT_FORMAT = "tario_clinical.locked_biomarker"
#: layout version written by this package; readers refuse newer ones
ARTEFACT_VERSION = 1
_ARRAYS = ("json", "npz")


# ----------------------------------------------------------------------------- arrays
def encode_array(a: np.ndarray) -> dict[str, Any]:
    """A float array as ``{"dtype", "shape", "values"}`` (exact float64 list)."""
    a = np.asarray(a)
    if a.dtype not in (np.float32, np.float64):
        raise SchemaError(f"locked arrays must be float32/float64; got {a.dtype}")
    values = a.astype(np.float64).ravel().tolist()  # float32 -> float64 is exact
    return {"dtype": str(a.dtype), "shape": list(a.shape), "values": values}


def decode_array(spec: dict[str, Any], where: str) -> np.ndarray:
    """Inverse of :func:`encode_array` (the original dtype restored)."""
    try:
        a = np.asarray(spec["values"], dtype=np.float64).reshape(spec["shape"])
        return a.astype(spec["dtype"])
    except (KeyError, TypeError, ValueError) as err:
        raise SchemaError(f"locked biomarker: array {where} is malformed ({err})") from err


ARRAY_PATHS = (
    ("model", "scaler_mean"),
    ("model", "scaler_scale"),
    ("model", "pca_mean"),
    ("model", "pca_components"),
    ("model", "coef"),
    ("model", "intercept"),
    ("development", "feature_mean"),
    ("development", "feature_sd"),
)


# ----------------------------------------------------------------------------- schema
def _schema() -> dict[str, Any]:
    here = Path(__file__).resolve().parent.parent
    for folder in (here / "data_schemas", here.parent / "data_schemas"):
        p = folder / "locked_biomarker.schema.json"
        if p.is_file():
            return json.loads(p.read_text(encoding="utf-8"))
    raise SchemaError(
        "schema file locked_biomarker.schema.json not found; reinstall tario-clinical"
    )


def validate_document(doc: Any, source: str) -> None:
    """Check ``format``, ``schema_version`` and ``locked_biomarker.schema.json``; raise SchemaError."""
    if not isinstance(doc, dict) or doc.get("format") != ARTEFACT_FORMAT:
        got = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise SchemaError(
            f"{source}: not a locked biomarker (key 'format' must be {ARTEFACT_FORMAT!r}; got "
            f"{got!r})"
        )
    version = doc.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise SchemaError(f"{source}: key 'schema_version' must be an integer; got {version!r}")
    if version > ARTEFACT_VERSION:
        raise SchemaError(
            f"{source}: written with locked-biomarker layout {version}; this tario_clinical reads "
            f"up to {ARTEFACT_VERSION}; upgrade with `pip install -U tario-clinical`"
        )
    import jsonschema

    errors = sorted(
        jsonschema.Draft202012Validator(_schema()).iter_errors(doc), key=lambda e: list(e.path)
    )
    if errors:
        lines = [
            f"  at $.{'.'.join(map(str, e.absolute_path)) or '(root)'}: {e.message[:160]}"
            for e in errors[:8]
        ]
        raise SchemaError(
            f"{source}: locked biomarker does not match locked_biomarker.schema.json "
            f"({len(errors)} problem(s)):\n" + "\n".join(lines)
        )


# ----------------------------------------------------------------------- the artefact
@dataclass(frozen=True, eq=False)
class LockedBiomarker:
    """A locked (frozen) biomarker: apply it, save it, read its development record.

    Build with :func:`lock_biomarker` or :func:`load_locked_biomarker`; never refitted.

    Attributes
    ----------
    document : dict
        The artefact (JSON-safe, arrays inline); use :meth:`to_dict` for a copy.
    sha256 : str
        SHA-256 of the artefact's JSON bytes: of the file it was read from, else of its
        canonical inline JSON (what :meth:`save` writes with ``arrays="json"``).
    source : str or None
        File it was read from / last written to.
    """

    document: dict[str, Any]
    sha256: str
    source: str | None = None
    _arrays: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        m = self.document["model"]
        arrays = {
            "mean": decode_array(m["scaler_mean"], "model.scaler_mean"),
            "scale": decode_array(m["scaler_scale"], "model.scaler_scale"),
            "coef": decode_array(m["coef"], "model.coef"),
            "intercept": decode_array(m["intercept"], "model.intercept"),
        }
        if m.get("pca_components") is not None:
            arrays["pca_mean"] = decode_array(m["pca_mean"], "model.pca_mean")
            arrays["pca_components"] = decode_array(m["pca_components"], "model.pca_components")
        p = len(m["feature_names"])
        k = arrays["pca_components"].shape[0] if "pca_components" in arrays else p
        shapes_ok = (
            arrays["mean"].shape == (p,)
            and arrays["scale"].shape == (p,)
            and arrays["coef"].shape == (1, k)
            and arrays["intercept"].shape == (1,)
            and ("pca_components" not in arrays or arrays["pca_components"].shape == (k, p))
        )
        if not shapes_ok:
            raise SchemaError(
                f"locked biomarker: array shapes do not fit {p} features "
                f"({ {n: list(a.shape) for n, a in arrays.items()} })"
            )
        object.__setattr__(self, "_arrays", arrays)

    # ---------------------------------------------------------------- properties
    @property
    def target(self) -> str:
        """The decoded target the score predicts (``P(target = 1)``)."""
        return str(self.document["target"])

    @property
    def name(self) -> str:
        """Human name of the biomarker."""
        return str(self.document["name"])

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Features the locked model needs, in its order (matched by name)."""
        return tuple(self.document["model"]["feature_names"])

    @property
    def representation(self) -> dict[str, Any]:
        """The representation provenance this biomarker requires."""
        return copy.deepcopy(self.document["representation"])

    @property
    def development(self) -> dict[str, Any]:
        """Development cohort summary and performance (copy)."""
        return copy.deepcopy(self.document["development"])

    @property
    def cutoffs(self) -> pd.DataFrame:
        """Locked cut-offs: ``name, quantile`` (development), ``score`` (raw), ``probability``,
        ``fraction_positive_development`` (positive = score > cut-off)."""
        return pd.DataFrame(self.document["cutoffs"])

    # ------------------------------------------------------------------- scoring
    def _linear_predictor(self, X: np.ndarray) -> np.ndarray:
        """LinearDecoder's decision_function, same operations and dtypes."""
        a = self._arrays
        Z = np.array(X, dtype=X.dtype if X.dtype in (np.float32, np.float64) else np.float64)
        Z -= a["mean"].astype(Z.dtype)
        Z /= a["scale"].astype(Z.dtype)
        if "pca_components" in a:
            comps = a["pca_components"]
            T = Z @ comps.T
            T -= a["pca_mean"].reshape(1, -1) @ comps.T
            Z = T
        return (Z @ a["coef"].T + a["intercept"]).reshape(-1)

    def score_rows(self, representations: Any, *, what: str = "representations") -> pd.DataFrame:
        """Locked score of every representation row (NaN where a locked feature is not finite).

        Parameters
        ----------
        representations : AnnData or DataFrame
        what : str
            Name used in error messages.

        Returns
        -------
        DataFrame
            ``row_id, patient_id, score`` in row order.

        Raises
        ------
        SchemaError
            Missing features (named, matched by name).
        """
        m = as_matrix(representations, what=what)
        X = align_features(m, self.feature_names, what=what, context=f"of {self.name}")
        finite = np.isfinite(X).all(axis=1)
        s = np.full(X.shape[0], np.nan)
        if finite.all():
            s = self._linear_predictor(X)
        elif finite.any():
            s[finite] = self._linear_predictor(np.ascontiguousarray(X[finite]))
        return pd.DataFrame({"row_id": m.row_ids, "patient_id": m.patient_ids, "score": s})

    def score(self, representations: Any) -> pd.Series:
        """Locked score (log-odds of the target) per patient.

        Parameters
        ----------
        representations : AnnData or DataFrame
            Rows are patients or slides (``obs["patient_id"]``; a patient's slide scores are
            averaged). Features are matched by name; extra features are ignored.

        Returns
        -------
        Series
            Indexed by ``patient_id`` (first-seen order), float64.

        Raises
        ------
        SchemaError
            Missing features (named) or non-finite values (rows named).
        """
        rows = self.score_rows(representations)
        bad = rows["score"].isna().to_numpy()
        if bad.any():
            ids = rows.loc[bad, "row_id"].head(5).tolist()
            raise SchemaError(
                f"representations: {int(bad.sum())} rows hold NaN or infinite values in the "
                f"locked features, e.g. {ids}; drop them first (validate_biomarker lists them "
                "as exclusions)"
            )
        ids, s = patient_means(rows["score"].to_numpy(), rows["patient_id"].to_numpy())
        return pd.Series(s, index=pd.Index(ids, name="patient_id"), name=f"{self.target} score")

    def predict_proba(self, representations: Any) -> pd.Series:
        """Locked probability ``P(target = 1)`` per patient (logistic of :meth:`score`)."""
        s = self.score(representations)
        return pd.Series(sigmoid(s.to_numpy()), index=s.index, name=f"P({self.target})")

    def assign_groups(self, scores: Any) -> pd.Series:
        """Group of each score at the locked cut-offs (``score > cut-off`` is above).

        One cut-off gives ``negative``/``positive``; two give ``low``/``middle``/``high``; more
        give ``G1``... Returns an ordered categorical Series aligned with ``scores``.
        """
        cuts = [c["score"] for c in self.document["cutoffs"]]
        return assign_groups(pd.Series(scores, dtype=float), cuts)

    # ------------------------------------------------------------------ checks
    def check_representations(
        self,
        representations: Any,
        *,
        allow_encoder_mismatch: bool = False,
        source: str | None = None,
    ) -> pd.DataFrame:
        """Refuse representations from another encoder/tiling than the development ones.

        Parameters
        ----------
        representations : AnnData or DataFrame
        allow_encoder_mismatch : bool, default False
            Apply anyway: an :class:`EncoderMismatchWarning` is issued and logged.
        source : str, optional
            Where the representations come from (a file name), named in the error.

        Returns
        -------
        DataFrame
            :func:`compare_representations` table (``field, required, found, match,
            must_match``).

        Raises
        ------
        EncoderError
            A required field differs or the representations carry no provenance (unless
            overridden).
        """
        req = self.document["representation"]
        found = representation_identity(representations)
        table = compare_representations(req, found)
        if req.get("source") == "unknown":
            logger.warning(
                "%s was locked on representations without provenance; the encoder cannot be "
                "checked",
                self.name,
            )
            return table
        bad = table[table["must_match"] & ~table["match"]]
        if bad.empty:
            return table
        if found.get("source") == "unknown":
            why = (
                "the representations carry no provenance (uns['tario_clinical']), so the encoder "
                "and tiling cannot be checked"
            )
        else:
            why = "; ".join(
                f"{r.field}: locked {r.required} vs given {r.found}" for r in bad.itertuples()
            )
        if not allow_encoder_mismatch:
            given = f"{source}: " if source else ""
            raise EncoderError(
                f"{given}representations from another model: {self.name} (artefact "
                f"{self.sha256[:12]}) needs representations from "
                f"{req.get('model_card_name')!r} with the development weights and tiling; "
                f"{why}. Re-encode the slides with the development encoder and tiling, or pass "
                "allow_encoder_mismatch=True (--allow-encoder-mismatch) to apply it anyway "
                "(the result is then flagged)."
            )
        where = f" ({source})" if source else ""
        msg = f"applying {self.name} to representations of another encoder/tiling{where}: {why}"
        warnings.warn(msg, EncoderMismatchWarning, stacklevel=3)
        logger.warning(msg)
        return table

    # ------------------------------------------------------------------- export
    def to_dict(self) -> dict[str, Any]:
        """The artefact as a JSON-safe dict (a deep copy, arrays inline)."""
        return copy.deepcopy(self.document)

    def summary(self) -> pd.DataFrame:
        """Tidy overview: ``section, item, value`` (target, cut-offs, representation, development)."""
        d = self.document
        rows: list[tuple[str, str, Any]] = [
            ("artefact", "name", d["name"]),
            ("artefact", "target", d["target"]),
            ("artefact", "sha256", self.sha256),
            ("artefact", "n_features", len(d["model"]["feature_names"])),
            ("score", "scale", d["score"]["scale"]),
        ]
        for c in d["cutoffs"]:
            rows.append(("cutoff", c["name"], c["score"]))
        for k in ("model_card_name", "weights_sha256", "tiling"):
            rows.append(("representation", k, json.dumps(d["representation"].get(k))))
        coh = d["development"]["cohort"]
        for k in ("n", "n_positive", "prevalence"):
            rows.append(("development", k, coh.get(k)))
        perf = d["development"]["performance"]
        for k in ("auroc", "low", "high", "ci_method"):
            rows.append(("development", f"auroc_{k}" if k != "auroc" else k, perf.get(k)))
        return pd.DataFrame(rows, columns=["section", "item", "value"])

    def save(self, path: str | Path, *, arrays: Literal["json", "npz"] = "json") -> Path:
        """Write the artefact atomically.

        Parameters
        ----------
        path : str or Path
            The ``.json`` file.
        arrays : {"json", "npz"}, default "json"
            ``"json"``: one file, arrays as exact float lists (its SHA-256 is :attr:`sha256`).
            ``"npz"``: model arrays in ``<stem>.npz`` beside it (float arrays only, read with
            ``allow_pickle=False``); the JSON records the ``.npz`` file's SHA-256, and a
            changed ``.npz`` is refused on load.

        Returns
        -------
        Path
            The JSON file.
        """
        from ..provenance import atomic_write, sha256_bytes, sha256_file

        if arrays not in _ARRAYS:
            raise SchemaError(f"arrays must be one of {list(_ARRAYS)}; got {arrays!r}")
        target = Path(path)
        doc = copy.deepcopy(self.document)
        if arrays == "npz":
            npz = target.with_suffix(".npz")
            store: dict[str, np.ndarray] = {}
            for sec, key in ARRAY_PATHS:
                spec = doc[sec].get(key)
                if spec is None:
                    continue
                name = f"{sec}.{key}"
                store[name] = decode_array(spec, name)
                doc[sec][key] = {"dtype": spec["dtype"], "shape": spec["shape"], "npz": name}

            def write_npz(p: Path) -> None:
                with p.open("wb") as fh:
                    np.savez(fh, **store)

            atomic_write(npz, write_npz)
            doc["arrays"] = {"file": npz.name, "sha256": sha256_file(npz), "keys": sorted(store)}
        data = canonical_json_bytes(doc)
        atomic_write(target, lambda p: p.write_bytes(data))
        if arrays == "json" and sha256_bytes(data) != self.sha256 and self.source is None:
            logger.debug("artefact bytes differ from the in-memory hash")  # pragma: no cover
        return target

    def _repr_html_(self) -> str:
        d = self.document
        perf = d["development"]["performance"]
        head = (
            f"<p><b>{html.escape(self.name)}</b> — locked biomarker of "
            f"<code>{html.escape(self.target)}</code>, {len(self.feature_names)} features, "
            f"SHA-256 <code>{self.sha256[:16]}…</code>; development AUROC "
            f"{perf.get('auroc', float('nan')):.3f} ({perf.get('low', float('nan')):.3f}–"
            f"{perf.get('high', float('nan')):.3f}, {html.escape(str(perf.get('ci_method')))})</p>"
        )
        return head + html_table(self.cutoffs, "Locked cut-offs")

    def __repr__(self) -> str:
        return (
            f"LockedBiomarker({self.target!r}, {len(self.feature_names)} features, "
            f"cutoffs={[c['name'] for c in self.document['cutoffs']]}, sha256={self.sha256[:12]})"
        )


def assign_groups(scores: pd.Series, cuts: Sequence[float]) -> pd.Series:
    """Ordered groups of ``scores`` at ``cuts`` (the number of cut-offs strictly below)."""
    c = np.asarray(cuts, dtype=float)
    labels = _group_labels(c.size)
    k = (scores.to_numpy()[:, None] > c[None, :]).sum(axis=1)
    return pd.Series(
        pd.Categorical([labels[i] for i in k], categories=list(labels), ordered=True),
        index=scores.index,
        name="biomarker",
    )


def _group_labels(n_cuts: int) -> tuple[str, ...]:
    if n_cuts == 1:
        return ("negative", "positive")
    if n_cuts == 2:
        return ("low", "middle", "high")
    return tuple(f"G{i + 1}" for i in range(n_cuts + 1))


def artefact_from_document(
    doc: dict[str, Any], *, sha256: str, source: str | None
) -> LockedBiomarker:
    """A :class:`LockedBiomarker` of an (inline) document with a known hash."""
    return LockedBiomarker(document=doc, sha256=sha256, source=source)


def artefact_in_memory(doc: dict[str, Any]) -> LockedBiomarker:
    """A :class:`LockedBiomarker` hashed by its canonical inline JSON."""
    from ..provenance import sha256_bytes

    return artefact_from_document(doc, sha256=sha256_bytes(canonical_json_bytes(doc)), source=None)


# ------------------------------------------------------------------------------ load
def load_locked_biomarker(path: str | Path) -> LockedBiomarker:
    """Read a locked-biomarker artefact (JSON, optionally with its ``.npz``).

    Parameters
    ----------
    path : str or Path
        The artefact's ``.json`` file.

    Returns
    -------
    LockedBiomarker
        Its :attr:`~LockedBiomarker.sha256` is the SHA-256 of the file's bytes.

    Raises
    ------
    SchemaError
        Not a locked biomarker, malformed, written by a newer layout (with an upgrade hint), or
        its ``.npz`` missing or changed since it was written.
    """
    from ..provenance import sha256_bytes, sha256_file

    p = Path(path)
    if not p.is_file():
        raise SchemaError(f"{p}: locked biomarker file not found")
    data = p.read_bytes()
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise SchemaError(f"{p}: not a JSON locked biomarker ({err})") from None
    validate_document(doc, str(p))
    arrays = doc.pop("arrays", None)
    if arrays is not None:
        fname = str(arrays.get("file", ""))
        if not fname or Path(fname).name != fname:
            raise SchemaError(
                f"{p}: key 'arrays.file' must be a file name beside it; got {fname!r}"
            )
        npz = p.parent / fname
        if not npz.is_file():
            raise SchemaError(f"{p}: its arrays file {npz} is missing")
        if sha256_file(npz) != arrays.get("sha256"):
            raise SchemaError(
                f"{p}: arrays file {npz.name} changed since the artefact was written (SHA-256 "
                f"{sha256_file(npz)[:12]} vs recorded {str(arrays.get('sha256'))[:12]}); "
                "restore the original"
            )
        try:
            with np.load(npz, allow_pickle=False) as z:
                stored = {k: z[k] for k in z.files}
        except ValueError as err:
            raise SchemaError(f"{npz}: not a plain float .npz ({err})") from err
        for sec, key in ARRAY_PATHS:
            spec = doc[sec].get(key)
            if spec is None:
                continue
            name = spec.get("npz")
            if name not in stored:
                raise SchemaError(f"{npz}: array {name!r} is missing")
            arr = stored[name]
            if arr.dtype.kind != "f":
                raise SchemaError(f"{npz}: array {name!r} is not float ({arr.dtype})")
            doc[sec][key] = encode_array(arr.astype(spec["dtype"]).reshape(spec["shape"]))
    return artefact_from_document(doc, sha256=sha256_bytes(data), source=str(p))
