"""`python -m vsplade_opensearch.testnode` refuses to start with one clear line naming the make
target when the jars were never fetched or the compiled launcher is older than its sources
(no JVM is started there; the fixtures in conftest.py start real ones); a real 3-node run keeps
serving when one JVM is killed by hand and restarts it on SIGUSR1."""

from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from process_support import stop_process

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
    # the security plugin exists for 2.19.1 only: one line that says so, before any JVM starts
    for args in (["--security", "--line", "3"], ["--security", "--nodes", "3"], ["--security", "--plugins", "neural"]):
        res = subprocess.run([sys.executable, "-m", "vsplade_opensearch.testnode", *args, "--http-port", "0"],
                             capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        assert res.returncode == 2 and res.stderr.count("\n") == 1 and "2.19.1" in res.stderr, (args, res.stderr)


def _health(url: str) -> dict:
    return testnode.http_json(f"{url}/_cluster/health", timeout=10)


def _wait(cond, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            got = cond()
        except OSError:
            got = None
        if got:
            return got
        time.sleep(1.0)
    raise AssertionError(f"not {what} within {timeout:.0f} s")


@pytest.mark.skipif(bool(os.environ.get("VSPLADE_OPENSEARCH_URL")), reason="starts its own local cluster")
@pytest.mark.timeout(900)  # 3 JVMs start, one restarts, all stop: ~3 min on a loaded 2-core machine
def test_three_nodes_keep_serving_when_one_dies_and_restart_on_sigusr1(tmp_path):
    """`testnode --nodes 3`: a JVM killed by hand (kill -9) is named on stderr, the two others
    keep serving, SIGUSR1 brings it back on the same port and data, SIGTERM stops all (exit 0)."""
    err = open(tmp_path / "stderr.log", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "vsplade_opensearch.testnode", "--nodes", "3", "--http-port", "0",
                             "--data", str(tmp_path / "data")],
                            stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL)
    try:
        out = b""
        deadline = time.monotonic() + 400
        while out.count(b"\n") < 4:  # the first URL, then one per node
            ready, _, _ = select.select([proc.stdout], [], [], 5)
            assert proc.poll() is None and time.monotonic() < deadline, Path(err.name).read_text()[-3000:]
            if ready:
                out += os.read(proc.stdout.fileno(), 4096)
        urls = out.decode().split()[1:4]
        victim = urls[2]
        # a node joins the cluster before its HTTP port opens: ask the victim until it answers
        proc_info = _wait(lambda: testnode.http_json(f"{victim}/_nodes/_local/process", timeout=10), 60,
                          "the victim's HTTP port")
        pid = next(iter(proc_info["nodes"].values()))["process"]["id"]
        testnode.http_json(f"{urls[0]}/keep", method="PUT", body={"settings": {"number_of_replicas": 1}}, timeout=60)
        testnode.http_json(f"{urls[0]}/keep/_doc/1?refresh=true", method="PUT", body={"a": 1}, timeout=60)
        # the replica must be in sync before the kill, or the victim may take the only copy (red)
        testnode.http_json(f"{urls[0]}/_cluster/health/keep?wait_for_status=green&timeout=60s", timeout=90)
        os.kill(pid, signal.SIGKILL)
        _wait(lambda: "node vsplade-3" in Path(err.name).read_text(), 60, "reported")
        assert "exited" in Path(err.name).read_text()
        h = _wait(lambda: (h := _health(urls[0]))["number_of_nodes"] == 2 and h, 120, "a 2-node cluster")
        assert h["status"] in ("yellow", "green")
        assert proc.poll() is None  # still serving
        assert testnode.http_json(f"{urls[1]}/keep/_doc/1", timeout=30)["_source"] == {"a": 1}
        proc.send_signal(signal.SIGUSR1)
        _wait(lambda: "restarted" in Path(err.name).read_text(), 300, "restarted")
        h = _health(victim)  # the same URL (port) as before, back in the cluster
        assert h["number_of_nodes"] == 3 and h["status"] == "green"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(120) == 0
    finally:
        stop_process(proc, grace_s=120)
        err.close()
