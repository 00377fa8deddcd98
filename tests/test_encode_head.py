"""ExpressionHead protocols (issue 17 item 4): ridge with GCV and the HEST-Benchmark PCA + ridge,
fitted from paired embeddings and expression, saved pickle-free, compared on held-out folds,
stacked on a preset-shaped ViT, and predicting on a chosen grid spacing recorded in provenance."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tario_clinical.encode import (
    ExpressionHead,
    compare_expression_heads,
    encode_slides,
    fit_expression_head,
    load_encoder,
)
from tario_clinical.errors import EncoderError

GENES = ["EPCAM", "CD3E", "COL1A1", "MKI67"]


def _paired(n: int = 300, d: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    Z = rng.normal(size=(n, d)) * rng.uniform(0.2, 5.0, d)
    B = rng.normal(size=(d, len(GENES))) / np.sqrt(d)
    Y = np.log1p(np.exp(Z @ B + 1.0)) + rng.normal(0, 0.05, size=(n, len(GENES)))
    return Z, Y


# ---- the HEST protocol --------------------------------------------------------------------------


def test_hest_head_equals_scaler_pca_ridge_pipeline() -> None:
    """Reference: scikit-learn's StandardScaler -> PCA(k) -> Ridge(alpha=100/(k*genes),
    fit_intercept=False), the HEST-Benchmark linear probe (hest/bench: PCA to 256 components,
    Ridge(solver='lsqr', alpha=100/(n_features*n_genes), fit_intercept=False)); solved here
    exactly (solver='svd'), which lsqr approximates."""
    from sklearn.decomposition import PCA
    from sklearn.linear_model import Ridge
    from sklearn.preprocessing import StandardScaler

    Z, Y = _paired()
    Zt = np.random.default_rng(1).normal(size=(50, Z.shape[1])) * 2
    k = 12
    sc = StandardScaler().fit(Z)
    pca = PCA(n_components=k, svd_solver="full").fit(sc.transform(Z))
    alpha = 100 / (k * len(GENES))
    ridge = Ridge(alpha=alpha, fit_intercept=False, solver="svd")
    ridge.fit(pca.transform(sc.transform(Z)), Y)
    want = ridge.predict(pca.transform(sc.transform(Zt)))

    head = ExpressionHead(method="hest", n_components=k, fit_intercept=False)
    head.fit(Z, Y, genes=GENES)
    assert head.alpha_ == pytest.approx(alpha) and head.n_components_ == k
    assert head.explained_variance_ratio_ == pytest.approx(
        pca.explained_variance_ratio_.sum(), rel=1e-6
    )
    np.testing.assert_allclose(head.predict(Zt), want, rtol=1e-4, atol=1e-4)
    # with the intercept (our default) the slopes are the same; only the level moves
    h1 = ExpressionHead(method="hest", n_components=k).fit(Z, Y, genes=GENES)
    np.testing.assert_allclose(h1.predict(Zt) - want, np.broadcast_to(Y.mean(0), want.shape),
                               rtol=1e-4, atol=1e-4)  # fmt: skip


def test_hest_head_caps_components_and_rejects_bad_settings() -> None:
    Z, Y = _paired(n=30, d=8)
    head = ExpressionHead(method="hest").fit(Z, Y, genes=GENES)  # 256 asked, 8 features
    assert head.n_components_ == 8
    assert head.explained_variance_ratio_ == pytest.approx(1.0)
    with pytest.raises(EncoderError, match="method='pca' is not allowed; allowed: ridge, hest"):
        ExpressionHead(method="pca").fit(Z, Y, genes=GENES)  # type: ignore[arg-type]
    with pytest.raises(EncoderError, match="n_components must be >= 1"):
        ExpressionHead(method="hest", n_components=0).fit(Z, Y, genes=GENES)
    with pytest.raises(EncoderError, match="grid_um must be a positive number"):
        ExpressionHead(grid_um=-18).fit(Z, Y, genes=GENES)


def test_head_file_is_safetensors_with_protocol_and_grid(tmp_path: Path) -> None:
    Z, Y = _paired()
    head = ExpressionHead(method="hest", n_components=16, grid_um=18).fit(Z, Y, genes=GENES)
    p = head.save(tmp_path / "head.safetensors")
    raw = p.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    assert set(header) == {"coef", "intercept", "__metadata__"}
    assert b"\x80\x04" not in raw[: 8 + n] and not list(tmp_path.glob(".*.tmp"))
    meta = header["__metadata__"]
    assert meta["method"] == "hest" and float(meta["grid_um"]) == 18.0
    back = ExpressionHead.load(p)
    assert back.method_ == "hest" and back.grid_um_ == 18.0 and back.n_components_ == 16
    assert back.fit_record() == head.fit_record()
    np.testing.assert_array_equal(back.predict(Z), head.predict(Z))
    assert "hest" in repr(back) and "18 um" in repr(back)
    # a head file of an unknown protocol is refused, naming the key
    from safetensors.numpy import save_file

    save_file({"coef": head.coef_, "intercept": head.intercept_}, str(tmp_path / "bad.st"),
              metadata={"genes": json.dumps(GENES), "method": "lasso"})  # fmt: skip
    with pytest.raises(EncoderError, match="metadata 'method' is 'lasso'"):
        ExpressionHead.load(tmp_path / "bad.st")


def test_old_head_files_load_as_ridge(tmp_path: Path) -> None:
    """Heads written before the protocols were recorded (no 'method', no 'grid_um')."""
    from safetensors.numpy import save_file

    Z, Y = _paired()
    h = ExpressionHead().fit(Z, Y, genes=GENES)
    save_file({"coef": h.coef_, "intercept": h.intercept_}, str(tmp_path / "old.st"),
              metadata={"genes": json.dumps(GENES), "alpha": repr(h.alpha_)})  # fmt: skip
    back = ExpressionHead.load(tmp_path / "old.st")
    assert back.method_ == "ridge" and back.grid_um_ is None
    np.testing.assert_array_equal(back.predict(Z), h.predict(Z))


# ---- comparing protocols ---------------------------------------------------------------------


def test_compare_expression_heads_on_held_out_folds() -> None:
    Z, Y = _paired(n=240)
    df = compare_expression_heads(Z, Y, genes=GENES, n_splits=4, seed=3, n_components=10)
    assert list(df.columns) == ["method", "gene", "pearson_r", "rmse", "n_tiles", "n_splits"]
    assert len(df) == 2 * len(GENES) and set(df["method"]) == {"ridge", "hest"}
    mean_r = df.groupby("method")["pearson_r"].mean()
    # ridge sees all 40 directions, a 10-component PCA only part of the signal
    assert mean_r["ridge"] > 0.9 and mean_r["hest"] < mean_r["ridge"]
    again = compare_expression_heads(Z, Y, genes=GENES, n_splits=4, seed=3, n_components=10)
    pd.testing.assert_frame_equal(df, again)
    # held out means held out: with every tile its own group, predictions of a fold never
    # use that fold; a pure-noise target gives no held-out correlation
    noise = np.random.default_rng(9).normal(size=(240, 1))
    r = compare_expression_heads(Z, noise, genes=["noise"], n_splits=4, methods=["ridge"])
    assert abs(float(r["pearson_r"].iloc[0])) < 0.25


def test_compare_expression_heads_groups_and_errors() -> None:
    Z, Y = _paired(n=60)
    groups = np.repeat(["s1", "s2", "s3"], 20)
    df = compare_expression_heads(Z, Y, genes=GENES, n_splits=3, groups=groups, methods=["hest"])
    assert set(df["method"]) == {"hest"}
    with pytest.raises(EncoderError, match=r"at most the number of groups \(3\)"):
        compare_expression_heads(Z, Y, genes=GENES, n_splits=4, groups=groups)
    with pytest.raises(EncoderError, match="not allowed; allowed: ridge, hest"):
        compare_expression_heads(Z, Y, genes=GENES, methods=["knn"])
    with pytest.raises(EncoderError, match="same number of rows"):
        compare_expression_heads(Z, Y[:10], genes=GENES)


# ---- stacked on a preset-shaped ViT, predicting on a chosen grid ------------------------------


def _vit_card(folder: Path, head: Path | None = None) -> Path:
    """A small ViT in the presets' architecture ('vit', class token + patch mean, LayerScale),
    32-px tiles at 1 µm/px, seeded random weights."""
    from safetensors.torch import save_file

    from tario_clinical.encode.architectures import build_architecture

    kw = {"img_size": 32, "patch_size": 8, "embed_dim": 24, "depth": 2, "num_heads": 2,
          "init_values": 1e-5, "dynamic_img_size": True, "pool": "token+patch_mean"}  # fmt: skip
    net = build_architecture("vit", kw).init_random(seed=0)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(folder / "vit.st"))
    card = {
        "schema_version": 1, "name": "tiny-vit", "version": "1", "licence": "Apache-2.0",
        "format": "safetensors", "weights": "vit.st", "architecture": "vit",
        "architecture_kwargs": kw,
        "input": {"tile_px": 32, "mpp": 1.0, "mean": [0.485, 0.456, 0.406],
                  "std": [0.229, 0.224, 0.225], "value_range": "0-1"},
        "output": {"kind": "embedding", "width": 48},
    }  # fmt: skip
    if head is not None:
        card["head"] = {"weights": head.name}
    p = folder / ("vit_head.json" if head else "vit.json")
    p.write_text(json.dumps(card))
    return p


@pytest.fixture(scope="module")
def slides(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tario_clinical.simulate.slides import write_synthetic_slides

    d = tmp_path_factory.mktemp("head_slides")
    z = np.random.default_rng(4).normal(size=(2, 5))
    lat = pd.DataFrame(z, index=["P1", "P2"], columns=[f"P{i:02d}" for i in range(5)])
    write_synthetic_slides(lat, d, seed=4, size_px=320, mpp=1.0)
    return d / "slides.csv"


def test_hest_head_on_a_vit_predicts_on_the_chosen_grid(tmp_path: Path, slides: Path) -> None:
    from tario_clinical.slides import detect_tissue, open_slide, read_slide_manifest, tile_grid

    backbone = load_encoder(_vit_card(tmp_path), device="cpu")
    rng = np.random.default_rng(0)
    tiles = rng.integers(0, 256, size=(120, 32, 32, 3), dtype=np.uint8)
    emb = backbone.encode_array(tiles)
    expr = emb[:, :4] @ rng.normal(size=(4, len(GENES))) + 2.0
    head = fit_expression_head(backbone, tiles, expr, genes=GENES, method="hest",
                               n_components=8, grid_um=18.0)  # fmt: skip
    assert head.method_ == "hest" and head.grid_um_ == 18.0
    head.save(tmp_path / "head.st")
    card = _vit_card(tmp_path, head=tmp_path / "head.st")
    enc = load_encoder(card, device="cpu")
    assert enc.feature_names == GENES
    np.testing.assert_allclose(enc.encode_array(tiles[:8]), head.predict(emb[:8]),
                               rtol=1e-4, atol=1e-4)  # fmt: skip

    # default: the head's 18 µm grid; tiles (32 µm) centred every 18 µm overlap
    res = encode_slides(slides, card, tmp_path / "o18", device="cpu", progress=False,
                        tile_output=True)  # fmt: skip
    prov = res.representations.uns["tario_clinical"]
    tiling = prov["parameters"]["tiling"]
    assert tiling["grid_um"] == 18.0 and tiling["head_grid_um"] == 18.0
    assert "every 18 um" in tiling["grid"]
    assert prov["head_fit"]["method"] == "hest" and prov["head_fit"]["grid_um"] == 18.0
    import anndata as ad

    sid = res.slides.obs_names[0]
    t = ad.read_h5ad(tmp_path / "o18" / "tiles" / f"{sid}.h5ad")
    steps = np.diff(np.unique(t.obsm["spatial_um"][:, 0]))
    assert np.allclose(steps[steps < 30], 18.0, atol=1.0)  # slide at 1 µm/px: whole pixels
    # the same grid as tile_grid(step_um=18) lays on that slide
    row = read_slide_manifest(slides).iloc[0]
    with open_slide(row.path) as s:
        g = tile_grid(s, tile_px=32, mpp=1.0, step_um=18.0, mask=detect_tissue(s))
    assert int(res.slides.obs.loc[row.slide_id, "n_tiles"]) == len(g)

    # a chosen 35 µm grid (gaps between these 32-µm tiles) and non-overlapping tiles
    r35 = encode_slides(slides, card, tmp_path / "o35", device="cpu", progress=False, grid_um=35)
    rt = encode_slides(slides, card, tmp_path / "ot", device="cpu", progress=False,
                       grid_um="tile")  # fmt: skip
    n18, n35, nt = (int(r.slides.obs["n_tiles"].sum()) for r in (res, r35, rt))
    assert n18 > nt > n35  # 18 µm < the 32-µm tile < 35 µm
    p35 = r35.representations.uns["tario_clinical"]["parameters"]["tiling"]
    assert p35["grid_um"] == 35.0 and p35["head_grid_um"] == 18.0
    assert "grid_um" not in rt.representations.uns["tario_clinical"]["parameters"]["tiling"]
    assert (
        r35.representations.uns["tario_clinical"]["parameters"]["run_id"]
        != (prov["parameters"]["run_id"])
    )
    with pytest.raises(EncoderError, match="grid_um=-1 is not allowed"):
        encode_slides(slides, card, tmp_path / "bad", device="cpu", progress=False, grid_um=-1)
    # the same run again resumes and gives the same numbers
    again = encode_slides(slides, card, tmp_path / "o18", device="cpu", progress=False,
                          tile_output=True)  # fmt: skip
    assert again.n_tiles == 0
    np.testing.assert_array_equal(again.representations.X, res.representations.X)
