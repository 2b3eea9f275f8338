"""Shared test setup: offline Hugging Face, paths to tests/data (a fresh clone needs nothing
else), the `cluster` marker for every test under tests/opensearch, `slow` for the framework
adapters' end-to-end tests under tests/integrations, and the hard backstop behind
pytest-timeout (pyproject.toml)."""

import faulthandler
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make check` runs a worker per core: torch's OpenMP pool (one thread per core in each
    # worker) then oversubscribes the cores and spins; measured, a 1.8 s fast-path test took 28 s
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

DATA = Path(__file__).parent / "data"
OPENSEARCH_TESTS = Path(__file__).parent / "opensearch"
INTEGRATION_TESTS = Path(__file__).parent / "integrations"  # LangChain/LlamaIndex/ST end to end: slow
BACKSTOP_GRACE_S = 60
_backstop_stream = None  # a copy of the real stderr: during a test fd 2 is pytest's capture file


def pytest_configure(config):
    global _backstop_stream
    _backstop_stream = os.fdopen(os.dup(2), "w")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if OPENSEARCH_TESTS in item.path.parents:
            item.add_marker(pytest.mark.cluster)
        if INTEGRATION_TESTS in item.path.parents:
            item.add_marker(pytest.mark.slow)


def _deadline(item) -> float:
    """The test's pytest-timeout deadline: its own mark, else the configured default."""
    mark = item.get_closest_marker("timeout")
    if mark is not None:
        return float(mark.args[0] if mark.args else mark.kwargs.get("timeout", 0) or 0)
    option = item.config.getoption("timeout", None)  # --timeout on the command line wins
    return float(option if option is not None else item.config.getini("timeout") or 0)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    # pytest-timeout's SIGALRM fails a hung test, but only once the main thread runs Python
    # again; a thread stuck inside a JNI call or a C extension never does. Then this timer dumps
    # every thread's stack to the real stderr (the main thread's frames name the test) and ends
    # the process with exit 1, so CI reports where it stuck instead of idling until its own limit.
    deadline = _deadline(item)
    if deadline > 0:
        faulthandler.dump_traceback_later(deadline + BACKSTOP_GRACE_S, exit=True, file=_backstop_stream)
    try:
        yield
    finally:
        if deadline > 0:
            faulthandler.cancel_dump_traceback_later()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


@pytest.fixture(scope="session")
def pdf_dir() -> Path:
    return DATA / "pdfs"


@pytest.fixture(scope="session")
def vocab():
    from vsplade.vocab import default_vocabulary

    return default_vocabulary()
