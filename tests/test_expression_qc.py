"""Tests of tario_clinical.expression_qc (predicted vs measured spatial expression).

References: Moran's I is checked against the textbook formula
``I = n / S0 * sum_ij w_ij z_i z_j / sum_i z_i**2`` evaluated densely here, and against the known
values for a checkerboard (-1, rook), a linear gradient (close to 1) and spatial noise
(E[I] = -1 / (n - 1)); correlations against numpy.corrcoef; the simulator's expected correlation
is derived analytically in tario_clinical/simulate/spatial.py.
"""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from tario_clinical import expression_qc as eq
from tario_clinical.errors import AnalysisError, SchemaError
from tario_clinical.expression_qc.binning import binned_anndata
from tario_clinical.simulate.spatial import simulate_spatial_pairs


def dense_moran(x: np.ndarray, w: np.ndarray) -> float:
    """Reference Moran's I, straight from the definition (dense double loop via outer)."""
    z = x - x.mean()
    return len(x) / w.sum() * float((w * np.outer(z, z)).sum()) / float((z * z).sum())


def row_standardise(a: np.ndarray) -> np.ndarray:
    d = a.sum(axis=1, keepdims=True)
    return np.divide(a, d, out=np.zeros_like(a), where=d > 0)


# -- adjacency ---------------------------------------------------------------------------------


def test_grid_adjacency_degrees_and_symmetry():
    a = eq.grid_adjacency((4, 5), "rook")
    assert a.shape == (20, 20)
    assert (a != a.T).nnz == 0 and a.diagonal().sum() == 0
    deg = np.asarray(a.sum(axis=1)).ravel().reshape(4, 5)
    assert deg[0, 0] == 2 and deg[0, 2] == 3 and deg[2, 2] == 4
    q = eq.grid_adjacency((4, 5), kind="queen")
    qdeg = np.asarray(q.sum(axis=1)).ravel().reshape(4, 5)
    assert qdeg[0, 0] == 3 and qdeg[0, 2] == 5 and qdeg[2, 2] == 8
    with pytest.raises(SchemaError, match="'rook', 'queen'"):
        eq.grid_adjacency((3, 3), kind="bishop")


# -- Moran's I ---------------------------------------------------------------------------------


def test_morans_i_checkerboard_is_minus_one():
    chess = (np.indices((10, 10)).sum(axis=0) % 2).astype(float).reshape(-1, 1)
    a = eq.grid_adjacency((10, 10))
    assert eq.morans_i(chess, a)[0] == pytest.approx(-1.0, abs=1e-12)
    assert eq.morans_i(sp.csr_matrix(chess), a)[0] == pytest.approx(-1.0, abs=1e-12)
    # binary (not row-standardised) weights: also -1 for the checkerboard
    assert eq.morans_i(chess, a, row_standardise=False)[0] == pytest.approx(-1.0, abs=1e-12)


def test_morans_i_gradient_and_noise():
    nr = nc = 40
    r, c = np.indices((nr, nc))
    grad = (r + c).astype(float).reshape(-1, 1)
    a = eq.grid_adjacency((nr, nc))
    assert eq.morans_i(grad, a)[0] > 0.9
    rng = np.random.default_rng(0)
    noise = rng.standard_normal((nr * nc, 400))
    mi = eq.morans_i(noise, a)
    expected = -1.0 / (nr * nc - 1)
    # sd of I under randomisation is ~ 1/sqrt(2n) = 0.018 per gene; mean over 400 genes ~ 0.0009
    assert abs(mi.mean() - expected) < 0.003
    assert abs(mi.std() - 1 / np.sqrt(2 * nr * nc)) < 0.005


@pytest.mark.parametrize("kind", ["rook", "queen"])
@pytest.mark.parametrize("standardise", [True, False])
def test_morans_i_matches_dense_reference(kind, standardise):
    rng = np.random.default_rng(1)
    shape = (9, 13)
    n = shape[0] * shape[1]
    X = rng.random((n, 37)) * rng.integers(1, 5, size=37)
    X[rng.random(X.shape) < 0.6] = 0.0  # sparse-ish
    a = eq.grid_adjacency(shape, kind=kind)
    wd = a.toarray()
    if standardise:
        wd = row_standardise(wd)
    ref = np.array([dense_moran(X[:, g], wd) for g in range(X.shape[1])])
    dense = eq.morans_i(X, a, row_standardise=standardise)
    sparse = eq.morans_i(sp.csr_matrix(X), a, row_standardise=standardise)
    threaded = eq.morans_i(sp.csc_matrix(X), a, row_standardise=standardise, n_jobs=2)
    np.testing.assert_allclose(dense, ref, rtol=0, atol=1e-10)
    np.testing.assert_allclose(sparse, ref, rtol=0, atol=1e-10)
    np.testing.assert_array_equal(threaded, sparse)


def test_morans_i_general_weights_with_island_and_self_loops():
    rng = np.random.default_rng(2)
    n = 30
    w = (rng.random((n, n)) < 0.15).astype(float) * rng.random((n, n))
    w[0, :] = 0.0  # an island row (no neighbours)
    np.fill_diagonal(w, 0.3)
    X = rng.poisson(2.0, size=(n, 12)).astype(float)
    for standardise in (True, False):
        wd = row_standardise(w) if standardise else w
        ref = np.array([dense_moran(X[:, g], wd) for g in range(X.shape[1])])
        np.testing.assert_allclose(
            eq.morans_i(X, sp.csr_matrix(w), row_standardise=standardise), ref, atol=1e-10
        )
        np.testing.assert_allclose(
            eq.morans_i(sp.csr_matrix(X), w, row_standardise=standardise), ref, atol=1e-10
        )


def test_morans_i_constant_gene_is_nan():
    a = eq.grid_adjacency((5, 5))
    X = np.column_stack([np.full(25, 3.7), np.arange(25.0), np.zeros(25)])
    for data in (X, sp.csr_matrix(X)):
        mi = eq.morans_i(data, a)
        assert np.isnan(mi[0]) and np.isnan(mi[2]) and np.isfinite(mi[1])


def test_morans_i_rejects_bad_input():
    with pytest.raises(SchemaError, match=r"\(4, 4\)"):
        eq.morans_i(np.ones((4, 2)), eq.grid_adjacency((3, 3)))
    with pytest.raises(AnalysisError, match="no edges"):
        eq.morans_i(np.arange(4.0).reshape(4, 1), sp.csr_matrix((4, 4)))


# -- spatial correlation -----------------------------------------------------------------------


def test_spatial_correlation_self_shuffled_and_reference():
    rng = np.random.default_rng(3)
    n, g = 500, 300
    P = rng.standard_normal((n, g)) + 5.0
    M = rng.poisson(1.0, size=(n, g)).astype(float)
    np.testing.assert_allclose(eq.spatial_correlation(P, P), 1.0, atol=1e-12)
    np.testing.assert_allclose(eq.spatial_correlation(M, sp.csr_matrix(M)), 1.0, atol=1e-12)
    shuffled = P[rng.permutation(n)]
    r = eq.spatial_correlation(shuffled, P)
    # independent: r ~ N(0, 1/n) per gene -> mean over 300 genes within 4 * 0.045 / sqrt(300)
    assert abs(r.mean()) < 0.011 and abs(r.std() - 1 / np.sqrt(n)) < 0.01
    ref = np.array([np.corrcoef(P[:, j], M[:, j])[0, 1] for j in range(g)])
    for a, b in [
        (P, M),
        (P, sp.csr_matrix(M)),
        (sp.csr_matrix(M), P),
        (sp.csr_matrix(P), sp.csr_matrix(M)),
    ]:
        np.testing.assert_allclose(eq.spatial_correlation(a, b), ref, atol=1e-10)
    np.testing.assert_array_equal(
        eq.spatial_correlation(P, sp.csr_matrix(M), n_jobs=2),
        eq.spatial_correlation(P, sp.csr_matrix(M)),
    )
    M[:, 0] = 2.0
    assert np.isnan(eq.spatial_correlation(P, sp.csr_matrix(M))[0])


# -- binning -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sim():
    return simulate_spatial_pairs(4, n_genes=40, grid_shape=(24, 26), measured="both", seed=7)


def test_bin_transcripts_recovers_simulated_counts_through_affine(sim):
    s = sim.samples[0]
    grid = eq.PredictionGrid.from_tiles(s.predicted)
    assert grid.tile_um == pytest.approx(sim.tile_um)
    binned = eq.bin_transcripts(s.transcripts, grid, affine=s.affine, genes=sim.genes)
    info = binned.uns["expression_qc"]
    assert info["n_input"] == len(s.transcripts) == info["n_binned"]
    assert info["n_outside_grid"] == 0
    # map simulator bins (full grid from 0) to grid bins by centres
    centres = s.predicted.obsm["spatial_um"]
    b, inside = grid.locate(centres)
    assert inside.all()
    got = binned.X[b].toarray()
    np.testing.assert_array_equal(got, s.counts.toarray())
    assert binned.X[np.setdiff1d(np.arange(grid.n_bins), b)].nnz == 0
    # cells binned the same way give the same counts
    cb = eq.bin_cells(s.cells, grid, affine=s.affine)
    np.testing.assert_array_equal(cb.X[b].toarray(), s.counts.toarray())
    # the px column + mpp route gives the same grid
    assert eq.PredictionGrid.from_tiles(s.predicted.obsm["spatial"] * sim.mpp) == grid


def test_bin_transcripts_counts_what_it_leaves_out():
    grid = eq.PredictionGrid(origin_um=(0.0, 0.0), tile_um=10.0, shape=(2, 3))
    tx = pd.DataFrame(
        {
            "x_location": [1.0, 15.0, 25.0, 35.0, 5.0, 5.0, 12.0],
            "y_location": [1.0, 2.0, 19.0, 5.0, -1.0, 3.0, 12.0],
            "feature_name": ["A", "B", "A", "A", "B", "NegControlProbe_1", "C"],
            "qv": [30, 30, 30, 30, 30, 30, 10],
        }
    )
    out = eq.bin_transcripts(tx, grid, min_qv=20)
    info = out.uns["expression_qc"]
    assert info["n_input"] == 7 and info["n_binned"] == 3
    assert info["n_outside_grid"] == 2 and info["n_control"] == 1 and info["n_low_qv"] == 1
    assert list(out.var_names) == ["A", "B", "C"]
    X = out.X.toarray()
    assert X[0, 0] == 1 and X[1, 1] == 1 and X[5, 0] == 1 and X.sum() == 3
    # affine 2x3: shift by +10 in x moves the first transcript into bin 1
    shifted = eq.bin_transcripts(tx.iloc[:1], grid, affine=[[1, 0, 10], [0, 1, 0]])
    assert shifted.X.toarray()[1, 0] == 1
    with pytest.raises(SchemaError, match="2x3 or 3x3"):
        eq.bin_transcripts(tx, grid, affine=np.eye(2))
    with pytest.raises(SchemaError, match="no gene column"):
        eq.bin_transcripts(tx.drop(columns="feature_name"), grid)


def test_grid_from_tiles_rejects_off_lattice():
    xy = np.array([[5.0, 5.0], [15.0, 5.0], [27.0, 5.0]])
    with pytest.raises(SchemaError, match="lattice"):
        eq.PredictionGrid.from_tiles(xy, tile_um=10.0)


# -- end to end on simulated pairs --------------------------------------------------------------


def test_simulated_correlation_matches_analytic_expectation():
    sim = simulate_spatial_pairs(
        6, n_genes=60, grid_shape=(36, 36), noise_sd={"LUAD": 0.5, "LUSC": 1.5}, seed=11
    )
    res = eq.evaluate_expression(sim.spatial_samples(), bulk="mean")
    diff = res.spatial_r - sim.expected_r
    # ~800 bins per sample: sampling sd of r is < 1/sqrt(800) = 0.035; mean over 360 pairs
    assert abs(np.nanmean(diff)) < 0.01
    assert np.nanmax(np.abs(diff)) < 0.15
    # cancer types with less prediction noise correlate better
    summ = res.summary().set_index("cancer_type")
    assert summ.loc["LUAD", "mean_spatial_r_all"] > summ.loc["LUSC", "mean_spatial_r_all"] + 0.1
    # measured Moran's I ranks genes by their planted smoothness
    mean_mi = res.morans_i_measured.mean(axis=0)
    assert np.corrcoef(mean_mi, sim.smoothness)[0, 1] > 0.8


def test_prediction_against_itself_and_shuffled(sim):
    import anndata as ad

    items, shuffled = [], []
    rng = np.random.default_rng(0)
    for s in sim.samples:
        grid = eq.PredictionGrid.from_tiles(s.predicted)
        meas = eq.bin_transcripts(s.transcripts, grid, affine=s.affine)
        b, _ = grid.locate(s.predicted.obsm["spatial_um"])
        perfect = ad.AnnData(X=meas.X[b].toarray(), var=pd.DataFrame(index=meas.var_names))
        perfect.obsm["spatial_um"] = s.predicted.obsm["spatial_um"]
        items.append(eq.SpatialSample(s.sample_id, perfect, meas, cancer_type=s.cancer_type))
        shuf = perfect.copy()
        shuf.X = shuf.X[rng.permutation(shuf.n_obs)]
        shuffled.append(eq.SpatialSample(s.sample_id, shuf, meas, cancer_type=s.cancer_type))
    res = eq.evaluate_expression(items, morans_predicted=True)
    finite = np.isfinite(res.spatial_r)
    assert finite.mean() > 0.95
    np.testing.assert_allclose(res.spatial_r[finite], 1.0, atol=1e-9)
    np.testing.assert_allclose(
        res.morans_i_predicted, res.morans_i_measured, atol=1e-9, equal_nan=True
    )
    curve = res.spatial_curve()
    np.testing.assert_allclose(curve["mean_spatial_r"], 1.0, atol=1e-9)
    res_s = eq.evaluate_expression(shuffled)
    # independent maps: mean r over 160 pairs of ~400 bins has sd ~ 0.004
    assert abs(np.nanmean(res_s.spatial_r)) < 0.02


def test_result_tables_curves_and_bulk(sim):
    res = eq.evaluate_expression(sim.spatial_samples(), bins="predicted")
    g = len(sim.genes)
    tab = res.table()
    assert len(tab) == 4 * g and list(tab.columns[:3]) == ["sample_id", "cancer_type", "gene"]
    rank = res.gene_ranking()
    allr = rank[rank["cancer_type"] == "all"]
    assert list(allr["rank"]) == list(range(1, g + 1))
    assert np.all(np.diff(allr["mean_morans_i"].to_numpy()) <= 0)
    curve = res.spatial_curve()
    for _name, df in curve.groupby("cancer_type"):
        r = df["spatial_r"].to_numpy()
        np.testing.assert_allclose(df["mean_spatial_r"], np.cumsum(r) / np.arange(1, len(r) + 1))
        assert df["k"].tolist() == list(range(1, g + 1))
    # bulk correlation against numpy per gene
    bc = res.bulk_correlation()
    ball = bc[bc["cancer_type"] == "all"].set_index("gene")
    j = 5
    ref = np.corrcoef(res.bulk_predicted[:, j], res.bulk_measured[:, j])[0, 1]
    assert ball.loc[sim.genes[j], "estimate"] == pytest.approx(ref, abs=1e-12)
    assert (ball["low"] <= ball["estimate"]).all() and (ball["estimate"] <= ball["high"]).all()
    # two samples per cancer type: too few for a bulk correlation
    assert bc[bc["cancer_type"] == "LUAD"]["estimate"].isna().all()
    assert "<table" in res._repr_html_()


def test_gene_sets_differ_between_samples(sim):
    items = list(sim.spatial_samples())
    s0 = items[0]
    pred = s0.predicted[:, 5:].copy()
    items[0] = eq.SpatialSample(
        s0.sample_id, pred, s0.measured, cancer_type=s0.cancer_type, affine=s0.affine
    )
    res = eq.evaluate_expression(items)
    assert len(res.genes) == len(sim.genes)
    assert np.isnan(res.spatial_r[0, res.genes.get_indexer(sim.genes[:5])]).all()
    assert res.samples.loc[0, "n_genes_dropped"] == 5
    with pytest.raises(SchemaError, match="more than once"):
        eq.evaluate_expression([items[1], items[1]])
    with pytest.raises(SchemaError, match="'both', 'predicted'"):
        eq.evaluate_expression(items, bins="tissue")


def test_figures_and_report_section(sim):
    import matplotlib.pyplot as plt

    items = list(sim.spatial_samples())
    res = eq.evaluate_expression(items)
    ax = eq.plot_spatial_correlation_curve(res)
    assert len(ax.get_lines()) >= 3  # all + two cancer types (+ zero line)
    fig, axes = plt.subplots(1, 2)
    assert res.plot_bulk_curve(ax=axes[1]) is axes[1]
    axs = eq.plot_expression_maps(items, [("S000", "G0001"), ("S001", "G0002")])
    assert axs.shape == (2, 3) and len(axs[0, 0].collections) == 1
    cells = [
        eq.SpatialSample(s.sample_id, s.predicted, sim.samples[i].cells, affine=s.affine)
        for i, s in enumerate(items)
    ]
    eq.plot_expression_maps(cells[:1], [("S000", "G0003")])
    sec = eq.report_section(res, maps=axs[0, 0].figure, top_n=5)
    figs = sec.pop("figures")
    assert set(figs) == {"spatial_correlation_curve", "bulk_correlation_curve", "expression_maps"}
    text = json.dumps(sec, allow_nan=False)
    assert "mean_spatial_r" in text
    assert len(sec["tables"]["spatial_curve"]) == len(res.spatial_curve())
    assert sec["parameters"]["n_samples"] == 4
    plt.close("all")


def test_blocked_threaded_kernels_match_dense_paths():
    # enough bins x genes for several row blocks (with halo) and two worker threads
    rng = np.random.default_rng(5)
    shape = (40, 40)
    n, g = shape[0] * shape[1], 2000
    M = sp.random(n, g, density=0.05, random_state=5, format="csr") * 10
    M.data = np.round(M.data)
    M.eliminate_zeros()
    P = rng.standard_normal((n, g)).astype(np.float32) + 3.0
    a = eq.grid_adjacency(shape, kind="queen")
    dense_mi = eq.morans_i(M.toarray(), a)
    for jobs in (1, 2):
        np.testing.assert_allclose(eq.morans_i(M, a, n_jobs=jobs), dense_mi, atol=1e-10)
        np.testing.assert_allclose(
            eq.spatial_correlation(P, M, n_jobs=jobs),
            eq.spatial_correlation(P, M.toarray()),
            atol=1e-10,
        )


@pytest.mark.parametrize("kind", ["rook", "queen"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compare_sample_matches_straightforward_reference(kind, dtype):
    # random data on a grid where some bins have no measured count (so the compared bins are not
    # the full lattice and the neighbour offsets are not constant) and others have them all;
    # the optimised kernels (blocked, shifted moments, look-ups at non-zeros, mat-vec sums) must
    # equal plain dense numpy: corrcoef per gene, the Moran definition, the bulk means
    rng = np.random.default_rng(11)
    shape = (23, 31)
    n, g = shape[0] * shape[1], 700
    grid = eq.PredictionGrid(origin_um=(0.0, 0.0), tile_um=50.0, shape=shape)
    M = sp.random(n, g, density=0.08, random_state=3, format="csr") * 7
    M.data = np.ceil(M.data).astype(np.float32)
    empty = rng.random(n) < 0.15
    M = sp.csr_matrix(sp.diags((~empty).astype(float)) @ M, dtype=np.float32)
    M.eliminate_zeros()
    P = (rng.standard_normal((n, g)) * rng.uniform(0.5, 3, g) + rng.uniform(-5, 50, g)).astype(
        dtype
    )
    P[:, 5] = 4.25  # constant prediction: r NaN
    genes = pd.Index([f"G{i:04d}" for i in range(g)], name="gene")
    pred = binned_anndata(P, np.arange(n), genes, grid, {"kind": "predicted"})
    meas = binned_anndata(M, np.arange(n), genes, grid, {"kind": "measured"})
    comp = eq.compare_sample(eq.SpatialSample("S", pred, meas), kind=kind, n_jobs=2)

    keep = np.asarray(M.sum(axis=1)).ravel() > 0
    assert comp.n_bins == keep.sum() < n
    Pk, Mk = P[keep].astype(np.float64), M.toarray()[keep].astype(np.float64)
    rows, cols = np.divmod(np.flatnonzero(keep), shape[1])
    dr, dc = np.abs(rows[:, None] - rows), np.abs(cols[:, None] - cols)
    adj = ((dr + dc) == 1) if kind == "rook" else (np.maximum(dr, dc) == 1)
    W = row_standardise(adj.astype(float))
    with np.errstate(invalid="ignore", divide="ignore"):
        ref_r = np.array([np.corrcoef(Pk[:, j], Mk[:, j])[0, 1] for j in range(g)])
        ref_i = np.array(
            [dense_moran(Mk[:, j], W) if Mk[:, j].std() > 0 else np.nan for j in range(g)]
        )
    np.testing.assert_allclose(comp.spatial_r, ref_r, atol=1e-6, equal_nan=True)
    assert np.isnan(comp.spatial_r[5])
    np.testing.assert_allclose(comp.morans_i_measured, ref_i, atol=1e-6, equal_nan=True)
    np.testing.assert_allclose(comp.bulk_predicted, Pk.mean(axis=0), rtol=1e-6)
    lib = Mk.sum()
    np.testing.assert_allclose(comp.bulk_measured, np.log1p(1e6 * Mk.sum(axis=0) / lib), rtol=1e-9)
    # bins="predicted": every bin, a full lattice (scalar neighbour offsets), measured zeros kept
    full = eq.compare_sample(eq.SpatialSample("S", pred, meas), kind=kind, bins="predicted")
    Md = M.toarray().astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        ref_full = np.array(
            [np.corrcoef(P[:, j].astype(np.float64), Md[:, j])[0, 1] for j in range(g)]
        )
    np.testing.assert_allclose(full.spatial_r, ref_full, atol=1e-6, equal_nan=True)
    A = eq.grid_adjacency(shape, kind=kind).toarray()
    Wf = row_standardise(A)
    with np.errstate(invalid="ignore", divide="ignore"):
        ref_fi = np.array([dense_moran(Md[:, j], Wf) for j in range(g)])
    np.testing.assert_allclose(full.morans_i_measured, ref_fi, atol=1e-6, equal_nan=True)


def test_sparse_kernels_irregular_weights_and_strided_predictions():
    # irregular symmetric weights with self-loops (no lattice offsets: per-row offsets path) and a
    # Fortran-ordered prediction (non-contiguous look-up path) against dense references
    rng = np.random.default_rng(2)
    n, g = 300, 400
    A = sp.random(n, n, density=0.03, random_state=4, format="csr")
    A = A + A.T + sp.diags(rng.uniform(0, 1, n) * (rng.random(n) < 0.2))
    M = sp.random(n, g, density=0.1, random_state=6, format="csr")
    M.data = np.round(M.data * 9) + 1
    Md = M.toarray()
    W = row_standardise(A.toarray())
    ref = np.array([dense_moran(Md[:, j], W) for j in range(g)])
    for jobs in (1, 2):
        np.testing.assert_allclose(eq.morans_i(M, A, n_jobs=jobs), ref, atol=1e-9)
    # several row blocks (4000 genes -> 500-row blocks) so block offsets matter
    n, g = 1200, 4000
    M = sp.random(n, g, density=0.02, random_state=7, format="csr")
    M.data = np.round(M.data * 9) + 1
    Md = M.toarray()
    P = np.asfortranarray(rng.standard_normal((n, g)) + 10)
    ref_r = np.array([np.corrcoef(P[:, j], Md[:, j])[0, 1] for j in range(g)])
    for jobs in (1, 2):
        np.testing.assert_allclose(eq.spatial_correlation(P, M, n_jobs=jobs), ref_r, atol=1e-9)
