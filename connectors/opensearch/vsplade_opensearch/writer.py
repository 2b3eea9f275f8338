"""OpenSearchWriter: the IndexWriter that streams SparseBatches into one index.

Opening: create the index (mapping.py) or check that the existing one was built with the
same encoder / vocabulary (IndexMismatchError otherwise, unless `recreate`). While writing,
`refresh_interval` is -1 (no refresh work during the bulk); the value to restore is kept in
the index `_meta` so that a crashed job's successor restores the user's setting, not -1.
Closing: flush, restore refresh, refresh once, and check that the index is still the one
opened (a server that lost it and had it auto-created by `_bulk` is reported, not hidden).

Resume: `done_ids()` lists the ids already in the index (after a refresh, so documents of a
crashed run that were never refreshed count). Re-sending a page overwrites it by id.

Patience (`retry_for`, seconds, default 2 minutes): the bulk (bulk.py), the resume scans and
the requests of close() ride out a node restart or a shard move by retrying connection errors,
429/502/503/504 and scans with failed shards, with backoff, until nothing has worked for
`retry_for` s; then one BulkError line says what failed and that a re-run resumes. abort()
never waits on the cluster for more than a few seconds.
"""

from __future__ import annotations

import logging
import random
import sys
import time
from typing import Any, Mapping

from vsplade.engines.base import EngineError, IndexMismatchError, IndexSummary, IndexWriter
from vsplade.sparse import SparseBatch
from vsplade.vocab import Vocabulary

from .bulk import DEFAULT_RETRY_FOR, RETRY_STATUS, BulkError, BulkSender
from .connection import Connection, check_reachable, describe_error
from .kinds import IndexKind, default_kind
from .query import fetch_clause, hit_fields
from .mapping import (
    COLLECTION_KEY,
    LATER_FIELDS,
    METADATA_FIELDS,
    META_KEY,
    PENDING_REFRESH_KEY,
    UNSET,
    check_compatible,
    has_text_similarity,
    index_body,
    mapping_of,
    stored_meta,
    text_field_on,
)

log = logging.getLogger(__name__)
SCAN_PAGE = 5000
CATALOG_FIELDS = ("id", "source", "page", "path", "sha256")  # all with doc values: query.fetch_clause
ABORT_TIMEOUT = 5.0  # seconds per request while aborting: the job already failed


class OpenSearchWriter(IndexWriter):
    def __init__(
        self,
        conn: Connection,
        index: str,
        info: Mapping[str, Any],
        recreate: bool = False,
        field: str = "vector",
        shards: int | None = 1,
        replicas: int | None = None,
        threads: int = 2,
        chunk_docs: int = 500,
        chunk_bytes: int = 8 << 20,
        retry_for: float = DEFAULT_RETRY_FOR,
        max_retries: int | None = None,
        backoff_initial: float = 0.5,
        backoff_max: float = 10.0,
        snippet_chars: int = 500,
        progress: bool | None = None,
        vocab: Vocabulary | None = None,
        client=None,
        kind: IndexKind | None = None,
        vector_source: bool | None = None,
    ):
        self.conn = conn
        # how the index lays out vectors (kinds/): the engine chose it, from the settings for a
        # new index or from the _meta of an existing one
        self.kind = kind or default_kind()()
        self.index = index
        self.info = dict(info)
        self.field = field
        self.client = client or conn.client()
        self.retry_for = float(retry_for)
        self.backoff_initial = float(backoff_initial)
        self.backoff_max = float(backoff_max)
        self.summary = IndexSummary()
        self._closed = False
        self._refresh_disabled = False
        self.vector_source = vector_source  # a new index only: mapping.index_body
        self._call(self._open, recreate, shards, replicas)
        self.kind = self.kind.joined(self.meta)  # an existing index's own parameters decide
        self.builder = self.kind.document_builder(None, self.info, vocab=vocab, field=field, snippet_chars=snippet_chars)
        # a collection built with --text-field keeps each page's whole text (hybrid search);
        # set again by set_properties, which the pipeline calls before the first add()
        self.builder.head.full_text = text_field_on(self.meta)
        self._bar = _progress_bar(index, progress)
        self.sender = BulkSender(
            self.client,
            index,
            redact=conn.redact,
            threads=threads,
            chunk_docs=chunk_docs,
            chunk_bytes=chunk_bytes,
            retry_for=retry_for,
            max_retries=max_retries,
            backoff_initial=backoff_initial,
            backoff_max=backoff_max,
            request_timeout=conn.timeout,
            check_index=self._check_same_index,
            on_ack=self._bar.update,
        )

    # ---- helpers -------------------------------------------------------------------
    def _call(self, fn, *args):
        """Run a cluster call, turning client errors into EngineError with secrets removed."""
        from opensearchpy.exceptions import OpenSearchException

        try:
            return fn(*args)
        except (EngineError, IndexMismatchError):
            raise
        except OpenSearchException as e:
            raise EngineError(self.conn.redact(f"opensearch {self.conn.url} index {self.index!r}: {describe_error(e)}")) from None

    def _patient(self, what: str, fn):
        """fn(timeout) until it works, retrying what a restarting node or moving shards answer
        (connection errors, 429/502/503/504) with backoff for at most `retry_for` s; each
        request's timeout is cut to what is left. Other errors pass through."""
        from opensearchpy.exceptions import ConnectionError as OSConnectionError, TransportError

        deadline = None
        attempt = 0
        while True:
            left = self.retry_for if deadline is None else deadline - time.monotonic()
            try:
                return fn(max(1.0, min(self.conn.timeout, left)))
            except (OSConnectionError, TransportError, _PartialScan) as e:
                if not isinstance(e, (OSConnectionError, _PartialScan)) and e.status_code not in RETRY_STATUS:
                    if e.status_code != 404 or self._cluster_ready():
                        raise
                now = time.monotonic()
                deadline = deadline if deadline is not None else now + self.retry_for
                if now >= deadline:
                    reason = str(e) if isinstance(e, _PartialScan) else describe_error(e)
                    raise BulkError(self.conn.redact(
                        f"opensearch {self.conn.url} index {self.index!r}: {what} failed for {self.retry_for:.0f} s "
                        f"({reason}); re-run the same command to resume (--retry-for sets the patience)")) from None
                attempt += 1
                delay = min(self.backoff_max, self.backoff_initial * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)
                time.sleep(min(delay, max(0.0, deadline - now)))

    def _uuid(self, timeout: float | None = None) -> str:
        kw = {} if timeout is None else {"request_timeout": timeout}
        settings = self.client.indices.get_settings(index=self.index, **kw)
        (entry,) = settings.values()
        return entry["settings"]["index"].get("uuid", "")

    def _refresh_setting(self) -> str | None:
        settings = self.client.indices.get_settings(index=self.index)
        (entry,) = settings.values()
        return entry["settings"]["index"].get("refresh_interval")

    def _put_meta(self, meta: dict) -> None:
        self.client.indices.put_mapping(index=self.index, body={"_meta": {META_KEY: meta}})

    def _open(self, recreate: bool, shards, replicas) -> None:
        from opensearchpy.exceptions import NotFoundError, RequestError

        c = self.client
        check_reachable(self.conn, c)
        if recreate and c.indices.exists(index=self.index):
            c.indices.delete(index=self.index)
        try:
            mapping = mapping_of(c.indices.get_mapping(index=self.index))
        except NotFoundError:
            mapping = None
        if mapping is None:
            body = index_body(self.info, self.field, shards, replicas, refresh_interval="-1", kind=self.kind,
                              vector_source=self.vector_source)
            body["mappings"]["_meta"][META_KEY][PENDING_REFRESH_KEY] = UNSET
            try:
                c.indices.create(index=self.index, body=body)
                self.meta = stored_meta(body["mappings"])
                self._text_scored = True
            except RequestError as e:
                if e.error != "resource_already_exists_exception":
                    raise
                # another writer created it between our look and our create: join it as an
                # existing index (same checks as below)
                mapping = mapping_of(c.indices.get_mapping(index=self.index))
        if mapping is not None:
            self.meta = check_compatible(self.index, mapping, self.info, self.field, self.kind)
            self._text_scored = has_text_similarity(mapping)
            missing = [f for f in LATER_FIELDS if f not in (mapping.get("properties") or {})]
            if missing:  # an index from before source identity: let its new pages carry it
                c.indices.put_mapping(index=self.index, body={"properties": {f: METADATA_FIELDS[f] for f in missing}})
            if self.meta.get(PENDING_REFRESH_KEY) is None:  # else: a crashed job left it; keep its value
                current = self._refresh_setting()
                self.meta[PENDING_REFRESH_KEY] = UNSET if current is None else current
                self._put_meta(self.meta)
            c.indices.put_settings(index=self.index, body={"index": {"refresh_interval": "-1"}})
        self._refresh_disabled = True
        self._index_uuid = self._uuid()

    def _restore_refresh(self, timeout: float | None = None) -> None:
        if not self._refresh_disabled:
            return
        kw = {} if timeout is None else {"request_timeout": timeout}
        restore = self.meta.get(PENDING_REFRESH_KEY) or UNSET
        value = None if restore == UNSET else restore  # None resets to the cluster default
        self.client.indices.put_settings(index=self.index, body={"index": {"refresh_interval": value}}, **kw)
        # set to null rather than removed: some servers merge _meta updates key by key
        self.meta[PENDING_REFRESH_KEY] = None
        self.client.indices.put_mapping(index=self.index, body={"_meta": {META_KEY: self.meta}}, **kw)
        self._refresh_disabled = False

    def _cluster_ready(self) -> bool:
        """False while the node that answered has not recovered the cluster state (a node just
        restarted answers HTTP before it has joined or read its state from disk, and says
        404 for every index meanwhile): such a 404 is retried, never taken as a lost index."""
        try:
            state = self.client.cluster.state(metric="blocks", params={"local": "true"},
                                              request_timeout=min(self.conn.timeout, 10.0))
        except Exception:  # noqa: BLE001 - cannot tell: assume not ready, the caller retries within its budget
            return False
        return not (state.get("blocks") or {}).get("global")

    def _check_same_index(self, timeout: float | None = None) -> None:
        from opensearchpy.exceptions import NotFoundError, TransportError

        try:
            uuid = self._uuid(timeout)
        except NotFoundError:
            if not self._cluster_ready():
                raise TransportError(503, "cluster_state_not_recovered", {}) from None  # retried
            raise BulkError(
                f"index {self.index!r} disappeared during the bulk (server restarted without its data?); "
                "re-run the same command to rebuild it"
            ) from None
        if uuid != self._index_uuid:
            raise BulkError(
                f"index {self.index!r} was replaced during the bulk (uuid {self._index_uuid} -> {uuid}); "
                "re-run with --recreate"
            )

    # ---- IndexWriter ---------------------------------------------------------------
    supports_lifecycle = True

    def done_ids(self) -> set[str]:
        return self._call(self._done_ids)

    def catalog(self) -> list[dict]:
        return self._call(lambda: scan_catalog(self.client, self.index, self._patient))

    def commit(self) -> None:
        """Everything sent so far acknowledged by the cluster (durable in its translog) and
        refreshed (visible to searches)."""
        self._call(self.sender.flush)
        self._call(lambda: self.client.indices.refresh(index=self.index))

    def delete(self, ids) -> int:
        """Bulk delete by id after the pending pages are acknowledged; a re-run repeats it
        harmlessly (deleting a missing id is a no-op)."""
        self.commit()
        ids = list(dict.fromkeys(ids))
        removed = 0
        for start in range(0, len(ids), 1000):
            part = ids[start:start + 1000]
            body = "".join(f'{{"delete":{{"_id":{_json(i)}}}}}\n' for i in part)
            resp = self._call(lambda: self.client.bulk(index=self.index, body=body))
            for item in resp.get("items", []):
                result = item.get("delete", {})
                if result.get("result") == "deleted":
                    removed += 1
                elif result.get("status") not in (200, 404):
                    raise EngineError(self.conn.redact(
                        f"index {self.index!r}: deleting page {result.get('_id')!r} failed: {result.get('error')}"))
        self._call(lambda: self.client.indices.refresh(index=self.index))
        return removed

    def set_properties(self, properties) -> None:
        if properties.get("text_field") and not self._text_scored:
            # its `text` field was mapped before hybrid search, with the cluster's default BM25
            # (k1=1.2, b=0.75): a field's similarity cannot change, so text scores would differ
            # from every other engine's
            raise IndexMismatchError(
                f"index {self.index!r} was created before --text-field existed (its text field is not scored with "
                "BM25 k1=0.9, b=0.4); rebuild it with `vsplade index --text-field --recreate ...`")
        self.meta[COLLECTION_KEY] = dict(properties)
        self.builder.head.full_text = text_field_on(self.meta)
        self._call(self._put_meta, self.meta)

    def _done_ids(self) -> set[str]:
        self._patient("refresh", lambda t: self.client.indices.refresh(index=self.index, request_timeout=t))
        done: set[str] = set()
        after = None
        while True:
            body: dict[str, Any] = {
                "size": SCAN_PAGE,
                **fetch_clause(["id"]),  # doc values, no stored field (each `_id` read costs a stored-field block)
                "sort": [{"id": "asc"}],
                "query": {"match_all": {}},
            }
            if after is not None:
                body["search_after"] = after
            hits = self._patient("listing the pages already indexed",
                                 lambda t: _complete_hits(self.client.search(index=self.index, body=body, request_timeout=t)))
            done.update(hit_fields(h)["id"] for h in hits)
            if len(hits) < SCAN_PAGE:
                return done
            after = hits[-1]["sort"]

    def add(self, batch: SparseBatch) -> None:
        if self._closed:
            raise EngineError("writer is closed")
        if not len(batch):
            return
        # the one validation every writer shares (vsplade.sparse): a bad page fails alone
        batch, invalid = batch.split_valid()
        self.summary.failures.extend(invalid)
        if invalid:
            self._bar.update(len(invalid))
        if not len(batch):
            return
        built = self.builder.build(batch)
        self.summary.empty += built.empty
        self.summary.dropped_weights += built.dropped
        if getattr(built, "clipped", 0):
            self.summary.extra["ann_clipped_weights"] = self.summary.extra.get("ann_clipped_weights", 0) + built.clipped
        self._call(self.sender.add, built.ids, built.lines)

    def close(self) -> IndexSummary:
        if self._closed:
            return self.summary
        try:
            self._call(self.sender.close)
            # the bulk is acknowledged: a node restarting now must not fail the job
            self._call(self._patient, "checking the index", self._check_same_index)
            self._call(self._patient, "restoring refresh_interval", self._restore_refresh)
            self._call(self._patient, "refresh", lambda t: self.client.indices.refresh(index=self.index, request_timeout=t))
            count = self._call(self._patient, "counting pages",
                               lambda t: self.client.count(index=self.index, request_timeout=t)["count"])
        except BaseException:
            self.sender.close(wait=False)
            raise
        finally:
            self._closed = True
            self._bar.close()
        stats = self.sender.stats
        self.summary.indexed += stats.acked
        self.summary.failures.extend(stats.failures)
        self.summary.extra.update(
            index=self.index, docs_in_index=count, bulk_requests=stats.requests, bulk_retries=stats.retries,
            bulk_rejected=stats.rejected,
            bulk_bytes=stats.bytes_sent, max_request_bytes=stats.max_request_bytes,
        )
        return self.summary

    def abort(self) -> None:
        """Stop sending; what the cluster acknowledged stays for a resume. Refresh is
        restored when the cluster is reachable (else the next run restores it)."""
        if self._closed:
            return
        self._closed = True
        self._bar.close()
        try:
            self.sender.close(wait=False)  # bounded: wakes retrying workers, waits STOP_GRACE s at most
        except Exception:  # noqa: BLE001 - aborting after another error; keep that one
            pass
        try:
            self._restore_refresh(timeout=min(self.conn.timeout, ABORT_TIMEOUT))
        except Exception as e:  # noqa: BLE001
            log.warning("could not restore refresh_interval on %r: %s", self.index, self.conn.redact(str(e)))


def _json(value) -> str:
    import json

    return json.dumps(value)


class _PartialScan(Exception):
    """A scan page answered by only some shards (a node restarting): retried, never used."""


def _complete_hits(resp: dict) -> list[dict]:
    shards = resp.get("_shards") or {}
    if shards.get("failed") or resp.get("timed_out"):
        raise _PartialScan(f"{shards.get('failed', 0)} of {shards.get('total', '?')} shards did not answer")
    return resp["hits"]["hits"]


def _once(what: str, fn):
    try:
        return fn(None)
    except _PartialScan as e:
        raise EngineError(f"{what}: {e}; try again once the cluster is green") from None


def scan_catalog(client, index: str, patient=_once) -> list[dict]:
    """Every page's metadata (id, source, page, path, sha256), by search_after over id; a page
    that some shards did not answer is asked again (`patient`: OpenSearchWriter._patient),
    so a node restarting never makes pages look missing."""
    from opensearchpy.exceptions import AuthorizationException

    try:
        patient("refresh", lambda t: client.indices.refresh(index=index, **_timeout(t)))
    except AuthorizationException:
        pass  # a read-only user (no indices:admin/refresh) lists what the index's own refresh shows
    rows: list[dict] = []
    after = None
    while True:
        body: dict[str, Any] = {"size": SCAN_PAGE, **fetch_clause(CATALOG_FIELDS),
                                "sort": [{"id": "asc"}], "query": {"match_all": {}}}
        if after is not None:
            body["search_after"] = after
        hits = patient("listing the index", lambda t: _complete_hits(client.search(index=index, body=body, **_timeout(t))))
        for h in hits:
            src = hit_fields(h)
            rows.append({"id": src["id"], **{k: src.get(k) for k in CATALOG_FIELDS[1:]}})
        if len(hits) < SCAN_PAGE:
            return rows
        after = hits[-1]["sort"]


def _timeout(t: float | None) -> dict:
    return {} if t is None else {"request_timeout": t}


def _progress_bar(index: str, progress: bool | None):
    from tqdm.auto import tqdm

    return tqdm(
        desc=f"opensearch {index}",
        unit="page",
        dynamic_ncols=True,
        file=sys.stderr,
        disable=False if progress else (None if progress is None else True),
    )
