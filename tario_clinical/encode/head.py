"""ExpressionHead: a ridge map from a backbone's tile embedding to gene expression.

Fitted from paired data (H&E tiles with measured expression, e.g. spatial transcriptomics
spots), then stacked on the frozen backbone so that any tile encoder becomes an
expression-derived encoder.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import EncoderError

__all__ = ["ExpressionHead", "fit_expression_head"]


class ExpressionHead:
    """Ridge regression from standardised embeddings to expression, with alpha chosen by GCV.

    Parameters
    ----------
    alphas : sequence of float
        Candidate ridge penalties (on the standardised embedding); the one with the lowest
        generalised cross-validation error summed over genes is used.

    Attributes
    ----------
    coef_ : numpy.ndarray
        ``(n_features, n_genes)`` coefficients on the *raw* embedding.
    intercept_ : numpy.ndarray
        ``(n_genes,)``.
    genes_ : list of str
        Output gene names.
    alpha_ : float
        Selected penalty.
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

    def __init__(self, alphas: Sequence[float] = tuple(10.0 ** np.arange(-3, 5))) -> None:
        self.alphas = alphas

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
            On shape mismatches, non-finite values, duplicate genes or fewer than 3 tiles.
        """
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
        save_file(
            {"coef": np.ascontiguousarray(self.coef_), "intercept": self.intercept_},
            str(p),
            metadata={"genes": json.dumps(self.genes_), "alpha": repr(self.alpha_)},
        )
        return p

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
        head = cls()
        head.coef_ = coef.astype(np.float32)
        head.intercept_ = intercept.astype(np.float32)
        head.genes_ = [str(g) for g in genes]
        head.alpha_ = float(meta.get("alpha", "nan"))
        head.n_features_in_ = int(coef.shape[0])
        return head

    def __repr__(self) -> str:
        if not hasattr(self, "coef_"):
            return "ExpressionHead(unfitted)"
        return (
            f"ExpressionHead({self.n_features_in_} features -> {len(self.genes_)} genes, "
            f"alpha={self.alpha_:.3g})"
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
        Ridge penalties to choose from (GCV).
    batch_size : int

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
    head = ExpressionHead() if alphas is None else ExpressionHead(alphas=alphas)
    return head.fit(emb, expression, genes=genes)
