"""The CLI end to end on real PDFs with the lexical encoder and the exact engine."""

import json

import pytest
from typer.testing import CliRunner

from vsplade.cli import app

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def indexed(tmp_path, good_inputs, bad_inputs):
    ix = tmp_path / "ix"
    r = run("index", good_inputs, bad_inputs, "--model", "lexical", "--engine", "memory", "--index", ix, "--json")
    return ix, r


def test_index_reports_failures_with_exit_1_and_indexes_the_rest(indexed):
    ix, r = indexed
    assert r.exit_code == 1, r.output
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["indexed"] == 3  # refcard p1, p2 + ai.jpeg (empty: no text layer)
    assert summary["empty"] == 1
    assert len(summary["input_failures"]) == 8
    assert any("encrypted.pdf" in f and "encrypted" in f for f in summary["input_failures"])
    # before: "files: 10 added" although 8 of the 10 files gave no page
    assert summary["files"] == {"added": 2, "unchanged": 0, "failed": 8}, summary["files"]


@pytest.mark.parametrize("typo, hint", [("lexcal", "did you mean 'lexical'?"), ("lexical-nodf", "did you mean 'lexical-noidf'?"),
                                        ("bm25", "no such model (built in")])
def test_an_unknown_model_name_says_which_models_exist(tmp_path, good_inputs, typo, hint):
    for args in (["index", good_inputs, "--model", typo, "--engine", "memory", "--index", tmp_path / "ix"],
                 ["bundle", typo, "--out", tmp_path / "b"]):
        r = run(*args)
        lines = [x for x in r.output.splitlines() if x.strip()]
        assert r.exit_code == 2 and len(lines) == 1 and f"--model {typo}: no such model" in lines[0] and hint in lines[0], r.output
        assert "lexical, lexical-noidf" in lines[0]


def test_rerun_resumes_without_duplicates(indexed, good_inputs):
    ix, _ = indexed
    r = run("index", good_inputs, "--model", "lexical", "--engine", "memory", "--index", ix, "--json")
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["indexed"] == 0 and summary["skipped"] == 3


def test_search_json_lines(indexed):
    ix, _ = indexed
    r = run("search", "apt-get install", "ghost query zzqx", "--engine", "memory", "--index", ix, "--json", "-k", "2")
    assert r.exit_code == 0, r.output
    lines = [json.loads(x) for x in r.stdout.strip().splitlines()]
    assert [x["query"] for x in lines] == ["apt-get install", "ghost query zzqx"]
    hits = lines[0]["hits"]
    assert 1 <= len(hits) <= 2 and set(hits[0]) - {"path"} == {"id", "score", "source", "page"}
    assert hits[0]["source"].endswith("refcard.pdf") and hits[0]["page"] in (1, 2)
    assert hits[0]["score"] >= hits[-1]["score"] > 0


def test_encode_then_index_the_encoded_dir(tmp_path, good_inputs):
    enc = tmp_path / "enc"
    r = run("encode", good_inputs, "--model", "lexical", "--out", enc)
    assert r.exit_code == 0, r.output
    r = run("index", enc, "--engine", "memory", "--index", tmp_path / "ix2", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout.strip().splitlines()[-1])["indexed"] == 3
    r = run("search", "apt", "--engine", "memory", "--index", tmp_path / "ix2", "--json")
    assert json.loads(r.stdout)["hits"], r.output


def test_usage_errors_exit_2(tmp_path, good_inputs):
    r = run("index", good_inputs, "--engine", "memory", "--index", tmp_path / "x")
    assert r.exit_code == 2 and "--model is required" in r.output
    r = run("index", good_inputs, "--model", "lexical", "--engine", "nosuch", "--index", tmp_path / "x")
    assert r.exit_code == 2 and "unknown engine 'nosuch'" in r.output
    r = run("search", "q", "--engine", "memory", "--index", tmp_path / "missing")
    assert r.exit_code == 2 and "missing" in r.output
    r = run("index", good_inputs, "--model", "/no/such/checkpoint", "--engine", "memory", "--index", tmp_path / "x")
    assert r.exit_code == 2, r.output
    r = run("index", good_inputs, "--model", "lexical", "--engine", "memory", "--index", tmp_path / "x", "--scale", "10")
    assert r.exit_code == 2 and "--scale: not an option of the memory engine (its options: none besides --index)" in r.output


@pytest.mark.parametrize("engine", ["memory", "lucene"])
def test_opensearch_env_applies_to_opensearch_only(tmp_path, good_inputs, monkeypatch, engine):
    """Before: with VSPLADE_OPENSEARCH_URL exported (as the README suggests for testing your
    own cluster), `vsplade search` on the default Lucene engine failed ("--url do(es) not
    apply") and memory silently took the URL."""
    if engine == "lucene":
        pytest.importorskip("vsplade_lucene")
    ix = tmp_path / "ix"
    monkeypatch.setenv("VSPLADE_OPENSEARCH_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("VSPLADE_OPENSEARCH_USER", "someone")
    r = run("index", good_inputs, "--model", "lexical", "--engine", engine, "--index", ix)
    assert r.exit_code == 0, r.output
    r = run("search", "debian package", "--engine", engine, "--index", ix, "--json")
    assert r.exit_code == 0 and '"hits": [{' in r.output, r.output
    r = run("info", "--engine", engine, "--index", ix)
    assert r.exit_code == 0, r.output


@pytest.mark.parametrize("engine, flags, named, takes", [
    ("memory", ["--url", "http://127.0.0.1:9200"], "--url", "none besides --index"),
    ("lucene", ["--url", "http://127.0.0.1:9200", "--user", "u"], "--url, --user", "--scale"),
    ("opensearch", ["--scale", "100"], "--scale", "--ann-ceiling"),
])
def test_a_flag_the_engine_does_not_take_is_one_line(tmp_path, good_inputs, engine, flags, named, takes):
    """Before: memory silently accepted --url and OpenSearch silently ignored --scale."""
    ix = "ix" if engine == "opensearch" else tmp_path / "ix"  # a regression must not write into the cwd
    r = run("index", good_inputs, "--model", "lexical", "--engine", engine, "--index", ix, *flags)
    lines = [x for x in r.output.splitlines() if x.strip()]
    assert r.exit_code == 2 and len(lines) == 1, r.output
    assert lines[0].startswith(f"error: {named}: not an option of the {engine} engine (its options: ") and takes in lines[0]


def test_bundle_and_inspect(tmp_path, pdf_dir):
    r = run("bundle", "lexical", "--out", tmp_path / "b")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "b" / "query_table.safetensors").is_file()
    r = run("inspect", pdf_dir / "debian-refcard-en-a4.pdf", "--model", "lexical", "-q", "apt-get install", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["nnz"] > 50 and out["max"] == out["top_tokens"][0][1]
    q = out["queries"][0]
    assert q["score"] > 0 and q["score"] >= sum(c for _, c in q["top_matches"]) - 1e-9


def test_inspect_with_index_scores_as_search_does(tmp_path, pdf_dir):
    """Before: `inspect PAGE -q Q` scored the page with its own lexical statistics (3.39 where
    search gave the same page 11.07). With --index: the index's model and frozen statistics,
    the same score and page id as search; it says which statistics it used."""
    ix = tmp_path / "ix"
    assert run("index", pdf_dir, "--model", "lexical", "--engine", "memory", "--index", ix).exit_code == 0
    pdf = pdf_dir / "debian-refcard-en-a4.pdf"
    r = run("search", "apt-get install", "--engine", "memory", "--index", ix, "--source", pdf.name,
            "--page-min", "1", "--page-max", "1", "--json", "-k", "1")
    assert r.exit_code == 0, r.output
    hit = json.loads(r.stdout)["hits"][0]
    r = run("inspect", pdf, "--index", ix, "--engine", "memory", "-q", "apt-get install", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["queries"][0]["score"] == pytest.approx(hit["score"], rel=1e-5)
    assert out["page"]["id"] == hit["id"]  # one page-id rule for inspect and index
    assert "the index's" in out["statistics"]
    alone = json.loads(run("inspect", pdf, "--model", "lexical", "-q", "apt-get install", "--json").stdout)
    assert "this page alone" in alone["statistics"]
    assert alone["queries"][0]["score"] != pytest.approx(hit["score"], rel=1e-3)


def test_pruning_flags_are_refused_for_the_lexical_encoder(tmp_path, good_inputs):
    r = run("encode", good_inputs, "--model", "lexical", "--out", tmp_path / "e", "--top-k", "10")
    assert r.exit_code == 2 and "top_k" in r.output and "V-SPLADE" in r.output
