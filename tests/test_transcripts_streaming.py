"""Streaming transcript binning (tario_clinical.expression_qc.transcripts and the polars route of
bin_transcripts): same counts as the in-memory pandas route for every source, the simulator's true
counts through a file, bad input named by file / column / row, and the Xenium, CosMx and
SpatialData layouts.

``tests/data/spatialdata_points.zarr`` was written by spatialdata 0.7.3 (zarr format 3) in a
separate environment, so that the real on-disk layout is tested without the dependency::

    df = pd.DataFrame({"x": U(0, 100), "y": U(0, 80), "feature_name": Categorical(5 genes),
                       "qv": U(0, 40)})                       # 400 rows, seed 3, 2 partitions
    pts = PointsModel.parse(dd.from_pandas(df, npartitions=2), coordinates={"x": "x", "y": "y"},
                            feature_key="feature_name")
    SpatialData(points={"transcripts": pts}).write("spatialdata_points.zarr")
"""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tario_clinical import expression_qc as eq
from tario_clinical.errors import SchemaError
from tario_clinical.expression_qc.transcripts import open_transcripts
from tario_clinical.simulate.spatial import simulate_spatial_pairs

pl = pytest.importorskip("polars")

FIXTURE = Path(__file__).parent / "data" / "spatialdata_points.zarr"
GRID = eq.PredictionGrid(origin_um=(3.0, -7.0), tile_um=25.0, shape=(35, 42))
AFFINE = [[0.98, 0.05, 4.3], [-0.04, 1.01, -2.2]]


def _table(n: int = 20_000, seed: int = 0) -> pd.DataFrame:
    """Xenium-like rows: some outside the grid, missing coordinates, controls, low qv."""
    rng = np.random.default_rng(seed)
    names = np.array([f"G{i}" for i in range(30)] + ["NegControlProbe_1", "BLANK_0001"])
    df = pd.DataFrame(
        {
            "x_location": rng.uniform(-50, 1100, n),
            "y_location": rng.uniform(-50, 900, n),
            "feature_name": names[rng.integers(0, names.size, n)],
            "qv": rng.uniform(0, 40, n).round(1),
            "n": rng.integers(1, 4, n),
        }
    )
    df.loc[::97, "x_location"] = np.nan
    df.loc[::89, "qv"] = np.nan
    return df


def _tallies(binned) -> dict:
    return {k: v for k, v in binned.uns["expression_qc"].items() if k != "reader"}


def assert_same(got, ref) -> None:
    assert list(got.var_names) == list(ref.var_names)
    assert got.shape == ref.shape
    assert (got.X != ref.X).nnz == 0
    assert _tallies(got) == _tallies(ref)
    assert got.uns["expression_qc"]["reader"] == "polars-streaming"
    assert ref.uns["expression_qc"]["reader"] == "pandas"


def _write(df: pd.DataFrame, path: Path) -> Path:
    name = path.name
    if name.endswith(".parquet"):
        df.to_parquet(path, index=False)
    elif name.endswith((".tsv", ".tsv.gz")):
        df.to_csv(path, sep="\t", index=False)
    else:
        df.to_csv(path, index=False)
    return path


@pytest.mark.parametrize(
    "kind", ["polars", "lazy", "parquet", "csv", "csv.gz", "tsv.gz", "parquet-folder"]
)
@pytest.mark.parametrize(
    "options",
    [
        {"affine": AFFINE, "min_qv": 20},
        {"genes": ["G3", "G1", "NegControlProbe_1", "nope"], "count": "n"},
        {"exclude_controls": False},
    ],
    ids=["affine-qv", "genes-count", "controls-kept"],
)
def test_streaming_matches_in_memory(tmp_path, kind, options):
    df = _table()
    ref = eq.bin_transcripts(df, GRID, **options)
    if kind == "polars":
        src = pl.from_pandas(df)
    elif kind == "lazy":
        src = pl.from_pandas(df).lazy()
    elif kind == "parquet-folder":
        src = tmp_path / "parts"
        src.mkdir()
        for i, part in enumerate(np.array_split(np.arange(len(df)), 3)):
            df.iloc[part].to_parquet(src / f"part.{i}.parquet", index=False)
    else:
        src = _write(df, tmp_path / f"t.{kind}")
    got = eq.bin_transcripts(src, GRID, **options)
    assert_same(got, ref)
    info = got.uns["expression_qc"]
    assert info["n_binned"] > 0 and info["n_input"] == len(df)
    left_out = sum(v for k, v in info.items() if k.startswith("n_") and k not in ("n_input",))
    assert left_out == len(df)  # every row is binned or counted under one reason


@pytest.mark.parametrize("dense_genes", [5, 0])
def test_small_batches_and_the_sparse_accumulator(tmp_path, monkeypatch, dense_genes):
    """Many batches; the dense (gene x bin) array gives way to sparse counts after a few genes
    (or from the start), with merges after every batch: same counts and weights."""
    from tario_clinical.expression_qc import binning

    monkeypatch.setattr(binning, "BATCH_ROWS", 997)
    monkeypatch.setattr(binning, "DENSE_CELLS", dense_genes * (GRID.n_bins + 2))
    monkeypatch.setattr(binning, "SPARSE_MERGE_CELLS", 0)
    df = _table(30_000, seed=4).sort_values("feature_name", kind="stable")  # genes one by one
    path = _write(df, tmp_path / "t.parquet")
    for options in ({"affine": AFFINE, "min_qv": 20}, {"count": "n"}):
        assert_same(
            eq.bin_transcripts(path, GRID, **options), eq.bin_transcripts(df, GRID, **options)
        )


def test_streamed_file_recovers_the_simulated_counts(tmp_path):
    sim = simulate_spatial_pairs(1, n_genes=25, grid_shape=(20, 22), seed=11)
    s = sim.samples[0]
    grid = eq.PredictionGrid.from_tiles(s.predicted)
    path = _write(s.transcripts, tmp_path / "tx.csv.gz")
    binned = eq.bin_transcripts(path, grid, affine=s.affine, genes=sim.genes)
    b, inside = grid.locate(s.predicted.obsm["spatial_um"])
    assert inside.all()
    np.testing.assert_array_equal(binned.X[b].toarray(), s.counts.toarray())
    assert binned.uns["expression_qc"]["n_binned"] == len(s.transcripts)


def test_leave_out_reasons_counted_from_a_file(tmp_path):
    grid = eq.PredictionGrid(origin_um=(0.0, 0.0), tile_um=10.0, shape=(2, 3))
    tx = pd.DataFrame(
        {
            "x_location": [1.0, 15.0, 25.0, 35.0, 5.0, 5.0, 12.0, None],
            "y_location": [1.0, 2.0, 19.0, 5.0, -1.0, 3.0, 12.0, 1.0],
            "feature_name": ["A", "B", "A", "A", "B", "NegControlProbe_1", "C", "A"],
            "qv": [30, 30, 30, 30, 30, 30, 10, 30],
        }
    )
    out = eq.bin_transcripts(_write(tx, tmp_path / "t.csv"), grid, min_qv=20)
    info = out.uns["expression_qc"]
    assert info["n_input"] == 8 and info["n_binned"] == 3 and info["n_low_qv"] == 1
    assert info["n_outside_grid"] == 3 and info["n_control"] == 1 and info["n_other_gene"] == 0
    assert list(out.var_names) == ["A", "B", "C"]
    X = out.X.toarray()
    assert X[0, 0] == 1 and X[1, 1] == 1 and X[5, 0] == 1 and X.sum() == 3


# -- bad input ---------------------------------------------------------------------------------


def test_missing_column_names_the_file(tmp_path):
    path = _write(_table(50).drop(columns="feature_name"), tmp_path / "t.parquet")
    with pytest.raises(SchemaError, match=r"t\.parquet: transcript table has no gene column"):
        eq.bin_transcripts(path, GRID)
    with pytest.raises(SchemaError, match=r"t\.parquet: .*no x column 'xx'"):
        eq.bin_transcripts(path, GRID, x="xx")
    with pytest.raises(SchemaError, match=r"t\.parquet: min_qv=5 given .* no 'qv'"):
        eq.bin_transcripts(_write(_table(50).drop(columns="qv"), path), GRID, gene="n", min_qv=5)


@pytest.mark.parametrize("suffix", ["csv", "csv.gz", "parquet"])
def test_non_numeric_coordinate_names_file_column_row_value(tmp_path, suffix):
    df = _table(5000)
    df["y_location"] = df["y_location"].astype(str)  # a text column (Parquet too)
    df.loc[3210, "y_location"] = "12,5um"  # 0-based 3210 = data row 3211
    path = _write(df, tmp_path / f"bad.{suffix}")
    with pytest.raises(SchemaError) as err:
        eq.bin_transcripts(path, GRID)
    msg = str(err.value)
    assert f"bad.{suffix}" in msg and "'y_location'" in msg and "row 3211" in msg
    assert "'12,5um' is not a number" in msg
    with pytest.raises(SchemaError, match=r"column 'y_location' row 3211: value '12,5um'"):
        eq.bin_transcripts(df, GRID)  # the in-memory route says the same


def test_non_numeric_qv_and_missing_gene(tmp_path):
    df = _table(300).astype({"qv": object})
    df.loc[7, "qv"] = "high"
    with pytest.raises(SchemaError, match=r"bad\.csv: column 'qv' row 8: value 'high'"):
        eq.bin_transcripts(_write(df, tmp_path / "bad.csv"), GRID, min_qv=20)
    df = _table(300)
    df.loc[[41, 90], "feature_name"] = None
    for src in (_write(df, tmp_path / "gene.parquet"), df):
        with pytest.raises(
            SchemaError, match=r"column 'feature_name' row 42: gene name is missing"
        ):
            eq.bin_transcripts(src, GRID)


def test_unreadable_sources_are_named(tmp_path):
    with pytest.raises(SchemaError, match="not found"):
        eq.bin_transcripts(tmp_path / "nope.parquet", GRID)
    (tmp_path / "t.xlsx").write_bytes(b"x")
    with pytest.raises(SchemaError, match=r"t\.xlsx: unknown transcript table format"):
        eq.bin_transcripts(tmp_path / "t.xlsx", GRID)
    (tmp_path / "empty").mkdir()
    with pytest.raises(SchemaError, match="no transcript table found; looked for"):
        eq.bin_transcripts(tmp_path / "empty", GRID)
    (tmp_path / "broken.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(SchemaError, match=r"broken\.parquet: cannot read"):
        eq.bin_transcripts(tmp_path / "broken.parquet", GRID)
    with pytest.raises(SchemaError, match="got int"):
        eq.bin_transcripts(3, GRID)


# -- layouts -----------------------------------------------------------------------------------


def test_xenium_folder_parquet_with_byte_gene_names(tmp_path):
    df = _table(3000)
    xen = tmp_path / "output-XETG00001"
    xen.mkdir()
    tab = pa.Table.from_pandas(df, preserve_index=False)
    names = pa.array([s.encode() for s in df["feature_name"]], type=pa.binary())
    tab = tab.set_column(tab.schema.get_field_index("feature_name"), "feature_name", names)
    pq.write_table(tab, xen / "transcripts.parquet")
    (xen / "transcripts.csv.gz").write_bytes(b"ignored: the parquet file is read first")
    table = open_transcripts(xen)
    assert table.layout == "xenium" and table.label.endswith("transcripts.parquet")
    assert_same(eq.bin_transcripts(xen, GRID, min_qv=20), eq.bin_transcripts(df, GRID, min_qv=20))


def test_xenium_folder_csv_gz(tmp_path):
    df = _table(2000)
    (tmp_path / "xen").mkdir()
    with gzip.open(tmp_path / "xen" / "transcripts.csv.gz", "wt") as f:
        df.to_csv(f, index=False)
    assert_same(eq.bin_transcripts(tmp_path / "xen", GRID), eq.bin_transcripts(df, GRID))


def test_cosmx_folder_in_pixels(tmp_path):
    rng = np.random.default_rng(5)
    n = 4000
    px = pd.DataFrame(
        {
            "fov": 1,
            "cell_ID": rng.integers(0, 50, n),
            "x_global_px": rng.uniform(0, 9000, n),
            "y_global_px": rng.uniform(0, 7000, n),
            "target": np.array(["CD3E", "KRT19", "NegPrb3", "MS4A1"])[rng.integers(0, 4, n)],
        }
    )
    folder = tmp_path / "cosmx"
    folder.mkdir()
    _write(px, folder / "Run5_S1_tx_file.csv.gz")
    with pytest.raises(SchemaError, match=r"tx_file\.csv\.gz: .*no x column.*in pixels"):
        eq.bin_transcripts(folder, GRID)
    scale = [[0.12028, 0, 0], [0, 0.12028, 0]]
    opts = {"x": "x_global_px", "y": "y_global_px", "affine": scale}
    got = eq.bin_transcripts(folder, GRID, **opts)
    assert_same(got, eq.bin_transcripts(px, GRID, **opts))
    assert got.uns["expression_qc"]["n_control"] > 0 and "NegPrb3" not in got.var_names
    _write(px, folder / "Run5_S2_tx_file.csv")
    with pytest.raises(SchemaError, match="2 CosMx transcript files"):
        eq.bin_transcripts(folder, GRID)


def test_spatialdata_store_written_by_spatialdata():
    grid = eq.PredictionGrid(origin_um=(0.0, 0.0), tile_um=10.0, shape=(8, 10))
    parts = FIXTURE / "points" / "transcripts" / "points.parquet"
    ref = eq.bin_transcripts(pd.read_parquet(parts), grid, min_qv=20)
    table = open_transcripts(FIXTURE)
    assert table.layout == "spatialdata" and table.gene_column == "feature_name"
    got = eq.bin_transcripts(FIXTURE, grid, min_qv=20)
    assert_same(got, ref)
    assert got.uns["expression_qc"]["n_binned"] > 100
    assert list(got.var_names) == ["ACTB", "EPCAM", "KRT8", "PTPRC"]  # control dropped
    assert_same(eq.bin_transcripts(parts, grid, min_qv=20), ref)  # the element's parts alone


def test_spatialdata_store_with_several_points_elements(tmp_path):
    store = tmp_path / "s.zarr"
    shutil.copytree(FIXTURE, store)
    shutil.copytree(store / "points" / "transcripts", store / "points" / "other")
    zattrs = store / "points" / "other" / "zarr.json"
    meta = json.loads(zattrs.read_text())
    meta["attributes"]["spatialdata_attrs"]["feature_key"] = "nope"
    zattrs.write_text(json.dumps(meta))
    with pytest.raises(SchemaError, match=r"2 points elements \['other', 'transcripts'\]"):
        eq.bin_transcripts(store, GRID)
    with pytest.raises(SchemaError, match="no points element 'cells'"):
        eq.bin_transcripts(store, GRID, points="cells")
    assert open_transcripts(store, points="other").gene_column == "nope"
    assert eq.bin_transcripts(store, GRID, points="transcripts").n_vars == 4


class _Partitioned:
    """The part of a dask DataFrame that the reader uses (dask is not a test dependency)."""

    def __init__(self, df: pd.DataFrame, n: int, feature_key: str):
        self._parts = [df.iloc[i] for i in np.array_split(np.arange(len(df)), n)]
        self.npartitions = n
        self.columns = df.columns
        self.attrs = {"spatialdata_attrs": {"feature_key": feature_key}}
        self.computed: list[int] = []

    def get_partition(self, i):
        parent = self

        class _Lazy:
            def __getitem__(self, cols):
                class _Sel:
                    def compute(self_inner):
                        parent.computed.append(i)
                        return parent._parts[i][cols]

                return _Sel()

        return _Lazy()


class _SpatialDataLike:
    def __init__(self, points, path=None):
        self.points = points
        self.path = path


def test_spatialdata_objects_in_memory_and_backed():
    grid = eq.PredictionGrid(origin_um=(0.0, 0.0), tile_um=10.0, shape=(8, 10))
    df = pd.read_parquet(FIXTURE / "points" / "transcripts" / "points.parquet")
    df = df.rename(columns={"feature_name": "target_name"})
    ref = eq.bin_transcripts(df, grid, gene="target_name")
    ddf = _Partitioned(df, 3, "target_name")
    got = eq.bin_transcripts(_SpatialDataLike({"transcripts": ddf}), grid)
    assert_same(got, ref)
    assert ddf.computed == [0, 1, 2]  # one partition at a time
    bad = df.astype({"x": object})
    bad.loc[bad.index[250], "x"] = "?"
    with pytest.raises(SchemaError, match=r"in memory\): column 'x' row 251: value '\?'"):
        eq.bin_transcripts(_SpatialDataLike({"t": _Partitioned(bad, 3, "target_name")}), grid)
    backed = _SpatialDataLike({"transcripts": None}, path=FIXTURE)
    assert eq.bin_transcripts(backed, grid).uns["expression_qc"]["n_input"] == len(df)


def test_sample_with_a_file_as_measured(tmp_path):
    sim = simulate_spatial_pairs(1, n_genes=12, grid_shape=(10, 12), seed=2)
    s = sim.samples[0]
    path = _write(s.transcripts, tmp_path / "tx.parquet")
    sample = eq.SpatialSample("s0", s.predicted, path, affine=s.affine)
    _, meas = sample.binned()
    ref = eq.SpatialSample("s0", s.predicted, s.transcripts, affine=s.affine).binned()[1]
    assert_same(meas, ref)


def test_import_does_not_load_polars():
    code = "import sys, tario_clinical, tario_clinical.expression_qc;print('polars' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "False"


def test_study_sample_table_streams_a_xenium_folder(tmp_path):
    from tario_clinical.pipeline.spatial import iter_spatial_samples, read_spatial_samples

    sim = simulate_spatial_pairs(1, n_genes=10, grid_shape=(9, 11), seed=6)
    s = sim.samples[0]
    s.predicted.write_h5ad(tmp_path / "pred.h5ad")
    (tmp_path / "xenium").mkdir()
    _write(s.transcripts, tmp_path / "xenium" / "transcripts.parquet")
    a = np.asarray(s.affine, dtype=float)[:2].ravel()
    pd.DataFrame(
        {
            "sample_id": ["s0"],
            "predicted": ["pred.h5ad"],
            "measured": ["xenium"],
            "affine": [" ".join(repr(float(v)) for v in a)],  # exact round trip
        }
    ).to_csv(tmp_path / "spatial.csv", index=False)
    (sample,) = iter_spatial_samples(read_spatial_samples(tmp_path / "spatial.csv"))
    assert isinstance(sample.measured, Path)  # handed on as a path, not read into memory
    meas = sample.binned()[1]
    ref = eq.SpatialSample("s0", s.predicted, s.transcripts, affine=s.affine).binned()[1]
    assert_same(meas, ref)
