"""`vsplade bundle MODEL --format opensearch-sparse`: the query side as an ml-commons
SPARSE_TOKENIZE model zip, for `vsplade opensearch register-model`.

Registered in the `vsplade.bundle_formats` entry-point group (name `opensearch-sparse`); the
core CLI calls it as `(out, query_encoder) -> (path, sha256)` and never imports this package.
"""

from __future__ import annotations

import os
from pathlib import Path

from vsplade.bundle import BundleError


def write_opensearch_sparse(out_zip: str | Path, qenc) -> tuple[Path, str]:
    """The query side as an ml-commons SPARSE_TOKENIZE model zip (tokenizer.json + idf.json +
    vsplade.json; naming rules in mlcommons.py). Returns (path, sha256 of the zip)."""
    from .mlcommons import ServerSideNaming

    out = Path(out_zip)
    if out.is_dir():
        raise BundleError(f"{out}: is a directory; --format opensearch-sparse writes one .zip file")
    naming = ServerSideNaming(qenc)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(naming.zip_bytes())
    os.chmod(tmp, 0o644)
    os.replace(tmp, out)  # a crash never leaves a half zip under the final name
    return out, naming.content_hash
