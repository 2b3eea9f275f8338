"""``--engine lucene``: the embedded default engine (a Lucene impact index in a local dir).

Options (keyword arguments / CLI): ``index`` (the dir, required), ``scale`` (impact =
round(w * scale), fixed when the index is created; default: the existing index's scale, else
10000 for the direct build and 100 for the JsonVectorCollection route), ``build`` ("direct",
the default fast path, or "jsonvector", Pyserini's JsonVectorCollection + IndexCollection route),
``heap`` (JVM -Xmx, or VSPLADE_LUCENE_HEAP), ``threads`` (batch search; indexing threads,
default every core), ``chunk_docs`` and ``commit_every`` (direct path; also from the environment,
VSPLADE_LUCENE_CHUNK_DOCS / VSPLADE_LUCENE_COMMIT_EVERY, as the CLI has no flags for these
tuning knobs), ``prune`` (``--prune top=N[,floor=W][,cap=C]``: static index pruning,
vsplade.pruning, fixed when the index is created; top/floor: Lucene indexes each page's top
terms, a forward index keeps the whole pages, and every search is two-phase so scores stay the
unpruned ones; cap: each term's C heaviest postings are kept apart for phase 1 and every
search is two-phase there, vsplade_lucene.capped), ``optimize``
(``--optimize``: force-merge to one segment when the build closes, vsplade_lucene.optimize),
``forward_index`` (the forward index for two-phase search, vsplade_lucene.forward; default:
only with ``prune``, as it adds ~3.3 KB a page and query-side two-phase alone does not pay on
Lucene, RESULTS.md "Two-phase search"). Network/credential options of other engines are
rejected by name.

Writers take the index's exclusive lock (vsplade.locking) before touching the dir: a second
writer, or ``--recreate`` while another process writes, fails with IndexLockedError.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from vsplade.engines.base import Engine, EngineError, IndexWriter, cli_field, settings_from
from vsplade.sparse import SparseBatch

from . import jvm

_FOREIGN = ("url", "user", "password", "api_key", "ca_certs", "insecure")
# The direct build's cost does not depend on the scale, and at 10000 its top-10 equals float
# scoring for 99.7% of queries (100: 73.3%, 1000: 96.3%; benchmarks/RESULTS.md) for ~40% more
# index. The JsonVectorCollection route repeats each term `impact` times, so it stays at
# Pyserini's customary 100.
DEFAULT_SCALE = {"direct": 10000.0, "jsonvector": 100.0}
# an index without our config (built by Pyserini) is searched with its customary scale
FOREIGN_INDEX_SCALE = 100.0
_ENV = {"chunk_docs": "VSPLADE_LUCENE_CHUNK_DOCS", "commit_every": "VSPLADE_LUCENE_COMMIT_EVERY"}


@dataclass(frozen=True)
class LuceneSettings:
    """The Lucene engine's settings (module docstring); only `scale` is a CLI flag."""

    index: str
    scale: float | None = cli_field()  # None: the index's own, else DEFAULT_SCALE[build]
    build: str = "direct"
    heap: str | None = None
    threads: int = 1
    chunk_docs: int | None = None  # None: VSPLADE_LUCENE_CHUNK_DOCS, else the writer's default
    commit_every: int | None = None  # None: VSPLADE_LUCENE_COMMIT_EVERY, else the writer's default
    vocab: Any = None
    prune: str | None = cli_field()  # "top=N[,floor=W][,cap=C]" (vsplade.pruning.StaticPruning.of)
    optimize: bool | None = cli_field()  # one segment when the build closes
    forward_index: bool | None = None  # None: written only for a pruned index

    def __post_init__(self) -> None:
        if not self.index:
            raise EngineError("the lucene engine needs --index DIR")
        if self.build not in DEFAULT_SCALE:
            raise EngineError(f"build must be 'direct' or 'jsonvector', got {self.build!r}")
        if self.scale is not None and not float(self.scale) > 0:
            raise EngineError(f"--scale must be positive, got {self.scale}")
        if self.prune is not None:
            from vsplade.pruning import StaticPruning

            try:
                StaticPruning.of(self.prune)
            except (ValueError, TypeError) as e:
                raise EngineError(f"--prune: {e}") from None
            if self.build != "direct":
                raise EngineError("--prune needs the direct build (the jsonvector route has no forward index)")
        for name in ("chunk_docs", "commit_every"):
            value = getattr(self, name) or os.environ.get(_ENV[name])
            if value is not None:
                try:
                    object.__setattr__(self, name, int(value))
                except ValueError:
                    raise EngineError(f"{name} must be an integer, got {value!r}") from None


class LuceneEngine(Engine):
    name = "lucene"
    settings_class = LuceneSettings

    def __init__(self, index: str | None = None, **options: Any):
        foreign = [k for k in _FOREIGN if options.get(k)]
        if foreign:
            flags = ", ".join("--" + k.replace("_", "-") for k in foreign)
            raise EngineError(f"the lucene engine is a local dir; {flags} do(es) not apply (use --index DIR)")
        options = {k: v for k, v in options.items() if k not in _FOREIGN}
        self.settings = settings_from(LuceneSettings, self.name, {"index": index, **options})
        super().__init__(index, **options)
        self.path = Path(index)
        self.build = self.settings.build
        self._scale_option = float(self.settings.scale) if self.settings.scale else None
        self.scale = self._scale_for(recreate=False)
        self.threads = self.settings.threads
        self.vocab = self.settings.vocab
        try:
            jvm.start(self.settings.heap)
        except jvm.JvmError as e:
            raise EngineError(str(e)) from None

    def _scale_for(self, recreate: bool) -> float:
        if self._scale_option is not None:
            return self._scale_option
        if not recreate:
            from .store import read_config

            old = read_config(self.path) if self.path.is_dir() else None
            if old and old.get("scale"):
                return float(old["scale"])  # appending: keep what the index was built with
        return DEFAULT_SCALE[self.build]

    def writer(self, info: Mapping[str, Any], recreate: bool = False) -> IndexWriter:
        self.scale = self._scale_for(recreate)
        if self.build == "jsonvector":
            from .jsonvector import JsonVectorWriter

            return JsonVectorWriter(self.path, info, scale=self.scale, recreate=recreate, vocab=self.vocab,
                                    threads=max(2, self.threads), heap=self.settings.heap)
        from .direct import DirectImpactWriter

        # the writer's own defaults for what is not set (threads: every core)
        kw = {k: getattr(self.settings, k) for k in ("chunk_docs", "commit_every") if getattr(self.settings, k)}
        if self.options.get("threads"):
            kw["threads"] = self.settings.threads
        return DirectImpactWriter(self.path, info, scale=self.scale, recreate=recreate, vocab=self.vocab,
                                  pruning=self.settings.prune, optimize=bool(self.settings.optimize),
                                  forward_index=self.settings.forward_index, **kw)

    def searcher(self):
        from .searcher import LuceneImpactIndexSearcher

        # the scale the index was built with wins; an index without our config uses `scale`
        scale = None if self._has_config() else (self._scale_option or FOREIGN_INDEX_SCALE)
        return LuceneImpactIndexSearcher(self.path, scale=scale, threads=self.threads)

    # -- collection lifecycle, read side (no lock, no searcher) -----------------------------

    def _config(self) -> dict | None:
        from .store import read_config

        return read_config(self.path) if self.path.is_dir() else None

    def read_properties(self) -> dict | None:
        """The "collection" dict of vsplade-lucene.json; None when there is no index."""
        from .store import is_lucene_dir

        cfg = self._config()
        if cfg is None or not is_lucene_dir(self.path):
            return None
        return dict(cfg.get("collection") or {})

    def read_encoder_info(self) -> dict:
        cfg = self._config()
        return dict((cfg or {}).get("encoder") or {})

    def read_catalog(self) -> list[dict]:
        from .store import read_catalog

        return read_catalog(self.path)

    def location_info(self) -> dict:
        cfg = self._config() or {}
        size = sum(f.stat().st_size for f in self.path.rglob("*") if f.is_file()) if self.path.is_dir() else 0
        return {"engine": self.name, "index": str(self.path.resolve()), "size_bytes": size,
                "scale": cfg.get("scale", self.scale), "build": cfg.get("build", self.build),
                "encoder": cfg.get("encoder"), "complete": cfg.get("state") == "ready" if cfg else None,
                # --prune's setting (None: every term indexed) and whether two-phase has a forward index
                "static_pruning": cfg.get("static_pruning"), "forward_index": cfg.get("forward_index")}

    def version(self):
        """The commit points (segments_N: every add/delete commit makes a new one) and the config
        file's identity (properties are replaced with a rename): one directory listing."""
        from .store import CONFIG_FILE

        try:
            names = os.listdir(self.path)
        except OSError:
            return "absent"
        try:
            st = (self.path / CONFIG_FILE).stat()
            config = (st.st_ino, st.st_mtime_ns)
        except OSError:  # an index Pyserini built: its commits alone
            config = None
        return (tuple(sorted(n for n in names if n.startswith("segments_"))), config)

    def _has_config(self) -> bool:
        from .store import CONFIG_FILE

        return (self.path / CONFIG_FILE).is_file()

    @classmethod
    def export(cls, batches: Iterable[SparseBatch], out: Path, **options) -> dict:
        """`vsplade export --to jsonvector`: Pyserini JsonVectorCollection files."""
        from .jsonvector import DEFAULT_SHARDS, export

        return export(batches, Path(out), scale=float(options.get("scale") or 100.0),
                      shards=int(options.get("shards") or DEFAULT_SHARDS), vocab=options.get("vocab"))

