"""Benchmark: streaming a CosMx/Xenium-sized transcript table onto a prediction grid.

Writes synthetic transcript tables (Xenium columns ``x_location, y_location, feature_name, qv``)
in chunks under ``--workdir`` (default a new folder in /tmp, removed afterwards unless
``--keep``), then bins each with :func:`tario_clinical.expression_qc.bin_transcripts` in a fresh
subprocess (so its peak RSS is its own) with ``POLARS_MAX_THREADS`` set to ``--threads``:

1. **Same counts** — a small table (``--small-rows``, Parquet and CSV) binned by the streaming
   path and by the in-memory pandas path (the table read whole with pandas); counts and the
   read/left-out tallies must be identical.
2. **Real scale** — ``--rows`` transcripts (default 2 × 10⁸) as Parquet and as CSV
   (``--formats``; ``csv.gz`` too if asked), each binned once: wall time, peak RSS, rows/s.

Prints one JSON line per measurement and writes them all, with the machine description, to
``--out`` (default ``benchmarks/results/transcripts_streaming.json``).

Usage::

    POLARS_MAX_THREADS=2 nohup python3 benchmarks/bench_transcripts.py > /tmp/bench_tx.log 2>&1 &
    python3 benchmarks/bench_transcripts.py --rows 2000000 --out /tmp/tx.json   # quick run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RSS_TARGET_GIB = 4.0
CHUNK = 5_000_000


def machine() -> dict:
    """CPU model, cores this process may use, memory, library versions."""
    import polars as pl
    import pyarrow as pa

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    try:
        cgroup_cpus = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        quota = None if cgroup_cpus[0] == "max" else int(cgroup_cpus[0]) / int(cgroup_cpus[1])
    except (OSError, ValueError, IndexError):
        quota = None
    return {
        "cpu": cpu,
        "cores_usable": len(os.sched_getaffinity(0)),
        "cgroup_cpu_quota": quota,
        "mem_total_gib": mem,
        "os": platform.platform(),
        "python": platform.python_version(),
        "polars": pl.__version__,
        "pyarrow": pa.__version__,
        "numpy": np.__version__,
        "note": "shared machine: other jobs ran at the same time, so wall times are upper bounds",
    }


def gene_names(n_genes: int) -> np.ndarray:
    """Panel genes plus Xenium-style controls (dropped as controls by the binner)."""
    ctrl = ["NegControlProbe_0001", "NegControlCodeword_0002", "UnassignedCodeword_0003"]
    return np.array([f"GENE{i:05d}" for i in range(n_genes)] + ctrl)


def chunks(n_rows: int, n_genes: int, extent_um: tuple[float, float], seed: int):
    """Chunks of a synthetic table as pyarrow tables (Zipf-like gene frequencies, 3 % of points
    outside the grid, qv uniform 0-40 as float32, coordinates float32 like Xenium's)."""
    import pyarrow as pa

    names = gene_names(n_genes)
    p = 1.0 / np.arange(1, names.size + 1) ** 0.8
    p /= p.sum()
    ss = np.random.SeedSequence(seed)
    for i, child in enumerate(ss.spawn((n_rows + CHUNK - 1) // CHUNK)):
        m = min(CHUNK, n_rows - i * CHUNK)
        rng = np.random.default_rng(child)
        w, h = extent_um
        x = rng.uniform(-0.015 * w, 1.015 * w, m).astype(np.float32)
        y = rng.uniform(-0.015 * h, 1.015 * h, m).astype(np.float32)
        g = rng.choice(names.size, size=m, p=p).astype(np.int32)
        qv = rng.uniform(0, 40, m).astype(np.float32)
        yield pa.table(
            {
                "x_location": np.round(x, 2),
                "y_location": np.round(y, 2),
                "feature_name": pa.DictionaryArray.from_arrays(g, pa.array(names)),
                "qv": np.round(qv, 1),
            }
        )


def write_table(path: Path, n_rows: int, n_genes: int, extent_um, seed: int) -> float:
    """Write the synthetic table chunk by chunk; seconds taken."""
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    t0 = time.perf_counter()
    writer = None
    sink = None
    try:
        for tab in chunks(n_rows, n_genes, extent_um, seed):
            if path.name.endswith(".parquet"):
                if writer is None:
                    writer = pq.ParquetWriter(path, tab.schema, compression="zstd")
                writer.write_table(tab, row_group_size=1_000_000)
            else:
                tab = tab.set_column(2, "feature_name", tab["feature_name"].cast(pa.string()))
                if writer is None:
                    if path.name.endswith(".gz"):
                        sink = pa.CompressedOutputStream(str(path), "gzip")
                    writer = pcsv.CSVWriter(sink or str(path), tab.schema)
                writer.write_table(tab)
    finally:
        if writer is not None:
            writer.close()
        if sink is not None:
            sink.close()
    return time.perf_counter() - t0


def grid_for(extent_um, tile_um):
    from tario_clinical.expression_qc import PredictionGrid

    shape = (int(np.ceil(extent_um[1] / tile_um)), int(np.ceil(extent_um[0] / tile_um)))
    return PredictionGrid(origin_um=(0.0, 0.0), tile_um=tile_um, shape=shape)


def measure(path: str, extent_um, tile_um: float, min_qv: float, in_memory: bool) -> dict:
    """Bin one table in this process; wall time, peak RSS and the tallies (child side)."""
    from tario_clinical.expression_qc import bin_transcripts

    grid = grid_for(extent_um, tile_um)
    t0 = time.perf_counter()
    if in_memory:
        import pandas as pd

        src = pd.read_parquet(path) if path.endswith(".parquet") else pd.read_csv(path)
    else:
        src = path
    out = bin_transcripts(src, grid, min_qv=min_qv)
    wall = time.perf_counter() - t0
    info = {k: v for k, v in out.uns["expression_qc"].items() if k != "grid"}
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    res = {
        "file": path,
        "format": Path(path).name.split(".", 1)[1],
        "file_gib": round(os.path.getsize(path) / 2**30, 3),
        "path": "in-memory (pandas)" if in_memory else "streaming (polars)",
        "rows": info["n_input"],
        "wall_s": round(wall, 2),
        "rows_per_s": round(info["n_input"] / wall),
        "peak_rss_gib": round(rss / 2**30, 3),
        "grid_shape": list(grid.shape),
        "n_genes_out": int(out.n_vars),
        "nonzero_bin_gene_pairs": int(out.X.nnz),
        "tallies": info,
        "polars_max_threads": os.environ.get("POLARS_MAX_THREADS"),
    }
    if os.environ.get("TX_BENCH_DUMP"):
        import scipy.sparse as sp

        sp.save_npz(os.environ["TX_BENCH_DUMP"], out.X.tocsr())
        Path(os.environ["TX_BENCH_DUMP"] + ".genes.json").write_text(
            json.dumps(list(out.var_names))
        )
    return res


def run_child(args, path: Path, in_memory: bool, dump: Path | None = None) -> dict:
    env = dict(os.environ, POLARS_MAX_THREADS=str(args.threads))
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    if dump is not None:
        env["TX_BENCH_DUMP"] = str(dump)
    cmd = [
        sys.executable,
        __file__,
        "--child",
        str(path),
        "--extent-um",
        *map(str, args.extent_um),
        "--tile-um",
        str(args.tile_um),
        "--min-qv",
        str(args.min_qv),
    ] + (["--in-memory"] if in_memory else [])
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"child failed on {path}:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def same_counts(args, work: Path) -> dict:
    import scipy.sparse as sp

    out = {"check": "same counts, streaming vs in-memory", "rows": args.small_rows}
    for fmt in ("parquet", "csv"):
        f = work / f"small.{fmt}"
        write_table(f, args.small_rows, args.genes, args.extent_um, seed=1)
        a, b = work / f"s_{fmt}.npz", work / f"m_{fmt}.npz"
        rs = run_child(args, f, in_memory=False, dump=a)
        rm = run_child(args, f, in_memory=True, dump=b)
        xa, xb = sp.load_npz(a), sp.load_npz(b)
        ga, gb = (json.loads(Path(str(p) + ".genes.json").read_text()) for p in (a, b))
        ta = {k: v for k, v in rs["tallies"].items() if k != "reader"}
        tb = {k: v for k, v in rm["tallies"].items() if k != "reader"}
        equal = ga == gb and xa.shape == xb.shape and (xa != xb).nnz == 0 and ta == tb
        out[fmt] = {
            "identical": bool(equal),
            "nonzero_pairs": int(xa.nnz),
            "total_count": float(xa.sum()),
            "tallies": ta,
            "streaming_peak_rss_gib": rs["peak_rss_gib"],
            "in_memory_peak_rss_gib": rm["peak_rss_gib"],
        }
        f.unlink()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=200_000_000)
    ap.add_argument("--small-rows", type=int, default=2_000_000)
    ap.add_argument("--genes", type=int, default=480)
    ap.add_argument("--extent-um", type=float, nargs=2, default=(11200.0, 11200.0))
    ap.add_argument("--tile-um", type=float, default=112.0)
    ap.add_argument("--min-qv", type=float, default=20.0)
    ap.add_argument("--formats", default="parquet,csv")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/transcripts_streaming.json"))
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--in-memory", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        res = measure(args.child, args.extent_um, args.tile_um, args.min_qv, args.in_memory)
        print(json.dumps(res))
        return
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_tx_", dir="/tmp"))
    work.mkdir(parents=True, exist_ok=True)
    results = {
        "benchmark": "transcripts_streaming",
        "command": "POLARS_MAX_THREADS=2 python3 benchmarks/bench_transcripts.py "
        + " ".join(sys.argv[1:]),
        "machine": machine(),
        "settings": {
            "rows": args.rows,
            "genes": args.genes,
            "extent_um": list(args.extent_um),
            "tile_um": args.tile_um,
            "min_qv": args.min_qv,
            "threads": args.threads,
            "rss_target_gib": RSS_TARGET_GIB,
        },
        "measurements": [],
    }
    try:
        check = same_counts(args, work)
        print(json.dumps(check), flush=True)
        results["same_counts"] = check
        for fmt in args.formats.split(","):
            f = work / f"transcripts.{fmt}"
            gen_s = write_table(f, args.rows, args.genes, args.extent_um, seed=0)
            print(json.dumps({"wrote": str(f), "seconds": round(gen_s, 1)}), flush=True)
            res = run_child(args, f, in_memory=False)
            res["within_rss_target"] = res["peak_rss_gib"] <= RSS_TARGET_GIB
            res["write_s"] = round(gen_s, 1)
            print(json.dumps(res), flush=True)
            results["measurements"].append(res)
            if not args.keep:
                f.unlink()
            Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
