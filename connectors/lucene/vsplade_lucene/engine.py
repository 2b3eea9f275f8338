"""``--engine lucene``: the embedded default engine (a Lucene impact index in a local dir).

Options (keyword arguments / CLI): ``index`` (the dir, required), ``scale`` (impact =
round(w * scale), default 100, fixed when the index is created), ``build`` ("direct", the
default fast path, or "jsonvector", Pyserini's JsonVectorCollection + IndexCollection route),
``heap`` (JVM -Xmx, or VSPLADE_LUCENE_HEAP), ``threads`` (batch search; indexing threads,
default every core), ``chunk_docs`` and ``commit_every`` (direct path). Network/credential options of other
engines are rejected by name.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Mapping

from vsplade.engines.base import Engine, EngineError, IndexWriter
from vsplade.sparse import SparseBatch

from . import jvm

_FOREIGN = ("url", "user", "password", "api_key", "ca_certs", "insecure")
_KNOWN = {"scale", "build", "heap", "threads", "chunk_docs", "commit_every", "vocab"}


class LuceneEngine(Engine):
    name = "lucene"

    def __init__(self, index: str | None = None, **options: Any):
        foreign = [k for k in _FOREIGN if options.get(k)]
        if foreign:
            flags = ", ".join("--" + k.replace("_", "-") for k in foreign)
            raise EngineError(f"the lucene engine is a local dir; {flags} do(es) not apply (use --index DIR)")
        unknown = set(options) - _KNOWN - set(_FOREIGN)
        if unknown:
            raise EngineError(f"the lucene engine does not know option(s) {', '.join(sorted(unknown))}")
        super().__init__(index, **options)
        if not index:
            raise EngineError("the lucene engine needs --index DIR")
        self.path = Path(index)
        self.scale = float(options.get("scale") or 100.0)
        self.build = options.get("build") or "direct"
        if self.build not in ("direct", "jsonvector"):
            raise EngineError(f"build must be 'direct' or 'jsonvector', got {self.build!r}")
        self.threads = int(options.get("threads") or 1)
        self.vocab = options.get("vocab")
        try:
            jvm.start(options.get("heap"))
        except jvm.JvmError as e:
            raise EngineError(str(e)) from None

    def writer(self, info: Mapping[str, Any], recreate: bool = False) -> IndexWriter:
        if self.build == "jsonvector":
            from .jsonvector import JsonVectorWriter

            return JsonVectorWriter(self.path, info, scale=self.scale, recreate=recreate, vocab=self.vocab,
                                    threads=max(2, self.threads), heap=self.options.get("heap"))
        from .direct import DirectImpactWriter

        kw = {k: int(self.options[k]) for k in ("threads", "chunk_docs", "commit_every") if self.options.get(k)}
        return DirectImpactWriter(self.path, info, scale=self.scale, recreate=recreate, vocab=self.vocab, **kw)

    def searcher(self):
        from .searcher import LuceneImpactIndexSearcher

        # the scale the index was built with wins; an index without our config uses `scale`
        return LuceneImpactIndexSearcher(self.path, scale=None if self._has_config() else self.scale,
                                         threads=self.threads)

    def _has_config(self) -> bool:
        from .store import CONFIG_FILE

        return (self.path / CONFIG_FILE).is_file()

    @classmethod
    def export(cls, batches: Iterable[SparseBatch], out: Path, **options) -> dict:
        """`vsplade export --to jsonvector`: Pyserini JsonVectorCollection files."""
        from .jsonvector import DEFAULT_SHARDS, export

        return export(batches, Path(out), scale=float(options.get("scale") or 100.0),
                      shards=int(options.get("shards") or DEFAULT_SHARDS), vocab=options.get("vocab"))

    def describe(self) -> str:
        return json.dumps({"engine": self.name, "index": str(self.path), "scale": self.scale, "build": self.build})
