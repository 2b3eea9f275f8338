"""Server-side plain-text query (neural_sparse query_text + an ml-commons SPARSE_TOKENIZE model)
vs the client-side query encoder + rank_feature query, on a real plugin node (testnode
--plugins neural), and what the ml-commons rules change in rankings.

Part 1 (offline, exact scorer): repeated query tokens. ml-commons weighs each name once; the
V-SPLADE spec (li_lsr) adds duplicates. overlap@10 and Kendall tau between the two top-10s,
over the queries that hold a repeated token, on the test PDFs (lexical) and on a synthetic
corpus (Li-LSR table); also the U+FFFD fragment rule on non-ASCII queries.
Part 2 (real node): the same synthetic corpus indexed twice (default names / --server-side-
query), p50/p99 per query, sequential, both answers checked equal in top-10 ids.

    .venv/bin/python benchmarks/opensearch_server_side_query.py --pages 20000 --queries 300
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "opensearch"))


def kendall_tau(a: list[str], b: list[str]) -> float:
    """Kendall tau over the ids both lists hold (1.0 when fewer than 2 are shared)."""
    common = [x for x in a if x in b]
    if len(common) < 2:
        return 1.0
    pos = {x: i for i, x in enumerate(b)}
    conc = disc = 0
    for i in range(len(common)):
        for j in range(i + 1, len(common)):
            if pos[common[i]] < pos[common[j]]:
                conc += 1
            else:
                disc += 1
    return (conc - disc) / (conc + disc)


def compare(exact, queries_spec, queries_ml, k=10):
    over, taus, same = [], [], 0
    for qs, qm in zip(queries_spec, queries_ml):
        a = [h.id for h in exact.search(qs, k) if h.score > 0]
        b = [h.id for h in exact.search(qm, k) if h.score > 0]
        over.append(len(set(a) & set(b)) / max(1, len(a)))
        taus.append(kendall_tau(a, b))
        same += a == b
    return {"queries": len(queries_spec), "overlap@10": float(np.mean(over)), "kendall_tau": float(np.mean(taus)),
            "identical_top10": same}


def part1(pages: int, seed: int) -> dict:
    from test_server_side_query import make_checkpoint, synthetic_batch, word_queries

    from vsplade.encoders import load_query_encoder
    from vsplade.encoders.lexical import LexicalEncoder
    from vsplade.engines.memory import ExactScorer
    from vsplade_opensearch.mlcommons import ServerSideNaming
    from vsplade.pages import PageReader
    from vsplade.sparse import SparseBatch

    out = {}
    rng = np.random.default_rng(seed)
    # test PDFs, lexical: queries made of page text with a word repeated
    enc = LexicalEncoder()
    docs = list(PageReader([str(ROOT / "tests" / "data" / "pdfs")], render=False, text=True))
    enc.fit(docs)
    batch = enc.encode(docs)
    exact = ExactScorer(batch)
    q = load_query_encoder("lexical")
    words = [w for d in docs for w in (d.text or "").lower().split() if w.isalpha() and len(w) > 3]
    spec, ml = [], []
    while len(spec) < 200:
        pick = list(rng.choice(words, 4))
        text = " ".join(pick + [pick[0]])
        ids = q.encode_ids(text)
        if ids and max(ids.values()) > 1:
            spec.append(q.encode(text))
            ml.append({t: q._weights[q.vocab.id_of(t)] for t in spec[-1]})
    out["pdfs_lexical_repeats"] = compare(exact, spec, ml)
    # synthetic, Li-LSR table from a synthetic official-layout checkpoint
    q = load_query_encoder(str(make_checkpoint(Path(tempfile.mkdtemp()) / "ckpt")))
    qs = word_queries(q, 300, rng, words=4)
    batch = synthetic_batch(q, qs, pages, rng)
    exact = ExactScorer(batch)
    spec, ml = [], []
    for text, ids in qs:
        t = text + q.vocab.display(int(ids[0])) + q.vocab.display(int(ids[1]))  # two words repeated
        spec.append(q.encode(t))
        ml.append({x: q._weights[q.vocab.id_of(x)] for x in spec[-1]})
    out["synthetic_li_lsr_repeats"] = compare(exact, spec, ml)
    # fragments: non-ASCII queries, exact ids vs each rule for names fragments share
    merged = ServerSideNaming(q, merge_fragments=True)
    frag_ids = [i for ids in merged.groups.values() for i in ids]
    rows = batch.matrix.tolil()
    for r in range(rows.shape[0]):
        for c in rng.choice(frag_ids, 3):
            rows[r, int(c)] = float(rng.lognormal(-0.5, 0.8))
    fbatch = SparseBatch(rows.tocsr(), batch.ids, batch.meta)
    texts = ["日本語の検索 " + qs[i][0] for i in range(100)] + ["Ωμέγα ℵ₀ " + qs[i][0] for i in range(100, 200)]
    out["synthetic_fragments"] = {rule: _fragments(q, naming, fbatch, texts)
                                  for rule, naming in (("drop", ServerSideNaming(q)), ("max-merge", merged))}
    return out


def _fragments(q, naming, fbatch, texts):
    from vsplade.engines.memory import ExactScorer
    from vsplade.sparse import SparseBatch

    folded = naming.fold(fbatch.matrix)
    folded.data /= np.float32(naming.scale)
    ex_ids, ex_fold = ExactScorer(fbatch), ExactScorer(SparseBatch(folded, fbatch.ids, fbatch.meta))
    over, taus = [], []
    for t in texts:
        fold_q = {}
        for i in q.token_ids(t):
            c = int(naming.canon[i])
            if c >= 0:
                fold_q[q.vocab.term(c)] = naming._name_weight[c]
        a = [h.id for h in ex_ids.search(q.encode(t), 10) if h.score > 0]
        b = [h.id for h in ex_fold.search(fold_q, 10) if h.score > 0]
        over.append(len(set(a) & set(b)) / max(1, len(a)))
        taus.append(kendall_tau(a, b))
    return {"queries": len(texts), "overlap@10": float(np.mean(over)), "kendall_tau": float(np.mean(taus))}


def percentiles(xs):
    a = np.asarray(xs) * 1000
    return {"p50_ms": float(np.percentile(a, 50)), "p99_ms": float(np.percentile(a, 99)), "mean_ms": float(a.mean())}


def part2(url: str, pages: int, n_queries: int, seed: int) -> dict:
    from test_server_side_query import word_queries

    from vsplade_opensearch.bundle_format import write_opensearch_sparse
    from vsplade.encoders import load_query_encoder
    from vsplade_opensearch import OpenSearchEngine
    from vsplade_opensearch.connection import Connection
    from vsplade_opensearch.ml_model import register_model

    rng = np.random.default_rng(seed)
    q = load_query_encoder("lexical")
    qs = word_queries(q, n_queries, rng, words=4)
    info = {"name": "lexical", "model": "lexical"}
    res: dict = {"pages": pages}
    with tempfile.TemporaryDirectory() as d:
        zp, _ = write_opensearch_sparse(Path(d) / "m.zip", q)
        t = time.perf_counter()
        reg = register_model(Connection.from_options({"url": url}), zp)
        res["register_s"] = time.perf_counter() - t
    engines = {
        "client": OpenSearchEngine(index="bench-ss-client", url=url, progress=False),
        "server": OpenSearchEngine(index="bench-ss-server", url=url, progress=False, server_side_query=True),
    }
    for name, eng in engines.items():
        t = time.perf_counter()
        with eng.writer(info, recreate=True) as w:
            for start in range(0, pages, 2000):
                w.add(_slice(q, qs, start, min(2000, pages - start), seed))
            w.close()
        res[f"index_{name}_s"] = time.perf_counter() - t
    client_s = engines["client"].searcher()
    server_s = engines["server"].searcher()
    texts = [t for t, _ in qs]
    for t in texts[:20]:  # warm both paths (JIT, caches, the model's first inference)
        client_s.search(q.encode(t), 10)
        server_s.search_text(t, 10)
    lat = {"client": [], "server": []}
    agree = same_scores = 0
    for t in texts:
        t0 = time.perf_counter()
        a = client_s.search(q.encode(t), 10)
        t1 = time.perf_counter()
        b = server_s.search_text(t, 10)
        t2 = time.perf_counter()
        lat["client"].append(t1 - t0)
        lat["server"].append(t2 - t1)
        agree += [h.id for h in a] == [h.id for h in b]
        # the same scores rank by rank (relative 1e-5): any id difference is an order among ties
        same_scores += len(a) == len(b) and all(abs(x.score - y.score) <= 1e-5 * max(1.0, abs(x.score)) for x, y in zip(a, b))
    res["client_encoder_rank_feature"] = percentiles(lat["client"])
    res["server_side_neural_sparse"] = percentiles(lat["server"])
    res["identical_top10"] = f"{agree}/{len(texts)}"
    res["equal_top10_scores"] = f"{same_scores}/{len(texts)}"
    res["model_id"] = reg["model_id"]
    return res


def _slice(q, qs, start, n, seed):
    """Pages start..start+n of the synthetic corpus (same for both indexes)."""
    from test_server_side_query import synthetic_batch

    from vsplade.sparse import SparseBatch

    b = synthetic_batch(q, qs, n, np.random.default_rng(seed * 1_000_003 + start))
    ids = [f"syn{start + i}" for i in range(n)]
    return SparseBatch(b.matrix, ids, [{"id": i, "source": f"/syn/{i}.pdf", "page": 1} for i in ids])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pages", type=int, default=20000)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--line", default="3")
    ap.add_argument("--url", help="a cluster with neural-search + ml-commons instead of a testnode")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-node", action="store_true", help="only the offline ranking comparison")
    a = ap.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}, "
          f"python {platform.python_version()}", flush=True)
    out = {"rankings": part1(min(a.pages, 5000), a.seed)}
    print("rankings:", json.dumps(out["rankings"]), flush=True)
    if not a.skip_node:
        if a.url:
            out["latency"] = part2(a.url, a.pages, a.queries, a.seed)
        else:
            from vsplade_opensearch.testnode import TestCluster

            with TestCluster(nodes=1, line=a.line, plugins="neural") as node:
                out["opensearch"] = node.version
                out["latency"] = part2(node.url, a.pages, a.queries, a.seed)
        print("latency:", json.dumps(out["latency"]), flush=True)
    print(f"load after: {os.getloadavg()[0]:.1f}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
