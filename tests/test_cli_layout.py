"""The CLI and the pipeline as packages (issue 13): no module over ~800 lines, each imports on its
own, ``python -m tario_clinical.cli`` and the console script keep working; the commands that
write an output folder hold its advisory lock (a second run gets exit 2 naming the folder and
the holder), and two concurrent ``decode`` runs into one folder both finish with one
consistent set of files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from threadpoolctl import threadpool_limits

import tario_clinical
import tario_clinical as tc
from tario_clinical.cli import cli

ROOT = Path(tario_clinical.__file__).parent
REPO = ROOT.parent
MODULES = [
    f"tario_clinical.{pkg}" + ("" if f.stem == "__init__" else f".{f.stem}")
    for pkg in ("cli", "pipeline")
    for f in sorted((ROOT / pkg).glob("*.py"))
    if f.stem != "__main__"
]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def test_packages_replace_the_modules():
    assert not (ROOT / "cli.py").exists() and not (ROOT / "pipeline.py").exists()
    assert "tario_clinical.cli.decode_commands" in MODULES
    assert "tario_clinical.pipeline.endpoints" in MODULES


@pytest.mark.parametrize("module", MODULES)
def test_module_is_small_and_imports_alone(module):
    parts = module.split(".")[1:]
    path = ROOT.joinpath(*parts)
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    n = len(path.read_text().splitlines())
    assert n <= 800, f"{module} has {n} lines"
    r = subprocess.run(
        [sys.executable, "-c", f"import {module}"], capture_output=True, text=True, env=_env()
    )
    assert r.returncode == 0, r.stderr[-2000:]


def test_entry_points():
    r = subprocess.run(
        [sys.executable, "-m", "tario_clinical.cli", "--help"],
        capture_output=True,
        text=True,
        env=_env(),
    )
    assert r.returncode == 0 and "decode" in r.stdout and "demo-validation" in r.stdout
    text = (REPO / "pyproject.toml").read_text()
    assert 'tario-clinical = "tario_clinical.cli:main"' in text
    from tario_clinical.cli import main

    with pytest.raises(SystemExit) as err:
        main(["--version"])
    assert err.value.code == 0


@pytest.fixture(scope="module")
def trial(tmp_path_factory):
    root = tmp_path_factory.mktemp("lock")
    with threadpool_limits(1):
        tc.simulate_trial(80, seed=5, n_genes=40).write(root / "data")
    return root


def test_a_second_run_into_a_held_folder_is_exit_2(trial, tmp_path):
    out = tmp_path / "out"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom tario_clinical._lock import output_lock\n"
            f"with output_lock({str(out)!r}, purpose='someone else'):\n"
            "    print('held', flush=True)\n    time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        (trial / "study.yaml").write_text(
            "cohort: {clinical: data/clinical.csv}\nrepresentations: data/representations.h5ad\n"
            "decode: {targets: [EGFR], n_repeats: 1, p_method: jackknife}\n"
            "survival: null\ndesign: null\n"
        )
        r = CliRunner().invoke(
            cli, ["run", "--config", str(trial / "study.yaml"), "--out", str(out)]
        )
        assert r.exit_code == 2, r.output
        assert str(out) in r.output and str(holder.pid) in r.output and "Traceback" not in r.output
        assert sorted(p.name for p in out.iterdir()) == [".tario-clinical.lock"]
    finally:
        holder.kill()
        holder.wait()


def test_two_concurrent_decode_runs_into_one_folder(trial, tmp_path):
    out = tmp_path / "shared"
    base = [
        sys.executable, "-m", "tario_clinical.cli", "-q", "decode",
        "--clinical", str(trial / "data" / "clinical.csv"),
        "--representations", str(trial / "data" / "representations.h5ad"),
        "--targets", "EGFR", "--n-splits", "3", "--n-repeats", "1", "--p-method", "jackknife",
        "--jobs", "1", "--no-progress", "--out", str(out),
    ]  # fmt: skip
    env = dict(_env(), OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    procs = [
        subprocess.Popen([*base, "--seed", str(s)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=env)
        for s in (0, 1)
    ]  # fmt: skip
    results = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [e for _, e in results]
    saved = json.loads((out / "decode.json").read_text())
    seed = saved["params"]["seed"]
    assert seed in (0, 1)
    listing = json.loads((out / ".tario-clinical-files.json").read_text())
    assert sorted(listing["files"]) == sorted(
        ["decode.json", "decode_summary.csv", "exclusions.csv", "oof_scores.csv"]
    )
    # the summary table is the same run's as decode.json (one consistent set, not a mix)
    import pandas as pd

    table = pd.read_csv(out / "decode_summary.csv")
    assert table["auroc"].iloc[0] == pytest.approx(saved["summary"][0]["auroc"], rel=1e-9)
    assert not list(tmp_path.glob(".shared.tc-stage-*"))


def test_a_second_encode_into_a_held_folder_is_exit_2(tmp_path):
    """``encode`` holds the folder's lock like the other writing commands: with the inputs
    valid, a second run into a held folder stops at once with exit 2 naming folder and holder;
    bad inputs are reported before any folder is created or locked."""
    import numpy as np
    import pandas as pd

    from tario_clinical.cli.encode_commands import encode
    from tario_clinical.simulate.slides import write_synthetic_slides

    z = np.random.default_rng(3).normal(size=(2, 5))
    lat = pd.DataFrame(z, index=["P0", "P1"], columns=[f"P{i:02d}" for i in range(5)])
    write_synthetic_slides(lat, tmp_path / "in", seed=3, size_px=256)
    manifest = tmp_path / "in" / "slides.csv"
    out = tmp_path / "enc"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom tario_clinical._lock import output_lock\n"
            f"with output_lock({str(out)!r}, purpose='someone else'):\n"
            "    print('held', flush=True)\n    time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    args = ["--model", "demo", "--out", str(out), "--device", "cpu", "--no-progress"]
    try:
        assert holder.stdout.readline().strip() == "held"
        r = CliRunner().invoke(encode, ["--slides", str(manifest), *args])
        assert r.exit_code == 2, r.output
        assert str(out) in r.output and str(holder.pid) in r.output and "someone else" in r.output
        assert "Traceback" not in r.output
        assert sorted(p.name for p in out.iterdir()) == [".tario-clinical.lock"]
        # an invalid manifest is refused before the folder is touched
        bad = tmp_path / "bad.csv"
        bad.write_text("slide_id,path\nS1,x.tiff\n")
        fresh = tmp_path / "never"
        r = CliRunner().invoke(encode, ["--slides", str(bad), *args[:2], "--out", str(fresh)])
        assert r.exit_code == 2 and "patient_id" in r.output, r.output
        assert not fresh.exists()
    finally:
        holder.kill()
        holder.wait()
    # once the holder is gone the folder is free: the run goes through
    r = CliRunner().invoke(encode, ["--slides", str(manifest), *args])
    assert r.exit_code == 0, r.output
    assert (out / "representations.h5ad").is_file() and not (out / ".tario-clinical.lock").exists()
