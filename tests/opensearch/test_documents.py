"""Bulk lines built client-side (no server): valid JSON, escaped term names, FeatureField
values that score exactly what the input would, failures and drops accounted."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from vsplade.sparse import SparseBatch, feature_field_round
from vsplade.vocab import default_vocabulary
from vsplade_opensearch.documents import _VALUE_JSON, DocumentBuilder

INFO = {"name": "unit", "version": "1"}


def tricky_terms(vocab) -> list[int]:
    picked = [i for i, t in enumerate(vocab.terms) if any(c in t for c in '"\\/%#')][:20]
    picked += [i for i, t in enumerate(vocab.terms) if any(ord(c) > 127 for c in vocab.display(i))][:10]
    return picked


def test_every_feature_bucket_parses_back_to_its_stored_float32():
    # the server parses a JSON number as a double and casts it to float32 (Jackson): the
    # table's text must survive that double rounding for every one of the 2**16 buckets
    stored = (np.arange(1 << 16, dtype=np.uint32) << np.uint32(15)).view(np.float32)
    finite = np.isfinite(stored)
    parsed = np.array([float(t) for t in _VALUE_JSON[finite]], dtype=np.float64).astype(np.float32)
    assert (parsed.view(np.uint32) == stored[finite].view(np.uint32)).all()
    assert max(len(t) for t in _VALUE_JSON[finite]) <= 15


def test_lines_are_json_with_feature_field_values_and_escaped_terms():
    vocab = default_vocabulary()
    rng = np.random.default_rng(3)
    tricky = tricky_terms(vocab)
    rows = []
    for r in range(40):
        cols = rng.choice(vocab.size, int(rng.integers(1, 60)), replace=False).tolist()
        if r % 7 == 0:
            cols += tricky
        rows.append({int(c): float(rng.lognormal(-1, 1.5)) for c in cols})
    rows[5] = {}
    ids = [f"doc \"{r}\"/é" for r in range(len(rows))]
    meta = [{"source": f"/corpus/file{r // 10}.pdf", "page": r % 10 + 1, "text": "x" * 900} for r in range(len(rows))]
    batch = SparseBatch.from_dicts(rows, ids, meta)
    built = DocumentBuilder("idx", INFO, vocab, snippet_chars=100).build(batch)
    assert built.ids == ids and built.empty == 1
    for r, line in enumerate(built.lines):
        action, doc, rest = line.split(b"\n")
        assert rest == b""
        assert orjson.loads(action) == {"index": {"_index": "idx", "_id": ids[r]}}
        doc = orjson.loads(doc)
        assert doc["id"] == ids[r] and doc["page"] == r % 10 + 1 and doc["title"] == f"file{r // 10}"
        assert doc["text"] == "x" * 100 and doc["encoder"] == "unit" and doc["encoder_version"] == "1"
        idx, vals = batch.row(r)
        want = dict(zip((vocab.terms[i] for i in idx), feature_field_round(vals).view(np.uint32).tolist()))
        got = {t: int(np.float32(v).view(np.uint32)) for t, v in doc["vector"].items()}
        assert got == want  # bit-exact: the value the cluster stores (and scores) for the input


def test_bad_pages_fail_alone_and_tiny_weights_are_dropped():
    """Bad pages are split off by the one validation every writer shares (split_valid); the
    builder takes the rest and drops zero/subnormal weights; given a bad page it names it."""
    batch = SparseBatch.from_dicts(
        [{1: 0.5}, {2: float("nan")}, {3: -1.0}, {4: 0.0, 5: 1e-40, 6: 2.0}, {7: float("inf")}],
        ["a", "nan", "neg", "tiny", "inf"],
    )
    good, failures = batch.split_valid()
    assert failures == [("nan", "page nan: weight is NaN"), ("neg", "page neg: negative weight -1.0"),
                        ("inf", "page inf: weight is infinite")]
    with pytest.raises(ValueError, match="page nan: weight is NaN"):
        DocumentBuilder(None, INFO).build(batch)
    built = DocumentBuilder(None, INFO).build(good)
    assert built.ids == ["a", "tiny"]
    assert built.dropped == 2 and built.empty == 0
    doc = orjson.loads(built.lines[1].split(b"\n")[1])
    assert doc["vector"] == {default_vocabulary().terms[6]: 2.0}
