"""ml-commons models for server-side plain-text queries: register, upload, deploy, find, check.

`register_model(conn, zip_path)` puts a `vsplade bundle --format opensearch-sparse` zip into
the cluster as a SPARSE_TOKENIZE model, offline (local file upload: `_register_meta`, then
`upload_chunk` per <= 4 MiB, then `_deploy` and a wait on its task). It is idempotent by
content hash: ml-commons records each model's `model_content_hash_value` (sha256 of the zip),
so a second run finds the model with the same hash and only deploys it if it is not deployed;
an earlier upload that stopped half-way is completed (chunks are stored by id, a re-sent chunk
overwrites itself). Model groups: ml-commons creates (or reuses) one named like the model when
no group id is given, which is what we do.

`resolve_model(conn, meta)` finds the model an index was built for (`_meta.vsplade.query_model`:
its model id, else a deployed model with its content hash) and checks that it is deployed.
Needs the cluster setting `plugins.ml_commons.allow_registering_model_via_local_file: true`.
"""

from __future__ import annotations

import hashlib
import math
import time
from pathlib import Path
from typing import Any, Mapping

from vsplade.engines.base import EngineError
from .mlcommons import ModelZipError, read_model_zip

from .connection import Connection, check_reachable, describe_error

ML = "/_plugins/_ml"
CHUNK_BYTES = 4 << 20  # ml-commons refuses chunks over 10 MB
DEPLOY_TIMEOUT = 300.0


class ModelError(EngineError):
    """A model that is missing, not deployed, of another kind or refused by the cluster."""


def _request(conn: Connection, client, method: str, path: str, body: Any = None, what: str = "") -> dict:
    from opensearchpy.exceptions import NotFoundError, OpenSearchException, RequestError

    try:
        return client.transport.perform_request(method, path, body=body)
    except NotFoundError:
        raise
    except RequestError as e:
        text = describe_error(e)
        if "no handler found" in text.lower():
            raise ModelError(conn.redact(f"opensearch {conn.url}: the cluster has no ml-commons plugin ({text})")) from None
        raise ModelError(conn.redact(f"opensearch {conn.url}: {what or path}: {text}")) from None
    except OpenSearchException as e:
        raise ModelError(conn.redact(f"opensearch {conn.url}: {what or path}: {describe_error(e)}")) from None


def get_model(conn: Connection, client, model_id: str) -> dict | None:
    from opensearchpy.exceptions import NotFoundError

    try:
        return _request(conn, client, "GET", f"{ML}/models/{model_id}", what=f"model {model_id}")
    except NotFoundError:
        return None


def find_by_hash(conn: Connection, client, content_hash: str) -> list[dict]:
    """Models (not their chunks) whose zip has this sha256, each with `model_id`; deployed first."""
    from opensearchpy.exceptions import NotFoundError

    body = {"size": 20, "query": {"bool": {"filter": [{"term": {"model_content_hash_value": content_hash}}],
                                           "must_not": [{"exists": {"field": "chunk_number"}}]}},
            "_source": {"excludes": ["content"]}}
    try:
        resp = _request(conn, client, "POST", f"{ML}/models/_search", body, what="model search")
    except NotFoundError:  # no model index yet: no models
        return []
    hits = [{**h["_source"], "model_id": h["_id"]} for h in resp.get("hits", {}).get("hits", [])]
    for m in hits:  # a search sees the model index as of its last refresh; GET is real-time
        m.update({k: v for k, v in (get_model(conn, client, m["model_id"]) or {}).items() if k == "model_state"})
    return sorted(hits, key=lambda m: m.get("model_state") != "DEPLOYED")


def _check_plugin(conn: Connection, client) -> None:
    check_reachable(conn, client)
    try:
        plugins = client.cat.plugins(format="json")
    except Exception:  # noqa: BLE001 - cat may be forbidden; the ml calls report then
        return
    names = {p.get("component") for p in plugins}
    if plugins and "opensearch-ml" not in names:
        raise ModelError(conn.redact(f"opensearch {conn.url}: the cluster has no ml-commons plugin (opensearch-ml); "
                                     "server-side queries need ml-commons and neural-search"))
    if plugins and "opensearch-neural-search" not in names:
        raise ModelError(conn.redact(f"opensearch {conn.url}: the cluster has no neural-search plugin; "
                                     "server-side queries need it"))


def _wait_task(conn: Connection, client, task_id: str, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        task = _request(conn, client, "GET", f"{ML}/tasks/{task_id}", what=f"task {task_id}")
        state = task.get("state")
        if state == "COMPLETED":
            return task
        if state in ("FAILED", "CANCELLED", "COMPLETED_WITH_ERROR"):
            raise ModelError(conn.redact(f"opensearch {conn.url}: deploying model {task.get('model_id')} {state}: "
                                         f"{task.get('error') or 'no reason given'}"))
        if time.monotonic() > deadline:
            raise ModelError(f"opensearch {conn.url}: model deploy task {task_id} not done after {timeout:.0f} s (state {state})")
        time.sleep(0.5)


def deploy(conn: Connection, client, model_id: str, timeout: float = DEPLOY_TIMEOUT) -> None:
    resp = _request(conn, client, "POST", f"{ML}/models/{model_id}/_deploy", what=f"deploy {model_id}")
    if resp.get("task_id"):
        _wait_task(conn, client, resp["task_id"], timeout)
    deadline = time.monotonic() + timeout
    while True:  # the task completes a moment before the model index says DEPLOYED
        state = (get_model(conn, client, model_id) or {}).get("model_state")
        if state == "DEPLOYED":
            return
        if time.monotonic() > deadline:
            raise ModelError(f"opensearch {conn.url}: model {model_id} is {state} after deploying")
        time.sleep(0.3)


def register_model(conn: Connection, zip_path: str | Path, name: str | None = None,
                   timeout: float = DEPLOY_TIMEOUT, client=None) -> dict:
    """Register + upload + deploy (or find) the model zip. Returns {model_id, content_hash,
    created (bool), deployed_now (bool)}. Raises ModelZipError / ModelError."""
    data, config = read_model_zip(zip_path)
    digest = hashlib.sha256(data).hexdigest()
    client = client or conn.client()
    _check_plugin(conn, client)
    found = find_by_hash(conn, client, digest)
    created = False
    if found:
        model = found[0]
        model_id = model["model_id"]
        if model.get("model_state") == "DEPLOYED":
            return {"model_id": model_id, "content_hash": digest, "created": False, "deployed_now": False}
        if model.get("model_state") == "REGISTERING":  # an upload stopped half-way: finish it
            _upload(conn, client, model_id, data, int(model.get("total_chunks") or 0))
    else:
        chunks = max(1, math.ceil(len(data) / CHUNK_BYTES))
        meta = {
            "name": name or f"vsplade-query-{digest[:12]}",
            "function_name": "SPARSE_TOKENIZE",
            "model_format": "TORCH_SCRIPT",
            "model_content_hash_value": digest,
            "model_content_size_in_bytes": len(data),
            "total_chunks": chunks,
            "description": f"vsplade query side ({config.get('naming', '?')}, mode {config.get('mode', '?')}); "
                           f"plain-text queries for indexes built with `vsplade index --server-side-query`",
        }
        resp = _request(conn, client, "POST", f"{ML}/models/_register_meta", meta, what="register model")
        model_id = resp.get("model_id")
        if not model_id:
            raise ModelError(f"opensearch {conn.url}: register model: no model id in the answer {resp}")
        created = True
        _upload(conn, client, model_id, data, chunks)
    deploy(conn, client, model_id, timeout)
    return {"model_id": model_id, "content_hash": digest, "created": created, "deployed_now": True}


def _upload(conn: Connection, client, model_id: str, data: bytes, chunks: int) -> None:
    if chunks != max(1, math.ceil(len(data) / CHUNK_BYTES)):
        raise ModelError(f"opensearch {conn.url}: model {model_id} was registered in {chunks} chunks, "
                         "not as this vsplade uploads it; delete it and register again")
    for n in range(chunks):
        part = data[n * CHUNK_BYTES:(n + 1) * CHUNK_BYTES]
        _request(conn, client, "POST", f"{ML}/models/{model_id}/upload_chunk/{n}", part, what=f"upload chunk {n}")


def check_model(conn: Connection, client, model_id: str, content_hash: str | None, index: str) -> dict:
    """The model `model_id`, refused unless it exists, is a SPARSE_TOKENIZE model with the
    index's content hash (when the index records one) and is deployed."""
    model = get_model(conn, client, model_id)
    if model is None:
        raise ModelError(f"opensearch {conn.url}: no ml-commons model {model_id!r}")
    algo = model.get("algorithm") or model.get("function_name")
    if algo and algo != "SPARSE_TOKENIZE":
        raise ModelError(f"model {model_id!r} is a {algo} model, not the SPARSE_TOKENIZE query model of index {index!r}")
    if content_hash and model.get("model_content_hash_value") != content_hash:
        raise ModelError(
            f"model {model_id!r} is not the query model index {index!r} was built for (its zip sha256 is "
            f"{str(model.get('model_content_hash_value'))[:12]}..., the index wants {content_hash[:12]}...)")
    state = model.get("model_state")
    if state != "DEPLOYED":
        raise ModelError(f"model {model_id!r} is {state}, not deployed: deploy it (`vsplade opensearch register-model "
                         f"MODEL.zip` deploys) or POST {ML}/models/{model_id}/_deploy")
    return model


def resolve_model(conn: Connection, client, index: str, query_model: Mapping[str, Any], model_id: str | None = None) -> str:
    """The deployed model id to query `index` with: `model_id` if given, else the one its _meta
    records, else a deployed model with its content hash."""
    digest = query_model.get("model_content_hash")
    if model_id:
        check_model(conn, client, model_id, digest, index)
        return model_id
    recorded = query_model.get("model_id")
    if recorded and get_model(conn, client, recorded) is not None:
        check_model(conn, client, recorded, digest, index)
        return recorded
    for m in find_by_hash(conn, client, digest) if digest else []:
        if m.get("model_state") == "DEPLOYED":
            return m["model_id"]
    raise ModelError(
        f"index {index!r}: no deployed ml-commons model with sha256 {str(digest)[:12]}... (the query model it was "
        "built for): run `vsplade bundle MODEL --format opensearch-sparse --out model.zip` and "
        "`vsplade opensearch register-model model.zip --url ...`")


__all__ = ["ModelError", "ModelZipError", "register_model", "resolve_model", "check_model", "find_by_hash", "deploy"]
