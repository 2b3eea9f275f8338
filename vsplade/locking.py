"""One writer per index: an exclusive advisory lock on a file inside the index dir.

Every local writer (encoded dir, memory, Lucene) takes `WriterLock(DIR)` before it touches
DIR and holds it until it closes. The lock is `flock` on ``DIR/.vsplade-write.lock``: the
kernel drops it when the process dies, so a SIGKILL never leaves a stale lock behind and the
next run simply takes it. A second writer fails at once with `IndexLockedError` naming the
dir and the holder's pid. Readers never take it, so searches are never blocked.

`clear_dir` empties a dir for ``--recreate`` while keeping the lock file: deleting a held
lock file would let a third process lock a fresh inode next to the holder.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
from pathlib import Path

from .engines.base import EngineError

LOCK_FILE = ".vsplade-write.lock"


class IndexLockedError(EngineError):
    """Another process is writing this index."""


class WriterLock:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> "WriterLock":
        if self._fd is not None:
            return self
        if self.path.exists() and not self.path.is_dir():
            raise EngineError(f"{self.path} exists and is not a directory")
        self.path.mkdir(parents=True, exist_ok=True)
        lock_path = self.path / LOCK_FILE
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = _read_pid(fd)
            os.close(fd)
            if e.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                who = f" (pid {holder})" if holder else ""
                raise IndexLockedError(
                    f"{self.path} is being written by another process{who}; wait for it to finish "
                    "or stop it, then re-run (nothing it acknowledged is lost)"
                ) from None
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing the descriptor drops the flock

    def __enter__(self) -> "WriterLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode().strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None


def clear_dir(path: str | os.PathLike) -> None:
    """Delete everything in DIR except the writer lock file (the caller holds the lock)."""
    for child in Path(path).iterdir():
        if child.name == LOCK_FILE:
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()
