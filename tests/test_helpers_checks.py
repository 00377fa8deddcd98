"""One choice checker and level check (tario_clinical._checks), one BH implementation
(metrics.bh_qvalues), one SHA-256 helper (provenance), and the renamed parameters: ``level``
for a confidence level, the old ``conf_level`` accepted for one release with a warning."""

from __future__ import annotations

import hashlib
import warnings

import numpy as np
import pandas as pd
import pytest

from tario_clinical import metrics
from tario_clinical import survival as sv
from tario_clinical._checks import check_choice, check_level, renamed_parameters
from tario_clinical.errors import SchemaError


def test_check_choice_names_parameter_value_and_options():
    assert check_choice("kind", "rook", ("rook", "queen")) == "rook"
    with pytest.raises(SchemaError) as info:
        check_choice("kind", "king", ("rook", "queen"))
    msg = str(info.value)
    assert "kind='king' is not allowed" in msg and "must be one of ['rook', 'queen']" in msg
    assert isinstance(info.value, ValueError)
    with pytest.raises(SchemaError):
        check_choice("kind", ["unhashable"], {"rook"})


@pytest.mark.parametrize("bad", [0, 1, 95, -0.1, float("nan"), "high", None, True])
def test_check_level_refuses_values_outside_the_open_unit_interval(bad):
    with pytest.raises(SchemaError, match=r"level must be in \(0, 1\)"):
        check_level(bad)


def test_check_level_returns_a_float():
    assert check_level(np.float32(0.9)) == pytest.approx(0.9)
    with pytest.raises(SchemaError, match="conf must be in"):
        check_level(2, name="conf")


def test_the_survival_and_expression_qc_checkers_are_the_shared_one():
    from tario_clinical.expression_qc import options
    from tario_clinical.survival import validation

    assert options.check_choice is check_choice and validation.check_choice is check_choice
    assert validation.check_level is check_level


def test_bh_qvalues_match_statsmodels_and_keep_nan():
    from statsmodels.stats.multitest import multipletests

    rng = np.random.default_rng(0)
    p = np.r_[rng.uniform(size=40) ** 3, [0.0, 1.0, 0.5, 0.5]]
    np.testing.assert_allclose(
        metrics.bh_qvalues(p), multipletests(p, method="fdr_bh")[1], rtol=0, atol=1e-15
    )
    q = metrics.bh_qvalues([np.nan, 0.02, 0.01])
    assert np.isnan(q[0]) and q[1:].tolist() == [0.02, 0.02]
    assert metrics.bh_qvalues([]).shape == (0,)
    with pytest.raises(SchemaError, match=r"\[0, 1\]"):
        metrics.bh_qvalues([0.5, 1.5])


def test_decode_and_embedding_maps_use_metrics_bh():
    import inspect

    from tario_clinical import embedding_maps
    from tario_clinical.decode import result

    assert "multipletests" not in inspect.getsource(result)
    assert "bh_qvalues" in inspect.getsource(result.DecodeResult.summary)
    cooc = inspect.getsource(inspect.getmodule(embedding_maps.genotype_cooccurrence))
    assert "bh_qvalues" in cooc and "multipletests" not in cooc


def test_one_sha256_helper(tmp_path):
    from tario_clinical import cohort, provenance

    f = tmp_path / "x.csv"
    f.write_bytes(b"patient_id\nP1\n")
    assert provenance.sha256_file(f) == hashlib.sha256(f.read_bytes()).hexdigest()
    assert provenance.sha256_bytes(b"abc") == hashlib.sha256(b"abc").hexdigest()
    assert cohort.sha256_file is provenance.sha256_file
    assert not hasattr(cohort, "_sha256")


# ---- renamed parameters -------------------------------------------------------------------


def test_renamed_parameters_warns_and_forwards():
    @renamed_parameters(conf_level="level")
    def f(x, *, level=0.95):
        return level

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert f(1, level=0.8) == 0.8  # the new name: no warning
    with pytest.warns(DeprecationWarning, match=r"conf_level= is deprecated.*use level="):
        assert f(1, conf_level=0.9) == 0.9
    with pytest.raises(TypeError, match="both level= and its deprecated name conf_level="):
        f(1, level=0.9, conf_level=0.9)
    assert "conf_level" not in str(__import__("inspect").signature(f))


@pytest.fixture(scope="module")
def surv_df():
    rng = np.random.default_rng(1)
    n = 80
    return pd.DataFrame(
        {
            "time": rng.exponential(10, n),
            "event": rng.integers(0, 2, n),
            "arm": rng.choice(["a", "b"], n),
            "x": rng.normal(size=n),
        }
    )


@pytest.mark.parametrize(
    "call",
    [
        lambda d, kw: sv.km(d, time="time", event="event", group="arm", **kw).summary,
        lambda d, kw: sv.cox(d, time="time", event="event", covariates=["x"], **kw),
        lambda d, kw: sv.rmst(d, time="time", event="event", group="arm", tau=5.0, **kw),
        lambda d, kw: sv.concordance(d, time="time", event="event", score="x", **kw),
    ],
    ids=["km", "cox", "rmst", "concordance"],
)
def test_survival_conf_level_is_deprecated_for_level(surv_df, call):
    new = call(surv_df, {"level": 0.9})
    with pytest.warns(DeprecationWarning, match="conf_level= is deprecated"):
        old = call(surv_df, {"conf_level": 0.9})
    pd.testing.assert_frame_equal(pd.DataFrame(old), pd.DataFrame(new))
    default = call(surv_df, {})
    assert not pd.DataFrame(default).equals(pd.DataFrame(new))  # the level reaches the interval


def test_public_survival_functions_take_level_not_conf_level():
    import inspect

    for name in sv.__all__:
        obj = getattr(sv, name)
        if inspect.isfunction(obj):
            params = inspect.signature(obj).parameters
            assert "conf_level" not in params, name
    assert "level" in inspect.signature(sv.stratify).parameters
    assert "level" in inspect.signature(sv.treatment_effect_curve).parameters


def test_survival_positional_time_event_still_work_with_a_warning(surv_df):
    new = sv.km(surv_df, time="time", event="event", group="arm").summary
    with pytest.warns(DeprecationWarning, match="passing time, event, group positionally"):
        old = sv.km(surv_df, "time", "event", "arm").summary
    pd.testing.assert_frame_equal(old, new)
    with pytest.warns(DeprecationWarning, match="passing time, event, covariates positionally"):
        old_cox = sv.cox(surv_df, "time", "event", ["x"])
    pd.testing.assert_frame_equal(
        old_cox, sv.cox(surv_df, time="time", event="event", covariates=["x"])
    )
    with pytest.raises(TypeError, match="multiple values"):
        sv.km(surv_df, "time", time="time", event="event")


def test_survival_internals_make_no_deprecated_calls(surv_df):
    """stratify() calls km, log-rank, Cox, RMST, C and the interaction with keywords only."""
    scores = pd.Series(surv_df["x"].to_numpy(), index=[f"P{i}" for i in range(len(surv_df))])
    df = surv_df.assign(patient_id=scores.index)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        res = sv.stratify(df, scores, time="time", event="event", arm="arm")
    assert res.n == len(df)


def test_survival_results_carry_level_and_warn_on_conf_level(surv_df):
    """Result objects name their confidence level ``level``; ``conf_level`` is a read-only,
    deprecated alias for one release, and their dicts use the key ``level``."""
    df = surv_df.assign(os_time=surv_df["time"], os_event=surv_df["event"])
    curve = sv.treatment_effect_curve(df, "x", n_permutations=20, level=0.9, seed=0)
    results = {
        "KaplanMeier": sv.km(surv_df, time="time", event="event", group="arm", level=0.9),
        "CoxModel": sv.cox_fit(surv_df, time="time", event="event", covariates=["x"], level=0.9),
        "SteppResult": curve.stepp,
        "SplineEffect": curve.spline,
    }
    for name, res in results.items():
        assert type(res).__name__ == name and res.level == 0.9
        with pytest.warns(DeprecationWarning, match=rf"{name}\.conf_level is deprecated.*level"):
            assert res.conf_level == 0.9
        with pytest.raises(AttributeError):
            res.conf_level = 0.5
        if hasattr(res, "to_dict"):
            d = res.to_dict()
            assert d["level"] == 0.9 and "conf_level" not in d
