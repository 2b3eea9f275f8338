"""Readable reasons (issue 26 item 3): explanations in the query's words, not word pieces, and
a warning when no page matches any query word whole. Before: "why this page" listed pieces
(`tr`, `fort`, `an`, `ran` for "Fortran interface") and a nonsense query showed confident pages."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from vsplade import Collection
from vsplade.cli import app


@pytest.fixture(scope="module")
def col(tmp_path_factory, pdf_dir):
    c = Collection.create(tmp_path_factory.mktemp("reasons") / "ix", engine="memory")
    assert c.index(pdf_dir, progress=False).ok
    yield c
    c.close()


def test_pieces_of_one_word_are_one_reason_with_its_share(col):
    words = col.query_encoder.words("Fortran interface")
    assert [w for w, _ in words] == ["Fortran", "interface"] and len(words[0][1]) > 1  # Fortran is pieces
    hits = col.search("Fortran interface", k=5, explain=True)
    assert hits
    for h in hits:
        assert [r["word"] for r in h.reasons] == ["Fortran", "interface"]
        # every matched piece belongs to a word: the shares add up to the whole score
        assert sum(r["share"] for r in h.reasons) == pytest.approx(1.0, rel=1e-6)
        for r in h.reasons:
            assert r["whole"] == (r["matched_pieces"] == r["pieces"])
            assert r["contribution"] == pytest.approx(sum(h.explain.get(t, 0) for t in dict(words)[r["word"]]))
    assert any(r["whole"] and r["word"] == "Fortran" for h in hits for r in h.reasons)
    assert col.notice("Fortran interface", hits) is None
    assert "reasons" in hits[0].as_dict()


def test_nonsense_is_flagged_as_weak_matches(col):
    hits = col.search("xqzvw blorptang", k=5, explain=True)
    assert hits  # pieces do match somewhere: exactly the confident-looking case
    assert not any(r["whole"] for h in hits for r in h.reasons)
    note = col.notice("xqzvw blorptang", hits)
    assert note and "xqzvw blorptang" in note and "whole word" in note
    grouped = col.search("xqzvw blorptang", k=2, group_by="file", explain=True)
    assert col.notice("xqzvw blorptang", grouped) == note
    assert col.notice("xqzvw blorptang", col.search("xqzvw blorptang", k=5)) is None  # needs explain


def test_cli_prints_words_and_the_notice(col):
    ix = str(col.engine.index)
    r = CliRunner().invoke(app, ["search", "Fortran interface", "xqzvw blorptang", "--engine", "memory",
                                 "--index", ix, "-k", "2", "--explain"])
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert any(line.strip().startswith("matched: Fortran ") for line in lines)
    assert sum("note: no page contains" in line for line in lines) == 1
    r = CliRunner().invoke(app, ["search", "xqzvw blorptang", "--engine", "memory", "--index", ix, "--explain", "--json"])
    row = json.loads(r.stdout)
    assert "whole word" in row["notice"] and row["hits"][0]["reasons"][0]["word"] == "xqzvw"


def test_serve_gives_reasons_and_the_notice(col):
    from vsplade.serve.service import SearchService

    service = SearchService(col)
    weak = service.search("xqzvw blorptang", 3, explain=True)
    assert "whole word" in weak["notice"] and weak["hits"][0]["reasons"][0]["word"] == "xqzvw"
    good = service.search("Fortran interface", 3, explain=True)
    assert "notice" not in good and {r["word"] for r in good["hits"][0]["reasons"]} == {"Fortran", "interface"}
