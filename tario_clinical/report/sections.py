"""Section builders: computed analysis results -> JSON-safe section dictionaries and figures.

Each builder takes the result object of one analysis (duck-typed), copies its numbers into a
JSON-safe dictionary and draws its figures with the analysis module's own ``plot_*`` function.
Nothing here fits a model or tests a hypothesis. The one derived table is the concordance read
in the direction of risk (:func:`oriented_concordance`): an exact reflection of the survival
module's numbers (``C(-score) = 1 - C(score)`` for Harrell's and Uno's C, tied scores counting
1/2), so that a score whose higher values mean *lower* risk is not shown as "C = 0.44".
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import pandas as pd

from ._figures import Figures, call_plot, figure_of, new_figure
from ._jsonsafe import jsonable, records
from .findings import endpoint_name
from .results_model import SECTIONS

__all__ = [
    "SECTIONS",
    "decode_section",
    "analyses_section",
    "ANALYSIS_TITLES",
    "embedding_section",
    "effect_curve_section",
    "survival_section",
    "design_section",
    "expression_qc_section",
    "representation_provenance",
    "oriented_concordance",
]


# =============================================================================== decode
def decode_section(decode: Any, figs: Figures) -> tuple[dict[str, Any], pd.DataFrame | None]:
    """The decoders' summary table, cross-validation details, ROC and calibration figures."""
    notes: list[str] = []
    summ = getattr(decode, "summary", None)
    summary = summ() if callable(summ) else summ
    if not isinstance(summary, pd.DataFrame):
        raise TypeError(
            f"decode: expected an object with a summary() DataFrame (DecodeResult); got "
            f"{type(decode).__name__}"
        )
    details: Any = None
    if callable(getattr(decode, "to_dict", None)):
        details = decode.to_dict()
        if isinstance(details, dict):
            details = {k: v for k, v in details.items() if k != "summary"}
    params = getattr(decode, "params", None)
    section = {
        "summary": records(summary),
        "columns": [str(c) for c in summary.columns],
        "details": jsonable(details),
        "parameters": jsonable(params) if isinstance(params, Mapping) else None,
        "notes": notes,
    }
    figs.attempt(
        "decode_roc",
        "ROC curves of the out-of-fold decoder scores, one line per target (one point per "
        "patient, mean score over repeats); the legend gives each target's AUROC and patients; "
        "the dashed diagonal is chance.",
        lambda: call_plot(decode, ("plot_roc",), 5.0, 3.9),
        notes,
    )
    figs.attempt(
        "decode_calibration",
        "Calibration of the out-of-fold probabilities: observed fraction of positives against "
        "the mean predicted probability in deciles of patients; points on the dashed diagonal "
        "are perfectly calibrated.",
        lambda: call_plot(decode, ("plot_calibration",), 5.0, 3.9),
        notes,
    )
    oof = getattr(decode, "oof", None)
    if oof is not None and not isinstance(oof, pd.DataFrame):
        oof = pd.DataFrame(oof)
    section["n_oof_rows"] = None if oof is None else len(oof)
    return section, oof


# =============================================================================== decoder analyses
#: the decoder analyses the report shows, in reading order, with their titles
ANALYSIS_TITLES: dict[str, str] = {
    "learning_curve": "Learning curve: AUROC against the number of training patients",
    "generalist_vs_specialist": "Generalist vs specialist decoder",
    "leave_one_group_out": "Transfer to a group left out of training",
    "representation_comparison": "Representation comparison",
}
_ANALYSIS_CAPTIONS = {
    "learning_curve": "Pooled out-of-fold AUROC (95 % CI) of each target when every training "
    "fold keeps only a fraction of its patients (log axis; the held-out patients are the same "
    "at every fraction); the dashed line is chance.",
    "generalist_vs_specialist": "AUROC (95 % CI) on the same held-out {cancer_type} patients "
    "of the generalist decoder (trained on all cancer types) and the specialist (trained on "
    "{cancer_type} only); the dashed line is chance.",
    "leave_one_group_out": "AUROC (95 % CI) of each target in each {group_column} left out of "
    "training (the decoder trained on the other groups) and pooled over groups; the dashed "
    "line is chance.",
    "representation_comparison": "AUROC (95 % CI) of the same decoders, folds and patients on "
    "the {a} and the {b} representation; the dashed line is chance.",
}


_PAIRED = {"generalist_vs_specialist": "model", "representation_comparison": "representation"}


def analyses_section(analyses: Mapping[str, Any], figs: Figures) -> dict[str, Any]:
    """The decoder analyses of :mod:`tario_clinical.decode.analyses` (``AnalysisResult``):
    each one's table and parameters as given, and its own ``plot()`` (AUROC rows only: a
    paired difference is on another scale and is in the table)."""
    notes: list[str] = []
    items = []
    unknown = sorted(set(analyses) - set(ANALYSIS_TITLES))
    if unknown:
        raise TypeError(
            f"analyses: unknown key(s) {unknown}; allowed: {', '.join(ANALYSIS_TITLES)}"
        )
    for kind in ANALYSIS_TITLES:
        res = analyses.get(kind)
        if res is None:
            continue
        table = getattr(res, "table", None)
        if not isinstance(table, pd.DataFrame) or not callable(getattr(res, "plot", None)):
            raise TypeError(
                f"analyses[{kind!r}]: expected an AnalysisResult (a table and plot()); got "
                f"{type(res).__name__}"
            )
        params = jsonable(dict(getattr(res, "params", {}) or {}))
        params.pop("Cs", None)  # the C grid is long and not read by a person
        fmt_args = {
            "cancer_type": params.get("cancer_type", ""),
            "group_column": str(params.get("group_column", "group")).replace("_", " "),
            "a": (params.get("names") or ["a", "b"])[0],
            "b": (params.get("names") or ["a", "b"])[1],
        }
        caption = _ANALYSIS_CAPTIONS[kind].format(**fmt_args)

        def draw(res: Any = res, kind: str = kind) -> Any:
            t = res.table
            if kind in _PAIRED:
                t = t[t[_PAIRED[kind]] != "difference"]
            shown = type(res)(t.reset_index(drop=True), res.kind, dict(res.params))
            rows = 1 if kind == "learning_curve" else len(t)
            fig = new_figure(6.0, 3.8 if rows == 1 else 0.3 * rows + 1.6)
            ax = shown.plot(ax=fig.add_subplot(1, 1, 1))
            ax.set_title(ANALYSIS_TITLES[kind], fontsize=10)
            if kind == "learning_curve":  # the fractions as percentages, not 10^x labels
                from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

                ax.xaxis.set_major_locator(FixedLocator(sorted(set(t["fraction"]))))
                ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{100 * v:.0f} %"))
                ax.xaxis.set_minor_locator(NullLocator())
            fig.tight_layout()
            return fig

        figs.attempt(f"analyses_{kind}", caption, draw, notes)
        items.append(
            {
                "kind": kind,
                "title": ANALYSIS_TITLES[kind],
                "parameters": params,
                "table": records(table),
            }
        )
    return {"analyses": items, "notes": notes}


# =============================================================================== embedding
def embedding_section(maps: Any, figs: Figures) -> dict[str, Any]:
    """The representation maps computed by
    :func:`tario_clinical.embedding_maps.representation_maps` (``to_dict()``,
    ``plot_map(method, figure=)``, ``cooccurrence``, ``plot_cooccurrence(ax=)``): their
    numbers and figures."""
    if not callable(getattr(maps, "to_dict", None)) or not callable(
        getattr(maps, "plot_map", None)
    ):
        raise TypeError(
            "embedding: expected the RepresentationMaps of "
            "tario_clinical.embedding_maps.representation_maps(); got "
            f"{type(maps).__name__}"
        )
    d = maps.to_dict()
    notes: list[str] = []
    color_by = [str(c) for c in d.get("color_by") or []]
    for method in d.get("maps") or {}:
        name = "PCA (first two principal components)" if method == "pca" else "t-SNE"
        figs.attempt(
            f"embedding_{method}",
            f"{name} map of the patient representations, one point per patient, one panel per "
            "annotation ("
            + (", ".join(color_by) if color_by else "no clinical annotations")
            + "); grey points have no value.",
            lambda method=method: maps.plot_map(method),
            notes,
        )
    table = getattr(maps, "cooccurrence", None)
    if table is not None:
        figs.attempt(
            "genotype_cooccurrence",
            "Genotype co-occurrence of every gene pair: colour is the log2 odds ratio (Haldane "
            "corrected; red co-occurring, blue mutually exclusive); cells give the patients "
            "mutated in both genes and the Fisher p-value (* q < 0.05).",
            lambda: maps.plot_cooccurrence(ax=new_figure(4.4, 3.5).add_subplot(1, 1, 1)),
            notes,
        )
    notes = [str(n) for n in d.get("notes") or []] + notes
    return {
        "maps": jsonable(d.get("maps") or {}),
        "color_by": color_by,
        "cooccurrence": None if table is None else records(table),
        "notes": notes,
    }


# =============================================================================== survival
def oriented_concordance(concordance: Any) -> dict[str, Any] | None:
    """Concordance read in the direction in which the score orders risk.

    The survival module reports C with *higher score = higher risk*. When Harrell's C is
    below 0.5 the score orders risk the other way (higher score = lower risk, as expected of
    a responder score); the table then gives ``1 - C`` with the interval reflected
    (``[1 - high, 1 - low]``): the exact concordance of the negated score, since every
    concordant pair becomes discordant and ties stay 1/2. Standard errors and pair counts do
    not change.

    Returns
    -------
    dict or None
        ``direction`` (text), ``reflected`` (bool), ``rows``: ``method, estimate, low, high,
        se, n_pairs, estimate_as_computed``; ``None`` without a Harrell row.
    """
    rows = records(concordance)
    harrell = next((r for r in rows if r.get("method") == "harrell"), None)
    if harrell is None or harrell.get("estimate") is None:
        return None
    c = float(harrell["estimate"])
    reflect = c < 0.5
    out = []
    for r in rows:
        est, low, high = r.get("estimate"), r.get("low"), r.get("high")
        if reflect:
            est, low, high = (
                None if est is None else 1.0 - est,
                None if high is None else 1.0 - high,
                None if low is None else 1.0 - low,
            )
        out.append(
            {
                "method": r.get("method"),
                "estimate": est,
                "low": low,
                "high": high,
                "se": r.get("se"),
                "n_pairs": r.get("n_pairs"),
                "estimate_as_computed": r.get("estimate"),
            }
        )
    if c == 0.5:
        direction = "no direction: Harrell's C is exactly 0.5"
    else:
        direction = "higher score = lower risk" if reflect else "higher score = higher risk"
    return jsonable({"direction": direction, "reflected": reflect, "rows": out})


def survival_section(
    strat: Any, figs: Figures, *, score_name: str = "score", time_unit: str = ""
) -> dict[str, Any]:
    """Survival by score group: every number of ``strat.to_dict()`` plus the oriented
    concordance (key ``concordance_oriented``), KM and forest figures."""
    notes: list[str] = []
    details = strat.to_dict() if callable(getattr(strat, "to_dict", None)) else None
    if not isinstance(details, Mapping):
        raise TypeError(
            f"stratification: expected an object with to_dict() (StratificationResult); got "
            f"{type(strat).__name__}"
        )
    details = dict(details)
    oriented = oriented_concordance(details.get("concordance"))
    if oriented is not None:
        details["concordance_oriented"] = oriented
    name, abbr, _ = endpoint_name(str(details.get("time", "")))
    unit = f"; time in {time_unit}" if time_unit else ""
    cut = str(details.get("cutoff_method", ""))
    exploratory = (
        " (EXPLORATORY cut-point chosen on these patients)" if details.get("exploratory") else ""
    )

    title = f"{name[:1].upper()}{name[1:]} by {score_name} group ({cut} cut-off)" + (
        " — EXPLORATORY" if details.get("exploratory") else ""
    )

    def km() -> Any:
        for fn_name in ("km_plot", "plot_km"):
            fn = getattr(strat, fn_name, None)
            if callable(fn):
                try:
                    takes_title = "title" in inspect.signature(fn).parameters
                except (TypeError, ValueError):
                    takes_title = False
                return fn(title=title) if takes_title else fn()
        raise AttributeError("no km_plot()")

    figs.attempt(
        "survival_km",
        f"Kaplan–Meier estimates of {name} ({abbr}) in the {score_name} groups "
        f"({cut} cut-off{exploratory}) with 95 % bands, censoring ticks, the log-rank p-value and "
        f"the numbers at risk under the plot{unit}.",
        km,
        notes,
    )
    inter = details.get("interaction")
    if inter is not None or hasattr(strat, "plot_forest"):
        exp = inter.get("experimental") if isinstance(inter, Mapping) else None
        ctl = inter.get("control") if isinstance(inter, Mapping) else None
        arms = f"{exp} vs {ctl}" if exp is not None and ctl is not None else "by arm"
        figs.attempt(
            "survival_forest",
            f"Treatment hazard ratio for {abbr} ({arms}; 95 % CI, log scale; HR < 1 favours "
            f"{exp if exp is not None else 'the experimental arm'}) in all patients, in each "
            f"{score_name} group and in each subgroup, from separate Cox fits.",
            lambda: _forest(strat),
            notes,
        )
    return {"details": jsonable(details), "notes": notes}


def effect_curve_section(
    curve: Any, figs: Figures, *, score_name: str = "score", notes: list[str] | None = None
) -> dict[str, Any]:
    """The treatment HR along the continuous score
    (:func:`~tario_clinical.survival.treatment_effect_curve`): its ``to_dict()`` and its
    ``plot()``."""
    notes = [] if notes is None else notes
    if not callable(getattr(curve, "to_dict", None)) or not callable(getattr(curve, "plot", None)):
        raise TypeError(
            "effect_curve: expected a TreatmentEffectCurve (to_dict() and plot()); got "
            f"{type(curve).__name__}"
        )
    d = jsonable(curve.to_dict())
    exp, ctl = d.get("experimental"), d.get("control")
    parts = []
    if d.get("spline"):
        parts.append(
            "the treatment HR from the Cox model with an arm × natural-spline interaction "
            "(line, pointwise 95 % band)"
        )
    if d.get("stepp"):
        parts.append(
            f"the HR in overlapping windows of about {d['stepp']['r2']} patients (STEPP; "
            "points at each window's median score, 95 % CIs)"
        )
    caption = (
        f"Treatment hazard ratio ({exp} vs {ctl}, log scale; HR < 1 favours {exp}) along the "
        f"{score_name}: " + " and ".join(parts) + "; dotted: all patients, dashed: HR = 1. "
        "A cut-off read off this curve is exploratory."
    )

    def draw() -> Any:
        fig = new_figure(6.4, 4.0)
        curve.plot(ax=fig.add_subplot(1, 1, 1), score_label=score_name)
        fig.tight_layout()
        return fig

    figs.attempt("survival_effect_curve", caption, draw, notes)
    return d


def _forest(strat: Any) -> Any:
    forest = getattr(getattr(strat, "interaction", None), "forest", None)
    rows = len(forest) if isinstance(forest, pd.DataFrame) else 6
    fig = new_figure(6.4, 0.36 * rows + 1.4)
    res = strat.plot_forest(ax=fig.add_subplot(1, 1, 1))
    fig.tight_layout()
    return figure_of(res)


# =============================================================================== design
def _tables_of(obj: Any) -> dict[str, Any]:
    """Design input as ``{"tables": {name: records}, "parameters": {...}}``.

    A mapping's DataFrames (and lists of records) become tables, objects with ``to_dict()``
    (a :class:`~tario_clinical.design.DesignComparison`) are merged in, other values become
    parameters.
    """
    if isinstance(obj, pd.DataFrame):
        return {"tables": {"design": records(obj)}, "parameters": {}}
    if isinstance(obj, Mapping):
        tables: dict[str, Any] = {}
        params: dict[str, Any] = {}
        for k, v in obj.items():
            if isinstance(v, pd.DataFrame):
                tables[str(k)] = records(v)
            elif isinstance(v, list) and all(isinstance(r, Mapping) for r in v):
                tables[str(k)] = jsonable(v)
            elif callable(getattr(v, "to_dict", None)) and not isinstance(v, Mapping):
                sub = _tables_of(v)
                tables.update(sub["tables"])
                params.update(sub["parameters"])
            else:
                params[str(k)] = jsonable(v)
        return {"tables": tables, "parameters": params}
    if callable(getattr(obj, "to_dict", None)):
        return _tables_of(obj.to_dict())
    for name in ("table", "summary"):
        t = getattr(obj, name, None)
        t = t() if callable(t) else t
        if isinstance(t, pd.DataFrame):
            params = getattr(obj, "parameters", {})
            return {
                "tables": {name: records(t)},
                "parameters": jsonable(params) if isinstance(params, Mapping) else {},
            }
    raise TypeError(
        "design: expected a DataFrame, a mapping of DataFrames or an object with to_dict() / "
        f"table; got {type(obj).__name__}"
    )


def design_section(design: Any, figs: Figures, *, time_unit: str = "") -> dict[str, Any]:
    """Trial-design tables (``designs``; optionally ``sensitivity``) and the power figure."""
    notes: list[str] = []
    section = _tables_of(design)
    plotter = design
    if isinstance(design, Mapping):
        plotter = next((v for v in design.values() if hasattr(v, "plot_power")), None)
    if plotter is not None and callable(getattr(plotter, "plot_power", None)):
        figs.attempt(
            "design_power",
            "Power of each candidate design against the number of patients screened, at the "
            "assumed hazard ratios; the dashed line is the target power.",
            lambda: call_plot(plotter, ("plot_power",), 5.6, 3.3),
            notes,
        )
    section["notes"] = notes
    return section


# =============================================================================== expression QC
def _split_figures(obj: Any, prefix: str, figs: Figures, notes: list[str]) -> Any:
    """Copy of a nested dict with matplotlib Figures moved into ``figs``."""
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    if isinstance(obj, Figure | Axes):
        key = prefix.replace(".", "_")
        what = prefix.split(".")[-1].replace("_", " ")
        figs.attempt(key, f"{what[:1].upper()}{what[1:]} (expression QC).", lambda: obj, notes)
        return None
    if isinstance(obj, Mapping):
        out = {}
        for k, v in obj.items():
            if isinstance(v, Figure | Axes) or (
                isinstance(v, Mapping) and any(isinstance(x, Figure | Axes) for x in v.values())
            ):
                _split_figures(v, f"{prefix}.{k}", figs, notes)
            else:
                out[str(k)] = _split_figures(v, f"{prefix}.{k}", figs, notes)
        return out
    return obj


def expression_qc_section(qc: Any, figs: Figures) -> dict[str, Any]:
    """Predicted vs measured expression: the expression-QC module's report section."""
    notes: list[str] = []
    if isinstance(qc, Mapping):
        content = qc
    else:
        from .. import expression_qc as eq

        content = eq.report_section(qc)
    data = _split_figures(content, "expression_qc", figs, notes)
    tables = {
        str(k): jsonable(v)
        for k, v in (data.get("tables") or {}).items()
        if isinstance(v, list | pd.DataFrame)
    }
    return {
        "title": str(data.get("title", "Predicted vs measured expression")),
        "description": str(data.get("description", "")),
        "parameters": jsonable(data.get("parameters") or {}),
        "tables": tables,
        "notes": notes,
    }


def representation_provenance(representations: Any) -> dict[str, Any] | None:
    """``uns["tario_clinical"]`` of the representations, JSON-safe."""
    uns = getattr(representations, "uns", None)
    if uns is None:
        return None
    rec = uns.get("tario_clinical")
    return jsonable(dict(rec)) if isinstance(rec, Mapping) else None
