"""Evaluation sets -> `EvalDataset` (page ids, lazily decoded page images, queries, qrels).

Owns every way a retrieval set can be given (spec section 7, "Loading" and "Columns"):
- a ViDoRe v2 short name (`esg_reports_eng_v2` or its README spelling `esg_reports_v2`,
  `esg_reports_human_labeled_v2`...), looked up as ``DATA_DIR/<either spelling>`` and then on
  the Hub as ``vidore/<either spelling>``; ``vidore-v2`` expands to the four sets;
- a Hub id (``org/name``): tables tried with ``data_dir=`` then ``name=``, splits test then train;
- a local dir in the BEIR layout: ``corpus/``, ``queries/``, ``qrels/`` (or ``relevant_docs/``)
  each written by ``save_to_disk``, or one saved DatasetDict with those splits;
- a plain folder of images plus a JSON file ``{"queries": {qid: text}, "qrels": {qid:
  {image path relative to the folder: score}}}`` (the folder, or the JSON file itself).

Columns accepted: corpus ``corpus-id``/``corpus_id`` + ``image`` (or ``image_path`` relative to
the set's dir); queries ``query-id``/``query_id`` + ``query``/``text`` + optional ``language``
(only ``english`` kept); qrels ``query-id``/``query_id`` + ``corpus-id``/``corpus_id`` + integer
``score`` (or ``corpus_ids``/``scores`` lists, the vidore exporter's form). Ids become strings.
Qrels are restricted to the kept queries; a qrel naming a page the corpus lacks is an error.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from vsplade.pages import IMAGE_SUFFIXES, Page

log = logging.getLogger(__name__)

HUB_ORG = "vidore"
# canonical name (the one the official eval uses and writes into metrics.json) -> spellings
VIDORE_V2: dict[str, tuple[str, ...]] = {
    "esg_reports_eng_v2": ("esg_reports_eng_v2", "esg_reports_v2"),
    "biomedical_lectures_eng_v2": ("biomedical_lectures_eng_v2", "biomedical_lectures_v2"),
    "economics_reports_eng_v2": ("economics_reports_eng_v2", "economics_reports_v2"),
    "esg_reports_human_labeled_v2": ("esg_reports_human_labeled_v2",),
}
VIDORE_V2_ALL = "vidore-v2"
_ALIASES = {spelling: canon for canon, spellings in VIDORE_V2.items() for spelling in spellings}

CORPUS_ID_COLUMNS = ("corpus-id", "corpus_id")
IMAGE_COLUMNS = ("image", "image_path")
QUERY_ID_COLUMNS = ("query-id", "query_id")
QUERY_TEXT_COLUMNS = ("query", "text")
QRELS_TABLES = ("qrels", "relevant_docs")
KEEP_LANGUAGE = "english"


class DatasetError(ValueError):
    """An evaluation set that cannot be used as given; the message names the set, table and field."""


@dataclass
class EvalDataset:
    name: str
    origin: str  # where it was read from (path or Hub id), for messages and the report
    corpus_ids: list[str]
    queries: dict[str, str]  # kept queries, in table order
    qrels: dict[str, dict[str, int]]  # restricted to kept queries
    image_at: Callable[[Sequence[int]], Iterator[Any]]  # row positions -> PIL images, in order
    text_at: Callable[[Sequence[int]], Iterator[str]] | None = None
    dropped_queries: int = 0  # filtered out by language
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.corpus_ids)

    def pages(self, skip: set[str] | frozenset = frozenset(), images: bool = True) -> Iterator[Page]:
        """Pages not in `skip`, images decoded one at a time (bounded memory); with
        images=False (encoders that read only text) no image is decoded."""
        rows = [i for i, cid in enumerate(self.corpus_ids) if cid not in skip]
        texts = self.text_at(rows) if self.text_at else iter(lambda: "", None)
        imgs = self.image_at(rows) if images else iter(lambda: None, 0)
        for r, image, text in zip(rows, imgs, texts):
            yield Page(id=self.corpus_ids[r], source=self.name, page_no=1, image=image, text=text or "")

    def qrels_trec(self) -> str:
        lines = [f"{q} 0 {d} {s}" for q, docs in self.qrels.items() for d, s in docs.items()]
        return "\n".join(lines) + ("\n" if lines else "")


# -- resolving a dataset argument ------------------------------------------------------------
def expand(specs: Sequence[str]) -> list[str]:
    out: list[str] = []
    for s in specs or [VIDORE_V2_ALL]:
        out.extend(VIDORE_V2 if s == VIDORE_V2_ALL else [s])
    return out


def canonical_name(name: str) -> str:
    return _ALIASES.get(name, name)


def load_eval_dataset(
    spec: str, data_dir: str | Path | None = None, text_column: str | None = None, hub: bool = True
) -> EvalDataset:
    """`spec`: a ViDoRe v2 short name, a path, or a Hub id (see the module docstring)."""
    path = Path(spec)
    if path.exists():
        return load_path(path, text_column=text_column)
    short = spec.rsplit("/", 1)[-1]
    canon = canonical_name(short)
    if "/" not in spec and canon in VIDORE_V2:
        spellings = VIDORE_V2[canon]
        if data_dir is not None:
            for s in spellings:
                local = Path(data_dir) / s
                if local.is_dir():
                    return load_path(local, name=canon, text_column=text_column)
        if not hub:
            where = f" or under {data_dir}" if data_dir else ""
            raise DatasetError(f"{spec}: not found{where} (tried {', '.join(spellings)})")
        return load_hub([f"{HUB_ORG}/{s}" for s in spellings], canon, text_column)
    if "/" in spec and not spec.startswith((".", "/")) and hub:
        return load_hub([spec], canon, text_column)
    known = ", ".join([VIDORE_V2_ALL, *VIDORE_V2])
    raise DatasetError(f"{spec}: no such path, and not a ViDoRe v2 name ({known}) or a Hub id")


def load_path(path: Path, name: str | None = None, text_column: str | None = None) -> EvalDataset:
    if path.is_file():
        if path.suffix.lower() != ".json":
            raise DatasetError(f"{path}: expected a dataset dir or a queries/qrels .json file")
        return load_image_folder(path.parent, path, name=name)
    name = canonical_name(name or path.name)
    parts = {p.name for p in path.iterdir() if p.is_dir()}
    if "corpus" in parts and "queries" in parts and parts & set(QRELS_TABLES):
        qrels_name = next(t for t in QRELS_TABLES if t in parts)
        tables = {t: _load_disk_table(path / t, name) for t in ("corpus", "queries")}
        tables["qrels"] = _load_disk_table(path / qrels_name, name)
        return from_tables(name, str(path), tables, base_dir=path, text_column=text_column)
    if (path / "dataset_dict.json").is_file():
        dd = _load_disk(path, name)
        return from_tables(name, str(path), _dict_tables(dd, name, str(path)), base_dir=path, text_column=text_column)
    jsons = sorted(path.glob("*.json"))
    if jsons:
        return load_image_folder(path, _pick_json(path, jsons), name=name)
    raise DatasetError(
        f"{path}: not an evaluation set: expected corpus/, queries/ and qrels/ (datasets save_to_disk), "
        "a saved DatasetDict, or images plus a queries/qrels .json"
    )


def _pick_json(folder: Path, jsons: list[Path]) -> Path:
    for j in jsons:
        try:
            data = json.loads(j.read_text())
        except ValueError:
            continue
        if isinstance(data, dict) and "queries" in data and "qrels" in data:
            return j
    raise DatasetError(f"{folder}: no .json file with 'queries' and 'qrels' keys ({', '.join(j.name for j in jsons)})")


def _load_disk(path: Path, name: str):
    from datasets import load_from_disk

    try:
        return load_from_disk(str(path))
    except Exception as e:  # datasets raises FileNotFoundError/ValueError variants
        raise DatasetError(f"{name}: cannot load {path} with datasets.load_from_disk ({e})") from None


def _load_disk_table(path: Path, name: str):
    obj = _load_disk(path, name)
    if hasattr(obj, "keys") and not hasattr(obj, "column_names"):  # a DatasetDict: pick the split
        for split in ("test", "train", *obj.keys()):
            if split in obj:
                return obj[split]
        raise DatasetError(f"{name}: {path} holds no split")
    return obj


def _dict_tables(dd, name: str, origin: str) -> dict:
    out = {}
    for t, choices in (("corpus", ("corpus",)), ("queries", ("queries",)), ("qrels", QRELS_TABLES)):
        found = next((c for c in choices if c in dd), None)
        if found is None:
            raise DatasetError(f"{name} ({origin}): no '{'/'.join(choices)}' split (has {', '.join(dd.keys())})")
        out[t] = dd[found]
    return out


def load_hub(repos: Sequence[str], name: str, text_column: str | None = None) -> EvalDataset:
    """Tables from the Hub: each of corpus/queries/qrels tried as data_dir, then as a config
    name, on split test then train; the first repo spelling that has all three wins."""
    from datasets import load_dataset

    errors = []
    for repo in repos:
        tables = {}
        for table in ("corpus", "queries", "qrels"):
            for kw in ({"data_dir": table}, {"name": table}):
                for split in ("test", "train"):
                    try:
                        tables[table] = load_dataset(repo, split=split, **kw)
                        break
                    except Exception as e:  # missing config/split/repo or offline
                        errors.append(f"{repo} {kw} split={split}: {type(e).__name__}: {str(e)[:200]}")
                if table in tables:
                    break
            if table not in tables:
                break
        if len(tables) == 3:
            return from_tables(name, repo, tables, base_dir=None, text_column=text_column)
    raise DatasetError(f"{name}: not found on the Hub ({', '.join(repos)}); last error: {errors[-1] if errors else '-'}")


# -- column handling ---------------------------------------------------------------------------
def _column(table, choices: Sequence[str], name: str, what: str, origin: str, required: bool = True) -> str | None:
    cols = table.column_names
    for c in choices:
        if c in cols:
            return c
    if not required:
        return None
    raise DatasetError(
        f"{name} ({origin}): {what} table has no {' or '.join(repr(c) for c in choices)} column "
        f"(columns: {', '.join(cols)})"
    )


def from_tables(name: str, origin: str, tables: dict, base_dir: Path | None, text_column: str | None = None) -> EvalDataset:
    corpus, queries, qrels = tables["corpus"], tables["queries"], tables["qrels"]
    cid_col = _column(corpus, CORPUS_ID_COLUMNS, name, "corpus", origin)
    img_col = _column(corpus, IMAGE_COLUMNS, name, "corpus", origin)
    if text_column is not None:
        _column(corpus, (text_column,), name, "corpus", origin)
    corpus_ids = [str(c) for c in corpus[cid_col]]
    _check_unique(corpus_ids, name, origin)

    qid_col = _column(queries, QUERY_ID_COLUMNS, name, "queries", origin)
    qtext_col = _column(queries, QUERY_TEXT_COLUMNS, name, "queries", origin)
    lang_col = "language" if "language" in queries.column_names else None
    kept: dict[str, str] = {}
    all_qids: set[str] = set()
    dropped = 0
    langs = queries[lang_col] if lang_col else [None] * len(queries)
    for qid, text, lang in zip(queries[qid_col], queries[qtext_col], langs):
        qid = str(qid)
        all_qids.add(qid)
        if lang is not None and str(lang).lower() != KEEP_LANGUAGE:
            dropped += 1
            continue
        if not qid or any(c.isspace() for c in qid):
            raise DatasetError(f"{name} ({origin}): query id {qid!r} is empty or holds whitespace")
        if qid in kept:
            raise DatasetError(f"{name} ({origin}): queries table repeats query id {qid!r}")
        kept[qid] = str(text)

    qq_col = _column(qrels, QUERY_ID_COLUMNS, name, "qrels", origin)
    if "corpus_ids" in qrels.column_names:  # vidore exporter: one row per query with lists
        s_col = _column(qrels, ("scores",), name, "qrels", origin)
        triples = [
            (str(q), str(c), s)
            for q, cs, ss in zip(qrels[qq_col], qrels["corpus_ids"], qrels[s_col])
            for c, s in zip(cs, ss)
        ]
    else:
        qc_col = _column(qrels, CORPUS_ID_COLUMNS, name, "qrels", origin)
        s_col = _column(qrels, ("score",), name, "qrels", origin)
        triples = [(str(q), str(c), s) for q, c, s in zip(qrels[qq_col], qrels[qc_col], qrels[s_col])]
    qrel_map = _build_qrels(triples, set(corpus_ids), kept, all_qids, name, origin)

    if img_col == "image":
        def image_at(rows):
            sub = corpus.select(rows).select_columns([img_col])
            for row in sub:
                img = row[img_col]
                if img is None:
                    raise DatasetError(f"{name} ({origin}): corpus page {corpus_ids[rows[0]]} has no image")
                yield _rgb(img)
    else:
        paths = corpus[img_col]

        def image_at(rows):
            for r in rows:
                yield _open_image(_resolve(base_dir, paths[r], name, origin, corpus_ids[r]))

    text_at = None
    if text_column is not None:
        texts = corpus[text_column]

        def text_at(rows):
            return (texts[r] or "" for r in rows)

    return EvalDataset(name, origin, corpus_ids, kept, qrel_map, image_at, text_at, dropped_queries=dropped)


def _build_qrels(triples, corpus_set: set[str], kept: dict, all_qids: set[str], name: str, origin: str):
    qrels: dict[str, dict[str, int]] = {}
    unknown_pages = []
    unknown_queries = set()
    for q, c, s in triples:
        if c not in corpus_set:
            unknown_pages.append((q, c))
            continue
        if q not in all_qids:
            unknown_queries.add(q)
            continue
        if q not in kept:
            continue
        try:
            score = int(s)
        except (TypeError, ValueError):
            raise DatasetError(f"{name} ({origin}): qrels score {s!r} for query {q!r}, page {c!r} is not an integer") from None
        if score != s and not isinstance(s, str):
            raise DatasetError(f"{name} ({origin}): qrels score {s!r} for query {q!r}, page {c!r} is not an integer")
        qrels.setdefault(q, {})[c] = score
    if unknown_pages:
        q, c = unknown_pages[0]
        raise DatasetError(
            f"{name} ({origin}): {len(unknown_pages)} qrels row(s) point at pages that are not in the corpus "
            f"(first: query {q!r} -> corpus-id {c!r})"
        )
    if unknown_queries:
        # not fatal: such judgments cannot be evaluated; say how many were dropped
        log.warning("%s: %d qrels query id(s) not in the queries table, ignored (e.g. %r)", name,
                    len(unknown_queries), sorted(unknown_queries)[0])
    return qrels


def _check_unique(ids: list[str], name: str, origin: str) -> None:
    bad = next((i for i in ids if not i or any(c.isspace() for c in i)), None)
    if bad is not None:
        raise DatasetError(f"{name} ({origin}): page id {bad!r} is empty or holds whitespace (TREC runs cannot carry it)")
    if len(set(ids)) != len(ids):
        seen, dup = set(), None
        for i in ids:
            if i in seen:
                dup = i
                break
            seen.add(i)
        raise DatasetError(f"{name} ({origin}): corpus repeats page id {dup!r}")


def _rgb(img):
    return img if getattr(img, "mode", "RGB") == "RGB" else img.convert("RGB")


def _resolve(base_dir: Path | None, rel: str, name: str, origin: str, cid: str) -> Path:
    p = Path(rel)
    candidates = [p] if p.is_absolute() or base_dir is None else [base_dir / p, base_dir / "corpus" / p]
    for c in candidates:
        if c.is_file():
            return c
    raise DatasetError(f"{name} ({origin}): corpus page {cid}: image file {rel} not found")


def _open_image(path: Path):
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            return im.convert("RGB")
    except (UnidentifiedImageError, OSError) as e:
        raise DatasetError(f"{path}: not a readable image ({e})") from None


# -- a plain folder of images + queries/qrels JSON --------------------------------------------------
def load_image_folder(folder: Path, json_path: Path, name: str | None = None) -> EvalDataset:
    name = canonical_name(name or folder.name)
    origin = str(json_path)
    try:
        data = json.loads(json_path.read_text())
    except (OSError, ValueError) as e:
        raise DatasetError(f"{json_path}: cannot read JSON ({e})") from None
    for key in ("queries", "qrels"):
        if not isinstance(data, dict) or key not in data:
            raise DatasetError(f"{json_path}: missing '{key}' (expected {{'queries': {{id: text}}, 'qrels': {{id: {{page: score}}}}}})")
    queries = data["queries"]
    if isinstance(queries, list):  # [{"query-id"/"id", "query"/"text"}]
        queries = {str(_first(q, ("query-id", "query_id", "id"), json_path)): _first(q, ("query", "text"), json_path)
                   for q in queries}
    if not isinstance(queries, dict) or not isinstance(data["qrels"], dict):
        raise DatasetError(f"{json_path}: 'queries' and 'qrels' must be objects keyed by query id")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DatasetError(f"{folder}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
    corpus_ids = [p.relative_to(folder).as_posix() for p in files]
    _check_unique(corpus_ids, name, origin)
    kept = {str(q): str(t) for q, t in queries.items()}
    triples = [(str(q), str(c), s) for q, docs in data["qrels"].items() for c, s in docs.items()]
    qrels = _build_qrels(triples, set(corpus_ids), kept, set(kept), name, origin)

    def image_at(rows):
        for r in rows:
            yield _open_image(files[r])

    return EvalDataset(name, origin, corpus_ids, kept, qrels, image_at)


def _first(obj: dict, keys, where) -> Any:
    for k in keys:
        if k in obj:
            return obj[k]
    raise DatasetError(f"{where}: a query entry has none of {', '.join(keys)}")
