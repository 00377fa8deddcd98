"""Predicted vs measured expression over samples: :func:`evaluate_expression` and its
:class:`ExpressionQCResult` (gene ranking by measured Moran's I, spatial and bulk correlation
curves over the top-k genes, per cancer type)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import AnalysisError, SchemaError
from .compare import METRICS, SampleComparison, compare_sample
from .options import (
    ADJACENCY_KINDS,
    BIN_SELECTIONS,
    BULK_TRANSFORMS,
    AdjacencyKind,
    BinSelection,
    BulkTransform,
    check_choice,
)
from .sample import SpatialSample, as_spatial_sample

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

__all__ = ["ALL", "ExpressionQCResult", "evaluate_expression", "assemble_result"]

#: name of the group of all samples (beside one group per cancer type)
ALL = "all"


def _nanmean0(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    fin = np.isfinite(a)
    cnt = fin.sum(axis=0)
    s = np.where(fin, a, 0.0).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return s / cnt, cnt


def _columnwise_pearson(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pearson r per column over rows where both are finite, and the row count."""
    ok = np.isfinite(a) & np.isfinite(b)
    n = ok.sum(axis=0)
    a0, b0 = np.where(ok, a, 0.0), np.where(ok, b, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ma, mb = a0.sum(axis=0) / n, b0.sum(axis=0) / n
        da, db = np.where(ok, a - ma, 0.0), np.where(ok, b - mb, 0.0)
        saa, sbb = (da * da).sum(axis=0), (db * db).sum(axis=0)
        r = (da * db).sum(axis=0) / np.sqrt(saa * sbb)
    const = (saa <= 1e-24 * np.maximum((a0 * a0).sum(axis=0), 1e-300)) | (
        sbb <= 1e-24 * np.maximum((b0 * b0).sum(axis=0), 1e-300)
    )
    r[const | (n < 2)] = np.nan
    return np.clip(r, -1.0, 1.0), n


@dataclass(frozen=True, eq=False)
class ExpressionQCResult:
    """Predicted vs measured expression over samples (arrays are samples × genes).

    Attributes
    ----------
    samples
        One row per sample: ``sample_id, cancer_type, n_bins, n_bins_predicted,
        n_bins_measured, n_genes_dropped``.
    genes
        Gene symbols (columns of the arrays).
    morans_i_measured, morans_i_predicted, spatial_r, bulk_predicted, bulk_measured
        Per-sample, per-gene values (NaN where a gene is absent or constant in a sample).
    parameters
        The options used (adjacency kind, bin selection, bulk transform, row standardisation).
    """

    samples: pd.DataFrame
    genes: pd.Index
    morans_i_measured: np.ndarray
    morans_i_predicted: np.ndarray
    spatial_r: np.ndarray
    bulk_predicted: np.ndarray
    bulk_measured: np.ndarray
    parameters: dict[str, Any] = field(default_factory=dict)

    # -- groups ------------------------------------------------------------------------------
    def groups(self) -> dict[str, np.ndarray]:
        """Cancer type → sample positions; ``"all"`` first, then each type (sorted)."""
        ct = self.samples["cancer_type"].astype("string").fillna("unknown").to_numpy()
        out = {ALL: np.arange(len(ct))}
        for t in sorted(set(ct)):
            if t != ALL:
                out[str(t)] = np.flatnonzero(ct == t)
        if len(out) == 2:  # a single type: its group equals "all"
            out.pop(next(k for k in out if k != ALL))
        return out

    # -- tables ------------------------------------------------------------------------------
    def gene_ranking(self) -> pd.DataFrame:
        """Genes ranked by mean measured Moran's I, per cancer type (and over all samples).

        Columns ``cancer_type, rank, gene, mean_morans_i, n_samples, mean_spatial_r,
        n_samples_r``. ``rank`` is 1 for the most spatially structured gene; genes with no finite
        Moran's I in the group (constant everywhere) get ``rank`` <NA> and sort last.
        """
        frames = []
        for name, idx in self.groups().items():
            mi, nmi = _nanmean0(self.morans_i_measured[idx])
            sr, nsr = _nanmean0(self.spatial_r[idx])
            key = np.where(np.isfinite(mi), -mi, np.inf)
            order = np.argsort(key, kind="stable")
            rank = pd.array(np.arange(1, len(order) + 1), dtype="Int64")
            rank[~np.isfinite(mi[order])] = pd.NA
            frames.append(
                pd.DataFrame(
                    {
                        "cancer_type": name,
                        "rank": rank,
                        "gene": self.genes[order],
                        "mean_morans_i": mi[order],
                        "n_samples": nmi[order],
                        "mean_spatial_r": sr[order],
                        "n_samples_r": nsr[order],
                    }
                )
            )
        return pd.concat(frames, ignore_index=True)

    def spatial_curve(self) -> pd.DataFrame:
        """Mean spatial correlation over the top-k genes by Moran's I, k = 1 … all, per group.

        Columns ``cancer_type, k, gene, mean_morans_i, spatial_r`` (r of the k-th gene averaged
        over the group's samples) ``, mean_spatial_r`` (the curve: mean over the k top genes of
        those with a finite r). Only ranked genes appear.
        """
        return self._curve(self.gene_ranking(), "mean_spatial_r", "spatial_r")

    def bulk_correlation(self) -> pd.DataFrame:
        """Correlation across samples of predicted vs measured pseudo-bulk, per gene and group.

        Columns ``cancer_type, gene, rank`` (Moran's I rank in the group) ``, estimate, low,
        high, p_value, n_samples``: Pearson r over the group's samples, a 95 % Fisher-z
        interval and the two-sided t-test p-value (NaN with fewer than 3 samples).
        """
        ranking = self.gene_ranking()
        frames = []
        for name, idx in self.groups().items():
            r, n = _columnwise_pearson(self.bulk_predicted[idx], self.bulk_measured[idx])
            nf = n.astype(float)
            with np.errstate(invalid="ignore", divide="ignore"):
                z = np.arctanh(np.clip(r, -1 + 1e-15, 1 - 1e-15))
                se = 1.0 / np.sqrt(nf - 3)
                low, high = np.tanh(z - 1.959963984540054 * se), np.tanh(z + 1.959963984540054 * se)
                t = r * np.sqrt((nf - 2) / np.maximum(1 - r * r, 1e-300))
                p = 2 * stats.t.sf(np.abs(t), nf - 2)
            bad = n < 3
            r[bad] = low[bad] = high[bad] = p[bad] = np.nan
            rk = ranking[ranking["cancer_type"] == name].set_index("gene")["rank"]
            frames.append(
                pd.DataFrame(
                    {
                        "cancer_type": name,
                        "gene": self.genes,
                        "rank": rk.reindex(self.genes).to_numpy(),
                        "estimate": r,
                        "low": low,
                        "high": high,
                        "p_value": p,
                        "n_samples": n,
                    }
                ).sort_values("rank", kind="stable", na_position="last")
            )
        return pd.concat(frames, ignore_index=True)

    def bulk_curve(self) -> pd.DataFrame:
        """Mean bulk correlation over the top-k genes by Moran's I, per group.

        Columns ``cancer_type, k, gene, mean_morans_i, bulk_r, mean_bulk_r``.
        """
        ranking = self.gene_ranking()
        bc = self.bulk_correlation()[["cancer_type", "gene", "estimate"]]
        merged = ranking.merge(bc, on=["cancer_type", "gene"], how="left", sort=False)
        return self._curve(
            merged.rename(columns={"estimate": "bulk_r"}), "bulk_r", "bulk_r", "mean_bulk_r"
        )

    @staticmethod
    def _curve(
        ranking: pd.DataFrame, value: str, value_name: str, curve_name: str = "mean_spatial_r"
    ) -> pd.DataFrame:
        frames = []
        for name, df in ranking.groupby("cancer_type", sort=False):
            df = df[df["rank"].notna()]
            v = df[value].to_numpy(dtype=np.float64)
            fin = np.isfinite(v)
            with np.errstate(invalid="ignore", divide="ignore"):
                curve = np.cumsum(np.where(fin, v, 0.0)) / np.cumsum(fin)
            frames.append(
                pd.DataFrame(
                    {
                        "cancer_type": name,
                        "k": np.arange(1, len(df) + 1),
                        "gene": df["gene"].to_numpy(),
                        "mean_morans_i": df["mean_morans_i"].to_numpy(),
                        value_name: v,
                        curve_name: curve,
                    }
                )
            )
        cols = ["cancer_type", "k", "gene", "mean_morans_i", value_name, curve_name]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)

    def table(self) -> pd.DataFrame:
        """Tidy per sample × gene table.

        Columns ``sample_id, cancer_type, gene, morans_i_measured, morans_i_predicted,
        spatial_r, bulk_predicted, bulk_measured``.
        """
        s, g = self.spatial_r.shape
        out = pd.DataFrame(
            {
                "sample_id": np.repeat(self.samples["sample_id"].to_numpy(), g),
                "cancer_type": np.repeat(self.samples["cancer_type"].to_numpy(), g),
                "gene": np.tile(self.genes.to_numpy(), s),
            }
        )
        for m in METRICS:
            out[m] = getattr(self, m).ravel()
        return out

    def summary(self, *, top: Sequence[int] = (10, 100)) -> pd.DataFrame:
        """One row per group: sample/gene counts and curve values at the given top-k.

        Columns ``cancer_type, n_samples, n_genes, n_genes_ranked, n_genes_unranked,
        mean_spatial_r_all, mean_spatial_r_top{k}…, mean_bulk_r_all, mean_bulk_r_top{k}…``
        (top-k capped at the number of ranked genes).
        """
        sc, bc = self.spatial_curve(), self.bulk_curve()
        groups = self.groups()
        rows = []
        for name, idx in groups.items():
            s = sc[sc["cancer_type"] == name]
            b = bc[bc["cancer_type"] == name]
            nr = len(s)
            row: dict[str, Any] = {
                "cancer_type": name,
                "n_samples": int(len(idx)),
                "n_genes": int(len(self.genes)),
                "n_genes_ranked": int(nr),
                "n_genes_unranked": int(len(self.genes) - nr),
                "mean_spatial_r_all": float(s["mean_spatial_r"].iloc[-1]) if nr else np.nan,
            }
            for k in top:
                row[f"mean_spatial_r_top{k}"] = (
                    float(s["mean_spatial_r"].iloc[min(k, nr) - 1]) if nr else np.nan
                )
            row["mean_bulk_r_all"] = float(b["mean_bulk_r"].iloc[-1]) if nr else np.nan
            for k in top:
                row[f"mean_bulk_r_top{k}"] = (
                    float(b["mean_bulk_r"].iloc[min(k, nr) - 1]) if nr else np.nan
                )
            rows.append(row)
        return pd.DataFrame(rows)

    # -- plots -------------------------------------------------------------------------------
    def plot_spatial_curve(self, *, ax: Axes | None = None) -> Axes:
        """See :func:`~.plots.plot_spatial_correlation_curve`."""
        from .plots import plot_spatial_correlation_curve

        return plot_spatial_correlation_curve(self, ax=ax)

    def plot_bulk_curve(self, *, ax: Axes | None = None) -> Axes:
        """See :func:`~.plots.plot_bulk_correlation_curve`."""
        from .plots import plot_bulk_correlation_curve

        return plot_bulk_correlation_curve(self, ax=ax)

    def _repr_html_(self) -> str:
        import html

        summ = self.summary()
        head = (
            f"<p><b>Predicted vs measured expression</b>: {len(self.samples)} samples, "
            f"{len(self.genes)} genes; adjacency {html.escape(str(self.parameters.get('kind')))}, "
            f"bins {html.escape(str(self.parameters.get('bins')))}</p>"
        )
        return head + summ.to_html(index=False, float_format=lambda v: f"{v:.3f}", escape=True)


def evaluate_expression(
    samples: Iterable[SpatialSample],
    *,
    kind: AdjacencyKind = "rook",
    bins: BinSelection = "both",
    bulk: BulkTransform = "log1p_cpm",
    morans_predicted: bool = False,
    n_jobs: int = 1,
) -> ExpressionQCResult:
    """Compare predicted with measured expression over samples (TARIO-2 accuracy metrics).

    Samples are consumed one at a time (a generator keeps only one sample in memory).

    Parameters
    ----------
    samples
        :class:`SpatialSample` items (or objects with their attributes, see
        :func:`~.sample.as_spatial_sample`) with distinct ``sample_id``.
    kind, bins, bulk, morans_predicted, n_jobs
        See :func:`~.compare.compare_sample`.

    Returns
    -------
    ExpressionQCResult

    Raises
    ------
    SchemaError
        On duplicated sample ids or items without ``sample_id``, ``predicted`` and
        ``measured``.
    AnalysisError
        If no sample is given.
    """
    check_choice("kind", kind, ADJACENCY_KINDS)
    check_choice("bins", bins, BIN_SELECTIONS)
    check_choice("bulk", bulk, BULK_TRANSFORMS)
    comps: list[SampleComparison] = []
    seen: set[str] = set()
    for raw in samples:
        item = as_spatial_sample(raw)
        if str(item.sample_id) in seen:
            raise SchemaError(f"sample_id {item.sample_id!r} appears more than once")
        seen.add(str(item.sample_id))
        comps.append(
            compare_sample(
                item,
                kind=kind,
                bins=bins,
                bulk=bulk,
                morans_predicted=morans_predicted,
                n_jobs=n_jobs,
            )
        )
    if not comps:
        raise AnalysisError("evaluate_expression needs at least one sample")
    return assemble_result(
        comps, {"kind": kind, "bins": bins, "bulk": bulk, "row_standardise": True}
    )


def assemble_result(
    comps: list[SampleComparison], parameters: dict[str, Any]
) -> ExpressionQCResult:
    genes = comps[0].genes
    same = all(c.genes.equals(genes) for c in comps)
    if not same:
        genes = pd.Index(pd.unique(np.concatenate([c.genes.to_numpy() for c in comps])))
    arrays = {}
    for m in METRICS:
        out = np.full((len(comps), len(genes)), np.nan)
        for s, c in enumerate(comps):
            v = getattr(c, m)
            if same:
                out[s] = v
            else:
                out[s, genes.get_indexer(c.genes)] = v
        arrays[m] = out
    table = pd.DataFrame(
        {
            "sample_id": [c.sample_id for c in comps],
            "cancer_type": pd.array([c.cancer_type for c in comps], dtype="string"),
            "n_bins": [c.n_bins for c in comps],
            "n_bins_predicted": [c.n_bins_predicted for c in comps],
            "n_bins_measured": [c.n_bins_measured for c in comps],
            "n_genes_dropped": [c.n_genes_dropped for c in comps],
        }
    )
    return ExpressionQCResult(
        samples=table, genes=pd.Index(genes, name="gene"), parameters=parameters, **arrays
    )
