"""The lifecycle through the `vsplade` CLI: what the command line adds to the engine contract
(tests/engine_contract.py runs add, replace, copy, delete, sync, info, symlinks, encoded dirs
and frozen statistics on every engine through `Collection`): relative paths as a user types
them, the --json summary and its warnings, `show`, `delete --source` that names nothing (exit
1), "nothing indexed"; on the memory engine, as the CLI is the same for every engine. SIGKILL
during a sync runs on memory and Lucene (each engine's own crash points), compared with a fresh
index of the folder as it now is (same ids, same scores) for an encoder without corpus
statistics (lexical-noidf)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from lifecycle_support import make_folder, make_link_folder, pdf_pages
from typer.testing import CliRunner

from vsplade.cli import app
from vsplade.engines import get_engine_class

DATA = Path(__file__).parents[1] / "data" / "pdfs"
QUERIES = ["apt-get install package", "interface definition language", "camlidl stub code", "debian reference"]
CLI_ENGINES = ["memory"]  # the CLI's own checks; the engines' behaviour is the contract's
CRASH_ENGINES = ["memory", "lucene"]

runner = CliRunner()


def cli(*args) -> tuple[int, str]:
    r = runner.invoke(app, [str(a) for a in args])
    return r.exit_code, r.output


@pytest.fixture
def folder(tmp_path) -> Path:
    return make_folder(tmp_path)


def index(engine, folder, ix, *extra, model="lexical-noidf"):
    return cli("index", folder, "--model", model, "--engine", engine, "--index", ix, "--json", *extra)


def summary(out: str) -> dict:
    """The --json summary line (progress bars share the captured output)."""
    line = [x for x in out.replace("\r", "\n").splitlines() if '{"indexed"' in x][-1]
    return json.loads(line[line.index('{"indexed"'):])


def state(engine, ix) -> dict:
    """{id: (source, page)} and the hits of QUERIES: what a user of the index sees."""
    eng = get_engine_class(engine)(index=str(ix))
    rows = {r["id"]: (r["source"], r["page"]) for r in eng.read_catalog()}
    from vsplade.encoders import load_query_encoder

    q = load_query_encoder("lexical-noidf")
    with eng.searcher() as s:
        hits = [[(h.id, round(h.score, 4), h.source, h.page) for h in s.search(q.encode(t), k=20)] for t in QUERIES]
    return {"rows": rows, "hits": hits}


def fresh(engine, folder, tmp_path) -> dict:
    ix = tmp_path / f"fresh-{len(list(tmp_path.iterdir()))}"
    code, out = index(engine, folder, ix)
    assert code == 0, out
    return state(engine, ix)


@pytest.mark.parametrize("engine", CLI_ENGINES)
def test_sources_are_keys_under_the_root_with_absolute_paths(engine, folder, tmp_path, monkeypatch):
    ix = tmp_path / "ix"
    monkeypatch.chdir(tmp_path)  # a relative input, as a user types it
    code, out = index(engine, Path("docs"), ix)
    assert code == 0, out
    rows = get_engine_class(engine)(index=str(ix)).read_catalog()
    assert {r["source"] for r in rows} == {"refcard.pdf", "sub/manual.pdf", "other.pdf"}
    assert all(Path(r["path"]).is_file() and Path(r["path"]).is_absolute() for r in rows)
    code, out = cli("search", "apt-get install", "--engine", engine, "--index", ix, "--json")
    hit = json.loads([x for x in out.splitlines() if x.startswith('{"query')][-1])["hits"][0]
    assert hit["source"] == "refcard.pdf" and Path(hit["path"]).is_file()
    # from another working directory, the same folder names the same files: nothing new
    monkeypatch.chdir(folder / "sub")
    code, out = index(engine, folder, ix)
    assert code == 0 and summary(out)["indexed"] == 0 and summary(out)["files"] == {"added": 0, "unchanged": 3}


def search_hits(engine, ix, query, *extra) -> list[dict]:
    code, out = cli("search", query, "--engine", engine, "--index", ix, "--json", *extra)
    assert code == 0, out
    return json.loads([x for x in out.splitlines() if x.startswith('{"query')][-1])["hits"]


@pytest.mark.parametrize("engine", CLI_ENGINES)
def test_a_folder_of_symlinks_names_each_file_by_its_link(engine, folder, tmp_path, monkeypatch):
    """Before: the links' targets' absolute paths were the keys, so deleting a link then
    --sync removed nothing (its pages kept ranking) and --source / show / delete by the
    link's name found nothing."""
    links = make_link_folder(folder, tmp_path / "links")
    ix = tmp_path / "ix"
    assert index(engine, links, ix)[0] == 0
    assert {src for src, _ in state(engine, ix)["rows"].values()} == {"refcard.pdf", "manual.pdf", "other.pdf"}
    assert {h["source"] for h in search_hits(engine, ix, "camlidl", "--source", links / "manual.pdf")} == {"manual.pdf"}
    monkeypatch.chdir(tmp_path)  # a name relative to the working dir, as a user types it
    assert {h["source"] for h in search_hits(engine, ix, "camlidl", "--source", "links/other.pdf")} == {"other.pdf"}
    code, out = cli("show", "manual.pdf:3", "--engine", engine, "--index", ix, "--out", tmp_path / "p3.png")
    assert code == 0 and (tmp_path / "p3.png").stat().st_size > 0, out

    (links / "other.pdf").unlink()
    code, out = index(engine, links, ix, "--sync")
    assert code == 0 and summary(out)["files"]["removed"] == 1 and summary(out)["removed_pages"] == 3, out
    assert state(engine, ix) == fresh(engine, links, tmp_path)
    code, out = cli("delete", "--engine", engine, "--index", ix, "--source", links / "manual.pdf", "--json")
    assert code == 0 and json.loads(out.splitlines()[-1])["deleted"] == 4, out
    assert {src for src, _ in state(engine, ix)["rows"].values()} == {"refcard.pdf"}


@pytest.mark.parametrize("engine", CLI_ENGINES)
def test_an_index_built_from_an_encoded_dir_takes_new_files(engine, folder, tmp_path):
    """Before: encode -> index the encoded dir -> index one more PDF with --model lexical was
    refused ("holds pages from encoder {...}, not {...}"): the encoded-dir path did not record
    the collection's root and frozen statistics."""
    later = tmp_path / "later.pdf"
    shutil.move(folder / "other.pdf", later)
    enc, ix = tmp_path / "enc", tmp_path / "ix"
    assert cli("encode", folder, "--model", "lexical", "--out", enc)[0] == 0
    code, out = cli("index", enc, "--engine", engine, "--index", ix)
    assert code == 0, out
    code, out = index(engine, later, ix, model="lexical")
    assert code == 0 and summary(out)["indexed"] == 3, out
    code, out = index(engine, folder, ix, model="lexical")  # the encoded files keep their keys
    assert code == 0 and summary(out)["files"] == {"added": 0, "unchanged": 2}, out
    info = json.loads(cli("info", "--engine", engine, "--index", ix, "--json")[1].splitlines()[-1])
    assert info["pages"] == 9 and info["root"] == str(folder) and info["encoder"]["num_docs"] == 6


@pytest.mark.parametrize("engine", CLI_ENGINES)
def test_delete_replace_copy_then_sync_equals_a_fresh_index(engine, folder, tmp_path):
    ix = tmp_path / "ix"
    assert index(engine, folder, ix)[0] == 0
    before = state(engine, ix)
    assert len(before["rows"]) == 2 + 4 + 3

    # change everything at once: delete one file, replace one, copy one under a new name
    (folder / "other.pdf").unlink()
    pdf_pages(DATA / "camlidl-1.04.doc.pdf", folder / "sub" / "manual.pdf", range(4, 9))  # same name, new content
    shutil.copy(folder / "refcard.pdf", folder / "sub" / "refcard-copy.pdf")

    code, out = index(engine, folder, ix)  # plain index: adds the copy, never deletes, says what changed
    assert code == 0, out
    s = summary(out)
    assert s["files"] == {"added": 1, "unchanged": 1} and s["changed"] == 1
    assert any("sub/manual.pdf" in w and "--sync" in w for w in s["warnings"]), s["warnings"]
    plain = state(engine, ix)
    assert sorted(src for src, _ in plain["rows"].values()).count("sub/manual.pdf") == 4  # old version only
    assert any(src == "sub/refcard-copy.pdf" for src, _ in plain["rows"].values())  # the copy is its own file

    code, out = index(engine, folder, ix, "--sync")
    assert code == 0, out
    s = summary(out)
    assert s["files"] == {"added": 0, "replaced": 1, "unchanged": 2, "removed": 1}
    assert s["removed_pages"] == 4 + 3 and s["indexed"] == 5
    assert state(engine, ix) == fresh(engine, folder, tmp_path)

    code, out = index(engine, folder, ix, "--sync")  # nothing to do, nothing re-encoded
    assert code == 0 and summary(out)["indexed"] == 0
    assert summary(out)["files"] == {"added": 0, "replaced": 0, "unchanged": 3, "removed": 0}


@pytest.mark.parametrize("engine", CLI_ENGINES)
def test_delete_and_info(engine, folder, tmp_path):
    ix = tmp_path / "ix"
    assert index(engine, folder, ix)[0] == 0
    code, out = cli("info", "--engine", engine, "--index", ix, "--json", "--sources")
    info = json.loads(out.splitlines()[-1])
    assert info["pages"] == 9 and info["files"] == 3 and info["root"] == str(folder.resolve())
    assert {s["source"]: s["pages"] for s in info["sources"]} == {"refcard.pdf": 2, "sub/manual.pdf": 4, "other.pdf": 3}
    assert info["encoder"]["name"] == "lexical" and info["created"] and info["updated"]

    code, out = cli("delete", "--engine", engine, "--index", ix, "--source", folder / "sub", "--json")
    assert code == 0 and json.loads(out.splitlines()[-1])["deleted"] == 4
    pid = next(i for i, (src, _) in state(engine, ix)["rows"].items() if src == "refcard.pdf")
    code, out = cli("delete", "--engine", engine, "--index", ix, "--id", pid, "--source", "nowhere.pdf")
    assert code == 1 and "not found: nowhere.pdf" in out
    rows = state(engine, ix)["rows"]
    assert sorted(rows.values()) == [("other.pdf", 1), ("other.pdf", 2), ("other.pdf", 3), ("refcard.pdf", 2)]
    # a deleted file comes back with the next plain run
    code, out = index(engine, folder, ix)
    assert code == 0 and len(state(engine, ix)["rows"]) == 9


@pytest.mark.parametrize("engine", CLI_ENGINES)
def test_a_run_that_reads_nothing_creates_no_index(engine, folder, tmp_path):
    ix = tmp_path / "ix"
    code, out = index(engine, folder / "typo", ix, model="lexical")
    assert code == 1 and summary(out)["nothing_indexed"] is True
    assert get_engine_class(engine)(index=str(ix)).read_properties() is None
    code, out = cli("index", folder / "typo", "--model", "lexical", "--engine", engine, "--index", ix)
    assert code == 1 and "nothing indexed" in out
    code, out = index(engine, folder, ix, model="lexical")  # the corrected run is accepted
    assert code == 0 and summary(out)["indexed"] == 9


SYNC_STEPS = {
    "memory": ["sync.new-pages-committed", "encoded.delete.committed", "encoded.shard.committed",
               "encoded.merge.written", "encoded.merge.trio-linked:2", "encoded.manifest.before:2"],
    "lucene": ["sync.new-pages-committed", "lucene.commit.after", "lucene.delete.config-written",
               "lucene.delete.before-commit", "lucene.delete.committed", "lucene.delete.docs-written",
               "lucene.close.docs-rebuilt", "lucene.close.writer-closed", "lucene.close.config-tmp"],
}


@pytest.mark.slow  # a crash loop: make test only
@pytest.mark.parametrize("engine", CRASH_ENGINES)
def test_sigkill_during_a_sync_then_rerun_converges(engine, folder, tmp_path):
    base = tmp_path / "base"
    assert index(engine, folder, base)[0] == 0
    (folder / "other.pdf").unlink()
    pdf_pages(DATA / "camlidl-1.04.doc.pdf", folder / "sub" / "manual.pdf", range(4, 9))
    want = fresh(engine, folder, tmp_path)
    old_ids = set(state(engine, base)["rows"])
    env = {k: v for k, v in os.environ.items() if not k.startswith("VSPLADE_CRASH")}
    cmd = [sys.executable, "-m", "vsplade", "index", str(folder), "--model", "lexical-noidf", "--engine", engine, "--sync"]
    for step in SYNC_STEPS[engine]:
        ix = tmp_path / f"ix-{step.replace(':', '-')}"
        shutil.copytree(base, ix)
        p = subprocess.run(cmd + ["--index", str(ix)], env={**env, "VSPLADE_CRASH_AT": step}, capture_output=True, text=True)
        assert p.returncode == -signal.SIGKILL, (step, p.returncode, p.stderr[-2000:])
        # right after the kill: readable, and every page of the folder's unchanged files still there
        seen = state(engine, ix)["rows"]
        assert set(seen) <= old_ids | set(want["rows"])
        assert {i for i, (src, _) in seen.items() if src == "refcard.pdf"} == {
            i for i, (src, _) in want["rows"].items() if src == "refcard.pdf"}
        if step != "sync.new-pages-committed" and not step.startswith("encoded.shard"):
            # past the commit of the new version: a search never finds the changed file missing
            assert any(src == "sub/manual.pdf" for src, _ in seen.values())
        p = subprocess.run(cmd + ["--index", str(ix)], env=env, capture_output=True, text=True)
        assert p.returncode == 0, (step, p.stderr[-2000:])
        assert state(engine, ix) == want, step
