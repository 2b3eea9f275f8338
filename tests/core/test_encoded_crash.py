"""Encoded dir / memory writer under SIGKILL at every step, concurrent writers and readers.

A small writer script runs in a subprocess and prints which pages are acknowledged (a shard
is acknowledged when the manifest listing it is in place). It is killed at each crash point
it reaches (discovered through VSPLADE_CRASH_LOG, not hard-coded) and at random moments;
then the killed dir must be readable with at least every acknowledged page and nothing
else, and a re-run must converge to exactly the pages of a clean run, bit for bit."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from vsplade import crashpoints
from vsplade.encoded import EncodedDir, EncodedDirError, EncodedDirWriter
from vsplade.locking import IndexLockedError
from vsplade.sparse import SparseBatch

INFO = {"name": "test", "model": "unit"}
V = 50368

BATCH_SRC = r'''
import numpy as np
from vsplade.sparse import SparseBatch

def batch(lo, hi):
    """Pages p<lo>..p<hi-1>, each the same 20 weights whoever makes it."""
    rows, ids = [], []
    for i in range(lo, hi):
        rng = np.random.default_rng(i)
        rows.append({int(c): float(w) for c, w in zip(rng.choice(50368, 20, replace=False), rng.random(20) + 0.1)})
        ids.append(f"p{i}")
    return SparseBatch.from_dicts(rows, ids, [{"id": d, "source": "s.pdf", "page": k} for k, d in zip(range(lo, hi), ids)])
'''

WRITER = BATCH_SRC + r'''
import sys
from vsplade import crashpoints
from vsplade.encoded import EncodedDirWriter

path, start, n, shard_docs, merge_max = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
w = EncodedDirWriter(path, {"name": "test", "model": "unit"}, shard_docs=shard_docs, merge_max_nnz=merge_max)
done = w.done_ids()
for lo in range(start, start + n, 25):
    b = batch(lo, min(lo + 25, start + n))
    keep = [r for r, i in enumerate(b.ids) if i not in done]
    if keep:
        w.add(b.select(keep))
    if w._buffered == 0:  # everything added so far is in a committed shard
        print("ack", lo + 25, flush=True)
w.close()
print("closed", flush=True)
'''

_ns: dict = {}
exec(BATCH_SRC, _ns)
expected = _ns["batch"]


def run_writer(script: Path, path: Path, start: int, n: int, shard_docs: int, merge_max: int,
               crash_at: str | None = None, log: Path | None = None) -> subprocess.CompletedProcess:
    """The writer script in a forked child (no interpreter start-up per run, so every step
    can be tried); the child dies by its own SIGKILL exactly like a `kill -9`."""
    out_r, out_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(out_r)
        code = 0
        try:
            os.dup2(out_w, 1)
            for k in [k for k in os.environ if k.startswith("VSPLADE_CRASH")]:
                del os.environ[k]
            if crash_at:
                os.environ["VSPLADE_CRASH_AT"] = crash_at
            if log:
                os.environ["VSPLADE_CRASH_LOG"] = str(log)
            crashpoints._hits.clear()
            sys.argv = [str(script), str(path), str(start), str(n), str(shard_docs), str(merge_max)]
            sys.stdout = os.fdopen(1, "w", buffering=1)
            exec(compile(WRITER, str(script), "exec"), {"__name__": "__writer__"})
            sys.stdout.flush()
        except BaseException as e:  # noqa: BLE001 - report anything to the parent
            os.write(2, f"{type(e).__name__}: {e}\n".encode())
            code = 1
        os._exit(code)
    os.close(out_w)
    with os.fdopen(out_r) as f:
        stdout = f.read()
    _, status = os.waitpid(pid, 0)
    rc = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
    return subprocess.CompletedProcess([], rc, stdout, "")


def acknowledged(stdout: str, start: int) -> int:
    acks = [int(line.split()[1]) for line in stdout.splitlines() if line.startswith("ack")]
    return max(acks, default=start)


def assert_state(path: Path, must_have: set[str], may_have: set[str]) -> None:
    if not must_have and not (path / "vsplade.json").exists():
        # killed before its first commit: nothing was acknowledged, and a reader says so
        with pytest.raises(EncodedDirError, match="not an encoded dir"):
            EncodedDir(path)
        return
    d = EncodedDir(path)
    ids = d.ids()
    assert len(ids) == len(set(ids)), "duplicate rows"
    assert must_have <= set(ids), f"acknowledged pages lost: {sorted(must_have - set(ids))[:5]}"
    assert set(ids) <= may_have, f"pages nobody wrote: {sorted(set(ids) - may_have)[:5]}"
    got = d.load()  # every listed file readable and consistent
    assert got.matrix.shape[0] == len(ids)


def assert_equal_to_clean(path: Path, lo: int, hi: int) -> None:
    got = EncodedDir(path).load()
    want = expected(lo, hi)
    order = np.argsort(np.array([int(i[1:]) for i in got.ids]))
    got = got.select(order)
    assert got.ids == want.ids and got.meta == want.meta
    assert (got.matrix != want.matrix).nnz == 0


SCENARIOS = {
    # name: (pages already there (a finished dir), pages to add, shard_docs, merge_max_nnz)
    "first-build": (0, 200, 50, 10**9),
    "append-to-merged": (150, 100, 40, 10**9),
    "append-to-sharded": (100, 75, 30, 0),
}


def occurrences(count: int) -> list[int]:
    return sorted({1, (count + 1) // 2, count})


@pytest.mark.slow  # a crash loop: make test only
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_sigkill_at_every_step_converges(tmp_path, scenario):
    before, add, shard_docs, merge_max = SCENARIOS[scenario]
    script = tmp_path / "writer.py"
    script.write_text(WRITER)

    def base(dst: Path) -> None:
        if before:
            p = run_writer(script, dst, 0, before, shard_docs, merge_max)
            assert p.returncode == 0, p.stderr

    probe = tmp_path / "probe"
    base(probe)
    log = tmp_path / "steps.log"
    p = run_writer(script, probe, before, add, shard_docs, merge_max, log=log)
    assert p.returncode == 0, p.stderr
    steps = Counter(line.strip() for line in log.read_text().splitlines())
    assert {"encoded.shard.committed", "encoded.manifest.after"} <= set(steps)
    assert_equal_to_clean(probe, 0, before + add)

    for name, count in steps.items():
        for n in occurrences(count):
            d = tmp_path / f"{name}-{n}"
            base(d)
            killed = run_writer(script, d, before, add, shard_docs, merge_max, crash_at=f"{name}:{n}")
            assert killed.returncode == -signal.SIGKILL, (name, n, killed.stderr)
            acked = acknowledged(killed.stdout, before)
            # the previous good state (and every acknowledged page) is readable right after the kill
            assert_state(d, {f"p{i}" for i in range(min(acked, before + add))}, {f"p{i}" for i in range(before + add)})
            rerun = run_writer(script, d, before, add, shard_docs, merge_max)
            assert rerun.returncode == 0, (name, n, rerun.stderr)
            assert_equal_to_clean(d, 0, before + add)
            assert not [c for c in d.rglob(".tmp-*")], "temp files left behind"


@pytest.mark.slow  # a crash loop: make test only
def test_sigkill_at_random_moments(tmp_path):
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    rng = random.Random(7)
    env = {k: v for k, v in os.environ.items() if not k.startswith("VSPLADE_CRASH")}
    for trial in range(4):
        d = tmp_path / f"r{trial}"
        p = run_writer(script, d, 0, 100, 20, 10**9)  # a finished dir, then an append
        assert p.returncode == 0
        proc = subprocess.Popen([sys.executable, str(script), str(d), "100", "400", "20", str(10**9)],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(rng.uniform(0.3, 2.0))
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate()
        acked = acknowledged(out, 100) if proc.returncode == -signal.SIGKILL else 500
        assert_state(d, {f"p{i}" for i in range(min(acked, 500))}, {f"p{i}" for i in range(500)})
        rerun = run_writer(script, d, 100, 400, 20, 10**9)
        assert rerun.returncode == 0, rerun.stderr
        assert_equal_to_clean(d, 0, 500)


def test_a_second_writer_is_refused_and_readers_are_not_blocked(tmp_path):
    d = tmp_path / "enc"
    first = EncodedDirWriter(d, INFO, shard_docs=10)
    first.add(expected(0, 10))  # one committed shard
    with pytest.raises(IndexLockedError, match=f"{d}.*another process.*pid {os.getpid()}"):
        EncodedDirWriter(d, INFO)
    with pytest.raises(IndexLockedError):
        EncodedDirWriter(d, INFO, recreate=True)  # --recreate honours the lock: nothing deleted
    reader = EncodedDir(d)
    assert reader.ids() == [f"p{i}" for i in range(10)] and not reader.complete
    first.add(expected(10, 15))
    first.close()
    assert len(EncodedDir(d)) == 15 and EncodedDir(d).complete
    with EncodedDirWriter(d, INFO) as again:  # released on close
        assert len(again.done_ids()) == 15


def test_a_reader_keeps_the_state_it_opened_while_the_writer_merges(tmp_path):
    d = tmp_path / "enc"
    with EncodedDirWriter(d, INFO) as w:
        w.add(expected(0, 30))
    w = EncodedDirWriter(d, INFO, shard_docs=10)
    w.add(expected(30, 50))
    reader = EncodedDir(d)  # the merged trio + two new shards
    assert len(reader) == 50
    w.close()  # merges: replaces the top-level trio, deletes the shards
    got = reader.load()
    assert got.ids == [f"p{i}" for i in range(50)]
    assert (got.matrix != expected(0, 50).matrix).nnz == 0


def test_leftover_temp_and_orphan_files_are_harmless(tmp_path):
    """The old writer's glob matched `part-00000.npz.tmp.npz` and unlinked a finished dir."""
    d = tmp_path / "enc"
    with EncodedDirWriter(d, INFO) as w:
        w.add(expected(0, 20))
    (d / "shards").mkdir()
    (d / "shards" / "part-00000.npz.tmp.npz").write_bytes(b"half a zip")
    (d / "shards" / "part-00002.npz").write_bytes(b"orphan")
    (d / ".tmp-1-1-vsplade.json").write_text("{")
    assert len(EncodedDir(d)) == 20
    with EncodedDirWriter(d, INFO) as w:
        assert len(w.done_ids()) == 20
        w.add(expected(20, 25))
    assert_equal_to_clean(d, 0, 25)
    assert not (d / "shards").exists() and not list(d.glob(".tmp-*"))
