"""Target types inferred from the cohort (or given), the dispatch of tario_clinical.decode to the
decoder of each kind, and the binary path left exactly as it was."""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest

import tario_clinical
from tario_clinical.decode.cross_validation import _decode_binary
from tario_clinical.decode.endpoint_result import SUMMARY_COLUMNS
from tario_clinical.errors import CohortError, SchemaError


def _data(n=150, d=200, seed=0):
    rng = np.random.default_rng(seed)
    Z = rng.normal(size=(n, 4))
    X = Z @ rng.normal(size=(4, d)) + rng.normal(size=(n, d))
    ids = [f"P{i:04d}" for i in range(n)]
    clin = pd.DataFrame({"patient_id": ids})
    clin["score"] = Z[:, 0] + 0.5 * rng.normal(size=n)
    lab = np.array(["A", "B", "C", "D"])[np.argmax(Z + 0.8 * rng.normal(size=(n, 4)), axis=1)]
    lab[:7] = "E"  # a rare level
    clin["subtype"] = lab
    clin["G"] = (Z[:, 1] + rng.normal(size=n) > 0).astype(int)
    clin["sex"] = np.where(rng.random(n) < 0.5, "F", "M")
    clin["ecog"] = rng.integers(0, 3, n)
    return pd.DataFrame(X, index=ids, columns=[f"g{j}" for j in range(d)]), clin


def test_missing_labels_are_excluded_and_listed():
    X, clin = _data(n=80, d=20)
    clin.loc[[2, 5], "subtype"] = ""
    clin.loc[4, "score"] = np.nan
    res = tario_clinical.decode(
        X, clin, targets=["subtype", "score"], n_repeats=1, p_method="delong", ci_method="delong"
    )
    ex = res.exclusions
    assert sorted(ex.loc[ex.target == "subtype", "patient_id"]) == ["P0002", "P0005"]
    assert ex.loc[ex.target == "score", "patient_id"].tolist() == ["P0004"]
    assert res["subtype"].n == 78


# ------------------------------------------------------------------------------ dispatch
def test_target_types_are_inferred_logged_and_overridable(caplog):
    X, clin = _data(n=80, d=20)
    with caplog.at_level("INFO", logger="tario_clinical.decode"):
        kinds = tario_clinical.decode.infer_target_types(
            clin, ["G", "subtype", "score", "sex", "ecog"]
        )
    assert {t: k for t, (k, _) in kinds.items()} == {
        "G": "binary",
        "subtype": "categorical",
        "score": "continuous",
        "sex": "binary",
        "ecog": "categorical",
    }
    assert "ordinal" in kinds["ecog"][1]
    assert "target score is continuous" in caplog.text
    over = tario_clinical.decode.infer_target_types(
        clin, ["ecog"], target_types={"ecog": "continuous"}
    )
    assert over["ecog"] == ("continuous", "given in target_types")
    with pytest.raises(SchemaError, match="target_types values"):
        tario_clinical.decode.infer_target_types(clin, ["ecog"], target_types={"ecog": "ordinal"})
    with pytest.raises(CohortError, match="NOPE"):
        tario_clinical.decode.infer_target_types(clin, ["NOPE"])


def test_binary_path_unchanged_by_the_dispatch():
    X, clin = _data(n=100, d=30)
    kw = dict(targets=["G"], n_repeats=2, p_method="delong", ci_method="delong", seed=3)
    a = tario_clinical.decode(X, clin, **kw)
    b = _decode_binary(X, clin, **kw)
    assert type(a).__name__ == "DecodeResult"
    pd.testing.assert_frame_equal(a.oof, b.oof)
    pd.testing.assert_frame_equal(a.summary(), b.summary())


def test_mixed_targets_give_one_tidy_summary():
    X, clin = _data(n=100, d=30)
    res = tario_clinical.decode(
        X,
        clin,
        targets=["G", "subtype", "score", "sex"],
        n_repeats=1,
        p_method="delong",
        ci_method="delong",
        target_types={"subtype": "categorical"},
    )
    assert isinstance(res, tario_clinical.decode.EndpointResults)
    s = res.summary()
    assert list(s.columns) == SUMMARY_COLUMNS
    assert set(s["kind"]) == {"binary", "categorical", "continuous"}
    assert res.target_types["sex"][0] == "binary"  # F/M coded 0/1 (logged)
    assert set(res.binary.targets) == {"G", "sex"}
    assert res["subtype"].params["ci_method"] == "oof"  # "delong" maps to the OOF formulas
    for kind, d in s.groupby("kind"):
        assert d["ci_method"].str.len().gt(0).any(), kind
    json.dumps(res.to_dict(), allow_nan=False)
    assert res._repr_html_().startswith("<table>")
    assert res.oof_scores("score").size == 100
    assert res["score"].plot_calibration() is not None
