"""ExpressionHead: a linear map from a backbone's tile embedding to gene expression.

Fitted from paired data (H&E tiles with measured expression, e.g. spatial transcriptomics
spots or bins), then stacked on the frozen backbone so that any tile encoder (any preset)
becomes an expression-derived encoder. Two fitting protocols, both ending in one linear map
(``coef_``, ``intercept_`` on the raw embedding; saved as safetensors, never pickled):

``"ridge"`` (default)
    Ridge regression on the standardised embedding, the penalty chosen by generalised
    cross-validation (GCV) summed over genes.
``"hest"``
    The HEST-Benchmark protocol (Jaume et al., "HEST-1k: A Dataset for Spatial Transcriptomics
    and Histology Image Analysis", NeurIPS 2024 Datasets and Benchmarks; github.com/mahmoodlab/
    HEST, ``hest/bench``): embeddings standardised, reduced by PCA to 256 components, then a
    ridge regression with the fixed penalty ``alpha = 100 / (n_components * n_genes)`` and no
    intercept. The PCA scores are centred, so the slopes are those of a fit with an intercept;
    ``fit_intercept=True`` (our default) adds the training mean of each gene as the intercept,
    which changes no correlation but keeps predictions on the expression's scale
    (``fit_intercept=False`` gives HEST's predictions exactly).

:func:`compare_expression_heads` fits both on the same folds and reports held-out Pearson
correlations per gene (HEST's metric), so users can choose.

A head also records the spacing of the measured expression grid it was fitted on
(``grid_um``, e.g. 18 or 35 µm bins, or 100 µm for Visium spot centres). Encoding with a head
predicts on a grid of that spacing by default (tiles of the backbone's field of view centred
every ``grid_um``; :func:`~tario_clinical.encode.encode_slides` ``grid_um=`` chooses another),
and both spacings are recorded in provenance.
"""

from __future__ import annotations

import html
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from ..errors import EncoderError

__all__ = ["HEAD_METHODS", "ExpressionHead", "compare_expression_heads", "fit_expression_head"]

HEAD_METHODS = ("ridge", "hest")
#: HEST-Benchmark's PCA width and penalty numerator (alpha = 100 / (n_components * n_genes))
HEST_COMPONENTS = 256
HEST_ALPHA_NUMERATOR = 100.0


def _check_grid_um(grid_um: float | None) -> float | None:
    if grid_um is None:
        return None
    g = float(grid_um)
    if not (math.isfinite(g) and g > 0):
        raise EncoderError(f"grid_um must be a positive number of µm; got {grid_um!r}")
    return g


class ExpressionHead:
    """A linear map from tile embeddings to expression: ridge (GCV) or HEST's PCA + ridge.

    Parameters
    ----------
    alphas : sequence of float
        ``method="ridge"``: candidate ridge penalties (on the standardised embedding); the one
        with the lowest generalised cross-validation error summed over genes is used.
    method : {"ridge", "hest"}
        Fitting protocol (see the module docstring).
    n_components : int
        ``method="hest"``: PCA components (256 in HEST; fewer when there are fewer tiles or
        features).
    alpha : float, optional
        ``method="hest"``: ridge penalty; default ``100 / (n_components * n_genes)`` as HEST.
    fit_intercept : bool
        ``method="hest"``: add each gene's training mean as the intercept (``False``: HEST's
        predictions exactly; the slopes are the same either way).
    grid_um : float, optional
        Spacing in µm of the expression grid the head is fitted on (e.g. 18 or 35 µm bins);
        the default prediction grid when encoding with this head.

    Attributes
    ----------
    coef_ : numpy.ndarray
        ``(n_features, n_genes)`` coefficients on the *raw* embedding.
    intercept_ : numpy.ndarray
        ``(n_genes,)``.
    genes_ : list of str
        Output gene names.
    alpha_ : float
        Selected (``ridge``) or fixed (``hest``) penalty.
    n_components_ : int or None
        PCA components used (``hest``).
    explained_variance_ratio_ : float or None
        Variance of the standardised embedding kept by the PCA (``hest``).
    n_features_in_ : int

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> Z = rng.normal(size=(200, 5)); Y = Z @ rng.normal(size=(5, 3))
    >>> head = ExpressionHead().fit(Z, Y, genes=["A", "B", "C"])
    >>> float(np.corrcoef(head.predict(Z)[:, 0], Y[:, 0])[0, 1]) > 0.99
    True
    """

    def __init__(
        self,
        alphas: Sequence[float] = tuple(10.0 ** np.arange(-3, 5)),
        *,
        method: Literal["ridge", "hest"] = "ridge",
        n_components: int = HEST_COMPONENTS,
        alpha: float | None = None,
        fit_intercept: bool = True,
        grid_um: float | None = None,
    ) -> None:
        self.alphas = alphas
        self.method = method
        self.n_components = n_components
        self.alpha = alpha
        self.fit_intercept = fit_intercept
        self.grid_um = grid_um

    def fit(
        self, embeddings: np.ndarray, expression: np.ndarray, *, genes: Sequence[str]
    ) -> ExpressionHead:
        """Fit the map.

        Parameters
        ----------
        embeddings : array, shape (n_tiles, n_features)
        expression : array, shape (n_tiles, n_genes)
            Measured (e.g. log-normalised) expression paired with each tile.
        genes : sequence of str
            Gene names, one per column of ``expression``.

        Returns
        -------
        ExpressionHead
            ``self``.

        Raises
        ------
        EncoderError
            On shape mismatches, non-finite values, duplicate genes, fewer than 3 tiles or an
            unknown ``method``.
        """
        if self.method not in HEAD_METHODS:
            raise EncoderError(
                f"ExpressionHead: method={self.method!r} is not allowed; allowed: "
                f"{', '.join(HEAD_METHODS)}"
            )
        grid_um = _check_grid_um(self.grid_um)
        Z = np.asarray(embeddings, dtype=np.float64)
        Y = np.asarray(expression, dtype=np.float64)
        genes = [str(g) for g in genes]
        if Z.ndim != 2 or Y.ndim != 2 or Z.shape[0] != Y.shape[0]:
            raise EncoderError(
                f"ExpressionHead.fit: embeddings {Z.shape} and expression {Y.shape} must be 2-D "
                "with the same number of rows (tiles)"
            )
        if Z.shape[0] < 3:
            raise EncoderError(f"ExpressionHead.fit: need >= 3 paired tiles; got {Z.shape[0]}")
        if len(genes) != Y.shape[1] or len(set(genes)) != len(genes):
            raise EncoderError(
                f"ExpressionHead.fit: genes must be {Y.shape[1]} unique names; got {len(genes)} "
                f"({len(set(genes))} unique)"
            )
        for name, a in (("embeddings", Z), ("expression", Y)):
            if not np.isfinite(a).all():
                rows = np.flatnonzero(~np.isfinite(a).all(axis=1))[:5].tolist()
                raise EncoderError(f"ExpressionHead.fit: {name} has NaN/inf in rows {rows}")
        mu = Z.mean(0)
        sd = Z.std(0)
        sd[sd < 1e-12] = 1.0
        Xs = (Z - mu) / sd
        ym = Y.mean(0)
        Yc = Y - ym
        U, s, Vt = np.linalg.svd(Xs, full_matrices=False)
        self.grid_um_ = grid_um
        self.method_ = self.method
        if self.method == "hest":
            return self._fit_hest(Z, Y, U, s, Vt, mu, sd, ym, genes)
        self.n_components_ = None
        self.explained_variance_ratio_ = None
        UtY = U.T @ Yc
        n = Xs.shape[0]
        best = None
        for alpha in self.alphas:
            d = s / (s**2 + alpha)
            coef = Vt.T @ (d[:, None] * UtY)
            resid = Yc - Xs @ coef
            dof = float(np.sum(s**2 / (s**2 + alpha)))
            gcv = float((resid**2).sum()) / max(n - dof - 1, 1e-9) ** 2 * n
            if best is None or gcv < best[0]:
                best = (gcv, float(alpha), coef)
        if best is None:
            raise EncoderError("ExpressionHead: alphas must hold at least one positive value")
        _, self.alpha_, coef_s = best
        self.coef_ = (coef_s / sd[:, None]).astype(np.float32)
        self.intercept_ = (ym - (mu / sd) @ coef_s).astype(np.float32)
        self.genes_ = genes
        self.n_features_in_ = Z.shape[1]
        return self

    def _fit_hest(self, Z, Y, U, s, Vt, mu, sd, ym, genes):  # noqa: ANN001, ANN202
        """StandardScaler -> PCA(k) -> ridge(alpha = 100 / (k * n_genes)), as one linear map.

        PCA scores ``T = Xs V_k = U_k S_k`` (centred); ridge on them without intercept has
        the closed form ``W = (T'T + alpha I)^-1 T'Y = diag(s_k / (s_k^2 + alpha)) U_k'Y``
        (the solution sklearn's ``Ridge(solver="lsqr")`` iterates towards), and
        ``T'Y = T'(Y - mean)`` because ``T`` is centred, so the slopes equal a fit with an
        intercept. The map on the raw embedding is ``V_k W / sd``.
        """
        k_max = int(min(Z.shape[0], Z.shape[1]))
        if int(self.n_components) < 1:
            raise EncoderError(
                f"ExpressionHead: n_components must be >= 1; got {self.n_components}"
            )
        k = min(int(self.n_components), k_max)
        n_genes = Y.shape[1]
        alpha = HEST_ALPHA_NUMERATOR / (k * n_genes) if self.alpha is None else float(self.alpha)
        if not (math.isfinite(alpha) and alpha >= 0):
            raise EncoderError(f"ExpressionHead: alpha must be >= 0; got {self.alpha!r}")
        sk, Uk, Vk = s[:k], U[:, :k], Vt[:k].T  # scores T = Uk * sk
        d = sk / (sk**2 + alpha)
        W = d[:, None] * (Uk.T @ Y)  # (k, genes): ridge on the PCA scores, no intercept
        coef_s = Vk @ W  # on the standardised embedding
        b = ym if self.fit_intercept else np.zeros_like(ym)
        self.alpha_ = float(alpha)
        self.n_components_ = int(k)
        total = float((s**2).sum())
        self.explained_variance_ratio_ = float((sk**2).sum() / total) if total > 0 else 1.0
        self.coef_ = (coef_s / sd[:, None]).astype(np.float32)
        self.intercept_ = (b - (mu / sd) @ coef_s).astype(np.float32)
        self.genes_ = genes
        self.n_features_in_ = Z.shape[1]
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "coef_"):
            raise EncoderError("ExpressionHead is not fitted; call fit() or load() first")

    def predict(self, embeddings: np.ndarray) -> np.ndarray:
        """Predicted expression ``(n_tiles, n_genes)`` as float32."""
        self._check_fitted()
        Z = np.asarray(embeddings, dtype=np.float32)
        if Z.ndim != 2 or Z.shape[1] != self.n_features_in_:
            raise EncoderError(
                f"ExpressionHead.predict: expected (n, {self.n_features_in_}) embeddings; got {Z.shape}"
            )
        return Z @ self.coef_ + self.intercept_

    def to_torch(self):  # noqa: ANN201 - torch.nn.Linear, torch imported lazily
        """The head as a frozen ``torch.nn.Linear``."""
        import torch

        self._check_fitted()
        lin = torch.nn.Linear(self.n_features_in_, len(self.genes_))
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(np.ascontiguousarray(self.coef_.T)))
            lin.bias.copy_(torch.from_numpy(self.intercept_))
        lin.eval().requires_grad_(False)
        return lin

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the head as safetensors (genes and alpha in the metadata)."""
        from safetensors.numpy import save_file

        self._check_fitted()
        p = Path(path)
        meta = {
            "genes": json.dumps(self.genes_),
            "alpha": repr(self.alpha_),
            "method": str(getattr(self, "method_", "ridge")),
            "fit": json.dumps(self.fit_record()),
        }
        if getattr(self, "grid_um_", None) is not None:
            meta["grid_um"] = repr(float(self.grid_um_))
        from ..provenance import atomic_write

        tensors = {"coef": np.ascontiguousarray(self.coef_), "intercept": self.intercept_}
        atomic_write(p, lambda tmp: save_file(tensors, str(tmp), metadata=meta))
        return p

    def fit_record(self) -> dict[str, object]:
        """How the head was fitted (method, penalty, PCA, grid spacing), for provenance."""
        self._check_fitted()
        return {
            "method": str(getattr(self, "method_", "ridge")),
            "alpha": float(self.alpha_),
            "n_components": getattr(self, "n_components_", None),
            "explained_variance_ratio": getattr(self, "explained_variance_ratio_", None),
            "grid_um": getattr(self, "grid_um_", None),
            "n_features": int(self.n_features_in_),
            "n_genes": len(self.genes_),
        }

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ExpressionHead:
        """Read a head written by :meth:`save`.

        Raises
        ------
        EncoderError
            If the file is missing or not a head file.
        """
        from safetensors import safe_open

        p = Path(path)
        if not p.is_file():
            raise EncoderError(f"ExpressionHead weights not found: {p}")
        try:
            with safe_open(str(p), framework="numpy") as f:
                meta = f.metadata() or {}
                coef = f.get_tensor("coef")
                intercept = f.get_tensor("intercept")
            genes = json.loads(meta["genes"])
        except Exception as err:  # noqa: BLE001 - safetensors raises several types
            raise EncoderError(
                f"ExpressionHead weights {p}: not a head file (needs tensors 'coef', "
                f"'intercept' and metadata 'genes'): {err}"
            ) from err
        if coef.ndim != 2 or coef.shape[1] != len(genes) or intercept.shape != (len(genes),):
            raise EncoderError(
                f"ExpressionHead weights {p}: coef {coef.shape}, intercept {intercept.shape} do "
                f"not match {len(genes)} genes"
            )
        method = meta.get("method", "ridge")
        if method not in HEAD_METHODS:
            raise EncoderError(
                f"ExpressionHead weights {p}: metadata 'method' is {method!r}; allowed: "
                f"{', '.join(HEAD_METHODS)}"
            )
        try:
            fit = json.loads(meta.get("fit", "{}"))
            grid_um = _check_grid_um(float(meta["grid_um"])) if "grid_um" in meta else None
        except (ValueError, TypeError, EncoderError) as err:
            raise EncoderError(f"ExpressionHead weights {p}: bad metadata: {err}") from err
        head = cls(method=method, grid_um=grid_um)  # type: ignore[arg-type]
        head.coef_ = coef.astype(np.float32)
        head.intercept_ = intercept.astype(np.float32)
        head.genes_ = [str(g) for g in genes]
        head.alpha_ = float(meta.get("alpha", "nan"))
        head.n_features_in_ = int(coef.shape[0])
        head.method_ = method
        head.grid_um_ = grid_um
        head.n_components_ = fit.get("n_components")
        head.explained_variance_ratio_ = fit.get("explained_variance_ratio")
        return head

    def __repr__(self) -> str:
        if not hasattr(self, "coef_"):
            return "ExpressionHead(unfitted)"
        pca = f", pca={self.n_components_}" if getattr(self, "n_components_", None) else ""
        grid = f", grid={self.grid_um_:g} um" if getattr(self, "grid_um_", None) else ""
        return (
            f"ExpressionHead({getattr(self, 'method_', 'ridge')}: {self.n_features_in_} features "
            f"-> {len(self.genes_)} genes, alpha={self.alpha_:.3g}{pca}{grid})"
        )

    def _repr_html_(self) -> str:
        return f"<code>{html.escape(repr(self))}</code>"


def fit_expression_head(
    backbone: object,
    tiles: np.ndarray,
    expression: np.ndarray,
    *,
    genes: Sequence[str],
    alphas: Sequence[float] | None = None,
    batch_size: int = 256,
    method: Literal["ridge", "hest"] = "ridge",
    n_components: int = HEST_COMPONENTS,
    grid_um: float | None = None,
) -> ExpressionHead:
    """Fit an :class:`ExpressionHead` from paired H&E tiles and measured expression.

    The tiles are embedded with the frozen ``backbone`` (exactly as at inference: same
    normalisation, device and dtype), then the ridge map is fitted. Save it with
    :meth:`ExpressionHead.save` and add ``"head": {"weights": ...}`` to the backbone's model
    card to obtain an expression-derived encoder.

    Parameters
    ----------
    backbone : FrozenEncoder
        Loaded backbone (:func:`~tario_clinical.encode.load_encoder`) without a head.
    tiles : numpy.ndarray
        ``(n, tile_px, tile_px, 3)`` uint8 tiles at the backbone's µm/px (e.g. the H&E under
        each spatial-transcriptomics spot).
    expression : numpy.ndarray
        ``(n, n_genes)`` expression paired with the tiles.
    genes : sequence of str
    alphas : sequence of float, optional
        Ridge penalties to choose from (GCV; ``method="ridge"``).
    batch_size : int
    method : {"ridge", "hest"}
        Fitting protocol (see :class:`ExpressionHead`).
    n_components : int
        PCA components for ``method="hest"``.
    grid_um : float, optional
        Spacing (µm) of the expression grid the pairs come from (e.g. 18 or 35 µm bins).

    Returns
    -------
    ExpressionHead
    """
    if getattr(backbone, "head", None) is not None:
        raise EncoderError("fit_expression_head: the backbone already has a head; load it without")
    t = np.asarray(tiles)
    if t.ndim != 4 or t.shape[-1] != 3 or t.dtype != np.uint8:
        raise EncoderError(
            f"fit_expression_head: tiles must be (n, px, px, 3) uint8; got {t.shape} {t.dtype}"
        )
    emb = np.concatenate(
        [backbone.encode_array(t[i : i + batch_size]) for i in range(0, len(t), batch_size)]  # type: ignore[attr-defined]
    )
    kw = {} if alphas is None else {"alphas": alphas}
    head = ExpressionHead(**kw, method=method, n_components=n_components, grid_um=grid_um)
    return head.fit(emb, expression, genes=genes)


def compare_expression_heads(
    embeddings: np.ndarray,
    expression: np.ndarray,
    *,
    genes: Sequence[str],
    methods: Sequence[str] = HEAD_METHODS,
    n_splits: int = 5,
    seed: int = 0,
    groups: Sequence[object] | None = None,
    n_components: int = HEST_COMPONENTS,
) -> pd.DataFrame:
    """Held-out Pearson correlation per gene of each head protocol, on the same folds.

    Parameters
    ----------
    embeddings : array, shape (n_tiles, n_features)
    expression : array, shape (n_tiles, n_genes)
    genes : sequence of str
    methods : sequence of {"ridge", "hest"}
    n_splits : int
        Cross-validation folds (tiles shuffled with ``seed``; with ``groups``, whole groups
        such as samples or slides are held out together, as HEST holds out patients).
    seed : int
    groups : sequence, optional
        Group label per tile.
    n_components : int
        PCA components of the ``hest`` protocol.

    Returns
    -------
    pandas.DataFrame
        One row per method and gene: ``method, gene, pearson_r`` (over all held-out
        predictions; NaN for a constant gene), ``rmse``, ``n_tiles``, ``n_splits``. Summarise
        with ``df.groupby("method")["pearson_r"].mean()``.

    Raises
    ------
    EncoderError
        On bad shapes, unknown methods or fewer groups/tiles than folds.
    """
    Z = np.asarray(embeddings, dtype=np.float64)
    Y = np.asarray(expression, dtype=np.float64)
    if Z.ndim != 2 or Y.ndim != 2 or Z.shape[0] != Y.shape[0]:
        raise EncoderError(
            f"compare_expression_heads: embeddings {Z.shape} and expression {Y.shape} must be "
            "2-D with the same number of rows"
        )
    bad = [m for m in methods if m not in HEAD_METHODS]
    if bad or not methods:
        raise EncoderError(
            f"compare_expression_heads: methods {list(methods)} not allowed; allowed: "
            f"{', '.join(HEAD_METHODS)}"
        )
    n = Z.shape[0]
    rng = np.random.default_rng(seed)
    if groups is None:
        labels = np.arange(n)
    else:
        if len(groups) != n:
            raise EncoderError(f"compare_expression_heads: {len(groups)} groups for {n} tiles")
        labels = pd.factorize(pd.Series(list(groups)))[0]
    uniq = np.unique(labels)
    if n_splits < 2 or len(uniq) < n_splits:
        raise EncoderError(
            f"compare_expression_heads: n_splits must be >= 2 and at most the number of "
            f"{'groups' if groups is not None else 'tiles'} ({len(uniq)}); got {n_splits}"
        )
    fold_of = dict(zip(rng.permutation(uniq).tolist(), np.arange(len(uniq)) % n_splits))
    fold = np.array([fold_of[v] for v in labels.tolist()])
    rows = []
    for m in methods:
        pred = np.empty_like(Y)
        for f in range(n_splits):
            tr, te = fold != f, fold == f
            head = ExpressionHead(method=m, n_components=n_components)  # type: ignore[arg-type]
            head.fit(Z[tr], Y[tr], genes=genes)
            pred[te] = head.predict(Z[te])
        for g, name in enumerate(genes):
            a, b = pred[:, g], Y[:, g]
            r = float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else float("nan")
            rows.append({"method": m, "gene": str(name), "pearson_r": r,
                         "rmse": float(np.sqrt(np.mean((a - b) ** 2))), "n_tiles": n,
                         "n_splits": n_splits})  # fmt: skip
    return pd.DataFrame(rows)
