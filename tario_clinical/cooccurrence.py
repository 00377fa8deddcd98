"""Genotype co-occurrence: which mutations occur together, which exclude each other.

:func:`genotype_cooccurrence` tabulates every pair of genotype columns (2 x 2 counts among
patients tested for both, sample and Haldane-corrected odds ratios, two-sided Fisher exact
p-values, Benjamini-Hochberg q-values) and :func:`plot_cooccurrence` draws it as a heatmap.
Both are re-exported by :mod:`tario_clinical.embedding_maps`, whose maps are coloured by the
same genotypes; :func:`clinical_frame` and :func:`genotype_columns` read the cohort for both.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .cohort import normalise_binary
from .errors import SchemaError
from .metrics import bh_qvalues

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

__all__ = [
    "genotype_cooccurrence",
    "plot_cooccurrence",
    "clinical_frame",
    "genotype_columns",
    "plain_label",
    "COOCCURRENCE_COLUMNS",
]

#: columns of :func:`genotype_cooccurrence`
COOCCURRENCE_COLUMNS = [
    "gene_a",
    "gene_b",
    "n_tested",
    "both",
    "a_only",
    "b_only",
    "neither",
    "odds_ratio",
    "odds_ratio_corrected",
    "log2_odds_ratio",
    "p_value",
    "q_value",
    "relation",
]


def clinical_frame(cohort: Any) -> pd.DataFrame | None:
    """The clinical table of a Cohort or DataFrame (a copy; ``patient_id`` as text, unique);
    ``None`` for ``None``.

    Parameters
    ----------
    cohort : Cohort, DataFrame or None

    Returns
    -------
    DataFrame or None

    Raises
    ------
    SchemaError
        No ``patient_id`` column, or duplicate patient ids.
    """
    if cohort is None:
        return None
    table = cohort.clinical if hasattr(cohort, "clinical") else cohort
    if hasattr(table, "to_pandas") and not isinstance(table, pd.DataFrame):
        table = table.to_pandas()
    if not isinstance(table, pd.DataFrame):
        raise TypeError(
            f"cohort must be a Cohort or a clinical DataFrame; got {type(cohort).__name__}"
        )
    if "patient_id" not in table.columns:
        if table.index.name == "patient_id":
            table = table.reset_index()
        else:
            raise SchemaError(
                f"clinical table needs a 'patient_id' column; got columns {list(table.columns)}"
            )
    table = table.copy()
    table["patient_id"] = table["patient_id"].astype(str)
    dup = table["patient_id"].duplicated()
    if dup.any():
        raise SchemaError(
            f"clinical table: duplicate patient_id(s) {table.loc[dup, 'patient_id'].head().tolist()}"
        )
    return table


def genotype_columns(cohort: Any, table: pd.DataFrame) -> list[str]:
    """The cohort's ``genotype_columns`` present in ``table``, else the columns whose values
    are all ``mutant``/``wild-type``.

    Parameters
    ----------
    cohort : Cohort or DataFrame
    table : DataFrame
        Its clinical table (:func:`clinical_frame`).

    Returns
    -------
    list of str
    """
    genes = list(getattr(cohort, "genotype_columns", []) or [])
    if genes:
        return [g for g in genes if g in table.columns]
    out = []
    for c in table.columns:
        vals = table[c].dropna()
        if len(vals) and set(vals.astype(str).unique()) <= {"mutant", "wild-type"}:
            out.append(str(c))
    return out


def plain_label(text: Any) -> str:
    """A label matplotlib draws literally (no mathtext from user strings).

    Parameters
    ----------
    text : object

    Returns
    -------
    str
    """
    return str(text).replace("$", r"\$")


def _binary_genotypes(cohort: Any, genes: Sequence[str] | None) -> pd.DataFrame:
    table = clinical_frame(cohort)
    if table is None:
        raise TypeError("genotype_cooccurrence needs a Cohort or a clinical DataFrame")
    if genes is None:
        genes = genotype_columns(cohort, table)
    else:
        absent = [g for g in genes if g not in table.columns]
        if absent:
            raise SchemaError(
                f"genes: column(s) {absent} not in the clinical table; available: "
                f"{list(map(str, table.columns))}"
            )
    out = {}
    for g in genes:
        out[str(g)] = normalise_binary(table[g], column=str(g)).to_numpy(dtype=float)
    return pd.DataFrame(out, index=pd.Index(table["patient_id"], name="patient_id"))


def genotype_cooccurrence(
    cohort: Any,
    *,
    genes: Sequence[str] | None = None,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Pairwise co-occurrence of mutations: 2 x 2 counts, odds ratios and Fisher exact tests.

    Each pair is evaluated on the patients tested for both genes (missing calls are left out
    of that pair only; ``n_tested`` says how many remain).

    Parameters
    ----------
    cohort : Cohort or DataFrame
        Genotype columns hold the clinical schema's spellings (``mutant``/``wild-type``,
        ``mut``/``wt``, 1/0 ...).
    genes : sequence of str, optional
        Genotype columns (default: the cohort's ``genotype_columns``, or the columns whose
        values are all ``mutant``/``wild-type``).
    alpha : float
        False-discovery rate at which ``relation`` calls a pair co-occurring or mutually
        exclusive.

    Returns
    -------
    DataFrame
        One row per pair ``gene_a < gene_b`` in column order with :data:`COOCCURRENCE_COLUMNS`:
        ``both, a_only, b_only, neither`` counts; ``odds_ratio`` = both * neither /
        (a_only * b_only) (0 or inf when a cell is empty, NaN when undefined);
        ``odds_ratio_corrected`` with 0.5 added to every cell (Haldane-Anscombe), and its
        ``log2_odds_ratio``; two-sided Fisher exact ``p_value``; Benjamini-Hochberg
        ``q_value`` over the pairs; ``relation`` = ``"co-occurring"`` / ``"mutually
        exclusive"`` by the sign of the corrected log odds ratio where ``q_value < alpha``,
        ``"not significant"`` otherwise.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"patient_id": list("abcdefgh"),
    ...                    "EGFR": ["mut"] * 4 + ["wt"] * 4,
    ...                    "KRAS": ["wt"] * 4 + ["mut"] * 4})
    >>> genotype_cooccurrence(df, genes=["EGFR", "KRAS"])[["both", "neither", "p_value"]]
       both  neither   p_value
    0     0        0  0.028571
    """
    from scipy.stats import fisher_exact

    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1); got {alpha!r}")
    geno = _binary_genotypes(cohort, genes)
    cols = list(geno.columns)
    rows = []
    for i, a in enumerate(cols):
        for b in cols[i + 1 :]:
            va, vb = geno[a].to_numpy(), geno[b].to_numpy()
            ok = np.isfinite(va) & np.isfinite(vb)
            va, vb = va[ok].astype(bool), vb[ok].astype(bool)
            both = int((va & vb).sum())
            a_only = int((va & ~vb).sum())
            b_only = int((~va & vb).sum())
            neither = int((~va & ~vb).sum())
            num, den = both * neither, a_only * b_only
            if den > 0:
                or_ = num / den
            elif num > 0:
                or_ = math.inf
            else:
                or_ = math.nan
            orc = ((both + 0.5) * (neither + 0.5)) / ((a_only + 0.5) * (b_only + 0.5))
            n_tested = int(ok.sum())
            if n_tested > 0:
                p = float(fisher_exact([[both, a_only], [b_only, neither]]).pvalue)
            else:
                p = math.nan
            lor = math.log2(orc)
            rows.append(
                {
                    "gene_a": a,
                    "gene_b": b,
                    "n_tested": n_tested,
                    "both": both,
                    "a_only": a_only,
                    "b_only": b_only,
                    "neither": neither,
                    "odds_ratio": float(or_),
                    "odds_ratio_corrected": float(orc),
                    "log2_odds_ratio": float(lor),
                    "p_value": p,
                }
            )
    out = pd.DataFrame(rows, columns=COOCCURRENCE_COLUMNS[:-2])
    q = bh_qvalues(out["p_value"].to_numpy(dtype=float))
    out["q_value"] = q
    lor = out["log2_odds_ratio"].to_numpy(dtype=float)
    sig = np.nan_to_num(q, nan=1.0) < alpha
    out["relation"] = np.where(
        sig & (lor > 0),
        "co-occurring",
        np.where(sig & (lor < 0), "mutually exclusive", "not significant"),
    )
    out.attrs["tario_clinical"] = {"genes": cols}
    return out


def plot_cooccurrence(table: pd.DataFrame, *, ax: Axes | None = None) -> Axes:
    """Heatmap of the log2 (Haldane-corrected) odds ratio of every genotype pair.

    Cells are annotated with the number of patients mutated in both genes and the Fisher
    p-value (``*`` marks q < 0.05); red is co-occurrence, blue mutual exclusivity.

    Parameters
    ----------
    table : DataFrame
        Output of :func:`genotype_cooccurrence`.
    ax : Axes, optional

    Returns
    -------
    Axes
    """
    missing = [
        c for c in ("gene_a", "gene_b", "log2_odds_ratio", "both", "p_value") if c not in table
    ]
    if missing:
        raise SchemaError(
            f"table: column(s) {missing} missing; pass the output of genotype_cooccurrence()"
        )
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(4.8, 4.0))
    genes = list(
        (table.attrs.get("tario_clinical") or {}).get("genes")
        or dict.fromkeys([*table["gene_a"], *table["gene_b"]])
    )
    k = len(genes)
    pos = {g: i for i, g in enumerate(genes)}
    mat = np.full((k, k), np.nan)
    for rec in table.itertuples(index=False):
        i, j = pos[rec.gene_a], pos[rec.gene_b]
        mat[j, i] = rec.log2_odds_ratio  # lower triangle: row = later gene
    finite = mat[np.isfinite(mat)]
    lim = max(1.0, float(np.abs(finite).max())) if finite.size else 1.0
    im = ax.imshow(np.ma.masked_invalid(mat), cmap="RdBu_r", vmin=-lim, vmax=lim)
    for rec in table.itertuples(index=False):
        i, j = pos[rec.gene_a], pos[rec.gene_b]
        q = getattr(rec, "q_value", np.nan)
        star = "*" if np.isfinite(q) and q < 0.05 else ""
        p = rec.p_value
        ptxt = "p=n/a" if not np.isfinite(p) else f"p={p:.2g}"
        dark = np.isfinite(mat[j, i]) and abs(mat[j, i]) > 0.6 * lim
        ax.text(
            i,
            j,
            f"{rec.both}\n{ptxt}{star}",
            ha="center",
            va="center",
            fontsize=7,
            color="white" if dark else "black",
        )
    labels = [plain_label(g) for g in genes]
    ax.set_xticks(range(k), labels, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(k), labels, fontsize=8)
    ax.figure.colorbar(im, ax=ax, label="log2 odds ratio (Haldane)")
    ax.set_title("Genotype co-occurrence", fontsize=10)
    return ax
