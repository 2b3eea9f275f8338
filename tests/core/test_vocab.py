"""The term-name contract (DESIGN.md), over the full real ModernBERT vocabulary."""

import json
import unicodedata

import pytest

from vsplade.vocab import MAX_TERM_CHARS, SPECIAL_IDS, VOCAB_SIZE, Vocabulary, escape_token, unescape_term


def test_every_term_obeys_the_contract(vocab):
    terms = vocab.terms
    assert len(terms) == VOCAB_SIZE
    assert len(set(terms)) == VOCAB_SIZE, "term names must be unique"
    for i, t in enumerate(terms):
        assert t, i
        assert "." not in t and "|" not in t, (i, t)
        assert not any(c.isspace() or unicodedata.category(c)[0] in "CZ" for c in t), (i, t)
        assert len(t) <= MAX_TERM_CHARS, (i, t)
        assert vocab.id_of(t) == i


def test_ordinary_tokens_read_as_themselves(vocab, data_dir):
    raw = json.loads((data_dir / "tokenizers" / "modernvbert-reconstructed" / "tokenizer.json").read_text())
    word = raw["model"]["vocab"]
    assert vocab.term(word["Ġrecords"]) == "Ġrecords"
    assert vocab.term(word["records"]) == "records"
    assert vocab.term(word["dog"]) == "dog"
    assert vocab.display(word["Ġrecords"]) == " records"
    # a token with a dot is escaped, and the escape is readable and reversible
    dot = word["."]
    assert vocab.term(dot) == "%2E" and unescape_term("%2E") == "."


def test_overlong_tokens_fall_back_to_an_id_name(vocab):
    long_ids = [i for i, t in enumerate(vocab.tokens) if len(escape_token(t)) > MAX_TERM_CHARS]
    assert long_ids, "the real vocabulary has runs of 256+ characters"
    for i in long_ids:
        assert vocab.term(i) == f"%%{i}"
        assert vocab.id_of(f"%%{i}") == i


def test_escape_round_trips_awkward_strings():
    for s in ["a.b", "x|y", "100%", "tab\there", "ünïcødé", "\"quoted\"", "#hash", " lead", "\u00a0nbsp", "%%7"]:
        e = escape_token(s)
        assert unescape_term(e) == s
        assert "." not in e and "|" not in e and " " not in e


def test_special_ids_are_masked(vocab):
    assert [vocab.tokens[i] for i in SPECIAL_IDS] == ["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"]
    assert not vocab.keep_mask[list(SPECIAL_IDS)].any()
    assert vocab.keep_mask.sum() == VOCAB_SIZE - len(SPECIAL_IDS)


def test_unknown_term_is_a_clear_error(vocab):
    with pytest.raises(KeyError, match="not a term"):
        vocab.id_of("no-such-term-anywhere")


def test_reconstructed_vision_tokenizer_names_the_same_terms(vocab, data_dir):
    other = Vocabulary(data_dir / "tokenizers" / "modernvbert-reconstructed" / "tokenizer.json")
    assert other.terms == vocab.terms


def test_escape_fast_path_equals_the_per_character_rule(vocab):
    from vsplade.vocab import _needs_escape, escape_token

    def per_character(token):
        return "".join("".join(f"%{b:02X}" for b in ch.encode("utf-8")) if _needs_escape(ch) else ch for ch in token)

    samples = list(vocab.tokens) + ["a b", "x\u00a0y", "\u200bz", "a.b", "50%", "|", "\t", "é", "\u2028"]
    assert [escape_token(t) for t in samples] == [per_character(t) for t in samples]
