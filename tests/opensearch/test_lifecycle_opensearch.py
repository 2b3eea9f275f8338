"""The collection lifecycle on real OpenSearch nodes, both lines, where the engine contract
(tests/engine_contract.py, run here by test_contract_opensearch.py: add, replace, copy, delete,
sync, info, symlinks, encoded dirs, a lexical index that accepts new files) does not reach: a
`vsplade index --sync` SIGKILLed mid-run, then re-run, converges on a fresh index of the folder
as it now is (same ids, same scores)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from lifecycle_support import make_folder, pdf_pages
from typer.testing import CliRunner

from vsplade.cli import app

DATA = Path(__file__).parents[1] / "data" / "pdfs"
QUERIES = ["apt-get install package", "interface definition language", "camlidl stub code", "debian reference"]
runner = CliRunner()


@pytest.fixture
def folder(tmp_path) -> Path:
    return make_folder(tmp_path)


@pytest.fixture
def names(server):
    made: list[str] = []

    def make(label: str) -> str:
        made.append(f"lc-{label}-{uuid.uuid4().hex[:8]}")
        return made[-1]

    yield make
    from vsplade_opensearch.connection import Connection

    client = Connection.from_options({"url": server.url}).client()
    for n in made:
        client.indices.delete(index=n, ignore=[404])


def cli(server, *args):
    r = runner.invoke(app, [str(a) for a in args] + ["--url", server.url])
    return r.exit_code, r.output


def index(server, folder, ix, *extra, model="lexical-noidf"):
    return cli(server, "index", folder, "--model", model, "--engine", "opensearch", "--index", ix, "--json", *extra)


def state(server, ix) -> dict:
    from vsplade.encoders import load_query_encoder
    from vsplade_opensearch import OpenSearchEngine

    eng = OpenSearchEngine(index=ix, url=server.url)
    rows = {r["id"]: (r["source"], r["page"]) for r in eng.read_catalog()}
    q = load_query_encoder("lexical-noidf")
    with eng.searcher() as s:
        hits = [[(h.id, round(h.score, 4), h.source, h.page) for h in s.search(q.encode(t), k=20)] for t in QUERIES]
    return {"rows": rows, "hits": hits}


def test_sigkill_during_a_sync_then_rerun_converges(server, folder, names):
    orig = {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*.pdf")}
    env = {k: v for k, v in os.environ.items() if not k.startswith("VSPLADE_CRASH")}

    def change():
        (folder / "other.pdf").unlink()
        pdf_pages(DATA / "camlidl-1.04.doc.pdf", folder / "sub" / "manual.pdf", range(4, 9))

    def restore():
        for rel, data in orig.items():
            (folder / rel).write_bytes(data)

    change()
    want_ix = names("want")
    assert index(server, folder, want_ix)[0] == 0
    want = state(server, want_ix)
    for step in ("sync.new-pages-committed",):
        restore()
        ix = names("crash")
        assert index(server, folder, ix)[0] == 0
        change()
        cmd = [sys.executable, "-m", "vsplade", "index", str(folder), "--model", "lexical-noidf", "--engine",
               "opensearch", "--index", ix, "--url", server.url, "--sync"]
        p = subprocess.run(cmd, env={**env, "VSPLADE_CRASH_AT": step}, capture_output=True, text=True, timeout=300)
        assert p.returncode == -signal.SIGKILL, (step, p.stderr[-2000:])
        seen = state(server, ix)["rows"]
        # new version committed, old not yet removed: the changed file is never missing
        assert any(src == "sub/manual.pdf" for src, _ in seen.values())
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stderr[-2000:]
        assert state(server, ix) == want
