"""The vocabulary: token ids, the special-id mask, and THE mapping token id <-> engine term.

Every connector names terms through `Vocabulary.term` / `Vocabulary.id_of`; nothing else in
the project may invent term names. The contract (DESIGN.md):

- never contains '.', '|', whitespace or control characters, never empty;
- unique over the whole vocabulary and reversible;
- at most MAX_TERM_CHARS characters;
- readable for ordinary tokens: the byte-level BPE string itself (``Ġrecords`` is the token
  ``" records"``, ``records`` is the word-initial token; they are different tokens).

Encoding: '%' and the forbidden characters are percent-escaped as UTF-8 bytes (``%2E`` for
'.'). A token whose escaped form would be longer than MAX_TERM_CHARS is named ``%%<id>``;
that prefix cannot come out of the escaping because '%' itself is always escaped.
"""

from __future__ import annotations

import json
import unicodedata
from functools import cached_property
from importlib import resources
from pathlib import Path

import numpy as np

VOCAB_SIZE = 50368
# [UNK], [CLS], [SEP], [PAD], [MASK]: zeroed on both sides (spec section 2 and 3).
SPECIAL_IDS = (50280, 50281, 50282, 50283, 50284)
MAX_TERM_CHARS = 128
ID_TERM_PREFIX = "%%"
TERM_NAMING = "vsplade-term-v1"

_FORBIDDEN = {".", "|", "%"}


def default_tokenizer_path() -> Path:
    """The ModernBERT tokenizer.json shipped as package data."""
    return Path(str(resources.files("vsplade") / "resources" / "tokenizer.json"))


def _needs_escape(ch: str) -> bool:
    return ch in _FORBIDDEN or ch.isspace() or unicodedata.category(ch)[0] in ("C", "Z")


def escape_token(token: str) -> str:
    # fast path for the ~99% of tokens that need nothing: printable excludes every C and Z
    # category character except the ASCII space, so this is exactly the per-character rule
    if token.isprintable() and " " not in token and "." not in token and "|" not in token and "%" not in token:
        return token
    return "".join(
        "".join(f"%{b:02X}" for b in ch.encode("utf-8")) if _needs_escape(ch) else ch
        for ch in token
    )


def unescape_term(term: str) -> str:
    out = bytearray()
    i = 0
    while i < len(term):
        if term[i] == "%":
            out.append(int(term[i + 1 : i + 3], 16))
            i += 3
        else:
            out.extend(term[i].encode("utf-8"))
            i += 1
    return out.decode("utf-8")


class UnknownTermError(KeyError):
    pass


class Vocabulary:
    """Token strings of a tokenizer.json, the engine term names and the masks derived from them."""

    def __init__(self, tokenizer_path: str | Path | None = None, size: int = VOCAB_SIZE):
        self.tokenizer_path = Path(tokenizer_path) if tokenizer_path else default_tokenizer_path()
        self.size = size
        spec = json.loads(self.tokenizer_path.read_text(encoding="utf-8"))
        tokens: list[str | None] = [None] * size
        for token, idx in spec["model"]["vocab"].items():
            if idx < size:
                tokens[idx] = token
        for added in spec.get("added_tokens", []):
            if added["id"] < size:
                tokens[added["id"]] = added["content"]
        missing = [i for i, t in enumerate(tokens) if t is None]
        if missing:
            raise ValueError(
                f"{self.tokenizer_path}: no token for ids {missing[:5]}... "
                f"({len(missing)} of {size}); is this a ModernBERT-vocabulary tokenizer?"
            )
        self.tokens: list[str] = tokens  # type: ignore[assignment]

    @cached_property
    def terms(self) -> list[str]:
        out = []
        for idx, token in enumerate(self.tokens):
            escaped = escape_token(token)
            if not escaped or len(escaped) > MAX_TERM_CHARS:
                escaped = f"{ID_TERM_PREFIX}{idx}"
            out.append(escaped)
        return out

    @cached_property
    def _term_to_id(self) -> dict[str, int]:
        return {term: idx for idx, term in enumerate(self.terms)}

    def term(self, token_id: int) -> str:
        return self.terms[token_id]

    def id_of(self, term: str) -> int:
        try:
            return self._term_to_id[term]
        except KeyError:
            raise UnknownTermError(f"{term!r} is not a term of this vocabulary") from None

    @cached_property
    def keep_mask(self) -> np.ndarray:
        """bool [size]: False for the special ids that are zeroed in every vector."""
        mask = np.ones(self.size, dtype=bool)
        mask[list(SPECIAL_IDS)] = False
        return mask

    def display(self, token_id: int) -> str:
        """Human text of one token (byte-level decoded), for explanations."""
        token = self.tokens[token_id]
        try:
            return bytes(_BYTE_DECODER[c] for c in token).decode("utf-8")
        except (KeyError, UnicodeDecodeError):
            return token


def _bytes_to_unicode() -> dict[int, str]:
    # GPT-2 byte-level alphabet, as used by the ModernBERT tokenizer.
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


_BYTE_DECODER = {c: b for b, c in _bytes_to_unicode().items()}

_DEFAULT: Vocabulary | None = None


def default_vocabulary() -> Vocabulary:
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = Vocabulary()
    return _DEFAULT


def load_vocabulary(tokenizer_path: str | Path | None) -> Vocabulary:
    if tokenizer_path is None or Path(tokenizer_path) == default_tokenizer_path():
        return default_vocabulary()
    return Vocabulary(tokenizer_path)
