"""Sharded, resumable caption files.

Shard s of S covers the contiguous rows [s * ceil(N/S), min((s+1) * ceil(N/S), N)) and writes
`caption_{start:06d}.jsonl`, one `{"index", "caption", "num_tokens"}` line per row (the
official layout). A rerun reads the indices already written and skips them. A line cut off
by a crash (no trailing newline or invalid JSON at the end) is removed before appending, so a
resumed file never holds a broken record.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Iterable, Iterator


class CaptionFileError(ValueError):
    pass


def shard_range(n_rows: int, shard_id: int, num_shards: int) -> range:
    if num_shards < 1 or not 0 <= shard_id < num_shards:
        raise ValueError(f"shard {shard_id} of {num_shards} does not exist")
    size = math.ceil(n_rows / num_shards) if n_rows else 0
    start = min(shard_id * size, n_rows)
    return range(start, min(start + size, n_rows))


def shard_path(out_dir: str | Path, start: int) -> Path:
    return Path(out_dir) / f"caption_{start:06d}.jsonl"


def repair_tail(path: Path) -> int:
    """Drop a partial last line left by a crash; returns the bytes removed."""
    if not path.exists():
        return 0
    data = path.read_bytes()
    if not data:
        return 0
    keep = len(data)
    if not data.endswith(b"\n"):
        keep = data.rfind(b"\n") + 1
    else:
        last = data[: len(data) - 1].rfind(b"\n") + 1
        try:
            json.loads(data[last:])
        except ValueError:
            keep = last
    if keep != len(data):
        with open(path, "r+b") as f:
            f.truncate(keep)
    return len(data) - keep


def iter_records(path: Path) -> Iterator[dict]:
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError as e:
                raise CaptionFileError(f"{path}:{lineno}: invalid JSON ({e})") from None
            if not isinstance(rec, dict) or not isinstance(rec.get("index"), int) or not isinstance(rec.get("caption"), str):
                raise CaptionFileError(f"{path}:{lineno}: a record needs an integer 'index' and a string 'caption'")
            yield rec


def done_indices(path: Path) -> set[int]:
    return {r["index"] for r in iter_records(path)} if path.exists() else set()


def append_records(path: Path, records: Iterable[dict]) -> None:
    """Append and flush whole lines: a crash loses at most the batch being written."""
    with open(path, "a", encoding="utf-8") as f:
        for rec in records:
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
        f.flush()


def caption_files(src: str | Path) -> list[Path]:
    p = Path(src)
    if p.is_file():
        return [p]
    files = sorted(p.glob("caption_*.jsonl"))
    if not files:
        raise CaptionFileError(f"{p}: no caption_*.jsonl files")
    return files


def read_captions(src: str | Path) -> tuple[dict[int, str], list[str]]:
    """{index: caption} from a file or a dir of shard files, and warnings about duplicates."""
    out: dict[int, str] = {}
    warnings = []
    for path in caption_files(src):
        for rec in iter_records(path):
            i = rec["index"]
            if i in out and out[i] != rec["caption"]:
                warnings.append(f"{path}: index {i} captioned twice with different text; keeping the last")
            out[i] = rec["caption"]
    return out, warnings
