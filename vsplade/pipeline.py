"""Pages -> encoder -> sink, in one direction, with resume, progress and a failure report.

Used by `vsplade encode` / `vsplade index` and by anything else that fills a sink. A sink is
any `IndexWriter` (encoded dir, memory, Lucene, OpenSearch).
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from .encoded import EncodedDir, is_encoded_dir
from .encoders.base import DocumentEncoder
from .engines.base import IndexSummary, IndexWriter
from .pages import DEFAULT_DPI, PageFailure, PageReader

log = logging.getLogger(__name__)


@dataclass
class RunReport:
    summary: IndexSummary = field(default_factory=IndexSummary)
    page_failures: list[PageFailure] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.page_failures and not self.summary.failures

    def as_dict(self) -> dict:
        return {
            **self.summary.as_dict(),
            "input_failures": [str(f) for f in self.page_failures],
            "warnings": self.warnings,
        }


def _progress(desc: str, total: int | None = None, disable: bool | None = None):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="page", dynamic_ncols=True, file=sys.stderr, disable=disable)


def encoder_info(encoder: DocumentEncoder, model: str) -> dict:
    info = dict(encoder.info())
    info.setdefault("model", model)
    return info


def index_pages(
    inputs: Sequence[str],
    encoder: DocumentEncoder,
    open_writer: Callable[[dict], IndexWriter],
    model: str,
    dpi: int = DEFAULT_DPI,
    batch_size: int | None = None,
    progress: bool | None = None,
) -> RunReport:
    """Encode INPUTs (files, folders, globs) and write them through the writer that
    `open_writer(info)` returns. Pages whose ids the writer already has are skipped."""
    report = RunReport()
    if encoder.needs_fit:
        fit_reader = PageReader(inputs, dpi=dpi, render=False, text=True)
        with _progress("fitting corpus statistics", disable=progress is False) as bar:
            encoder.fit(_counting(fit_reader, bar))
    info = encoder_info(encoder, model)
    writer = open_writer(info)
    with writer:
        done = writer.done_ids()
        reader = PageReader(
            inputs, dpi=dpi, render=encoder.needs_image, text=encoder.needs_text, skip_ids=done
        )
        with _progress("encoding + indexing", disable=progress is False) as bar:
            for batch in encoder.encode_stream(_counting(reader, None), batch_size):
                writer.add(batch)
                bar.update(len(batch))
        report.summary = writer.close()
        report.summary.skipped += reader.skipped
        report.page_failures = reader.failures
    report.warnings = list(getattr(reader, "warnings", [])) + list(getattr(encoder, "warnings", []))
    return report


def index_encoded(
    encoded_dir: str | Path,
    open_writer: Callable[[dict], IndexWriter],
    progress: bool | None = None,
) -> RunReport:
    """Index vectors encoded elsewhere (an encoded dir), resuming like index_pages."""
    src = EncodedDir(encoded_dir)
    report = RunReport()
    if not src.complete:
        report.warnings.append(
            f"{encoded_dir} is still being written, or its writer was interrupted: indexing the "
            f"{len(src)} pages it has acknowledged (re-run the encode to finish it, then index again)"
        )
    writer = open_writer(src.encoder_info)
    with writer:
        done = writer.done_ids()
        with _progress("indexing", total=len(src), disable=progress is False) as bar:
            for batch in src.iter_batches():
                keep = [i for i, d in enumerate(batch.ids) if d not in done]
                report.summary.skipped += len(batch) - len(keep)
                bar.update(len(batch) - len(keep))
                for start in range(0, len(keep), 1024):
                    part = batch.select(keep[start : start + 1024])
                    writer.add(part)
                    bar.update(len(part))
        skipped = report.summary.skipped
        report.summary = writer.close()
        report.summary.skipped += skipped
    src.close()
    return report


def is_encoded_input(inputs: Sequence[str]) -> bool:
    return len(inputs) == 1 and is_encoded_dir(inputs[0])


def _counting(pages, bar):
    for page in pages:
        if bar is not None:
            bar.update(1)
        yield page
