"""Locked-biomarker artefact: exact round trip, no pickle, hash integrity, exact reproduction of
the final model, cut-offs, feature alignment and the encoder check."""

from __future__ import annotations

import json
import warnings
import zipfile

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import tario_clinical as tc
from tario_clinical.biomarker import (
    EncoderMismatchWarning,
    LockedBiomarker,
    load_locked_biomarker,
    lock_biomarker,
    representation_identity,
)
from tario_clinical.errors import AnalysisError, EncoderError, SchemaError


@pytest.fixture(scope="module")
def dev():
    trial = tc.simulate_trial(240, seed=2, n_genes=60, compute_attainable=False)
    cohort = trial.cohort()
    res = tc.decode(
        trial.representations,
        cohort,
        targets=["EGFR", "KRAS"],
        n_repeats=1,
        p_method="delong",
        ci_method="delong",
        seed=0,
    )
    return trial, cohort, res


@pytest.fixture(scope="module")
def locked(dev):
    trial, cohort, res = dev
    return lock_biomarker(
        res, "KRAS", representations=trial.representations, cohort=cohort, include_time=False
    )


def _final_scores(model, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # fitted with feature names
        return model.decision_function(X)


# ------------------------------------------------------------------------ exactness
def test_applying_to_development_reproduces_final_model_exactly(dev, locked):
    trial, _, res = dev
    X = trial.representations.X
    assert X.dtype == np.float32
    ref = _final_scores(res.final_models["KRAS"], X)
    got = locked.score(trial.representations)
    assert list(got.index) == list(trial.representations.obs_names)
    assert got.to_numpy().tobytes() == np.asarray(ref, dtype=np.float64).tobytes()
    # float64 input (a DataFrame) follows the estimator's float64 path, also exactly
    df = pd.DataFrame(
        X.astype(np.float64),
        index=trial.representations.obs_names,
        columns=trial.representations.var_names,
    )
    ref64 = _final_scores(res.final_models["KRAS"], df.to_numpy())
    assert np.array_equal(locked.score(df).to_numpy(), ref64)
    p = locked.predict_proba(trial.representations).to_numpy()
    assert np.allclose(p, res.final_models["KRAS"].predict_proba(df.to_numpy())[:, 1], atol=1e-15)


def test_pca_decoder_reproduced_exactly(dev):
    trial, cohort, _ = dev
    res = tc.decode(
        trial.representations,
        cohort,
        targets=["EGFR"],
        n_repeats=1,
        pca=5,
        p_method="delong",
        ci_method="delong",
        seed=1,
    )
    lk = lock_biomarker(res, "EGFR", representations=trial.representations, endpoint=None)
    assert lk.document["model"]["pca_components"]["shape"] == [5, 60]
    ref = _final_scores(res.final_models["EGFR"], trial.representations.X)
    assert np.array_equal(lk.score(trial.representations).to_numpy(), ref)


def test_slide_rows_are_averaged_per_patient(dev, locked):
    trial, _, _ = dev
    a = trial.representations[:20]
    two = ad.concat([a, a], index_unique="-")
    two.obs["patient_id"] = list(a.obs_names) * 2
    rows = locked.score_rows(two)
    assert len(rows) == 40
    s = locked.score(two)
    np.testing.assert_allclose(s.to_numpy(), locked.score(a).to_numpy(), rtol=0, atol=1e-12)


# ------------------------------------------------------------------------ round trip
def test_json_round_trip_is_bit_identical_and_hash_is_the_file(tmp_path, dev, locked):
    from tario_clinical.provenance import sha256_file

    trial, _, _ = dev
    path = locked.save(tmp_path / "kras.json")
    assert sha256_file(path) == locked.sha256
    back = load_locked_biomarker(path)
    assert back.sha256 == locked.sha256 and back.source == str(path)
    a = locked.score(trial.representations).to_numpy()
    b = back.score(trial.representations).to_numpy()
    assert a.tobytes() == b.tobytes()
    assert back.document == locked.document
    json.loads(path.read_text(encoding="utf-8"))  # plain JSON
    assert not list(tmp_path.glob(".*tmp"))  # atomic write leaves no temporary file


def test_npz_round_trip_holds_only_float_arrays(tmp_path, dev, locked):
    trial, _, _ = dev
    path = locked.save(tmp_path / "kras.json", arrays="npz")
    npz = tmp_path / "kras.npz"
    with np.load(npz, allow_pickle=False) as z:  # would raise on any object (pickled) array
        assert z.files and all(z[k].dtype.kind == "f" for k in z.files)
    with zipfile.ZipFile(npz) as zf:
        assert all(n.endswith(".npy") for n in zf.namelist())
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert doc["arrays"]["file"] == "kras.npz"
    assert "values" not in doc["model"]["coef"]
    back = load_locked_biomarker(path)
    a = locked.score(trial.representations).to_numpy()
    assert back.score(trial.representations).to_numpy().tobytes() == a.tobytes()
    assert back.sha256 != locked.sha256  # another file, another identity
    # a changed .npz is refused
    raw = bytearray(npz.read_bytes())
    raw[-200] ^= 0x01
    npz.write_bytes(bytes(raw))
    with pytest.raises(SchemaError, match="changed since the artefact was written"):
        load_locked_biomarker(path)
    npz.unlink()
    with pytest.raises(SchemaError, match="missing"):
        load_locked_biomarker(path)


def test_sha256_changes_if_any_byte_changes(tmp_path, locked):
    path = locked.save(tmp_path / "a.json")
    data = path.read_bytes()
    loaded = 0
    for pos in np.linspace(0, len(data) - 2, 60).astype(int):
        raw = bytearray(data)
        raw[pos] = ord("7") if raw[pos] != ord("7") else ord("3")
        mod = tmp_path / f"m{pos}.json"
        mod.write_bytes(bytes(raw))
        try:
            lk = load_locked_biomarker(mod)
        except SchemaError:
            continue  # damaged beyond a locked biomarker: refused
        loaded += 1
        assert lk.sha256 != locked.sha256
    assert loaded > 10  # many single-byte edits still load; each has another identity
    # a semantic edit of one coefficient loads, changes the hash and the scores
    doc = json.loads(data)
    doc["model"]["coef"]["values"][0] += 1e-3
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(doc, sort_keys=True, indent=1) + "\n", encoding="utf-8")
    assert load_locked_biomarker(edited).sha256 != locked.sha256
    # whitespace only: same content, another byte string, another hash
    spaced = tmp_path / "spaced.json"
    spaced.write_bytes(data.replace(b"\n", b"\n ", 1))
    assert load_locked_biomarker(spaced).sha256 != locked.sha256


def test_same_inputs_without_time_give_the_same_artefact(dev, locked):
    trial, cohort, res = dev
    again = lock_biomarker(
        res, "KRAS", representations=trial.representations, cohort=cohort, include_time=False
    )
    assert again.sha256 == locked.sha256


def test_reader_refuses_newer_layouts_and_other_files(tmp_path, locked):
    doc = locked.to_dict()
    doc["schema_version"] = 99
    p = tmp_path / "new.json"
    p.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(SchemaError, match="upgrade"):
        load_locked_biomarker(p)
    doc["schema_version"] = 1
    doc["format"] = "something else"
    p.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(SchemaError, match="not a locked biomarker"):
        load_locked_biomarker(p)
    doc["format"] = "tario_clinical.locked_biomarker"
    del doc["cutoffs"]
    p.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(SchemaError, match="cutoffs"):
        load_locked_biomarker(p)
    p.write_text("{not json", encoding="utf-8")
    with pytest.raises(SchemaError, match="not a JSON"):
        load_locked_biomarker(p)
    with pytest.raises(SchemaError, match="not found"):
        load_locked_biomarker(tmp_path / "absent.json")


# -------------------------------------------------------------------------- content
def test_artefact_records_what_the_issue_asks(locked, dev):
    trial, cohort, res = dev
    d = locked.document
    m = d["model"]
    assert m["feature_names"] == list(trial.representations.var_names)
    assert len(m["feature_list_sha256"]) == 64
    assert {"scaler_mean", "scaler_scale", "coef", "intercept"} <= set(m)
    assert d["score"]["scale"] == "log-odds"
    c = d["cutoffs"][0]
    assert c["name"] == "median" and c["quantile"] == 0.5
    assert c["score"] == pytest.approx(float(np.median(locked.score(trial.representations))))
    rep = d["representation"]
    assert rep["source"] == "simulator" and len(rep["weights_sha256"]) == 64
    coh = d["development"]["cohort"]
    y = res.oof[res.oof.target == "KRAS"].groupby("patient_id")["y_true"].first()
    assert coh["n"] == y.size and coh["n_positive"] == int(y.sum())
    perf = d["development"]["performance"]
    summ = res.summary().set_index("target").loc["KRAS"]
    assert perf["auroc"] == summ["auroc"] and perf["low"] == summ["low"]
    fu = d["development"]["survival"]
    assert fu["endpoint"] == "os" and fu["median_follow_up"] > 0 and fu["events"] > 0
    assert d["provenance"]["package_version"] == tc.__version__
    assert d["provenance"]["created_utc"] == "not recorded"
    assert d["provenance"]["reproduces_final_model_max_abs_diff"] == 0.0


def test_cutoff_options(dev):
    trial, _, res = dev
    reps = trial.representations

    def lk(**kw):
        return lock_biomarker(res, "EGFR", representations=reps, endpoint=None, **kw)

    s = lk().score(reps).to_numpy()
    t = lk(cutoff="tertiles").cutoffs
    assert list(t["name"]) == ["tertile_1", "tertile_2"]
    np.testing.assert_allclose(t["score"], np.quantile(s, [1 / 3, 2 / 3]))
    assert lk(cutoff="tertiles").assign_groups(s).cat.categories.tolist() == [
        "low",
        "middle",
        "high",
    ]
    prev = lk(cutoff="prevalence")
    dev_prev = prev.development["cohort"]["prevalence"]
    assert prev.cutoffs["fraction_positive_development"].iloc[0] == pytest.approx(
        dev_prev, abs=2 / s.size
    )
    q = lk(cutoff=[0.25, 0.75]).cutoffs
    assert list(q["quantile"]) == [0.25, 0.75]
    raw = lk(cutoff=-1.5, cutoff_scale="score").cutoffs.iloc[0]
    assert raw["score"] == -1.5 and raw["quantile"] == pytest.approx(np.mean(s <= -1.5))
    pr = lk(cutoff=0.2, cutoff_scale="probability").cutoffs.iloc[0]
    assert pr["probability"] == pytest.approx(0.2) and pr["score"] == pytest.approx(np.log(0.25))
    for bad, scale in (
        ("mean", "quantile"),
        (1.5, "quantile"),
        ([0.5, 0.5], "quantile"),
        (0.1, "odds"),
    ):
        with pytest.raises(SchemaError):
            lk(cutoff=bad, cutoff_scale=scale)


def test_lock_input_errors(dev):
    trial, _, res = dev
    with pytest.raises(SchemaError, match="DecodeResult"):
        lock_biomarker({"final_models": {}}, "EGFR", representations=trial.representations)
    with pytest.raises(SchemaError, match="was not decoded"):
        lock_biomarker(res, "PTEN", representations=trial.representations)
    with pytest.raises(SchemaError, match="lack 2 of the 60 features"):
        lock_biomarker(res, "EGFR", representations=trial.representations[:, 2:])


def test_missing_features_are_named(locked, dev):
    trial, _, _ = dev
    reps = trial.representations[:, 3:]
    names = list(trial.representations.var_names[:3])
    with pytest.raises(SchemaError) as err:
        locked.score(reps)
    msg = str(err.value)
    assert "lack 3 of the 60 features" in msg and all(n in msg for n in names)
    # extra and reordered features are fine (matched by name)
    shuffled = trial.representations[:, ::-1].copy()
    np.testing.assert_array_equal(
        locked.score(shuffled).to_numpy(), locked.score(trial.representations).to_numpy()
    )


def test_nonfinite_rows_are_refused_by_score_with_ids(locked, dev):
    trial, _, _ = dev
    a = trial.representations[:10].copy()
    a.X[3, 0] = np.nan
    with pytest.raises(SchemaError, match=a.obs_names[3]):
        locked.score(a)
    rows = locked.score_rows(a)
    assert rows["score"].isna().sum() == 1


# ---------------------------------------------------------------- encoder provenance
def _encoded(adata, weights="a" * 64, tile_px=224):
    out = adata.copy()
    out.uns["tario_clinical"] = {
        "kind": "patient",
        "level": "patient",
        "model_card": {"name": "demo", "version": "1.0"},
        "weights_sha256": weights,
        "head_sha256": "b" * 64,
        "parameters": {
            "tiling": {"tile_px": tile_px, "mpp": 0.5, "min_tissue": 0.25},
            "fusion": "late",
        },
        "dtype": "float32",
    }
    return out


def test_encoder_mismatch_is_refused_unless_overridden(dev):
    trial, _, res = dev
    dev_reps = _encoded(trial.representations)
    lk = lock_biomarker(res, "EGFR", representations=dev_reps, endpoint=None)
    assert lk.representation["model_card_name"] == "demo"
    assert lk.check_representations(_encoded(trial.representations))["match"].all()
    other = _encoded(trial.representations, weights="c" * 64)
    with pytest.raises(EncoderError, match="weights_sha256") as err:
        lk.check_representations(other)
    assert "allow_encoder_mismatch" in str(err.value)
    with pytest.raises(EncoderError, match="tiling"):
        lk.check_representations(_encoded(trial.representations, tile_px=256))
    with pytest.raises(EncoderError, match="no provenance"):
        lk.check_representations(trial.representations[:, :].to_df())
    with pytest.warns(EncoderMismatchWarning, match="weights_sha256"):
        table = lk.check_representations(other, allow_encoder_mismatch=True)
    assert not table.set_index("field").loc["weights_sha256", "match"]


def test_representation_identity_of_simulated_trials_is_the_biology():
    a = tc.simulate_trial(30, seed=4, n_genes=20, compute_attainable=False)
    b = a.draw_second_trial(20, seed=9, site_shift=1.0, compute_attainable=False)
    c = tc.simulate_trial(30, seed=5, n_genes=20, compute_attainable=False)
    ia, ib, ic = (representation_identity(t.representations) for t in (a, b, c))
    assert ia["source"] == "simulator" and ia["weights_sha256"] == ib["weights_sha256"]
    assert ia["weights_sha256"] != ic["weights_sha256"]


def test_repr_and_summary(locked):
    assert "LockedBiomarker('KRAS'" in repr(locked)
    assert "locked biomarker" in locked._repr_html_()
    s = locked.summary()
    assert list(s.columns) == ["section", "item", "value"]
    assert isinstance(locked, LockedBiomarker)


def test_non_binary_final_model_cannot_be_locked(dev):
    trial, _, res = dev
    from dataclasses import replace

    class Fake:
        classes_ = np.array([0, 1, 2])
        coef_ = np.zeros((3, 60))

    bad = replace(res, final_models={**res.final_models, "EGFR": Fake()})
    with pytest.raises(AnalysisError, match="not a binary linear decoder"):
        lock_biomarker(bad, "EGFR", representations=trial.representations)
