"""OpenSearchSettings (the engine's typed options) and the index kinds' registry, layouts and
compatibility checks, offline: no node is started (the kinds on real nodes are exercised by
test_opensearch.py, test_server_side_query.py and test_sparse_ann.py)."""

from __future__ import annotations

import pytest

from vsplade.engines.base import EngineError, IndexMismatchError
from vsplade.vocab import TERM_NAMING
from vsplade_opensearch import OpenSearchEngine
from vsplade_opensearch.kinds import kind_named, kind_names, kind_of_meta
from vsplade_opensearch.mapping import check_compatible, index_body
from vsplade_opensearch.settings import OpenSearchSettings

URL = "http://127.0.0.1:9"  # never contacted: constructing an engine sends no request
INFO = {"name": "lexical", "version": "t"}


def test_cli_options_are_the_fields_marked_for_the_cli():
    assert OpenSearchEngine.cli_options == OpenSearchSettings.cli_options()
    from dataclasses import fields

    assert OpenSearchEngine.cli_options == {f.name for f in fields(OpenSearchSettings) if f.metadata.get("cli")}
    assert {"url", "user", "password", "api_key", "ca_certs", "insecure", "shards", "replicas", "server_side_query",
            "query_model", "model_id", "sparse_ann", "ann_threshold", "ann_ceiling", "retry_for"} <= OpenSearchEngine.cli_options
    # library-only options exist but are not offered to the command line
    assert {"threads", "timeout", "field", "kind"}.isdisjoint(OpenSearchEngine.cli_options)


def test_options_are_converted_once_and_secrets_stay_out_of_repr():
    e = OpenSearchEngine(index="ix", url=URL, user="u", password="pw-s3cret", shards="2", retry_for=5, threads="3")
    s = e.settings
    assert (s.shards, s.retry_for, s.threads) == (2, 5.0, 3)
    assert s.writer_options()["shards"] == 2 and s.writer_options()["retry_for"] == 5.0
    assert "pw-s3cret" not in repr(s) and "pw-s3cret" not in repr(e)
    # shards=None explicitly: the cluster's default (not the writer's 1)
    assert OpenSearchEngine(index="ix", url=URL, shards=None).settings.writer_options()["shards"] is None
    assert OpenSearchEngine(index="ix", url=URL).settings.writer_options()["shards"] == 1


@pytest.mark.parametrize("options, needle", [
    ({"sparse_ann": True, "server_side_query": True}, "--sparse-ann and --server-side-query do not combine"),
    ({"ann_threshold": 5}, "--ann-threshold and --ann-ceiling apply to --sparse-ann"),
    ({"ann_ceiling": 2.0}, "--ann-threshold and --ann-ceiling apply to --sparse-ann"),
    ({"sparse_ann": True, "ann_ceiling": 0}, "ingest ceiling must be positive"),
    ({"sparse_ann": True, "ann_threshold": 0}, "approximate_threshold must be at least 1"),
    ({"model_id": "m1"}, "--model-id applies to --server-side-query"),
    ({"shards": "two"}, "--shards: expected a number, got 'two'"),
    ({"retry_for": True}, "--retry-for: expected a number"),
    ({"scale": 100}, "no option 'scale'"),
    ({"kind": "dense"}, "unknown OpenSearch index kind 'dense' (kinds: rank_features, server_side, sparse_ann)"),
    ({"kind": "rank_features", "sparse_ann": True}, "kind='rank_features' and --sparse-ann ask for different"),
    ({"field": "a.b"}, "--field must be a plain field name"),
    ({"query_mode": "bm25"}, "query_mode must be one of rank_feature, neural_sparse"),
])
def test_a_bad_option_or_combination_is_one_line_naming_the_flags(options, needle):
    with pytest.raises(EngineError) as err:
        OpenSearchEngine(index="ix", url=URL, **options)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_the_index_name_is_checked():
    with pytest.raises(EngineError, match="needs --index"):
        OpenSearchEngine(url=URL)
    with pytest.raises(EngineError, match="invalid OpenSearch index name 'Ix'"):
        OpenSearchEngine(index="Ix", url=URL)


def test_wanted_kind_comes_from_the_flags_or_the_name():
    assert OpenSearchSettings(index="ix").wanted_kind is None  # a new index: the default; an old one: its own
    assert OpenSearchSettings(index="ix", sparse_ann=True).wanted_kind == "sparse_ann"
    assert OpenSearchSettings(index="ix", server_side_query=True).wanted_kind == "server_side"
    assert OpenSearchSettings(index="ix", kind="sparse_ann", sparse_ann=True).wanted_kind == "sparse_ann"
    assert OpenSearchEngine(index="ix", url=URL, server_side_query=True).server_side_query  # Collection.open asks


def _kinds():
    rank = kind_named("rank_features")()
    server = kind_named("server_side")({"naming": "ml-commons-decode-v1", "model_content_hash": "a" * 64,
                                        "scale": 1.0, "model_id": None})
    ann = kind_named("sparse_ann")({"fold": 32768, "ceiling_ingest": 3.0, "ceiling_search": 16.0})
    return rank, server, ann


def test_each_kind_lays_out_the_index_and_is_recognised_from_its_meta():
    assert kind_names() == ["rank_features", "server_side", "sparse_ann"]
    rank, server, ann = _kinds()
    for kind, vector_type, naming in ((rank, "rank_features", TERM_NAMING),
                                      (server, "rank_features", "ml-commons-decode-v1"),
                                      (ann, "sparse_vector", TERM_NAMING)):
        body = index_body(INFO, "vector", kind=kind)
        meta = body["mappings"]["_meta"]["vsplade"]
        assert body["mappings"]["properties"]["vector"]["type"] == vector_type
        assert meta["term_naming"] == naming
        assert kind_of_meta(meta) is type(kind)
        assert check_compatible("ix", body["mappings"], INFO, "vector", kind) == meta
    assert index_body(INFO, kind=ann)["settings"]["index"]["sparse"] is True
    assert "sparse" not in index_body(INFO, kind=rank)["settings"]["index"]
    assert index_body(INFO) == index_body(INFO, kind=rank)  # the default kind


@pytest.mark.parametrize("stored, wanted, needle", [
    ("rank_features", "sparse_ann", "built without --sparse-ann (rank_features, vsplade term names); --sparse-ann needs a new index"),
    ("rank_features", "server_side", "built without --server-side-query (rank_features, vsplade term names); "
                                     "--server-side-query needs a new index"),
    ("sparse_ann", "rank_features", "built with --sparse-ann (a sparse_vector field); write to it with --sparse-ann too"),
    ("server_side", "rank_features", "built with --server-side-query (features named for an ml-commons model); "
                                     "write to it with --server-side-query too"),
    ("server_side", "sparse_ann", "write to it with --server-side-query too"),
])
def test_writing_another_kind_into_an_index_is_refused_naming_the_flags(stored, wanted, needle):
    kinds = {k.name: k for k in _kinds()}
    mappings = index_body(INFO, kind=kinds[stored])["mappings"]
    with pytest.raises(IndexMismatchError) as err:
        check_compatible("ix", mappings, INFO, "vector", kinds[wanted])
    assert needle in str(err.value) and "use another --index or --recreate" in str(err.value)


def test_a_server_side_index_for_another_query_model_is_refused():
    _, server, _ = _kinds()
    mappings = index_body(INFO, kind=server)["mappings"]
    other = kind_named("server_side")({**server.query_model, "model_content_hash": "b" * 64})
    with pytest.raises(IndexMismatchError, match=r"built for the query model with zip sha256 aaaaaaaaaaaa\.\.\., "
                                                 r"this model gives bbbbbbbbbbbb\.\.\."):
        check_compatible("ix", mappings, INFO, "vector", other)


def test_a_sparse_ann_writer_that_joins_an_index_takes_its_stored_parameters():
    _, _, ann = _kinds()
    stored = index_body(INFO, kind=kind_named("sparse_ann")({"fold": 32768, "ceiling_ingest": 8.0}))
    joined = ann.joined(stored["mappings"]["_meta"]["vsplade"])
    assert joined.params["ceiling_ingest"] == 8.0 and joined.document_builder(None, INFO, field="vector").ceiling == 8.0


def test_new_indexes_leave_the_vector_out_of_source_unless_asked():
    rank, server, ann = _kinds()
    for kind in (rank, server):
        assert index_body(INFO, "vector", kind=kind)["mappings"]["_source"] == {"excludes": ["vector"]}
        assert "_source" not in index_body(INFO, "vector", kind=kind, vector_source=True)["mappings"]
    assert "_source" not in index_body(INFO, kind=ann)["mappings"]  # sparse ANN keeps it (not measured without)
    assert index_body(INFO, "vec2", kind=ann, vector_source=False)["mappings"]["_source"] == {"excludes": ["vec2"]}
    assert OpenSearchEngine(index="ix", url=URL, vector_source=True).settings.writer_options()["vector_source"] is True


def test_explained_contributions_are_read_from_the_lucene_explanation():
    from vsplade_opensearch.query import explained_weights

    def linear(field, term, value):
        return {"value": value, "description": f"Linear function on the {field} field for the {term} feature, "
                                               "computed as w * S from:", "details": [
                    {"value": 2.0, "description": "w, weight of this function", "details": []}]}

    tree = {"value": 3.5, "description": "sum of:", "details": [
        {"value": 3.5, "description": "sum of:", "details": [linear("vector", "Ġa b", 1.25), linear("vector", "x", 2.25)]},
        {"value": 0.0, "description": "match on required clause, product of:", "details": [
            linear("other", "y", 9.0)]}]}
    assert explained_weights(tree, "vector") == {"Ġa b": 1.25, "x": 2.25}
    assert explained_weights(None, "vector") == {}
