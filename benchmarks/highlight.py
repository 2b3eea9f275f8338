"""What "where on the page" costs (vsplade.highlight): reading a page's words (pdfium character
boxes, the cold part), marking a query on words already read, and /search's snippet=true per
hit, cold (the page's words not read yet) and warm, on tests/data/pdfs with the memory engine.

    python benchmarks/highlight.py            # prints a markdown table for RESULTS.md
"""

from __future__ import annotations

import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

PDFS = Path(__file__).resolve().parents[1] / "tests" / "data" / "pdfs"
QUERIES = ["apt install", "interface definition", "debian package management", "financial report revenue",
           "camlidl interface", "the"]


def _ms(xs):
    return statistics.median(xs) * 1000, statistics.mean(xs) * 1000


def main() -> None:
    import pypdfium2 as pdfium

    from vsplade import Collection
    from vsplade import highlight as H
    from vsplade.serve.service import SearchService

    pages = []
    for pdf in sorted(PDFS.glob("*.pdf")):
        n = len(pdfium.PdfDocument(str(pdf)))
        pages += [(pdf, p) for p in range(1, n + 1)]
    read, words_per_page, cached = [], [], {}
    for pdf, p in pages:
        t = time.perf_counter()
        w = H.read_words(pdf, p)
        read.append(time.perf_counter() - t)
        words_per_page.append(len(w.words))
        cached[(pdf, p)] = w

    col = Collection.create(Path(tempfile.mkdtemp()) / "ix", engine="memory")
    col.index(PDFS, progress=False)
    enc = col.query_encoder
    marking = []
    for _ in range(3):
        for w in cached.values():
            for q in QUERIES:
                t = time.perf_counter()
                H.highlight(w, q, encoder=enc)
                marking.append(time.perf_counter() - t)

    svc = SearchService(col, cache_dir=tempfile.mkdtemp())
    k = 10
    plain, cold, warm, hits = [], [], [], 0
    for q in QUERIES:
        svc.search(q, k)  # warm the searcher
        t = time.perf_counter()
        svc.search(q, k)
        plain.append(time.perf_counter() - t)
        H._cache.clear()
        t = time.perf_counter()
        r = svc.search(q, k, snippet=True)
        cold.append(time.perf_counter() - t)
        t = time.perf_counter()
        svc.search(q, k, snippet=True)
        warm.append(time.perf_counter() - t)
        hits += len(r["hits"])
    per_hit = hits / len(QUERIES)

    print(f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"load average {os.getloadavg()[0]:.1f} at the end.")
    print(f"{len(pages)} pages of tests/data/pdfs, {statistics.mean(words_per_page):.0f} words per page on average; "
          f"{len(QUERIES)} queries, k={k} ({per_hit:.1f} hits per query on average)\n")
    print("| step | p50 ms | mean ms |")
    print("|---|---:|---:|")
    print("| read a page's words (pdfium char boxes), cold | %.2f | %.2f |" % _ms(read))
    print("| mark one query on words already read | %.3f | %.3f |" % _ms(marking))
    print("| /search k=10 (service, no HTTP), no snippets | %.2f | %.2f |" % _ms(plain))
    print("| /search k=10 + snippet=true, pages not read yet | %.2f | %.2f |" % _ms(cold))
    print("| /search k=10 + snippet=true, pages read before | %.2f | %.2f |" % _ms(warm))
    c = (statistics.mean(cold) - statistics.mean(plain)) / per_hit * 1000
    w = (statistics.mean(warm) - statistics.mean(plain)) / per_hit * 1000
    print(f"\nsnippet cost per hit: {c:.2f} ms cold, {w:.2f} ms warm (mean over the queries)")
    col.close()


if __name__ == "__main__":
    main()
