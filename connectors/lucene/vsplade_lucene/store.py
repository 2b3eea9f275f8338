"""What a vsplade Lucene index dir holds besides Lucene's own files, and its consistency rules.

Layout (the Lucene index lives at the top of DIR, so Pyserini's
``LuceneImpactSearcher(DIR, ...)`` opens it as is)::

    DIR/segments_N, DIR/_0.cfs ...   the Lucene impact index (field ``contents``, ``id``)
    DIR/vsplade-lucene.json          format, the encoder ``info``, scale, term naming, state
    DIR/vsplade-docs.jsonl           one {"id", "source", "page"} per Lucene doc, in doc-id order

Lucene only manages files with its own name patterns, so these two files are left alone by
IndexWriter. Crash safety: doc lines are appended and fsynced BEFORE each Lucene commit; on
re-open the doc file is cut back to the committed Lucene doc count. So the committed ids are
exactly the first ``maxDoc`` lines, and a resumed run re-adds the rest.

One writer at a time: every writer takes `open_locked` (vsplade.locking.WriterLock, a flock on
``DIR/.vsplade-write.lock``) before it touches DIR and holds it until close/abort; Lucene's
own ``write.lock`` held by another program (Pyserini/Anserini IndexCollection) is reported
the same way (`IndexLockedError`). ``--recreate`` empties DIR only under that lock, in an
order a SIGKILL cannot turn into a dir vsplade refuses: the commit point (``segments_N``)
first, so Lucene sees no index at once, our config last, so DIR stays ours until it is empty.
Files a killed first run can leave before the config exists (the lock file, a config temp)
do not make a dir foreign.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any, Mapping

import orjson

from vsplade.crashpoints import crash_point
from vsplade.encoded import write_failure
from vsplade.engines.base import EngineError, IndexMismatchError, check_same_encoder
from vsplade.locking import LOCK_FILE, IndexLockedError, WriterLock
from vsplade.vocab import TERM_NAMING, VOCAB_SIZE

FORMAT = "vsplade-lucene"
CONFIG_FILE = "vsplade-lucene.json"
DOCS_FILE = "vsplade-docs.jsonl"
CONTENTS_FIELD = "contents"  # Anserini's Constants.CONTENTS
ID_FIELD = "id"  # Anserini's Constants.ID (stored + sorted doc values, for Pyserini's tie-break)
RAW_FIELD = "raw"  # Anserini's Constants.RAW: we store the page metadata as JSON there
TEXT_FIELD = "text"  # the page's text layer, StandardAnalyzer + BM25 (hybrid search, --text-field)
LUCENE_LOCK = "write.lock"  # Lucene's IndexWriter lock (NativeFSLockFactory)
CONFIG_TMP = CONFIG_FILE + ".tmp"
# what a run killed before its first config write can leave in a new dir
# what a run killed before its first config write can leave in a new dir (Lucene's lock file
# without a commit point is no index)
_LEFTOVERS = {LOCK_FILE, CONFIG_TMP, LUCENE_LOCK}
# Java exceptions that mean a file could not be read or written (a full disk, no permission)
_JAVA_IO = ("java.io.", "java.nio.file.")
_DISK_WORDS = ("No space left on device", "Disk quota exceeded", "File too large")

log = logging.getLogger(__name__)


def java_line(e: BaseException) -> str:
    """A Java exception as one line ("java.io.IOException: File too large"). str() of a pyjnius
    JavaException is the whole Java stack (33 lines for a full disk): that is logged at INFO,
    which -v shows, and never printed otherwise."""
    cls, msg = getattr(e, "classname", None), getattr(e, "innermessage", None)
    stack = getattr(e, "stacktrace", None)
    if stack:
        log.info("Java stack trace:\n%s", "\n".join(map(str, stack)))
    if cls:
        return f"{cls}: {msg}" if msg else str(cls)
    text = str(e).strip().removeprefix("JVM exception occurred:").strip()
    return text.splitlines()[0] if text else type(e).__name__


def java_error(path: Path, e: BaseException, doing: str) -> EngineError:
    """One line naming the index and what to do, for a Java exception while `doing` (the
    ImpactIndexer wraps a worker's IOException in another IOException: either way its class
    and message are the root cause's)."""
    line = java_line(e)
    text = str(e)  # the causes too: a full disk may be wrapped in another exception
    if line.startswith(_JAVA_IO) or any(w in text for w in _DISK_WORDS):
        reason = line if any(w in line for w in _DISK_WORDS) else next(
            (f"{line}; caused by {w}" for w in _DISK_WORDS if w in text), line)
        return EngineError(write_failure(path, f"{doing}: {reason}"))
    return EngineError(f"{path}: {doing} failed ({line}); run with -v for the Java stack trace")


def _os_error(file: Path, e: OSError) -> EngineError:
    return EngineError(write_failure(file, e.strerror or str(e), e.errno))


def is_lucene_dir(path: Path) -> bool:
    return path.is_dir() and any(path.glob("segments_*"))


def read_config(path: Path) -> dict | None:
    cfg = path / CONFIG_FILE
    if not cfg.is_file():
        return None
    try:
        return json.loads(cfg.read_text())
    except ValueError as e:
        raise EngineError(f"{cfg}: invalid JSON ({e})") from None


def write_config(path: Path, config: Mapping[str, Any], step: str = "config") -> None:
    """Atomic config write; `step` names its crash points (lucene.STEP.config-tmp / -written)."""
    tmp = path / CONFIG_TMP
    try:
        with open(tmp, "w") as f:
            f.write(json.dumps(config, indent=1, sort_keys=True))
            f.flush()
            os.fsync(f.fileno())
        crash_point(f"lucene.{step}.config-tmp")
        os.replace(tmp, path / CONFIG_FILE)
    except OSError as e:  # a full disk: name the file and what to do, not a bare errno
        raise _os_error(path / CONFIG_FILE, e) from e
    crash_point(f"lucene.{step}.config-written")


def new_config(info: Mapping[str, Any], scale: float, build: str) -> dict:
    return {
        "format": FORMAT,
        "version": 1,
        "encoder": dict(info),
        "scale": scale,
        "term_naming": TERM_NAMING,
        "vocab_size": VOCAB_SIZE,
        "fields": {"contents": CONTENTS_FIELD, "id": ID_FIELD, "raw": RAW_FIELD},
        "build": build,
        "state": "writing",
    }


def check_compatible(path: Path, old: Mapping[str, Any], info: Mapping[str, Any], scale: float) -> None:
    if old.get("format") != FORMAT:
        raise IndexMismatchError(f"{path / CONFIG_FILE}: not a vsplade Lucene index (format={old.get('format')!r})")
    check_same_encoder(str(path), old.get("encoder"), info, "use another --index dir or --recreate")
    if float(old.get("scale", 0)) != float(scale):
        raise IndexMismatchError(
            f"{path} was built with impact scale {old.get('scale')}, not {scale}; use --recreate to rebuild"
        )
    if old.get("term_naming") != TERM_NAMING:
        raise IndexMismatchError(f"{path} uses term naming {old.get('term_naming')!r}, not {TERM_NAMING!r}")


# how a refusal names the route an index was built by (config "build")
BUILD_ROUTES = {"direct": "the direct route", "jsonvector": "JsonVectorCollection"}


def open_build(path: Path, recreate: bool, lock_created: bool, info: Mapping[str, Any], scale: float,
               build: str) -> dict | None:
    """DIR checked (or emptied for --recreate) for a writer of route `build`: the config of the
    index already there, refused unless it has the same encoder, scale and route; None for a
    new index. The caller holds the writer lock."""
    prepare_dir(path, recreate, lock_created)
    old = read_config(path)
    if old is not None:
        check_compatible(path, old, info, scale)
        if old.get("build") != build:
            was = BUILD_ROUTES.get(old.get("build"), repr(old.get("build")))
            raise EngineError(f"{path} was built through {was}; add pages through that route or --recreate")
    return old


def open_locked(path: Path) -> tuple[WriterLock, bool]:
    """Take the exclusive writer lock on DIR (creating DIR) before anything else touches it.
    Returns the lock and whether its lock file is new (removed again if DIR is refused)."""
    if path.exists() and not path.is_dir():
        raise EngineError(f"--index {path} exists and is not a directory")
    created = not (path / LOCK_FILE).exists()
    try:
        lock = WriterLock(path).acquire()
    except OSError as e:  # a parent that is a file, no permission, read-only fs...
        raise EngineError(f"--index {path}: cannot create or lock it ({e.strerror or e})") from None
    crash_point("lucene.lock.acquired")
    return lock, created


def is_lock_failure(e: BaseException) -> bool:
    return "LockObtainFailedException" in f"{getattr(e, 'classname', '')} {e}"


def lucene_lock_error(path: Path, e: BaseException) -> IndexLockedError:
    """Lucene's LockObtainFailedException (another program's IndexWriter on DIR) as one line."""
    text = str(e).strip()
    msg = text.splitlines()[0] if text else type(e).__name__
    return IndexLockedError(
        f"{path} is being written by another Lucene program ({LUCENE_LOCK} is held: {msg}); "
        "wait for it to finish or stop it, then re-run"
    )


def prepare_dir(path: Path, recreate: bool, lock_created: bool = False) -> None:
    """Check DIR (the caller holds its writer lock), or empty it for --recreate; refuse to
    touch a dir that is not ours (and then remove the lock file if we just created it)."""
    if not path.is_dir():
        raise EngineError(f"--index {path} is not a directory")
    if any(p.name not in _LEFTOVERS for p in path.iterdir()):
        ours = (path / CONFIG_FILE).is_file()
        if not ours:
            what = "a Lucene index not built by vsplade" if is_lucene_dir(path) else "not a vsplade Lucene index"
            if lock_created:
                (path / LOCK_FILE).unlink(missing_ok=True)
            raise IndexMismatchError(f"--index {path} is {what}; choose a new or empty dir")
        if recreate:
            clear_index_dir(path)


def clear_index_dir(path: Path) -> None:
    """--recreate under our writer lock. Lucene's write lock is taken too, so an index another
    Lucene program is writing is refused, never deleted. Order: the commit point first (Lucene
    then sees no index at all), every other file next, our config last: a kill in between
    leaves a dir that is still ours and that the same command finishes clearing. The lock
    files stay (vsplade.locking.clear_dir's rule)."""
    from . import jvm

    J = jvm.classes()
    directory = J.FSDirectory.open(J.Paths.get(str(path.resolve())))
    try:
        try:
            lucene_lock = directory.obtainLock(LUCENE_LOCK)
        except Exception as e:
            if is_lock_failure(e):
                raise lucene_lock_error(path, e) from None
            raise EngineError(f"--recreate {path}: cannot lock the Lucene index ({java_line(e)})") from None
        try:
            for p in sorted(path.glob("segments*")):
                p.unlink()
            crash_point("lucene.recreate.commit-deleted")
            for child in path.iterdir():
                if child.name in (LOCK_FILE, LUCENE_LOCK, CONFIG_FILE):
                    continue
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
            crash_point("lucene.recreate.files-deleted")
            (path / CONFIG_FILE).unlink(missing_ok=True)
            crash_point("lucene.recreate.done")
        finally:
            lucene_lock.close()
    finally:
        directory.close()


def meta_line(doc_id: str, meta: Mapping[str, Any]) -> dict:
    """A page's metadata row (docs file line and the stored ``raw`` field): id, source, page,
    and the file it came from (path, sha256) when the pipeline knows them."""
    line = {"id": doc_id, "source": meta.get("source"), "page": meta.get("page")}
    for key in ("path", "sha256"):
        if meta.get(key) is not None:
            line[key] = meta[key]
    return line


def page_rows(reader) -> list[dict | None]:
    """The metadata row of every doc id of a Lucene reader (its stored ``raw`` field, read in
    one JNI call by IndexPages.raws), None for a deleted doc. Always aligned with the doc ids
    of that reader, whatever deletes and merges did."""
    from . import jvm

    blob = jvm.classes().IndexPages.raws(reader, RAW_FIELD)
    blob = blob.tostring() if hasattr(blob, "tostring") else bytes(blob)
    lines = blob.split(b"\n")[:-1] if blob else []
    return [orjson.loads(x) if x else None for x in lines]


def read_catalog(path: Path) -> list[dict]:
    """Every live page of the committed index (read side: no lock, Lucene's own commit)."""
    if not is_lucene_dir(path):
        return []
    from . import jvm

    J = jvm.classes()
    directory = J.FSDirectory.open(J.Paths.get(str(path.resolve())))
    try:
        reader = J.DirectoryReader.open(directory)
        try:
            return [r for r in page_rows(reader) if r is not None]
        finally:
            reader.close()
    finally:
        directory.close()


class DocsFile:
    """The doc-id-aligned metadata file: appended while writing, read whole by searchers."""

    def __init__(self, path: Path):
        self.path = path / DOCS_FILE

    def read(self, limit: int | None = None) -> list[dict]:
        if not self.path.is_file():
            return []
        out = []
        with open(self.path, "rb") as f:
            for line in f:
                if limit is not None and len(out) >= limit:
                    break
                if line.strip():
                    out.append(orjson.loads(line))
        return out

    def truncate_to(self, n: int) -> list[dict]:
        """Keep the first n lines (the committed docs); returns them."""
        rows = self.read(limit=n)
        if len(rows) < n:
            raise EngineError(
                f"{self.path} lists {len(rows)} pages but the Lucene index holds {n}; "
                "the index was modified outside vsplade: rebuild it with --recreate"
            )
        self.write(rows)
        return rows

    def write(self, rows: list[dict]) -> None:
        """Replace the whole file atomically (the JsonVectorCollection route writes it once)."""
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            with open(tmp, "wb") as f:
                f.write(b"".join(orjson.dumps(r) + b"\n" for r in rows))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except OSError as e:
            raise _os_error(self.path, e) from e

    def append(self, rows: list[dict]) -> None:
        if not rows:
            return
        try:
            with open(self.path, "ab") as f:
                f.write(b"".join(orjson.dumps(r) + b"\n" for r in rows))
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:  # lines past the last Lucene commit are cut back at the next open
            raise _os_error(self.path, e) from e
