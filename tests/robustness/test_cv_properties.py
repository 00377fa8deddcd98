"""Property tests (hypothesis) of the patient-level CV splitters (issue 8, item 2)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tario_clinical.decode.splitters import LeaveOneGroupOut, PatientStratifiedGroupKFold


@st.composite
def designs(draw):
    n_pat = draw(st.integers(6, 60))
    k = draw(st.integers(2, min(6, n_pat)))
    slides = draw(st.lists(st.integers(1, 3), min_size=n_pat, max_size=n_pat))
    y = draw(st.lists(st.integers(0, 1), min_size=n_pat, max_size=n_pat))
    seed = draw(st.integers(0, 2**31 - 1))
    pats = np.repeat(np.array([f"P{i}" for i in range(n_pat)]), slides)
    ypat = np.array(y, float)
    return pats, ypat, np.repeat(ypat, slides), k, seed


@settings(max_examples=60, deadline=None)
@given(designs(), st.integers(1, 3))
def test_no_patient_split_and_each_scored_once_per_repeat(d, n_repeats):
    pats, _, yrow, k, seed = d
    cv = PatientStratifiedGroupKFold(k, n_repeats=n_repeats, seed=seed)
    tested = np.zeros((n_repeats, pats.size), int)
    for r, _, tr, te in cv.iter_folds(pats, yrow, pats):
        assert set(pats[tr]).isdisjoint(pats[te])
        assert tr.size + te.size == pats.size
        tested[r, te] += 1
    assert (tested == 1).all()


@settings(max_examples=60, deadline=None)
@given(designs())
def test_stratification_holds(d):
    pats, ypat, yrow, k, seed = d
    folds = PatientStratifiedGroupKFold(k, seed=seed).patient_folds(pats, yrow, pats)[0]
    pf = {p: f for p, f in zip(pats, folds, strict=True)}
    fold_of_patient = np.array([pf[f"P{i}"] for i in range(ypat.size)])
    pos = np.bincount(fold_of_patient[ypat == 1], minlength=k)
    neg = np.bincount(fold_of_patient[ypat == 0], minlength=k)
    size = np.bincount(fold_of_patient, minlength=k)
    assert pos.max() - pos.min() <= 1  # positives spread evenly over folds
    assert neg.max() - neg.min() <= 1
    assert size.max() - size.min() <= 1  # patients per fold balanced


@settings(max_examples=30, deadline=None)
@given(designs(), st.integers(0, 3))
def test_multilabel_stratification_spreads_each_label(d, extra_seed):
    pats, ypat, _, k, seed = d
    rng = np.random.default_rng(extra_seed)
    y2 = (rng.random(ypat.size) < 0.3).astype(float)
    Y = np.column_stack([ypat, y2])
    folds = PatientStratifiedGroupKFold(k, seed=seed).patient_folds(np.arange(ypat.size), Y)[0]
    for j in range(2):
        pos = np.bincount(folds[Y[:, j] == 1], minlength=k)
        # joint strata (4 combinations, rare ones pooled) each spread to within one per fold
        assert pos.max() - pos.min() <= 4


@settings(max_examples=30, deadline=None)
@given(designs(), st.integers(2, 4))
def test_leave_one_group_out_holds_out_whole_groups(d, n_groups):
    pats, _, _, _, seed = d
    uniq = np.unique(pats)
    rng = np.random.default_rng(seed)
    gmap = {p: f"site{rng.integers(n_groups)}" for p in uniq}
    groups = np.array([gmap[p] for p in pats])
    LeaveOneGroupOut.check_patients(pats, groups)
    seen = np.zeros(pats.size, int)
    for tr, te in LeaveOneGroupOut().split(pats, groups=groups):
        assert np.unique(groups[te]).size == 1
        assert set(pats[tr]).isdisjoint(pats[te])
        seen[te] += 1
    assert (seen == 1).all()
