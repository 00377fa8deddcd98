"""The provenance section for a person: one dependency table, the hashes, the model card.

Everything else the provenance records hold (the study configuration, shown once; encoding and
tiling parameters; the full run, representation and report records) goes into collapsed
tables.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ._tables import cell, flatten, humanize, kv_table, table

__all__ = ["provenance_view"]


def provenance_view(results: Mapping[str, Any], html_only: Mapping[str, Any]) -> dict[str, Any]:
    """One dependency table, the hashes, the model card; everything else for <details>."""
    prov = results["provenance"]
    report = prov.get("report") or {}
    run = prov.get("run") or {}
    reps = prov.get("representations") or {}
    sources = prov.get("cohort_sources") or {}
    # ---- dependencies: one table, the run's and the representations' versions where they differ
    records = [("report", report), ("run", run), ("representations", reps)]
    names = sorted(
        {k for _, rec in records for k in (rec.get("dependencies") or {})}, key=str.lower
    )
    deps = []
    for pkg in names:
        versions = {src: (rec.get("dependencies") or {}).get(pkg) for src, rec in records}
        main = versions["report"] or versions["run"] or versions["representations"]
        differ = [f"{src}: {v}" for src, v in versions.items() if v and v != main]
        deps.append((pkg, str(main) + (f" ({'; '.join(differ)})" if differ else "")))
    third = math.ceil(len(deps) / 3) if deps else 0
    dep_rows = []
    for i in range(third):
        row = []
        for j in range(3):
            k = i + j * third
            row += list(deps[k]) if k < len(deps) else ["", ""]
        dep_rows.append(row)
    dependencies = (
        table(
            "Software versions (of this report; the run's or the representations' where they differ)",
            ["Package", "Version"] * 3,
            dep_rows,
        )
        if deps
        else None
    )
    # ---- versions line
    versions = []
    for k in ("package_version", "code_version"):
        if report.get(k):
            versions.append(f"{humanize(k)} {report[k]}")
    if reps.get("device"):
        versions.append(f"encoded on {reps['device']} ({reps.get('dtype', '')})")
    if html_only.get("run_created_utc"):
        versions.append(f"run recorded at {html_only['run_created_utc']} UTC")
    if html_only.get("representations_created_utc"):
        versions.append(
            f"representations created at {html_only['representations_created_utc']} UTC"
        )
    # ---- hashes
    hashes = []
    for name, src in sorted(sources.items()):
        if isinstance(src, Mapping) and src.get("sha256"):
            hashes.append(
                [
                    humanize(name) + " table",
                    str(src.get("file", "")).rsplit("/", 1)[-1],
                    str(src["sha256"]),
                ]
            )
    for name, h in sorted((run.get("input_hashes") or {}).items()):
        if isinstance(h, str) and not any(h == row[2] for row in hashes):
            hashes.append([humanize(name), "", h])
    rep_hashes = reps.get("input_hashes") or {}
    slides = rep_hashes.get("slides") if isinstance(rep_hashes, Mapping) else None
    if isinstance(slides, Mapping) and slides.get("sha256_of_sorted_file_hashes"):
        hashes.append(
            [
                "Slide files",
                f"{slides.get('n_files')} files (SHA-256 of their sorted SHA-256)",
                str(slides["sha256_of_sorted_file_hashes"]),
            ]
        )
    card = reps.get("model_card") if isinstance(reps.get("model_card"), Mapping) else {}
    if reps.get("weights_sha256"):
        hashes.append(["Model weights", str(card.get("weights", "")), str(reps["weights_sha256"])])
    head = card.get("head") if isinstance(card.get("head"), Mapping) else {}
    if reps.get("head_sha256"):
        hashes.append(
            ["Model head weights", str(head.get("weights", "")), str(reps["head_sha256"])]
        )
    hash_table = (
        table("Input and model hashes (SHA-256)", ["Input", "File", "SHA-256"], hashes)
        if hashes
        else None
    )
    # ---- model card
    model = []
    if card:
        for k in (
            "name",
            "version",
            "description",
            "intended_use",
            "format",
            "architecture",
            "licence",
        ):
            if card.get(k):
                model.append([humanize(k), str(card[k])])
        inp = card.get("input") if isinstance(card.get("input"), Mapping) else {}
        if inp:
            model.append(
                [
                    "Input tiles",
                    f"{inp.get('tile_px', '?')} px at {inp.get('mpp', '?')} µm/px; normalised with mean "
                    f"{cell(inp.get('mean'))}, std {cell(inp.get('std'))}",
                ]
            )
        out = card.get("output") if isinstance(card.get("output"), Mapping) else {}
        if out:
            model.append(["Output", ", ".join(f"{k} {cell(v, k)}" for k, v in out.items())])
        if head.get("description"):
            model.append(["Head", str(head["description"])])
    model_table = table("Model card of the encoder", ["Field", "Value"], model) if model else None
    # ---- collapsed: configuration (once), encoding parameters, the rest
    cfg = prov.get("config")
    run_rest = {k: v for k, v in run.items() if k not in ("dependencies", "input_hashes")}
    if cfg is not None and run_rest.get("parameters") == cfg:
        run_rest.pop("parameters")  # the configuration, shown once below
    rep_rest = {
        k: v
        for k, v in reps.items()
        if k not in ("dependencies", "input_hashes", "model_card", "weights_sha256", "head_sha256")
    }
    rep_rest_card = {k: v for k, v in card.items() if k not in ("description", "intended_use")}
    collapsed = [
        kv_table("Study configuration", flatten(cfg)) if cfg else None,
        kv_table("Encoding and tiling", flatten(rep_rest)) if rep_rest else None,
        kv_table("Model card, all fields", flatten(rep_rest_card)) if rep_rest_card else None,
        kv_table("Run record", flatten(run_rest)) if run_rest else None,
        kv_table(
            "Report record",
            flatten({k: v for k, v in report.items() if k != "dependencies"}),
        ),
    ]
    return {
        "dependencies": dependencies,
        "versions": "; ".join(versions),
        "hashes": hash_table,
        "model": model_table,
        "collapsed": [t for t in collapsed if t],
    }
