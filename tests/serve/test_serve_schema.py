"""schemathesis against the service's own /openapi.json: no generated request, valid
(positive) or invalid (negative), gets a 5xx or a stack trace. Bounded: a fixed number of
examples per operation and mode, derandomized so a failure reproduces."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable

schemathesis = pytest.importorskip("schemathesis")

EXAMPLES = 25  # per operation and generation mode


def _operations(server):
    schema = schemathesis.openapi.from_url(server.base + "/openapi.json")
    ops = [r.ok() for r in schema.get_all_operations()]
    return {f"{op.method.upper()} {op.path}": op for op in ops}


def test_spec_lists_the_endpoints(memory_server):
    assert set(_operations(memory_server)) == {
        "GET /search", "POST /search", "GET /pages/{page_id}", "GET /pages/{page_id}/image",
        "HEAD /pages/{page_id}/image", "GET /pages/{page_id}/highlights", "GET /health", "HEAD /health", "GET /info"}


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_no_server_errors(memory_server, mode):
    ran = []
    for label, op in sorted(_operations(memory_server).items()):
        strategy = op.as_strategy(generation_mode=schemathesis.GenerationMode(mode))

        @given(strategy)
        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def check(case):
            response = case.call(base_url=memory_server.base, timeout=60)
            assert response.status_code < 500, (label, case.as_curl_command(), response.text[:300])
            assert "Traceback" not in response.text, label
            ran.append(label)

        try:
            check()
        except Unsatisfiable:
            # an operation without parameters has no invalid request to generate
            if not (mode == "negative" and label.endswith(("/health", "/info"))):
                raise
    assert len(ran) >= 4 * EXAMPLES  # the generator really produced requests
