"""The ml-commons naming rule (vsplade_opensearch.mlcommons), offline: token names as SparseTokenizerModel
makes them, the shared-name rule, idf.json, the page fold and the model zip. The real
ml-commons is checked against this in tests/opensearch/test_server_side_query.py."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import scipy.sparse as sp
from tokenizers import Tokenizer

from vsplade.encoders import load_query_encoder
from vsplade.query import QueryEncoder
from vsplade.vocab import VOCAB_SIZE, default_tokenizer_path
from vsplade_opensearch.bundle_format import write_opensearch_sparse
from vsplade_opensearch.mlcommons import ModelZipError, ServerSideNaming, read_model_zip


@pytest.fixture(scope="module")
def lexical_naming():
    return ServerSideNaming(load_query_encoder("lexical"))


def table_naming(table, mode="li_lsr"):
    return ServerSideNaming(QueryEncoder(table=np.asarray(table, dtype=np.float32), mode=mode))


def test_names_are_decoded_ids_and_the_collisions_are_counted(lexical_naming):
    n = lexical_naming
    tok = Tokenizer.from_file(str(default_tokenizer_path()))
    assert n.names[tok.token_to_id("Ġrecords")] == " records"
    assert n.names[tok.token_to_id("records")] == "records"
    empty = [i for i, s in enumerate(n.names) if not s]
    assert empty == [1, 50279, 50280, 50281, 50282, 50283, 50284]  # the special tokens
    assert len(set(s for s in n.names if s)) == 49874
    assert (n.colliding_names, n.colliding_ids, n.twins_dropped) == (26, 513, 23)
    assert n.groups == {} and n.fragments_dropped == 411 + 44 + 12
    merged = ServerSideNaming(n.qenc, merge_fragments=True)
    assert {merged.names[h]: len(ids) for h, ids in merged.groups.items()} == {"\ufffd": 411, " \ufffd": 44, "\ufffd\ufffd": 12}
    # a space run's name belongs to the added token the tokenizer emits for it
    assert n.canon[50276] == 50276 and n.canon[tok.token_to_id("ĠĠ")] == -1


def test_replica_equals_the_query_encoder_on_plain_queries(lexical_naming):
    q = lexical_naming.qenc
    for text in ["Debian package management", "financial report revenue 2023", "what is camlidl?", "Hello world"]:
        want = {lexical_naming.names[i]: 1.0 for i in q.encode_ids(text)}  # ml-commons: once per name
        assert lexical_naming.encode(text) == want, text


def test_repeated_tokens_count_once_server_side(lexical_naming):
    q = lexical_naming.qenc
    assert max(q.encode("report report report").values()) == 3.0
    assert lexical_naming.encode("report report report") == {" report": 1.0}


def test_idf_weights_are_the_table_and_zero_weights_are_left_out():
    rng = np.random.default_rng(0)
    table = rng.uniform(0.1, 3.0, VOCAB_SIZE).astype(np.float32)
    table[[500, 600]] = 0.0
    n = table_naming(table)
    idf = n.idf()
    assert n.scale == 1.0
    assert n.names[500] not in idf and n.names[600] not in idf
    assert idf[n.names[1000]] == float(table[1000])
    assert all(0 < v <= 64 for v in idf.values())
    assert "\ufffd" not in idf  # fragments are not searchable server-side
    # with merge_fragments, a fragment name weighs the largest table weight of its ids
    merged = ServerSideNaming(n.qenc, merge_fragments=True)
    frag = merged.groups[next(h for h in merged.groups if merged.names[h] == "\ufffd")]
    assert merged.idf()["\ufffd"] == pytest.approx(float(table[frag].max()))


def test_weights_over_64_are_scaled_by_a_power_of_two_exactly():
    table = np.full(VOCAB_SIZE, 3.0, dtype=np.float32)
    table[1234] = 200.0
    n = table_naming(table)
    assert n.scale == 4.0 and n.idf()[n.names[1234]] == 50.0
    m = sp.csr_matrix((np.array([0.7, 1.3], np.float32), ([0, 0], [1234, 2000])), shape=(1, VOCAB_SIZE))
    f = n.fold(m)
    score_ss = sum(n.idf()[n.names[c]] * v for c, v in zip(f.indices, f.data))
    assert score_ss == pytest.approx(200.0 * 0.7 + 3.0 * 1.3, rel=1e-6)


def test_fold_drops_unreachable_ids_and_fragments(lexical_naming):
    merged = ServerSideNaming(lexical_naming.qenc, merge_fragments=True)
    frag_head = next(h for h in merged.groups if merged.names[h] == "\ufffd")
    a, b = merged.groups[frag_head][:2]
    twin = Tokenizer.from_file(str(default_tokenizer_path())).token_to_id("ĠĠ")
    m = sp.csr_matrix((np.array([0.5, 2.0, 0.25, 1.5, 9.0], np.float32), ([0, 0, 0, 1, 1], [a, b, 1000, twin, 50281])),
                      shape=(2, VOCAB_SIZE))
    f = lexical_naming.fold(m)
    assert dict(zip(f[0].indices.tolist(), f[0].data.tolist())) == {1000: 0.25}
    assert f[1].nnz == 0  # the BPE twin of an added token and a special id: never emitted
    g = merged.fold(m)
    assert dict(zip(g[0].indices.tolist(), g[0].data.tolist())) == {frag_head: 2.0, 1000: 0.25}


def test_zip_is_deterministic_and_readable(tmp_path, lexical_naming):
    p1, h1 = write_opensearch_sparse(tmp_path / "a.zip", lexical_naming.qenc)
    p2, h2 = write_opensearch_sparse(tmp_path / "b.zip", load_query_encoder("lexical"))
    assert h1 == h2 == lexical_naming.content_hash and p1.read_bytes() == p2.read_bytes()
    data, config = read_model_zip(p1)
    assert config["naming"] == "ml-commons-decode-v1" and config["lowercase"] and config["prefix_space"]
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert z.read("idf.json").isascii()  # read with the JVM's default charset on Java 17
        idf = json.loads(z.read("idf.json"))
        tok = Tokenizer.from_str(z.read("tokenizer.json").decode())
    assert idf == lexical_naming.idf()
    # the bundled tokenizer lowercases and prepends the space the lexical query side adds
    assert tok.encode("Report", add_special_tokens=False).tokens == ["Ġreport"]


@pytest.mark.parametrize("damage, message", [
    ("notzip", "not a zip file"),
    ("notok", "no tokenizer.json"),
    ("badtok", "tokenizer.json is not a tokenizers file"),
    ("idfjson", "idf.json is not JSON"),
    ("idfzero", "weight of 'x' is 0"),
    ("idfbig", "weight of 'x' is 65"),
])
def test_bad_model_zips_are_one_clear_error(tmp_path, damage, message):
    p = tmp_path / "m.zip"
    tok = default_tokenizer_path().read_bytes()
    members = {"notok": {"idf.json": b"{}"}, "badtok": {"tokenizer.json": b"{}"},
               "idfjson": {"tokenizer.json": tok, "idf.json": b"{x"},
               "idfzero": {"tokenizer.json": tok, "idf.json": b'{"x": 0}'},
               "idfbig": {"tokenizer.json": tok, "idf.json": b'{"x": 65}'}}.get(damage)
    if members is None:
        p.write_bytes(b"not a zip")
    else:
        with zipfile.ZipFile(p, "w") as z:
            for k, v in members.items():
                z.writestr(k, v)
    with pytest.raises(ModelZipError, match=message) as e:
        read_model_zip(p)
    assert str(p) in str(e.value) and "\n" not in str(e.value)


@pytest.mark.slow  # the CLI in a process without torch: make test only
def test_bundle_cli_writes_the_zip_without_torch(tmp_path):
    out = tmp_path / "m.zip"
    code = ("import sys; sys.modules['torch'] = None\n"  # importing torch would fail
            "from vsplade.cli import main; sys.argv = ['vsplade', 'bundle', 'lexical', '--format', "
            f"'opensearch-sparse', '--out', {str(out)!r}]; main()")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "sha256=" in r.stdout and read_model_zip(out)[1]["mode"] == "li_lsr"
    bad = subprocess.run([sys.executable, "-m", "vsplade.cli", "bundle", "lexical", "--format", "onnx", "--out", str(out)],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "--format" in bad.stderr
