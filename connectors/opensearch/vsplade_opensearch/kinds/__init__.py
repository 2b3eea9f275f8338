"""OpenSearch index kinds: how an index stores page vectors, one strategy object each.

- rank_features (rank_features.py): the default; a `rank_features` field keyed by vsplade's
  term names, exact FeatureField scores, `rank_feature` queries.
- server_side (server_side.py): `rank_features` keyed by the names an ml-commons
  SPARSE_TOKENIZE model emits (--server-side-query), searched in plain text.
- sparse_ann (sparse_ann.py): a SEISMIC `sparse_vector` field over folded token ids
  (--sparse-ann), approximate scores.

The kind of an existing index is read once from its `_meta.vsplade` (`kind_of_meta`), the
kind of a new index from the settings (`OpenSearchSettings.wanted_kind`); everything else
asks the kind object (IndexKind in base.py). Adding a kind: one new module with an
`@register`ed IndexKind subclass, plus its name in the import line below.
"""

from .base import IndexKind, default_kind, kind_named, kind_names, kind_of_meta, mismatch, register

from . import rank_features, server_side, sparse_ann  # noqa: E402,F401 - each module registers its kind

__all__ = ["IndexKind", "default_kind", "kind_named", "kind_names", "kind_of_meta", "mismatch", "register"]
