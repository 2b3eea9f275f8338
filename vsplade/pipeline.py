"""Pages -> encoder -> sink, in one direction, with resume, progress and a failure report.

Used by `vsplade encode` / `vsplade index` and by anything else that fills a sink. A sink is
any `IndexWriter` (encoded dir, memory, Lucene, OpenSearch).
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from datetime import datetime, timezone

from .catalog import choose_root, in_scope, plan, source_key
from .crashpoints import crash_point
from .encoded import EncodedDir, is_encoded_dir
from .encoders.base import DocumentEncoder
from .engines.base import EngineError, IndexSummary, IndexWriter
from .pages import DEFAULT_DPI, DEFAULT_MAX_EDGE, EMPTY_FOLDER, PageFailure, PageReader, discover, file_sha256

log = logging.getLogger(__name__)


@dataclass
class RunReport:
    summary: IndexSummary = field(default_factory=IndexSummary)
    page_failures: list[PageFailure] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    nothing_to_do: bool = False  # no input could be read: no index was created or touched

    @property
    def ok(self) -> bool:
        return not self.page_failures and not self.summary.failures and not self.nothing_to_do

    def as_dict(self) -> dict:
        return {
            **self.summary.as_dict(),
            "input_failures": [str(f) for f in self.page_failures],
            **({"nothing_indexed": True} if self.nothing_to_do else {}),
            "warnings": self.warnings,
        }


def _progress(desc: str, total: int | None = None, disable: bool | None = None, unit: str = "page"):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True, file=sys.stderr, disable=disable)


def render_cap(info: dict) -> int:
    """Never rasterise beyond what the encoder uses: a checkpoint may declare a larger
    longest edge than the default cap."""
    return max(DEFAULT_MAX_EDGE, int(info.get("longest_edge") or 0))


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
    properties: dict | None = None,
    sync: bool = False,
    label: str = "encoding + indexing",
    text_field: bool = False,
) -> RunReport:
    """Encode INPUTs (files, folders, globs) and write them through the writer that
    `open_writer(info)` returns.

    properties: the existing index's collection properties (`Engine.read_properties()`;
    None when there is no index yet). Files are named and compared as vsplade.catalog says:
    unchanged files are skipped without re-encoding (pages a crashed run left out are
    resumed), new files added; a changed file is reported, and with ``sync`` replaced (new
    pages committed before the old ones are deleted) and vanished files' pages removed.
    A run that finds nothing to read creates no index.

    text_field: each page's text layer travels in its metadata ("text") for the engine's BM25
    field (hybrid search), and the properties say "text_field": true. An index that has the
    field keeps getting text whatever this run says; one built without it refuses it (its
    older pages would have no text)."""
    report = RunReport()
    text_field = check_text_field(properties, text_field)
    disable = progress is False
    files, failures = discover(inputs)
    exists = properties is not None
    # a folder that has become empty is what --sync is for (its pages go), not a failure
    report.page_failures = [f for f in failures if not (sync and exists and f.error == EMPTY_FOLDER)]
    props = dict(properties or {})
    root = Path(props["root"]) if props.get("root") else _root(inputs, failures)

    ident: dict[Path, tuple[str, str]] = {}
    with _progress("reading files", total=len(files), disable=disable, unit="file") as bar:
        for path in files:
            try:
                ident[path] = (source_key(path, root), file_sha256(path))
            except OSError as e:
                report.page_failures.append(PageFailure(str(path), None, f"cannot read file ({e.strerror or e})"))
            bar.update(1)
    if not ident and not (sync and exists):
        report.nothing_to_do = True
        return report  # e.g. a typo'd input: no empty index whose statistics block the next run

    if encoder.needs_fit:
        state = props.get("encoder_state")
        if exists and state:
            encoder.load_state(state)  # frozen at creation: new pages get the same statistics
        else:
            fit_reader = PageReader(list(ident), dpi=dpi, render=False, text=True, identify=ident.__getitem__)
            with _progress("fitting corpus statistics", disable=disable) as bar:
                encoder.fit(_counting(fit_reader, bar))
            if not exists and getattr(encoder, "num_docs", 1) == 0:
                report.page_failures.extend(fit_reader.failures)
                report.nothing_to_do = True
                return report
    info = encoder_info(encoder, model)
    writer = open_writer(info)
    with writer:
        lifecycle = writer.supports_lifecycle
        if sync and not lifecycle:
            raise EngineError(f"--sync needs an engine that can list and delete pages; {type(writer).__name__} cannot yet")
        catalog = writer.catalog() if lifecycle else []
        files_now = {key: sha for key, sha in ident.values()}
        todo_plan = plan(files_now, catalog, scope=lambda key: in_scope(key, root, inputs), sync=sync)
        if lifecycle:
            now = datetime.now(timezone.utc).isoformat(timespec="seconds")
            new_props = {**props, "root": str(root), "created": props.get("created") or now, "updated": now}
            if text_field:
                new_props["text_field"] = True
            state = encoder.state()
            if state:
                new_props["encoder_state"] = state
            writer.set_properties(new_props)
        if todo_plan.changed:
            shown = ", ".join(todo_plan.changed[:5]) + (" ..." if len(todo_plan.changed) > 5 else "")
            report.warnings.append(
                f"{len(todo_plan.changed)} file(s) changed since they were indexed and were NOT re-indexed: "
                f"{shown}; run again with --sync to replace their pages (and remove vanished files)"
            )
        todo_keys = set(todo_plan.added) | set(todo_plan.replaced) | set(todo_plan.unchanged)
        todo = [path for path, (key, _) in ident.items() if key in todo_keys]
        # the catalog already names every page the index holds: a second listing (done_ids)
        # costs OpenSearch a full scan of the index (5-8 s at 100k pages, benchmarks/sync.py)
        done = {row["id"] for row in catalog} if lifecycle else writer.done_ids()
        reader = PageReader(
            todo, dpi=dpi, render=encoder.needs_image, text=encoder.needs_text or text_field, skip_ids=done,
            identify=ident.__getitem__, max_edge=render_cap(info),
        )
        held: dict[str, str] = {}  # page id -> text, for the pages the encoder holds (text_field)
        pages = _holding_text(reader, held) if text_field else reader
        with _progress(label, disable=disable) as bar:
            for batch in encoder.encode_stream(_counting(pages, None), batch_size):
                if text_field:
                    for i, m in zip(batch.ids, batch.meta):
                        m["text"] = held.pop(i, "")
                writer.add(batch)
                bar.update(len(batch))
        removed_pages = 0
        if todo_plan.stale_ids:
            writer.commit()  # the new versions are searchable before the old ones go
            crash_point("sync.new-pages-committed")
            removed_pages = writer.delete(todo_plan.stale_ids)
        report.summary = writer.close()
        report.summary.skipped += reader.skipped
        report.page_failures.extend(reader.failures)
        report.warnings.extend(reader.warnings)
    report.warnings.extend(getattr(encoder, "warnings", []))
    # pages an encoder had to render itself (the neural fast path) and could not
    report.page_failures.extend(getattr(encoder, "failures", []))
    counts = todo_plan.counts()
    # a new or changed file none of whose pages could be read was not added: count it as failed
    unread = {f.source for f in report.page_failures if f.page_no is None}
    failed_keys = {key for path, (key, _) in ident.items() if key in unread or str(path) in unread}
    for kind in ("added", "replaced"):
        lost = len(failed_keys & set(getattr(todo_plan, kind)))
        counts[kind] -= lost
        if lost:
            counts["failed"] = counts.get("failed", 0) + lost
    if sync:
        report.summary.extra.update(files=counts, removed_pages=removed_pages)
    else:
        report.summary.extra.update(files={k: v for k, v in counts.items() if k in ("added", "unchanged", "failed")},
                                    changed=len(todo_plan.changed))
    return report


def _root(inputs: Sequence[str], failures: list[PageFailure]) -> Path:
    """choose_root over the inputs; one it cannot resolve (a symbolic link loop, already named
    by discover as a failure) does not decide the root, and is not a traceback."""
    try:
        return choose_root(inputs)
    except (RuntimeError, OSError):  # pathlib raises RuntimeError for a loop before 3.13
        failed = {f.source for f in failures}
        return choose_root([i for i in inputs if os.fspath(i) not in failed])


def index_encoded(
    encoded_dir: str | Path,
    open_writer: Callable[[dict], IndexWriter],
    progress: bool | None = None,
    text_field: bool = False,
    properties: dict | None = None,
) -> RunReport:
    """Index vectors encoded elsewhere (an encoded dir), resuming like index_pages.

    text_field (hybrid search): an encoded dir written with --text-field holds each page's text
    and it is indexed with the vectors whatever this says; for one without, text_field=True
    reads each page's text from its source file (the indexed version: SourceError naming the
    encoded dir and the file when it moved or changed). properties: the target index's, to
    refuse text for an index built without it."""
    src = EncodedDir(encoded_dir)
    report = RunReport()
    stored_text = bool(src.properties.get("text_field"))
    text_field = check_text_field(properties, text_field or stored_text)
    if not src.complete:
        report.warnings.append(
            f"{encoded_dir} is still being written, or its writer was interrupted: indexing the "
            f"{len(src)} pages it has acknowledged (re-run the encode to finish it, then index again)"
        )
    writer = open_writer(src.encoder_info)
    with writer:
        if writer.supports_lifecycle and (src.properties or text_field):
            # the collection the vectors belong to (root, frozen corpus statistics), written as
            # index_pages writes it: later files added to this index are named and encoded as
            # if the whole collection had been indexed from its files
            now = datetime.now(timezone.utc).isoformat(timespec="seconds")
            props = dict(src.properties)
            if text_field:
                props["text_field"] = True
            writer.set_properties({**props, "created": props.get("created") or now, "updated": now})
        done = writer.done_ids()
        with _progress("indexing", total=len(src), disable=progress is False) as bar:
            for batch in src.iter_batches():
                keep = [i for i, d in enumerate(batch.ids) if d not in done]
                report.summary.skipped += len(batch) - len(keep)
                bar.update(len(batch) - len(keep))
                for start in range(0, len(keep), 1024):
                    part = batch.select(keep[start : start + 1024])
                    if text_field and not stored_text:
                        _add_source_text(part, encoded_dir)
                    writer.add(part)
                    bar.update(len(part))
        skipped = report.summary.skipped
        report.summary = writer.close()
        report.summary.skipped += skipped
    src.close()
    return report


def _add_source_text(batch, encoded_dir: str | Path) -> None:
    """Each page's text layer read from its source file into its metadata (an encoded dir
    written without --text-field); one line naming the dir and the file when it cannot."""
    from .render import SourceError, hit_text

    for m in batch.meta:
        if "text" in m:
            continue
        try:
            m["text"] = hit_text(m)
        except (SourceError, OSError, ValueError) as e:
            raise EngineError(f"{encoded_dir} holds no page text and its source file cannot give it ({e}); "
                              "encode again with --text-field, or index the PDFs themselves") from None


def is_encoded_input(inputs: Sequence[str]) -> bool:
    return len(inputs) == 1 and is_encoded_dir(inputs[0])


def check_text_field(properties: dict | None, text_field: bool) -> bool:
    """Whether this run stores page text: asked for, or the index already has the field. An
    existing index built without it cannot take it (its pages have no text): EngineError."""
    props = properties or {}
    if properties is not None and props.get("text_field"):
        return True
    if text_field and properties is not None:
        raise EngineError("this index was built without --text-field, so its pages have no text to search; "
                          "rebuild it with --text-field --recreate")
    return text_field


def _holding_text(pages, held: dict[str, str]):
    """The pages, each one's text kept in `held` until its batch is written (encoders build
    batch metadata from Page.meta(), which leaves the text out)."""
    for page in pages:
        held[page.id] = page.text or ""
        yield page


def _counting(pages, bar):
    for page in pages:
        if bar is not None:
            bar.update(1)
        yield page
