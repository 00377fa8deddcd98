"""Benchmark of tario_clinical.expression_qc at TARIO-2 scale.

19,000 genes x 5,000 bins x 100 samples (defaults): per sample, a dense float32 prediction
(bins x genes) and a sparse measured count matrix (CSR, ``--density`` non-zeros) are generated,
compared with :func:`tario_clinical.expression_qc.compare_sample` (measured Moran's I, spatial
Pearson r, pseudo-bulk), and dropped before the next sample (streaming: one sample in memory).
The result is then summarised (gene ranking, top-k curves, bulk correlation across samples).

Prints one JSON line per measurement and a machine description; ``--out`` appends them to a file.
Target: compute under 60 s and peak RSS under 4 GiB on 2 cores. Generation time is reported
separately (it is the synthetic data's cost, not the library's).

    python benchmarks/bench_expression_qc.py --repeats 3 --out benchmarks/results/expression_qc.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import scipy
import scipy.sparse as sp


def machine() -> dict:
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "kind": "machine",
        "cpu": cpu,
        "cores": len(os.sched_getaffinity(0)),
        "ram_gib": round(ram, 1),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "pandas": pd.__version__,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "note": os.environ.get("BENCH_NOTE", ""),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def one_run(args: argparse.Namespace) -> dict:
    import anndata as ad

    from tario_clinical import expression_qc as eq
    from tario_clinical.expression_qc.binning import binned_anndata
    from tario_clinical.expression_qc.result import assemble_result

    nr, nc = args.grid
    n, g = nr * nc, args.genes
    rng = np.random.default_rng(np.random.SeedSequence(args.seed))
    genes = pd.Index([f"G{i:05d}" for i in range(g)], name="gene")
    grid = eq.PredictionGrid(origin_um=(0.0, 0.0), tile_um=112.0, shape=(nr, nc))
    centres = grid.centres_um()
    loadings = rng.standard_normal((8, g)).astype(np.float32)
    t0 = time.perf_counter()
    # generated once, reused by every sample (the comparison's cost does not depend on values):
    # a noise bank sliced per sample, a measured sparsity pattern (sorted random columns per
    # row, geometric gaps) whose rows are rolled per sample, and a standard-normal bank for counts
    bank = rng.standard_normal((n + 1024, g), dtype=np.float32)
    rr, cc = np.divmod(np.arange(n), nc)
    kmax = int(args.density * g + 6 * np.sqrt(args.density * g) + 16)
    gaps = rng.geometric(args.density, size=(n, kmax)).astype(np.int32)
    cols = np.cumsum(gaps, axis=1, dtype=np.int32) - 1
    keep = cols < g
    base_indices = cols[keep]
    base_counts = keep.sum(axis=1)
    base_indptr = np.concatenate([[0], np.cumsum(base_counts)]).astype(np.int64)
    del gaps, cols, keep
    zbank = rng.standard_normal(base_indices.size + 65536, dtype=np.float32)
    pbuf = np.empty((n, g), dtype=np.float32)  # prediction buffer, refilled per sample
    t_bank = time.perf_counter() - t0
    cancer = ["LUAD", "LUSC", "CRC", "PDAC"]

    def make(i: int) -> eq.SpatialSample:
        srng = np.random.default_rng(np.random.SeedSequence([args.seed, i]))
        phase = srng.uniform(0, 2 * np.pi, size=(8, 2))
        F = np.column_stack(
            [
                np.sin(rr / (3 + k) + phase[k, 0]) * np.cos(cc / (4 + k) + phase[k, 1])
                for k in range(8)
            ]
        ).astype(np.float32)
        np.matmul(F, loadings, out=pbuf)  # smooth signal, bins x genes
        off = int(srng.integers(0, 1024))
        # measured: the base pattern with its rows rolled by a random number of bins (sorted
        # columns per row kept); counts rise with the signal: 1 + normal approximation of
        # Poisson(exp(signal / 2)) from the bank at a random offset
        k = int(srng.integers(0, n))
        a = base_indptr[k]
        indices = np.concatenate([base_indices[a:], base_indices[:a]])
        counts = np.roll(base_counts, -k)
        indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        rows = np.repeat(np.arange(n, dtype=np.int64), counts)
        lam = np.exp(0.5 * np.take(pbuf.reshape(-1), rows * g + indices))
        zo = int(srng.integers(0, 65536))
        data = lam + np.sqrt(lam) * zbank[zo : zo + lam.size]
        data = 1.0 + np.maximum(np.rint(data), 0.0)
        M = sp.csr_matrix((data.astype(np.float32), indices, indptr), shape=(n, g))
        np.add(pbuf, bank[off : off + n], out=pbuf)  # prediction = signal + noise
        pred = ad.AnnData(X=pbuf, var=pd.DataFrame(index=genes))
        pred.obsm["spatial_um"] = centres
        meas = binned_anndata(
            M, np.arange(n), genes, grid, {"kind": "measured", "source": "benchmark"}
        )
        return eq.SpatialSample(f"S{i:03d}", pred, meas, cancer_type=cancer[i % len(cancer)])

    def cpu() -> float:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    load_start = os.getloadavg()[0]
    gen_times, comp_times, comp_cpu, comps = [], [], [], []
    for i in range(args.samples):
        t0 = time.perf_counter()
        s = make(i)
        t1, c1 = time.perf_counter(), cpu()
        comps.append(eq.compare_sample(s, n_jobs=args.jobs, morans_predicted=args.morans_predicted))
        t2 = time.perf_counter()
        comp_cpu.append(cpu() - c1)
        del s
        gen_times.append(t1 - t0)
        comp_times.append(t2 - t1)
    t0 = time.perf_counter()
    res = assemble_result(
        comps, {"kind": "rook", "bins": "both", "bulk": "log1p_cpm", "row_standardise": True}
    )
    summ = res.summary()
    res.bulk_correlation()
    t_summary = time.perf_counter() - t0
    return {
        "kind": "measurement",
        "name": "expression_qc.compare_sample x samples + summary",
        "samples": args.samples,
        "bins": n,
        "genes": g,
        "density": args.density,
        "n_jobs": args.jobs,
        "morans_predicted": args.morans_predicted,
        "compute_s": round(sum(comp_times) + t_summary, 2),
        "per_sample_compute_median_s": round(statistics.median(comp_times), 4),
        "summary_s": round(t_summary, 2),
        "compute_cpu_s": round(sum(comp_cpu), 2),
        "generation_s": round(sum(gen_times) + t_bank, 2),
        "peak_rss_gib": round(peak_rss_gib(), 3),
        "load_average_1m_at_start": round(load_start, 2),
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        "mean_spatial_r_all": round(float(summ.loc[0, "mean_spatial_r_all"]), 4),
    }


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--samples", type=int, default=100)
    p.add_argument("--genes", type=int, default=19_000)
    p.add_argument("--grid", type=int, nargs=2, default=(50, 100), help="bins = rows x cols")
    p.add_argument(
        "--density", type=float, default=0.1, help="fraction of non-zero measured bins x genes"
    )
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--morans-predicted", action="store_true")
    p.add_argument(
        "--repeats", type=int, default=1, help="runs, each in a fresh process (clean peak RSS)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="append JSON lines here")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(one_run(args)))
        return

    def emit(rec: dict) -> None:
        print(json.dumps(rec), flush=True)
        if args.out:
            with open(args.out, "a") as fh:
                fh.write(json.dumps(rec) + "\n")

    emit(machine())
    runs = []
    child = [sys.executable, __file__, "--child", *sys.argv[1:]]
    if "--out" in child:
        k = child.index("--out")
        del child[k : k + 2]
    for _ in range(args.repeats):
        out = subprocess.run(child, check=True, capture_output=True, text=True).stdout
        rec = json.loads(out.strip().splitlines()[-1])
        runs.append(rec)
        emit(rec)
    med = {
        "kind": "median",
        "runs": len(runs),
        "samples": args.samples,
        "bins": runs[0]["bins"],
        "genes": args.genes,
        "compute_s_median": statistics.median(r["compute_s"] for r in runs),
        "per_sample_compute_median_s": statistics.median(
            r["per_sample_compute_median_s"] for r in runs
        ),
        "generation_s_median": statistics.median(r["generation_s"] for r in runs),
        "peak_rss_gib_max": max(r["peak_rss_gib"] for r in runs),
        "target": {"compute_s": 60, "peak_rss_gib": 4, "cores": 2},
    }
    med["meets_target"] = bool(med["compute_s_median"] < 60 and med["peak_rss_gib_max"] < 4)
    emit(med)


if __name__ == "__main__":
    main()
