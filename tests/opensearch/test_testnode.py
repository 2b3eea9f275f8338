"""`python -m vsplade_opensearch.testnode` refuses to start with one clear line naming the make
target when the jars were never fetched or the compiled launcher is older than its sources
(no JVM is started here; the fixtures in conftest.py start real ones)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from vsplade_opensearch import testnode

SERVER = testnode.SERVER_DIR


def run(server_dir: Path, *args: str):
    env = {**os.environ, "VSPLADE_OPENSEARCH_SERVER_DIR": str(server_dir)}
    return subprocess.run([sys.executable, "-m", "vsplade_opensearch.testnode", "--http-port", "0", *args],
                          capture_output=True, text=True, env=env, timeout=120, stdin=subprocess.DEVNULL)


@pytest.fixture
def server_copy(tmp_path):
    """The server folder's sources (pom, lines, launcher), without jars."""
    d = tmp_path / "server"
    d.mkdir()
    for name in ("pom.xml", "lines.tsv", "build.sh"):
        shutil.copy(SERVER / name, d / name)
    shutil.copytree(SERVER / "launcher", d / "launcher")
    return d


@pytest.mark.parametrize("line", ["3", "2"])
def test_no_jars_names_the_make_target(server_copy, line):
    res = run(server_copy, "--line", line)
    assert res.returncode == 2
    assert res.stdout == ""
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "make opensearch-jars" in lines[0] and "not fetched" in lines[0], res.stderr


def test_stale_launcher_names_the_make_target(server_copy):
    spec = testnode.lines()["3"]
    jars = server_copy / "jars"
    (jars / spec.version).mkdir(parents=True)
    (jars / spec.version / ".complete").write_text("x\n")
    (jars / f"launcher-{spec.version}").mkdir()
    (jars / f"launcher-{spec.version}" / "SOURCE_HASH").write_text(testnode.source_hash("3") + "\n")  # fresh...
    src = server_copy / "launcher" / "VspladeTestNode.java"
    src.write_text(src.read_text() + "\n// edited\n")  # ...until the source changes
    res = run(server_copy, "--line", "3")
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "older than its sources" in lines[0] and "make opensearch-jars" in lines[0], res.stderr


def test_fetched_launcher_matches_its_sources():
    """What `make opensearch-jars` built is what the sources say (build.sh and testnode agree
    on the hash)."""
    for line, spec in testnode.lines().items():
        stamp = SERVER / "jars" / f"launcher-{spec.version}" / "SOURCE_HASH"
        assert stamp.is_file(), f"run `make opensearch-jars` ({stamp} missing)"
        assert stamp.read_text().strip() == testnode.source_hash(line)


def test_bad_arguments_are_usage_errors():
    res = subprocess.run([sys.executable, "-m", "vsplade_opensearch.testnode", "--nodes", "2"],
                         capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert res.returncode == 2 and "--nodes" in res.stderr
