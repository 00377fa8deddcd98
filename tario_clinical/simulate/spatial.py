"""Synthetic paired predicted / measured spatial expression with known truth.

Each sample has a tissue region on a prediction grid. Per gene ``g`` and bin ``b`` the true rate is
``lam[b, g] = mean_count[g] * exp(sigma * f[b, g] - sigma**2 / 2)`` where ``f`` mixes a smooth
Gaussian random field (weight ``smoothness[g]``, a gene property shared by all samples, so genes
differ in spatial structure / Moran's I) with white noise. Measured counts are
``Poisson(lam)`` — emitted as individual transcripts placed uniformly inside their bin (then moved
into the measured frame with the inverse of the registration affine) or as cells that split a
bin's counts. The prediction is ``lam + noise_sd * sd_b(lam[:, g]) * eps``.

Given the realised field, the expected spatial Pearson correlation between prediction and
measured counts over the tissue bins is

``rho_g = v_g / sqrt((v_g + m_g) * (v_g + tau_g**2))``, ``v_g`` = variance of ``lam[:, g]`` over the
bins, ``m_g`` = its mean (Poisson variance), ``tau_g = noise_sd * sqrt(v_g)``,

i.e. ``rho_g = sqrt(v_g / (v_g + m_g)) / sqrt(1 + noise_sd**2)``; it is stored per sample and gene in
:attr:`SimulatedSpatial.expected_r`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy import ndimage

from ..errors import SchemaError

__all__ = ["PairedSample", "SimulatedSpatialSample", "SimulatedSpatial", "simulate_spatial_pairs"]


@dataclass(frozen=True, eq=False)
class PairedSample:
    """One simulated sample as paired predicted / measured data, with the registration affine.

    It has the attributes of :class:`tario_clinical.expression_qc.SpatialSample`, and the
    expression QC accepts it wherever it takes one (see
    :func:`tario_clinical.expression_qc.sample.as_spatial_sample`); the simulator itself does
    not depend on the expression QC.

    Attributes
    ----------
    sample_id, cancer_type
        Identifiers.
    predicted
        Tile-level AnnData.
    measured
        The transcript table or the cell AnnData (measured frame).
    affine
        3 × 3 matrix mapping the measured frame onto the slide frame (µm).
    """

    sample_id: str
    predicted: Any
    measured: Any
    cancer_type: str | None
    affine: np.ndarray


@dataclass(frozen=True, eq=False)
class SimulatedSpatialSample:
    """One simulated sample.

    Attributes
    ----------
    sample_id, cancer_type
        Identifiers.
    predicted
        Tile-level AnnData (tissue tiles × genes): ``obsm["spatial"]`` level-0 px,
        ``obsm["spatial_um"]`` µm, ``uns["tario_clinical"]["mpp"]``.
    transcripts
        One row per transcript: ``x, y`` (µm, measured frame), ``gene``; ``None`` unless asked for.
    cells
        Cell AnnData (counts, ``obsm["spatial"]`` µm in the measured frame); ``None`` unless
        asked for.
    affine
        3 × 3 matrix mapping the measured frame onto the slide frame (µm).
    counts
        True binned counts (tissue bins × genes, CSR), rows in ``tissue_bins`` order.
    rate
        ``lam`` (tissue bins × genes).
    tissue_bins
        Flat grid bins of the tissue (sorted).
    expected_r
        Expected spatial Pearson r per gene (see module docstring).
    """

    sample_id: str
    cancer_type: str
    predicted: Any
    transcripts: pd.DataFrame | None
    cells: Any
    affine: np.ndarray
    counts: sp.csr_matrix
    rate: np.ndarray
    tissue_bins: np.ndarray
    expected_r: np.ndarray

    def spatial_sample(
        self, measured: Literal["transcripts", "cells"] = "transcripts"
    ) -> PairedSample:
        """The sample with its ``measured`` transcripts or cells and the affine, ready for
        :func:`tario_clinical.expression_qc.evaluate_expression`."""
        raw = self.transcripts if measured == "transcripts" else self.cells
        if raw is None:
            raise SchemaError(f"sample {self.sample_id!r} was simulated without {measured}")
        return PairedSample(
            sample_id=self.sample_id,
            predicted=self.predicted,
            measured=raw,
            cancer_type=self.cancer_type,
            affine=self.affine,
        )


@dataclass(frozen=True, eq=False)
class SimulatedSpatial:
    """Simulated paired data over samples.

    Attributes
    ----------
    samples
        The :class:`SimulatedSpatialSample` objects.
    genes
        Gene names.
    smoothness
        Per-gene weight of the smooth field in ``f`` (0 = white noise, 1 = smooth).
    grid_shape, tile_um, mpp
        The prediction grid and resolution.
    noise_sd
        Prediction noise (relative to the per-gene spatial sd of the rate), per sample.
    """

    samples: list[SimulatedSpatialSample]
    genes: pd.Index
    smoothness: np.ndarray
    grid_shape: tuple[int, int]
    tile_um: float
    mpp: float
    noise_sd: np.ndarray

    @property
    def expected_r(self) -> np.ndarray:
        """Samples × genes expected spatial correlation."""
        return np.vstack([s.expected_r for s in self.samples])

    def spatial_samples(
        self, measured: Literal["transcripts", "cells"] = "transcripts"
    ) -> Iterator[PairedSample]:
        """The samples as :class:`PairedSample` items (accepted by the expression QC)."""
        for s in self.samples:
            yield s.spatial_sample(measured)


def _smooth_fields(
    rng: np.random.Generator, shape: tuple[int, int], k: int, scale: float
) -> np.ndarray:
    """``k`` standardised smooth Gaussian random fields, (n_bins, k)."""
    out = np.empty((shape[0] * shape[1], k))
    for i in range(k):
        f = ndimage.gaussian_filter(rng.standard_normal(shape), sigma=scale, mode="wrap")
        f = (f - f.mean()) / f.std()
        out[:, i] = f.ravel()
    return out


def _default_affine(rng: np.random.Generator) -> np.ndarray:
    """A small rotation, scale and shift from the slide frame to the measured frame's inverse."""
    th = rng.uniform(-0.3, 0.3)
    s = rng.uniform(0.9, 1.1)
    rot = s * np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    a = np.eye(3)
    a[:2, :2] = rot
    a[:2, 2] = rng.uniform(-500, 500, size=2)
    return a


def simulate_spatial_pairs(
    n_samples: int = 6,
    *,
    n_genes: int = 100,
    grid_shape: tuple[int, int] = (30, 30),
    tile_um: float = 112.0,
    mpp: float = 0.5,
    cancer_types: Sequence[str] = ("LUAD", "LUSC"),
    noise_sd: float | Mapping[str, float] = 1.0,
    mean_count: tuple[float, float] = (2.0, 20.0),
    sigma: float = 0.6,
    field_scale: float = 2.5,
    n_factors: int = 6,
    measured: Literal["transcripts", "cells", "both"] = "transcripts",
    cells_per_bin: int = 3,
    affine: Literal["random", "identity"] | np.ndarray = "random",
    seed: int = 0,
) -> SimulatedSpatial:
    """Simulate paired predicted / measured spatial expression with known expected correlation.

    Parameters
    ----------
    n_samples
        Number of samples (cancer types assigned in turn).
    n_genes
        Number of genes (``G0000`` …).
    grid_shape, tile_um, mpp
        Prediction grid ``(rows, cols)``, tile size (µm) and µm per level-0 pixel.
    cancer_types
        Cancer types, assigned round-robin.
    noise_sd
        Prediction noise relative to each gene's spatial sd of the rate (0 = perfect up to
        Poisson sampling of the measurement); a mapping gives one value per cancer type.
    mean_count
        Range (log-uniform) of the mean count per bin and gene.
    sigma
        Log-scale spread of the rate.
    field_scale
        Gaussian smoothing (in bins) of the smooth fields.
    n_factors
        Smooth factors mixed per gene.
    measured
        Emit transcripts, cells or both.
    cells_per_bin
        Cells per tissue bin when emitting cells.
    affine
        Measured → slide registration: ``"random"`` (rotation ±0.3 rad, scale 0.9–1.1, shift),
        ``"identity"`` or a 3 × 3 matrix.
    seed
        Seed; sample ``i`` uses child ``i`` of ``np.random.SeedSequence(seed)``.

    Returns
    -------
    SimulatedSpatial
    """
    import anndata as ad

    if n_samples < 1 or n_genes < 1:
        raise SchemaError(f"n_samples and n_genes must be >= 1; got {n_samples}, {n_genes}")
    if measured not in ("transcripts", "cells", "both"):
        raise SchemaError(f"measured={measured!r}; allowed 'transcripts', 'cells', 'both'")
    nr, nc = int(grid_shape[0]), int(grid_shape[1])
    ss = np.random.SeedSequence(seed)
    gene_ss, *sample_ss = ss.spawn(n_samples + 1)
    grng = np.random.default_rng(gene_ss)
    genes = pd.Index([f"G{i:04d}" for i in range(n_genes)], name="gene")
    smoothness = grng.uniform(0.0, 1.0, size=n_genes)
    lo, hi = np.log(mean_count[0]), np.log(mean_count[1])
    mu = np.exp(grng.uniform(lo, hi, size=n_genes))
    loadings = grng.standard_normal((n_factors, n_genes))
    loadings /= np.linalg.norm(loadings, axis=0)
    rr, cc = np.divmod(np.arange(nr * nc), nc)
    samples = []
    noise = []
    for i in range(n_samples):
        rng = np.random.default_rng(sample_ss[i])
        ct = str(cancer_types[i % len(cancer_types)])
        nsd = float(noise_sd[ct]) if isinstance(noise_sd, Mapping) else float(noise_sd)
        noise.append(nsd)
        # elliptical tissue with a random centre offset
        cy, cx = (nr - 1) / 2 + rng.uniform(-1, 1), (nc - 1) / 2 + rng.uniform(-1, 1)
        ry, rx = nr * rng.uniform(0.38, 0.48), nc * rng.uniform(0.38, 0.48)
        tissue = ((rr - cy) / ry) ** 2 + ((cc - cx) / rx) ** 2 <= 1.0
        tb = np.flatnonzero(tissue)
        smooth = _smooth_fields(rng, (nr, nc), n_factors, field_scale)[tb] @ loadings
        smooth = (smooth - smooth.mean(0)) / smooth.std(0)
        f = np.sqrt(smoothness) * smooth + np.sqrt(1 - smoothness) * rng.standard_normal(
            smooth.shape
        )
        lam = mu * np.exp(sigma * f - sigma**2 / 2)
        counts = rng.poisson(lam)
        v, m = lam.var(axis=0), lam.mean(axis=0)
        expected = np.sqrt(v / (v + m)) / np.sqrt(1.0 + nsd**2)
        pred = lam + nsd * np.sqrt(v) * rng.standard_normal(lam.shape)
        a = (
            _default_affine(rng)
            if isinstance(affine, str) and affine == "random"
            else (np.eye(3) if isinstance(affine, str) else np.asarray(affine, dtype=np.float64))
        )
        if not isinstance(affine, str) and a.shape != (3, 3):
            raise SchemaError(f"affine must be a 3x3 matrix; got shape {a.shape}")
        inv = np.linalg.inv(a)
        centre_um = np.column_stack([(cc[tb] + 0.5) * tile_um, (rr[tb] + 0.5) * tile_um])
        px = centre_um / mpp
        predicted = ad.AnnData(
            X=pred.astype(np.float32),
            obs=pd.DataFrame(
                index=pd.Index([f"tile{j:05d}" for j in range(tb.size)], name="tile_id")
            ),
            var=pd.DataFrame(index=genes.copy()),
        )
        predicted.obsm["spatial"] = px
        predicted.obsm["spatial_um"] = centre_um
        predicted.uns["tario_clinical"] = {"mpp": mpp, "tile_um": tile_um, "simulated": True}
        tx = cells = None
        flat_counts = counts.ravel()
        if measured in ("transcripts", "both"):
            bin_of = np.repeat(np.repeat(np.arange(tb.size), n_genes), flat_counts)
            gene_of = np.repeat(np.tile(np.arange(n_genes), tb.size), flat_counts)
            pos = np.column_stack([cc[tb][bin_of], rr[tb][bin_of]]) + rng.uniform(
                0.02, 0.98, size=(bin_of.size, 2)
            )
            xy = pos * tile_um
            xy_meas = xy @ inv[:2, :2].T + inv[:2, 2]
            tx = pd.DataFrame(
                {
                    "x": xy_meas[:, 0],
                    "y": xy_meas[:, 1],
                    "gene": pd.Categorical.from_codes(gene_of, categories=genes),
                }
            )
        if measured in ("cells", "both"):
            k = int(cells_per_bin)
            parts = []
            rest = counts.copy()
            for c in range(k - 1):
                take = rng.binomial(rest, 1.0 / (k - c))
                parts.append(take)
                rest = rest - take
            parts.append(rest)
            Xc = np.stack(parts, axis=1).reshape(tb.size * k, n_genes)  # bin-major
            cbin = np.repeat(np.arange(tb.size), k)
            cpos = np.column_stack([cc[tb][cbin], rr[tb][cbin]]) + rng.uniform(
                0.05, 0.95, size=(cbin.size, 2)
            )
            cxy = cpos * tile_um @ inv[:2, :2].T + inv[:2, 2]
            cells = ad.AnnData(
                X=sp.csr_matrix(Xc.astype(np.float32)),
                obs=pd.DataFrame(
                    index=pd.Index([f"cell{j:06d}" for j in range(cbin.size)], name="cell_id")
                ),
                var=pd.DataFrame(index=genes.copy()),
            )
            cells.obsm["spatial"] = cxy
        samples.append(
            SimulatedSpatialSample(
                sample_id=f"S{i:03d}",
                cancer_type=ct,
                predicted=predicted,
                transcripts=tx,
                cells=cells,
                affine=a,
                counts=sp.csr_matrix(counts),
                rate=lam,
                tissue_bins=tb,
                expected_r=expected,
            )
        )
    return SimulatedSpatial(
        samples=samples,
        genes=genes,
        smoothness=smoothness,
        grid_shape=(nr, nc),
        tile_um=float(tile_um),
        mpp=float(mpp),
        noise_sd=np.asarray(noise),
    )
