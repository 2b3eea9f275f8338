"""Thread safety of the Lucene engine (issue 22, item 5): the same searches through
`vsplade.Collection` from 8 threads at once (explain on and off, source/page filters, k=100)
give exactly the single-threaded results: same ids, scores and explanations, no exception.

pyjnius shares one Python method object per Java class and binds it to an instance on each
attribute access, so Java calls on different instances from several threads can run on the
wrong object; with explain that crashed the process (SIGSEGV in jni_CallFloatMethodA) or threw
NullPointerExceptions. The check therefore runs in a process of its own
(tests/concurrency_support.py as a script): a crash fails this test with the exit status."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from collection_support import make_docs

SUPPORT = Path(__file__).resolve().parents[1] / "concurrency_support.py"


@pytest.fixture(scope="module")
def lucene_index(tmp_path_factory) -> Path:
    docs = make_docs(tmp_path_factory.mktemp("docs") / "docs")
    ix = tmp_path_factory.mktemp("luc") / "ix"
    # built by the CLI in a process of its own: this pytest process never starts a JVM here
    p = subprocess.run([sys.executable, "-m", "vsplade", "index", str(docs), "--model", "lexical",
                        "--engine", "lucene", "--index", str(ix)],
                       capture_output=True, text=True, timeout=600,
                       env={**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})
    assert p.returncode == 0, p.stderr[-3000:]
    return ix


def run_hammer(index: Path, cwd: Path, *extra: str, timeout: int = 900) -> dict:
    # cwd: where a crashing JVM writes its hs_err_pid*.log (not the repository)
    p = subprocess.run([sys.executable, str(SUPPORT), "--engine", "lucene", "--index", str(index), *extra],
                       capture_output=True, text=True, timeout=timeout, cwd=cwd,
                       env={**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    result = json.loads(lines[-1]) if lines else None
    # 139 / -11: the JVM (or pyjnius) crashed the process, the failure this test guards against
    assert p.returncode == 0, f"exit {p.returncode}; result {result}; stderr: {p.stderr[-3000:]}"
    return result


@pytest.mark.timeout(1200)
def test_eight_threads_equal_single_thread(lucene_index, tmp_path):
    r = run_hammer(lucene_index, tmp_path, "--threads", "8", "--rounds", "3")
    assert r["explained_hits"] > 100, r  # explanations were really compared
    assert r["n_errors"] == 0 and r["n_mismatches"] == 0, r
    assert r["calls"] == 8 * 3 * r["cases"], r
