"""The collection lifecycle (vsplade.catalog) on real OpenSearch nodes, both lines: the same
scenarios as tests/core/test_lifecycle.py (add, replace, copy, delete, sync, info, a lexical
index that accepts new files, SIGKILL during a sync), each compared with a fresh index of the
folder as it now is: same ids, same scores."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from lifecycle_support import make_folder, make_link_folder, pdf_pages
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


def summary(out: str) -> dict:
    line = [x for x in out.replace("\r", "\n").splitlines() if '{"indexed"' in x][-1]
    return json.loads(line[line.index('{"indexed"'):])


def state(server, ix) -> dict:
    from vsplade.encoders import load_query_encoder
    from vsplade_opensearch import OpenSearchEngine

    eng = OpenSearchEngine(index=ix, url=server.url)
    rows = {r["id"]: (r["source"], r["page"]) for r in eng.read_catalog()}
    q = load_query_encoder("lexical-noidf")
    with eng.searcher() as s:
        hits = [[(h.id, round(h.score, 4), h.source, h.page) for h in s.search(q.encode(t), k=20)] for t in QUERIES]
    return {"rows": rows, "hits": hits}


def test_delete_replace_copy_then_sync_equals_a_fresh_index(server, folder, names):
    ix = names("ix")
    assert index(server, folder, ix)[0] == 0
    assert len(state(server, ix)["rows"]) == 9
    (folder / "other.pdf").unlink()
    pdf_pages(DATA / "camlidl-1.04.doc.pdf", folder / "sub" / "manual.pdf", range(4, 9))
    shutil.copy(folder / "refcard.pdf", folder / "sub" / "refcard-copy.pdf")

    code, out = index(server, folder, ix)
    assert code == 0, out
    s = summary(out)
    assert s["files"] == {"added": 1, "unchanged": 1} and s["changed"] == 1
    code, out = index(server, folder, ix, "--sync")
    assert code == 0, out
    s = summary(out)
    assert s["files"] == {"added": 0, "replaced": 1, "unchanged": 2, "removed": 1} and s["removed_pages"] == 7
    fresh = names("fresh")
    assert index(server, folder, fresh)[0] == 0
    assert state(server, ix) == state(server, fresh)


def test_a_folder_of_symlinks_names_each_file_by_its_link(server, folder, names, tmp_path):
    """Before: keys were the link targets' absolute paths: a deleted link's pages survived
    --sync and --source / show / delete by the link's name found nothing."""
    links = make_link_folder(folder, tmp_path / "links")
    ix = names("ix")
    assert index(server, links, ix)[0] == 0
    assert {src for src, _ in state(server, ix)["rows"].values()} == {"refcard.pdf", "manual.pdf", "other.pdf"}
    code, out = cli(server, "search", "camlidl", "--engine", "opensearch", "--index", ix, "--json",
                    "--source", links / "manual.pdf")
    hits = json.loads([x for x in out.splitlines() if x.startswith('{"query')][-1])["hits"]
    assert code == 0 and hits and {h["source"] for h in hits} == {"manual.pdf"}, out
    code, out = cli(server, "show", "manual.pdf:3", "--out", tmp_path / "p.png", "--engine", "opensearch", "--index", ix)
    assert code == 0, out
    (links / "other.pdf").unlink()
    code, out = index(server, links, ix, "--sync")
    assert code == 0 and summary(out)["files"]["removed"] == 1 and summary(out)["removed_pages"] == 3, out
    fresh = names("fresh")
    assert index(server, links, fresh)[0] == 0
    assert state(server, ix) == state(server, fresh)
    code, out = cli(server, "delete", "--engine", "opensearch", "--index", ix, "--source", links / "manual.pdf", "--json")
    assert code == 0 and json.loads(out.splitlines()[-1])["deleted"] == 4, out


def test_an_index_built_from_an_encoded_dir_takes_new_files(server, folder, names, tmp_path):
    """Before: a lexical file added to an index built from an encoded dir was refused: the
    encoded-dir path did not record the collection's root and frozen statistics."""
    later = tmp_path / "later.pdf"
    shutil.move(folder / "other.pdf", later)
    enc, ix = tmp_path / "enc", names("ix")
    assert runner.invoke(app, ["encode", str(folder), "--model", "lexical", "--out", str(enc)]).exit_code == 0
    code, out = cli(server, "index", enc, "--engine", "opensearch", "--index", ix)
    assert code == 0, out
    code, out = index(server, later, ix, model="lexical")
    assert code == 0 and summary(out)["indexed"] == 3, out
    code, out = index(server, folder, ix, model="lexical")  # the encoded files keep their keys
    assert code == 0 and summary(out)["files"] == {"added": 0, "unchanged": 2}, out


def test_delete_info_and_hits_that_can_be_shown(server, folder, names, tmp_path):
    ix = names("ix")
    assert index(server, folder, ix)[0] == 0
    code, out = cli(server, "info", "--engine", "opensearch", "--index", ix, "--json", "--sources")
    info = json.loads(out.splitlines()[-1])
    assert info["pages"] == 9 and info["root"] == str(folder.resolve()) and info["size_bytes"] > 0
    assert {s["source"]: s["pages"] for s in info["sources"]} == {"refcard.pdf": 2, "sub/manual.pdf": 4, "other.pdf": 3}
    code, out = cli(server, "delete", "--engine", "opensearch", "--index", ix, "--source", folder / "sub", "--json")
    assert code == 0 and json.loads(out.splitlines()[-1])["deleted"] == 4
    assert sorted({src for src, _ in state(server, ix)["rows"].values()}) == ["other.pdf", "refcard.pdf"]
    code, out = cli(server, "show", "refcard.pdf:2", "--out", tmp_path / "p.png", "--width", 200,
                    "--engine", "opensearch", "--index", ix)
    assert code == 0, out
    code, out = cli(server, "search", "the function type", "--engine", "opensearch", "--index", ix, "--json",
                    "--source", "other.pdf", "--page-min", 2)
    hits = json.loads([x for x in out.splitlines() if x.startswith('{"query')][-1])["hits"]
    assert hits and all(h["source"] == "other.pdf" and h["page"] >= 2 and Path(h["path"]).is_file() for h in hits)


def test_lexical_index_accepts_new_files(server, folder, names, tmp_path):
    ix = names("ix")
    (tmp_path / "later").mkdir()
    shutil.move(folder / "other.pdf", tmp_path / "later" / "other.pdf")
    assert index(server, folder, ix, model="lexical")[0] == 0
    shutil.move(tmp_path / "later" / "other.pdf", folder / "other.pdf")
    code, out = index(server, folder, ix, model="lexical")
    assert code == 0 and summary(out)["indexed"] == 3, out


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
