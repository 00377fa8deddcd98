"""Validated trial cohorts: clinical table + slide manifest + exclusion log.

:func:`load_cohort` reads a clinical table (and optionally a slide manifest), validates both
against their data contracts (``data_schemas/``), normalises genotype spellings, derives the
RECIST responder label and links slides to patients. Whatever an analysis later excludes is
recorded in :attr:`Cohort.exclusions` with its reason: nothing is silently lost.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import CohortError, SchemaError
from .provenance import sha256_file
from .schemas import check_table, format_violations, is_missing, load_schema, to_pandas
from .tables import read_table

__all__ = [
    "Cohort",
    "load_cohort",
    "read_table",
    "normalise_binary",
    "DEFAULT_RESPONDER_MAP",
    "EXCLUSION_COLUMNS",
]

#: RECIST best response -> responder label (CR/PR responders, SD/PD non-responders, NE missing)
DEFAULT_RESPONDER_MAP: Mapping[str, int | None] = {"CR": 1, "PR": 1, "SD": 0, "PD": 0, "NE": None}

EXCLUSION_COLUMNS = ["patient_id", "slide_id", "analysis", "reason"]


def _as_table(obj: Any, what: str) -> tuple[pd.DataFrame, str, str | None]:
    """Return (table, source name, sha256 or None)."""
    if isinstance(obj, str | Path):
        p = Path(obj)
        return read_table(p), str(p), sha256_file(p) if p.is_file() else None
    try:
        return to_pandas(obj).copy(), f"<{what} DataFrame>", None
    except SchemaError as err:
        raise CohortError(f"{what}: {err}") from err


def normalise_binary(values: Any, *, column: str, source: str | None = None) -> pd.Series:
    """Normalise a binary label column to float 1.0 / 0.0 / NaN.

    Accepts the genotype spellings of the clinical schema (``mut``, ``mutant``, ``MUT``, ``1``,
    ``True`` -> 1; ``wt``, ``WT``, ``wild-type``, ``0``, ``False`` -> 0; blank, ``NA``,
    ``unknown`` -> missing).

    Parameters
    ----------
    values : array-like or Series
        One label per patient.
    column : str
        Column name used in the error message and the violations.
    source : str, optional
        Name used in the violations' ``file`` column and in the message (default ``"<labels>"``).

    Returns
    -------
    Series
        float 1.0 / 0.0 / NaN; the index of ``values`` when it is a Series, else a range index.

    Raises
    ------
    SchemaError
        Naming every row whose value is none of these.

    Examples
    --------
    >>> normalise_binary(["mut", "WT", "", 1, False], column="EGFR").tolist()
    [1.0, 0.0, nan, 1.0, 0.0]
    """
    series = values if isinstance(values, pd.Series) else pd.Series(list(values))
    frame = pd.DataFrame({column: series.reset_index(drop=True)})
    coerced, violations = check_table(
        frame,
        {
            "items": {"properties": {}},
            "x-genotype-columns": [column],
            "x-genotype-spellings": load_schema("clinical")["x-genotype-spellings"],
        },
        source=source or "<labels>",
    )
    if len(violations):
        violations["rule"] = violations["rule"].str.replace(
            "genotype must be", "a binary label must be"
        )
        raise SchemaError(
            f"{source or '<labels>'}: column {column!r} is not a binary label:\n"
            + format_violations(violations),
            violations=violations,
        )
    out = coerced[column].map({"mutant": 1.0, "wild-type": 0.0}).astype(float)
    out.index = series.index
    return out


@dataclass
class Cohort:
    """A validated trial cohort.

    Attributes
    ----------
    clinical : DataFrame
        One row per patient; ``patient_id`` unique; genotypes as ``"mutant"``/``"wild-type"``/None;
        ``responder`` (``Int8``) derived from ``best_response``; survival events ``Int8``.
    slides : DataFrame or None
        One row per slide with absolute ``path``; every ``patient_id`` is in ``clinical``.
    genotype_columns : list of str
    time_unit : str
        Unit of the survival times.
    sources : dict
        Input file names and SHA-256 (for provenance).
    exclusions : DataFrame
        ``patient_id, slide_id, analysis, reason`` for everything an analysis left out.
    """

    clinical: pd.DataFrame
    slides: pd.DataFrame | None = None
    genotype_columns: list[str] = field(default_factory=list)
    time_unit: str = "months"
    responder_map: Mapping[str, int | None] = field(
        default_factory=lambda: dict(DEFAULT_RESPONDER_MAP)
    )
    sources: dict[str, Any] = field(default_factory=dict)
    exclusions: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=EXCLUSION_COLUMNS)
    )

    # ------------------------------------------------------------------ basics
    @property
    def patient_ids(self) -> pd.Index:
        """Patient ids in table order."""
        return pd.Index(self.clinical["patient_id"], name="patient_id")

    def __len__(self) -> int:
        return len(self.clinical)

    def __repr__(self) -> str:
        n_slides = 0 if self.slides is None else len(self.slides)
        return (
            f"Cohort({len(self)} patients, {n_slides} slides, genotypes={self.genotype_columns}, "
            f"{len(self.exclusions)} exclusions)"
        )

    def _repr_html_(self) -> str:
        n_slides = 0 if self.slides is None else len(self.slides)
        rows = [
            ("patients", len(self)),
            ("slides", n_slides),
            ("exclusions logged", len(self.exclusions)),
        ]
        if "arm" in self.clinical:
            for arm, n in self.clinical["arm"].value_counts(dropna=False).items():
                rows.append((f"arm {arm}", n))
        for g in self.genotype_columns:
            col = self.clinical[g]
            rows.append(
                (
                    f"{g} mutant / tested",
                    f"{int((col == 'mutant').sum())} / {int(col.notna().sum())}",
                )
            )
        body = "".join(
            f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
            for k, v in rows
        )
        return f"<table><caption>tario_clinical Cohort</caption>{body}</table>"

    # ------------------------------------------------------------------ labels
    def label(self, target: str) -> pd.Series:
        """Binary label ``target`` as float 1/0/NaN indexed by ``patient_id``.

        ``target`` is a genotype column, ``"responder"`` or any other column holding binary values
        (0/1, True/False or the genotype spellings).

        Raises
        ------
        CohortError
            If the column does not exist.
        SchemaError
            If the column is not binary (naming the offending rows).
        """
        if target not in self.clinical.columns:
            raise CohortError(
                f"target {target!r} is not a column of the clinical table; available: "
                f"{', '.join(map(str, self.clinical.columns))}"
            )
        col = self.clinical[target]
        if target in self.genotype_columns:
            out = col.map({"mutant": 1.0, "wild-type": 0.0}).astype(float)
        elif target == "responder":
            out = col.astype("Float64").astype(float)
        else:
            out = normalise_binary(
                col, column=target, source=self.sources.get("clinical", {}).get("file")
            )
        out.index = self.patient_ids
        out.name = target
        return out

    def survival(self, endpoint: str = "os") -> pd.DataFrame:
        """``time``, ``event`` for ``endpoint`` (``"os"``/``"pfs"`` or a prefix with ``_time``/``_event`` columns)."""
        t, e = f"{endpoint}_time", f"{endpoint}_event"
        missing = [c for c in (t, e) if c not in self.clinical]
        if missing:
            raise CohortError(
                f"endpoint {endpoint!r}: clinical table lacks column(s) {', '.join(missing)}"
            )
        out = pd.DataFrame(
            {
                "time": self.clinical[t].astype(float).to_numpy(),
                "event": self.clinical[e].astype("Float64").astype(float).to_numpy(),
            },
            index=self.patient_ids,
        )
        return out

    # -------------------------------------------------------------- exclusions
    def exclude(
        self,
        patient_ids: Iterable[Any],
        *,
        reason: str,
        analysis: str,
        slide_ids: Iterable[Any] | None = None,
    ) -> None:
        """Record that ``patient_ids`` (or slides) were left out of ``analysis`` because of ``reason``.

        The log is a record of facts, not of calls: an exclusion already in the log (same
        patient, slide, analysis and reason) is not added again, so running an analysis twice
        on one cohort leaves the log as the first run left it.

        Parameters
        ----------
        patient_ids : iterable
            Patients left out (``None`` for a slide without a patient).
        reason : str
            Why, in words a reader of the report understands.
        analysis : str
            Which analysis left them out (``"decode:EGFR"``, ``"stratify"``, ``"encode"`` ...).
        slide_ids : iterable, optional
            The slides, one per patient id, when slides rather than patients were left out.
        """
        pids = [None if p is None else str(p) for p in patient_ids]
        sids = (
            [None] * len(pids)
            if slide_ids is None
            else [None if s is None else str(s) for s in slide_ids]
        )
        if len(sids) != len(pids):
            raise ValueError("slide_ids must have the same length as patient_ids")
        if not pids:
            return
        new = pd.DataFrame(
            {"patient_id": pids, "slide_id": sids, "analysis": analysis, "reason": reason}
        ).drop_duplicates(ignore_index=True)
        if len(self.exclusions):
            logged = set(map(_log_key, self.exclusions[EXCLUSION_COLUMNS].itertuples(index=False)))
            fresh = [_log_key(r) not in logged for r in new.itertuples(index=False)]
            new = new.loc[fresh]
        if not len(new):
            return
        frames = [f for f in (self.exclusions, new) if len(f)]
        self.exclusions = pd.concat(frames, ignore_index=True)[EXCLUSION_COLUMNS]

    def record_exclusions(
        self,
        exclusions: pd.DataFrame,
        *,
        analysis: str = "decode",
        patients_only: bool = False,
    ) -> None:
        """Record an analysis result's ``exclusions`` table in this cohort's log.

        Analyses never write into the cohort they are given: each result carries its own
        ``exclusions`` table, and whoever owns the study's cohort (the pipeline, the CLI, a
        notebook) records it here, once per result. Like :meth:`exclude`, recording the same
        table twice leaves the log as the first call left it.

        Parameters
        ----------
        exclusions : DataFrame
            ``patient_id, reason`` and either ``target`` (the decoders' tables: each row is
            logged under ``"<analysis>:<target>"``, grouped by target and reason in sorted
            order) or ``analysis`` (:func:`tario_clinical.survival.stratify`: logged under
            that label, grouped by analysis and reason in order of first appearance).
        analysis : str
            Prefix of the label of a table with a ``target`` column (``"decode"``).
        patients_only : bool
            Log only rows whose ``patient_id`` is a patient of this cohort (``stratify`` lists
            scores of unknown ids in its result only).

        Examples
        --------
        >>> res = tc.decode(reps, cohort, targets=["EGFR"])  # doctest: +SKIP
        >>> cohort.record_exclusions(res.exclusions)  # doctest: +SKIP
        """
        if exclusions is None or not len(exclusions):
            return
        if "analysis" in exclusions.columns:
            groups = exclusions.groupby(["analysis", "reason"], sort=False)
            labelled = ((label, why, grp) for (label, why), grp in groups)
        elif "target" in exclusions.columns:
            groups = exclusions.groupby(["target", "reason"])
            labelled = ((f"{analysis}:{t}", why, grp) for (t, why), grp in groups)
        else:
            raise SchemaError(
                "exclusions need a 'target' or an 'analysis' column next to patient_id and "
                f"reason; got {', '.join(map(str, exclusions.columns))}"
            )
        known = set(self.clinical["patient_id"].astype(str)) if patients_only else None
        for label, why, grp in labelled:
            ids = grp["patient_id"].tolist()
            if known is not None:
                ids = [p for p in ids if str(p) in known]
            self.exclude(ids, reason=why, analysis=label)

    def copy(self) -> Cohort:
        """A deep copy (tables copied, exclusion log included)."""
        return Cohort(
            clinical=self.clinical.copy(),
            slides=None if self.slides is None else self.slides.copy(),
            genotype_columns=list(self.genotype_columns),
            time_unit=self.time_unit,
            responder_map=dict(self.responder_map),
            sources=dict(self.sources),
            exclusions=self.exclusions.copy(),
        )


def _log_key(row: Iterable[Any]) -> tuple[Any, ...]:
    """An exclusion-log row as a comparable tuple (every missing value as ``None``)."""
    return tuple(None if v is None or (isinstance(v, float) and v != v) else v for v in row)


def _gene_like(name: str) -> bool:
    import re

    return bool(re.fullmatch(r"[A-Z][A-Z0-9]{1,9}(-[A-Z0-9]{1,4})?", name)) and name not in {
        "ECOG",
        "ID",
        "TNM",
        "BMI",
        "PDL1",
        "PD-L1",
        "TMB",
        "HR",
    }


def _detect_genotype_columns(
    df: pd.DataFrame, known: Sequence[str], lookup: Mapping[str, str]
) -> list[str]:
    found = [c for c in df.columns if c in known]
    for c in df.columns:
        if c in found or not _gene_like(str(c)):
            continue
        vals = df[c][~is_missing(df[c])]
        if len(vals) and vals.map(lambda v: str(v).strip().lower() in lookup).all():
            found.append(c)
    return found


def load_cohort(
    clinical: Any,
    slides: Any = None,
    *,
    genotype_columns: Iterable[str] | None = None,
    responder_map: Mapping[str, int | None] | None = None,
    time_unit: str = "months",
    allow_outside: bool = False,
    check_paths: bool = False,
) -> Cohort:
    """Load and validate a clinical table (and optionally a slide manifest) into a :class:`Cohort`.

    Parameters
    ----------
    clinical
        Path to a CSV/TSV/Parquet/Excel file, or a pandas/polars DataFrame; one row per patient.
    slides
        Optional slide manifest (same formats); ``path`` is relative to the manifest's folder.
    genotype_columns
        Columns to treat as mutation calls. Default: the schema's known genes present, plus any
        gene-symbol-like column (e.g. ``TP53``) whose values are all genotype spellings.
    responder_map
        RECIST best response -> responder (1), non-responder (0) or missing (None). Default
        CR/PR -> 1, SD/PD -> 0, NE -> missing. Use e.g. ``{"CR": 1, "PR": 1, "SD": 1, "PD": 0,
        "NE": None}`` for disease control.
    time_unit
        Unit of ``os_time``/``pfs_time`` (recorded, shown in reports).
    allow_outside
        Allow manifest paths that are absolute or leave the manifest's folder.
    check_paths
        Also require every slide file to exist (an error lists the missing ones).

    Returns
    -------
    Cohort

    Raises
    ------
    SchemaError
        Listing *every* violation (duplicate ids, unknown RECIST values, negative or infinite times,
        unparseable genotypes, slides of unknown patients...) with file, row, column and value.
    CohortError
        If a file cannot be read.

    Examples
    --------
    >>> import pandas as pd
    >>> c = load_cohort(pd.DataFrame({"patient_id": ["A", "B"], "EGFR": ["mut", "wt"],
    ...                               "best_response": ["PR", "PD"]}))
    >>> c.label("EGFR").tolist(), c.clinical["responder"].tolist()
    ([1.0, 0.0], [1, 0])
    """
    schema = load_schema("clinical")
    rmap = dict(DEFAULT_RESPONDER_MAP if responder_map is None else responder_map)
    bad_keys = [k for k in rmap if k.upper() not in {"CR", "PR", "SD", "PD", "NE"}]
    bad_vals = [v for v in rmap.values() if v not in (0, 1, None)]
    if bad_keys or bad_vals:
        raise CohortError(
            f"responder_map: keys must be RECIST categories CR, PR, SD, PD, NE and values 1, 0 or None; "
            f"got keys {bad_keys} values {bad_vals}"
        )
    rmap = {k.upper(): v for k, v in rmap.items()}

    df, source, sha = _as_table(clinical, "clinical")
    df.columns = [str(c).strip() for c in df.columns]
    if len(df) == 0:
        raise CohortError(f"{source}: the clinical table has a header but no patient rows")
    lookup = {s.lower(): c for c, ss in schema["x-genotype-spellings"].items() for s in ss}
    if genotype_columns is None:
        genes = _detect_genotype_columns(df, schema["x-genotype-columns"], lookup)
    else:
        genes = list(genotype_columns)
        absent = [g for g in genes if g not in df.columns]
        if absent:
            raise CohortError(f"{source}: genotype column(s) {', '.join(absent)} not in the table")
    schema = dict(schema)
    schema["x-genotype-columns"] = genes
    coerced, violations = check_table(df, schema, source=source)

    # survival pairs: both present or both missing
    extra = []
    for t, e in schema.get("x-survival-pairs", []):
        if t in coerced and e in coerced:
            tm, em = coerced[t].isna(), coerced[e].isna()
            # rows that already failed on these columns keep their own message
            for pos in np.flatnonzero((tm ^ em).to_numpy()):
                if pos + 1 in set(
                    violations.loc[violations["column"].isin([t, e]), "row"].dropna().astype(int)
                ):
                    continue
                have, lack = (e, t) if tm.iloc[pos] else (t, e)
                extra.append(
                    (
                        source,
                        pos + 1,
                        lack,
                        None,
                        f"{lack} is missing while {have} is given; give both or neither",
                    )
                )
        elif (t in coerced) != (e in coerced):
            have, lack = (t, e) if t in coerced else (e, t)
            extra.append((source, None, lack, None, f"column {lack} is required with {have}"))

    slide_df = None
    slide_violations = pd.DataFrame(columns=violations.columns)
    slide_source = None
    slide_sha = None
    if slides is not None:
        sdf, slide_source, slide_sha = _as_table(slides, "slides")
        slide_df, slide_violations = check_table(sdf, "slide_manifest", source=slide_source)
        known = set(coerced.get("patient_id", pd.Series(dtype=object)).dropna())
        base = Path(slide_source).resolve().parent if isinstance(slides, str | Path) else Path.cwd()
        rows = []
        abs_paths = []
        for pos, rec in enumerate(slide_df.itertuples(index=False)):
            pid = getattr(rec, "patient_id", None)
            if pid is not None and pid not in known:
                rows.append(
                    (
                        slide_source,
                        pos + 1,
                        "patient_id",
                        pid,
                        "slide of a patient that is not in the clinical table",
                    )
                )
            raw = getattr(rec, "path", None)
            if raw is None:
                abs_paths.append(None)
                continue
            p = Path(str(raw))
            full = (p if p.is_absolute() else base / p).resolve()
            if not allow_outside and (p.is_absolute() or not full.is_relative_to(base)):
                rows.append(
                    (
                        slide_source,
                        pos + 1,
                        "path",
                        raw,
                        f"path leaves the manifest's folder {base}; move the slide or pass allow_outside=True",
                    )
                )
            elif check_paths and not full.exists():
                rows.append((slide_source, pos + 1, "path", raw, f"file not found ({full})"))
            abs_paths.append(str(full))
        if rows:
            slide_violations = pd.concat(
                [slide_violations, pd.DataFrame(rows, columns=slide_violations.columns)],
                ignore_index=True,
            )
        if "path" in slide_df:
            slide_df["path"] = abs_paths

    all_v = [
        v
        for v in (violations, pd.DataFrame(extra, columns=violations.columns), slide_violations)
        if len(v)
    ]
    if all_v:
        allv = pd.concat(all_v, ignore_index=True)
        n = len(allv)
        raise SchemaError(
            f"{n} problem{'s' if n != 1 else ''} in the cohort tables:\n" + format_violations(allv),
            violations=allv,
        )

    coerced = coerced.copy()
    if "best_response" in coerced:
        coerced["responder"] = (
            coerced["best_response"]
            .map(lambda v: None if v is None else rmap.get(v))
            .astype("Int8")
        )
    for _, e in schema.get("x-survival-pairs", []):
        if e in coerced:
            coerced[e] = coerced[e].astype("Int8")
    coerced["patient_id"] = coerced["patient_id"].astype(str)

    sources: dict[str, Any] = {"clinical": {"file": source, "sha256": sha}}
    if slide_source is not None:
        sources["slides"] = {"file": slide_source, "sha256": slide_sha}
    return Cohort(
        clinical=coerced,
        slides=slide_df,
        genotype_columns=genes,
        time_unit=time_unit,
        responder_map=rmap,
        sources=sources,
    )
