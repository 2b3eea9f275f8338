"""What a vsplade Lucene index dir holds besides Lucene's own files, and its consistency rules.

Layout (the Lucene index lives at the top of DIR, so Pyserini's
``LuceneImpactSearcher(DIR, ...)`` opens it as is)::

    DIR/segments_N, DIR/_0.cfs ...   the Lucene impact index (field ``contents``, ``id``)
    DIR/vsplade-lucene.json          format, the encoder ``info``, scale, term naming, state
    DIR/vsplade-docs.jsonl           one {"id", "source", "page"} per Lucene doc, in doc-id order

Lucene only manages files with its own name patterns, so these two files are left alone by
IndexWriter. Crash safety: doc lines are appended and fsynced BEFORE each Lucene commit; on
re-open the doc file is cut back to the committed Lucene doc count. So the committed ids are
exactly the first ``maxDoc`` lines, and a resumed run re-adds the rest.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Mapping

import orjson

from vsplade.engines.base import EngineError, IndexMismatchError
from vsplade.vocab import TERM_NAMING, VOCAB_SIZE

FORMAT = "vsplade-lucene"
CONFIG_FILE = "vsplade-lucene.json"
DOCS_FILE = "vsplade-docs.jsonl"
CONTENTS_FIELD = "contents"  # Anserini's Constants.CONTENTS
ID_FIELD = "id"  # Anserini's Constants.ID (stored + sorted doc values, for Pyserini's tie-break)
RAW_FIELD = "raw"  # Anserini's Constants.RAW: we store the page metadata as JSON there


def is_lucene_dir(path: Path) -> bool:
    return path.is_dir() and any(path.glob("segments_*"))


def read_config(path: Path) -> dict | None:
    cfg = path / CONFIG_FILE
    if not cfg.is_file():
        return None
    try:
        return json.loads(cfg.read_text())
    except ValueError as e:
        raise EngineError(f"{cfg}: invalid JSON ({e})") from None


def write_config(path: Path, config: Mapping[str, Any]) -> None:
    tmp = path / (CONFIG_FILE + ".tmp")
    tmp.write_text(json.dumps(config, indent=1, sort_keys=True))
    os.replace(tmp, path / CONFIG_FILE)


def new_config(info: Mapping[str, Any], scale: float, build: str) -> dict:
    return {
        "format": FORMAT,
        "version": 1,
        "encoder": dict(info),
        "scale": scale,
        "term_naming": TERM_NAMING,
        "vocab_size": VOCAB_SIZE,
        "fields": {"contents": CONTENTS_FIELD, "id": ID_FIELD, "raw": RAW_FIELD},
        "build": build,
        "state": "writing",
    }


def check_compatible(path: Path, old: Mapping[str, Any], info: Mapping[str, Any], scale: float) -> None:
    if old.get("format") != FORMAT:
        raise IndexMismatchError(f"{path / CONFIG_FILE}: not a vsplade Lucene index (format={old.get('format')!r})")
    if old.get("encoder") != dict(info):
        raise IndexMismatchError(
            f"{path} holds pages from encoder {old.get('encoder')}, not {dict(info)}; "
            "use another --index dir or --recreate"
        )
    if float(old.get("scale", 0)) != float(scale):
        raise IndexMismatchError(
            f"{path} was built with impact scale {old.get('scale')}, not {scale}; use --recreate to rebuild"
        )
    if old.get("term_naming") != TERM_NAMING:
        raise IndexMismatchError(f"{path} uses term naming {old.get('term_naming')!r}, not {TERM_NAMING!r}")


def prepare_dir(path: Path, recreate: bool) -> None:
    """Create DIR, or empty it for --recreate; refuse to touch a dir that is not ours."""
    if path.exists() and not path.is_dir():
        raise EngineError(f"--index {path} exists and is not a directory")
    if path.is_dir() and any(path.iterdir()):
        ours = (path / CONFIG_FILE).is_file()
        if not ours:
            what = "a Lucene index not built by vsplade" if is_lucene_dir(path) else "not a vsplade Lucene index"
            raise IndexMismatchError(f"--index {path} is {what}; choose a new or empty dir")
        if recreate:
            shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)


def meta_line(doc_id: str, meta: Mapping[str, Any]) -> dict:
    return {"id": doc_id, "source": meta.get("source"), "page": meta.get("page")}


class DocsFile:
    """The doc-id-aligned metadata file: appended while writing, read whole by searchers."""

    def __init__(self, path: Path):
        self.path = path / DOCS_FILE

    def read(self, limit: int | None = None) -> list[dict]:
        if not self.path.is_file():
            return []
        out = []
        with open(self.path, "rb") as f:
            for line in f:
                if limit is not None and len(out) >= limit:
                    break
                if line.strip():
                    out.append(orjson.loads(line))
        return out

    def truncate_to(self, n: int) -> list[dict]:
        """Keep the first n lines (the committed docs); returns them."""
        rows = self.read(limit=n)
        if len(rows) < n:
            raise EngineError(
                f"{self.path} lists {len(rows)} pages but the Lucene index holds {n}; "
                "the index was modified outside vsplade: rebuild it with --recreate"
            )
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(b"".join(orjson.dumps(r) + b"\n" for r in rows))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        return rows

    def append(self, rows: list[dict]) -> None:
        if not rows:
            return
        with open(self.path, "ab") as f:
            f.write(b"".join(orjson.dumps(r) + b"\n" for r in rows))
            f.flush()
            os.fsync(f.fileno())
