"""Collection sync (issue 14): a PAGES-page folder of PDFs, 1% of its files changed and 1%
deleted, then `index_pages(..., sync=True)` versus re-indexing the changed folder from
scratch, per engine (memory, Lucene, a real OpenSearch single node), side by side in one run.

Corpus: generated multi-page PDFs (a minimal PDF writer below, Helvetica text, one content
stream per page), ~WORDS words per page drawn deterministically (Zipf-like) from the words
of tests/data/pdfs, 3..17 pages per file (10 on average), so every page's text differs.
"Changed" = the file is rewritten with other text (same page count); "vanished" = deleted.
Encoder: ``lexical-noidf`` (no weights, no corpus statistics: appends and syncs are exact).

Steps (engines interleaved at each step, so each step's numbers share the same load):
 1. full index of the folder from scratch (the user path: vsplade.pipeline.index_pages, what
    `vsplade index DIR` and Collection.index run; the JVMs are started before timing);
 2. mutate the folder (CHANGED of the files rewritten, VANISHED deleted);
 3. sync (`sync=True`): seconds, broken down by phase, summary counts checked against what
    was mutated; then a second sync with nothing changed (the cost of an unchanged folder);
 4. a fresh index of the mutated folder into a new index: seconds; ratio sync / fresh;
    page count and page ids of the synced index checked equal to the fresh one's;
 5. search latency (k=10, QUERIES queries of 5 consecutive words from pages of unchanged
    files, encoded once, run round-robin over the indexes after a warm-up pass, then a
    second round-robin pass in the reverse order): Lucene
    before any delete (a copy taken after step 1) vs after the sync's deletes vs the fresh
    index (same pages as the synced one, never deleted); OpenSearch synced vs fresh. Also
    whether the synced and fresh indexes return the same top-10 scores for every query.

Phases of a sync (timed by wrapping the real functions and the real writer's methods, nested
calls counted once): discover (walk the folder), hash (sha256 of every file), open writer,
catalog / done ids (list what the index holds), read (pdfium: open every file to be read;
unchanged files are opened and their pages skipped by id; text of the pages to encode),
encode, add (engine write), commit, delete (engine delete + its commit), close; "other" is
the rest (planning, bookkeeping).

    .venv/bin/python benchmarks/sync.py [--pages 5000] [--engines memory,lucene,opensearch]
        [--changed 0.01] [--vanished 0.01] [--queries 300] [--workdir DIR] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from nested_timer import NestedTimer  # benchmarks/, this script's folder, is on sys.path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MODEL = "lexical-noidf"
SEED = 14
WORDS_PER_PAGE = 150
WORDS_PER_LINE = 12

# -- corpus -------------------------------------------------------------------------------


def vocabulary() -> list[str]:
    """The distinct words (3..14 letters) of the shipped test PDFs, in a fixed order."""
    import pypdfium2 as pdfium

    words: set[str] = set()
    for pdf_path in sorted((ROOT / "tests" / "data" / "pdfs").glob("*.pdf")):
        pdf = pdfium.PdfDocument(str(pdf_path))
        for i in range(len(pdf)):
            page = pdf[i]
            tp = page.get_textpage()
            words.update(w.lower() for w in re.findall(r"[A-Za-z]{3,14}", tp.get_text_range()))
            tp.close()
            page.close()
        pdf.close()
    return sorted(words)


class Corpus:
    def __init__(self, pages: int, words_per_page: int = WORDS_PER_PAGE):
        self.vocab = np.array(vocabulary(), dtype=object)
        rng = np.random.default_rng(SEED)
        ranks = rng.permutation(len(self.vocab))
        p = 1.0 / (ranks + 10.0)
        self.p = p / p.sum()
        self.words_per_page = words_per_page
        # 3..17 pages per file, the last file trimmed so the folder holds exactly `pages`
        sizes = []
        while sum(sizes) < pages:
            sizes.append(int(rng.integers(3, 18)))
        sizes[-1] -= sum(sizes) - pages
        if sizes[-1] <= 0:
            sizes.pop()
        self.sizes = sizes
        self.version = [0] * len(sizes)

    def name(self, i: int) -> str:
        return f"d{i // 1000:03d}/f{i:06d}.pdf"  # 1000 files per subfolder

    def page_texts(self, i: int, version: int) -> list[str]:
        rng = np.random.default_rng([SEED, i, version])
        words = rng.choice(self.vocab, size=(self.sizes[i], self.words_per_page), p=self.p)
        return [" ".join(row) for row in words]

    def write(self, folder: Path, i: int, version: int = 0) -> None:
        self.version[i] = version
        path = folder / self.name(i)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(make_pdf(self.page_texts(i, version)))


def make_pdf(pages: list[str]) -> bytes:
    """A minimal valid PDF: one Helvetica text content stream per page (A4)."""
    objs: list[bytes] = []
    n = len(pages)
    kids = " ".join(f"{4 + 2 * k} 0 R" for k in range(n))
    objs.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objs.append(f"<< /Type /Pages /Kids [{kids}] /Count {n} >>".encode())
    objs.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    for k, text in enumerate(pages):
        words = text.split(" ")
        lines = [" ".join(words[j:j + WORDS_PER_LINE]) for j in range(0, len(words), WORDS_PER_LINE)]
        body = "BT /F1 10 Tf 14 TL 50 800 Td " + " ".join(f"({ln}) Tj T*" for ln in lines) + " ET"
        stream = body.encode("latin-1")
        objs.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 3 0 R >> >> "
                    f"/Contents {5 + 2 * k} 0 R >>".encode())
        objs.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for num, obj in enumerate(objs, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % num + obj + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    out += b"".join(b"%010d 00000 n \n" % off for off in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return bytes(out)


# -- timing the real code path ------------------------------------------------------------


class Phases(NestedTimer):
    """Seconds per phase; a phase entered inside another (OpenSearch's delete commits) counts
    once, in the outer one."""

    def __init__(self):
        super().__init__(time.perf_counter, 1, defaultdict(float))


WRITER_METHODS = ("catalog", "done_ids", "add", "commit", "delete", "close")


@contextmanager
def instrumented(phases: Phases):
    """The pipeline's own functions, timed (restored afterwards)."""
    import vsplade.pipeline as pl

    saved = {k: getattr(pl, k) for k in ("file_sha256", "discover", "PageReader")}
    base_reader = saved["PageReader"]

    class TimedReader(base_reader):
        def __iter__(self):
            it = super().__iter__()
            while True:
                t0 = time.perf_counter()
                try:
                    page = next(it)
                except StopIteration:
                    phases.add("read", t0)
                    return
                phases.add("read", t0)
                yield page

    pl.file_sha256 = phases.timed("hash", saved["file_sha256"])
    pl.discover = phases.timed("discover", saved["discover"])
    pl.PageReader = TimedReader
    try:
        yield
    finally:
        for k, v in saved.items():
            setattr(pl, k, v)


def run_index(engine, folder: Path, sync: bool, recreate: bool = False) -> dict:
    """One `vsplade index FOLDER [--sync]` run (what Collection.index calls), timed by phase."""
    from vsplade.encoders import load_encoder
    from vsplade.pipeline import index_pages

    phases = Phases()
    encoder = load_encoder(MODEL)
    encoder.encode = phases.timed("encode", encoder.encode)

    def open_writer(info):
        t0 = time.perf_counter()
        w = engine.writer(info, recreate=recreate)
        phases.add("open writer", t0)
        for m in WRITER_METHODS:
            setattr(w, m, phases.timed(m, getattr(w, m)))
        return w

    props = None if recreate else engine.read_properties()
    with instrumented(phases):
        t0 = time.perf_counter()
        report = index_pages([str(folder)], encoder, open_writer, MODEL, progress=False, properties=props, sync=sync)
        wall = time.perf_counter() - t0
    if not report.ok:
        raise SystemExit(f"index run failed: {report.as_dict()}")
    ph = dict(phases.totals)
    ph["other"] = wall - sum(ph.values())
    s = report.summary
    return {"seconds": wall, "phases": ph, "indexed": s.indexed, "skipped": s.skipped,
            "files": s.extra.get("files"), "removed_pages": s.extra.get("removed_pages")}


# -- engines -----------------------------------------------------------------------------


def make_engine(name: str, where: str, node_url: str | None):
    from vsplade.engines import get_engine_class

    cls = get_engine_class(name)
    if name == "opensearch":
        return cls(index=where, url=node_url, progress=False, timeout=300)
    return cls(index=where)


def page_count(engine) -> int:
    return len(engine.read_catalog())


def catalog_ids(engine) -> set[str]:
    return {r["id"] for r in engine.read_catalog()}


def latency(searchers: dict, queries: list[dict], k: int = 10) -> tuple[dict, dict]:
    """Round-robin over the searchers, one query at a time, after an untimed warm-up pass."""
    lat: dict[str, list[float]] = {n: [] for n in searchers}
    results: dict[str, list] = {n: [] for n in searchers}
    for q in queries:
        for s in searchers.values():
            s.search(q, k)
    for q in queries:
        for n, s in searchers.items():
            t = time.perf_counter()
            hits = s.search(q, k)
            lat[n].append(time.perf_counter() - t)
            results[n].append(hits)
    out = {}
    for n, v in lat.items():
        a = np.asarray(v) * 1000
        out[n] = {"p50_ms": float(np.percentile(a, 50)), "p99_ms": float(np.percentile(a, 99)),
                  "mean_ms": float(a.mean())}
    return out, results


def same_scores(a: list, b: list) -> tuple[int, int]:
    """(queries with the same top-k score lists, ... with the same id lists too)."""
    scores = ids = 0
    for ha, hb in zip(a, b):
        sa, sb = [round(h.score, 6) for h in ha], [round(h.score, 6) for h in hb]
        scores += sa == sb
        ids += sa == sb and [h.id for h in ha] == [h.id for h in hb]
    return scores, ids


# -- main --------------------------------------------------------------------------------


def rounded(x):
    if isinstance(x, float):
        return round(x, 4)
    if isinstance(x, dict):
        return {k: rounded(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [rounded(v) for v in x]
    return x


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def fmt_phases(ph: dict) -> str:
    order = ["discover", "hash", "open writer", "catalog", "done_ids", "read", "encode", "add", "commit",
             "delete", "close", "other"]
    return ", ".join(f"{k} {ph[k]:.2f}" for k in order if k in ph and ph[k] >= 0.005)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pages", type=int, default=5000)
    ap.add_argument("--engines", default="memory,lucene,opensearch")
    ap.add_argument("--changed", type=float, default=0.01)
    ap.add_argument("--vanished", type=float, default=0.01)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--words", type=int, default=WORDS_PER_PAGE, help="words per page")
    ap.add_argument("--workdir", default=None, help="folder for the corpus and indexes (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the workdir")
    ap.add_argument("--line", default="3", help="OpenSearch line of the test node")
    ap.add_argument("--heap", default="2g", help="OpenSearch node heap")
    a = ap.parse_args()
    engines = [e.strip() for e in a.engines.split(",") if e.strip()]
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    work = Path(a.workdir or tempfile.mkdtemp(prefix="vsplade-sync-")).resolve()
    if work.exists() and any(work.iterdir()):
        raise SystemExit(f"--workdir {work} is not empty")
    work.mkdir(parents=True, exist_ok=True)
    folder = work / "docs"
    out: dict = {"pages": a.pages, "engines": engines, "changed": a.changed, "vanished": a.vanished,
                 "machine": f"{platform.machine()}, {os.cpu_count()} cores", "load_start": loadavg()}
    print(f"machine: {out['machine']}, python {platform.python_version()}, load average at start: {out['load_start']}")

    node = None
    try:
        # -- corpus
        t0 = time.perf_counter()
        corpus = Corpus(a.pages, a.words)
        for i in range(len(corpus.sizes)):
            corpus.write(folder, i)
        n_files = len(corpus.sizes)
        size_mb = sum(f.stat().st_size for f in folder.rglob("*.pdf")) / 1e6
        print(f"corpus: {a.pages} pages in {n_files} PDFs ({size_mb:.0f} MB, {len(corpus.vocab)} distinct words, "
              f"{a.words} words/page), generated in {time.perf_counter() - t0:.1f} s")
        out.update(files=n_files, corpus_mb=round(size_mb, 1))

        # -- engines, their JVMs started before anything is timed
        node_url = None
        if "opensearch" in engines:
            from vsplade_opensearch.testnode import TestCluster

            node = TestCluster(nodes=1, line=a.line, heap=a.heap)
            node.__enter__()
            node_url = node.url
            print(f"real OpenSearch {node.version} single node, heap {a.heap}")
            out["opensearch"] = node.version
        if "lucene" in engines:
            from vsplade_lucene import jvm

            jvm.classes()

        def where(engine: str, which: str) -> str:
            return f"sync-{which}" if engine == "opensearch" else str(work / f"{engine}-{which}")

        main_ix = {e: make_engine(e, where(e, "main"), node_url) for e in engines}
        fresh_ix = {e: make_engine(e, where(e, "fresh"), node_url) for e in engines}
        res: dict = {e: {} for e in engines}

        # 1. full index
        print(f"\n1. full index from scratch (load {loadavg()})")
        for e in engines:
            r = run_index(main_ix[e], folder, sync=False, recreate=True)
            res[e]["full"] = r
            print(f"  {e:10s} {r['seconds']:8.1f} s  {a.pages / r['seconds']:7.0f} pages/s  [{fmt_phases(r['phases'])}]",
                  flush=True)
            assert r["indexed"] == a.pages, r
        if "lucene" in engines:
            shutil.copytree(where("lucene", "main"), where("lucene", "before"))

        # 2. mutate
        rng = np.random.default_rng(SEED + 1)
        n_changed, n_vanished = round(n_files * a.changed), round(n_files * a.vanished)
        pick = rng.permutation(n_files)
        changed, vanished = sorted(pick[:n_changed].tolist()), sorted(pick[n_changed:n_changed + n_vanished].tolist())
        for i in changed:
            corpus.write(folder, i, version=1)
        for i in vanished:
            (folder / corpus.name(i)).unlink()
        changed_pages = sum(corpus.sizes[i] for i in changed)
        vanished_pages = sum(corpus.sizes[i] for i in vanished)
        pages_now = a.pages - vanished_pages
        expect = {"added": 0, "replaced": n_changed, "unchanged": n_files - n_changed - n_vanished,
                  "removed": n_vanished}
        print(f"\n2. mutated: {n_changed} files changed ({changed_pages} pages), {n_vanished} vanished "
              f"({vanished_pages} pages); the folder now holds {pages_now} pages")
        out.update(changed_files=n_changed, changed_pages=changed_pages, vanished_files=n_vanished,
                   vanished_pages=vanished_pages, pages_after=pages_now)

        # 3. sync, then a sync with nothing to do
        print(f"\n3. sync (load {loadavg()})")
        for e in engines:
            r = run_index(main_ix[e], folder, sync=True)
            res[e]["sync"] = r
            ok = r["files"] == expect and r["indexed"] == changed_pages and \
                r["removed_pages"] == changed_pages + vanished_pages
            r["counts_ok"] = ok
            print(f"  {e:10s} {r['seconds']:8.2f} s  files {r['files']}, pages indexed {r['indexed']}, "
                  f"removed {r['removed_pages']}, {'as mutated' if ok else 'NOT AS MUTATED'}", flush=True)
            print(f"  {'':10s} [{fmt_phases(r['phases'])}]")
        print(f"\n3b. sync again, nothing changed (load {loadavg()})")
        for e in engines:
            r = run_index(main_ix[e], folder, sync=True)
            res[e]["noop"] = r
            r["counts_ok"] = r["indexed"] == 0 and r["removed_pages"] == 0 and r["files"]["unchanged"] == n_files - n_vanished
            print(f"  {e:10s} {r['seconds']:8.2f} s  ({1e3 * r['seconds'] / (n_files - n_vanished):.2f} ms per unchanged "
                  f"file) [{fmt_phases(r['phases'])}]", flush=True)

        # 4. fresh index of the mutated folder
        print(f"\n4. fresh index of the mutated folder (load {loadavg()})")
        for e in engines:
            r = run_index(fresh_ix[e], folder, sync=False, recreate=True)
            res[e]["fresh"] = r
            n_sync, n_fresh = page_count(main_ix[e]), page_count(fresh_ix[e])
            same_ids = catalog_ids(main_ix[e]) == catalog_ids(fresh_ix[e])
            res[e].update(pages_synced=n_sync, pages_fresh=n_fresh, same_ids=same_ids,
                          ratio=res[e]["sync"]["seconds"] / r["seconds"])
            print(f"  {e:10s} {r['seconds']:8.1f} s  pages: synced {n_sync}, fresh {n_fresh} "
                  f"({'same ids' if same_ids else 'DIFFERENT IDS'}); sync / fresh = {res[e]['ratio']:.3f}", flush=True)

        # 5. search latency
        from vsplade.encoders import load_query_encoder

        qenc = load_query_encoder(MODEL)
        qrng = np.random.default_rng(SEED + 2)
        keep = sorted(set(range(n_files)) - set(changed) - set(vanished))
        queries = []
        while len(queries) < a.queries:
            i = int(qrng.choice(keep))
            words = corpus.page_texts(i, 0)[int(qrng.integers(corpus.sizes[i]))].split(" ")
            j = int(qrng.integers(len(words) - 5))
            q = qenc.encode(" ".join(words[j:j + 5]))
            if q:
                queries.append(q)
        out["latency"] = {}
        for e in [x for x in ("lucene", "opensearch") if x in engines]:
            names = {"before": where(e, "before"), "synced": where(e, "main"), "fresh": where(e, "fresh")}
            if e != "lucene":
                names.pop("before")
            searchers, opened = {}, {}
            for n, w in names.items():
                t0 = time.perf_counter()
                searchers[n] = make_engine(e, w, node_url).searcher()
                opened[n] = time.perf_counter() - t0
            print(f"\n5. {e} search latency, k=10, {len(queries)} queries, round-robin (load {loadavg()})")
            lat, hits = latency(searchers, queries)
            # a second pass in the reverse order: what stays is the index, not its turn
            lat2, _ = latency(dict(reversed(list(searchers.items()))), queries)
            for n in names:
                lat[n]["pass2"] = lat2[n]
            s_same, id_same = same_scores(hits["synced"], hits["fresh"])
            for n in names:
                p2 = lat[n]["pass2"]
                print(f"  {n:8s} open {opened[n]:6.2f} s   p50 {lat[n]['p50_ms']:6.2f} ms   p99 {lat[n]['p99_ms']:6.2f} ms"
                      f"   mean {lat[n]['mean_ms']:6.2f} ms   | reversed pass: p50 {p2['p50_ms']:6.2f} ms"
                      f"   p99 {p2['p99_ms']:6.2f} ms")
                lat[n]["open_s"] = opened[n]
            print(f"  synced vs fresh: same top-10 scores for {s_same}/{len(queries)} queries, "
                  f"same ids too for {id_same}")
            out["latency"][e] = {**lat, "same_scores": s_same, "same_ids": id_same, "queries": len(queries)}
            for s in searchers.values():
                s.close()

        # summary table
        print(f"\nsummary: {a.pages} pages, {n_files} files; {n_changed} changed, {n_vanished} vanished "
              f"(load at end {loadavg()})")
        print(f"  {'engine':10s} {'full s':>8s} {'sync s':>8s} {'no-op sync s':>13s} {'fresh s':>8s} {'sync/fresh':>10s}"
              f" {'counts':>7s} {'pages':>7s}")
        for e in engines:
            r = res[e]
            print(f"  {e:10s} {r['full']['seconds']:8.1f} {r['sync']['seconds']:8.2f} {r['noop']['seconds']:13.2f} "
                  f"{r['fresh']['seconds']:8.1f} {r['ratio']:10.3f} {'ok' if r['sync']['counts_ok'] else 'WRONG':>7s}"
                  f" {'ok' if r['pages_synced'] == r['pages_fresh'] == pages_now and r['same_ids'] else 'WRONG':>7s}")
        try:
            import resource

            out["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        except Exception:
            pass
        out["load_end"] = loadavg()
        out["results"] = res
        print(json.dumps(rounded(out), default=str))
    finally:
        if node is not None:
            node.__exit__(None, None, None)
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
