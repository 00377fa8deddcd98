"""Many GPUs from the main interface (issue 17 item 7): ``tario-clinical encode --engine ray
[--ray-address ...]`` and ``encode: {engine: ray}`` in the study YAML, with the presets, resume
and outputs of the single-machine engine.

The cluster tests start a real local Ray cluster (``ray start --head`` in its own session,
4 logical CPUs) and run the command-line entry points in fresh interpreters against it, with two
reader and two model actors (each a worker process of its own); they compare every output with
the default engine's, bit for bit. They are skipped, with the reason, when Ray is not installed
(``pip install 'tario-clinical[ray]'``).

All Ray traffic stays on 127.0.0.1: the head binds there, and ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``
(Ray's own switch for single-machine use) stops Ray from rewriting "127.0.0.1" into the machine's
network address, for the head and for the drivers the tests start.
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from tario_clinical.cli.encode_commands import encode
from tario_clinical.config import config_from_dict
from tario_clinical.errors import ConfigError

HAS_RAY = importlib.util.find_spec("ray") is not None
needs_ray = pytest.mark.skipif(
    not HAS_RAY, reason="Ray is not installed (pip install 'tario-clinical[ray]')"
)


def _latent(n: int, seed: int = 0) -> pd.DataFrame:
    z = np.random.default_rng(seed).normal(size=(n, 5))
    return pd.DataFrame(
        z, index=pd.Index([f"P{i:03d}" for i in range(n)], name="patient_id"),
        columns=[f"P{i:02d}" for i in range(5)],
    )  # fmt: skip


@pytest.fixture(scope="module")
def slides(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six synthetic slides of three patients; ``first4.csv`` holds the first four."""
    from tario_clinical.simulate.slides import write_synthetic_slides

    d = tmp_path_factory.mktemp("ray_slides")
    man = write_synthetic_slides(_latent(3), d, seed=11, slides_per_patient=2, size_px=384)
    pd.read_csv(d / "slides.csv").head(4).to_csv(d / "first4.csv", index=False)
    assert len(man) == 6
    return d


def _local(manifest: Path, out: Path) -> str:
    r = CliRunner().invoke(encode, ["--slides", str(manifest), "--model", "demo", "--out", str(out),
                                    "--device", "cpu", "--batch-size", "16", "--tile-output",
                                    "--no-progress"])  # fmt: skip
    assert r.exit_code == 0, r.output
    return r.output


@pytest.fixture(scope="module")
def local_ref(slides: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ref") / "enc"
    _local(slides / "slides.csv", out)
    return out


# ---- a local Ray cluster ---------------------------------------------------------------------


#: environment of every Ray process the tests start (see the module docstring)
#: (token authentication with a token made for this test run, so nothing is read from or
#: written to ~/.ray)
RAY_ENV = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "token",
           "RAY_AUTH_TOKEN": secrets.token_hex(32), "TQDM_DISABLE": "1"}  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def ray_cluster() -> str:
    """``ray start --head --block`` in a session of its own; yields its address and ends the
    whole session (head, raylet and the worker processes) afterwards."""
    if not HAS_RAY:
        pytest.skip("Ray is not installed (pip install 'tario-clinical[ray]')")
    port = _free_port()
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths are limited
    cmd = [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block",
           f"--port={port}", "--node-ip-address=127.0.0.1", "--num-cpus=4", "--num-gpus=0",
           "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp}"]  # fmt: skip
    log = Path(temp) / "start.log"
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            cmd, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True,
            env={**RAY_ENV, "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0"},  # stop at once
        )  # fmt: skip
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while b"Ray runtime started" not in log.read_bytes():
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"ray start failed:\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.5)
        yield address
    finally:
        # SIGTERM to `ray start` itself: it drains the node and stops its processes (~2 s);
        # then SIGKILL to whatever of its session is left
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the session started above, nothing else
        except ProcessLookupError:
            pass
        proc.wait(10)
        shutil.rmtree(temp, ignore_errors=True)


def _ray_cli(manifest: Path, out: Path, address: str, *extra: str) -> subprocess.CompletedProcess:
    """The installed entry point in a fresh interpreter: ``tario-clinical encode --engine ray``."""
    cmd = [sys.executable, "-m", "tario_clinical.cli", "encode", "--slides", str(manifest),
           "--model", "demo", "--out", str(out), "--device", "cpu", "--batch-size", "16",
           "--tile-output", "--no-progress", "--engine", "ray", "--ray-address", address,
           "--ray-actors", "2", "--ray-readers", "2", *extra]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=420, env=RAY_ENV)


def _assert_same_outputs(got: Path, ref: Path) -> None:
    import anndata as ad

    assert json.loads((got / "run.json").read_text()) == json.loads((ref / "run.json").read_text())
    for name in ("representations.h5ad", "slides.h5ad"):
        a, b = ad.read_h5ad(got / name), ad.read_h5ad(ref / name)
        assert list(a.obs_names) == list(b.obs_names)
        np.testing.assert_array_equal(a.X, b.X, err_msg=name)  # bit for bit
        for layer in b.layers:
            np.testing.assert_array_equal(a.layers[layer], b.layers[layer], err_msg=layer)
        pd.testing.assert_frame_equal(a.obs, b.obs)
    for f in sorted((ref / "slides").glob("*.npz")):
        with np.load(f) as zb, np.load(got / "slides" / f.name) as za:
            for key in ("sum", "sumsq", "n_tiles"):
                np.testing.assert_array_equal(za[key], zb[key])
    for f in sorted((ref / "tiles").glob("*.h5ad")):
        a, b = ad.read_h5ad(got / "tiles" / f.name), ad.read_h5ad(f)
        np.testing.assert_array_equal(a.X, b.X)
        np.testing.assert_array_equal(a.obsm["spatial"], b.obsm["spatial"])
    pd.testing.assert_frame_equal(
        pd.read_csv(got / "exclusions.csv"), pd.read_csv(ref / "exclusions.csv")
    )


@pytest.mark.slow
def test_ray_cli_on_a_local_cluster_gives_the_default_engines_outputs(
    slides: Path, local_ref: Path, ray_cluster: str, tmp_path: Path
) -> None:
    t0 = time.perf_counter()
    r = _ray_cli(slides / "slides.csv", tmp_path / "ray", ray_cluster)
    seconds = time.perf_counter() - t0
    assert r.returncode == 0, r.stdout + r.stderr[-4000:]
    assert "3 patients x 40 features; 6 slides, 0 excluded" in r.stdout
    assert "Traceback" not in r.stderr
    _assert_same_outputs(tmp_path / "ray", local_ref)
    import anndata as ad

    params = ad.read_h5ad(tmp_path / "ray" / "representations.h5ad").uns["tario_clinical"]
    params = params["parameters"]
    assert params["engine"] == "ray" and params["ray_address"] == ray_cluster
    assert (params["ray_actors"], params["ray_readers"], params["ray_device"]) == (2, 2, "cpu")
    ref = ad.read_h5ad(local_ref / "representations.h5ad").uns["tario_clinical"]["parameters"]
    assert ref["engine"] == "local"
    print(f"ray CLI on the local cluster: {seconds:.1f} s")  # shown with -s; for the record


@pytest.mark.slow
def test_either_engine_resumes_the_others_output(
    slides: Path, local_ref: Path, ray_cluster: str, tmp_path: Path
) -> None:
    """Four slides with the default engine, then all six with Ray into the same folder: Ray
    encodes only the two new slides; the default engine then finds nothing left to do. The
    outputs are those of one default-engine run over all six."""
    import anndata as ad

    out = tmp_path / "enc"
    _local(slides / "first4.csv", out)
    new = ad.read_h5ad(local_ref / "slides.h5ad").obs["n_tiles"].iloc[4:].sum()
    r = _ray_cli(slides / "slides.csv", out, ray_cluster)
    assert r.returncode == 0, r.stdout + r.stderr[-4000:]
    assert f"; {new} tiles encoded this run" in r.stdout
    assert "6 slides, 0 excluded" in r.stdout
    _assert_same_outputs(out, local_ref)
    again = _local(slides / "slides.csv", out)
    assert "; 0 tiles encoded this run" in again
    _assert_same_outputs(out, local_ref)


@pytest.mark.slow
def test_study_yaml_encode_engine_ray(ray_cluster: str, tmp_path: Path) -> None:
    """``encode: {engine: ray, ray_address: ...}`` in a study YAML: the run encodes through the
    cluster and its representations are the default engine's."""
    import anndata as ad

    from tario_clinical.config import load_config
    from tario_clinical.encode import encode_slides
    from tario_clinical.simulate import simulate_trial
    from tario_clinical.simulate.slides import write_synthetic_slides

    data = tmp_path / "data"
    trial = simulate_trial(40, seed=3, n_genes=50)
    trial.write(data)
    write_synthetic_slides(trial, data, seed=3, size_px=256)
    (tmp_path / "study.yaml").write_text(
        "seed: 0\n"
        "cohort: {clinical: data/clinical.csv, slides: data/slides.csv}\n"
        f"encode: {{model: demo, device: cpu, engine: ray, ray_address: '{ray_cluster}',"
        " ray_actors: 2, ray_readers: 2}\n"
        "decode: {targets: [EGFR], n_splits: 2, n_repeats: 1, ci_method: delong,"
        " p_method: delong}\n"
        "survival: null\ndesign: null\n",
        encoding="utf-8",
    )
    cfg = load_config(tmp_path / "study.yaml")
    assert cfg.encode is not None and cfg.encode.engine == "ray"
    cmd = [sys.executable, "-m", "tario_clinical.cli", "run", "--config",
           str(tmp_path / "study.yaml"), "--out", str(tmp_path / "out"), "--no-progress"]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=420, env=RAY_ENV)
    assert r.returncode == 0, r.stdout + r.stderr[-4000:]
    got = ad.read_h5ad(tmp_path / "out" / "encode" / "representations.h5ad")
    assert got.uns["tario_clinical"]["parameters"]["engine"] == "ray"
    ref = encode_slides(data / "slides.csv", "demo", tmp_path / "ref", device="cpu",
                        progress=False)  # fmt: skip
    assert list(got.obs_names) == list(ref.representations.obs_names)
    np.testing.assert_array_equal(got.X, ref.representations.X)
    assert (tmp_path / "out" / "results.json").is_file()


# ---- without a cluster --------------------------------------------------------------------------


def test_cli_refuses_engine_options_that_do_not_fit(slides: Path, tmp_path: Path) -> None:
    base = ["--slides", str(slides / "slides.csv"), "--model", "demo", "--out", str(tmp_path / "o")]
    r = CliRunner().invoke(encode, [*base, "--ray-address", "auto"])
    assert r.exit_code == 2 and "--ray-address needs --engine ray" in r.output
    r = CliRunner().invoke(encode, [*base, "--ray-actors", "2", "--ray-readers", "3"])
    assert r.exit_code == 2 and "--ray-actors, --ray-readers needs --engine ray" in r.output
    r = CliRunner().invoke(encode, [*base, "--engine", "ray", "--workers", "2"])
    assert r.exit_code == 2 and "--ray-readers" in r.output
    r = CliRunner().invoke(encode, [*base, "--engine", "spark"])
    assert r.exit_code == 2 and "'local', 'ray'" in r.output
    assert not (tmp_path / "o").exists()


def test_ray_cli_with_a_preset_checks_the_weights_before_starting_ray(
    slides: Path, tmp_path: Path
) -> None:
    """The presets work with --engine ray as with the default engine: a preset's missing weights
    are reported (exit 2, the download hint) before any cluster is contacted."""
    r = CliRunner().invoke(encode, ["--slides", str(slides / "slides.csv"), "--model", "uni2-h",
                                    "--weights", str(tmp_path / "missing"), "--out",
                                    str(tmp_path / "o"), "--engine", "ray", "--ray-address",
                                    "127.0.0.1:1"])  # fmt: skip
    assert r.exit_code == 2, r.output
    assert "huggingface.co/MahmoodLab/UNI2-h" in r.output and "Traceback" not in r.output


def test_without_ray_the_ray_engine_says_how_to_install_it(
    slides: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    r = CliRunner().invoke(encode, ["--slides", str(slides / "slides.csv"), "--model", "demo",
                                    "--out", str(tmp_path / "o"), "--engine", "ray"])  # fmt: skip
    assert r.exit_code == 2
    assert "pip install 'tario-clinical[ray]'" in r.output and "Traceback" not in r.output


def test_study_yaml_encode_section(tmp_path: Path) -> None:
    """``encode: {model: <preset>, weights: <path>}`` and the engine keys: relative weights and
    model-card paths resolve against the YAML's folder; inconsistent keys are errors that say
    what to set."""
    base = {"cohort": {"clinical": "c.csv", "slides": "s.csv"}}

    def cfg(**enc: object):  # noqa: ANN202
        return config_from_dict({**base, "encode": enc}, source="study.yaml", base=tmp_path)

    c = cfg(model="uni2-h", weights="models/UNI2-h", engine="ray", ray_address="auto")
    assert c.encode.weights == (tmp_path / "models" / "UNI2-h").resolve()
    assert c.encode.model == "uni2-h" and c.encode.engine == "ray"
    assert c.encode.ray_address == "auto"
    c = cfg(model="cards/my_model.json")
    assert c.encode.model == str((tmp_path / "cards" / "my_model.json").resolve())
    assert cfg(model="demo").encode.engine == "local"
    for enc, words in [
        ({"model": "uni2-h"}, "is a preset: set 'weights'"),
        ({"model": "demo", "weights": "w.safetensors"}, "cannot be used with model 'demo'"),
        ({"model": "demo", "ray_actors": 2}, "ray_actors need(s) 'engine: ray'"),
        ({"model": "demo", "engine": "ray", "workers": 2}, "use 'ray_readers'"),
        ({"model": "demo", "engine": "dask"}, "key 'encode.engine'"),
        ({"model": "demo", "ray_adress": "auto"}, "did you mean 'ray_address'"),
    ]:
        with pytest.raises(ConfigError) as err:
            cfg(**enc)
        assert words in str(err.value), str(err.value)


def test_pipeline_passes_preset_weights_to_the_encoder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The encode block of run_study hands the YAML's model and weights (and engine settings)
    to the engine it names."""
    from tario_clinical import pipeline
    from tario_clinical.encode import ray_runner

    seen: dict[str, dict] = {}

    class _Stop(Exception):
        pass

    def fake(name: str):  # noqa: ANN202
        def run(slides, model, out, **kw):  # noqa: ANN001, ANN003, ANN202
            seen[name] = {"model": model, **kw}
            raise _Stop

        return run

    monkeypatch.setattr(ray_runner, "encode_slides_ray", fake("ray"))
    import tario_clinical.encode as enc_pkg

    monkeypatch.setattr(enc_pkg, "encode_slides", fake("local"))
    weights = tmp_path / "UNI2-h"
    for engine, extra in (("ray", {"ray_address": "auto", "ray_actors": 3}), ("local", {})):
        c = config_from_dict(
            {"cohort": {"clinical": "c.csv", "slides": "s.csv"},
             "encode": {"model": "uni2-h", "weights": str(weights), "engine": engine, **extra}},
            base=tmp_path,
        )  # fmt: skip
        prepared = pipeline.PreparedStudy(config=c, cohort=_FakeCohort(), representations=None,
                                          input_files={})  # fmt: skip
        with pytest.raises(_Stop):
            pipeline.run_study(prepared, tmp_path / engine, progress=False)
    assert seen["ray"]["model"] == "uni2-h" and seen["ray"]["weights"] == weights
    assert seen["ray"]["address"] == "auto" and seen["ray"]["concurrency"] == 3
    assert seen["local"]["weights"] == weights and "address" not in seen["local"]


class _FakeCohort:
    slides = pd.DataFrame({"slide_id": ["s"], "patient_id": ["p"], "path": ["x"]})
