"""Crash injection for the Lucene writers: `vsplade index ENC --engine lucene --index DIR` is
SIGKILLed at every crash point it reaches (vsplade.crashpoints; the steps are discovered with
crash_harness.crash_steps, not listed here) and at random moments, then the same command is
run again.

After every kill, before the re-run, the killed dir must answer with its last commit: a
prefix of the input order (nothing foreign, no duplicate) that holds every page an earlier
run acknowledged, through the engine's searcher (hits and scores = the exact scorer on that
prefix's integer impacts), Pyserini's LuceneImpactSearcher and Lucene's CheckIndex; or, when
the very first commit never happened, a clear EngineError. After the re-run the index must
equal a clean build: ids in order, count, docs file, config, scores vs the exact scorer.

Scenarios: a first build of 300 pages; an append of 150 new pages to a finished 150-page
index (the command is given all 300, as a user re-running on a grown encoded dir would);
--recreate of that 150-page index with 150 other pages (killed at the steps only recreate
reaches; after them it runs the first build's code). Chunks of 40 pages and a Java commit
every 80 pages, so each step happens several times; in the append a step reached more than
once is also killed at its last time. The kills run in subprocesses (one JVM each, ~3 s);
the checks and the re-runs (the CLI, in-process) in this process, to bound the runtime.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from crash_harness import KILLED, crash_steps, run_vsplade
from vsplade.engines.base import EngineError
from vsplade_lucene import LuceneEngine, jvm
from vsplade_lucene.store import DocsFile, read_config

from lucene_support import QuantizedReference, assert_same_hits, random_corpus, random_queries, stored_ids, write_encoded_dir

N, HALF, SCALE = 300, 150, 100  # scale 100: integer scores stay exact in Lucene's float32
ENV = {"VSPLADE_LUCENE_CHUNK_DOCS": "40", "VSPLADE_LUCENE_COMMIT_EVERY": "80", "VSPLADE_LUCENE_HEAP": "256m"}
RANDOM_KILLS = 3  # per scenario, after one run that measures the writing window
SEED = int(os.environ.get("VSPLADE_TEST_SEED", "18"))


@contextlib.contextmanager
def lucene_env():
    """The same chunk/commit sizes for the in-process re-runs as for the killed subprocesses."""
    saved = {k: os.environ.get(k) for k in ENV}
    os.environ.update(ENV)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class Setup:
    def __init__(self, root: Path, vocab):
        self.root = root
        self.pages = random_corpus(vocab, n=N, seed=3)
        self.ids = list(self.pages.ids)
        self.enc_all = write_encoded_dir(root / "enc-all", self.pages)
        self.enc_first = write_encoded_dir(root / "enc-first", self.pages.select(range(HALF)))
        self.enc_second = write_encoded_dir(root / "enc-second", self.pages.select(range(HALF, N)))
        self.queries = random_queries(self.pages, vocab, n=5, seed=4)
        self.base = root / "base"  # a finished index of the first half, built by the CLI
        cli(["index", self.enc_first, "--index", self.base, "--scale", SCALE])
        assert stored_ids(self.base) == self.ids[:HALF]
        self._n = 0

    def fresh(self, start_from: Path | None) -> Path:
        self._n += 1
        path = self.root / f"run-{self._n:03d}"
        if start_from is not None:
            shutil.copytree(start_from, path)
        return path

    def expect(self, ids: list[str]):
        rows = [self.ids.index(i) for i in ids]
        return self.pages.select(rows)


def cli(args) -> None:
    from vsplade.cli import app

    with lucene_env():
        r = CliRunner().invoke(app, [str(a) for a in args])
    assert r.exit_code == 0, (args, r.output, r.exception)


@pytest.fixture(scope="module")
def setup(tmp_path_factory, vocab) -> Setup:
    return Setup(tmp_path_factory.mktemp("crash"), vocab)


class _PassThrough:
    def encode(self, q):
        return q


def check_answers(path: Path, setup: Setup, ids: list[str], check_index: bool = True,
                  pyserini_search: bool = True) -> None:
    """The engine's searcher (as `vsplade search` opens it) and Pyserini's agree with the
    exact scorer on `ids`' pages; Lucene's CheckIndex finds nothing wrong."""
    from vsplade.sparse import quantize_query_impacts

    ref = QuantizedReference(setup.expect(ids), scale=SCALE)
    with LuceneEngine(str(path)).searcher() as s:
        assert s.num_docs == len(ids) and s.scale == SCALE
        for q in setup.queries:
            assert_same_hits(s.search(q, 10), ref.search(q, 10))
        hit = s.search(setup.queries[0], 1)
        if hit:
            meta = setup.pages.meta[setup.ids.index(hit[0].id)]
            assert (hit[0].source, hit[0].page) == (meta["source"], meta["page"])
    lucene = jvm.import_pyserini("pyserini.search.lucene")
    ps = lucene.LuceneImpactSearcher(str(path), _PassThrough(), min_idf=-1)
    try:
        assert ps.num_docs == len(ids)
        if pyserini_search:
            q = quantize_query_impacts(setup.queries[1], SCALE)
            want = [h.id for h in ref.search(setup.queries[1], len(ids))]
            assert sorted(h.docid for h in ps.search(q, len(ids))) == sorted(want)
    finally:
        ps.close()
    if not check_index:
        return
    J = jvm.classes()
    directory = J.FSDirectory.open(J.Paths.get(str(path.resolve())))
    checker = jvm.jclass("org.apache.lucene.index.CheckIndex")(directory)
    try:
        assert checker.checkIndex().clean
    finally:
        checker.close()
        directory.close()


def check_killed(path: Path, setup: Setup, acknowledged: list[str], old: list[str] | None,
                 new: list[str]) -> int:
    """The killed dir's last commit: readable; either exactly the `old` state (--recreate
    killed before it deleted anything) or a prefix of the `new` input order that holds every
    acknowledged page; a clear error if nothing is committed. Returns its size."""
    committed = stored_ids(path) if any(path.glob("segments_*")) else None
    if committed is None:
        assert not acknowledged, "acknowledged pages gone: no commit left in the dir"
        with pytest.raises(EngineError, match="no Lucene index"):
            LuceneEngine(str(path)).searcher()
        return 0
    assert committed == old or committed == new[: len(committed)], (
        "the commit is neither the old state nor a prefix of the input (lost, foreign or "
        "duplicate pages)", committed)
    assert committed[: len(acknowledged)] == acknowledged, "an acknowledged page was lost"
    assert len(set(committed)) == len(committed)
    rows = DocsFile(path).read(limit=len(committed))
    assert [r["id"] for r in rows] == committed, "vsplade-docs.jsonl not aligned with the commit"
    if committed:
        check_answers(path, setup, committed)
    return len(committed)


def check_final(path: Path, setup: Setup, want: list[str], full: bool = False) -> None:
    assert stored_ids(path) == want
    rows = DocsFile(path).read()
    assert [r["id"] for r in rows] == want, "the docs file lists other pages than the index"
    for r in rows[:: max(1, len(rows) // 7)]:
        meta = setup.pages.meta[setup.ids.index(r["id"])]
        assert (r["source"], r["page"]) == (meta["source"], meta["page"])
    cfg = read_config(path)
    assert (cfg["state"], cfg["num_docs"], cfg["scale"]) == ("ready", len(want), SCALE)
    # after a re-run Pyserini only has to open it: its answers are checked on the clean builds
    # (discover) and on every killed state; CheckIndex on a clean finish is test_indexer_jar's
    check_answers(path, setup, want, check_index=False, pyserini_search=full)


SCENARIOS = {
    # name: (args, start from the base index?, acknowledged before the run, old state a kill
    # may leave whole (recreate), final ids = the input order)
    "first-build": lambda s: (["index", s.enc_all, "--index", "{DIR}", "--scale", SCALE], None, [],
                              None, s.ids),
    "append": lambda s: (["index", s.enc_all, "--index", "{DIR}"], s.base, s.ids[:HALF], None, s.ids),
    "recreate": lambda s: (["index", s.enc_second, "--index", "{DIR}", "--recreate", "--scale", SCALE],
                           s.base, [], s.ids[:HALF], s.ids[HALF:]),
}


def _args(args, path):
    return [str(path) if a == "{DIR}" else a for a in args]


def kill_at(setup: Setup, scenario: str, spec: str) -> str | None:
    """Kill at `spec`, check the killed dir, re-run, check the result; None or what failed."""
    args, start, acked, old, final = SCENARIOS[scenario](setup)
    path = setup.fresh(start)
    try:
        proc = run_vsplade(_args(args, path), crash_at=spec, env=ENV)
        assert proc.returncode == KILLED, (proc.returncode, proc.stderr[-3000:])
        check_killed(path, setup, acked, old, final)
        cli(_args(args, path))
        check_final(path, setup, final)
    except AssertionError as e:
        return f"{scenario} killed at {spec}: {e}"[:3000]
    shutil.rmtree(path)
    return None


def discover(setup: Setup, scenario: str) -> list[tuple[str, int]]:
    """The steps a clean run of the scenario reaches, which is also checked as a clean build."""
    args, start, _, _, final = SCENARIOS[scenario](setup)
    path = setup.fresh(start)
    steps = crash_steps(_args(args, path), env=ENV)
    check_final(path, setup, final, full=True)
    shutil.rmtree(path)
    return steps


def specs(steps: list[tuple[str, int]], last_too: bool) -> list[str]:
    out = []
    for name, count in steps:
        out.append(f"{name}:1")
        if last_too and count > 1:
            out.append(f"{name}:{count}")
    return out


@pytest.mark.slow
@pytest.mark.timeout(900)  # ~40 kill/re-run pairs: 66 s idle, past 300 s once on a loaded machine
def test_kill_at_every_step_then_rerun(setup):
    failures = []
    first = discover(setup, "first-build")
    append = discover(setup, "append")
    recreate = discover(setup, "recreate")
    assert len(first) >= 8, first  # the writer's steps are instrumented at all
    assert [n for n, c in first if c > 1], "chunk/commit sizes too large: no step repeats"
    reached = {n for n, _ in first} | {n for n, _ in append}
    only_recreate = [(n, c) for n, c in recreate if n not in reached]
    assert only_recreate, recreate
    # every step of a first build and of an append (there also at its last time: Java has
    # committed in the background by then), and what only --recreate reaches
    plan = ([("first-build", s) for s in specs(first, last_too=False)]
            + [("append", s) for s in specs(append, last_too=True)]
            + [("recreate", s) for s in specs(only_recreate, last_too=False)])
    for scenario, spec in plan:
        err = kill_at(setup, scenario, spec)
        if err:
            failures.append(err)
    assert not failures, "\n\n".join(failures)


def _kill_randomly(setup: Setup, scenario: str, delay: float | None) -> tuple[str | None, float]:
    """SIGKILL `delay` seconds after the writer hands its first chunk over (seen in
    VSPLADE_CRASH_LOG): from there on Java builds, adds and commits segments in the background
    at moments no crash point marks. delay None: no kill, the run's remaining time is measured.
    Returns (what failed or None, seconds from the first chunk to the end of the run)."""
    args, start, acked, old, final = SCENARIOS[scenario](setup)
    path = setup.fresh(start)
    log = path.parent / f"{path.name}.steps"
    env = {k: v for k, v in os.environ.items() if not k.startswith("VSPLADE_CRASH")}
    env.update(ENV, VSPLADE_CRASH_LOG=str(log), HF_HUB_OFFLINE="1")
    proc = subprocess.Popen([sys.executable, "-m", "vsplade", *map(str, _args(args, path))], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        while proc.poll() is None and not (log.exists() and "lucene.docs-appended" in log.read_text()):
            time.sleep(0.005)
        t0 = time.monotonic()
        if delay is not None:
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)  # a no-op if it has already exited
        _, err = proc.communicate(timeout=300)
        rest = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    what = "run to the end" if delay is None else f"killed {delay:.3f}s after its first chunk"
    try:
        assert proc.returncode in ((0,) if delay is None else (0, KILLED)), (proc.returncode, err[-3000:])
        check_killed(path, setup, final if proc.returncode == 0 else acked, old, final)
        cli(_args(args, path))
        check_final(path, setup, final)
    except AssertionError as e:
        return f"{scenario} {what} (seed {SEED}): {e}"[:3000], rest
    finally:
        log.unlink(missing_ok=True)
    shutil.rmtree(path)
    return None, rest


@pytest.mark.slow
def test_kill_at_random_moments_then_rerun(setup):
    """Per scenario: one run measures how long writing takes after the first chunk, then
    RANDOM_KILLS kills at random moments spread over that window (stratified, seeded)."""
    rng = random.Random(SEED)
    failures = []
    for scenario in ("first-build", "append"):
        err, window = _kill_randomly(setup, scenario, None)
        failures += [err] if err else []
        for i in range(RANDOM_KILLS):
            delay = window * rng.uniform(i, i + 1) / RANDOM_KILLS
            err, _ = _kill_randomly(setup, scenario, delay)
            failures += [err] if err else []
    assert not failures, "\n\n".join(failures)


# The JsonVectorCollection route (Pyserini's IndexCollection) has no CLI flag: a script drives it.
JSONVECTOR_SCRIPT = """
import sys
from vsplade.pipeline import index_encoded
from vsplade_lucene import LuceneEngine
eng = LuceneEngine(sys.argv[2], build="jsonvector", scale=100, threads=2)
index_encoded(sys.argv[1], lambda info: eng.writer(info), progress=False)
"""


def _run_jsonvector(enc: Path, path: Path, extra_env: dict) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VSPLADE_CRASH")}
    env.update(ENV, HF_HUB_OFFLINE="1", **extra_env)
    return subprocess.run([sys.executable, "-c", JSONVECTOR_SCRIPT, str(enc), str(path)], env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_jsonvector_route_killed_at_its_steps_then_rerun(setup):
    """Killed while exporting/indexing/writing the docs file: the dir is refused by no one; the
    build is not resumable page by page, so the re-run starts it over and equals a clean one
    (before: a kill inside IndexCollection left Lucene files without our config, and every
    later run refused the dir as 'a Lucene index not built by vsplade')."""
    from vsplade.pipeline import index_encoded

    enc = setup.enc_first
    want = {i for i in setup.ids[:HALF] if setup.pages.row(setup.ids.index(i))[0].size}  # Anserini skips empty pages
    ref = QuantizedReference(setup.expect(setup.ids[:HALF]), scale=SCALE)
    log = setup.root / "jsonvector.steps"
    clean = setup.fresh(None)
    proc = _run_jsonvector(enc, clean, {"VSPLADE_CRASH_LOG": str(log)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    steps = list(dict.fromkeys(line.strip() for line in log.read_text().splitlines()))
    own = [n for n in steps if n.startswith("lucene.jsonvector.")]
    assert own, steps

    def check(path: Path) -> None:
        assert set(stored_ids(path)) == want
        with LuceneEngine(str(path)).searcher() as s:
            assert [r["id"] for r in DocsFile(path).read()] == stored_ids(path)
            for q in setup.queries:
                got = {h.id: h.score for h in s.search(q, HALF)}
                exp = {h.id: h.score for h in ref.search(q, HALF)}
                assert got.keys() == exp.keys()
                assert all(abs(got[d] - exp[d]) <= 1e-6 * max(1.0, exp[d]) for d in exp)

    check(clean)
    failures = []
    for name in own:
        path = setup.fresh(None)
        try:
            proc = _run_jsonvector(enc, path, {"VSPLADE_CRASH_AT": name})
            assert proc.returncode == KILLED, (proc.returncode, proc.stderr[-3000:])
            if any(path.glob("segments_*")):  # IndexCollection committed: all of it, readable
                assert set(stored_ids(path)) == want
                with LuceneEngine(str(path)).searcher() as s:
                    assert s.num_docs == len(want)
            else:
                with pytest.raises(EngineError, match="no Lucene index"):
                    LuceneEngine(str(path)).searcher()
            with lucene_env():
                eng = LuceneEngine(str(path), build="jsonvector", scale=SCALE, threads=2)
                index_encoded(enc, lambda info: eng.writer(info), progress=False)
            check(path)
        except (AssertionError, EngineError) as e:
            failures.append(f"jsonvector killed at {name}: {e!r}"[:3000])
    assert not failures, "\n\n".join(failures)
