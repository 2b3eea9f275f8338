"""`vsplade serve` follows its index (issue 23): before, after `vsplade index --sync` by another
process the service still ranked a deleted file's pages, answered `/pages/<deleted id>` with 200
and a cached thumbnail, never found the new file, and reported the old page count. The
`Collection` under it compares the index version per request (Lucene's commit points, the
memory manifest) and reopens its searcher, so none of that survives the next request."""

from __future__ import annotations

import json
import shutil

import pytest

from serve_support import lucene_available, run_server, vsplade

ENGINES = ["memory", pytest.param("lucene", marks=pytest.mark.skipif(not lucene_available(), reason="no vsplade-lucene"))]


@pytest.mark.slow  # real services and a second indexing process
@pytest.mark.timeout(600)
@pytest.mark.parametrize("engine", ENGINES)
def test_serve_sees_another_process_sync(engine, tmp_path, pdf_dir):
    docs = tmp_path / "docs"
    docs.mkdir()
    for name in ("debian-refcard-en-a4.pdf", "camlidl-1.04.doc.pdf"):
        shutil.copy(pdf_dir / name, docs / name)
    ix = tmp_path / "ix"
    vsplade("index", str(docs), "--model", "lexical", "--engine", engine, "--index", str(ix))
    with run_server(engine, ix, tmp_path) as server:
        _, before = server.get_json("/info")
        status, body = server.get_json("/search", q="debian package management", k=10)
        assert status == 200
        gone = [h for h in body["hits"] if h["source"] == "debian-refcard-en-a4.pdf"]
        assert gone, body
        assert server.request("GET", f"/pages/{gone[0]['id']}/image?width=160")[0] == 200  # cached now

        # another process: one file removed, another added, --sync
        (docs / "debian-refcard-en-a4.pdf").unlink()
        shutil.copy(pdf_dir / "byaldi_financial_report.pdf", docs / "byaldi_financial_report.pdf")
        vsplade("index", str(docs), "--model", "lexical", "--engine", engine, "--index", str(ix), "--sync")
        cli_info = json.loads(vsplade("info", "--engine", engine, "--index", str(ix), "--json").stdout)

        _, info = server.get_json("/info")
        assert info["pages"] == cli_info["pages"] != before["pages"]
        assert info["version"] != before["version"]
        status, body = server.get_json("/search", q="debian package management", k=100)
        assert status == 200 and not [h for h in body["hits"] if h["source"] == "debian-refcard-en-a4.pdf"]
        status, body = server.get_json("/search", q="financial report revenue", k=5)
        assert status == 200 and body["hits"][0]["source"] == "byaldi_financial_report.pdf"
        assert server.get_json(f"/pages/{gone[0]['id']}")[0] == 404
        assert server.request("GET", f"/pages/{gone[0]['id']}/image?width=160")[0] == 404  # never the cached one
