"""A corpus of malformed inputs: clinical tables, slide manifests, representations, YAML configs.

Every case must give exit code 2 from the CLI, a message naming the file and the row/column/key,
no Python traceback, and no output files. (Slides and model cards: test_slides_bad.py and
test_encode_faults.py.)
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from tario_clinical.cli import cli

GOOD_CLINICAL = (
    "patient_id,arm,EGFR,KRAS,best_response,os_time,os_event,age\n"
    "P1,control,mut,wt,PR,10.5,1,61\n"
    "P2,experimental,wt,mut,SD,7,0,70\n"
    "P3,control,wt,wt,PD,3.2,1,55\n"
    "P4,experimental,wt,mut,CR,20,0,48\n"
)


def _clinical_with(row: int, column: str, value: str) -> str:
    lines = GOOD_CLINICAL.strip().split("\n")
    header = lines[0].split(",")
    cells = lines[row].split(",")
    cells[header.index(column)] = value
    lines[row] = ",".join(cells)
    return "\n".join(lines) + "\n"


@dataclass
class Case:
    name: str
    files: dict[str, str | bytes | Callable[[Path], None]]
    args: list[str]
    expect: list[str]  # fragments the message must contain ("{dir}" is replaced by the temp dir)


def _write_h5ad(
    x: np.ndarray, obs: list[str], var: list[str] | None = None, uns: dict | None = None
) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        var_names = var or [f"G{i}" for i in range(x.shape[1])]
        a = ad.AnnData(
            X=x.astype(np.float32),
            obs=pd.DataFrame(index=pd.Index(obs, dtype=str)),
            var=pd.DataFrame(index=pd.Index(var_names, dtype=str)),
        )
        a.uns["tario_clinical"] = uns or {"schema_version": 1, "kind": "patient"}
        a.write_h5ad(path)

    return write


V = ["validate", "--clinical", "clinical.csv"]
VS = [*V, "--slides", "slides.csv"]
RUN = ["run", "--config", "study.yaml", "--out", "out"]
GOOD_YAML = "seed: 0\ncohort:\n  clinical: clinical.csv\nrepresentations: reps.h5ad\ndecode:\n  targets: [EGFR, KRAS]\nsurvival:\n  arm: arm\n  score_target: EGFR\n"
GOOD_REPS = _write_h5ad(np.arange(12.0).reshape(4, 3), ["P1", "P2", "P3", "P4"])
MANIFEST = "slide_id,patient_id,path\nS1,P1,slides/s1.tiff\nS2,P2,slides/s2.tiff\n"

CASES = [
    # ---------------------------------------------------------------- clinical tables
    Case(
        "duplicate-id",
        {"clinical.csv": _clinical_with(3, "patient_id", "P1")},
        V,
        ["clinical.csv", "row 3", "patient_id", "duplicate"],
    ),
    Case(
        "recist-great",
        {"clinical.csv": _clinical_with(2, "best_response", "GREAT")},
        V,
        ["row 2", "best_response", "'GREAT'", "CR, PR, SD, PD, NE"],
    ),
    Case(
        "negative-time",
        {"clinical.csv": _clinical_with(1, "os_time", "-4")},
        V,
        ["row 1", "os_time", "'-4'", ">= 0"],
    ),
    Case(
        "time-with-unit",
        {"clinical.csv": _clinical_with(4, "os_time", "12mo")},
        V,
        ["row 4", "os_time", "'12mo'", "number"],
    ),
    Case(
        "event-2",
        {"clinical.csv": _clinical_with(2, "os_event", "2")},
        V,
        ["row 2", "os_event", "one of 0, 1"],
    ),
    Case(
        "event-yes",
        {"clinical.csv": _clinical_with(2, "os_event", "dead")},
        V,
        ["row 2", "os_event", "'dead'"],
    ),
    Case(
        "event-missing-time-given",
        {"clinical.csv": _clinical_with(3, "os_event", "")},
        V,
        ["row 3", "os_event is missing while os_time is given"],
    ),
    Case(
        "genotype-maybe",
        {"clinical.csv": _clinical_with(1, "EGFR", "maybe")},
        V,
        ["row 1", "EGFR", "'maybe'", "genotype"],
    ),
    Case(
        "genotype-typo",
        {"clinical.csv": _clinical_with(2, "KRAS", "G12C?")},
        V,
        ["row 2", "KRAS", "'G12C?'"],
    ),
    Case(
        "age-200", {"clinical.csv": _clinical_with(1, "age", "200")}, V, ["row 1", "age", "<= 120"]
    ),
    Case(
        "empty-id",
        {"clinical.csv": _clinical_with(2, "patient_id", "")},
        V,
        ["row 2", "patient_id", "missing"],
    ),
    Case(
        "no-id-column",
        {"clinical.csv": GOOD_CLINICAL.replace("patient_id", "subject")},
        V,
        ["clinical.csv", "patient_id", "required column"],
    ),
    Case(
        "semicolon-csv",
        {"clinical.csv": GOOD_CLINICAL.replace(",", ";")},
        V,
        ["clinical.csv", "patient_id", "columns found"],
    ),
    Case(
        "duplicate-header",
        {"clinical.csv": GOOD_CLINICAL.replace("age", "EGFR", 1)},
        V,
        ["EGFR", "more than once"],
    ),
    Case("empty-file", {"clinical.csv": ""}, V, ["clinical.csv"]),
    Case(
        "header-only",
        {"clinical.csv": GOOD_CLINICAL.split("\n")[0] + "\n"},
        V,
        ["clinical.csv", "no patient rows"],
    ),
    Case(
        "ragged-row",
        {"clinical.csv": GOOD_CLINICAL + "P5,control,wt,wt,PR,1,1,50,extra,cells\n"},
        V,
        ["clinical.csv", "line"],
    ),
    Case(
        "latin-1",
        {"clinical.csv": GOOD_CLINICAL.replace("control", "contr\xf4le").encode("latin-1")},
        V,
        ["clinical.csv", "UTF-8"],
    ),
    Case("not-found", {}, V, ["clinical.csv", "not found"]),
    Case(
        "bad-extension",
        {"clinical.json": "{}"},
        ["validate", "--clinical", "clinical.json"],
        ["clinical.json", "unsupported table format"],
    ),
    Case(
        "corrupt-xlsx",
        {"clinical.xlsx": b"PK\x03\x04 this is not a workbook"},
        ["validate", "--clinical", "clinical.xlsx"],
        ["clinical.xlsx", "cannot be read"],
    ),
    Case(
        "corrupt-parquet",
        {"clinical.parquet": b"PAR1garbage"},
        ["validate", "--clinical", "clinical.parquet"],
        ["clinical.parquet", "cannot be read"],
    ),
    Case(
        "control-char-id",
        {"clinical.csv": _clinical_with(2, "patient_id", "P\x072")},
        V,
        ["row 2", "patient_id", "not allowed"],
    ),
    # ---------------------------------------------------------------- slide manifests
    Case(
        "slide-unknown-patient",
        {"clinical.csv": GOOD_CLINICAL, "slides.csv": MANIFEST.replace("S2,P2", "S2,P9")},
        VS,
        ["slides.csv", "row 2", "patient_id", "'P9'", "not in the clinical table"],
    ),
    Case(
        "slide-duplicate-id",
        {"clinical.csv": GOOD_CLINICAL, "slides.csv": MANIFEST.replace("S2,", "S1,")},
        VS,
        ["slides.csv", "row 2", "slide_id", "duplicate"],
    ),
    Case(
        "slide-path-escape",
        {
            "clinical.csv": GOOD_CLINICAL,
            "slides.csv": MANIFEST.replace("slides/s2.tiff", "../../etc/passwd"),
        },
        VS,
        ["slides.csv", "row 2", "path", "leaves the manifest's folder"],
    ),
    Case(
        "slide-absolute-path",
        {
            "clinical.csv": GOOD_CLINICAL,
            "slides.csv": MANIFEST.replace("slides/s1.tiff", "/tmp/s1.tiff"),
        },
        VS,
        ["row 1", "path", "leaves the manifest's folder"],
    ),
    Case(
        "slide-mpp-zero",
        {
            "clinical.csv": GOOD_CLINICAL,
            "slides.csv": "slide_id,patient_id,path,mpp\nS1,P1,s1.tiff,0\n",
        },
        VS,
        ["row 1", "mpp", "> 0"],
    ),
    Case(
        "slide-mpp-text",
        {
            "clinical.csv": GOOD_CLINICAL,
            "slides.csv": "slide_id,patient_id,path,mpp\nS1,P1,s1.tiff,half\n",
        },
        VS,
        ["row 1", "mpp", "'half'"],
    ),
    Case(
        "slide-no-path-column",
        {"clinical.csv": GOOD_CLINICAL, "slides.csv": "slide_id,patient_id\nS1,P1\n"},
        VS,
        ["slides.csv", "path", "required column"],
    ),
    Case(
        "slide-empty-path",
        {"clinical.csv": GOOD_CLINICAL, "slides.csv": "slide_id,patient_id,path\nS1,P1,\n"},
        VS,
        ["row 1", "path", "missing"],
    ),
    Case(
        "slide-missing-file",
        {"clinical.csv": GOOD_CLINICAL, "slides.csv": MANIFEST},
        [*VS, "--check-paths"],
        ["slides.csv", "row 1", "file not found"],
    ),
    Case(
        "slide-id-with-slash",
        {"clinical.csv": GOOD_CLINICAL, "slides.csv": MANIFEST.replace("S1,", "a/b,")},
        VS,
        ["row 1", "slide_id", "not allowed"],
    ),
    # ---------------------------------------------------------------- representations
    Case(
        "reps-nan",
        {
            "clinical.csv": GOOD_CLINICAL,
            "study.yaml": GOOD_YAML,
            "reps.h5ad": _write_h5ad(
                np.array([[1, np.nan, 2], [1, 2, 3], [1, 2, 3], [0, 0, 0.0]]),
                ["P1", "P2", "P3", "P4"],
            ),
        },
        RUN,
        ["reps.h5ad", "row 1", "NaN or inf", "G1"],
    ),
    Case(
        "reps-inf",
        {
            "clinical.csv": GOOD_CLINICAL,
            "study.yaml": GOOD_YAML,
            "reps.h5ad": _write_h5ad(
                np.array([[1, 1, 2], [1, 2, 3], [1, np.inf, 3], [0, 0, 0.0]]),
                ["P1", "P2", "P3", "P4"],
            ),
        },
        RUN,
        ["reps.h5ad", "row 3", "NaN or inf"],
    ),
    Case(
        "reps-duplicate-ids",
        {
            "clinical.csv": GOOD_CLINICAL,
            "study.yaml": GOOD_YAML,
            "reps.h5ad": _write_h5ad(np.ones((4, 3)), ["P1", "P2", "P2", "P4"]),
        },
        RUN,
        ["reps.h5ad", "row 3", "duplicate id"],
    ),
    Case(
        "reps-unknown-patient",
        {
            "clinical.csv": GOOD_CLINICAL,
            "study.yaml": GOOD_YAML,
            "reps.h5ad": _write_h5ad(np.ones((4, 3)), ["P1", "P2", "P3", "X9"]),
        },
        RUN,
        ["reps.h5ad", "row 4", "'X9'", "missing from the clinical table"],
    ),
    Case(
        "reps-no-overlap",
        {
            "clinical.csv": GOOD_CLINICAL,
            "study.yaml": GOOD_YAML,
            "reps.h5ad": _write_h5ad(np.ones((2, 3)), ["A", "B"]),
        },
        RUN,
        ["reps.h5ad", "none of the 2 representation ids"],
    ),
    Case(
        "reps-duplicate-features",
        {
            "clinical.csv": GOOD_CLINICAL,
            "study.yaml": GOOD_YAML,
            "reps.h5ad": _write_h5ad(
                np.ones((4, 3)), ["P1", "P2", "P3", "P4"], ["EGFR", "KRAS", "EGFR"]
            ),
        },
        RUN,
        ["reps.h5ad", "var_names", "duplicate feature names", "EGFR"],
    ),
    Case(
        "reps-newer-schema",
        {
            "clinical.csv": GOOD_CLINICAL,
            "study.yaml": GOOD_YAML,
            "reps.h5ad": _write_h5ad(
                np.ones((4, 3)), ["P1", "P2", "P3", "P4"], uns={"schema_version": 99}
            ),
        },
        RUN,
        ["reps.h5ad", "schema_version", "upgrade"],
    ),
    Case(
        "reps-truncated",
        {
            "clinical.csv": GOOD_CLINICAL,
            "study.yaml": GOOD_YAML,
            "reps.h5ad": b"\x89HDF\r\n\x1a\n truncated",
        },
        RUN,
        ["reps.h5ad", "cannot be read"],
    ),
    Case(
        "reps-missing",
        {"clinical.csv": GOOD_CLINICAL, "study.yaml": GOOD_YAML},
        RUN,
        ["reps.h5ad", "not found"],
    ),
    # ---------------------------------------------------------------- YAML configs
    Case(
        "yaml-syntax",
        {"study.yaml": "cohort:\n  clinical: [unclosed\n"},
        RUN,
        ["study.yaml", "not valid YAML", "line"],
    ),
    Case(
        "yaml-unknown-key",
        {"study.yaml": GOOD_YAML + "decoder: {}\n"},
        RUN,
        ["study.yaml", "key 'decoder'", "unknown key", "did you mean 'decode'"],
    ),
    Case(
        "yaml-nested-typo",
        {"study.yaml": GOOD_YAML.replace("targets:", "targts:")},
        RUN,
        ["key 'decode.targts'", "did you mean 'targets'"],
    ),
    Case(
        "yaml-wrong-type",
        {"study.yaml": GOOD_YAML + "report:\n  show_patient_ids: perhaps\n"},
        RUN,
        ["key 'report.show_patient_ids'", "perhaps"],
    ),
    Case(
        "yaml-bad-choice",
        {"study.yaml": GOOD_YAML.replace("  arm: arm\n", "  arm: arm\n  cutoff: best\n")},
        RUN,
        ["key 'survival.cutoff'", "'median'", "'best'"],
    ),
    Case(
        "yaml-missing-clinical",
        {"study.yaml": "representations: reps.h5ad\ncohort: {}\n"},
        RUN,
        ["key 'cohort.clinical'", "required"],
    ),
    Case(
        "yaml-no-source",
        {"study.yaml": "cohort:\n  clinical: clinical.csv\n"},
        RUN,
        ["representations", "encode"],
    ),
    Case(
        "yaml-python-tag",
        {"study.yaml": "cohort: !!python/object/apply:os.system ['echo pwned > pwned.txt']\n"},
        RUN,
        ["study.yaml", "not valid YAML"],
    ),
    Case("yaml-list", {"study.yaml": "- a\n- b\n"}, RUN, ["study.yaml", "mapping"]),
    Case(
        "yaml-negative-seed",
        {"study.yaml": GOOD_YAML.replace("seed: 0", "seed: -3")},
        RUN,
        ["key 'seed'"],
    ),
    Case("yaml-not-found", {}, RUN, ["study.yaml", "not found"]),
    Case(
        "yaml-unknown-target",
        {
            "clinical.csv": GOOD_CLINICAL,
            "reps.h5ad": GOOD_REPS,
            "study.yaml": GOOD_YAML.replace("[EGFR, KRAS]", "[EGFR, BRCA9]"),
        },
        RUN,
        ["decode.targets", "'BRCA9'", "clinical.csv"],
    ),
    Case(
        "yaml-non-binary-target",
        {
            "clinical.csv": GOOD_CLINICAL,
            "reps.h5ad": GOOD_REPS,
            "study.yaml": GOOD_YAML.replace("[EGFR, KRAS]", "[EGFR, age]"),
        },
        RUN,
        ["age", "row 1", "61", "binary label"],
    ),
    Case(
        "yaml-missing-endpoint",
        {
            "clinical.csv": GOOD_CLINICAL,
            "reps.h5ad": GOOD_REPS,
            "study.yaml": GOOD_YAML.replace("  arm: arm\n", "  arm: arm\n  endpoint: pfs\n"),
        },
        RUN,
        ["key 'survival'", "pfs_time"],
    ),
    Case(
        "yaml-score-target-not-decoded",
        {
            "clinical.csv": GOOD_CLINICAL,
            "reps.h5ad": GOOD_REPS,
            "study.yaml": GOOD_YAML.replace("score_target: EGFR", "score_target: responder"),
        },
        RUN,
        ["survival.score_target", "'responder'"],
    ),
]


def test_corpus_is_large_enough():
    assert len(CASES) >= 40
    assert len({c.name for c in CASES}) == len(CASES)


def _materialise(case: Case, folder: Path) -> None:
    for name, content in case.files.items():
        path = folder / name
        if callable(content):
            content(path)
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_malformed_input_gives_clear_error(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    _materialise(case, tmp_path)
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, case.args)
    msg = result.output
    assert result.exit_code == 2, f"exit {result.exit_code}: {msg}\n{result.exception!r}"
    assert msg.startswith("error: ")
    assert "Traceback" not in msg
    for fragment in case.expect:
        assert fragment in msg, f"{fragment!r} not in:\n{msg}"
    # no output, inputs untouched, nothing executed
    after = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    assert after == before, f"files changed: {set(after) ^ set(before)}"
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "pwned.txt").exists()


def test_real_process_exit_code_and_no_traceback(tmp_path: Path):
    (tmp_path / "clinical.csv").write_text(_clinical_with(2, "best_response", "GREAT"))
    env = {k: v for k, v in os.environ.items() if k != "TARIO_CLINICAL_DEBUG"}
    proc = subprocess.run(
        [sys.executable, "-m", "tario_clinical.cli", "validate", "--clinical", "clinical.csv"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 2
    assert "GREAT" in proc.stderr and "Traceback" not in proc.stderr + proc.stdout
