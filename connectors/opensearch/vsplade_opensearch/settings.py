"""OpenSearchSettings: the OpenSearch engine's options, typed and validated once.

`OpenSearchEngine(index=..., **options)` takes the options by these field names (the CLI's
flags, `--sparse-ann` for `sparse_ann`, and a few library-only ones); `from_options` refuses
a name it does not know, converts values, and refuses a bad combination with one line naming
the flags as the CLI spells them. The fields marked `cli` are what the CLI may pass
(`OpenSearchEngine.cli_options`). The VSPLADE_OPENSEARCH_* variables are read by
`connection()` only: they belong to this engine.

Index kinds (kinds/): `kind` names one for a new index; the CLI asks with the flags
`server_side_query` / `sparse_ann` instead. An existing index keeps the kind its _meta says.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field as dc_field, fields
from typing import Any, Mapping

from vsplade.engines.base import EngineError

from .connection import Connection
from .query import MODES as QUERY_MODES

DEFAULT_FIELD = "vector"
HYBRID_FUSIONS = ("auto", "pipeline", "client")

_INDEX_NAME = re.compile(r"^[a-z0-9][a-z0-9_\-+]{0,254}$")
_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _cli(default: Any = None, **kw) -> Any:
    """A field the command line may set (its flag: --name-with-dashes)."""
    return dc_field(default=default, metadata={"cli": True}, **kw)


def flag(option: str) -> str:
    return "--" + option.replace("_", "-")


def check_index_name(name: str | None) -> str:
    if not name:
        raise EngineError("the opensearch engine needs --index NAME (an index name)")
    if not _INDEX_NAME.match(name) or name in (".", ".."):
        raise EngineError(
            f"invalid OpenSearch index name {name!r}: lowercase letters, digits, '_', '-', '+'; "
            "not starting with '_', '-' or '+'"
        )
    return name


@dataclass(frozen=True)
class OpenSearchSettings:
    index: str
    # -- the cluster (connection.Connection): nodes, auth, TLS
    url: str | None = _cli()  # one node or several of one cluster, comma-separated
    user: str | None = _cli()
    password: str | None = _cli(repr=False)
    api_key: str | None = _cli(repr=False)
    ca_certs: str | None = _cli()
    insecure: bool = _cli(False)
    client_cert: str | None = _cli()  # TLS client certificate (PEM); its CN is the user
    client_key: str | None = _cli()  # its private key (PEM)
    aws_region: str | None = _cli()  # Amazon OpenSearch Service: sign with AWS SigV4 for this region
    aws_service: str | None = _cli()  # "es" (managed domains, the default) or "aoss" (Serverless)
    headers: Mapping[str, str] = dc_field(default_factory=dict, repr=False)
    timeout: float = 60.0
    compress: bool = False
    # -- a new index's layout
    shards: int | None = _cli(1)
    replicas: int | None = _cli(None)  # None: the cluster's default
    field: str | None = None  # the vector field; None: "vector" (searches: what the index _meta says)
    kind: str | None = None  # an index kind by name (kinds.kind_names()); the CLI uses the two flags below
    server_side_query: bool = _cli(False)  # kind "server_side"; when searching: plain text, the cluster encodes it
    query_model: str | None = _cli()  # server_side: the model whose query side names the features
    model_id: str | None = _cli()  # server_side searches: the ml-commons model id
    sparse_ann: bool = _cli(False)  # kind "sparse_ann"
    ann_threshold: int | None = _cli()  # sparse_ann: SEISMIC approximate_threshold
    ann_ceiling: float | None = _cli()  # sparse_ann: quantization_ceiling_ingest
    vector_source: bool | None = None  # keep page vectors in _source (None: the kind's default, IndexKind)
    # -- writing
    retry_for: float | None = _cli()  # None: the writer's default (bulk.DEFAULT_RETRY_FOR)
    threads: int = 2
    chunk_docs: int = 500
    chunk_bytes: int = 8 << 20
    max_retries: int | None = None
    backoff_initial: float = 0.5
    backoff_max: float = 10.0
    snippet_chars: int = 500
    progress: bool | None = None
    # -- searching
    query_mode: str = "rank_feature"
    max_clauses: int = 1024
    # hybrid search (hybrid.py): "auto" fuses RRF in a search pipeline where the cluster has
    # neural-search 2.19+ and the index one shard, min-max and everything else in the client;
    # "pipeline" sends both modes there (refused without neural-search 2.19+); "client" never uses it
    hybrid_fusion: str = "auto"

    @classmethod
    def cli_options(cls) -> frozenset[str]:
        return frozenset(f.name for f in fields(cls) if f.metadata.get("cli"))

    @classmethod
    def from_options(cls, index: str | None, options: Mapping[str, Any]) -> "OpenSearchSettings":
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(k for k in options if k not in known or k == "index")
        if unknown:
            raise EngineError(f"the opensearch engine has no option {', '.join(map(repr, unknown))} "
                              f"(its options: {', '.join(sorted(k for k in known if k != 'index'))})")
        given = {k: v for k, v in options.items() if v is not None or k in ("shards", "replicas", "progress")}
        for name, value in list(given.items()):
            given[name] = _convert(name, known[name].type, value)
        return cls(index=check_index_name(index), **given)

    def __post_init__(self) -> None:
        if self.field is not None and not _FIELD_NAME.match(self.field):
            raise EngineError(f"--field must be a plain field name, got {self.field!r}")
        if self.query_mode not in QUERY_MODES:
            raise EngineError(f"query_mode must be one of {', '.join(QUERY_MODES)}, not {self.query_mode!r}")
        if self.hybrid_fusion not in HYBRID_FUSIONS:
            raise EngineError(f"hybrid_fusion must be one of {', '.join(HYBRID_FUSIONS)}, not {self.hybrid_fusion!r}")
        if self.sparse_ann and self.server_side_query:
            raise EngineError("--sparse-ann and --server-side-query do not combine (a sparse_vector index is "
                              "keyed by token ids, a server-side query index by the ml-commons model's names)")
        if not self.sparse_ann and (self.ann_threshold is not None or self.ann_ceiling is not None):
            raise EngineError("--ann-threshold and --ann-ceiling apply to --sparse-ann")
        if self.model_id and not self.server_side_query:
            raise EngineError("--model-id applies to --server-side-query")
        if self.kind is not None:
            from .kinds import kind_named

            wanted = kind_named(self.kind)  # EngineError naming the kinds there are
            asked = self._flag_kind()
            if asked is not None and asked != wanted.name:
                raise EngineError(f"kind={self.kind!r} and {flag(self._flag_name())} ask for different index kinds")
        if self.sparse_ann:
            from .sparse_ann import ann_params

            try:
                ann_params(self.ann_threshold, self.ann_ceiling)
            except (TypeError, ValueError) as e:
                raise EngineError(str(e)) from None

    def _flag_name(self) -> str:
        return "server_side_query" if self.server_side_query else "sparse_ann"

    def _flag_kind(self) -> str | None:
        if self.server_side_query:
            return "server_side"
        if self.sparse_ann:
            return "sparse_ann"
        return None

    @property
    def wanted_kind(self) -> str | None:
        """The index kind these settings ask for (None: none asked; a new index gets the
        default, an existing one keeps its own)."""
        return self.kind or self._flag_kind()

    @property
    def vector_field(self) -> str:
        return self.field or DEFAULT_FIELD

    def connection(self) -> Connection:
        """The cluster connection (falls back to the VSPLADE_OPENSEARCH_* variables)."""
        return Connection.from_options({
            "url": self.url, "user": self.user, "password": self.password, "api_key": self.api_key,
            "headers": dict(self.headers), "ca_certs": self.ca_certs, "insecure": self.insecure,
            "client_cert": self.client_cert, "client_key": self.client_key,
            "aws_region": self.aws_region, "aws_service": self.aws_service,
            "timeout": self.timeout, "threads": self.threads, "compress": self.compress,
        })

    def writer_options(self) -> dict:
        """Keyword arguments of OpenSearchWriter (its own defaults where unset)."""
        out = {k: getattr(self, k) for k in ("shards", "replicas", "threads", "chunk_docs", "chunk_bytes",
                                               "max_retries", "backoff_initial", "backoff_max", "snippet_chars",
                                               "progress", "vector_source")}
        if self.retry_for is not None:
            out["retry_for"] = self.retry_for
        return out


_INTS = {"int", "int | None"}
_FLOATS = {"float", "float | None"}
_BOOLS = {"bool", "bool | None"}


def _convert(name: str, annotation: Any, value: Any) -> Any:
    """Options arrive from the CLI already typed and from library users as they wrote them
    ("2", 2.0): numbers are converted once here, with an error naming the flag."""
    kind = str(annotation)
    if value is None:
        return None
    try:
        if kind in _INTS:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if kind in _FLOATS:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
    except (TypeError, ValueError):
        raise EngineError(f"{flag(name)}: expected a number, got {value!r}") from None
    if kind in _BOOLS:
        return bool(value)
    return value
