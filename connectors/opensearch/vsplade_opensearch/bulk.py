"""Parallel, bounded, retrying `_bulk` requests for one index.

- Chunks close at `chunk_docs` documents or `chunk_bytes` bytes, whichever comes first.
- At most `threads` requests run at once and at most `threads` more wait, so memory stays
  bounded by about 2 x threads x chunk_bytes whatever the corpus size.
- Whole requests that fail with 429/502/503/504, a timeout or a connection error are retried
  with exponential backoff and jitter; inside a finished request, items rejected with a
  retryable status are retried alone. Any other per-item error is collected as
  (doc id, reason): never raised one at a time, never dropped.
- Patience is a wall-clock budget, `retry_for` seconds (default 2 minutes), not a count: a
  restarted node takes 20-40 s to come back and a cluster moving shards answers 503 for a
  while. A chunk gives up when it has made no progress for `retry_for` s (every retry's
  request timeout is cut to what is left), and the job then stops with one BulkError line
  that says a re-run resumes. `max_retries` is an optional extra cap for library callers.
- Workers are daemon threads that sleep on an event: `close(wait=False)` (the writer's
  abort) wakes them, drops what is queued and waits at most `STOP_GRACE` s, so a process
  never hangs joining a worker that is still retrying; a request still on the wire is
  abandoned (its pages are not counted; a re-run re-sends them).
- After a connection error the index is checked before anything is re-sent: a server that
  came back without the index (or with a different one of the same name) stops the job with
  a clear error instead of letting `_bulk` auto-create a mapping-less index.
- Error texts pass through `Connection.redact`: no credentials in messages.
"""

from __future__ import annotations

import queue
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from vsplade.engines.base import EngineError

from .connection import describe_error

RETRY_STATUS = frozenset({429, 502, 503, 504})
DEFAULT_RETRY_FOR = 120.0  # seconds without progress before a chunk gives up
STOP_GRACE = 3.0  # seconds close(wait=False) waits for workers before abandoning them


class BulkError(EngineError):
    """The bulk job cannot go on (server gone for good, auth refused, index lost...)."""

    # a runtime failure that a re-run resumes (README exit codes), not a usage error
    exit_code = 1


class _Stopped(Exception):
    """Internal: the sender was aborted or another chunk failed; this chunk stops quietly."""


@dataclass
class BulkStats:
    acked: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    requests: int = 0
    retries: int = 0
    rejected: int = 0  # 429 answers (whole requests, or documents inside one): the cluster pushed back
    bytes_sent: int = 0
    max_request_bytes: int = 0


# What a bulk answer needs to carry back: each item's status and error, not its _id, _version,
# _seq_no, _shards... (~150 bytes an item the client would parse for nothing, 500 items a request).
BULK_FILTER = "errors,items.*.status,items.*.error"


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
        retry_for: float = DEFAULT_RETRY_FOR,
        max_retries: int | None = None,
        backoff_initial: float = 0.5,
        backoff_max: float = 10.0,
        request_timeout: float = 60.0,
        check_index: Callable[[float], None] | None = None,
        on_ack: Callable[[int], None] | None = None,
    ):
        self.client = client
        self.index = index
        self.redact = redact
        self.threads = max(1, int(threads))
        self.chunk_docs = max(1, int(chunk_docs))
        self.chunk_bytes = max(1, int(chunk_bytes))
        self.retry_for = max(0.0, float(retry_for))
        self.max_retries = None if max_retries is None else int(max_retries)
        self.backoff_initial = float(backoff_initial)
        self.backoff_max = float(backoff_max)
        self.request_timeout = float(request_timeout)
        self.check_index = check_index
        self.on_ack = on_ack
        self.stats = BulkStats()
        self._lock = threading.Lock()
        self._cv = threading.Condition()
        self._inflight = 0  # chunks queued or being sent
        self._last_event = time.monotonic()  # last chunk finished or answered: flush's watchdog
        self._jobs: queue.Queue = queue.Queue()
        self._error: BaseException | None = None
        self._stop = threading.Event()  # abort, or a chunk failed: every worker stops sending
        self._closed = False  # after close/abort nothing more is queued (no worker would take it)
        # set by any worker's connection error: until the index is verified again, no worker
        # sends (a fresh chunk after a restart would otherwise auto-create the index)
        self._suspect = threading.Event()
        self._ids: list[str] = []
        self._lines: list[bytes] = []
        self._bytes = 0
        # daemon threads: a worker stuck in a request can never keep the process alive
        self._workers = [threading.Thread(target=self._work, name=f"vsplade-bulk-{i}", daemon=True)
                         for i in range(self.threads)]
        for t in self._workers:
            t.start()

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
        self._wait_below(1)
        self._raise_pending()

    def close(self, wait: bool = True) -> None:
        """wait=True: flush, then stop the idle workers. wait=False (abort): drop what is
        queued, wake sleeping workers, wait at most STOP_GRACE s, never raise."""
        if wait:
            try:
                self.flush()
            except BaseException:
                self._shutdown()
                raise
        self._shutdown()

    def _shutdown(self) -> None:
        self._closed = True
        self._stop.set()
        while True:  # queued chunks are never sent: the index keeps what was acknowledged
            try:
                if self._jobs.get_nowait() is not None:
                    self._finished()
            except queue.Empty:
                break
        for _ in self._workers:
            self._jobs.put(None)
        deadline = time.monotonic() + STOP_GRACE
        for t in self._workers:
            t.join(max(0.0, deadline - time.monotonic()))

    def _raise_pending(self) -> None:
        # sticky: after a failed chunk nothing more is sent, so a later flush/close must not
        # report success
        if self._error is not None:
            raise self._error
        if self._closed:
            raise BulkError(f"bulk to index {self.index!r}: the writer was stopped; re-run the same command to resume")

    def _wait_below(self, limit: int) -> None:
        """Until fewer than `limit` chunks are in flight; returns early on an error. The
        watchdog is a backstop: each chunk is bounded by its request timeout + retry_for."""
        patience = self.request_timeout + self.retry_for + 30.0
        with self._cv:
            while self._inflight >= limit and self._error is None and not self._closed:
                if time.monotonic() - self._last_event > patience:
                    self._stop.set()
                    raise BulkError(f"bulk to index {self.index!r}: no answer from the cluster for {patience:.0f} s; "
                                    "re-run the same command to resume")
                self._cv.wait(0.5)

    def _dispatch(self) -> None:
        ids, lines = self._ids, self._lines
        self._ids, self._lines, self._bytes = [], [], 0
        self._wait_below(2 * self.threads)  # bounded memory: threads sending, as many waiting
        self._raise_pending()
        with self._cv:
            self._inflight += 1
            self._last_event = time.monotonic()
        self._jobs.put((ids, lines))

    def _finished(self, error: BaseException | None = None) -> None:
        with self._cv:
            self._inflight -= 1
            self._last_event = time.monotonic()
            if error is not None and self._error is None:
                self._error = error
                self._stop.set()  # the job stops: no other chunk keeps retrying in vain
            self._cv.notify_all()

    # ---- worker side ---------------------------------------------------------------
    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            error: BaseException | None = None
            try:
                if not self._stop.is_set():
                    self._send(*job)
            except _Stopped:
                pass
            except BaseException as exc:  # noqa: BLE001 - handed to the producer, never printed here
                error = exc if isinstance(exc, BulkError) else BulkError(
                    self.redact(f"bulk to index {self.index!r} failed: {describe_error(exc)}"))
            self._finished(error)

    def _backoff(self, attempt: int) -> float:
        delay = min(self.backoff_max, self.backoff_initial * 2 ** (attempt - 1))
        return delay * random.uniform(0.5, 1.0)

    def _give_up(self, connection: bool, last_problem: str, by_count: bool) -> BulkError:
        patience = f"after {self.max_retries} retries" if by_count else f"for {self.retry_for:.0f} s"
        what = "server unreachable" if connection else "the cluster kept refusing pages"
        return BulkError(f"bulk to index {self.index!r}: {what} {patience} ({last_problem}); "
                         "re-run the same command to resume (--retry-for sets the patience)")

    def _send(self, ids: list[str], lines: list[bytes]) -> None:
        from opensearchpy.exceptions import TransportError

        pending = list(range(len(ids)))
        attempt = 0
        verify_index = False
        last_problem = ""
        failing_since: float | None = None  # when this chunk last stopped making progress
        while pending:
            timeout = self.request_timeout
            if attempt:
                now = time.monotonic()
                left = float("inf") if failing_since is None else failing_since + self.retry_for - now
                by_count = self.max_retries is not None and attempt > self.max_retries
                if left <= 0 or by_count:
                    raise self._give_up(verify_index, last_problem, by_count)
                if self._stop.wait(min(self._backoff(attempt), left)):  # abort wakes it at once
                    raise _Stopped
                with self._lock:
                    self.stats.retries += 1
                if failing_since is not None:  # a retry never waits past the budget
                    timeout = max(1.0, min(self.request_timeout, failing_since + self.retry_for - time.monotonic()))
            attempt += 1
            if self._stop.is_set():
                raise _Stopped
            try:
                if (verify_index or self._suspect.is_set()) and self.check_index is not None:
                    self.check_index(timeout)  # raises BulkError if the index is gone or replaced
                    self._suspect.clear()
                verify_index = False
                body = b"".join(lines[i] for i in pending)
                with self._lock:
                    self.stats.requests += 1
                    self.stats.bytes_sent += len(body)
                    self.stats.max_request_bytes = max(self.stats.max_request_bytes, len(body))
                resp = self.client.bulk(body=body, index=self.index, request_timeout=timeout, filter_path=BULK_FILTER)
            except BulkError:
                raise
            except Exception as exc:  # noqa: BLE001 - classified below
                status = _status(exc)
                if _is_connection_error(exc):
                    verify_index = True
                    self._suspect.set()
                    last_problem = f"connection error: {type(exc).__name__}"
                elif isinstance(exc, TransportError) and status in RETRY_STATUS:
                    last_problem = self.redact(describe_error(exc))
                    if status == 429:
                        with self._lock:
                            self.stats.rejected += 1
                else:
                    raise BulkError(self.redact(f"bulk to index {self.index!r} failed: {describe_error(exc)}")) from None
                failing_since = failing_since if failing_since is not None else time.monotonic()
                continue
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
                    last_problem = self.redact(f"HTTP {status} ({item_reason(result)})")
                else:
                    failed.append((ids[i], self.redact(item_reason(result))))
            with self._lock:
                self.stats.acked += acked
                self.stats.failures.extend(failed)
                self.stats.rejected += rejected
            with self._cv:
                self._last_event = time.monotonic()
            if self.on_ack is not None and acked + len(failed):
                self.on_ack(acked + len(failed))
            if acked + len(failed):
                failing_since, attempt = None, 1  # progress: the budget starts again for what is left
            elif retry and failing_since is None:
                failing_since = time.monotonic()
            pending = retry
