"""The encoded dir: page vectors on disk, seed-compatible, crash-safe and single-writer.

Layout when finished (what the official ``encode_sparse_documents.py`` writes, plus ours)::

    sparse_docs.npz   scipy CSR float32 [N, V]
    doc_ids.json      list of str, aligned to rows
    pages.jsonl       one {"id", "source", "page", "sha256"} per row
    vsplade.json      the manifest: {"format": "vsplade-encoded", "version": 2, "encoder": {...},
                      "state": "writing" | "complete", "parts": [...], "num_docs", "nnz", ...}
    shards/           while writing (or for corpora too big to merge): immutable parts

The manifest is the single source of truth: ``parts`` lists, in row order, exactly the files
that form the dir (``{"npz", "ids", "pages", "rows", "nnz"}`` per part, paths relative to the
dir). Readers read only what it lists; nothing is found by globbing. The rules that make a
crash at any moment (SIGKILL included) harmless:

- every file is written under a hidden temp name (``.tmp-...``) that no reader looks at, then
  renamed into place; a part's files are never modified once named;
- a shard is acknowledged when the manifest that lists it has been renamed into place (the
  manifest rename is the commit point); pages of a shard that never reached the manifest
  are not acknowledged and a re-run encodes them again;
- when the writer opens a dir (holding the lock) it deletes what the manifest does not
  reference: temp files, unlisted shards, and a stale top-level trio;
- the final merge writes the merged part as a shard, commits a manifest that points at it,
  then swaps the top-level trio (hard links to the merged files) and commits a manifest that
  points at the trio. Every manifest in that sequence describes the same rows, so a reader
  sees the last good state throughout.

An append (new pages into a finished dir) leaves the existing parts as they are and adds
shards; a failed append keeps every acknowledged page readable. One writer at a time
(`vsplade.locking.WriterLock`); readers never wait.

A directory with only ``sparse_docs.npz`` + ``doc_ids.json`` (the official output) loads too;
its vocabulary is assumed to be the default one. Page ids are checked on every load: a null,
empty, non-string or duplicate id is refused with the offending ids named.
"""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import zipfile
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np
import orjson
import scipy.sparse as sp

from .crashpoints import crash_point
from .engines.base import IndexSummary, IndexWriter, check_same_encoder
from .locking import LOCK_FILE, WriterLock, clear_dir
from .sparse import InvalidIdsError, SparseBatch, check_ids, concat
from .vocab import TERM_NAMING, VOCAB_SIZE

ENCODED_FORMAT = "vsplade-encoded"
FORMAT_VERSION = 2
MATRIX_FILE = "sparse_docs.npz"
IDS_FILE = "doc_ids.json"
PAGES_FILE = "pages.jsonl"
CONFIG_FILE = "vsplade.json"
SHARD_DIR = "shards"
TMP_PREFIX = ".tmp-"
DEFAULT_SHARD_DOCS = 4096
DEFAULT_MERGE_MAX_NNZ = 200_000_000  # ~1.6 GB of CSR in memory at merge time
TOP_PART = {"npz": MATRIX_FILE, "ids": IDS_FILE, "pages": PAGES_FILE}


class EncodedDirError(ValueError):
    pass


def is_encoded_dir(path: str | Path) -> bool:
    p = Path(path)
    return p.is_dir() and ((p / CONFIG_FILE).is_file() or ((p / MATRIX_FILE).is_file() and (p / IDS_FILE).is_file()))


# -- durable, atomic file writes --------------------------------------------------------------

_tmp_counter = 0


def _tmp_path(final: Path) -> Path:
    """A hidden sibling name no reader or resume logic ever matches; ends like `final` so
    libraries that append suffixes (numpy/scipy add '.npz') keep it as is."""
    global _tmp_counter
    _tmp_counter += 1
    return final.with_name(f"{TMP_PREFIX}{os.getpid()}-{_tmp_counter}-{final.name}")


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
_RESUME = "then re-run: what was committed is kept and the run resumes"


def write_failure(where: str | os.PathLike, reason: str, err: int | None = None) -> str:
    """One line for a write that failed (here or in a connector's Java): where, why, and
    what to do. `reason` is the system's words; `err` its errno when known."""
    if err in _DISK_FULL or "No space left on device" in reason or "Disk quota exceeded" in reason:
        todo = f"the disk is full: free space on it (or write to a dir on another disk), {_RESUME}"
    elif err == errno.EFBIG or "File too large" in reason:
        todo = (f"a file reached the size limit (`ulimit -f`, or the filesystem's largest file): raise it "
                f"(or write to a dir on another filesystem), {_RESUME}")
    elif err in (errno.EACCES, errno.EPERM, errno.EROFS) or "Permission denied" in reason or "Read-only" in reason:
        todo = f"check that the dir is writable (or write to another dir), {_RESUME}"
    else:
        todo = f"fix that, {_RESUME}"
    return f"{where}: cannot write ({reason}); {todo}"


def _write_error(final: Path, e: OSError) -> "EncodedDirError":
    # named by the file meant, not the hidden temp name the write went to
    return EncodedDirError(write_failure(final, e.strerror or str(e), e.errno))


def _write_file(final: Path, write) -> None:
    """write(f) into a temp file, fsync it, rename it to `final` (atomic on POSIX). A failed
    write (a full disk) is an EncodedDirError naming `final`, not a bare OSError."""
    tmp = _tmp_path(final)
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        crash_point("encoded.file.tmp-written")
        os.replace(tmp, final)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise _write_error(final, e) from e
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_bytes(final: Path, data: bytes) -> None:
    _write_file(final, lambda f: f.write(data))


def _write_npz(final: Path, matrix: sp.csr_matrix) -> None:
    m = sp.csr_matrix(matrix, dtype=np.float32)
    _write_file(final, lambda f: sp.save_npz(f, m, compressed=False))


def _jsonl(rows) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in rows)


def _read_jsonl(data: bytes, where: Path) -> list[dict]:
    try:
        return [orjson.loads(line) for line in data.splitlines() if line.strip()]
    except orjson.JSONDecodeError as e:
        raise EncodedDirError(f"{where}: invalid JSON line ({e})") from None


def _link_or_copy(src: Path, final: Path) -> None:
    """Make `final` a new name for src's content without touching whatever `final` was."""
    tmp = _tmp_path(final)
    try:
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
        os.replace(tmp, final)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise _write_error(final, e) from e


def _npz_shape_nnz(path: Path) -> tuple[int, int]:
    with np.load(path) as z:
        return int(z["shape"][0]), int(z["data"].shape[0])


# -- read side --------------------------------------------------------------------------------


def _load_manifest(path: Path) -> dict | None:
    cfg_path = path / CONFIG_FILE
    try:
        raw = cfg_path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise EncodedDirError(f"{cfg_path}: cannot read ({e.strerror or e})") from None
    try:
        config = json.loads(raw)
    except ValueError as e:
        raise EncodedDirError(f"{cfg_path}: invalid JSON ({e})") from None
    if not isinstance(config, dict) or config.get("format") != ENCODED_FORMAT:
        fmt = config.get("format") if isinstance(config, dict) else None
        raise EncodedDirError(f"{cfg_path}: not an encoded dir (format={fmt!r})")
    if "parts" not in config:
        config["parts"] = _version1_parts(path, config)
    return config


def _version1_parts(path: Path, config: dict) -> list[dict]:
    """Manifests written before version 2 named shards (finished, unmerged) or nothing."""
    if config.get("state") == "writing":
        raise EncodedDirError(
            f"{path}: an unfinished encoded dir from an older vsplade; re-run with --recreate"
        )
    if config.get("shards"):
        return [{"npz": f"{SHARD_DIR}/{n}.npz", "ids": f"{SHARD_DIR}/{n}.ids.json",
                 "pages": f"{SHARD_DIR}/{n}.pages.jsonl"} for n in config["shards"]]
    return [dict(TOP_PART)]


class _Vanished(EncodedDirError):
    """A listed file disappeared between reading the manifest and opening it: a writer
    committed a newer state meanwhile. Reading the manifest again gives a consistent view."""


class _Part:
    """One listed part: its ids and pages read at open, its matrix file held open (parts are
    immutable and the top-level trio is only ever replaced by rename, so an open descriptor
    keeps the state this reader opened), the matrix read on demand."""

    def __init__(self, root: Path, spec: Mapping[str, Any], hold: bool = True):
        self.spec = dict(spec)
        self.npz = root / spec["npz"]
        self._fh = None
        if hold:
            try:
                self._fh = open(self.npz, "rb")
            except FileNotFoundError:
                raise _Vanished(f"{self.npz}: missing (the dir was changed while being read, or damaged)") from None
        ids_path = root / spec["ids"]
        try:
            ids = orjson.loads(ids_path.read_bytes())
        except FileNotFoundError:
            raise _Vanished(f"{ids_path}: missing (the dir was changed while being read, or damaged)") from None
        except orjson.JSONDecodeError as e:
            raise EncodedDirError(f"{ids_path}: invalid JSON ({e})") from None
        if not isinstance(ids, list):
            raise EncodedDirError(f"{ids_path}: expected a JSON list of page ids, got {type(ids).__name__}")
        self.ids = ids
        pages_path = root / spec["pages"] if spec.get("pages") else None
        self.pages = None
        if pages_path is not None and pages_path.is_file():
            self.pages = _read_jsonl(pages_path.read_bytes(), pages_path)
            if len(self.pages) != len(ids):
                raise EncodedDirError(f"{pages_path}: {len(self.pages)} lines but {len(ids)} ids in {ids_path.name}")
        if "rows" in spec and int(spec["rows"]) != len(ids):
            raise EncodedDirError(f"{ids_path}: {len(ids)} ids but the manifest lists {spec['rows']} rows")

    def matrix(self, vocab_size: int) -> sp.csr_matrix:
        try:
            if self._fh is not None:
                self._fh.seek(0)
                matrix = sp.load_npz(self._fh).tocsr()
            else:
                matrix = sp.load_npz(self.npz).tocsr()
        except FileNotFoundError:
            raise EncodedDirError(f"{self.npz}: missing (the dir was changed while being read; open it again)") from None
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
            raise EncodedDirError(f"{self.npz}: cannot read ({type(e).__name__}: {e})") from None
        if matrix.shape[0] != len(self.ids):
            raise EncodedDirError(f"{self.npz}: {matrix.shape[0]} rows but {len(self.ids)} ids")
        if matrix.shape[1] != vocab_size:
            raise EncodedDirError(f"{self.npz}: {matrix.shape[1]} columns, expected vocabulary size {vocab_size}")
        return matrix

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def _iter_parts(parts: list[_Part], vocab_size: int, deleted: set[str] = frozenset()) -> Iterator[SparseBatch]:
    for part in parts:
        if not part.ids:
            continue
        batch = SparseBatch(part.matrix(vocab_size), part.ids, part.pages or [])
        if deleted:
            keep = [r for r, i in enumerate(part.ids) if i not in deleted]
            if len(keep) != len(part.ids):
                batch = batch.select(keep)
        if len(batch):
            yield batch


def _concat_parts(parts: list[_Part], vocab_size: int, deleted: set[str] = frozenset()) -> SparseBatch:
    return concat(_iter_parts(parts, vocab_size, deleted), vocab_size)


def _listed(meta: Mapping[str, Any]) -> dict:
    """A page's catalog row: its metadata less the page text a --text-field index keeps in
    pages.jsonl (the engine's BM25 reads it from the parts; a listing of 100k pages would
    otherwise carry ~200 MB of text)."""
    return {k: v for k, v in meta.items() if k != "text"} if "text" in meta else dict(meta)


def _part_catalog(parts: list[_Part], deleted: set[str]) -> list[dict]:
    out = []
    for part in parts:
        pages = part.pages or [{"id": i} for i in part.ids]
        out.extend(_listed(m) for m in pages if m.get("id") not in deleted)
    return out


class EncodedDir:
    """Read side: the state the manifest described when the dir was opened."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_dir():
            what = "is not a directory" if self.path.exists() else "no such encoded dir"
            raise EncodedDirError(f"{self.path}: {what}")
        for attempt in range(5):
            try:
                self._open()
                break
            except _Vanished:
                if attempt == 4:
                    raise
        try:
            check_ids([i for p in self.parts for i in p.ids])
        except InvalidIdsError as e:
            raise EncodedDirError(f"{self.path}: {e}") from None

    def _open(self) -> None:
        config = _load_manifest(self.path)
        if config is None:
            if not ((self.path / MATRIX_FILE).is_file() and (self.path / IDS_FILE).is_file()):
                raise EncodedDirError(
                    f"{self.path}: not an encoded dir (expected {MATRIX_FILE} + {IDS_FILE}, or {CONFIG_FILE})"
                )
            # the official encoder's output: default vocabulary, unknown settings
            config = {"format": ENCODED_FORMAT, "encoder": {"name": "unknown"}, "vocab_size": VOCAB_SIZE,
                      "state": "complete", "parts": [dict(TOP_PART)]}
        self.config = config
        self.deleted: set[str] = set(config.get("deleted", []))
        specs = config["parts"]
        # hold every matrix file open unless there are very many (a huge unmerged corpus)
        self.parts = [_Part(self.path, spec, hold=len(specs) <= 256) for spec in specs]

    @property
    def complete(self) -> bool:
        """False while a writer is adding pages, or after one was interrupted (a re-run resumes)."""
        return self.config.get("state") != "writing"

    @property
    def encoder_info(self) -> dict:
        return self.config.get("encoder", {})

    @property
    def vocab_size(self) -> int:
        return int(self.config.get("vocab_size", VOCAB_SIZE))

    @property
    def properties(self) -> dict:
        """The collection properties (vsplade.catalog): root, encoder state, timestamps."""
        return dict(self.config.get("collection", {}))

    def iter_batches(self) -> Iterator[SparseBatch]:
        """One SparseBatch per stored part (a whole merged corpus, or one shard), without
        deleted pages."""
        return _iter_parts(self.parts, self.vocab_size, self.deleted)

    def catalog(self) -> list[dict]:
        """The metadata row of every page held (pages.jsonl), in row order."""
        return _part_catalog(self.parts, self.deleted)

    def close(self) -> None:
        for part in self.parts:
            part.close()

    def load(self) -> SparseBatch:
        return concat(self.iter_batches(), self.vocab_size)

    def ids(self) -> list[str]:
        return [i for p in self.parts for i in p.ids if i not in self.deleted]

    def __len__(self) -> int:
        return sum(len(p.ids) for p in self.parts) - len(self.deleted)


# -- write side -------------------------------------------------------------------------------


class EncodedDirWriter(IndexWriter):
    """Streaming, sharded, resumable, exclusive. Use as a context manager or call close().

    The memory engine's writer as it is (`MemoryEngine.writer` returns one: the memory
    engine's index is an encoded dir), and what `vsplade encode --out` writes with.

    Pages whose ids the dir already holds are skipped (counted in ``summary.skipped``); pages
    with a NaN, infinite or negative weight are refused one by one (``summary.failures``),
    the rest are written."""

    def __init__(
        self,
        path: str | Path,
        info: Mapping[str, Any],
        recreate: bool = False,
        shard_docs: int = DEFAULT_SHARD_DOCS,
        merge_max_nnz: int = DEFAULT_MERGE_MAX_NNZ,
    ):
        self.path = Path(path)
        self.info = dict(info)
        self.shard_docs = shard_docs
        self.merge_max_nnz = merge_max_nnz
        self.summary = IndexSummary()
        self._buffer: list[SparseBatch] = []
        self._buffered = 0
        self._closed = False
        if self.path.exists() and not self.path.is_dir():
            raise EncodedDirError(f"{self.path} exists and is not a directory")
        if not recreate and self.path.is_dir() and not is_encoded_dir(self.path) and _has_foreign_files(self.path):
            raise EncodedDirError(f"{self.path} exists and is not an encoded dir; choose an empty --out dir")
        self._lock = WriterLock(self.path).acquire()
        try:
            crash_point("encoded.open.locked")
            if recreate:
                clear_dir(self.path)
            self._open()
        except BaseException:
            self._lock.release()
            raise

    def _open(self) -> None:
        old = _load_manifest(self.path)
        if old is None and (self.path / MATRIX_FILE).is_file() and (self.path / IDS_FILE).is_file():
            old = {"encoder": {"name": "unknown"}, "parts": [dict(TOP_PART)]}  # official output
        if old is not None:
            check_same_encoder(str(self.path), old.get("encoder"), self.info, "use a new --out dir or --recreate")
        self._parts: list[dict] = [dict(p) for p in (old or {}).get("parts", [])]
        self._deleted: set[str] = set((old or {}).get("deleted", []))
        self._properties: dict = dict((old or {}).get("collection", {}))
        self._collect_garbage()
        self._done: set[str] = set()
        self._catalog: list[dict] = []
        for spec in self._parts:
            part = _Part(self.path, spec, hold=False)
            spec.setdefault("rows", len(part.ids))
            self._done.update(part.ids)
            self._catalog.extend([_listed(m) for m in part.pages] if part.pages else [{"id": i} for i in part.ids])
        self._done -= self._deleted
        self._next_shard = 1 + max((_shard_number(p["npz"]) for p in self._parts), default=-1)
        self._commit(state="writing")

    def _collect_garbage(self) -> None:
        """Delete what no manifest lists: temp files, unlisted shards, a stale top trio (the
        trio is stale only when a manifest of ours exists and does not list it)."""
        listed = {self.path / p[k] for p in self._parts for k in ("npz", "ids", "pages") if p.get(k)}
        for child in self.path.iterdir():
            if child.name.startswith(TMP_PREFIX):
                child.unlink(missing_ok=True)
        shard_dir = self.path / SHARD_DIR
        if shard_dir.is_dir():
            for child in shard_dir.iterdir():
                if child not in listed and child.is_file():
                    child.unlink()
        if (self.path / CONFIG_FILE).is_file():
            for name in TOP_PART.values():
                if self.path / name not in listed:
                    (self.path / name).unlink(missing_ok=True)

    def _manifest(self, state: str) -> dict:
        return {
            "format": ENCODED_FORMAT,
            "version": FORMAT_VERSION,
            "encoder": self.info,
            "vocab_size": VOCAB_SIZE,
            "term_naming": TERM_NAMING,
            "state": state,
            "num_docs": sum(int(p.get("rows", 0)) for p in self._parts) - len(self._deleted),
            "nnz": sum(int(p.get("nnz", 0)) for p in self._parts),
            "parts": self._parts,
            "deleted": sorted(self._deleted),
            "collection": self._properties,
        }

    def _commit(self, state: str) -> None:
        """Atomically replace the manifest: what it lists is now the dir."""
        data = json.dumps(self._manifest(state), indent=1).encode() + b"\n"
        crash_point("encoded.manifest.before")
        _write_bytes(self.path / CONFIG_FILE, data)
        _fsync_dir(self.path)
        crash_point("encoded.manifest.after")

    supports_lifecycle = True

    def done_ids(self) -> set[str]:
        return set(self._done)

    def catalog(self) -> list[dict]:
        return [m for m in self._catalog if m.get("id") not in self._deleted]

    def commit(self) -> None:
        self.flush()

    def delete(self, ids) -> int:
        """Tombstones in the manifest (one atomic commit); the rows go at the next merge."""
        self.flush()
        gone = {i for i in ids if i in self._done}
        if gone:
            self._deleted |= gone
            self._done -= gone
            self._commit(state="writing")
            crash_point("encoded.delete.committed")
        return len(gone)

    def set_properties(self, properties) -> None:
        self._properties = dict(properties)

    def add(self, batch: SparseBatch) -> None:
        if self._closed:
            raise EncodedDirError(f"{self.path}: writer is closed")
        if not len(batch):
            return
        good, failures = batch.split_valid()
        self.summary.failures.extend(failures)
        # a deleted page added again (its file came back) is undeleted: its id fixes its
        # file, content and page, so the stored row is the same page
        back = [i for i in good.ids if i in self._deleted]
        if back:
            self._deleted.difference_update(back)
            self._done.update(back)
        keep = [r for r, i in enumerate(good.ids) if i not in self._done]
        self.summary.skipped += len(good) - len(keep) - len(back)
        self.summary.indexed += len(back)
        if len(keep) != len(good):
            good = good.select(keep)
        if not len(good):
            return
        self._done.update(good.ids)
        self._catalog.extend(_listed(m) for m in good.meta)
        self._buffer.append(good)
        self._buffered += len(good)
        self.summary.indexed += len(good)
        self.summary.empty += int((np.diff(good.matrix.indptr) == 0).sum())
        if self._buffered >= self.shard_docs:
            self.flush()

    def flush(self) -> None:
        """Write the buffered pages as one shard and commit it (they are acknowledged then)."""
        if self._buffer:
            batch = concat(self._buffer)
            self._buffer, self._buffered = [], 0
            self._parts.append(self._write_part(batch, f"part-{self._next_shard:05d}"))
            self._next_shard += 1
            self._commit(state="writing")
            crash_point("encoded.shard.committed")

    def _write_part(self, batch: SparseBatch, name: str) -> dict:
        shard_dir = self.path / SHARD_DIR
        try:
            shard_dir.mkdir(exist_ok=True)
        except OSError as e:
            raise _write_error(shard_dir, e) from e
        spec = {"npz": f"{SHARD_DIR}/{name}.npz", "ids": f"{SHARD_DIR}/{name}.ids.json",
                "pages": f"{SHARD_DIR}/{name}.pages.jsonl", "rows": len(batch), "nnz": int(batch.matrix.nnz)}
        _write_bytes(self.path / spec["pages"], _jsonl(batch.meta))
        _write_bytes(self.path / spec["ids"], orjson.dumps(batch.ids))
        _write_npz(self.path / spec["npz"], batch.matrix)
        _fsync_dir(shard_dir)
        crash_point("encoded.shard.written")
        return spec

    def close(self) -> IndexSummary:
        if self._closed:
            return self.summary
        try:
            self.flush()
            total_nnz = sum(int(p.get("nnz") if "nnz" in p else _npz_shape_nnz(self.path / p["npz"])[1])
                            for p in self._parts)
            merged = len(self._parts) == 1 and self._parts[0]["npz"] == MATRIX_FILE and not self._deleted
            if total_nnz <= self.merge_max_nnz and not merged:
                self._merge()
            else:
                self._commit(state="complete")
        finally:
            self._closed = True
            self._lock.release()
        return self.summary

    def _merge(self) -> None:
        """Make the top-level trio hold every row, switching manifests so that each one a
        reader may see describes all acknowledged rows."""
        if len(self._parts) == 1 and self._parts[0]["npz"] != MATRIX_FILE and not self._deleted:
            merged = self._parts[0]  # one shard already holds everything
        else:
            whole = _concat_parts([_Part(self.path, p, hold=False) for p in self._parts], VOCAB_SIZE, self._deleted)
            merged = self._write_part(whole, f"part-{self._next_shard:05d}")
            self._next_shard += 1
            crash_point("encoded.merge.written")
            self._parts, self._deleted = [merged], set()
            self._commit(state="writing")
        for key in ("pages", "ids", "npz"):
            _link_or_copy(self.path / merged[key], self.path / TOP_PART[key])
            crash_point("encoded.merge.trio-linked")
        self._parts = [{**TOP_PART, "rows": merged["rows"], "nnz": merged["nnz"]}]
        self._commit(state="complete")
        shutil.rmtree(self.path / SHARD_DIR, ignore_errors=True)
        crash_point("encoded.merge.cleaned")

    def abort(self) -> None:
        """After an error: commit what was buffered if possible (so a re-run does not redo
        it), keep everything acknowledged, release the lock."""
        if self._closed:
            return
        try:
            self.flush()
        except Exception:
            pass
        finally:
            self._closed = True
            self._lock.release()


def _shard_number(npz: str) -> int:
    name = Path(npz).name
    if name.startswith("part-") and name.endswith(".npz"):
        try:
            return int(name[len("part-"):-len(".npz")])
        except ValueError:
            return -1
    return -1


def _has_foreign_files(path: Path) -> bool:
    return any(c.name not in (LOCK_FILE, SHARD_DIR) and not c.name.startswith(TMP_PREFIX) for c in path.iterdir())
