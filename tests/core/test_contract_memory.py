"""The engine contract (tests/engine_contract.py) on the memory engine: an encoded dir, float
weights, the exact scorer; its own reference, so every comparison is exact."""

from __future__ import annotations

import pytest
from engine_contract import EngineContract, counter_locations


class TestMemoryContract(EngineContract):
    engine = "memory"

    @pytest.fixture(scope="class")
    @classmethod
    def location(cls, tmp_path_factory):
        return counter_locations(tmp_path_factory.mktemp("memory-contract"))
