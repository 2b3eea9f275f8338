"""What an index holds, file by file, and what it takes to make it match a folder again.

One mechanism for every engine (memory, Lucene, OpenSearch): engines only list their pages
(`IndexWriter.catalog()`), delete pages by id (`IndexWriter.delete()`) and keep a small
JSON dict of collection properties; everything else lives here.

Source identity. A page records
- ``source``: the file's key, its path relative to the collection root (POSIX, e.g.
  ``reports/2024.pdf``); a file outside the root keeps its absolute path as key. The root is
  chosen when the index is created (the input folder; for several inputs, their common
  folder) and recorded in the index's properties, so every later run, from any working
  directory, names the same file the same way;
- ``path``: the absolute path it was read from (a hit can be opened from anywhere);
- ``sha256``: the file's content hash: which version of the file the page came from;
- ``page``: 1-based page number. The page id is derived from (key, content hash, page), so
  a copy under a new name is a new file with its own pages, and a changed file's new pages
  never collide with its old ones.

Sync. `plan()` compares the files now under the inputs with the catalog: *added* (key not
indexed), *replaced* (key indexed with another content hash), *unchanged* (same hash; pages
a crashed run did not finish are resumed), *removed* (an indexed key under the inputs whose
file is gone). The pipeline then writes the new pages, commits, and only then deletes the
old ones: a search never finds a changed file missing, and since the plan is recomputed from
the index itself, a re-run after a crash at any point converges.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

ROOT_KEY = "root"


def page_id(key: str, sha256: str, page_no: int) -> str:
    """Same file (key) + same content + same page number -> same id, on any machine."""
    digest = hashlib.blake2b(f"{key}\n{sha256}".encode(), digest_size=8).hexdigest()
    return f"{digest}-{page_no}"


def choose_root(inputs: Sequence[str | os.PathLike]) -> Path:
    """The folder a new collection's keys are relative to: the input folder itself, the
    parent of a lone file, or the common folder of several inputs (globs by their fixed part).
    Taken as the user gave it (absolute, symbolic links not followed): see `source_key`."""
    dirs = []
    for item in inputs:
        text = os.fspath(item)
        p = user_path(_fixed_prefix(text) if _has_magic(text) else text)
        dirs.append(p if p.is_dir() else p.parent)
    if not dirs:
        return user_path(".")
    return Path(os.path.commonpath([str(d) for d in dirs]))


def user_path(path: str | os.PathLike) -> Path:
    """An absolute path that keeps the user's names: `..` and `.` folded, symbolic links NOT
    followed. A folder of links (Debian's documentation, many NFS trees) names each file by
    its link, so deleting a link removes that file from the collection; its content is still
    read through the link."""
    return Path(os.path.abspath(os.fspath(path)))


def _under(p: Path, base: Path) -> str | None:
    try:
        return p.relative_to(base).as_posix()
    except ValueError:
        return None


def _has_magic(text: str) -> bool:
    return any(c in text for c in "*?[")


def _fixed_prefix(pattern: str) -> str:
    parts = []
    for part in Path(pattern).parts:
        if _has_magic(part):
            break
        parts.append(part)
    return str(Path(*parts)) if parts else "."


def source_key(path: str | os.PathLike, root: Path) -> str:
    """A file's key: its path relative to the root as the user reaches it (a symbolic link
    is named by its own path, never by its target); a file outside the root keeps its
    absolute path. Also right for roots recorded with links resolved (indexes built before
    keys kept the user's names) and for a path that reaches the root through a linked folder
    (a working directory under a symlink): then the folders, never the file, are resolved."""
    p = user_path(path)
    bases = (Path(root), Path(root).resolve())  # one resolve of the root per file, not two
    key = _under_any(p, bases)
    if key is None:  # reached through a linked folder: resolve the folders, never the file
        key = _under_any(p.parent.resolve() / p.name, bases)
    return p.as_posix() if key is None else key


def _under_any(p: Path, bases: Sequence[Path]) -> str | None:
    return next((key for base in bases if (key := _under(p, base)) is not None), None)


def in_scope(key: str, root: Path, inputs: Sequence[str | os.PathLike]) -> bool:
    """Is the file named `key` something these inputs would have found if it still existed?"""
    p = Path(key) if Path(key).is_absolute() else Path(root) / key
    for item in inputs:
        text = os.fspath(item)
        base = user_path(_fixed_prefix(text) if _has_magic(text) else text)
        # the input's own name, or its folders resolved (an index whose root was recorded
        # with links resolved, an input given through a linked folder)
        for b in {base, base.resolve()}:
            if p == b or b in p.parents:
                return True
    return False


@dataclass
class SyncPlan:
    added: list[str] = field(default_factory=list)  # keys
    replaced: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    # ids to delete once the new pages are committed: old versions of replaced files, and
    # pages of removed files
    stale_ids: list[str] = field(default_factory=list)
    # ids already indexed for the files' current versions (a re-run skips these pages)
    current_ids: set[str] = field(default_factory=set)
    # keys whose indexed version differs from the file now (plain index: reported, not replaced)
    changed: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {"added": len(self.added), "replaced": len(self.replaced), "unchanged": len(self.unchanged),
                "removed": len(self.removed)}


def group_by_source(catalog: Iterable[Mapping]) -> dict[str, dict[str, list[str]]]:
    """{key: {sha256: [page ids]}} from an engine's catalog."""
    out: dict[str, dict[str, list[str]]] = {}
    for row in catalog:
        key = row.get("source") or ""
        out.setdefault(key, {}).setdefault(row.get("sha256") or "", []).append(row["id"])
    return out


def plan(files: Mapping[str, str], catalog: Iterable[Mapping], scope, sync: bool) -> SyncPlan:
    """files: {key: sha256} of the files now under the inputs. scope(key) -> bool: whether
    an indexed key lies under the inputs (only those can be 'removed')."""
    indexed = group_by_source(catalog)
    p = SyncPlan()
    for key, sha in files.items():
        versions = indexed.get(key)
        if not versions:
            p.added.append(key)
            continue
        p.current_ids.update(versions.get(sha, []))
        old = {s: ids for s, ids in versions.items() if s != sha}
        if not old:
            p.unchanged.append(key)
        elif sync:
            p.replaced.append(key)
            p.stale_ids.extend(i for ids in old.values() for i in ids)
        else:
            p.changed.append(key)
    if sync:
        for key, versions in indexed.items():
            if key not in files and scope(key):
                p.removed.append(key)
                p.stale_ids.extend(i for ids in versions.values() for i in ids)
    return p


def match_sources(catalog: Iterable[Mapping], sources: Sequence[str], root: Path | None) -> tuple[list[str], list[str]]:
    """Page ids of the given sources (a file or folder path, or a key as the index names it;
    a folder matches every file under it) and the sources that matched nothing."""
    by_key: dict[str, list[str]] = {}
    for row in catalog:
        by_key.setdefault(row.get("source") or "", []).append(row["id"])
    ids: list[str] = []
    unmatched: list[str] = []
    for text in sources:
        candidates = {text.rstrip("/")}
        if root is not None and (Path(text).exists() or Path(text).is_absolute()):
            candidates.add(source_key(text, root))
        hit = False
        for key, key_ids in by_key.items():
            if any(key == c or key.startswith(c + "/") for c in candidates):
                ids.extend(key_ids)
                hit = True
        if not hit:
            unmatched.append(text)
    return ids, unmatched


def summarize(catalog: Sequence[Mapping], properties: Mapping, location: Mapping) -> dict:
    """`vsplade info`: one JSON-able object; 'pages' is the page count."""
    per_source: dict[str, int] = {}
    for row in catalog:
        key = row.get("source") or "(unknown)"
        per_source[key] = per_source.get(key, 0) + 1
    return {
        **location,
        "pages": len(catalog),
        "files": len(per_source),
        "root": properties.get(ROOT_KEY),
        "created": properties.get("created"),
        "updated": properties.get("updated"),
        "sources": [{"source": k, "pages": n} for k, n in sorted(per_source.items())],
    }
