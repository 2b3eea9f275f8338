"""Where on the page (vsplade.highlight): boxes from the real PDFs' text layers lie on the words
that carry the matched terms, terms not printed are listed and never drawn, an image page says
it has no text layer, snippets mark the matches."""

from __future__ import annotations

import shutil

import pytest
from highlight_support import alnum, text_under

from vsplade import Collection
from vsplade.engines.base import Hit
from vsplade.highlight import draw, highlight, read_words
from vsplade.render import SourceError, hit_image, hit_words

REFCARD = "debian-refcard-en-a4.pdf"


@pytest.fixture(scope="module")
def refcard_col(tmp_path_factory, pdf_dir):
    root = tmp_path_factory.mktemp("hl")
    docs = root / "docs"
    docs.mkdir()
    shutil.copy(pdf_dir / REFCARD, docs / "ref.pdf")
    col = Collection.create(root / "ix", engine="memory")
    col.index(docs, progress=False)
    yield col
    col.close()


@pytest.mark.slow  # every word of several pages checked against pdfium: `make test`
def test_every_word_box_lies_on_its_word(pdf_dir):
    # all the words of every page of the three PDFs: pdfium's own text under each box is the word
    for name in (REFCARD, "camlidl-1.04.doc.pdf", "byaldi_financial_report.pdf"):
        import pypdfium2 as pdfium

        n = len(pdfium.PdfDocument(str(pdf_dir / name)))
        checked = 0
        for page in range(1, min(n, 4) + 1):
            words = read_words(pdf_dir / name, page)
            assert words.has_text
            for w in words.words:
                if not alnum(w.core):
                    continue
                assert alnum(text_under(pdf_dir / name, page, w.box)) == alnum(w.core), (name, page, w)
                x0, y0, x1, y1 = w.rel
                assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1
                checked += 1
        assert checked > 0, name


def test_search_hit_boxes_are_the_query_words(refcard_col, pdf_dir):
    hit = refcard_col.search("apt install", k=1, explain=True)[0]
    hl = hit.highlights("apt install")
    assert hl.has_text and hl.boxes and not hl.not_on_page
    assert set(hl.on_page) == set(hit.explain)  # every matched term is found on the page
    for b in hl.boxes:
        under = alnum(text_under(pdf_dir / REFCARD, hit.page, b.box)).lower()
        assert under == alnum(b.text).lower()
        assert "apt" in under or "install" in under
        assert set(b.terms) <= set(hit.explain)
    texts = [b.text.lower() for b in hl.boxes]
    assert "install" in texts and "apt" in texts


def test_whole_words_rank_above_pieces(pdf_dir):
    hl = highlight(read_words(pdf_dir / REFCARD, 2), "package")
    kinds = [b.whole for b in hl.boxes]
    assert True in kinds and False in kinds
    assert kinds == sorted(kinds, reverse=True)  # every whole-word box before every piece box
    assert {b.text.lower() for b in hl.boxes if b.whole} == {"package"}
    pieces = {b.text for b in hl.boxes if not b.whole}
    assert any(t.startswith("package-name") for t in pieces)  # "package" is one of its pieces
    # a piece inside a word ("ran" of "fortran") does not mark the word "ran"
    hl = highlight(read_words(pdf_dir / REFCARD, 2), "Fortran")
    assert all(b.text.lower() not in ("ran", "an", "tr") for b in hl.boxes)


def test_a_matched_term_not_printed_is_listed_never_drawn(refcard_col, pdf_dir):
    hit = refcard_col.search("apt install", k=1, explain=True)[0]
    # a V-SPLADE page vector holds terms the page never prints (its expansion): such a term is
    # a matched term for highlighting and must come back as not on the page
    terms = dict(hit.explain)
    terms["Ġzebra"] = 0.5
    hl = highlight(hit_words(hit._meta()), "apt install zebra", terms=terms)
    assert hl.not_on_page == ["Ġzebra"]
    assert all("Ġzebra" not in b.terms for b in hl.boxes)
    assert "zebra" in hl.note and hl.display["Ġzebra"] == "zebra"
    assert hl.as_dict()["not_on_page"] == [{"term": "Ġzebra", "token": "zebra"}]
    # without the expansion term the query word is simply not matched: not listed at all
    assert "Ġzebra" not in highlight(hit_words(hit._meta()), "apt install zebra", terms=hit.explain).not_on_page


def test_image_page_has_no_boxes_and_says_so(data_dir):
    meta = {"id": "x", "source": "sample_page.png", "page": 1, "path": str(data_dir / "sample_page.png")}
    from vsplade.highlight import highlight_page, highlighted_image

    hl = highlight_page(meta, "apt install")
    assert not hl.has_text and hl.boxes == [] and hl.snippet is None
    assert sorted(hl.not_on_page) == ["Ġapt", "Ġinstall"]
    assert "no text layer" in hl.note
    image, hl2 = highlighted_image(meta, "apt install", width=200)
    assert image.tobytes() == hit_image(meta, 200).tobytes()  # nothing drawn
    assert hl2.as_dict()["text_layer"] is False


def test_highlighted_image_tints_the_boxes_only(refcard_col):
    hit = refcard_col.search("reportbug", k=1, explain=True)[0].attach_query("reportbug", refcard_col.query_encoder)
    plain = hit.image(800)
    marked = hit.image(800, highlight=True)
    assert marked.size == plain.size
    hl = hit.highlights()
    assert hl.boxes
    for x0, y0, x1, y1 in hl.pixel_boxes(*plain.size):
        cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
        # white paper under a box turns yellow: blue drops, red stays
        background = [(x, y0 - 2) for x in range(x0, x1)] + [(x, y1 + 2) for x in range(x0, x1)]
        assert any(plain.getpixel(p) != marked.getpixel(p) for p in background + [(cx, cy)])
    # far from every box, the picture is untouched
    diff = [(x, y) for y in range(0, plain.height, 7) for x in range(0, plain.width, 7)
            if plain.getpixel((x, y)) != marked.getpixel((x, y))]
    boxes = hl.pixel_boxes(*plain.size)
    pad = 4
    assert diff and all(any(x0 - pad <= x <= x1 + pad and y0 - pad <= y <= y1 + pad for x0, y0, x1, y1 in boxes)
                        for x, y in diff)


def test_rotated_page_boxes_follow_the_rotation(tmp_path, pdf_dir):
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(str(pdf_dir / REFCARD))
    pdf[1].set_rotation(90)  # only /Rotate changes: the same content, shown turned
    pdf.save(str(tmp_path / "rot.pdf"))
    pdf.close()
    plain, rot = read_words(pdf_dir / REFCARD, 2), read_words(tmp_path / "rot.pdf", 2)
    assert rot.size == plain.size[::-1]
    # pdfium orders a turned page's text differently; a word keeps its place in PDF space
    turned = {(w.text, tuple(round(v, 1) for v in w.box)): w for w in rot.words}
    pairs = [(a, turned[(a.text, tuple(round(v, 1) for v in a.box))]) for a in plain.words
             if (a.text, tuple(round(v, 1) for v in a.box)) in turned]
    assert len(pairs) > 0.9 * len(plain.words)
    for a, b in pairs:  # a quarter turn clockwise: (x, y) -> (1 - y, x)
        x0, y0, x1, y1 = a.rel
        assert b.rel == pytest.approx((1 - y1, x0, 1 - y0, x1), abs=1e-3)


def test_snippet_marks_the_matches(refcard_col):
    hit = refcard_col.search("reportbug", k=1, explain=True)[0]
    hl = hit.highlights("reportbug")
    sn = hl.snippet
    assert sn == hit.snippet("reportbug")
    assert sn is not None and "reportbug" in sn.text.lower()
    marked = [sn.text[s:e] for s, e in sn.marks]
    assert "reportbug" in marked  # the query word, and words holding its pieces ("Report")
    assert set(marked) <= {b.text for b in hl.boxes}
    unmarked = sn.text
    for s, e in reversed(sn.marks):
        unmarked = unmarked[:s] + unmarked[e:]
    assert not {w.strip(".,:;()") for w in unmarked.split()} & {b.text for b in hl.boxes}
    assert "**reportbug**" in sn.marked().lower()
    assert "<mark>reportbug</mark>" in sn.html.lower()
    assert len(sn.text) <= 220 + 4


def test_snippet_is_bounded_and_escaped(pdf_dir):
    hl = next(h for h in (highlight(read_words(pdf_dir / "camlidl-1.04.doc.pdf", p), "interface", snippet_chars=60)
                          for p in range(1, 27)) if h.boxes)
    sn = hl.snippet
    assert sn is not None and len(sn.text) <= 60 + 4 and sn.marks
    assert all(sn.text[s:e].lower().startswith("interface") for s, e in sn.marks)
    # page text with "<" and ">" (the refcard's "> file"): escaped in html, kept in text
    hl = highlight(read_words(pdf_dir / REFCARD, 1), "selections file")
    assert hl.snippet and ">" in hl.snippet.text and "&gt;" in hl.snippet.html
    assert "<" not in hl.snippet.html.replace("<mark>", "").replace("</mark>", "")


def test_a_hit_from_search_knows_its_query_a_bare_hit_needs_one(refcard_col):
    """Collection.search attaches the query to every hit (grouped pages too): highlights(),
    snippet() and image(highlight=True) need no arguments; a Hit made by hand must be told."""
    hit = refcard_col.search("reportbug", k=1)[0]
    assert hit.query == "reportbug"
    assert hit.highlights().boxes == hit.highlights("reportbug").boxes
    assert hit.highlights().boxes
    grouped = refcard_col.search("reportbug", k=1, group_by="file")[0].hits[0]
    assert grouped.highlights().boxes
    bare = Hit(hit.id, hit.score, hit.source, hit.page, path=hit.path, sha256=hit.sha256)
    with pytest.raises(ValueError, match="need the query"):
        bare.highlights()


def test_changed_file_is_a_source_error(tmp_path, pdf_dir):
    docs = tmp_path / "docs"
    docs.mkdir()
    shutil.copy(pdf_dir / REFCARD, docs / "ref.pdf")
    col = Collection.create(tmp_path / "ix", engine="memory")
    col.index(docs, progress=False)
    hit = col.search("reportbug", k=1)[0]
    assert hit.highlights("reportbug").boxes
    (docs / "ref.pdf").write_bytes((docs / "ref.pdf").read_bytes() + b"\n%changed\n")
    with pytest.raises(SourceError, match="changed since it was indexed"):
        hit.highlights("reportbug")
    col.close()


def test_two_box_reading_equals_every_character_reading(pdf_dir):
    # words are boxed from their first and last letters (fast); the per-character reading (used
    # for text with astral characters) must give the same words, lines and boxes
    import ctypes

    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    from vsplade import highlight as H

    compared = 0
    for name in (REFCARD, "camlidl-1.04.doc.pdf"):
        pdf = pdfium.PdfDocument(str(pdf_dir / name))
        try:
            for i in range(min(len(pdf), 6)):
                page = pdf[i]
                to_rel = H._page_to_rel(page, *page.get_size(), pdfium_c, ctypes)
                tp = page.get_textpage()
                fast, slow = H._words_fast(tp, pdfium_c, to_rel), H._words(tp, pdfium_c, to_rel)
                assert [(w.text, w.core, w.line) for w in fast] == [(w.text, w.core, w.line) for w in slow]
                for a, b in zip(fast, slow):
                    assert a.box == pytest.approx(b.box, abs=0.5), a.text
                compared += len(fast)
        finally:
            pdf.close()
    assert compared > 1000
    # pdfium's line-end hyphen mark splits a word in two, the first keeping a "-"
    assert any(w.text.endswith("-") and w.core for w in read_words(pdf_dir / "camlidl-1.04.doc.pdf", 2).words)


def test_cli_show_highlight_marks_the_words(tmp_path, pdf_dir):
    """`vsplade show REF --highlight -q Q`: the page with the matched words tinted (pixels change
    only where the boxes are), and one of the two flags alone is a usage error."""
    from typer.testing import CliRunner

    from vsplade.cli import app

    docs = tmp_path / "docs"
    docs.mkdir()
    shutil.copy(pdf_dir / REFCARD, docs / "ref.pdf")
    ix = tmp_path / "ix"
    run = CliRunner().invoke
    assert run(app, ["index", str(docs), "--model", "lexical", "--engine", "memory", "--index", str(ix)]).exit_code == 0
    base = ["show", "ref.pdf:2", "--engine", "memory", "--index", str(ix), "--width", "600"]
    assert run(app, base + ["--out", str(tmp_path / "plain.png")]).exit_code == 0
    r = run(app, base + ["--out", str(tmp_path / "marked.png"), "--highlight", "-q", "reportbug"])
    assert r.exit_code == 0, r.output
    from PIL import Image, ImageChops

    plain, marked = Image.open(tmp_path / "plain.png"), Image.open(tmp_path / "marked.png")
    assert plain.size == marked.size
    bbox = ImageChops.difference(plain.convert("RGB"), marked.convert("RGB")).getbbox()
    assert bbox is not None and (bbox[2] - bbox[0]) * (bbox[3] - bbox[1]) < 0.2 * plain.width * plain.height
    r = run(app, base + ["--out", str(tmp_path / "x.png"), "--highlight"])
    assert r.exit_code == 2 and "--query" in r.output
