import math

import numpy as np
import pytest

from vsplade.encoders.lexical import LexicalEncoder, idf_formula
from vsplade.pages import Page, read_pages


def page(pid, text):
    return Page(pid, f"{pid}.pdf", 1, None, text, "0" * 64)


def test_bm25_weights_equal_a_hand_computation(vocab):
    enc = LexicalEncoder(k1=1.2, b=0.75)
    pages = [page("a", "apple apple banana"), page("b", "banana cherry"), page("c", "cherry")]
    enc.fit(pages)
    batch = enc.encode(pages)
    tok = enc.query_encoder().tokenizer
    ids = {w: tok.encode(" " + w, add_special_tokens=False).ids for w in ["apple", "banana", "cherry"]}
    assert all(len(v) == 1 for v in ids.values())
    apple, banana, cherry = (v[0] for v in ids.values())
    avgdl = (3 + 2 + 1) / 3
    n = 3

    def w(tf, dl, df):
        return idf_formula(n, df) * tf * 2.2 / (tf + 1.2 * (1 - 0.75 + 0.75 * dl / avgdl))

    row_a = dict(zip(*batch.row(0)))
    assert row_a == pytest.approx({apple: w(2, 3, 1), banana: w(1, 3, 2)})
    assert dict(zip(*batch.row(2))) == pytest.approx({cherry: w(1, 1, 2)})
    assert math.isclose(idf_formula(3, 1), math.log(1 + 2.5 / 1.5))


def test_query_and_document_sides_share_case_and_space_normalisation():
    enc = LexicalEncoder(idf="none")
    doc = enc.encode([page("a", "Records\nOffice")])
    q = enc.query_encoder().encode_ids("records office")
    assert set(q) == set(doc.row(0)[0].tolist())


def test_pages_without_text_give_empty_vectors_and_a_warning(pdf_dir, data_dir):
    pages, _ = read_pages([data_dir / "vidore_samples" / "ai_sample.jpeg", pdf_dir / "debian-refcard-en-a4.pdf"], render=False)
    enc = LexicalEncoder(idf="none")
    batch = enc.encode(pages)
    assert len(batch) == 3
    assert np.diff(batch.matrix.indptr).tolist()[0] == 0 and batch.matrix[1:].nnz > 100
    assert len(enc.warnings) == 1
    assert "no text layer" in enc.warnings[0] and "ai_sample.jpeg" in enc.warnings[0]


def test_corpus_idf_requires_fit_and_is_in_info():
    enc = LexicalEncoder()
    with pytest.raises(RuntimeError, match="fit"):
        enc.encode([page("a", "x")])
    enc.fit([page("a", "one two"), page("b", "two")])
    assert enc.info()["num_docs"] == 2 and enc.info()["avgdl"] == pytest.approx(1.5)
