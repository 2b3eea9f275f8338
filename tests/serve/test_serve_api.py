"""The HTTP API against a real uvicorn, for the memory and Lucene engines: results equal
`vsplade search --json` on the same index; explain, pages, images and their cache headers."""

from __future__ import annotations

import io
import json

import pytest
from serve_support import QUERIES, run_server, vsplade

# real services end to end (indexes built by the CLI, uvicorn): make test only
pytestmark = pytest.mark.slow


def _rows(hits):
    return [(h["id"], h["score"], h["source"], h["page"]) for h in hits]


@pytest.fixture(scope="session")
def cli_results(indexes):
    """{engine: {query: hits}} from `vsplade search --json -k 10` (a separate process)."""
    out = {}
    for engine, d in indexes.items():
        p = vsplade("search", *QUERIES, "--engine", engine, "--index", str(d), "--json", "-k", "10")
        out[engine] = {o["query"]: o["hits"] for o in map(json.loads, p.stdout.splitlines())}
    return out


def test_search_get_equals_cli(server, cli_results):
    expected = cli_results[server.engine]
    assert any(expected[q] for q in QUERIES), "the test queries find nothing: the test would prove nothing"
    for q in QUERIES:
        status, body = server.get_json("/search", q=q, k=10)
        assert status == 200, body
        assert body["query"] == q
        assert _rows(body["hits"]) == _rows(expected[q]), q


def test_search_post_single_and_batch_equal_cli(server, cli_results):
    expected = cli_results[server.engine]
    status, body = server.post_json("/search", {"q": QUERIES[0], "k": 10})
    assert status == 200, body
    assert _rows(body["hits"]) == _rows(expected[QUERIES[0]])
    status, body = server.post_json("/search", {"queries": QUERIES, "k": 10})
    assert status == 200, body
    assert [r["query"] for r in body["results"]] == QUERIES
    for r in body["results"]:
        assert _rows(r["hits"]) == _rows(expected[r["query"]])


def test_k_limits_the_hits(server, cli_results):
    q = QUERIES[0]
    status, body = server.get_json("/search", q=q, k=1)
    assert status == 200
    assert _rows(body["hits"]) == _rows(cli_results[server.engine][q][:1])


def test_explain_terms_sum_to_the_score(server):
    status, body = server.get_json("/search", q="debian package management", k=5, explain="true")
    assert status == 200 and body["hits"], body
    for h in body["hits"]:
        ex = h["explain"]
        assert ex and h["matched_terms"] == len(ex)
        contributions = [t["contribution"] for t in ex]
        assert contributions == sorted(contributions, reverse=True)
        assert sum(contributions) == pytest.approx(h["score"], rel=1e-4)
        assert all(t["token"] and t["term"] for t in ex)
    top = body["hits"][0]
    assert top["source"] == "debian-refcard-en-a4.pdf"
    assert {"debian", "package"} <= {t["token"] for t in top["explain"]}
    # without explain, no term breakdown
    status, body = server.get_json("/search", q="debian package management", k=5)
    assert all("explain" not in h for h in body["hits"])


def test_page_metadata_for_a_hit(server):
    _, body = server.get_json("/search", q="debian", k=3)
    h = body["hits"][0]
    status, page = server.get_json(f"/pages/{h['id']}")
    assert status == 200, page
    assert (page["id"], page["source"], page["page"]) == (h["id"], h["source"], h["page"])


def test_info_and_health(server):
    status, body = server.get_json("/health")
    assert status == 200 and body == {"status": "ok"}
    status, info = server.get_json("/info")
    assert status == 200, info
    assert info["engine"] == server.engine and info["model"] == "lexical"
    if info["catalog"]:
        assert info["pages"] == 34 and info["files"] == 3
        assert {s["source"] for s in info["sources"]} == {
            "byaldi_financial_report.pdf", "camlidl-1.04.doc.pdf", "debian-refcard-en-a4.pdf"}


@pytest.mark.parametrize("params, cli", [
    ({"source": "camlidl-1.04.doc.pdf"}, ["--source", "camlidl-1.04.doc.pdf"]),
    ({"source": ["camlidl-1.04.doc.pdf", "debian-refcard-en-a4.pdf"], "page_min": 2, "page_max": 6},
     ["--source", "camlidl-1.04.doc.pdf", "--source", "debian-refcard-en-a4.pdf", "--page-min", "2", "--page-max", "6"]),
])
def test_filters_inside_the_engine_or_a_clear_400(server, params, cli):
    _, info = server.get_json("/info")
    status, body = server.get_json("/search", q="install interface", k=10, **params)
    if not info["filters"]:
        assert status == 400 and "filters not supported by this engine yet" in body["detail"]
        return
    assert status == 200 and body["hits"], body
    p = vsplade("search", "install interface", "--engine", server.engine, "--index", str(server.index), "--json",
                "-k", "10", *cli)
    assert _rows(body["hits"]) == _rows(json.loads(p.stdout)["hits"])
    # the same through POST
    status, post = server.post_json("/search", {"q": "install interface", "k": 10,
                                                **{k: ([v] if k == "source" and isinstance(v, str) else v)
                                                   for k, v in params.items()}})
    assert status == 200 and _rows(post["hits"]) == _rows(body["hits"])


def test_memory_engine_filters(memory_server):
    _, info = memory_server.get_json("/info")
    assert info["filters"] is True
    status, body = memory_server.get_json("/search", q="debian", k=100, source="debian-refcard-en-a4.pdf", page_max=1)
    assert status == 200 and [(h["source"], h["page"]) for h in body["hits"]] == [("debian-refcard-en-a4.pdf", 1)]
    status, body = memory_server.get_json("/search", q="install", page_min=5, page_max=2)
    assert status == 422 and "greater than page_max" in body["detail"]


def _decode(data: bytes):
    from PIL import Image, ImageStat

    img = Image.open(io.BytesIO(data))
    img.load()
    return img, ImageStat.Stat(img.convert("L")).stddev[0]


def test_page_image_rendered_cached_and_revalidated(memory_server):
    s = memory_server
    _, body = s.get_json("/search", q="debian package", k=1)
    pid = body["hits"][0]["id"]
    status, headers, data = s.request("GET", f"/pages/{pid}/image?width=300")
    assert status == 200, data[:300]
    assert headers["content-type"] == "image/jpeg"
    assert headers["x-vsplade-cache"] == "miss"
    assert "max-age" in headers["cache-control"] and headers["etag"]
    img, spread = _decode(data)
    assert img.width == 320  # snapped up to the next cached width
    assert img.height > 100
    assert spread > 5, "the rendered page is blank"
    status, headers2, data2 = s.request("GET", f"/pages/{pid}/image?width=300")
    assert status == 200 and headers2["x-vsplade-cache"] == "hit" and data2 == data
    assert headers2["etag"] == headers["etag"]
    status, headers3, data3 = s.request("GET", f"/pages/{pid}/image?width=300", headers={"If-None-Match": headers["etag"]})
    assert status == 304 and data3 == b""
    # another width is another picture
    status, _, big = s.request("GET", f"/pages/{pid}/image?width=1000")
    assert status == 200 and _decode(big)[0].width == 1280


def test_page_terms_of_a_memory_page(memory_server):
    _, body = memory_server.get_json("/search", q="debian", k=1)
    status, page = memory_server.get_json(f"/pages/{body['hits'][0]['id']}", terms=10)
    assert status == 200
    weights = [t["weight"] for t in page["top_terms"]]
    assert len(weights) == 10 and weights == sorted(weights, reverse=True)
    assert "debian" in {t["token"] for t in page["top_terms"]}


def test_lucene_page_image_or_a_clear_409(servers):
    if "lucene" not in servers:
        pytest.skip("the lucene connector is not installed")
    s = servers["lucene"]
    _, body = s.get_json("/search", q="debian package", k=1)
    pid = body["hits"][0]["id"]
    _, info = s.get_json("/info")
    status, headers, data = s.request("GET", f"/pages/{pid}/image?width=240")
    if info["catalog"]:  # the engine lists its pages with their files: the page renders
        assert status == 200 and _decode(data)[1] > 5
    else:
        assert status == 409, data
        assert "cannot be shown" in json.loads(data)["detail"]


def test_moved_or_changed_source_is_a_clear_409(tmp_path, pdf_dir):
    import shutil

    docs = tmp_path / "docs"
    docs.mkdir()
    for name in ("debian-refcard-en-a4.pdf", "byaldi_financial_report.pdf"):
        shutil.copy(pdf_dir / name, docs / name)
    index = tmp_path / "ix"
    vsplade("index", str(docs), "--model", "lexical", "--engine", "memory", "--index", str(index))
    with run_server("memory", index, tmp_path) as s:
        _, body = s.get_json("/search", q="debian", k=1)
        changed = body["hits"][0]["id"]
        _, body = s.get_json("/search", q="financial report", k=1)
        moved = body["hits"][0]["id"]
        assert body["hits"][0]["source"] == "byaldi_financial_report.pdf"
        with open(docs / "debian-refcard-en-a4.pdf", "ab") as f:
            f.write(b"\n% edited after indexing\n")
        (docs / "byaldi_financial_report.pdf").rename(docs / "elsewhere.pdf")
        status, _, data = s.request("GET", f"/pages/{changed}/image?width=160")
        assert status == 409 and "changed since it was indexed" in json.loads(data)["detail"]
        status, _, data = s.request("GET", f"/pages/{moved}/image?width=160")
        assert status == 409 and "not found" in json.loads(data)["detail"]


def test_group_by_file_over_http_equals_the_cli(memory_server):
    """GET and POST group_by=file: the best files with their best pages, as `vsplade search
    --group-by file --json` gives them; a bad group_by is a 422."""
    status, body = memory_server.get_json("/search", q="debian package interface", k=2, group_by="file",
                                          pages_per_file=2)
    assert status == 200 and body["hits"] == [] and len(body["files"]) == 2, body
    cli = json.loads(vsplade("search", "debian package interface", "--engine", "memory", "--index",
                             str(memory_server.index), "-k", "2", "--group-by", "file", "--pages-per-file", "2",
                             "--json").stdout)
    assert [(f["source"], [h["id"] for h in f["hits"]]) for f in body["files"]] == [
        (f["source"], [h["id"] for h in f["hits"]]) for f in cli["files"]]
    status, post = memory_server.post_json("/search", {"q": "debian package interface", "k": 2, "group_by": "file",
                                                       "pages_per_file": 2})
    assert status == 200 and post["files"] == body["files"]
    assert memory_server.get_json("/search", q="debian", group_by="page")[0] == 422
