"""Maps of patient representations (PCA, t-SNE) and genotype co-occurrence.

The maps answer "what does the representation separate?": patients are placed by a linear
(PCA) or non-linear (t-SNE) projection of their representation and coloured by cancer type,
histology or genotype. Coordinates come back as a tidy DataFrame (``patient_id, method, x, y``
plus the clinical annotations), so any plotting library can draw them; :func:`plot_embedding`
draws them with matplotlib.

:func:`genotype_cooccurrence` tabulates every pair of genotype columns (2 x 2 counts among
patients tested for both, sample and Haldane-corrected odds ratios, two-sided Fisher exact
p-values, Benjamini-Hochberg q-values) and :func:`plot_cooccurrence` draws it as a heatmap
(both from :mod:`tario_clinical.cooccurrence`, re-exported here).

:func:`representation_maps` computes what a study report shows (the PCA and t-SNE maps and the
co-occurrence table) once, as a :class:`RepresentationMaps` result that the report reads and
draws without computing anything.

Both projections are deterministic for a given ``seed``: PCA uses a full SVD with signs fixed
by scikit-learn's ``svd_flip``; t-SNE is run single-threaded with a seed derived from ``seed``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from .cooccurrence import (
    COOCCURRENCE_COLUMNS,
    clinical_frame,
    genotype_columns,
    genotype_cooccurrence,
    plain_label,
    plot_cooccurrence,
)
from .errors import AnalysisError, SchemaError
from .palette import OKABE_ITO

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "representation_maps",
    "RepresentationMaps",
    "embedding_map",
    "pca_map",
    "tsne_map",
    "plot_embedding",
    "genotype_cooccurrence",
    "plot_cooccurrence",
    "COORDINATE_COLUMNS",
    "COOCCURRENCE_COLUMNS",
]

logger = logging.getLogger("tario_clinical.embedding_maps")

Method = Literal["pca", "tsne"]
_METHODS = ("pca", "tsne")

#: leading columns of every coordinates table
COORDINATE_COLUMNS = ["patient_id", "method", "x", "y"]

_DEFAULT_ANNOTATIONS = ("arm", "cancer_type", "histology")
_MISSING_LABEL = "missing"
#: marker shapes, cycled once the colours run out (a category is its colour and its marker)
_MARKERS = ("o", "s", "^", "D", "v", "P")
_MISSING_COLOUR = "#BBBBBB"


# ------------------------------------------------------------------------------ inputs
def _matrix(representations: Any) -> tuple[np.ndarray, pd.Index, str]:
    """(X float64, patient ids, feature kind) from an AnnData or a patients x features frame."""
    if hasattr(representations, "X") and hasattr(representations, "obs_names"):
        x = representations.X
        if hasattr(x, "toarray"):
            x = x.toarray()
        ids = pd.Index(representations.obs_names.astype(str), name="patient_id")
        uns = getattr(representations, "uns", {}) or {}
        kind = str((uns.get("tario_clinical") or {}).get("feature_kind", "representation"))
        return np.asarray(x, dtype=np.float64), ids, kind
    if isinstance(representations, pd.DataFrame):
        df = representations
        if "patient_id" in df.columns:
            df = df.set_index("patient_id")
        try:
            x = df.to_numpy(dtype=np.float64)
        except (TypeError, ValueError) as err:
            bad = [c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])]
            raise SchemaError(
                f"representations: every column must be numeric; non-numeric column(s) {bad[:5]}"
            ) from err
        return x, pd.Index(df.index.astype(str), name="patient_id"), "representation"
    raise TypeError(
        "representations must be an AnnData (patients x features) or a pandas DataFrame indexed "
        f"by patient_id; got {type(representations).__name__}"
    )


def _seed_int(seed: int, n: int = 1) -> list[int]:
    if not isinstance(seed, int | np.integer) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer; got {seed!r}")
    return [
        int(s.generate_state(1, dtype=np.uint32)[0])
        for s in np.random.SeedSequence(int(seed)).spawn(n)
    ]


# ------------------------------------------------------------------------------ maps
def _standardise(x: np.ndarray) -> np.ndarray:
    centred = x - x.mean(axis=0)
    sd = centred.std(axis=0, ddof=1) if len(x) > 1 else np.ones(x.shape[1])
    sd[~(sd > 0)] = 1.0  # constant features stay zero instead of dividing by zero
    return centred / sd


def _pca(x: np.ndarray, n_components: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.decomposition import PCA

    pca = PCA(n_components=n_components, svd_solver="full")
    coords = pca.fit_transform(x)
    return coords, np.asarray(pca.explained_variance_ratio_, dtype=float)


def embedding_map(
    representations: Any,
    cohort: Any = None,
    *,
    method: Method = "pca",
    annotations: Sequence[str] | None = None,
    standardize: bool = True,
    perplexity: float = 30.0,
    n_pca: int = 50,
    max_iter: int = 1000,
    init: Literal["pca", "random"] = "pca",
    seed: int = 0,
) -> pd.DataFrame:
    """Two-dimensional map of patient representations.

    Parameters
    ----------
    representations : AnnData or DataFrame
        Patients x features (``obs_names`` / index = patient ids).
    cohort : Cohort or DataFrame, optional
        Clinical table joined by ``patient_id`` to annotate the map (``arm``, ``cancer_type``,
        ``histology`` and the genotype columns by default).
    method : {"pca", "tsne"}
        ``"pca"``: the first two principal components. ``"tsne"``: t-SNE (exact gradient
        up to 1,000 patients, Barnes-Hut above) of the first ``n_pca`` principal components.
    annotations : sequence of str, optional
        Clinical columns to carry into the table (default: arm, cancer type, histology,
        genotypes; those absent are skipped).
    standardize : bool
        z-score each feature before projecting (constant features are kept at zero).
    perplexity : float
        t-SNE perplexity; lowered to ``(n - 1) / 3`` for small cohorts.
    n_pca : int
        Principal components fed to t-SNE.
    max_iter : int
        t-SNE iterations (>= 250).
    init : {"pca", "random"}
        t-SNE initialisation. ``"pca"`` (default) starts from the principal components, so the
        map does not depend on ``seed``; ``"random"`` draws the start from ``seed``.
    seed : int
        Seed of the t-SNE optimisation (PCA is deterministic).

    Returns
    -------
    DataFrame
        ``patient_id, method, x, y`` then the annotation columns, one row per patient with a
        finite representation, in representation order. ``attrs["tario_clinical"]`` holds the
        method, parameters, ``explained_variance_ratio`` (PCA of the map's input, first 10
        components) and ``exclusions`` (records ``{"patient_id", "reason"}`` of patients left
        out).

    Raises
    ------
    AnalysisError
        Fewer than 5 patients with a finite representation.
    ValueError
        Unknown ``method`` or invalid numeric options.

    Examples
    --------
    >>> from tario_clinical import simulate_trial
    >>> trial = simulate_trial(60, seed=1, n_genes=20, compute_attainable=False)
    >>> coords = embedding_map(trial.representations, trial.cohort(), method="pca")
    >>> list(coords.columns[:4]), len(coords)
    (['patient_id', 'method', 'x', 'y'], 60)
    """
    if method not in _METHODS:
        raise ValueError(f"method must be one of {', '.join(_METHODS)}; got {method!r}")
    if not perplexity > 0:
        raise ValueError(f"perplexity must be > 0; got {perplexity!r}")
    if int(n_pca) < 2:
        raise ValueError(f"n_pca must be >= 2; got {n_pca!r}")
    if int(max_iter) < 250:
        raise ValueError(f"max_iter must be >= 250 (scikit-learn's minimum); got {max_iter!r}")
    if init not in ("pca", "random"):
        raise ValueError(f"init must be one of pca, random; got {init!r}")
    (tsne_seed,) = _seed_int(seed)
    x, ids, feature_kind = _matrix(representations)
    if x.ndim != 2 or x.shape[1] < 2:
        raise AnalysisError(
            f"representations: need a patients x features matrix with >= 2 features; got shape "
            f"{x.shape}"
        )
    dup = ids.duplicated()
    if dup.any():
        raise SchemaError(
            f"representations: duplicate patient id(s) {ids[dup].unique()[:5].tolist()}"
        )
    finite = np.isfinite(x).all(axis=1)
    exclusions = [
        {"patient_id": str(p), "reason": "non-finite representation"} for p in ids[~finite]
    ]
    if not finite.all():
        logger.warning(
            "embedding map: %d patient(s) with NaN/inf features left out (first: %s)",
            int((~finite).sum()),
            ids[~finite][:5].tolist(),
        )
    x, ids = x[finite], ids[finite]
    n = len(ids)
    if n < 5:
        raise AnalysisError(
            f"embedding map: only {n} patient(s) with a finite representation; need >= 5"
        )
    z = _standardise(x) if standardize else x - x.mean(axis=0)
    n_comp = int(min(max(n_pca, 10), n - 1, z.shape[1]))
    pcs, evr = _pca(z, n_comp)
    params: dict[str, Any] = {"standardize": bool(standardize)}
    if method == "pca":
        xy = pcs[:, :2]
    else:
        from sklearn.manifold import TSNE
        from threadpoolctl import threadpool_limits

        n_in = int(min(n_pca, pcs.shape[1]))
        perp = float(min(perplexity, (n - 1) / 3.0))
        tsne = TSNE(
            n_components=2,
            perplexity=perp,
            init=init,
            learning_rate="auto",
            max_iter=int(max_iter),
            method="exact" if n <= 1000 else "barnes_hut",
            random_state=tsne_seed,
        )
        # single-threaded: deterministic sums and no oversubscription on small machines
        with threadpool_limits(limits=1):
            xy = tsne.fit_transform(pcs[:, :n_in])
        params.update(
            {
                "perplexity": perp,
                "n_pca": n_in,
                "max_iter": int(max_iter),
                "tsne_method": tsne.method,
                "init": init,
                "kl_divergence": float(tsne.kl_divergence_),
                "seed": int(seed),
            }
        )
    out = pd.DataFrame(
        {
            "patient_id": ids.to_numpy(dtype=object),
            "method": method,
            "x": xy[:, 0].astype(float),
            "y": xy[:, 1].astype(float),
        }
    )
    table = clinical_frame(cohort)
    n_unmatched = 0
    if table is not None:
        if annotations is None:
            wanted = [c for c in _DEFAULT_ANNOTATIONS if c in table.columns]
            wanted += [g for g in genotype_columns(cohort, table) if g not in wanted]
        else:
            absent = [c for c in annotations if c not in table.columns]
            if absent:
                raise SchemaError(
                    f"annotations: column(s) {absent} not in the clinical table; available: "
                    f"{list(map(str, table.columns))}"
                )
            wanted = [c for c in annotations if c not in COORDINATE_COLUMNS]
        ann = table.set_index("patient_id")[wanted]
        joined = ann.reindex(out["patient_id"])
        n_unmatched = int((~out["patient_id"].isin(ann.index)).sum())
        for c in wanted:
            out[c] = joined[c].to_numpy()
    out.attrs["tario_clinical"] = {
        "method": method,
        "n_patients": n,
        "n_features": int(x.shape[1]),
        "feature_kind": feature_kind,
        "explained_variance_ratio": [float(v) for v in evr[:10]],
        "parameters": params,
        "n_without_clinical_row": n_unmatched,
        "exclusions": exclusions,
    }
    return out


def pca_map(representations: Any, cohort: Any = None, **kwargs: Any) -> pd.DataFrame:
    """:func:`embedding_map` with ``method="pca"``.

    Parameters
    ----------
    representations, cohort, **kwargs
        As for :func:`embedding_map`.

    Returns
    -------
    DataFrame
    """
    return embedding_map(representations, cohort, method="pca", **kwargs)


def tsne_map(representations: Any, cohort: Any = None, **kwargs: Any) -> pd.DataFrame:
    """:func:`embedding_map` with ``method="tsne"``.

    Parameters
    ----------
    representations, cohort, **kwargs
        As for :func:`embedding_map`.

    Returns
    -------
    DataFrame
    """
    return embedding_map(representations, cohort, method="tsne", **kwargs)


def plot_embedding(
    coords: pd.DataFrame,
    color: str | None = "cancer_type",
    *,
    ax: Axes | None = None,
    title: str | None = None,
    max_categories: int = 12,
    point_size: float = 14.0,
) -> Axes:
    """Scatter plot of an :func:`embedding_map` table coloured by a column.

    Parameters
    ----------
    coords : DataFrame
        Output of :func:`embedding_map` (needs ``x``, ``y``).
    color : str or None
        Column to colour by: categorical columns get a legend with counts, in the Okabe–Ito
        colour-blind-safe colours (:data:`tario_clinical.palette.OKABE_ITO`; past its seven
        colours the marker shape changes too), missing values in grey, categories beyond
        ``max_categories`` pooled as "other"; numeric columns a viridis colour bar. ``None``
        draws all points alike.
    ax : Axes, optional
    title : str, optional
    max_categories : int
    point_size : float

    Returns
    -------
    Axes
    """
    for c in ("x", "y"):
        if c not in coords.columns:
            raise SchemaError(
                f"coords: column {c!r} missing; pass the table from embedding_map(); got "
                f"{list(coords.columns)}"
            )
    if color is not None and color not in coords.columns:
        raise SchemaError(
            f"color: column {color!r} not in the coordinates table; available: "
            f"{[c for c in coords.columns if c not in COORDINATE_COLUMNS]}"
        )
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(5.2, 4.2))
    meta = coords.attrs.get("tario_clinical", {}) if hasattr(coords, "attrs") else {}
    method = str(coords["method"].iloc[0]) if "method" in coords and len(coords) else "map"
    x = coords["x"].to_numpy(dtype=float)
    y = coords["y"].to_numpy(dtype=float)
    if color is None:
        ax.scatter(x, y, s=point_size, color=OKABE_ITO[0], alpha=0.8, linewidths=0)
    else:
        col = coords[color]
        numeric = pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)
        if numeric and col.nunique(dropna=True) > max_categories:
            vals = col.to_numpy(dtype=float)
            miss = ~np.isfinite(vals)
            if miss.any():
                ax.scatter(
                    x[miss], y[miss], s=point_size, color=_MISSING_COLOUR, label=_MISSING_LABEL
                )
            sc = ax.scatter(
                x[~miss], y[~miss], c=vals[~miss], s=point_size, cmap="viridis", linewidths=0
            )
            ax.figure.colorbar(sc, ax=ax, label=plain_label(color))
        else:
            labels = col.astype(object).where(col.notna(), None)
            labels = labels.map(lambda v: _MISSING_LABEL if v is None else str(v))
            counts = labels.value_counts(sort=False)
            order = sorted(
                (lv for lv in counts.index if lv != _MISSING_LABEL),
                key=lambda lv: (-counts[lv], lv),
            )
            if len(order) > max_categories:
                keep = set(order[: max_categories - 1])
                labels = labels.map(lambda v: v if v in keep or v == _MISSING_LABEL else "other")
                counts = labels.value_counts(sort=False)
                order = order[: max_categories - 1] + ["other"]
            if _MISSING_LABEL in counts.index:
                order.append(_MISSING_LABEL)
            lab = labels.to_numpy()
            for i, level in enumerate(order):
                m = lab == level
                missing = level == _MISSING_LABEL
                k = len(OKABE_ITO)
                ax.scatter(
                    x[m],
                    y[m],
                    s=point_size,
                    color=_MISSING_COLOUR if missing else OKABE_ITO[i % k],
                    marker="o" if missing else _MARKERS[(i // k) % len(_MARKERS)],
                    alpha=0.85,
                    linewidths=0,
                    label=f"{plain_label(level)} ({int(m.sum())})",
                )
            ax.legend(
                title=plain_label(color),
                fontsize=7,
                title_fontsize=8,
                loc="center left",
                bbox_to_anchor=(1.01, 0.5),
                frameon=False,
            )
    evr = meta.get("explained_variance_ratio") or []
    if method == "pca" and len(evr) >= 2:
        ax.set_xlabel(f"PC1 ({100 * evr[0]:.1f} %)")
        ax.set_ylabel(f"PC2 ({100 * evr[1]:.1f} %)")
    else:
        ax.set_xlabel(f"{method.upper()} 1")
        ax.set_ylabel(f"{method.upper()} 2")
    ax.set_xticks([])
    ax.set_yticks([])
    if title is None:
        title = f"{method.upper()} of representations" + (
            f" by {color}" if color is not None else ""
        )
    ax.set_title(plain_label(title), fontsize=10)
    return ax


# ------------------------------------------------------------------------------ study maps
@dataclass(frozen=True, eq=False)
class RepresentationMaps:
    """The maps of a study's representations, from :func:`representation_maps`.

    Attributes
    ----------
    coordinates : mapping of str to DataFrame
        Method (``"pca"``, ``"tsne"``) -> its :func:`embedding_map` table.
    color_by : tuple of str
        Annotations the maps are coloured by (cancer type, histology, genotypes present).
    cooccurrence : DataFrame or None
        :func:`genotype_cooccurrence` of the cohort; None with fewer than two genotype columns.
    notes : tuple of str
        What was not computed, and why.
    """

    coordinates: Mapping[str, pd.DataFrame]
    color_by: tuple[str, ...] = ()
    cooccurrence: pd.DataFrame | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        """``maps`` (per method: patients, features, explained variance of PC1 and PC2,
        parameters, exclusions by reason), ``color_by``, ``cooccurrence`` (records) and
        ``notes``."""
        maps = {}
        for method, coords in self.coordinates.items():
            meta = coords.attrs["tario_clinical"]
            reasons = pd.Series([e["reason"] for e in meta["exclusions"]], dtype=object)
            maps[method] = {
                "n_patients": meta["n_patients"],
                "n_features": meta["n_features"],
                "feature_kind": meta["feature_kind"],
                "explained_variance_ratio": meta["explained_variance_ratio"][:2]
                if method == "pca"
                else None,
                "parameters": {k: v for k, v in meta["parameters"].items() if k != "kl_divergence"},
                "n_without_clinical_row": meta["n_without_clinical_row"],
                "exclusions": [
                    {"reason": r, "n": int(n)} for r, n in sorted(reasons.value_counts().items())
                ],
            }
        cooc = self.cooccurrence
        return {
            "maps": maps,
            "color_by": list(self.color_by),
            "cooccurrence": None if cooc is None else cooc.to_dict(orient="records"),
            "notes": list(self.notes),
        }

    def plot_map(self, method: Method = "pca", *, figure: Figure | None = None) -> Figure:
        """One panel per annotation of ``color_by`` (three per row) of the ``method`` map."""
        coords = self.coordinates[method]
        panels: list[str | None] = list(self.color_by) or [None]
        ncol = min(3, len(panels))
        nrow = math.ceil(len(panels) / ncol)
        if figure is None:
            from matplotlib.figure import Figure

            figure = Figure(figsize=(4.4 * ncol, 2.6 * nrow), dpi=100)
        for i, c in enumerate(panels):
            ax = figure.add_subplot(nrow, ncol, i + 1)
            label = f"{method.upper()} by {c}" if c is not None else method.upper()
            plot_embedding(coords, c, ax=ax, title=label, point_size=9.0)
        figure.tight_layout()
        return figure

    def plot_cooccurrence(self, *, ax: Axes | None = None) -> Axes:
        """:func:`plot_cooccurrence` of :attr:`cooccurrence`."""
        if self.cooccurrence is None:
            raise AnalysisError("no co-occurrence table: fewer than two genotype columns")
        return plot_cooccurrence(self.cooccurrence, ax=ax)


def representation_maps(
    representations: Any,
    cohort: Any = None,
    *,
    methods: Sequence[Method] = ("pca", "tsne"),
    seed: int = 0,
) -> RepresentationMaps:
    """The PCA and t-SNE maps and the genotype co-occurrence a study report shows.

    Parameters
    ----------
    representations : AnnData or DataFrame
        Patients x features (``obs_names`` / index = patient ids).
    cohort : Cohort or DataFrame, optional
        Annotates the maps; its genotype columns give the co-occurrence table.
    methods : sequence of {"pca", "tsne"}
        Maps to compute, each with :func:`embedding_map`'s defaults.
    seed : int
        Seed of the t-SNE optimisation.

    Returns
    -------
    RepresentationMaps

    Examples
    --------
    >>> from tario_clinical import simulate_trial
    >>> trial = simulate_trial(60, seed=1, n_genes=20, compute_attainable=False)
    >>> maps = representation_maps(trial.representations, trial.cohort(), methods=["pca"])
    >>> sorted(maps.to_dict()["maps"]), maps.color_by[:2]
    (['pca'], ('cancer_type', 'histology'))
    """
    bad = [m for m in methods if m not in _METHODS]
    if bad or not methods:
        raise ValueError(
            f"methods must be a non-empty list of {', '.join(_METHODS)}; got {methods!r}"
        )
    coords = {m: embedding_map(representations, cohort, method=m, seed=seed) for m in methods}
    first = coords[methods[0]]
    genes = list(getattr(cohort, "genotype_columns", None) or [])
    color_by = tuple(c for c in ("cancer_type", "histology", *genes) if c in first.columns)
    cooc, notes = None, []
    if len(genes) >= 2:
        cooc = genotype_cooccurrence(cohort)
    else:
        notes.append("genotype co-occurrence needs at least two genotype columns")
    return RepresentationMaps(coords, color_by, cooc, tuple(notes))
