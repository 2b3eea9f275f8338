"""Shared by the concurrency tests (tests/*/test_concurrency_*.py; imported by name): the same
searches through `vsplade.Collection` from one thread and from many at once, compared result
by result.

A case is (query text, search keywords): explain on and off, source/page filters, k=100 and
k=10. `reference()` runs every case once, single-threaded, on a Collection of its own;
`hammer()` then runs every case `rounds` times from `threads` threads that start together
(a barrier) on ONE fresh Collection whose searcher and query encoder are not built yet, so the
lazy construction is raced as well, and records every result that differs from the reference
and every exception.

Run as a script (``python tests/concurrency_support.py --engine lucene --index IX ...``) it
does both in a process of its own and prints one JSON line: a crash inside the JVM (SIGSEGV)
then fails the calling test through the exit status instead of killing pytest.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Callable

if __name__ == "__main__":  # run as a script: tests/ on the path for collection_support
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from collection_support import FILTERS, QUERIES  # noqa: E402

THREADS = 8
ROUNDS = 3
TEXTS = QUERIES + ["debian package management", "financial report revenue", "install"]


def cases() -> list[tuple[str, dict]]:
    """Every text with explain off and on, k=100 and k=10, and each filter (explain on, k=100)."""
    out: list[tuple[str, dict]] = []
    for text in TEXTS:
        out.append((text, {"k": 100}))
        out.append((text, {"k": 100, "explain": True}))
        out.append((text, {"k": 10, "explain": True}))
    for i, (source, pages) in enumerate(FILTERS):
        text = TEXTS[i % len(TEXTS)]
        out.append((text, {"k": 100, "source": source, "pages": pages, "explain": True}))
        out.append((text, {"k": 100, "source": source, "pages": pages}))
    return out


def freeze(hits) -> tuple:
    """A hit list as a comparable value: id, exact score, source, page, explanation."""
    return tuple((h.id, h.score, h.source, h.page, tuple(sorted((h.explain or {}).items()))) for h in hits)


def reference(col, todo: list[tuple[str, dict]]) -> list[tuple]:
    return [freeze(col.search(text, **kw)) for text, kw in todo]


def hammer(col, todo: list[tuple[str, dict]], want: list[tuple], threads: int = THREADS,
           rounds: int = ROUNDS, on_exit: Callable[[], None] | None = None) -> dict[str, Any]:
    """Each thread runs every case `rounds` times, starting at a different case so that
    different searches overlap. Returns {"calls", "mismatches", "errors", "seconds", "qps"}."""
    barrier = threading.Barrier(threads)
    lock = threading.Lock()
    mismatches: list[str] = []
    errors: list[str] = []
    calls = [0]

    def work(t: int) -> None:
        try:
            barrier.wait(timeout=60)
            n = len(todo)
            for r in range(rounds):
                for j in range(n):
                    i = (j + t * n // threads + r) % n
                    text, kw = todo[i]
                    try:
                        got = freeze(col.search(text, **kw))
                    except Exception:
                        with lock:
                            errors.append(f"{text!r} {kw}: {traceback.format_exc(limit=3)}")
                        continue
                    with lock:
                        calls[0] += 1
                        if got != want[i]:
                            mismatches.append(f"{text!r} {kw}: {len(got)} hits, want {len(want[i])}")
        except Exception:
            with lock:
                errors.append(traceback.format_exc(limit=3))
        finally:
            if on_exit is not None:
                on_exit()

    workers = [threading.Thread(target=work, args=(t,), daemon=True) for t in range(threads)]
    t0 = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=600)  # bounded; a stuck worker is reported below
    seconds = time.perf_counter() - t0
    stuck = sum(w.is_alive() for w in workers)
    if stuck:
        errors.append(f"{stuck} worker threads still running after 600 s")
    return {"calls": calls[0], "mismatches": mismatches, "errors": errors, "seconds": round(seconds, 3),
            "qps": round(calls[0] / seconds, 1) if seconds else None}


def single_qps(col, todo: list[tuple[str, dict]], rounds: int = ROUNDS) -> float:
    t0 = time.perf_counter()
    for _ in range(rounds):
        for text, kw in todo:
            col.search(text, **kw)
    return round(rounds * len(todo) / (time.perf_counter() - t0), 1)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--engine", required=True)
    p.add_argument("--index", required=True)
    p.add_argument("--threads", type=int, default=THREADS)
    p.add_argument("--rounds", type=int, default=ROUNDS)
    p.add_argument("--qps", action="store_true", help="also time the cases single-threaded")
    args = p.parse_args(argv)

    from vsplade import Collection

    todo = cases()
    ref = Collection.open(args.index, engine=args.engine)
    want = reference(ref, todo)
    qps1 = single_qps(ref, todo, args.rounds) if args.qps else None
    ref.close()  # the hammered Collection below is the only open searcher

    on_exit = None
    if args.engine == "lucene":
        from vsplade_lucene import jvm

        on_exit = jvm.detach_thread
    col = Collection.open(args.index, engine=args.engine)
    out = hammer(col, todo, want, args.threads, args.rounds, on_exit)
    col.close()
    out["cases"] = len(todo)
    out["hits"] = sum(len(w) for w in want)
    out["explained_hits"] = sum(1 for w in want for h in w if h[4])
    out["single_thread_qps"] = qps1
    out["mismatches"], out["n_mismatches"] = out["mismatches"][:5], len(out["mismatches"])
    out["errors"], out["n_errors"] = out["errors"][:5], len(out["errors"])
    print(json.dumps(out))
    return 0 if not out["n_mismatches"] and not out["n_errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
