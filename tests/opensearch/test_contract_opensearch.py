"""The engine contract (tests/engine_contract.py) on real OpenSearch nodes, both lines (conftest.py
`server`). rank_features store each weight as FeatureField does (9 significant bits, truncated:
stored <= true < stored x (1 + 2^-8)); OpenSearch orders exactly equal scores by internal doc ids,
which follow the bulk threads, so any order of an exact tie is accepted there."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
from engine_contract import EngineContract

from vsplade.sparse import feature_field_round


class TestOpenSearchContract(EngineContract):
    engine = "opensearch"
    ties_by_insertion = False

    @pytest.fixture(scope="class")
    @classmethod
    def location(cls, server):
        made: list[str] = []

        def make() -> dict:
            made.append(f"vsplade-contract-{uuid.uuid4().hex[:10]}")
            return {"index": made[-1], "url": server.url, "progress": False}

        yield make
        from vsplade_opensearch.connection import Connection

        client = Connection.from_options({"url": server.url}).client()
        for name in made:
            client.indices.delete(index=name, ignore=[404])

    @staticmethod
    def stored_weights(w):
        return feature_field_round(w.astype(np.float32))

    @staticmethod
    def score_tol(query, wmax):
        return lambda s: abs(s) * (2.0**-8 + 1e-6)  # 9 significant bits per stored weight, truncated toward 0
