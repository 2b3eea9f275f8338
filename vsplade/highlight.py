"""Where on the page: the words of a page's text layer that carry a query's matched terms, as
boxes (PDF points and fractions of the rendered picture) and a short marked snippet.

    words = read_words("manual.pdf", 12)                 # pdfium character boxes -> words
    hl = highlight(words, "apt-get install", terms=hit.explain, encoder=col.query_encoder)
    hl.boxes, hl.not_on_page, hl.snippet.html

Matching works on the tokenizer's pieces, the unit the score is made of: each page word is
tokenized the way the query encoder tokenizes text (lowercased when it lowercases), and a word
matches when one of its pieces is a matched term (compared as text, case-insensitively, with
"word start" vs "inside a word" kept apart so the `ran` of "Fortran" does not mark the word
"ran"). A page word equal to a whole query word ranks above a piece match. Matched terms with
no printed word (a V-SPLADE expansion; a page without a text layer) are listed in
`not_on_page` and never drawn.

pdfium is not thread-safe: callers that render from several threads serialize (the HTTP
service holds its render lock around `read_words`).
"""

from __future__ import annotations

import html as _html
import math
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

SNIPPET_CHARS = 220  # a snippet is at most this long (plus the "…" marks)
_WORDS_CACHE_PAGES = 256


@dataclass(frozen=True)
class Word:
    text: str  # as printed (whitespace-delimited)
    line: int  # line number in pdfium's reading order
    box: tuple[float, float, float, float]  # left, bottom, right, top in PDF points (loose char boxes)
    rel: tuple[float, float, float, float]  # x0, y0, x1, y1 as fractions of the rendered page, top-left origin
    core: str = ""  # text without leading/trailing punctuation (what is compared and boxed)


@dataclass
class PageWords:
    """A page's text layer as words. `has_text` is False for an image file or a page without
    a text layer (a scan)."""

    words: list[Word]
    size: tuple[float, float]  # page width, height in points, as rendered
    has_text: bool
    # per lowercase flag: each word's pieces as (text key, starts a word) pairs
    _pieces: dict[bool, list[list[tuple[str, bool]]]] = field(default_factory=dict, repr=False)

    def lines(self) -> list[list[int]]:
        out: dict[int, list[int]] = {}
        for i, w in enumerate(self.words):
            out.setdefault(w.line, []).append(i)
        return [out[k] for k in sorted(out)]


@dataclass
class Box:
    """One marked word."""

    text: str
    box: tuple[float, float, float, float]  # PDF points: left, bottom, right, top
    rel: tuple[float, float, float, float]  # fractions of the picture: x0, y0, x1, y1 (top-left origin)
    terms: list[str]  # the matched terms it carries
    whole: bool  # the word is one of the query's words (else it holds a matched piece)

    def pixels(self, width: int, height: int) -> tuple[int, int, int, int]:
        x0, y0, x1, y1 = self.rel
        return (math.floor(x0 * width), math.floor(y0 * height), math.ceil(x1 * width), math.ceil(y1 * height))

    def as_dict(self) -> dict:
        return {"text": self.text, "rel": [round(v, 5) for v in self.rel], "box": [round(v, 2) for v in self.box],
                "terms": self.terms, "whole": self.whole}


@dataclass
class Snippet:
    """The best line or two around the matches: `text` with `marks` [(start, end)] over it."""

    text: str
    marks: list[tuple[int, int]]

    def marked(self, before: str = "**", after: str = "**") -> str:
        out, at = [], 0
        for s, e in self.marks:
            out += [self.text[at:s], before, self.text[s:e], after]
            at = e
        out.append(self.text[at:])
        return "".join(out)

    @property
    def html(self) -> str:
        out, at = [], 0
        for s, e in self.marks:
            out += [_html.escape(self.text[at:s]), "<mark>", _html.escape(self.text[s:e]), "</mark>"]
            at = e
        out.append(_html.escape(self.text[at:]))
        return "".join(out)

    def as_dict(self) -> dict:
        return {"text": self.text, "marks": [list(m) for m in self.marks], "html": self.html}

    def __str__(self) -> str:
        return self.marked()


@dataclass
class Highlights:
    query: str
    size: tuple[float, float]  # page width, height in points
    has_text: bool
    boxes: list[Box]  # best first: whole-word matches, then piece matches, each in reading order
    on_page: dict[str, int]  # matched term -> how many marked words carry it
    not_on_page: list[str]  # matched terms no printed word carries: listed, never drawn
    unmarked: list[str]  # punctuation-only terms ("-", "."): never mark a word on their own
    snippet: Snippet | None
    display: dict[str, str] = field(default_factory=dict)  # term -> its text

    @property
    def note(self) -> str:
        if not self.has_text:
            return "this page has no text layer (an image or a scan): nothing can be marked on it"
        if not self.boxes:
            return "none of the matched terms is printed on this page"
        if self.not_on_page:
            return (f"{len(self.not_on_page)} matched term(s) not printed on this page: "
                    + ", ".join(self.display.get(t, t) for t in self.not_on_page))
        return ""

    def pixel_boxes(self, width: int, height: int) -> list[tuple[int, int, int, int]]:
        return [b.pixels(width, height) for b in self.boxes]

    def as_dict(self) -> dict:
        def term(t):
            return {"term": t, "token": self.display.get(t, t)}

        return {
            "query": self.query,
            "text_layer": self.has_text,
            "page_size": [round(v, 2) for v in self.size],
            "boxes": [b.as_dict() for b in self.boxes],
            "on_page": [{**term(t), "words": n} for t, n in self.on_page.items()],
            "not_on_page": [term(t) for t in self.not_on_page],
            "unmarked": [term(t) for t in self.unmarked],
            "snippet": self.snippet.as_dict() if self.snippet else None,
            "note": self.note,
        }


# -- reading words ---------------------------------------------------------------------------

_cache: "OrderedDict[tuple, PageWords]" = OrderedDict()
_cache_lock = threading.Lock()


def read_words(path: str | Path, page: int, cache_key: Any = None) -> PageWords:
    """The words of page `page` (1-based) of a PDF, with their boxes; an image file (or a page
    without a text layer) gives no words and has_text=False. cache_key (e.g. the file's
    content hash) lets a page be read once for many queries."""
    p = Path(path)
    key = (str(p), cache_key, page) if cache_key is not None else None
    if key is not None:
        with _cache_lock:
            if key in _cache:
                _cache.move_to_end(key)
                return _cache[key]
    with open(p, "rb") as f:
        is_pdf = f.read(1024).lstrip().startswith(b"%PDF")
    words = _read_pdf_words(p, page) if is_pdf else PageWords([], _image_size(p), False)
    if key is not None:
        with _cache_lock:
            _cache[key] = words
            while len(_cache) > _WORDS_CACHE_PAGES:
                _cache.popitem(last=False)
    return words


def _image_size(p: Path) -> tuple[float, float]:
    try:
        from PIL import Image

        with Image.open(p) as im:
            return float(im.width), float(im.height)
    except Exception:  # an unreadable image has no words either way; rendering says why
        return 0.0, 0.0


def _read_pdf_words(p: Path, page_no: int) -> PageWords:
    from .pages import PDFIUM_LOCK

    with PDFIUM_LOCK:  # pdfium is not thread-safe (vsplade.pages)
        return _read_pdf_words_locked(p, page_no)


def _read_pdf_words_locked(p: Path, page_no: int) -> PageWords:
    import ctypes

    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    pdf = pdfium.PdfDocument(str(p))
    try:
        if not 1 <= page_no <= len(pdf):
            raise ValueError(f"{p}: no page {page_no} (the file has {len(pdf)})")
        page = pdf[page_no - 1]
        try:
            width, height = page.get_size()
            to_rel = _page_to_rel(page, width, height, pdfium_c, ctypes)
            tp = page.get_textpage()
            try:
                words = _words_fast(tp, pdfium_c, to_rel)
            finally:
                tp.close()
        finally:
            page.close()
    finally:
        pdf.close()
    return PageWords(words, (float(width), float(height)), bool(words))


def _page_to_rel(page, width: float, height: float, pdfium_c, ctypes):
    """PDF point -> fraction of the rendered picture (top-left origin), from pdfium's own
    page-to-device transform (crop box and /Rotate as rendering applies them)."""
    scale = 100.0  # device units per point: ints at 0.01 pt resolution
    sx, sy = max(1, round(width * scale)), max(1, round(height * scale))
    dx, dy = ctypes.c_int(), ctypes.c_int()

    def dev(x: float, y: float) -> tuple[float, float]:
        pdfium_c.FPDF_PageToDevice(page.raw, 0, 0, sx, sy, 0, ctypes.c_double(x), ctypes.c_double(y),
                                   ctypes.byref(dx), ctypes.byref(dy))
        return dx.value / sx, dy.value / sy

    # the transform is affine: three points give it exactly
    ox, oy = dev(0.0, 0.0)
    ax, ay = dev(1000.0, 0.0)
    bx, by = dev(0.0, 1000.0)
    m = ((ax - ox) / 1000, (bx - ox) / 1000, (ay - oy) / 1000, (by - oy) / 1000)

    def to_rel(box):
        left, bottom, right, top = box
        xs, ys = [], []
        for x, y in ((left, bottom), (right, top)):
            xs.append(ox + m[0] * x + m[1] * y)
            ys.append(oy + m[2] * x + m[3] * y)
        clamp = lambda v: min(1.0, max(0.0, v))  # noqa: E731
        return clamp(min(xs)), clamp(min(ys)), clamp(max(xs)), clamp(max(ys))

    return to_rel


def _is_edge_punct(ch: str) -> bool:
    return not ch.isalnum()


# a word: a run of characters that are not whitespace, control characters or pdfium's line-end
# hyphen mark (U+0002 from FPDFText_GetUnicode, U+FFFE in FPDFText_GetText's text)
_WORD = re.compile(r"[^\s\x00-\x1f\ufffe]+")


def _words_fast(tp, pdfium_c, to_rel) -> list[Word]:
    """_words() with two character boxes per word (its first and last letters, which share a
    line) instead of one per character: the text comes in one call. Used when the text has
    one character per pdfium index (no astral characters); _words() otherwise."""
    n = tp.count_chars()
    text = tp.get_text_range(0, n) if n else ""
    if len(text) != n:
        return _words(tp, pdfium_c, to_rel)
    raw = tp.raw
    rect = pdfium_c.FS_RECTF()
    loose_box = pdfium_c.FPDFText_GetLooseCharBox

    def box_of(i):
        if loose_box(raw, i, rect) and rect.right > rect.left and rect.top > rect.bottom:
            return rect.left, rect.bottom, rect.right, rect.top
        return None

    out: list[Word] = []
    line, at = 0, 0
    for m in _WORD.finditer(text):
        start, end = m.span()
        line += text.count("\n", at, start) + text.count("\r", at, start) - text.count("\r\n", at, start)
        at = start
        word = m.group()
        lo, hi = start, end
        while lo < hi and not text[lo].isalnum():
            lo += 1
        while hi > lo and not text[hi - 1].isalnum():
            hi -= 1
        core = text[lo:hi]
        if hi == lo:  # punctuation only: its own box
            lo, hi = start, end
        ends = [b for b in (box_of(lo), box_of(hi - 1)) if b is not None] if core.isalnum() else []
        if len(ends) < 2 or ends[0][1] != ends[1][1] or ends[0][3] != ends[1][3]:
            # punctuation inside ("f([in]", a URL: brackets and slashes reach higher), a letter
            # without a box, or ends of different heights: every character's box
            ends = [b for b in (box_of(i) for i in range(lo, hi)) if b is not None]
        if end < n and text[end] in "\x02\ufffe":  # hyphenated at a line end (see _words)
            word += "-"
        if not ends:
            continue
        box = (min(b[0] for b in ends), min(b[1] for b in ends), max(b[2] for b in ends), max(b[3] for b in ends))
        out.append(Word(word, line, box, to_rel(box), core))
    return out


def _words(tp, pdfium_c, to_rel) -> list[Word]:
    n = tp.count_chars()
    out: list[Word] = []
    line = 0
    chars: list[str] = []
    boxes: list[tuple[float, float, float, float] | None] = []
    raw = tp.raw
    rect = pdfium_c.FS_RECTF()  # one struct reused for every character (this loop is the cost)
    loose_box = pdfium_c.FPDFText_GetLooseCharBox
    get_unicode = pdfium_c.FPDFText_GetUnicode

    def flush():
        if not chars:
            return
        text = "".join(chars)
        lo, hi = 0, len(chars)
        while lo < hi and not chars[lo].isalnum():
            lo += 1
        while hi > lo and not chars[hi - 1].isalnum():
            hi -= 1
        span = [b for b in (boxes[lo:hi] if hi > lo else boxes) if b is not None]  # punctuation only: its own box
        chars.clear()
        boxes.clear()
        if not span:
            return
        box = (min(b[0] for b in span), min(b[1] for b in span), max(b[2] for b in span), max(b[3] for b in span))
        out.append(Word(text, line, box, to_rel(box), text[lo:hi]))

    for i in range(n):
        code = get_unicode(raw, i)
        ch = chr(code) if 0 < code < 0x110000 else ""
        if ch in ("\r", "\n"):
            flush()
            if ch == "\n" or (i + 1 < n and get_unicode(raw, i + 1) != 10):
                line += 1
            continue
        if ch == "\x02":  # pdfium's mark for a word hyphenated at a line end: two words, one a line
            chars.append("-")
            boxes.append(None)
            flush()
            continue
        if not ch or ch.isspace() or code < 0x20:
            flush()
            continue
        if 0xD800 <= code <= 0xDFFF:  # a surrogate half: pdfium splits astral characters
            chars.append("\ufffd")
            boxes.append(None)
            continue
        box = None
        if loose_box(raw, i, rect) and rect.right > rect.left and rect.top > rect.bottom:
            box = (rect.left, rect.bottom, rect.right, rect.top)
        chars.append(ch)
        boxes.append(box)
    flush()
    return out


# -- matching -----------------------------------------------------------------------------

def _key(display: str) -> str:
    return display.strip().lower()


def _starts_word(text: str, start: int, display: str) -> bool:
    return display[:1].isspace() or start <= 0 or not text[start - 1].isalnum()


def _lower_same_length(text: str) -> str:
    # offsets must stay valid: a character whose lowercase is longer ("İ") is kept as is
    return "".join(c if len(c.lower()) != 1 else c.lower() for c in text)


class _Tokens:
    """The query encoder's tokenizer and normalisation (lowercase, leading space)."""

    def __init__(self, encoder=None):
        if encoder is None:
            from .vocab import default_vocabulary
            from tokenizers import Tokenizer

            vocab = default_vocabulary()
            self.tokenizer = Tokenizer.from_file(str(vocab.tokenizer_path))
            self.vocab, self.lowercase, self.prefix_space = vocab, True, True
        else:
            self.tokenizer, self.vocab = encoder.tokenizer, encoder.vocab
            self.lowercase, self.prefix_space = bool(encoder.lowercase), bool(encoder.prefix_space)

    def pieces(self, text: str, prefix: bool) -> list[tuple[int, str, bool, int, int]]:
        """[(id, text key, starts a word, start, end)] with offsets into `text`."""
        t = _lower_same_length(text) if self.lowercase else text
        shift = 1 if prefix else 0
        enc = self.tokenizer.encode((" " if prefix else "") + t, add_special_tokens=False)
        src = (" " if prefix else "") + t
        out = []
        for i, (s, e) in zip(enc.ids, enc.offsets):
            if i >= self.vocab.size:
                continue
            disp = self.vocab.display(i)
            out.append((i, _key(disp), _starts_word(src, s, disp), max(0, s - shift), max(0, e - shift)))
        return out

    def word_pieces(self, words: Sequence[str]) -> list[list[tuple[str, bool]]]:
        cores = [_lower_same_length(w) if self.lowercase else w for w in words]
        uniq = list(dict.fromkeys(cores))
        encs = self.tokenizer.encode_batch([" " + w for w in uniq], add_special_tokens=False)
        by_word = {}
        for w, enc in zip(uniq, encs):
            src = " " + w
            by_word[w] = [(_key(self.vocab.display(i)), _starts_word(src, s, self.vocab.display(i)))
                          for i, (s, _e) in zip(enc.ids, enc.offsets) if i < self.vocab.size]
        return [by_word[w] for w in cores]


_default_tokens: _Tokens | None = None


def _tokens_for(encoder) -> _Tokens:
    global _default_tokens
    if encoder is not None:
        cached = getattr(encoder, "_highlight_tokens", None)
        if cached is None:
            cached = _Tokens(encoder)
            try:
                encoder._highlight_tokens = cached
            except AttributeError:
                pass
        return cached
    if _default_tokens is None:
        _default_tokens = _Tokens()
    return _default_tokens


def highlight(words: PageWords, query: str, terms: Iterable[str] | Mapping[str, float] | None = None,
              encoder=None, snippet_chars: int = SNIPPET_CHARS) -> Highlights:
    """Mark the words of `words` that carry the query's matched terms.

    terms: the terms the page matched (a hit's `explain`, or its keys); None: every term of the
    query (the words the query would match if printed). encoder: the collection's query
    encoder (its tokenizer and lowercasing); None: the default vocabulary, lowercased (the
    lexical model's settings)."""
    tok = _tokens_for(encoder)
    q_pieces = tok.pieces(query, tok.prefix_space)
    vocab_terms = tok.vocab.terms
    matched = set(terms) if terms is not None else {vocab_terms[i] for i, *_ in q_pieces}
    display: dict[str, str] = {}
    # (text key, starts a word) -> the matched terms with that text
    atoms: dict[tuple[str, bool], set[str]] = {}
    unmarked: set[str] = set()
    seen_in_query: set[str] = set()
    qtext = _lower_same_length(query) if tok.lowercase else query
    word_terms: dict[str, set[str]] = {}  # query word (core, lowercased) -> its matched terms
    q_words = _split_words(qtext)
    for i, key, initial, s, e in q_pieces:
        term = vocab_terms[i]
        if term not in matched:
            continue
        seen_in_query.add(term)
        display[term] = tok.vocab.display(i).strip() or term
        if not any(c.isalnum() for c in key):
            unmarked.add(term)
            continue
        atoms.setdefault((key, initial), set()).add(term)
        for ws, we, core in q_words:
            if s < we and e > ws:
                word_terms.setdefault(core.lower(), set()).add(term)
    for term in matched - seen_in_query:  # a matched term the query text does not hold (an expansion)
        try:
            disp = tok.vocab.display(tok.vocab.id_of(term))
        except (KeyError, ValueError):
            disp = term
        display[term] = disp.strip() or term
        key = _key(disp)
        if not any(c.isalnum() for c in key):
            unmarked.add(term)
        else:
            atoms.setdefault((key, disp[:1].isspace()), set()).add(term)

    if tok.lowercase not in words._pieces:
        words._pieces[tok.lowercase] = tok.word_pieces([w.core or w.text for w in words.words])
    pieces = words._pieces[tok.lowercase]

    whole_hits: list[tuple[int, set[str]]] = []
    piece_hits: list[tuple[int, set[str]]] = []
    for idx, w in enumerate(words.words):
        core = (w.core or w.text).lower()
        if core in word_terms:
            whole_hits.append((idx, set(word_terms[core])))
            continue
        carried: set[str] = set()
        for key, initial in pieces[idx]:
            carried |= atoms.get((key, initial), set())
        if carried:
            piece_hits.append((idx, carried))

    on_page: dict[str, int] = {}
    boxes: list[Box] = []
    marked: dict[int, bool] = {}
    for hits, whole in ((whole_hits, True), (piece_hits, False)):
        for idx, ts in hits:
            w = words.words[idx]
            boxes.append(Box(w.core or w.text, w.box, w.rel, sorted(ts), whole))
            marked[idx] = whole
            for t in ts:
                on_page[t] = on_page.get(t, 0) + 1
    not_on_page = sorted((t for t in matched if t not in on_page and t not in unmarked),
                         key=lambda t: (display.get(t, t).lower(), t))
    return Highlights(query, words.size, words.has_text, boxes, on_page, not_on_page, sorted(unmarked),
                      _snippet(words, marked, snippet_chars) if words.has_text else None, display)


def _split_words(text: str) -> list[tuple[int, int, str]]:
    """(start, end, core) of each whitespace-delimited word, edges' punctuation trimmed."""
    out, i, n = [], 0, len(text)
    while i < n:
        while i < n and text[i].isspace():
            i += 1
        j = i
        while j < n and not text[j].isspace():
            j += 1
        if j > i:
            lo, hi = i, j
            while lo < hi and _is_edge_punct(text[lo]):
                lo += 1
            while hi > lo and _is_edge_punct(text[hi - 1]):
                hi -= 1
            if hi > lo:
                out.append((lo, hi, text[lo:hi]))
        i = j
    return out


# -- snippet -------------------------------------------------------------------------------

def _snippet(words: PageWords, marked: Mapping[int, bool], limit: int) -> Snippet | None:
    lines = [ln for ln in words.lines() if ln]
    if not lines:
        return None

    def score(ln: list[int]) -> float:
        return sum(2.0 if marked[i] else 1.0 for i in ln if i in marked)

    scores = [score(ln) for ln in lines]
    best = max(range(len(lines)), key=lambda k: (scores[k], -k)) if any(scores) else 0
    chosen = [best]
    length = sum(len(words.words[i].text) + 1 for i in lines[best])
    if length < limit // 2:  # a short line: add the neighbour that matches more (the next on a tie)
        nxt = [k for k in (best + 1, best - 1) if 0 <= k < len(lines)]
        if nxt:
            k = max(nxt, key=lambda k: (scores[k], k == best + 1))
            chosen = sorted([best, k])
    idxs = [i for k in chosen for i in lines[k]]
    text_parts, marks, at = [], [], 0
    for i in idxs:
        w = words.words[i]
        if text_parts:
            text_parts.append(" ")
            at += 1
        if i in marked:
            off = w.text.find(w.core) if w.core else 0
            marks.append((at + max(off, 0), at + max(off, 0) + len(w.core or w.text)))
        text_parts.append(w.text)
        at += len(w.text)
    text = "".join(text_parts)
    if len(text) <= limit:
        return Snippet(text, marks)
    # too long: a window of `limit` characters starting a little before the first mark
    first = marks[0][0] if marks else 0
    start = max(0, first - limit // 4)
    if start:
        sp = text.rfind(" ", 0, start + 1)
        start = sp + 1 if sp >= 0 else start
    end = min(len(text), start + limit)
    if end < len(text):
        sp = text.rfind(" ", start, end)
        end = sp if sp > start else end
    pre = "… " if start else ""
    post = " …" if end < len(text) else ""
    shift = len(pre) - start
    kept = [(s + shift, e + shift) for s, e in marks if s >= start and e <= end]
    return Snippet(pre + text[start:end] + post, kept)


# -- pictures -----------------------------------------------------------------------------

WHOLE_FILL = (255, 214, 0, 110)  # a query word: strong yellow
PIECE_FILL = (255, 150, 40, 70)  # a word holding a matched piece: lighter orange
OUTLINE = (200, 120, 0, 200)


def draw(image, highlights: Highlights):
    """A copy of `image` (the page as rendered) with the boxes drawn semi-transparent."""
    from PIL import Image, ImageDraw

    base = image.convert("RGBA")
    overlay = Image.new("RGBA", base.size, (0, 0, 0, 0))
    d = ImageDraw.Draw(overlay)
    w, h = base.size
    for b in reversed(highlights.boxes):  # the best drawn last, on top
        x0, y0, x1, y1 = b.pixels(w, h)
        pad = max(1, round(h / 1000))
        d.rectangle((x0 - pad, y0 - pad, x1 + pad, y1 + pad), fill=WHOLE_FILL if b.whole else PIECE_FILL,
                    outline=OUTLINE if b.whole else None)
    return Image.alpha_composite(base, overlay).convert("RGB")


# -- from an index's page record ------------------------------------------------------------

def highlight_page(meta: Mapping[str, Any], query: str, terms: Iterable[str] | Mapping[str, float] | None = None,
                   encoder=None, snippet_chars: int = SNIPPET_CHARS) -> Highlights:
    """highlight() for a page record as an index stores it (path, page, sha256, source): read
    from the indexed version of the file only (vsplade.render's checks: SourceError when it
    moved or changed)."""
    from .render import hit_words

    return highlight(hit_words(meta), query, terms, encoder, snippet_chars)


def highlighted_image(meta: Mapping[str, Any], query: str, width: int | None = None,
                      terms: Iterable[str] | Mapping[str, float] | None = None, encoder=None):
    """(the page picture with the boxes drawn, its Highlights): what `vsplade show --highlight`
    shows (and the terms it lists as not on the page)."""
    from .render import hit_image

    hl = highlight_page(meta, query, terms, encoder)
    return draw(hit_image(meta, width), hl), hl


def matched_terms(collection, meta: Mapping[str, Any], query: str) -> dict[str, float] | None:
    """The terms page `meta` matches for `query` ({term: contribution}, the engine's explain for
    that page alone), or None where the engine cannot explain (a server-side query)."""
    from .engines import EngineError

    page = meta.get("page")
    try:
        hits = collection.search(query, k=5, source=meta.get("source"),
                                 pages=(page, page) if page else None, explain=True)
    except EngineError:  # no explain on this engine: callers fall back on the query's own terms
        return None
    for h in hits:
        if h.id == meta.get("id"):
            return dict(h.explain or {})
    return {}
