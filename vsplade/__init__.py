"""vsplade: V-SPLADE page vectors into real search engines.

Importing this package (and the query side: vocab, query, bundle) never imports torch.
"""

__version__ = "0.1.0"

from .pages import Page, PageFailure, PageReader  # noqa: E402
from .query import QueryEncoder  # noqa: E402
from .sparse import SparseBatch  # noqa: E402
from .vocab import VOCAB_SIZE, Vocabulary, default_vocabulary  # noqa: E402

__all__ = ["Collection", "Page", "PageFailure", "PageReader", "QueryEncoder", "SparseBatch", "VOCAB_SIZE", "Vocabulary", "default_vocabulary"]


def __getattr__(name):
    # Collection pulls in the engine registry and the pipeline: only when asked for
    if name == "Collection":
        from .collection import Collection

        return Collection
    raise AttributeError(f"module 'vsplade' has no attribute {name!r}")
