"""The document-encoder interface shared by the lexical and the neural (V-SPLADE) encoders."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Iterable, Iterator, Sequence

from ..pages import Page
from ..query import QueryEncoder
from ..sparse import SparseBatch


class DocumentEncoder(ABC):
    name: str = ""
    needs_image: bool = True  # the page reader renders images only when an encoder needs them
    # the encoder looks at pixels at all: pages that exist only as images (a dataset's rows,
    # not files it could render itself) must come with their image even when needs_image is
    # False because the encoder renders files on its own (the neural fast path)
    uses_pixels: bool = True
    needs_text: bool = False
    needs_fit: bool = False  # True: call fit() over the corpus before encode()
    batch_size: int = 8

    @abstractmethod
    def info(self) -> dict[str, Any]:
        """JSON-able description stored with encoded dirs and indexes; equal info = same vectors."""

    @abstractmethod
    def encode(self, pages: Sequence[Page]) -> SparseBatch:
        """One row per page, in order, ids and metadata from the pages."""

    def fit(self, pages: Iterable[Page]) -> None:
        """Collect corpus statistics (only encoders with needs_fit)."""

    def state(self) -> dict | None:
        """The fitted corpus statistics as JSON (kept with the index, so that pages added
        later are encoded with the same statistics); None for encoders without any."""
        return None

    def load_state(self, state: dict) -> None:
        """Use statistics that state() returned instead of fitting."""
        raise ValueError(f"the {self.name} encoder keeps no corpus statistics")

    def encode_stream(self, pages: Iterable[Page], batch_size: int | None = None) -> Iterator[SparseBatch]:
        """Encode a stream of pages; encoders with background workers override this."""
        for chunk in batched(pages, batch_size or self.batch_size):
            yield self.encode(chunk)

    @abstractmethod
    def query_encoder(self) -> QueryEncoder:
        """The torch-free query side that goes with these document vectors."""


def batched(items: Iterable, size: int):
    chunk = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def no_text_layer_warning(empty_pages: Sequence[str], vector: str, advice: str) -> list[str]:
    """The text-only encoders' warning: one line for all pages without a text layer (a scanned
    folder has thousands), naming the first few; none when every page had text."""
    if not empty_pages:
        return []
    shown = ", ".join(empty_pages[:3]) + (" ..." if len(empty_pages) > 3 else "")
    return [f"{len(empty_pages)} page(s) have no text layer and got an empty {vector} ({shown}); {advice}"]
