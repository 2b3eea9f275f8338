"""`vsplade opensearch ...`: the connector's own subcommands, a typer app that the core CLI
mounts from the `vsplade.commands` entry point (name `opensearch`); core never imports it.

register-model: put a `vsplade bundle MODEL --format opensearch-sparse` zip into the cluster
as an ml-commons SPARSE_TOKENIZE model (ml_model.register_model) and print its id.
Errors are one line, `error: ...`, exit 2, with every credential removed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

import typer

from .connection import ENV_API_KEY, ENV_PASSWORD

EXIT_USAGE = 2

app = typer.Typer(no_args_is_help=True, help="OpenSearch cluster tasks (vsplade-opensearch).", add_completion=False,
                  rich_markup_mode=None, context_settings={"help_option_names": ["-h", "--help"]})


@app.callback()
def _group() -> None:
    """OpenSearch cluster tasks (vsplade-opensearch)."""
    # a callback keeps this a command group with a single command too (typer would otherwise
    # run that command as the app itself, and `register-model` would be read as its argument)


def _fail(msg: str, secrets=()) -> None:
    """One line on stderr and exit 2. Messages from the connector are already redacted by
    Connection.redact; this also removes the secrets given on the command line or in the
    environment, should any other message quote one."""
    for s in (*secrets, os.environ.get(ENV_PASSWORD), os.environ.get(ENV_API_KEY)):
        if s and len(s) >= 3:
            msg = msg.replace(s, "***")
    typer.echo(f"error: {msg}", err=True)
    raise typer.Exit(EXIT_USAGE)


@app.command("register-model")
def register_model(
    model_zip: Path = typer.Argument(..., help="A model zip from `vsplade bundle MODEL --format opensearch-sparse`."),
    url: Optional[str] = typer.Option(None, "--url", help="The URL (several: comma-separated). [env: VSPLADE_OPENSEARCH_URL]"),
    user: Optional[str] = typer.Option(None, "--user", help="Basic-auth user. [env: VSPLADE_OPENSEARCH_USER]"),
    password: Optional[str] = typer.Option(None, "--password", show_default=False,
                                           help="Basic-auth password (prefer the env var). [env: VSPLADE_OPENSEARCH_PASSWORD]"),
    api_key: Optional[str] = typer.Option(None, "--api-key", show_default=False,
                                          help="API key (prefer the env var). [env: VSPLADE_OPENSEARCH_API_KEY]"),
    ca_certs: Optional[str] = typer.Option(None, "--ca-certs", help="CA bundle for TLS."),
    insecure: bool = typer.Option(False, "--insecure", help="Do not verify TLS certificates."),
    name: Optional[str] = typer.Option(None, "--name", help="Model (and model group) name. [default: vsplade-query-<sha256 prefix>]"),
    index_: Optional[str] = typer.Option(None, "--index", "-i", help="Also record the model id in this --server-side-query index's _meta."),
    timeout: float = typer.Option(300.0, "--timeout", min=1, help="Seconds to wait for the deploy."),
    as_json: bool = typer.Option(False, "--json", help="Print {model_id, content_hash, created, deployed_now} as JSON."),
):
    """Register, upload and deploy the query model in ml-commons (offline: the zip is uploaded from this machine); prints the model id. A second run finds the model by its content hash."""
    from vsplade.engines.base import EngineError

    from .connection import Connection
    from .engine import OpenSearchEngine
    from .mlcommons import ModelZipError
    from .ml_model import register_model as do_register

    given = {k: v for k, v in dict(url=url, user=user, password=password, api_key=api_key, ca_certs=ca_certs,
                                    insecure=insecure).items() if v is not None and v is not False}
    try:
        conn = Connection.from_options(given)
        result = do_register(conn, model_zip, name=name, timeout=timeout)
        if index_:
            OpenSearchEngine(index=index_, **given).record_model_id(result["model_id"])
    except (EngineError, ModelZipError) as e:
        _fail(str(e), (password, api_key))
    if as_json:
        typer.echo(json.dumps(result))
    else:
        what = "registered and deployed" if result["created"] else ("deployed" if result["deployed_now"] else "already deployed")
        typer.echo(f"{what}: model {result['model_id']} (sha256 {result['content_hash'][:12]}...)", err=True)
        typer.echo(result["model_id"])
