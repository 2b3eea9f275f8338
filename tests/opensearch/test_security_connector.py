"""The connector against a secured cluster (issue 25 item 2): OpenSearch 2.19.1 with the
security plugin (`testnode --security`: https signed by its own CA, users admin, writer on
pages* and reader, read-only on pages*), driven from the CLI as users run it and from
`Collection`. What is checked: the work as `writer` with the CA given (flags or variables;
never --insecure), client-certificate auth, and each refusal as one line, exit 2: a
certificate not trusted (names --ca-certs), a wrong password (never printed, -v too),
`reader` writing (names the permission and the index, nothing written), `writer` outside
pages*, and the plugin features this node lacks (sparse ANN, server-side query)."""

from __future__ import annotations

import json
import shutil
import uuid

import pytest
from security_support import admin, count, error_lines, node_logs, secret_forms, tls_dir, user_flags, vsplade

# the session's secured node starts inside the first test (a JVM plus the security index on 2 cores)
pytestmark = pytest.mark.timeout(600)


def _name(prefix: str = "pages") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _hits(p) -> list[list[str]]:
    assert p.returncode == 0, p.stderr
    return [[h["id"] for h in json.loads(line)["hits"]] for line in p.stdout.splitlines()]


def _one_error(p, *needles: str) -> str:
    """The run failed with exit 2 and exactly one error line, no traceback; that line."""
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    lines = error_lines(p.stderr)
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def pages(secured_node, pdf_dir, tmp_path_factory):
    """An index the writer built from the test PDFs (flags: --user/--password/--ca-certs)."""
    name = _name()
    p = vsplade("index", pdf_dir, "--model", "lexical", "--index", name, "--json", *user_flags(secured_node, "writer"))
    assert p.returncode == 0, p.stderr
    summary = json.loads(p.stdout.strip().splitlines()[-1])
    assert summary["indexed"] > 0 and count(secured_node, name) == summary["indexed"]
    return name


QUERIES = ["debian package management", "interface definition"]


def test_writer_index_search_sync_delete_info_with_the_ca(secured_node, pages, pdf_dir, tmp_path):
    n = count(secured_node, pages)
    # the same work with everything from the environment, as a deployment passes it
    env = {"VSPLADE_OPENSEARCH_URL": secured_node.url, "VSPLADE_OPENSEARCH_USER": "writer",
           "VSPLADE_OPENSEARCH_PASSWORD": secured_node.passwords["writer"],
           "VSPLADE_OPENSEARCH_CA_CERTS": str(secured_node.ca)}
    hits = _hits(vsplade("search", *QUERIES, "--engine", "opensearch", "--index", pages, "--json", "-k", "3", env=env))
    assert all(hits), hits
    p = vsplade("info", "--engine", "opensearch", "--index", pages, "--json", env=env)
    assert p.returncode == 0, p.stderr
    info = json.loads(p.stdout)
    assert info["pages"] == n and info["files"] == 3
    assert secured_node.passwords["writer"] not in p.stdout + p.stderr

    # sync: a folder of copies, one removed, --sync drops its pages
    docs = tmp_path / "docs"
    shutil.copytree(pdf_dir, docs)
    name = _name()
    assert vsplade("index", docs, "--model", "lexical", "--engine", "opensearch", "--index", name, env=env).returncode == 0
    full = count(secured_node, name)
    gone = sorted(docs.glob("*.pdf"))[0]
    gone.unlink()
    p = vsplade("index", docs, "--model", "lexical", "--engine", "opensearch", "--index", name, "--sync", "--json",
                env=env)
    assert p.returncode == 0, p.stderr
    after_sync = count(secured_node, name)
    assert 0 < after_sync < full
    # delete one file's pages by its path
    left = sorted(docs.glob("*.pdf"))[0]
    p = vsplade("delete", "--source", left, "--index", name, "--json", *user_flags(secured_node, "writer"))
    assert p.returncode == 0, p.stderr
    assert 0 < count(secured_node, name) < after_sync
    p = vsplade("info", "--index", name, "--json", *user_flags(secured_node, "writer"))
    assert json.loads(p.stdout)["files"] == 1


def test_collection_api_as_writer_and_reader(secured_node, pdf_dir):
    from vsplade.collection import Collection
    from vsplade.engines.base import EngineError

    name = _name()
    kw = dict(engine="opensearch", url=secured_node.url, ca_certs=str(secured_node.ca))
    col = Collection.for_writing(index=name, model="lexical", user="writer", password=secured_node.passwords["writer"], **kw)
    report = col.index(pdf_dir, progress=False)
    assert report.ok and report.summary.indexed == count(secured_node, name) > 0
    col = Collection.open(name, user="writer", password=secured_node.passwords["writer"], **kw)
    assert col.info()["pages"] == report.summary.indexed
    writer_ids = [h.id for h in col.search("camlidl interface", k=5)]
    assert writer_ids
    reader = Collection.open(name, user="reader", password=secured_node.passwords["reader"], **kw)
    assert [h.id for h in reader.search("camlidl interface", k=5)] == writer_ids
    with pytest.raises(EngineError) as e:
        reader.delete(ids=writer_ids[:1])
    assert "user 'reader' lacks the permission" in str(e.value) and repr(name) in str(e.value)
    assert count(secured_node, name) == report.summary.indexed
    assert col.delete(ids=writer_ids[:1]) == 1
    assert count(secured_node, name) == report.summary.indexed - 1


def test_client_certificate_auth(secured_node, pages, pdf_dir):
    """The writer's certificate (CN=writer), no password: flags and the variables."""
    tls = tls_dir(secured_node)
    cert = ["--client-cert", tls / "writer.pem", "--client-key", tls / "writer-key.pem", "--ca-certs", secured_node.ca]
    base = ["--engine", "opensearch", "--url", secured_node.url, "--index", pages]
    by_password = _hits(vsplade("search", *QUERIES, "--json", "-k", "3", "--index", pages, *user_flags(secured_node, "reader")))
    assert _hits(vsplade("search", *QUERIES, "--json", "-k", "3", *base, *cert)) == by_password
    env = {"VSPLADE_OPENSEARCH_CLIENT_CERT": str(tls / "writer.pem"),
           "VSPLADE_OPENSEARCH_CLIENT_KEY": str(tls / "writer-key.pem"),
           "VSPLADE_OPENSEARCH_CA_CERTS": str(secured_node.ca)}
    assert _hits(vsplade("search", *QUERIES, "--json", "-k", "3", *base, env=env)) == by_password
    # the certificate is the writer: it may create and write a pages* index
    name = _name()
    p = vsplade("index", pdf_dir, "--model", "lexical", "--json", *base[:-1], name, *cert)
    assert p.returncode == 0, p.stderr
    assert count(secured_node, name) == json.loads(p.stdout.strip().splitlines()[-1])["indexed"] > 0
    # without a certificate or a password the cluster refuses: one line
    _one_error(vsplade("search", "x", *base, "--ca-certs", secured_node.ca), "HTTP 401", "--user/--password")
    # a key file that is not there: one line naming the flag
    _one_error(vsplade("search", "x", *base, "--client-cert", tls / "writer.pem", "--client-key", tls / "nope.pem",
                       "--ca-certs", secured_node.ca), "--client-key", "no such file")


def test_untrusted_certificate_names_ca_certs(secured_node, pages):
    line = _one_error(vsplade("search", "debian", "--index", pages, *user_flags(secured_node, "reader", ca=False)),
                      "not trusted", "--ca-certs", secured_node.url)
    assert "certificate verify failed" in line
    # a CA file that does not sign the node's certificate (the writer's client certificate)
    wrong = tls_dir(secured_node) / "writer.pem"
    p = vsplade("search", "debian", "--index", pages, *user_flags(secured_node, "reader", ca=False), "--ca-certs", wrong)
    _one_error(p, "not trusted", f"--ca-certs {wrong} does not sign it")
    # --insecure is the escape hatch, never needed with the right CA (every other test)
    assert _hits(vsplade("search", "debian", "--index", pages, "--json", "--insecure",
                         *user_flags(secured_node, "reader", ca=False)))[0]


@pytest.mark.parametrize("verbose", [False, True])
def test_wrong_password_is_one_line_and_never_printed(secured_node, pages, pdf_dir, verbose):
    wrong = f"Wr0ng-{uuid.uuid4().hex}"
    v = ["-v"] if verbose else []
    runs = [
        vsplade(*v, "search", "debian", "--index", pages, *user_flags(secured_node, "writer", wrong)),
        vsplade(*v, "index", pdf_dir, "--model", "lexical", "--index", pages, *user_flags(secured_node, "writer", wrong)),
        vsplade(*v, "info", "--engine", "opensearch", "--index", pages,
                env={"VSPLADE_OPENSEARCH_URL": secured_node.url, "VSPLADE_OPENSEARCH_USER": "writer",
                     "VSPLADE_OPENSEARCH_PASSWORD": wrong, "VSPLADE_OPENSEARCH_CA_CERTS": str(secured_node.ca)}),
    ]
    for p in runs:
        _one_error(p, "authentication failed (HTTP 401", "for user 'writer'", "--user/--password")
        for s in secret_forms("writer", wrong):
            assert s not in p.stdout and s not in p.stderr
    if verbose:  # -v logs the requests: the 401 is there, the password is not
        assert "401" in runs[0].stderr.replace(error_lines(runs[0].stderr)[0], "")
    assert all(s not in node_logs(secured_node) for s in secret_forms("writer", wrong))


def test_reader_searches_but_cannot_write(secured_node, pages, pdf_dir, tmp_path):
    before = count(secured_node, pages)
    reader = user_flags(secured_node, "reader")
    assert _hits(vsplade("search", *QUERIES, "--index", pages, "--json", "-k", "3", *reader)) == \
        _hits(vsplade("search", *QUERIES, "--index", pages, "--json", "-k", "3", *user_flags(secured_node, "writer")))
    # a new index: the create is refused, nothing is made
    name = _name()
    _one_error(vsplade("index", pdf_dir, "--model", "lexical", "--index", name, *reader),
               "user 'reader' lacks the permission indices:admin/create", f"index {name!r}")
    assert count(secured_node, name) is None
    # the existing index: a new file is refused before any page is written
    docs = tmp_path / "more"
    docs.mkdir()
    shutil.copy(sorted(pdf_dir.glob("*.pdf"))[0], docs / "copy.pdf")
    _one_error(vsplade("index", docs, "--model", "lexical", "--index", pages, *reader),
               "user 'reader' lacks the permission", f"index {pages!r}")
    _one_error(vsplade("delete", "--source", "debian-refcard-en-a4.pdf", "--index", pages, *reader),
               "user 'reader' lacks the permission", f"index {pages!r}")
    assert count(secured_node, pages) == before
    p = vsplade("info", "--index", pages, "--json", *reader)
    assert p.returncode == 0 and json.loads(p.stdout)["pages"] == before, p.stderr


def test_writer_outside_pages_is_refused(secured_node, pdf_dir):
    name = _name("other")
    _one_error(vsplade("index", pdf_dir, "--model", "lexical", "--index", name, *user_flags(secured_node, "writer")),
               "user 'writer' lacks the permission", f"index {name!r}")
    assert admin(secured_node, "HEAD", f"/{name}")[0] == 404


def test_plugin_features_say_this_cluster_lacks_them(secured_node, pdf_dir):
    """The secured line (2.19.1 + security) has no neural-search or ml-commons plugin."""
    writer = user_flags(secured_node, "writer")
    name = _name()
    _one_error(vsplade("index", pdf_dir, "--model", "lexical", "--index", name, "--sparse-ann", *writer),
               "--sparse-ann needs the neural-search plugin", "does not have")
    assert count(secured_node, name) is None
    # server-side query: the documents need no plugin; searching needs ml-commons
    p = vsplade("index", pdf_dir, "--model", "lexical", "--index", name, "--server-side-query", *writer)
    assert p.returncode == 0, p.stderr
    _one_error(vsplade("search", "debian", "--index", name, "--server-side-query", *writer), "no ml-commons plugin")


def test_tls_options_from_flags_and_variables(tmp_path, monkeypatch):
    """No node needed: the files are checked, the variables are read, nothing secret is shown."""
    from vsplade.engines.base import EngineError
    from vsplade_opensearch import OpenSearchEngine

    for var in ("URL", "USER", "PASSWORD", "API_KEY", "CA_CERTS", "CLIENT_CERT", "CLIENT_KEY"):
        monkeypatch.delenv(f"VSPLADE_OPENSEARCH_{var}", raising=False)
    cert, key, ca = (tmp_path / n for n in ("c.pem", "k.pem", "ca.pem"))
    for f in (cert, key, ca):
        f.write_text("-----BEGIN CERTIFICATE-----\n")
    monkeypatch.setenv("VSPLADE_OPENSEARCH_CA_CERTS", str(ca))
    monkeypatch.setenv("VSPLADE_OPENSEARCH_CLIENT_CERT", str(cert))
    monkeypatch.setenv("VSPLADE_OPENSEARCH_CLIENT_KEY", str(key))
    conn = OpenSearchEngine(index="pages", url="https://127.0.0.1:9").conn
    assert (conn.ca_certs, conn.client_cert, conn.client_key) == (str(ca), str(cert), str(key))
    assert "client-cert" in repr(conn)
    with pytest.raises(EngineError, match="--client-key .*nope.pem: no such file"):
        OpenSearchEngine(index="pages", url="https://127.0.0.1:9", client_key=str(tmp_path / "nope.pem"))
    monkeypatch.delenv("VSPLADE_OPENSEARCH_CLIENT_CERT")
    with pytest.raises(EngineError, match="--client-key given without --client-cert"):
        OpenSearchEngine(index="pages", url="https://127.0.0.1:9")
    with pytest.raises(EngineError, match="--client-cert applies to https:// URLs"):
        OpenSearchEngine(index="pages", url="http://127.0.0.1:9", client_cert=str(cert), client_key=str(key))
