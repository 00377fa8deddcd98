"""The report's "predicted vs measured expression" section (:func:`report_section`): tables as
JSON-safe records and the figures, from a computed :class:`~.result.ExpressionQCResult`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._json import json_safe as _json_safe
from .._json import records as _records
from .plots import plot_bulk_correlation_curve, plot_spatial_correlation_curve

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from .result import ExpressionQCResult

__all__ = ["report_section"]


def report_section(
    result: ExpressionQCResult,
    *,
    maps: Figure | None = None,
    top_n: int = 20,
) -> dict[str, Any]:
    """Content of the report's "predicted vs measured expression" section.

    Parameters
    ----------
    result
        From :func:`evaluate_expression`.
    maps
        Optional figure from :func:`plot_expression_maps` (``axes[0, 0].figure``).
    top_n
        Number of top-ranked genes listed per cancer type.

    Returns
    -------
    dict
        JSON-safe except ``"figures"``: ``id, title, description, parameters`` and ``tables`` —
        ``samples``, ``summary``, ``top_genes`` (top ``top_n`` per group with mean Moran's I,
        mean spatial r and bulk r with 95 % CI), ``spatial_curve`` and ``bulk_curve`` (every point
        plotted: ``cancer_type, k, mean_spatial_r`` / ``mean_bulk_r``) — each a list of records
        (NaN → ``None``); ``figures``: name → matplotlib Figure (``spatial_correlation_curve``,
        ``bulk_correlation_curve`` and ``expression_maps`` when given).
    """
    import matplotlib.pyplot as plt

    ranking = result.gene_ranking()
    bc = result.bulk_correlation()
    top = ranking[ranking["rank"].notna() & (ranking["rank"] <= top_n)].merge(
        bc[["cancer_type", "gene", "estimate", "low", "high", "p_value"]].rename(
            columns={
                "estimate": "bulk_r",
                "low": "bulk_r_low",
                "high": "bulk_r_high",
                "p_value": "bulk_p_value",
            }
        ),
        on=["cancer_type", "gene"],
        how="left",
    )
    sc = result.spatial_curve()[["cancer_type", "k", "gene", "mean_spatial_r"]]
    bcurve = result.bulk_curve()[["cancer_type", "k", "gene", "mean_bulk_r"]]
    samples = result.samples.copy()
    figs: dict[str, Any] = {}
    fig, ax = plt.subplots(figsize=(5.5, 4.0))
    plot_spatial_correlation_curve(result, ax=ax)
    fig.tight_layout()
    figs["spatial_correlation_curve"] = fig
    fig, ax = plt.subplots(figsize=(5.5, 4.0))
    plot_bulk_correlation_curve(result, ax=ax)
    fig.tight_layout()
    figs["bulk_correlation_curve"] = fig
    if maps is not None:
        figs["expression_maps"] = maps
    return {
        "id": "expression_qc",
        "title": "Predicted vs measured expression",
        "description": (
            "Measured spatial transcriptomics binned onto the prediction grid. Genes are ranked by "
            "the mean Moran's I of the measured maps (row-standardised "
            f"{result.parameters.get('kind', 'rook')} adjacency); curves show the mean spatial "
            "Pearson correlation (per sample, across bins) and the bulk correlation (pseudo-bulk "
            "per sample, across samples) over the top-k genes."
        ),
        "parameters": _json_safe(
            {
                **result.parameters,
                "n_samples": int(len(result.samples)),
                "n_genes": int(len(result.genes)),
            }
        ),
        "tables": {
            "samples": _records(samples),
            "summary": _records(result.summary()),
            "top_genes": _records(top),
            "spatial_curve": _records(sc),
            "bulk_curve": _records(bcurve),
        },
        "figures": figs,
    }
