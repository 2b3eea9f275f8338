"""Parallel, bounded, retrying `_bulk` requests for one index.

- Chunks close at `chunk_docs` documents or `chunk_bytes` bytes, whichever comes first.
- At most `threads` requests run at once and at most `threads` more wait, so memory stays
  bounded by about 2 x threads x chunk_bytes whatever the corpus size.
- Whole requests that fail with 429/502/503/504, a timeout or a connection error are retried
  with exponential backoff and jitter; inside a finished request, items rejected with a
  retryable status are retried alone. Any other per-item error is collected as
  (doc id, reason): never raised one at a time, never dropped.
- After a connection error the index is checked before anything is re-sent: a server that
  came back without the index (or with a different one of the same name) stops the job with
  a clear error instead of letting `_bulk` auto-create a mapping-less index.
- Error texts pass through `Connection.redact`: no credentials in messages.
"""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

from vsplade.engines.base import EngineError

from .connection import describe_error

RETRY_STATUS = frozenset({429, 502, 503, 504})


class BulkError(EngineError):
    """The bulk job cannot go on (server gone for good, auth refused, index lost...)."""


@dataclass
class BulkStats:
    acked: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    requests: int = 0
    retries: int = 0
    rejected: int = 0  # 429 answers (whole requests, or documents inside one): the cluster pushed back
    bytes_sent: int = 0
    max_request_bytes: int = 0


def _is_connection_error(exc: Exception) -> bool:
    from opensearchpy.exceptions import ConnectionError as OSConnectionError

    return isinstance(exc, OSConnectionError)  # includes ConnectionTimeout and SSL errors


def _status(exc: Exception):
    return getattr(exc, "status_code", None)


def item_reason(result: dict) -> str:
    err = result.get("error")
    if isinstance(err, dict):
        reason = f"{err.get('type')}: {err.get('reason')}"
        cause = err.get("caused_by")
        if isinstance(cause, dict) and cause.get("reason") and cause.get("reason") not in reason:
            reason += f" ({cause.get('reason')})"
        return reason
    return str(err or f"status {result.get('status')}")


class BulkSender:
    def __init__(
        self,
        client,
        index: str,
        redact: Callable[[str], str] = str,
        threads: int = 2,
        chunk_docs: int = 500,
        chunk_bytes: int = 8 << 20,
        max_retries: int = 10,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        check_index: Callable[[], None] | None = None,
        on_ack: Callable[[int], None] | None = None,
    ):
        self.client = client
        self.index = index
        self.redact = redact
        self.threads = max(1, int(threads))
        self.chunk_docs = max(1, int(chunk_docs))
        self.chunk_bytes = max(1, int(chunk_bytes))
        self.max_retries = int(max_retries)
        self.backoff_initial = float(backoff_initial)
        self.backoff_max = float(backoff_max)
        self.check_index = check_index
        self.on_ack = on_ack
        self.stats = BulkStats()
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(2 * self.threads)
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="vsplade-bulk")
        self._futures: set[Future] = set()
        self._error: BaseException | None = None
        # set by any worker's connection error: until the index is verified again, no worker
        # sends (a fresh chunk after a restart would otherwise auto-create the index)
        self._suspect = threading.Event()
        self._fatal = threading.Event()
        self._ids: list[str] = []
        self._lines: list[bytes] = []
        self._bytes = 0

    # ---- producer side -------------------------------------------------------------
    def add(self, ids: list[str], lines: list[bytes]) -> None:
        self._raise_pending()
        for doc_id, line in zip(ids, lines):
            if self._lines and (len(self._lines) >= self.chunk_docs or self._bytes + len(line) > self.chunk_bytes):
                self._dispatch()
            self._ids.append(doc_id)
            self._lines.append(line)
            self._bytes += len(line)
        if len(self._lines) >= self.chunk_docs:
            self._dispatch()

    def flush(self) -> None:
        """Send what is buffered and wait for every request; raise the first fatal error."""
        if self._lines:
            self._dispatch()
        for fut in list(self._futures):
            fut.exception()  # wait; errors are recorded by the done callback
        self._raise_pending()

    def close(self, wait: bool = True) -> None:
        try:
            if wait:
                self.flush()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=not wait)

    def _raise_pending(self) -> None:
        if self._error is not None:
            err, self._error = self._error, None
            raise err

    def _dispatch(self) -> None:
        ids, lines = self._ids, self._lines
        self._ids, self._lines, self._bytes = [], [], 0
        while not self._slots.acquire(timeout=0.5):
            self._raise_pending()  # a dead worker must not leave the producer waiting forever
        fut = self._pool.submit(self._send, ids, lines)
        self._futures.add(fut)
        fut.add_done_callback(self._done)

    def _done(self, fut: Future) -> None:
        self._futures.discard(fut)
        self._slots.release()
        exc = fut.exception()
        if exc is not None and self._error is None:
            self._error = exc

    # ---- worker side ---------------------------------------------------------------
    def _sleep(self, attempt: int) -> None:
        delay = min(self.backoff_max, self.backoff_initial * 2 ** (attempt - 1))
        time.sleep(delay * random.uniform(0.5, 1.0))

    def _send(self, ids: list[str], lines: list[bytes]) -> None:
        from opensearchpy.exceptions import TransportError

        pending = list(range(len(ids)))
        attempt = 0
        verify_index = False
        last_problem = ""
        while pending:
            if attempt > self.max_retries:
                if verify_index:
                    raise BulkError(
                        f"bulk to index {self.index!r}: server unreachable after {self.max_retries} retries "
                        f"({last_problem}); re-run the same command to resume"
                    )
                with self._lock:
                    self.stats.failures.extend(
                        (ids[i], f"rejected after {self.max_retries} retries: {last_problem}") for i in pending
                    )
                return
            if attempt:
                self._sleep(attempt)
                with self._lock:
                    self.stats.retries += 1
            attempt += 1
            if self._fatal.is_set():
                raise BulkError(f"bulk to index {self.index!r} stopped after an earlier error")
            try:
                if (verify_index or self._suspect.is_set()) and self.check_index is not None:
                    try:
                        self.check_index()  # raises BulkError if the index is gone or replaced
                    except BulkError:
                        self._fatal.set()
                        raise
                    self._suspect.clear()
                verify_index = False
                body = b"".join(lines[i] for i in pending)
                with self._lock:
                    self.stats.requests += 1
                    self.stats.bytes_sent += len(body)
                    self.stats.max_request_bytes = max(self.stats.max_request_bytes, len(body))
                resp = self.client.bulk(body=body, index=self.index)
            except BulkError:
                raise
            except Exception as exc:  # noqa: BLE001 - classified below
                if _is_connection_error(exc):
                    verify_index = True
                    self._suspect.set()
                    last_problem = f"connection error: {type(exc).__name__}"
                    continue
                status = _status(exc)
                if isinstance(exc, TransportError) and status in RETRY_STATUS:
                    last_problem = f"HTTP {status}"
                    if status == 429:
                        with self._lock:
                            self.stats.rejected += 1
                    continue
                raise BulkError(self.redact(f"bulk to index {self.index!r} failed: {describe_error(exc)}")) from None
            retry: list[int] = []
            acked = rejected = 0
            failed: list[tuple[str, str]] = []
            items = resp.get("items", [])
            if len(items) != len(pending):
                raise BulkError(f"bulk to index {self.index!r}: {len(items)} results for {len(pending)} documents")
            for i, item in zip(pending, items):
                result = next(iter(item.values()))
                status = int(result.get("status", 500))
                if 200 <= status < 300:
                    acked += 1
                elif status in RETRY_STATUS:
                    retry.append(i)
                    rejected += status == 429
                    last_problem = f"HTTP {status} ({item_reason(result)})"
                else:
                    failed.append((ids[i], self.redact(item_reason(result))))
            with self._lock:
                self.stats.acked += acked
                self.stats.failures.extend(failed)
                self.stats.rejected += rejected
            if self.on_ack is not None and acked + len(failed):
                self.on_ack(acked + len(failed))
            pending = retry
