"""Query encoding equals the hand computation of spec section 3, without torch."""

import subprocess
import sys

import numpy as np
import pytest

from vsplade.bundle import load_bundle, write_bundle
from vsplade.query import QueryEncoder
from vsplade.vocab import SPECIAL_IDS, VOCAB_SIZE


@pytest.fixture(scope="module")
def table():
    rng = np.random.default_rng(7)
    return rng.uniform(0.1, 2.0, VOCAB_SIZE).astype(np.float32)


def test_li_lsr_sums_duplicates_by_hand(vocab, table):
    enc = QueryEncoder(table=table, mode="li_lsr")
    text = "the dog and the dog and cats"
    ids = enc.tokenizer.encode(text, add_special_tokens=False).ids
    assert ids.count(ids[1]) == 2  # ' dog' twice
    expected: dict[str, float] = {}
    for i in ids:
        expected[vocab.term(i)] = expected.get(vocab.term(i), 0.0) + float(table[i])
    assert enc.encode(text) == pytest.approx(expected)
    # ' dog' occurs twice: its weight is twice the table entry
    and_id = ids[1]
    assert enc.encode(text)[vocab.term(and_id)] == pytest.approx(2 * float(table[and_id]))


def test_case_and_leading_space_matter_as_in_the_spec(vocab, table):
    enc = QueryEncoder(table=table)
    assert "records" in enc.encode("records office")
    assert "Ġrecords" not in enc.encode("records office")
    assert "Ġrecords" in enc.encode("office records")


def test_special_and_vision_ids_are_dropped(vocab, table, data_dir):
    enc = QueryEncoder(data_dir / "tokenizers" / "modernvbert-reconstructed" / "tokenizer.json", table=table)
    ids = enc.token_ids("hello [CLS] <image><end_of_utterance>")
    assert 50281 in ids and any(i >= VOCAB_SIZE for i in ids)
    out = enc.encode_ids("hello [CLS] <image><end_of_utterance>")
    assert not set(out) & set(SPECIAL_IDS) and max(out) < VOCAB_SIZE
    assert set(out) == {i for i in ids if i < VOCAB_SIZE and i not in SPECIAL_IDS}


def test_bow_is_binary_and_drops_id_zero(table):
    enc = QueryEncoder(table=table, mode="bow")
    out = enc.encode_ids("the cat and the dog")
    assert set(out.values()) == {1.0}
    assert len(out) == len(set(enc.token_ids("the cat and the dog")))
    assert 0 not in enc.encode_ids("|||IP_ADDRESS||| cat")


def test_bad_tables_are_rejected():
    with pytest.raises(ValueError, match="shape"):
        QueryEncoder(table=np.ones(10))
    bad = np.ones(VOCAB_SIZE, np.float32)
    bad[5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        QueryEncoder(table=bad)
    with pytest.raises(ValueError, match="mode"):
        QueryEncoder(mode="dense")


def test_bundle_round_trip(tmp_path, table):
    write_bundle(tmp_path / "b", table, "li_lsr", encoder={"name": "x"})
    enc = load_bundle(tmp_path / "b")
    ref = QueryEncoder(table=table)
    for q in ["send signed forms", "records office", "Quelle partie de la production pétrolière ?"]:
        assert enc.encode(q) == ref.encode(q)


def test_query_side_imports_without_torch(tmp_path, table):
    write_bundle(tmp_path / "b", table, "li_lsr")
    code = (
        "import sys, vsplade, vsplade.cli, vsplade.engines.memory, vsplade.encoders\n"
        "from vsplade.bundle import load_bundle\n"
        f"q = load_bundle({str(tmp_path / 'b')!r}).encode('send signed forms')\n"
        "assert q, q\n"
        "bad = [m for m in ('torch', 'transformers') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cached_ascii_path_gives_exactly_the_tokenizer_ids(data_dir):
    import json
    import random
    import string

    enc = QueryEncoder()
    rng = random.Random(0)
    alphabet = string.ascii_letters + string.digits + " .,;:!?'\"-()/&%$#@*+=_~`^{}\\\t\n[]<>|"
    texts = [
        "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40))).replace("q", "'s")
        for _ in range(3000)
    ]
    texts += list(json.loads((data_dir / "vidore_samples" / "queries_qrels.json").read_text())["queries"].values())
    texts += ["it's 2019's  peak", "[CLS] hello", "<|endoftext|>", "a|||IP_ADDRESS|||b", "tab\there"]
    for t in texts:
        assert enc.token_ids(t) == enc.tokenizer.encode(t, add_special_tokens=False).ids, repr(t)
