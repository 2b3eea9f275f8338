"""sentence-transformers both ways, with the real library (no network; tiny models built here).

export: `vsplade bundle MODEL --format sentence-transformers` -> SparseEncoder(DIR).encode_query
gives vsplade's weights term for term; the one rule the library cannot express (a repeated token
counts once) differs exactly where duplicate_gap() says. import: `--model DIR` of an
inference-free SparseEncoder: the query side is its static table (torch-free), the pages' text
goes through its document route, and both equal what SparseEncoder itself computes."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("sentence_transformers", reason="sentence-transformers is not installed "
                                                     "(pip install 'vsplade[sentence-transformers]')")

from integrations_support import DATA  # noqa: E402
from st_support import as_dict, build_inference_free, static_weights  # noqa: E402
from vsplade.bundle import write_bundle  # noqa: E402
from vsplade.encoders import load_encoder, load_query_encoder  # noqa: E402
from vsplade.integrations.sentence_transformers import duplicate_gap  # noqa: E402
from vsplade.vocab import SPECIAL_IDS  # noqa: E402

# each test loads sentence-transformers models (tens of seconds on 2 cores): `make test`, not `make check`
pytestmark = pytest.mark.slow

# plain, repeated tokens, a typed special token, unicode, digits and punctuation, case
TEXTS = ["debian reference card", "apt-get install the the the package", "[CLS] interface [MASK] definition",
         "Ünïcode façade naïve 東京 2024!", "  leading spaces and  double  spaces", "CamlIDL Stub Code",
         "a|b.c%d <|padding|> e"]


def vsplade_cli(*args, timeout=300):
    r = subprocess.run([sys.executable, "-m", "vsplade", *args], capture_output=True, text=True, timeout=timeout)
    return r


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_inference_free(tmp_path_factory.mktemp("st") / "tiny")


def st_model(path):
    from sentence_transformers import SparseEncoder

    return SparseEncoder(str(path), device="cpu", local_files_only=True)


@pytest.mark.timeout(900)
@pytest.mark.parametrize("mode", ["li_lsr", "bow", "lexical"])
def test_export_equals_vsplades_query_encoder(tmp_path, mode):
    if mode == "lexical":
        source = "lexical"
    else:  # a V-SPLADE-shaped query side: a bundle with a random Li-LSR table (or BoW)
        source = str(write_bundle(tmp_path / "bundle", static_weights(3), mode, encoder={"model": "test"}))
    out = tmp_path / "st"
    r = vsplade_cli("bundle", source, "--format", "sentence-transformers", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert str(out) in r.stdout and "sha256=" in r.stdout
    q = load_query_encoder(source)
    model = st_model(out)
    # the lexical model's lowercasing + leading space cannot follow vsplade for text that starts
    # with spaces or types [CLS] in capitals (the module docstring says why): those two differ
    texts = [t for t in TEXTS if mode != "lexical" or not (t.startswith(" ") or "[CLS]" in t)]
    emb = model.encode_query(texts)
    differed = 0
    for text, row in zip(texts, emb):
        got, want = as_dict(row), q.encode_ids(text)
        assert not set(got) & set(SPECIAL_IDS)
        gap = duplicate_gap(q, text)
        if mode == "li_lsr" or mode == "lexical":
            # exactly the repeated tokens differ: vsplade adds each occurrence, the module counts once
            for i, (ours, theirs) in gap.items():
                assert got[i] == pytest.approx(theirs, rel=1e-6) and ours > theirs
            ids = [i for i in q.token_ids(text) if q.encode_ids(text).get(i)]
            assert bool(gap) == (len(ids) != len(set(ids))), text  # a gap exactly when a token repeats
            differed += bool(gap)
        else:
            assert not gap  # bow is presence: exact
        assert set(got) == set(want), text
        for i, v in got.items():
            assert v == pytest.approx(gap[i][1] if i in gap else want[i], rel=1e-6), (text, i)
    # "the the the" and "spaces ... spaces" (+ "CamlIDL": c-aml-i-d-l lowercased repeats a piece)
    assert differed == {"bow": 0, "li_lsr": 2, "lexical": 2}[mode]
    with pytest.raises(ValueError, match="document"):
        model.encode_document(["a page"])  # a V-SPLADE page vector comes from pixels: no document route


@pytest.mark.timeout(600)
def test_import_query_side_equals_sparse_encoder(tiny):
    q = load_query_encoder(str(tiny))
    emb = st_model(tiny).encode_query(TEXTS)
    for text, row in zip(TEXTS, emb):
        theirs = {i: v for i, v in as_dict(row).items() if i not in SPECIAL_IDS}  # vsplade masks these
        ours = q.encode_ids(text)
        assert set(ours) == set(theirs), text
        assert all(ours[i] == pytest.approx(theirs[i], rel=1e-6) for i in ours)
    assert any(i in SPECIAL_IDS for i in as_dict(emb[2]))  # the module weighs a typed [CLS]; vsplade does not


def test_import_query_side_is_torch_free(tiny):
    code = ("import sys; from vsplade.encoders import load_query_encoder; "
            f"q = load_query_encoder({str(tiny)!r}); assert q.encode('debian reference card'); "
            "assert 'torch' not in sys.modules and 'sentence_transformers' not in sys.modules")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


@pytest.mark.timeout(900)
def test_import_document_side_indexes_and_searches(tiny, tmp_path):
    from vsplade import Collection
    from vsplade.encoded import EncodedDir
    from vsplade.render import hit_text

    docs = tmp_path / "docs"
    docs.mkdir()
    shutil.copy(DATA / "pdfs" / "debian-refcard-en-a4.pdf", docs / "ref.pdf")
    shutil.copy(DATA / "sample_page.png", docs / "scan.png")
    col = Collection.create(tmp_path / "ix", engine="memory", model=str(tiny))
    report = col.index(docs, progress=False)
    assert report.ok, report.summary
    stored = EncodedDir(col.engine.index).load()
    texts = {i: hit_text(col.page_by_id(i)) for i in stored.ids}
    ids = [i for i in stored.ids if texts[i].strip()]
    assert len(ids) == len(stored.ids) - 1 >= 2
    theirs = st_model(tiny).encode_document([texts[i] for i in ids])
    for i, row in zip(ids, theirs):
        want = {t: v for t, v in as_dict(row).items() if t not in SPECIAL_IDS}
        idx, val = stored.row(stored.ids.index(i))
        got = dict(zip(idx.tolist(), val.tolist()))
        assert set(got) == set(want) and want
        assert all(got[t] == pytest.approx(want[t], rel=1e-5) for t in got)
    scan = [i for i in stored.ids if i not in ids]
    assert len(scan) == 1 and len(stored.row(stored.ids.index(scan[0]))[0]) == 0  # no text layer: empty
    # a search opens the model the index names, and ranks by the dot product of the two sides
    reopened = Collection.open(tmp_path / "ix", engine="memory")
    hits = reopened.search("debian package management", k=3)
    q = np.zeros(stored.matrix.shape[1])
    for t, v in load_query_encoder(str(tiny)).encode_ids("debian package management").items():
        q[t] = v
    scores = stored.matrix @ q
    best = [stored.ids[r] for r in np.argsort(-scores, kind="stable")[:3] if scores[r] > 0]
    assert best
    assert [h.id for h in hits] == best and hits[0].score == pytest.approx(scores.max(), rel=1e-4)


@pytest.mark.timeout(900)
def test_imported_model_searches_alike_on_every_engine(tiny, tmp_path, fresh_location):
    """The imported SparseEncoder end to end on a real Lucene index and a real OpenSearch node:
    index the PDFs with its document route, search with its torch-free query side; the same
    pages as the memory engine (exact floats), scores within each engine's quantization."""
    from vsplade import Collection

    engine, where = fresh_location
    docs = tmp_path / "docs"
    docs.mkdir()
    for name in ("debian-refcard-en-a4.pdf", "camlidl-1.04.doc.pdf"):
        shutil.copy(DATA / "pdfs" / name, docs / name)
    mem = Collection.create(tmp_path / "mem", engine="memory", model=str(tiny))
    assert mem.index(docs, progress=False).ok
    col = Collection.create(engine=engine, model=str(tiny), **where)
    assert col.index(docs, progress=False).ok and len(col) == len(mem)
    compared = 0
    for text in ("debian package management", "interface definition language", "stub code"):
        want = {h.id: h.score for h in mem.search(text, k=20)}
        got = col.search(text, k=5)
        assert len(got) == min(5, len(want)), (engine, text)
        for h in got:
            assert h.id in want and h.score == pytest.approx(want[h.id], rel=5e-3, abs=1e-3), (engine, text)
            compared += 1
        assert [h.id for h in got][:1] == [h.id for h in mem.search(text, k=1)], (engine, text)
    assert compared >= 10
    col.close()


def test_refusals_are_one_line(tiny, tmp_path):
    from vsplade.encoders.sparse_encoder import SparseEncoderError

    broken = tmp_path / "broken"
    shutil.copytree(tiny, broken)
    (next(broken.glob("query_*")) / "model.safetensors").unlink()
    with pytest.raises(SparseEncoderError, match="model.safetensors is missing"):
        load_query_encoder(str(broken))
    with pytest.raises(SparseEncoderError, match="top_k: not an option"):
        load_encoder(str(tiny), top_k=5)
    r = vsplade_cli("bundle", "lexical", "--format", "sentence-transformers", "--out", str(tiny))
    assert r.returncode != 0 and "not empty" in r.stderr and "Traceback" not in r.stderr
