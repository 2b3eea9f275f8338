import shutil

from vsplade.catalog import page_id
from vsplade.pages import PageReader, read_pages

BAD = {
    "zero-bytes.pdf": "empty file",
    "truncated.pdf": "cannot open PDF",
    "not-a-pdf.pdf": "not a PDF",
    "corrupt.pdf": "cannot open PDF",
    "zero-pages.pdf": "no pages",
    "encrypted.pdf": "encrypted",
    "garbage.png": "not a readable PDF or image",
    "truncated.png": "not a readable PDF or image",
}


def test_every_bad_input_fails_alone_with_a_message_naming_it(bad_inputs, good_inputs):
    pages, failures = read_pages([bad_inputs, good_inputs], dpi=36)
    by_file = {f.source.rsplit("/", 1)[-1]: f for f in failures}
    assert set(by_file) == set(BAD)
    for name, expected in BAD.items():
        assert expected in by_file[name].error, (name, by_file[name].error)
        assert name in str(by_file[name])
    # the good files are all read despite the bad ones around them
    assert [(p.source.rsplit("/", 1)[-1], p.page_no) for p in pages] == [
        ("ai.jpeg", 1),
        ("refcard.pdf", 1),
        ("refcard.pdf", 2),
    ]


def test_missing_path_and_empty_glob_are_failures_not_crashes(tmp_path):
    pages, failures = read_pages([tmp_path / "nope.pdf", str(tmp_path / "*.pdf")])
    assert pages == []
    assert [f.error for f in failures] == ["no such file or directory", "pattern matched no files"]


def test_pdf_pages_render_at_the_requested_dpi_with_text(pdf_dir):
    pages, failures = read_pages([pdf_dir / "debian-refcard-en-a4.pdf"], dpi=72)
    assert not failures
    # A4 at 72 dpi is 595 x 842 points; this PDF is landscape
    w, h = sorted(pages[0].image.size)
    assert abs(w - 595) <= 1 and abs(h - 842) <= 1
    assert "apt" in pages[0].text.lower()
    big, _ = read_pages([pdf_dir / "debian-refcard-en-a4.pdf"], dpi=144)
    assert big[0].image.size[0] == 2 * pages[0].image.size[0]


def test_image_only_pdf_has_pages_without_text(pdf_dir):
    pages, failures = read_pages([pdf_dir / "byaldi_financial_report.pdf"], render=False)
    assert not failures and len(pages) == 6
    assert all(p.image is None for p in pages)
    assert sum(len(p.text) for p in pages) < 100


def test_ids_follow_the_one_rule_and_differ_by_page(tmp_path, pdf_dir):
    """One page-id rule (vsplade.catalog.page_id): a file read alone is keyed by its name, as
    indexing that file alone keys it, so `inspect` and `index` give a page the same id; a copy
    under a new name is a new file with its own ids; the same name and content, the same ids."""
    src = pdf_dir / "debian-refcard-en-a4.pdf"
    shutil.copy(src, tmp_path / "renamed.pdf")
    (tmp_path / "same").mkdir()
    shutil.copy(src, tmp_path / "same" / src.name)
    a, _ = read_pages([src], render=False)
    b, _ = read_pages([tmp_path / "renamed.pdf"], render=False)
    c, _ = read_pages([tmp_path / "same" / src.name], render=False)
    assert not {p.id for p in a} & {p.id for p in b}
    assert [p.id for p in a] == [p.id for p in c]
    assert len({p.id for p in a}) == len(a)
    assert a[1].id == page_id(src.name, a[1].sha256, 2)


def test_folders_recurse_globs_expand_and_duplicates_collapse(tmp_path, pdf_dir, data_dir):
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    shutil.copy(data_dir / "sample_page.png", nested / "page.png")
    (nested / "notes.txt").write_text("ignored: not a page format")
    reader = PageReader([tmp_path, str(tmp_path / "**" / "*.png")], render=False)
    pages = list(reader)
    assert [p.source for p in pages] == [str(nested / "page.png")]
    assert reader.failures == []


def test_skip_ids_resume(pdf_dir):
    all_pages, _ = read_pages([pdf_dir / "debian-refcard-en-a4.pdf"], render=False)
    reader = PageReader([pdf_dir / "debian-refcard-en-a4.pdf"], render=False, skip_ids={all_pages[0].id})
    rest = list(reader)
    assert [p.page_no for p in rest] == [2] and reader.skipped == 1


def test_every_supported_image_format_reads(tmp_path, data_dir):
    from PIL import Image

    src = Image.open(data_dir / "vidore_samples" / "ai_sample.jpeg").convert("RGB").resize((64, 80))
    for ext in ["png", "jpg", "webp", "tiff"]:
        src.save(tmp_path / f"page.{ext}")
    pages, failures = read_pages([tmp_path])
    assert not failures
    assert sorted(p.source.rsplit(".", 1)[-1] for p in pages) == ["jpg", "png", "tiff", "webp"]
    assert all(p.image.size == (64, 80) and p.image.mode == "RGB" and p.page_no == 1 for p in pages)
