"""Shared fixtures: small deterministic synthetic cohorts."""

from __future__ import annotations

import os

import matplotlib
import pytest

matplotlib.use("Agg")
os.environ.setdefault("TQDM_DISABLE", "1")


@pytest.fixture(scope="session")
def small_trial():
    """A 300-patient, 200-gene simulated trial (seed 0)."""
    from tario_clinical import simulate_trial

    return simulate_trial(300, seed=0, n_genes=200)
