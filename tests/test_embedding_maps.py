"""Embedding maps (PCA / t-SNE) and genotype co-occurrence."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from tario_clinical import SchemaError, embedding_maps, simulate_trial  # noqa: E402
from tario_clinical.errors import AnalysisError  # noqa: E402


@pytest.fixture(scope="module")
def trial():
    return simulate_trial(120, seed=0, n_genes=50, compute_attainable=False)


@pytest.fixture(scope="module")
def cohort(trial):
    return trial.cohort()


def test_pca_matches_numpy_svd(trial, cohort):
    """Reference: the first two left singular vectors * singular values of the z-scored X."""
    coords = embedding_maps.pca_map(trial.representations, cohort)
    x = np.asarray(trial.representations.X, dtype=float)
    z = (x - x.mean(0)) / x.std(0, ddof=1)
    u, s, _ = np.linalg.svd(z, full_matrices=False)
    ref = u[:, :2] * s[:2]
    got = coords[["x", "y"]].to_numpy()
    for k in range(2):  # PCs are defined up to sign
        sign = np.sign(ref[:, k] @ got[:, k])
        np.testing.assert_allclose(got[:, k], sign * ref[:, k], atol=1e-8)
    evr = coords.attrs["tario_clinical"]["explained_variance_ratio"]
    np.testing.assert_allclose(evr[:2], (s[:2] ** 2) / (s**2).sum(), rtol=1e-10)
    assert list(coords.columns[:4]) == ["patient_id", "method", "x", "y"]
    assert coords["patient_id"].tolist() == list(trial.representations.obs_names)
    # annotations joined by patient id, not by position
    clin = cohort.clinical.set_index("patient_id")
    assert (coords.set_index("patient_id")["cancer_type"] == clin["cancer_type"]).all()
    assert {"arm", "histology", "EGFR", "KRAS", "STK11", "PTEN"} <= set(coords.columns)


def test_pca_separates_planted_cancer_type_signal():
    """Simulated cancer types shift programs P05..P07; with high SNR the PCA map separates them
    far better than chance (silhouette of random labels is ~0)."""
    from sklearn.metrics import silhouette_score

    tr = simulate_trial(200, seed=3, n_genes=40, snr=4.0, compute_attainable=False)
    coords = embedding_maps.pca_map(tr.representations, tr.cohort())
    shuffled = np.random.default_rng(0).permutation(coords["cancer_type"].to_numpy())
    real = silhouette_score(coords[["x", "y"]], coords["cancer_type"])
    null = silhouette_score(coords[["x", "y"]], shuffled)
    assert real > null + 0.05


def test_tsne_seeded_and_deterministic(trial, cohort):
    kw = {"max_iter": 250, "init": "random"}
    a = embedding_maps.tsne_map(trial.representations, cohort, seed=1, **kw)
    b = embedding_maps.tsne_map(trial.representations, cohort, seed=1, **kw)
    c = embedding_maps.tsne_map(trial.representations, cohort, seed=2, **kw)
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a[["x", "y"]].to_numpy(), c[["x", "y"]].to_numpy())
    # PCA initialisation: no randomness left, the seed does not matter
    d = embedding_maps.tsne_map(trial.representations, cohort, seed=1, max_iter=250)
    e = embedding_maps.tsne_map(trial.representations, cohort, seed=2, max_iter=250)
    np.testing.assert_array_equal(d[["x", "y"]].to_numpy(), e[["x", "y"]].to_numpy())
    meta = a.attrs["tario_clinical"]
    assert meta["method"] == "tsne" and meta["parameters"]["perplexity"] == 30.0
    assert (a["method"] == "tsne").all()


def test_small_cohort_lowers_perplexity_and_nonfinite_rows_are_listed():
    tr = simulate_trial(20, seed=0, n_genes=12, compute_attainable=False)
    ad = tr.representations.copy()
    ad.X[3, 2] = np.nan
    coords = embedding_maps.tsne_map(ad, tr.cohort(), max_iter=250)
    meta = coords.attrs["tario_clinical"]
    assert len(coords) == 19
    assert meta["exclusions"] == [
        {"patient_id": ad.obs_names[3], "reason": "non-finite representation"}
    ]
    assert meta["parameters"]["perplexity"] == pytest.approx(18 / 3)


def test_input_errors(trial, cohort):
    with pytest.raises(ValueError, match="method must be one of pca, tsne"):
        embedding_maps.embedding_map(trial.representations, method="umap")
    with pytest.raises(SchemaError, match="not_a_column"):
        embedding_maps.pca_map(trial.representations, cohort, annotations=["not_a_column"])
    df = pd.DataFrame(trial.representations.X[:4], index=trial.representations.obs_names[:4])
    with pytest.raises(AnalysisError, match="need >= 5"):
        embedding_maps.pca_map(df)
    dup = pd.DataFrame(np.ones((6, 3)), index=["a", "a", "b", "c", "d", "e"])
    with pytest.raises(SchemaError, match="duplicate"):
        embedding_maps.pca_map(dup)


def test_plot_embedding_categorical_numeric_and_missing(trial, cohort):
    coords = embedding_maps.pca_map(trial.representations, cohort)
    fig, axes = plt.subplots(1, 3)
    ax = embedding_maps.plot_embedding(coords, "EGFR", ax=axes[0])
    assert ax is axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    n_missing = int(coords["EGFR"].isna().sum())
    assert n_missing > 0 and f"missing ({n_missing})" in labels
    assert sum(int(lab.rsplit("(", 1)[1].rstrip(")")) for lab in labels) == len(coords)
    coords["score"] = np.linspace(0, 1, len(coords))
    embedding_maps.plot_embedding(coords, "score", ax=axes[1])
    # a label with '$' is drawn literally, not parsed as mathtext
    coords["cancer_type"] = "$x"
    embedding_maps.plot_embedding(coords, "cancer_type", ax=axes[2])
    fig.canvas.draw()
    with pytest.raises(SchemaError, match="not in the coordinates table"):
        embedding_maps.plot_embedding(coords, "nope")
    plt.close("all")


def test_cooccurrence_counts_and_fisher_reference():
    """Reference: Fisher's tea-tasting table [[3, 1], [1, 3]]: two-sided p = 0.4857 (R
    fisher.test), sample OR 9; Haldane OR (3.5*3.5)/(1.5*1.5)."""
    df = pd.DataFrame(
        {
            "patient_id": [f"p{i}" for i in range(9)],
            "A": ["mut"] * 3 + ["mut"] + ["wt"] + ["wt"] * 3 + [None],
            "B": ["mut"] * 3 + ["wt"] + ["mut"] + ["wt"] * 3 + ["mut"],
        }
    )
    tab = embedding_maps.genotype_cooccurrence(df, genes=["A", "B"])
    row = tab.iloc[0]
    assert list(tab.columns) == embedding_maps.COOCCURRENCE_COLUMNS
    assert (row.both, row.a_only, row.b_only, row.neither, row.n_tested) == (3, 1, 1, 3, 8)
    assert row.p_value == pytest.approx(0.4857143, abs=1e-6)
    assert row.odds_ratio == pytest.approx(9.0)
    assert row.odds_ratio_corrected == pytest.approx(3.5 * 3.5 / (1.5 * 1.5))
    assert row.log2_odds_ratio == pytest.approx(math.log2(3.5 * 3.5 / 2.25))
    assert row.relation == "not significant"


def test_cooccurrence_recovers_planted_exclusivity(cohort):
    """The simulator draws KRAS only in EGFR wild-type patients (never both) and STK11 more
    often with KRAS (0.32 vs 0.07)."""
    tab = embedding_maps.genotype_cooccurrence(cohort).set_index(["gene_a", "gene_b"])
    assert len(tab) == 6
    ek = tab.loc[("EGFR", "KRAS")]
    assert ek.both == 0 and ek.odds_ratio == 0 and ek.relation == "mutually exclusive"
    ks = tab.loc[("KRAS", "STK11")]
    assert ks.odds_ratio > 1 and ks.relation == "co-occurring"
    # BH: q >= p and monotone in p
    assert (tab["q_value"] >= tab["p_value"] - 1e-15).all()
    ordered = tab.sort_values("p_value")["q_value"].to_numpy()
    assert (np.diff(ordered) >= -1e-15).all()
    ax = embedding_maps.plot_cooccurrence(embedding_maps.genotype_cooccurrence(cohort))
    assert [t.get_text() for t in ax.get_xticklabels()] == ["EGFR", "KRAS", "STK11", "PTEN"]
    plt.close("all")


def test_bh_matches_statsmodels(cohort):
    from statsmodels.stats.multitest import multipletests

    tab = embedding_maps.genotype_cooccurrence(cohort)
    p = tab["p_value"].to_numpy()
    assert np.isfinite(p).all() and len(p) == 6
    np.testing.assert_allclose(tab["q_value"], multipletests(p, method="fdr_bh")[1])


def test_plot_embedding_uses_the_okabe_ito_palette(trial, cohort):
    """Every category is an Okabe–Ito colour (missing in grey); past the seven colours the
    marker shape changes, so no two categories look alike."""
    from matplotlib.colors import to_hex

    from tario_clinical.palette import OKABE_ITO

    coords = embedding_maps.pca_map(trial.representations, cohort)
    assert coords["histology"].nunique() > len(OKABE_ITO)  # more levels than colours
    coords.loc[coords.index[:3], "histology"] = None
    fig, ax = plt.subplots()
    embedding_maps.plot_embedding(coords, "histology", ax=ax)
    seen = []
    for coll, text in zip(ax.collections, ax.get_legend().get_texts(), strict=True):
        colour = to_hex(coll.get_facecolor()[0]).upper()
        path = coll.get_paths()[0]
        seen.append((colour, len(path.vertices), text.get_text()))
    palette = {c.upper() for c in OKABE_ITO}
    missing = [s for s in seen if s[2].startswith("missing")]
    assert len(missing) == 1 and missing[0][0] not in palette
    shown = [s for s in seen if not s[2].startswith("missing")]
    assert {c for c, _, _ in shown} <= palette
    assert len({(c, n) for c, n, _ in shown}) == len(shown)  # colour + marker tell them apart
    plt.close("all")


def test_representation_maps_are_what_the_report_shows(trial, cohort):
    maps = embedding_maps.representation_maps(trial.representations, cohort, seed=0)
    d = maps.to_dict()
    assert list(d["maps"]) == ["pca", "tsne"]
    pca = embedding_maps.pca_map(trial.representations, cohort)
    meta = pca.attrs["tario_clinical"]
    assert d["maps"]["pca"]["explained_variance_ratio"] == meta["explained_variance_ratio"][:2]
    assert d["maps"]["tsne"]["explained_variance_ratio"] is None
    assert "kl_divergence" not in d["maps"]["tsne"]["parameters"]
    np.testing.assert_array_equal(maps.coordinates["pca"][["x", "y"]], pca[["x", "y"]])
    assert maps.color_by == ("cancer_type", "histology", "EGFR", "KRAS", "STK11", "PTEN")
    pd.testing.assert_frame_equal(maps.cooccurrence, embedding_maps.genotype_cooccurrence(cohort))
    fig = maps.plot_map("pca")
    assert len(fig.axes) >= len(maps.color_by)
    assert [a.get_title() for a in fig.axes[:2]] == ["PCA by cancer_type", "PCA by histology"]
    assert maps.plot_cooccurrence().get_title() == "Genotype co-occurrence"
    # a cohort without two genotype columns: no co-occurrence, with the reason
    table = cohort.clinical.drop(columns=["KRAS", "STK11", "PTEN"])
    one = embedding_maps.representation_maps(trial.representations, table, methods=["pca"], seed=0)
    assert one.cooccurrence is None and "two genotype columns" in one.notes[0]
    with pytest.raises(AnalysisError, match="co-occurrence"):
        one.plot_cooccurrence()
    with pytest.raises(ValueError, match="methods"):
        embedding_maps.representation_maps(trial.representations, cohort, methods=["umap"])
    plt.close("all")
